"""What a secret is, and how it is kept out of what the mediator shows.

The one place that decides it. Data (ids, names, numbers, periods) is never
altered: secrets are kept out by construction (``SecretStr`` in ``config.py``,
masked headers, query parameters and URL userinfo, messages built without
credentials). The value-based scrub is a last line of defence for free text that
came from outside (exception messages, a peer's error body), never for a report's
ids: DHIS2's well-known default password ``district`` is also the start of a
CHT place id ``district-1``, and masking it there corrupted what OpenHIM stored.

A secret short or common enough to collide with data is therefore not masked
by value at all (masking it would corrupt data, and it protects little): it is
reported at start-up as weak, naming the variable, never the value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .config import RuntimeConfig

log = logging.getLogger(__name__)

MASK = "****"
MIN_STRONG_LENGTH = 8
WORDS_ONLY_BELOW = 12  # letters only and shorter than this: a word, a name, a place
# defaults and guesses that also occur as data (DHIS2's demo "district", CHT's "medic")
COMMON = frozenset(
    {
        "admin",
        "administrator",
        "changeme",
        "default",
        "dhis",
        "dhis2",
        "district",
        "letmein",
        "medic",
        "openhim",
        "password",
        "password1",
        "password123",
        "qwerty",
        "root",
        "secret",
        "welcome",
        "12345678",
        "123456789",
    }
)

# environment variables that hold secrets: CHT_PASSWORD, CHT_<NAME>_PASSWORD,
# DHIS2_PASSWORD, DHIS2_TOKEN, OPENHIM_PASSWORD, MEDIATOR_PUSH_PASSWORD
_SECRET_VARIABLE = re.compile(r"_(PASSWORD|TOKEN)$")
# console config (configDefs of type "password"): chtPassword, dhis2Password, dhis2Token
_SECRET_PARAM = re.compile(r"(Password|Token)$")
# headers whose value is a credential (Authorization keeps its scheme)
_SECRET_HEADER = re.compile(
    r"authorization|cookie|token|password|secret|api-?key|^auth-|session", re.I
)
# query parameters whose value is a credential; exact words, so startkey= stays
_SECRET_QUERY = re.compile(
    r"pass(word|wd)?$|^pwd$|token|secret|api[-_]?key|^auth|^key$|^sig(nature)?$|session", re.I
)
# a JSON member whose value is a credential: "password": "…"
_SECRET_MEMBER = re.compile(
    r'("(?:[A-Za-z_]*pass(?:word)?|[A-Za-z_]*[Tt]oken|[A-Za-z_]*[Ss]ecret)"\s*:\s*)"[^"]*"',
    re.I,
)
# "Basic dXNlcjpwdw==": a credential has a digit or + / = in it (not "Basic Health Unit")
_AUTH_SCHEME = re.compile(
    r"\b(Basic|Bearer|ApiToken|Token)\s+(?=[A-Za-z0-9+/=._~-]*[0-9+/=])[A-Za-z0-9+/=._~-]{8,}",
    re.I,
)
_URL_USERINFO = re.compile(r"(https?://)[^/@\s:]+:[^/@\s]+@", re.I)


def is_secret_variable(name: str) -> bool:
    """Whether an environment variable holds a secret."""
    return _SECRET_VARIABLE.search(name) is not None


def is_secret_param(name: str) -> bool:
    """Whether a console config parameter holds a secret."""
    return _SECRET_PARAM.search(name) is not None


def is_weak(secret: str) -> bool:
    """Short, common or a single word: it collides with data, so it is never
    masked by value (that would alter ids and names) and is reported instead."""
    return (
        len(secret) < MIN_STRONG_LENGTH
        or secret.lower() in COMMON
        or (secret.isalpha() and len(secret) < WORDS_ONLY_BELOW)
    )


def secret_values(
    env: Mapping[str, str] | None = None,
    console: Mapping[str, Any] | None = None,
    runtime: RuntimeConfig | None = None,
    extra: Iterable[str] = (),
) -> list[str]:
    """Every secret value in play: the environment's, the console's, the run's."""
    found = [v for k, v in (env or {}).items() if is_secret_variable(k) and v]
    found += [v for k, v in (console or {}).items() if isinstance(v, str) and is_secret_param(k)]
    if runtime is not None:
        stored = [source.settings.password for source in runtime.sources()]
        if runtime.dhis2 is not None:
            stored += [runtime.dhis2.password, runtime.dhis2.token]
        found += [s.get_secret_value() for s in stored if s is not None]
    found += list(extra)
    return list(dict.fromkeys(v for v in found if v))


def weak_secrets(env: Mapping[str, str], console: Mapping[str, Any] | None = None) -> list[str]:
    """The names (never the values) of the variables and console parameters whose
    secret is weak."""
    names = [k for k, v in env.items() if is_secret_variable(k) and v and is_weak(v)]
    names += [
        f"console {k}"
        for k, v in (console or {}).items()
        if isinstance(v, str) and v and is_secret_param(k) and is_weak(v)
    ]
    return sorted(names)


def warn_weak_secrets(env: Mapping[str, str], console: Mapping[str, Any] | None = None) -> bool:
    """One log line naming the weak secrets, if any; True when there were some."""
    names = weak_secrets(env, console)
    if names:
        log.warning(
            "weak secret in %s: short, common or a single word, so it could be guessed and "
            "would collide with data (a CHT place id, a name); it is not masked inside text. "
            "Use a long random password or token",
            ", ".join(names),
        )
    return bool(names)


def mask_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    """Credential headers masked; ``Authorization`` keeps its scheme (``Basic ****``)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    masked: dict[str, str] = {}
    for name, value in pairs:
        if _SECRET_HEADER.search(name):
            scheme = str(value).split(" ", 1)[0] if name.lower().endswith("authorization") else ""
            value = f"{scheme} {MASK}" if scheme and " " in str(value) else MASK
        masked[name] = str(value)
    return masked


def mask_query(query: str) -> str:
    """The query string with credential parameters masked; every other parameter is
    left exactly as it was sent (its encoding too)."""
    if not query:
        return ""
    parts = []
    for pair in query.split("&"):
        name, sep, _value = pair.partition("=")
        parts.append(f"{name}={MASK}" if sep and _SECRET_QUERY.search(name) else pair)
    return "&".join(parts)


def mask_url(url: str) -> str:
    """``https://user:pw@host`` → ``https://****@host``."""
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)


def mask_members(body: str) -> str:
    """JSON members named like a credential (``"password": "…"``) masked; by name,
    so no id or value of the data is touched."""
    return _SECRET_MEMBER.sub(lambda m: f'{m.group(1)}"{MASK}"', body)


class Scrubber:
    """The last line of defence for free text from outside (exception messages,
    a peer's error body): known secret values that are not weak, credentials after
    an auth scheme, and URL userinfo. Never applied to data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if s and not is_weak(s)}
        self._secrets = sorted(unique, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        value = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", value)
        return mask_url(value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)
