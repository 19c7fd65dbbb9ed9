"""The environment's variables: the table operators rely on, and how a value is read.

The variable names are a public contract (operators and scripts use them): every one
is in ``ENV_VARS``, with an example of a good value and what it means; ``--help`` of
each command lists the ones it reads. A bad value is refused before anything runs,
in one line that names the variable, says what is wrong with the value and gives an
example (``bad_value``): never a traceback, never pydantic's text, never a secret.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


class ConfigError(ValueError):
    """Configuration that cannot work: one line naming the variable, what is wrong with
    its value, and an example of a good one (``ENV_VARS``)."""


@dataclass(frozen=True)
class EnvVar:
    """One environment variable the mediator reads: the public contract."""

    name: str
    example: str  # a good value, shown in --help and in every refusal of a bad one
    meaning: str
    commands: tuple[str, ...] = ("preview", "push", "audit", "explain", "serve")
    secret: bool = False  # never echoed back


# an audit and explain read DHIS2 as a push does (_PUSH), and post nothing (_POST: push only)
_PUSH, _POST, _SERVE = ("push", "audit", "explain", "serve"), ("push", "serve"), ("serve",)
# Every variable, in the order --help lists them. CHT_<NAME>_URL… of extra CHT instances
# (MEDIATOR_CHT_SOURCES) follow the CHT_ ones.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "CHT_URL",
        "https://cht.example.org",
        "the CHT instance, as users open it (not CouchDB's port 5984, no /medic)",
    ),
    EnvVar("CHT_DB", "medic", "CHT's database (default medic)"),
    EnvVar("CHT_USERNAME", "dhis2-mediator", "the mediator's online CHT user"),
    EnvVar("CHT_PASSWORD", "********", "its password", secret=True),
    EnvVar("CHT_TIMEOUT", "60", "seconds to wait for a CHT answer (default 60)"),
    EnvVar("CHT_PAGE_SIZE", "1000", "target docs per page (1-100000, default 1000)"),
    EnvVar("CHT_OWNER_BATCH", "500", "owner ids per look-up (1-10000, default 500)"),
    EnvVar("CHT_CACHE", "true", "keep contacts between runs (true/false, default true)"),
    EnvVar("CHT_CA_BUNDLE", "/etc/ssl/cht-ca.pem", "a CA bundle (a file) for CHT's TLS"),
    EnvVar("CHT_VERIFY_TLS", "true", "false turns CHT's TLS checks off (default true)"),
    EnvVar(
        "DHIS2_URL", "https://dhis2.example.org", "DHIS2's base URL (with or without /api)", _PUSH
    ),
    EnvVar("DHIS2_USERNAME", "cht-integration", "the DHIS2 integration user", _PUSH),
    EnvVar("DHIS2_PASSWORD", "********", "its password", _PUSH, secret=True),
    EnvVar(
        "DHIS2_TOKEN",
        "d2pat_…",
        "a personal access token instead of the password",
        _PUSH,
        secret=True,
    ),
    EnvVar("DHIS2_TIMEOUT", "120", "seconds to wait for a DHIS2 answer (default 120)", _PUSH),
    EnvVar("DHIS2_CHUNK_SIZE", "500", "data values per POST (1-100000, default 500)", _POST),
    EnvVar("DHIS2_MAX_ATTEMPTS", "5", "tries per DHIS2 request (1-20, default 5)", _PUSH),
    EnvVar(
        "DHIS2_MAX_RETRY_SECONDS",
        "120",
        "seconds of retries per request before the run stops (default 120)",
        _PUSH,
    ),
    EnvVar("DHIS2_ASYNC_IMPORT", "false", "import as a DHIS2 job (true/false)", _POST),
    EnvVar(
        "DHIS2_CA_BUNDLE", "/etc/ssl/dhis2-ca.pem", "a CA bundle (a file) for DHIS2's TLS", _PUSH
    ),
    EnvVar("DHIS2_VERIFY_TLS", "true", "false turns DHIS2's TLS checks off", _PUSH),
    EnvVar(
        "MEDIATOR_TIMEZONE",
        "Africa/Nairobi",
        "IANA time zone of the scheduled periods and the status page (default UTC)",
    ),
    EnvVar(
        "MEDIATOR_LOOKBACK_PERIODS",
        "2",
        "periods before the latest that a run without a period redoes (0-24, default 2)",
    ),
    EnvVar(
        "MEDIATOR_DATA_SETS",
        "BfMAe6Itzgt,QX4ZTUbOt3a",
        "data sets to run (DHIS2 ids, comma-separated; default: all in dhis_data_sets)",
    ),
    EnvVar(
        "MEDIATOR_VALUE_CHOICES",
        "births-this-month=pass",
        "<target id>=total|pass|percent, comma-separated (default total)",
    ),
    EnvVar("MEDIATOR_CHT_SOURCES", "north,south", "more CHT instances: CHT_NORTH_URL…"),
    EnvVar(
        "MEDIATOR_COVERAGE_THRESHOLD",
        "80",
        "hold org units below this percent of CHWs synced (0-100)",
        _PUSH,
    ),
    EnvVar("MEDIATOR_COMPLETE_DATA_SETS", "false", "register completeness (true/false)", _POST),
    EnvVar("MEDIATOR_DRY_RUN", "false", "DHIS2 validates, stores nothing (true/false)", _POST),
    EnvVar(
        "MEDIATOR_CONCURRENT_RUNS",
        "wait",
        "wait or refuse when another run pushes the same data set and period",
        _POST,
    ),
    EnvVar(
        "MEDIATOR_LOCK_DIR",
        "/var/lib/cht-dhis2/locks",
        "where runs take turns (default: the system temp directory)",
        _POST,
    ),
    EnvVar(
        "MEDIATOR_STATE_DIR",
        "/var/lib/cht-dhis2",
        "run history (the status page) and "
        "contacts kept between runs; share it between serve and the command line",
    ),
    EnvVar("MEDIATOR_HOST", "127.0.0.1", "address serve listens on", _SERVE),
    EnvVar("MEDIATOR_PORT", "5011", "port serve listens on (0-65535; 0: any free one)", _SERVE),
    EnvVar(
        "MEDIATOR_ROUTE_HOST",
        "cht-dhis2-mediator",
        "where OpenHIM core reaches the mediator",
        _SERVE,
    ),
    EnvVar("MEDIATOR_ROUTE_PORT", "5011", "the port core reaches it on", _SERVE),
    EnvVar("MEDIATOR_PUSH_USERNAME", "openhim-route", "Basic auth /push requires", _SERVE),
    EnvVar("MEDIATOR_PUSH_PASSWORD", "********", "its password", _SERVE, secret=True),
    EnvVar("MEDIATOR_PUSH_AUTH", "none", "none leaves /push open off loopback", _SERVE),
    EnvVar("MEDIATOR_ASYNC", "false", "answer OpenHIM at once, report later", _SERVE),
    EnvVar("MEDIATOR_SCHEDULE", "0 2 3 * *", "an internal schedule (5-field cron)", _SERVE),
    EnvVar("MEDIATOR_SCHEDULE_CHANNEL", "CHT to DHIS2 monthly", "the channel it fires", _SERVE),
    EnvVar(
        "MEDIATOR_CONFIG_FILE",
        "/etc/cht-dhis2/mediator-config.json",
        "the registration document",
        _SERVE,
    ),
    EnvVar("OPENHIM_URL", "https://openhim-core:8080", "OpenHIM core's API", _SERVE),
    EnvVar("OPENHIM_USERNAME", "root@openhim.org", "an OpenHIM admin user", _SERVE),
    EnvVar("OPENHIM_PASSWORD", "********", "its password", _SERVE, secret=True),
    EnvVar("OPENHIM_AUTH", "basic", "basic or token", _SERVE),
    EnvVar("OPENHIM_CA_BUNDLE", "/etc/ssl/openhim-core.pem", "core's certificate (a file)", _SERVE),
    EnvVar("OPENHIM_TRUST_SELF_SIGNED", "false", "true turns core's TLS checks off", _SERVE),
    EnvVar("OPENHIM_REGISTER", "true", "register with core at start (true/false)", _SERVE),
    EnvVar("OPENHIM_HEARTBEAT_SECONDS", "10", "seconds between heartbeats", _SERVE),
    EnvVar("LOG_LEVEL", "INFO", "serve's log level", _SERVE),
)
_BY_NAME = {v.name: v for v in ENV_VARS}


def env_var(name: str) -> EnvVar | None:
    """The registry entry of ``name``; ``CHT_NORTH_URL`` is described by ``CHT_URL``."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    match = re.fullmatch(
        r"CHT_[A-Z0-9_]+?_(URL|DB|USERNAME|PASSWORD|TIMEOUT|CA_BUNDLE|"
        r"VERIFY_TLS)",
        name,
    )
    return _BY_NAME.get(f"CHT_{match.group(1)}") if match else None


def bad_value(name: str, value: str | None, problem: str) -> ConfigError:
    """``NAME='value' <problem>: for example NAME=<good value>`` (a secret is not shown)."""
    known = env_var(name)
    shown = "" if value is None else (" (hidden)" if known and known.secret else f"={_show(value)}")
    example = f"; for example {name}={known.example}" if known else ""
    return ConfigError(f"{name}{shown} {problem}{example}")


def _show(value: str) -> str:
    """A value as a line can show it: a URL's userinfo masked (as ``secrets.MASK``), short."""
    text = re.sub(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/@\s]+@", r"\1****@", value.strip())
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_flag(value: str | None, default: bool, name: str = "") -> bool:
    """true/false, yes/no, on/off, 1/0; empty means ``default``."""
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    if name:
        raise bad_value(name, value, "must be true or false")
    raise ConfigError(f"expected true or false, got {value!r}")


def env_int(
    env: Mapping[str, str], name: str, default: int, low: int = 0, high: int = 10**9
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise bad_value(name, raw, "is not a whole number") from None
    if not low <= value <= high:
        raise bad_value(name, raw, f"must be from {low} to {high}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float | None, low: float = 0.0, high: float = 1e9
) -> float | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise bad_value(name, raw, "is not a number") from None
    if not (low <= value <= high) or math.isnan(value):
        raise bad_value(name, raw, f"must be from {low:g} to {high:g}")
    return value


def env_seconds(env: Mapping[str, str], name: str, default: float, *fallbacks: str) -> float:
    """A positive number of seconds; ``fallbacks`` are read when ``name`` is unset."""
    for candidate in (name, *fallbacks):
        if (env.get(candidate) or "").strip():
            value = env_float(env, candidate, default, 0.001, 86400.0)
            return default if value is None else value
    return default


def check_url(name: str, raw: str) -> str:
    """An http(s) URL with a host, without a trailing slash; one line naming ``name`` if not."""
    value = raw.strip().rstrip("/")
    if not value.lower().startswith(("http://", "https://")):
        raise bad_value(name, raw, "must start with http:// or https://")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise bad_value(name, raw, "has a port that is not a number") from None
    if not parts.hostname or any(c.isspace() for c in value):
        raise bad_value(name, raw, "is not a URL (no host, or spaces in it)")
    if parts.query or parts.fragment:
        raise bad_value(name, raw, "must not have a ?query or #fragment")
    return value


def check_timezone(name: str, raw: str) -> str:
    """An IANA time zone; a bare city (``Nairobi``) is refused naming the zone it is in."""
    value = raw.strip() or "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        city = value.replace(" ", "_").lower()
        matches = sorted(z for z in available_timezones() if z.lower().endswith("/" + city))
        hint = f" (did you mean {' or '.join(matches[:3])}?)" if matches else ""
        raise bad_value(name, raw, f"is not an IANA time zone{hint}") from None
    return value


def env_directory(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    return check_directory(name, raw) if raw else None


def check_directory(name: str, raw: str) -> str:
    """A directory the mediator may write in: there already, or one it can create."""
    path = os.path.abspath(raw)
    if os.path.exists(path) and not os.path.isdir(path):
        raise bad_value(name, raw, "is a file, not a directory")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise bad_value(name, raw, f"cannot be written: {existing} is not a writable directory")
    return raw


def env_choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> Any:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise bad_value(name, env.get(name), f"must be {' or '.join(allowed)}")
    return raw
