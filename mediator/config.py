"""Configuration from the environment.

The variable names are a public contract (operators and scripts use them):
CHT_URL, CHT_DB, CHT_USERNAME, CHT_PASSWORD; DHIS2_URL, DHIS2_USERNAME,
DHIS2_PASSWORD or DHIS2_TOKEN; OPENHIM_URL, OPENHIM_USERNAME, OPENHIM_PASSWORD,
OPENHIM_TRUST_SELF_SIGNED; MEDIATOR_HOST, MEDIATOR_PORT.
Secrets are ``SecretStr`` so that no repr, log line or report can show them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

log = logging.getLogger(__name__)

ValueChoice = Literal["total", "pass", "percent"]


class ConfigError(ValueError):
    """Configuration that cannot work; the message names the variable."""


def parse_flag(value: str | None, default: bool, name: str = "") -> bool:
    """true/false, yes/no, on/off, 1/0; empty means ``default``."""
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    prefix = f"{name}: " if name else ""
    raise ConfigError(f"{prefix}expected true or false, got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _tls(env: Mapping[str, str], prefix: str) -> bool | str:
    """``<PREFIX>_CA_BUNDLE`` (a path) wins; ``<PREFIX>_VERIFY_TLS=false`` turns checks off."""
    bundle = env.get(f"{prefix}_CA_BUNDLE", "").strip()
    if bundle:
        return bundle
    verify = parse_flag(env.get(f"{prefix}_VERIFY_TLS"), True)
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
        url = env.get(f"{prefix}_URL", "").strip()
        if not url:
            raise ConfigError(f"{prefix}_URL is not set: give the base URL of the CHT instance")
        password = env.get(f"{prefix}_PASSWORD")
        try:
            return cls(
                url=url,
                db=env.get(f"{prefix}_DB", "").strip() or "medic",
                username=env.get(f"{prefix}_USERNAME") or None,
                password=SecretStr(password) if password else None,
                verify=_tls(env, prefix),
                timeout=float(env.get(f"{prefix}_TIMEOUT", env.get("CHT_TIMEOUT", "60"))),
                page_size=_int(env, "CHT_PAGE_SIZE", 1000),
                owner_batch=_int(env, "CHT_OWNER_BATCH", 500),
                cache=parse_flag(env.get("CHT_CACHE"), True, "CHT_CACHE"),
            )
        except ValueError as exc:
            raise ConfigError(str(exc).replace("CHT_URL", f"{prefix}_URL")) from None


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
        url = env.get("DHIS2_URL", "").strip()
        if not url:
            raise ConfigError("DHIS2_URL is not set: give the base URL of the DHIS2 instance")
        token = env.get("DHIS2_TOKEN") or None
        username = env.get("DHIS2_USERNAME") or None
        password = env.get("DHIS2_PASSWORD") or None
        if not token and not (username and password):
            raise ConfigError("set DHIS2_TOKEN, or both DHIS2_USERNAME and DHIS2_PASSWORD")
        try:
            return cls(
                url=url,
                username=username,
                password=SecretStr(password) if password else None,
                token=SecretStr(token) if token else None,
                verify=_tls(env, "DHIS2"),
                timeout=float(env.get("DHIS2_TIMEOUT", "120")),
                chunk_size=_int(env, "DHIS2_CHUNK_SIZE", 500),
                max_attempts=_int(env, "DHIS2_MAX_ATTEMPTS", 5),
                max_retry_seconds=float(env.get("DHIS2_MAX_RETRY_SECONDS", "120")),
                async_import=parse_flag(env.get("DHIS2_ASYNC_IMPORT"), False),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


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
        url = (env.get("OPENHIM_URL") or "").strip().rstrip("/") or None
        password = env.get("OPENHIM_PASSWORD")
        bundle = env.get("OPENHIM_CA_BUNDLE", "").strip()
        verify: bool | str
        if bundle:
            verify = bundle
        elif parse_flag(env.get("OPENHIM_TRUST_SELF_SIGNED"), False):
            log.warning(
                "TLS certificate verification is OFF for OpenHIM (OPENHIM_TRUST_SELF_SIGNED)"
            )
            verify = False
        else:
            verify = True
        auth = (env.get("OPENHIM_AUTH") or "basic").strip().lower()
        if auth not in ("basic", "token"):
            raise ConfigError(f"OPENHIM_AUTH must be basic or token, got {auth!r}")
        return cls(
            url=url,
            username=env.get("OPENHIM_USERNAME") or None,
            password=SecretStr(password) if password else None,
            auth=auth,
            verify=verify,
            register_on_start=parse_flag(env.get("OPENHIM_REGISTER"), url is not None),
            heartbeat_seconds=float(env.get("OPENHIM_HEARTBEAT_SECONDS", "10")),
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
            port=_int(env, "MEDIATOR_PORT", 5011),
            timezone=env.get("MEDIATOR_TIMEZONE", "").strip() or "UTC",
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
        env = os.environ if env is None else env
        data_sets = [s.strip() for s in env.get("MEDIATOR_DATA_SETS", "").split(",") if s.strip()]
        choices: dict[str, ValueChoice] = {}
        for item in env.get("MEDIATOR_VALUE_CHOICES", "").split(","):
            if not item.strip():
                continue
            target, _, choice = item.partition("=")
            choice = choice.strip()
            if choice not in ("total", "pass", "percent"):
                raise ConfigError(
                    f"MEDIATOR_VALUE_CHOICES: {item!r} must be <target id>=total|pass|percent"
                )
            choices[target.strip()] = choice  # type: ignore[assignment]
        return cls(
            cht=ChtSettings.from_env(env),
            dhis2=Dhis2Settings.from_env(env) if need_dhis2 else None,
            data_sets=data_sets,
            value_choices=choices,
            dry_run=parse_flag(env.get("MEDIATOR_DRY_RUN"), False),
            timezone=env.get("MEDIATOR_TIMEZONE", "").strip() or "UTC",
            extra_sources=extra_sources(env),
            lookback_periods=_int(env, "MEDIATOR_LOOKBACK_PERIODS", 2),
            coverage_threshold=_float_or_none(env, "MEDIATOR_COVERAGE_THRESHOLD"),
            complete_data_sets=parse_flag(env.get("MEDIATOR_COMPLETE_DATA_SETS"), False),
            concurrent_runs=_choice(env, "MEDIATOR_CONCURRENT_RUNS", ("wait", "refuse"), "wait"),
            lock_dir=env.get("MEDIATOR_LOCK_DIR", "").strip() or None,
            state_dir=env.get("MEDIATOR_STATE_DIR", "").strip() or None,
        )


def extra_sources(env: Mapping[str, str]) -> list[ChtSource]:
    """``MEDIATOR_CHT_SOURCES=north,south`` adds ``CHT_NORTH_URL``, ``CHT_SOUTH_URL``… to
    the primary ``CHT_URL`` instance."""
    names = [n.strip() for n in env.get("MEDIATOR_CHT_SOURCES", "").split(",") if n.strip()]
    sources = []
    for name in dict.fromkeys(names):
        if not name.replace("_", "").isalnum():
            raise ConfigError(f"MEDIATOR_CHT_SOURCES: {name!r} must be letters, digits or _")
        sources.append(
            ChtSource(name=name.lower(), settings=ChtSettings.from_env(env, f"CHT_{name.upper()}"))
        )
    return sources


def _float_or_none(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> Any:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw
