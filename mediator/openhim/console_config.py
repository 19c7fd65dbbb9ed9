"""OpenHIM console config (configDefs) ↔ RuntimeConfig.

Precedence, lowest to highest, applied per run:

1. file defaults: ``config`` in ``mediator-config.json``;
2. console config: the last good config OpenHIM delivered by heartbeat;
3. environment: a variable that is set and non-empty pins its parameter.

The environment wins because it is what the deployment controls (secrets from
a vault, URLs per environment): an operator who wants to edit a parameter in
the console leaves its variable unset. A console value hidden by the
environment is logged and listed as ``pinned_by_environment`` on ``/health``.
An empty string (or empty list/map) in the console means "not set here".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mediator.model.values import is_uid, utcnow
from mediator.settings.config import RuntimeConfig
from mediator.settings.secrets import warn_weak_secrets
from mediator.settings.variables import ConfigError, parse_flag

log = logging.getLogger(__name__)

CONFIG_FILE_ENV = "MEDIATOR_CONFIG_FILE"
ROUTE_HOST_ENV = "MEDIATOR_ROUTE_HOST"
ROUTE_PORT_ENV = "MEDIATOR_ROUTE_PORT"

# configDef param -> environment variable that carries the same setting.
PARAM_ENV: dict[str, str] = {
    "chtUrl": "CHT_URL",
    "chtDb": "CHT_DB",
    "chtUsername": "CHT_USERNAME",
    "chtPassword": "CHT_PASSWORD",
    "dhis2Url": "DHIS2_URL",
    "dhis2Username": "DHIS2_USERNAME",
    "dhis2Password": "DHIS2_PASSWORD",
    "dhis2Token": "DHIS2_TOKEN",
    "dataSets": "MEDIATOR_DATA_SETS",
    "valueChoices": "MEDIATOR_VALUE_CHOICES",
    "dryRun": "MEDIATOR_DRY_RUN",
    "timezone": "MEDIATOR_TIMEZONE",
    "asyncMode": "MEDIATOR_ASYNC",
    "chunkSize": "DHIS2_CHUNK_SIZE",
    "lookbackPeriods": "MEDIATOR_LOOKBACK_PERIODS",
    "coverageThreshold": "MEDIATOR_COVERAGE_THRESHOLD",
    "completeDataSets": "MEDIATOR_COMPLETE_DATA_SETS",
}
ENV_PARAM = {env: param for param, env in PARAM_ENV.items()}

VALUE_CHOICES = ("total", "pass", "percent")
_TARGET_ID = re.compile(r"^[^,=\s]+$")


def _candidate_files() -> list[Path]:
    package = Path(__file__).resolve().parents[1]  # mediator/
    return [package.parent / "mediator-config.json", package / "mediator-config.json"]


def load_registration(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The registration document for ``POST /mediators``.

    ``MEDIATOR_ROUTE_HOST``/``MEDIATOR_ROUTE_PORT`` replace the host and port
    of the endpoints and of the default channels' routes, because the name
    under which OpenHIM core reaches the mediator depends on the deployment.
    """
    env = os.environ if env is None else env
    chosen = Path(path) if path else None
    if chosen is None and env.get(CONFIG_FILE_ENV, "").strip():
        chosen = Path(env[CONFIG_FILE_ENV].strip())
    if chosen is None:
        chosen = next((p for p in _candidate_files() if p.is_file()), _candidate_files()[0])
    try:
        doc: dict[str, Any] = json.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the mediator config file {chosen}: {exc}") from None
    host = env.get(ROUTE_HOST_ENV, "").strip()
    port = env.get(ROUTE_PORT_ENV, "").strip()
    if port and not port.isdigit():
        raise ConfigError(f"{ROUTE_PORT_ENV} must be a port number, got {port!r}")
    routes: list[dict[str, Any]] = list(doc.get("endpoints", []))
    for channel in doc.get("defaultChannelConfig", []):
        routes.extend(channel.get("routes", []))
    for route in routes:
        if host:
            route["host"] = host
        if port:
            route["port"] = port if isinstance(route.get("port"), str) else int(port)
    return doc


def fingerprint(registration: Mapping[str, Any]) -> str:
    """A hash of everything core only picks up on a version bump."""
    subject = {
        key: registration.get(key)
        for key in ("configDefs", "config", "endpoints", "defaultChannelConfig")
    }
    canonical = json.dumps(subject, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- validation (core's validateConfig rules, plus our own meaning checks) ---


def _check_type(def_: Mapping[str, Any], value: Any) -> str | None:
    kind = def_.get("type")
    if kind in ("string", "bigstring", "password"):
        return None if isinstance(value, str) else "must be a string"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "option":
        return None if value in def_.get("values", []) else f"must be one of {def_.get('values')}"
    if kind == "map":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        return None if ok else "must be a map of strings"
    if kind == "struct":
        if not isinstance(value, dict):
            return "must be an object"
        allowed = {t.get("param") for t in def_.get("template", [])}
        extra = sorted(set(value) - allowed)
        return f"has unknown fields {extra}" if extra else None
    return None


def _check_meaning(param: str, value: Any) -> str | None:
    """What core does not check but a run would trip over."""
    if param in ("chtUrl", "dhis2Url") and value and not value.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    if param == "dataSets":
        bad = [v for v in value if not is_uid(v)]
        return f"has ids that are not DHIS2 uids: {bad}" if bad else None
    if param == "valueChoices":
        wrong = {
            k: v for k, v in value.items() if v not in VALUE_CHOICES or not _TARGET_ID.match(k)
        }
        return f"needs target id -> total|pass|percent, got {wrong}" if wrong else None
    if param == "timezone" and value:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return f"{value!r} is not an IANA time zone"
    if param == "chunkSize" and not (1 <= value <= 100_000 and float(value).is_integer()):
        return "must be a whole number between 1 and 100000"
    if param == "lookbackPeriods" and not (0 <= value <= 24 and float(value).is_integer()):
        return "must be a whole number between 0 and 24"
    if param == "coverageThreshold" and str(value).strip():
        try:
            threshold = float(value)
        except ValueError:
            return f"must be a percentage from 0 to 100, got {value!r}"
        if not 0 <= threshold <= 100:
            return f"must be a percentage from 0 to 100, got {value!r}"
    return None


@dataclass
class Validation:
    config: dict[str, Any]
    unknown: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def validate_config(config: Any, defs: list[Mapping[str, Any]]) -> Validation:
    """Check a console config against our configDefs.

    Unknown parameters (left by another version of the mediator) are dropped;
    ill-typed ones are ``problems`` and make the whole config unusable, since a
    half-applied config (new URL, old password) is worse than the last good one.
    """
    if not isinstance(config, dict):
        return Validation(
            {}, problems=[f"config must be a JSON object, got {type(config).__name__}"]
        )
    by_param = {d["param"]: d for d in defs}
    result = Validation({})
    for param, value in config.items():
        def_ = by_param.get(param)
        if def_ is None:
            result.unknown.append(param)
            continue
        values = value if def_.get("array") else [value]
        if def_.get("array") and not isinstance(value, list):
            result.problems.append(f"{param} must be a list")
            continue
        errors = [e for e in (_check_type(def_, v) for v in values) if e]
        if not errors:
            meaning = _check_meaning(param, value)
            errors = [meaning] if meaning else []
        if errors:
            result.problems.append(f"{param} {errors[0]}")
        else:
            result.config[param] = value
    return result


class ConsoleConfig:
    """The last good config from the OpenHIM console; read at the start of each run."""

    def __init__(self, defs: list[Mapping[str, Any]]) -> None:
        self._defs = defs
        self._lock = threading.Lock()
        self._config: dict[str, Any] = {}
        self.received_at: datetime | None = None
        self._last_complaint: str | None = None

    def current(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._config)

    def apply(self, raw: Any) -> bool:
        """Replace the config if it is valid; otherwise warn once and keep the old one."""
        checked = validate_config(raw, self._defs)
        if checked.problems:
            complaint = "; ".join(checked.problems)
            if complaint != self._last_complaint:
                log.warning(
                    "OpenHIM console config rejected, keeping the last good config: %s", complaint
                )
                self._last_complaint = complaint
            return False
        if checked.unknown:
            log.warning(
                "OpenHIM console config has parameters this version does not know, ignored: %s",
                ", ".join(sorted(checked.unknown)),
            )
        with self._lock:
            changed = checked.config != self._config
            self._config = checked.config
            self.received_at = utcnow()
        self._last_complaint = None
        if changed:
            log.info(
                "OpenHIM console config applied (parameters: %s); it takes effect on the next run",
                ", ".join(sorted(checked.config)) or "none",
            )
            warn_weak_secrets({}, checked.config)
        return True


# --- resolution ---


def _as_env(param: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if param == "dataSets":
        return ",".join(value)
    if param == "valueChoices":
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_set(value: Any) -> bool:
    return not (value is None or value == "" or value == [] or value == {})


@dataclass
class Effective:
    """The configuration for one run, and where it came from."""

    runtime: RuntimeConfig
    async_mode: bool
    pinned_by_environment: list[str]
    sources: dict[str, str]


def merged_environment(
    env: Mapping[str, str],
    console: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Layer file defaults < console < environment into one env-style mapping."""
    merged: dict[str, str] = {}
    sources: dict[str, str] = {}
    pinned: list[str] = []
    for param, var in PARAM_ENV.items():
        if _is_set(defaults.get(param)):
            merged[var] = _as_env(param, defaults[param])
            sources[param] = "file"
        if _is_set(console.get(param)):
            merged[var] = _as_env(param, console[param])
            sources[param] = "console"
    for var, value in env.items():
        if var in ENV_PARAM and not value.strip():
            continue  # empty means unset: do not hide the console's value
        if var in ENV_PARAM:
            param = ENV_PARAM[var]
            if sources.get(param) == "console" and _as_env(param, console[param]) != value:
                pinned.append(param)
            sources[param] = "environment"
        merged[var] = value
    return merged, sources, sorted(pinned)


def resolve(
    env: Mapping[str, str] | None,
    console: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> Effective:
    """Build the RuntimeConfig for the next run. Raises ConfigError naming the
    variable and console parameter when something required is missing."""
    env = os.environ if env is None else env
    merged, sources, pinned = merged_environment(env, console, defaults)
    try:
        runtime = RuntimeConfig.from_env(merged)
    except (ConfigError, ValueError) as exc:
        message = str(exc)
        for var, param in ENV_PARAM.items():
            if var in message and param not in message:
                message = message.replace(var, f"{var} (console: {param})", 1)
        raise ConfigError(message) from None
    try:
        ZoneInfo(runtime.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"MEDIATOR_TIMEZONE (console: timezone) {runtime.timezone!r} is not an IANA time zone"
        ) from None
    async_mode = parse_flag(merged.get("MEDIATOR_ASYNC"), False, "MEDIATOR_ASYNC")
    return Effective(runtime, async_mode, pinned, sources)
