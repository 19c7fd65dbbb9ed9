"""What went wrong, and with whom: one exception hierarchy for every peer::

    PeerError (peer, status, kind)
    ├── Unreachable          connection refused, DNS, reset
    ├── TimedOut             no answer within the timeout
    ├── TlsFailed            certificate not trusted (never retried)
    ├── CredentialsRefused   401, a login page, a refused token (never retried)
    ├── Forbidden            403
    ├── Redirected           3xx (redirects are never followed)
    ├── BadStatus            any other status the caller could not use
    │   └── TooLarge         413: the body is over a proxy's or the server's limit
    └── BadBody              an answer that is not what the peer's API sends
        ├── NotJson          not JSON at all: a web page answered (a proxy's?)
        └── BadShape         JSON, but not in the shape the peer's API sends

Each message names the peer and its address without credentials, and what was being
done; ``kind`` is what callers and diagnoses decide by, never the words.
"""

from __future__ import annotations

from typing import ClassVar


class PeerError(Exception):
    """A peer (CHT, DHIS2, OpenHIM) did not answer as its API does. The message names
    the peer and the address without credentials, and what was being done."""

    kind: ClassVar[str] = "error"

    def __init__(self, peer: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.peer = peer
        self.status = status


class Unreachable(PeerError):
    kind = "unreachable"


class TimedOut(PeerError):
    kind = "timeout"


class TlsFailed(PeerError):
    kind = "tls"


class CredentialsRefused(PeerError):
    kind = "credentials"


class Forbidden(PeerError):
    kind = "forbidden"


class Redirected(PeerError):
    kind = "redirect"


class BadStatus(PeerError):
    kind = "status"


class BadBody(PeerError):
    kind = "body"


class TooLarge(BadStatus):
    """413: the request body is over the size limit of the server or a proxy before it."""

    kind = "too_large"


class NotJson(BadBody):
    """An answer that is not JSON at all: a web page (a proxy's, a load balancer's, another
    web server's) answered instead of the peer's API."""

    kind = "not_json"


class BadShape(BadBody):
    """JSON, but not in the shape the peer's API sends for that call (another service
    behind the same address, or a version the mediator does not know)."""

    kind = "shape"
