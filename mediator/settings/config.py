"""Configuration from the environment.

The variable names are a public contract (operators and scripts use them): every one
is in ``ENV_VARS``, with an example of a good value and what it means; ``--help`` of
each command lists the ones it reads. A bad value is refused before anything runs,
in one line that names the variable, says what is wrong with the value and gives an
example (``bad_value``): never a traceback, never pydantic's text. Secrets are
``SecretStr`` so that no repr, log line or report can show them, and a refusal never
echoes one.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)

ValueChoice = Literal["total", "pass", "percent"]


class ConfigError(ValueError):
    """Configuration that cannot work: one line naming the variable, what is wrong with
    its value, and an example of a good one (``ENV_VARS``)."""


@dataclass(frozen=True)
class EnvVar:
    """One environment variable the mediator reads: the public contract."""

    name: str
    example: str  # a good value, shown in --help and in every refusal of a bad one
    meaning: str
    commands: tuple[str, ...] = ("preview", "push", "serve")
    secret: bool = False  # never echoed back


_PUSH, _SERVE = ("push", "serve"), ("serve",)
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
    EnvVar("DHIS2_CHUNK_SIZE", "500", "data values per POST (1-100000, default 500)", _PUSH),
    EnvVar("DHIS2_MAX_ATTEMPTS", "5", "tries per DHIS2 request (1-20, default 5)", _PUSH),
    EnvVar(
        "DHIS2_MAX_RETRY_SECONDS",
        "120",
        "seconds of retries per request before the run stops (default 120)",
        _PUSH,
    ),
    EnvVar("DHIS2_ASYNC_IMPORT", "false", "import as a DHIS2 job (true/false)", _PUSH),
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
    EnvVar("MEDIATOR_COMPLETE_DATA_SETS", "false", "register completeness (true/false)", _PUSH),
    EnvVar("MEDIATOR_DRY_RUN", "false", "DHIS2 validates, stores nothing (true/false)", _PUSH),
    EnvVar(
        "MEDIATOR_CONCURRENT_RUNS",
        "wait",
        "wait or refuse when another run pushes the same data set and period",
        _PUSH,
    ),
    EnvVar(
        "MEDIATOR_LOCK_DIR",
        "/var/lib/cht-dhis2/locks",
        "where runs take turns (default: the system temp directory)",
        _PUSH,
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


def _int(env: Mapping[str, str], name: str, default: int, low: int = 0, high: int = 10**9) -> int:
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


def _float(
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


def _seconds(env: Mapping[str, str], name: str, default: float, *fallbacks: str) -> float:
    """A positive number of seconds; ``fallbacks`` are read when ``name`` is unset."""
    for candidate in (name, *fallbacks):
        if (env.get(candidate) or "").strip():
            value = _float(env, candidate, default, 0.001, 86400.0)
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


def _tls(env: Mapping[str, str], prefix: str) -> bool | str:
    """``<PREFIX>_CA_BUNDLE`` (a path) wins; ``<PREFIX>_VERIFY_TLS=false`` turns checks off."""
    bundle = env.get(f"{prefix}_CA_BUNDLE", "").strip()
    if bundle:
        if not os.path.isfile(bundle):
            raise bad_value(f"{prefix}_CA_BUNDLE", bundle, "is not a file")
        return bundle
    verify = parse_flag(env.get(f"{prefix}_VERIFY_TLS"), True, f"{prefix}_VERIFY_TLS")
    if not verify:
        log.warning(
            "TLS certificate verification is OFF for %s (%s_VERIFY_TLS=false)", prefix, prefix
        )
    return verify


class ChtSettings(BaseModel):
    url: str
    db: str = "medic"
    username: str | None = None
    password: SecretStr | None = None
    verify: bool | str = True
    timeout: float = 60.0
    page_size: int = Field(default=1000, ge=1, le=100_000)
    owner_batch: int = Field(default=500, ge=1, le=10_000)
    cache: bool = True  # keep contacts between runs, checked by the changes feed (cht_cache)

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"CHT_URL must start with http:// or https://, got {value!r}")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, prefix: str = "CHT") -> ChtSettings:
        """``CHT_URL``…; a named source of several reads ``CHT_<NAME>_URL``…"""
        env = os.environ if env is None else env
        name = f"{prefix}_URL"
        raw = env.get(name, "").strip()
        if not raw:
            raise ConfigError(
                f"{name} is not set: give the CHT instance's address, as users open it; "
                f"for example {name}=https://cht.example.org"
            )
        db = env.get(f"{prefix}_DB", "").strip() or "medic"
        if "/" in db or any(c.isspace() for c in db):
            raise bad_value(f"{prefix}_DB", db, "must be a database name, not a path")
        url = _without_db(name, check_url(name, raw), db)
        username = env.get(f"{prefix}_USERNAME") or None
        password = env.get(f"{prefix}_PASSWORD") or None
        if bool(username) != bool(password):
            raise ConfigError(
                f"set both {prefix}_USERNAME and {prefix}_PASSWORD (the mediator's online "
                "CHT user), or neither"
            )
        return _model(
            cls,
            url=url,
            db=db,
            username=username,
            password=SecretStr(password) if password else None,
            verify=_tls(env, prefix),
            timeout=_seconds(env, f"{prefix}_TIMEOUT", 60.0, "CHT_TIMEOUT"),
            page_size=_int(env, "CHT_PAGE_SIZE", 1000, 1, 100_000),
            owner_batch=_int(env, "CHT_OWNER_BATCH", 500, 1, 10_000),
            cache=parse_flag(env.get("CHT_CACHE"), True, "CHT_CACHE"),
        )


def _without_db(name: str, url: str, db: str) -> str:
    """``https://cht.example.org/medic`` is understood as the instance's address and the
    database: the mediator adds ``/{CHT_DB}`` itself, so the URL loses it (said once)."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").rsplit("/", 1)[-1] != db:
        return url
    base = url[: -len(db)].rstrip("/")
    log.warning(
        "%s ends with /%s, the database: using %s as the CHT instance's address "
        "(set %s without /%s; the database is CHT_DB, default medic)",
        name,
        db,
        base,
        name,
        db,
    )
    return base


def _model(cls: type[_M], **values: Any) -> _M:
    """The settings model; a value its own rules refuse is one line, never pydantic's text
    (every variable is checked before this, so this is the last line of defence)."""
    try:
        return cls(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or cls.__name__
        raise ConfigError(f"{cls.__name__} {where}: {error['msg']}") from None


class ChtSource(BaseModel):
    """One CHT instance of several (one per region in large countries)."""

    name: str
    settings: ChtSettings


class Dhis2Settings(BaseModel):
    url: str
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    verify: bool | str = True
    timeout: float = 120.0
    chunk_size: int = Field(default=500, ge=1, le=100_000)
    max_attempts: int = Field(default=5, ge=1, le=20)
    max_retry_seconds: float = 120.0
    async_import: bool = False

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value.endswith("/api"):
            value = value[: -len("/api")]
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"DHIS2_URL must start with http:// or https://, got {value!r}")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Dhis2Settings:
        env = os.environ if env is None else env
        raw = env.get("DHIS2_URL", "").strip()
        if not raw:
            raise ConfigError(
                "DHIS2_URL is not set: give DHIS2's base URL; for example "
                "DHIS2_URL=https://dhis2.example.org"
            )
        url = check_url("DHIS2_URL", raw)
        if "/dhis-web-" in url:
            raise bad_value("DHIS2_URL", raw, "is a DHIS2 app's page, not DHIS2's base URL")
        token = env.get("DHIS2_TOKEN") or None
        username = env.get("DHIS2_USERNAME") or None
        password = env.get("DHIS2_PASSWORD") or None
        if not token and not (username and password):
            raise ConfigError(
                "set DHIS2_TOKEN, or both DHIS2_USERNAME and DHIS2_PASSWORD (the DHIS2 "
                "integration user)"
            )
        return _model(
            cls,
            url=url,
            username=username,
            password=SecretStr(password) if password else None,
            token=SecretStr(token) if token else None,
            verify=_tls(env, "DHIS2"),
            timeout=_seconds(env, "DHIS2_TIMEOUT", 120.0),
            chunk_size=_int(env, "DHIS2_CHUNK_SIZE", 500, 1, 100_000),
            max_attempts=_int(env, "DHIS2_MAX_ATTEMPTS", 5, 1, 20),
            max_retry_seconds=_float(env, "DHIS2_MAX_RETRY_SECONDS", 120.0, 0.0, 86400.0),
            async_import=parse_flag(env.get("DHIS2_ASYNC_IMPORT"), False, "DHIS2_ASYNC_IMPORT"),
        )


class OpenhimSettings(BaseModel):
    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    auth: Literal["basic", "token"] = "basic"
    verify: bool | str = True
    register_on_start: bool = True
    heartbeat_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpenhimSettings:
        env = os.environ if env is None else env
        raw = (env.get("OPENHIM_URL") or "").strip()
        url = check_url("OPENHIM_URL", raw) if raw else None
        password = env.get("OPENHIM_PASSWORD")
        bundle = env.get("OPENHIM_CA_BUNDLE", "").strip()
        verify: bool | str
        if bundle:
            if not os.path.isfile(bundle):
                raise bad_value("OPENHIM_CA_BUNDLE", bundle, "is not a file")
            verify = bundle
        elif parse_flag(env.get("OPENHIM_TRUST_SELF_SIGNED"), False, "OPENHIM_TRUST_SELF_SIGNED"):
            log.warning(
                "TLS certificate verification is OFF for OpenHIM (OPENHIM_TRUST_SELF_SIGNED)"
            )
            verify = False
        else:
            verify = True
        auth = _choice(env, "OPENHIM_AUTH", ("basic", "token"), "basic")
        return _model(
            cls,
            url=url,
            username=env.get("OPENHIM_USERNAME") or None,
            password=SecretStr(password) if password else None,
            auth=auth,
            verify=verify,
            register_on_start=parse_flag(
                env.get("OPENHIM_REGISTER"), url is not None, "OPENHIM_REGISTER"
            ),
            heartbeat_seconds=_float(env, "OPENHIM_HEARTBEAT_SECONDS", 10.0, 0.01, 3600.0),
        )


class MediatorSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5011
    timezone: str = "UTC"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MediatorSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("MEDIATOR_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "MEDIATOR_PORT", 5011, 0, 65535),
            timezone=check_timezone("MEDIATOR_TIMEZONE", env.get("MEDIATOR_TIMEZONE", "")),
        )


class RuntimeConfig(BaseModel):
    """Everything one run needs. Built per run (env, then console config on top),
    so a change an operator saves in the OpenHIM console applies to the next run."""

    cht: ChtSettings
    dhis2: Dhis2Settings | None = None
    data_sets: list[str] = Field(default_factory=list)  # empty: all in dhis_data_sets
    value_choices: dict[str, ValueChoice] = Field(default_factory=dict)  # target id -> value
    dry_run: bool = False
    timezone: str = "UTC"
    extra_sources: list[ChtSource] = Field(default_factory=list)  # more CHT instances
    lookback_periods: int = Field(default=2, ge=0, le=24)  # scheduled runs redo these too
    coverage_threshold: float | None = Field(default=None, ge=0, le=100)  # % to push an org unit
    complete_data_sets: bool = False  # register completeness after accepted values
    concurrent_runs: Literal["wait", "refuse"] = "wait"
    lock_dir: str | None = None
    state_dir: str | None = None  # MEDIATOR_STATE_DIR: run history and the CHT contact cache

    def sources(self) -> list[ChtSource]:
        """Every CHT instance, the primary one (CHT_URL) first."""
        return [ChtSource(name="cht", settings=self.cht), *self.extra_sources]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, need_dhis2: bool = True
    ) -> RuntimeConfig:
        """Every variable checked; the first mistake is a ConfigError of one line."""
        env = os.environ if env is None else env
        data_sets = [s.strip() for s in env.get("MEDIATOR_DATA_SETS", "").split(",") if s.strip()]
        bad = next((ds for ds in data_sets if not _UID.fullmatch(ds)), None)
        if bad is not None:
            raise bad_value(
                "MEDIATOR_DATA_SETS", env["MEDIATOR_DATA_SETS"], f"names {bad!r}, not a DHIS2 id"
            )
        return _model(
            cls,
            cht=ChtSettings.from_env(env),
            dhis2=Dhis2Settings.from_env(env) if need_dhis2 else None,
            data_sets=data_sets,
            value_choices=_value_choices(env),
            dry_run=parse_flag(env.get("MEDIATOR_DRY_RUN"), False, "MEDIATOR_DRY_RUN"),
            timezone=check_timezone("MEDIATOR_TIMEZONE", env.get("MEDIATOR_TIMEZONE", "")),
            extra_sources=extra_sources(env),
            lookback_periods=_int(env, "MEDIATOR_LOOKBACK_PERIODS", 2, 0, 24),
            coverage_threshold=_float(env, "MEDIATOR_COVERAGE_THRESHOLD", None, 0.0, 100.0),
            complete_data_sets=parse_flag(
                env.get("MEDIATOR_COMPLETE_DATA_SETS"), False, "MEDIATOR_COMPLETE_DATA_SETS"
            ),
            concurrent_runs=_choice(env, "MEDIATOR_CONCURRENT_RUNS", ("wait", "refuse"), "wait"),
            lock_dir=_directory(env, "MEDIATOR_LOCK_DIR"),
            state_dir=_directory(env, "MEDIATOR_STATE_DIR"),
        )


_UID = re.compile(r"[A-Za-z][A-Za-z0-9]{10}")  # as models.is_uid


def _value_choices(env: Mapping[str, str]) -> dict[str, ValueChoice]:
    choices: dict[str, ValueChoice] = {}
    for item in env.get("MEDIATOR_VALUE_CHOICES", "").split(","):
        if not item.strip():
            continue
        target, _, choice = item.partition("=")
        choice = choice.strip()
        if choice not in ("total", "pass", "percent") or not target.strip():
            raise bad_value(
                "MEDIATOR_VALUE_CHOICES", item, "must be <target id>=total, pass or percent"
            )
        choices[target.strip()] = choice  # type: ignore[assignment]
    return choices


def extra_sources(env: Mapping[str, str]) -> list[ChtSource]:
    """``MEDIATOR_CHT_SOURCES=north,south`` adds ``CHT_NORTH_URL``, ``CHT_SOUTH_URL``… to
    the primary ``CHT_URL`` instance."""
    names = [n.strip() for n in env.get("MEDIATOR_CHT_SOURCES", "").split(",") if n.strip()]
    sources = []
    for name in dict.fromkeys(names):
        if not name.replace("_", "").isalnum():
            raise bad_value("MEDIATOR_CHT_SOURCES", name, "must be letters, digits or _")
        sources.append(
            ChtSource(name=name.lower(), settings=ChtSettings.from_env(env, f"CHT_{name.upper()}"))
        )
    return sources


def _directory(env: Mapping[str, str], name: str) -> str | None:
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


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> Any:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise bad_value(name, env.get(name), f"must be {' or '.join(allowed)}")
    return raw
