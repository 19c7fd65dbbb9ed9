"""Core's mediator/config validation rules (src/api/mediators.js), plus the few
mongoose schema checks a stand-in must not skip.

Messages are core's own strings so a mediator's error reporting can be tested
against them. Where mongoose would reject a document, `schema_errors` produces
`<Model> validation failed: <path>: <msg>, ...` in schema field order.
"""

from __future__ import annotations

import re
from typing import Any

from .jsfmt import js_to_string, js_typeof

MASK = "**********"
CONFIG_TYPES = ("string", "bool", "number", "option", "bigstring", "map", "struct", "password")


class ValidationError(Exception):
    """`err.name === 'ValidationError'`; `str()` is what `${err}` prints in JS."""

    def __str__(self) -> str:
        return f"ValidationError: {self.args[0]}"

    @property
    def message(self) -> str:
        return str(self.args[0])


# --- semver (node-semver `valid`, non-loose) -------------------------------------------------

_NUM = r"0|[1-9]\d*"
_PRE_ID = rf"(?:{_NUM}|\d*[a-zA-Z-][a-zA-Z0-9-]*)"
_SEMVER = re.compile(
    rf"^v?({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def semver_parse(version: Any) -> tuple[tuple[int, int, int], list[str]] | None:
    """`semver.valid` accepts a trimmed `x.y.z` with an optional leading `v`."""
    if not isinstance(version, str):
        return None
    match = _SEMVER.match(version.strip())
    if match is None:
        return None
    main = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    pre = match.group(4).split(".") if match.group(4) else []
    return main, pre


def semver_gt(a: str, b: str) -> bool:
    """`semver.gt(a, b)` including prerelease precedence."""
    pa, pb = semver_parse(a), semver_parse(b)
    if pa is None or pb is None:
        raise TypeError(f"Invalid Version: {b if pa else a}")
    if pa[0] != pb[0]:
        return pa[0] > pb[0]
    pre_a, pre_b = pa[1], pb[1]
    if not pre_a or not pre_b:
        return not pre_a and bool(pre_b)
    for x, y in zip(pre_a, pre_b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return int(x) > int(y)
        if x.isdigit() != y.isdigit():
            return not x.isdigit()
        return x > y
    return len(pre_a) > len(pre_b)


# --- configDefs ---------------------------------------------------------------------------------


def validate_config_def(d: dict[str, Any]) -> None:
    param = d.get("param")
    if d.get("type") == "struct" and not d.get("template"):
        raise ValidationError(f"Must specify a template for struct param '{param}'")
    if d.get("type") == "struct":
        for item in d["template"]:
            item = item if isinstance(item, dict) else {}
            if not item.get("param"):
                raise ValidationError(
                    f"Must specify field 'param' in template definition for param '{param}'"
                )
            if not item.get("type"):
                raise ValidationError(
                    f"Must specify field 'type' in template definition for param '{param}'"
                )
            if item.get("type") == "struct":
                raise ValidationError(
                    f"May not recursively specify 'struct' in template definitions "
                    f"(param '{param}')"
                )
            validate_config_def(item)
    elif d.get("type") == "option":
        values = d.get("values")
        if not isinstance(values, list):
            raise ValidationError(
                f"Expected field 'values' to be an array (option param '{param}')"
            )
        if len(values) == 0:
            raise ValidationError(f"Must specify a values array for option param '{param}'")


def validate_config_defs(defs: Any) -> None:
    for d in defs if isinstance(defs, list) else []:
        validate_config_def(d if isinstance(d, dict) else {})


def _js_keys(value: Any) -> list[str]:
    """`Object.keys` / `for..in` over a JSON value (strings and arrays yield indices)."""
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list | str):
        return [str(i) for i in range(len(value))]
    return []


def _validate_field(param: str, d: dict[str, Any], value: Any) -> None:
    kind = d.get("type")
    typeof = js_typeof(value)
    if kind == "string" and typeof != "string":
        raise ValidationError(f"Expected config param {param} to be a string.")
    if kind == "bigstring" and typeof != "string":
        raise ValidationError(f"Expected config param {param} to be a large string.")
    if kind == "number" and typeof != "number":
        raise ValidationError(f"Expected config param {param} to be a number.")
    if kind == "bool" and typeof != "boolean":
        raise ValidationError(f"Expected config param {param} to be a boolean.")
    if kind == "password" and typeof != "string":
        raise ValidationError(
            f"Expected config param {param} to be a string representing a password."
        )
    if kind == "option":
        values = d.get("values") or []
        if not any(type(v) is type(value) and v == value for v in values):
            raise ValidationError(
                f"Expected config param {param} to be one of {js_to_string(values)}"
            )
    if kind == "map":
        if typeof != "object":
            raise ValidationError(f"Expected config param {param} to be an object.")
        items = value.values() if isinstance(value, dict) else (value or [])
        if any(js_typeof(v) != "string" for v in items):
            raise ValidationError(f"Expected config param {param} to only contain string values.")
    if kind == "struct":
        if typeof != "object":
            raise ValidationError(f"Expected config param {param} to be an object.")
        allowed = [t.get("param") for t in d.get("template") or [] if isinstance(t, dict)]
        for key in _js_keys(value):
            if key not in allowed:
                raise ValidationError(
                    f"Field {key} is not defined in template definition for config param {param}."
                )
    # Unknown types: core only logs at debug level and accepts the value.


def validate_config(defs: list[dict[str, Any]], config: Any) -> None:
    """Every config key needs a def; arrays and per-type checks as core (nested struct
    field types are deliberately NOT checked, as in core)."""
    if config is None:
        raise ValidationError("Cannot convert undefined or null to object")
    for param in _js_keys(config):
        value = config[param] if isinstance(config, dict) else None
        matching = [d for d in defs if isinstance(d, dict) and d.get("param") == param]
        if not matching:
            raise ValidationError(f"No config definition found for parameter {param}")
        for d in matching:
            if d.get("array"):
                if not isinstance(value, list):
                    raise ValidationError(
                        f"Expected config param {param} to be an array of type {d.get('type')}"
                    )
                for i, item in enumerate(value):
                    _validate_field(f"{param}[{i}]", d, item)
            else:
                _validate_field(param, d, value)


def mask_passwords(defs: list[dict[str, Any]], config: Any) -> None:
    """In place, as core's `maskPasswords` (only truthy password values are masked)."""
    if not isinstance(config, dict):
        return
    for d in defs:
        param = d.get("param")
        if d.get("type") == "password" and config.get(param):
            if d.get("array") and isinstance(config[param], list):
                config[param] = [MASK for _ in config[param]]
            else:
                config[param] = MASK
        if d.get("type") == "struct" and config.get(param):
            mask_passwords(d.get("template") or [], config[param])


def restore_masked_passwords(defs: list[dict[str, Any]], masked: Any, stored: Any) -> None:
    """In place: a `**********` coming back from the console keeps the stored secret."""
    if not isinstance(masked, dict) or not isinstance(stored, dict):
        return
    for d in defs:
        param = d.get("param")
        if d.get("type") == "password" and masked.get(param) and stored.get(param):
            if d.get("array") and isinstance(masked[param], list):
                old = stored[param] if isinstance(stored[param], list) else []
                masked[param] = [
                    (old[i] if i < len(old) else None) if p == MASK else p
                    for i, p in enumerate(masked[param])
                ]
            elif masked[param] == MASK:
                masked[param] = stored[param]
        if d.get("type") == "struct" and masked.get(param) and stored.get(param):
            restore_masked_passwords(d.get("template") or [], masked[param], stored[param])


# --- mongoose schema checks ---------------------------------------------------------------------


def required_error(path: str) -> str:
    return f"{path}: Path `{path}` is required."


def enum_error(path: str, value: Any) -> str:
    return f"{path}: `{value}` is not a valid enum value for path `{path}`."


def route_errors(prefix: str, route: Any) -> list[str]:
    """RouteDef: name, host and port are required; port is a Number in 0..65536."""
    route = route if isinstance(route, dict) else {}
    errors = []
    if not route.get("name"):
        errors.append(required_error(f"{prefix}.name"))
    if not route.get("host"):
        errors.append(required_error(f"{prefix}.host"))
    port = route.get("port")
    if port is None or port == "":
        errors.append(required_error(f"{prefix}.port"))
    else:
        try:
            number = cast_port(port)
        except ValueError:
            errors.append(f'{prefix}.port: Cast to Number failed for value "{port}" at path "port"')
        else:
            if not 0 <= number <= 65536:
                errors.append(f"{prefix}.port: Path `port` ({number}) is out of range.")
    rtype = route.get("type", "http")
    if rtype not in ("http", "tcp", "mllp", "kafka"):
        errors.append(enum_error(f"{prefix}.type", rtype))
    return errors


def cast_port(port: Any) -> int:
    """Mongoose Number cast of a port (strings such as "8005" are accepted)."""
    if isinstance(port, bool):
        raise ValueError(port)
    if isinstance(port, int):
        return port
    if isinstance(port, float) and port.is_integer():
        return int(port)
    if isinstance(port, str) and re.fullmatch(r"\s*\d+\s*", port):
        return int(port)
    raise ValueError(port)


def mediator_schema_errors(body: dict[str, Any]) -> list[str]:
    errors = []
    if not body.get("name"):
        errors.append(required_error("name"))
    for i, route in enumerate(body.get("endpoints") or []):
        errors.extend(route_errors(f"endpoints.{i}", route))
    for i, d in enumerate(body.get("configDefs") or []):
        kind = d.get("type") if isinstance(d, dict) else None
        if kind is not None and kind not in CONFIG_TYPES:
            errors.append(enum_error(f"configDefs.{i}.type", kind))
    return errors


def raise_schema(model: str, errors: list[str]) -> None:
    if errors:
        raise ValidationError(f"{model} validation failed: {', '.join(errors)}")
