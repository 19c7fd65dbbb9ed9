"""mediator-config.json against core's rules, the version guard, and config precedence."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mediator.openhim.console_config import (
    PARAM_ENV,
    ConsoleConfig,
    fingerprint,
    load_registration,
    resolve,
    validate_config,
)
from mediator.service.app import PUSH_PATH
from mediator.settings.variables import ConfigError

# Core ignores a registration whose version is not newer (reference §1), so a
# change to configDefs, config, endpoints or channels must come with a version
# bump. When this test fails: bump "version" in mediator-config.json and add
# the new version with the hash printed by the failure.
RECORDED = {
    "0.1.0": "ec2abc1a37bcbc2333495954b69d48abc2f673354254d0ad1036e49e1f80ea3e",
    "0.2.0": "ef2b3aa95c9b1c3c2db90924113d4eaba1a4bc9d0270103c64742b2f922f4107",
}
SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
BASE_ENV = {
    "CHT_URL": "https://cht.example.org",
    "DHIS2_URL": "https://dhis2.example.org",
    "DHIS2_TOKEN": "d2pat_example_token",
}


@pytest.fixture
def registration() -> dict[str, Any]:
    return load_registration(env={})


def _version(text: str) -> tuple[int, int, int]:
    match = SEMVER.match(text)
    assert match, f"{text!r} is not semver x.y.z"
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def test_config_changes_come_with_a_version_bump(registration: dict[str, Any]) -> None:
    version = registration["version"]
    _version(version)
    assert version in RECORDED, (
        f"version {version} is not recorded: add {version!r}: {fingerprint(registration)!r}"
    )
    assert fingerprint(registration) == RECORDED[version], (
        "configDefs/config/endpoints/defaultChannelConfig changed without a version bump: "
        f"bump the version and record its hash {fingerprint(registration)!r}"
    )
    assert _version(version) == max(_version(v) for v in RECORDED), "versions only go up"


def core_validate(config: dict[str, Any], defs: list[dict[str, Any]]) -> list[str]:
    """Core's validateConfigDef + validateConfig (reference §1), written out independently."""
    errors: list[str] = []
    types = {"string", "bool", "number", "option", "bigstring", "map", "struct", "password"}
    for d in defs:
        if d["type"] not in types:
            errors.append(f"bad type {d['type']}")
        if d["type"] == "struct" and not d.get("template"):
            errors.append(f"struct {d['param']} without template")
        if d["type"] == "option" and not d.get("values"):
            errors.append(f"option {d['param']} without values")
    by_param = {d["param"]: d for d in defs}
    for key, value in config.items():
        d = by_param.get(key)
        if d is None:
            errors.append(f"No config definition found for parameter {key}")
            continue
        values = value if d.get("array") else [value]
        if d.get("array") and not isinstance(value, list):
            errors.append(f"{key} not an array")
            continue
        for v in values:
            ok = {
                "string": isinstance(v, str),
                "bigstring": isinstance(v, str),
                "password": isinstance(v, str),
                "number": isinstance(v, int | float) and not isinstance(v, bool),
                "bool": isinstance(v, bool),
                "map": isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
            }.get(d["type"], True)
            if not ok:
                errors.append(f"{key} has the wrong type")
    return errors


def test_registration_passes_cores_validation(registration: dict[str, Any]) -> None:
    assert registration["urn"].startswith("urn:")
    assert registration["name"] and registration["endpoints"]
    assert core_validate(registration["config"], registration["configDefs"]) == []
    assert validate_config(registration["config"], registration["configDefs"]).problems == []


def test_every_console_parameter_maps_to_an_environment_variable(
    registration: dict[str, Any],
) -> None:
    params = {d["param"] for d in registration["configDefs"]}
    assert params == set(PARAM_ENV)
    passwords = {d["param"] for d in registration["configDefs"] if d["type"] == "password"}
    assert passwords == {"chtPassword", "dhis2Password", "dhis2Token"}


def test_channels_call_the_push_endpoint(registration: dict[str, Any]) -> None:
    assert [e["path"] for e in registration["endpoints"]] == [PUSH_PATH]
    channels = {c["type"]: c for c in registration["defaultChannelConfig"]}
    polling, manual = channels["polling"], channels["http"]
    assert polling["pollingSchedule"] == "0 2 3 * *"
    assert "methods" not in polling  # core refuses methods on non-http channels
    assert manual["methods"] == ["GET", "POST"] and manual["allow"]
    assert polling["urlPattern"] != manual["urlPattern"]
    for channel in (polling, manual):
        assert channel["timeout"] == 3_600_000  # core's maximum; a national run is long
        assert channel["requestBody"] is True and channel["responseBody"] is True
        primaries = [r for r in channel["routes"] if r.get("primary")]
        assert len(primaries) == 1 and primaries[0]["path"] == PUSH_PATH


def test_route_host_and_port_follow_the_deployment() -> None:
    doc = load_registration(env={"MEDIATOR_ROUTE_HOST": "mediator", "MEDIATOR_ROUTE_PORT": "8080"})
    routes = doc["endpoints"] + [r for c in doc["defaultChannelConfig"] for r in c["routes"]]
    assert {r["host"] for r in routes} == {"mediator"}
    assert {str(r["port"]) for r in routes} == {"8080"}


def test_console_overrides_file_defaults(registration: dict[str, Any]) -> None:
    console = {"chunkSize": 250, "dataSets": ["ABCdef12345"], "timezone": "Africa/Nairobi"}
    effective = resolve(BASE_ENV, console, registration["config"])
    assert effective.runtime.dhis2 is not None
    assert effective.runtime.dhis2.chunk_size == 250
    assert effective.runtime.data_sets == ["ABCdef12345"]
    assert effective.runtime.timezone == "Africa/Nairobi"
    assert effective.sources["chunkSize"] == "console"


def test_environment_pins_what_it_sets_and_reports_it(registration: dict[str, Any]) -> None:
    env = {**BASE_ENV, "DHIS2_URL": "https://pinned.example.org", "MEDIATOR_DRY_RUN": "true"}
    console = {"dhis2Url": "https://console.example.org", "dryRun": False}
    effective = resolve(env, console, registration["config"])
    assert effective.runtime.dhis2 is not None
    assert effective.runtime.dhis2.url == "https://pinned.example.org"
    assert effective.runtime.dry_run is True
    assert effective.pinned_by_environment == ["dhis2Url", "dryRun"]


def test_empty_environment_variable_does_not_hide_the_console(
    registration: dict[str, Any],
) -> None:
    env = {**BASE_ENV, "MEDIATOR_DATA_SETS": "", "MEDIATOR_ASYNC": ""}
    effective = resolve(
        env, {"dataSets": ["ABCdef12345"], "asyncMode": True}, registration["config"]
    )
    assert effective.runtime.data_sets == ["ABCdef12345"]
    assert effective.async_mode is True


def test_empty_console_strings_mean_not_set(registration: dict[str, Any]) -> None:
    effective = resolve(BASE_ENV, {"chtUrl": "", "chtDb": ""}, registration["config"])
    assert effective.runtime.cht.url == "https://cht.example.org"
    assert effective.runtime.cht.db == "medic"


def test_console_can_supply_everything_the_environment_lacks(
    registration: dict[str, Any],
) -> None:
    console = {
        "chtUrl": "https://cht.console.org",
        "chtUsername": "reader",
        "chtPassword": "cht-pw-from-console",
        "dhis2Url": "https://dhis2.console.org/api",
        "dhis2Username": "admin",
        "dhis2Password": "district",
        "valueChoices": {"births-this-month": "pass", "anc-visits": "percent"},
    }
    runtime = resolve({}, console, registration["config"]).runtime
    assert runtime.cht.url == "https://cht.console.org"
    assert runtime.cht.password is not None
    assert runtime.cht.password.get_secret_value() == "cht-pw-from-console"
    assert runtime.dhis2 is not None and runtime.dhis2.url == "https://dhis2.console.org"
    assert runtime.value_choices == {"births-this-month": "pass", "anc-visits": "percent"}


def test_missing_required_setting_names_variable_and_console_param(
    registration: dict[str, Any],
) -> None:
    with pytest.raises(ConfigError, match=r"CHT_URL \(console: chtUrl\)"):
        resolve({"DHIS2_URL": "https://d.org", "DHIS2_TOKEN": "t"}, {}, registration["config"])


def test_bad_time_zone_is_a_config_error(registration: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="IANA"):
        resolve({**BASE_ENV, "MEDIATOR_TIMEZONE": "Mars/Olympus"}, {}, registration["config"])


@pytest.mark.parametrize(
    "config",
    [
        {"dataSets": "ABCdef12345"},  # not an array
        {"dataSets": ["not a uid"]},
        {"valueChoices": {"births": "median"}},
        {"valueChoices": {"births": 3}},
        {"dryRun": "yes"},
        {"chunkSize": 0},
        {"chunkSize": 10.5},
        {"timezone": "Nowhere/Town"},
        {"chtUrl": "cht.example.org"},
        ["not", "an", "object"],
    ],
)
def test_ill_typed_console_config_is_refused(config: Any, registration: dict[str, Any]) -> None:
    holder = ConsoleConfig(registration["configDefs"])
    assert holder.apply({"dryRun": True})
    assert holder.apply(config) is False
    assert holder.current() == {"dryRun": True}


def test_console_can_set_lookback_coverage_threshold_and_completeness() -> None:
    registration = load_registration(env={})
    defs = registration["configDefs"]
    console = {
        **registration["config"],
        "lookbackPeriods": 5,
        "coverageThreshold": "80",
        "completeDataSets": True,
    }
    assert validate_config(console, defs).problems == []
    effective = resolve(BASE_ENV, console, registration["config"])
    assert effective.runtime.lookback_periods == 5
    assert effective.runtime.coverage_threshold == 80
    assert effective.runtime.complete_data_sets is True
    bad = validate_config({**console, "coverageThreshold": "120", "lookbackPeriods": 99}, defs)
    assert len(bad.problems) == 2
