"""What is a secret, and how it is kept out of what the mediator records."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "****"
_SECRET_HEADERS = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|auth-token)$", re.I
)


def mask_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Headers as they may be recorded: credentials masked, an Authorization header
    keeping only its scheme (``Basic ****``) so ops still see how the mediator signed in."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    masked: dict[str, str] = {}
    for name, value in pairs:
        if _SECRET_HEADERS.match(name):
            scheme = value.split(" ", 1)[0] if name.lower().endswith("authorization") else ""
            value = f"{scheme} {MASK}".strip()
        masked[name] = value
    return masked
