"""The settings each part reads (CHT, DHIS2, OpenHIM, the run), made from the environment.

Each variable is read by the helpers of ``variables`` (one line naming it when its value
is bad). Secrets are ``SecretStr`` so that no repr, log line or report can show them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from mediator.model.values import ValueChoice

from .variables import (
    ConfigError,
    bad_value,
    check_timezone,
    check_url,
    env_choice,
    env_directory,
    env_float,
    env_int,
    env_seconds,
    parse_flag,
)

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)


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
            timeout=env_seconds(env, f"{prefix}_TIMEOUT", 60.0, "CHT_TIMEOUT"),
            page_size=env_int(env, "CHT_PAGE_SIZE", 1000, 1, 100_000),
            owner_batch=env_int(env, "CHT_OWNER_BATCH", 500, 1, 10_000),
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
            timeout=env_seconds(env, "DHIS2_TIMEOUT", 120.0),
            chunk_size=env_int(env, "DHIS2_CHUNK_SIZE", 500, 1, 100_000),
            max_attempts=env_int(env, "DHIS2_MAX_ATTEMPTS", 5, 1, 20),
            max_retry_seconds=env_float(env, "DHIS2_MAX_RETRY_SECONDS", 120.0, 0.0, 86400.0),
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
        auth = env_choice(env, "OPENHIM_AUTH", ("basic", "token"), "basic")
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
            heartbeat_seconds=env_float(env, "OPENHIM_HEARTBEAT_SECONDS", 10.0, 0.01, 3600.0),
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
            port=env_int(env, "MEDIATOR_PORT", 5011, 0, 65535),
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
            lookback_periods=env_int(env, "MEDIATOR_LOOKBACK_PERIODS", 2, 0, 24),
            coverage_threshold=env_float(env, "MEDIATOR_COVERAGE_THRESHOLD", None, 0.0, 100.0),
            complete_data_sets=parse_flag(
                env.get("MEDIATOR_COMPLETE_DATA_SETS"), False, "MEDIATOR_COMPLETE_DATA_SETS"
            ),
            concurrent_runs=env_choice(env, "MEDIATOR_CONCURRENT_RUNS", ("wait", "refuse"), "wait"),
            lock_dir=env_directory(env, "MEDIATOR_LOCK_DIR"),
            state_dir=env_directory(env, "MEDIATOR_STATE_DIR"),
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
