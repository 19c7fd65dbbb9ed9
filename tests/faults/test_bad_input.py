"""Bad input: every endpoint and command refuses it with a clear message and the
right status (400 inside the OpenHIM envelope over HTTP, exit status 2 on the
command line), never a 500 or a stack trace, and before anything reaches DHIS2:
ids are checked before they are placed in any URL.

The rules live in one place (``mediator/run_request.py``), so the command line and
the push endpoint refuse the same input, with the same limits and the same words
(each naming the parameter as its caller spells it: ``dataSet`` / ``--data-set``).

Properties of the period parser and the aggregation (hypothesis) are in
``tests/unit/test_engine_properties.py``; the one here covers the request parser as
a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.dhis2_standin import Dhis2StandIn
from devstack.net import ServerThread
from mediator.cli.commands import main
from mediator.run.request import LISTS, MAX_PERIODS, RunInputError, RunRequest
from mediator.service.app import create_app

from .helpers import PERIOD

ENVELOPE = "application/json+openhim"


@pytest.fixture(scope="module")
def env(couch, base_db) -> dict[str, str]:
    return {
        "CHT_URL": couch.url,
        "CHT_DB": base_db,
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "DHIS2_URL": "http://127.0.0.1:9",  # set per test to the stand-in
        "DHIS2_USERNAME": "admin",
        "DHIS2_PASSWORD": "district",
    }


@pytest.fixture(scope="module")
def dhis2() -> Iterator[Dhis2StandIn]:
    with Dhis2StandIn(version="2.41.1") as standin:
        yield standin


@pytest.fixture
def d2(dhis2: Dhis2StandIn) -> Dhis2StandIn:
    """One stand-in for the module; each test starts with an empty request log."""
    dhis2.store.clear()
    return dhis2


@pytest.fixture(scope="module")
def _server(env, dhis2) -> Iterator[str]:
    app = create_app(env={**env, "DHIS2_URL": dhis2.url})
    with ServerThread(app) as thread:
        yield thread.url


@pytest.fixture
def server(_server: str, d2: Dhis2StandIn) -> str:
    return _server


def refused(answer: requests.Response, status: int, says: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith(ENVELOPE)
    envelope = answer.json()
    assert envelope["status"] == "Failed"
    assert envelope["response"]["status"] == status
    error = json.loads(envelope["response"]["body"])["error"]
    assert says in error, error
    assert "Traceback" not in answer.text
    return envelope


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"period": "2024-13"}, "does not exist"),
        ({"period": "2024-00"}, "does not exist"),
        ({"period": "1969-12"}, "out of range"),
        ({"period": "24-01"}, "is not"),
        ({"period": "2024-1"}, "is not"),
        ({"period": "\u0662\u0660\u0662\u0664-01"}, "is not"),  # Arabic-Indic digits
        ({"period": "2024-01; DROP"}, "is not"),
        ({"period": "2" * 5000}, "characters long"),
        ({"period": [f"{2000 + i // 12}-{i % 12 + 1:02d}" for i in range(40)]}, "at most"),
        ({"dataSet": "../../api/me"}, "not a DHIS2 id"),
        ({"dataSet": "AbCdEf/hIj1"}, "not a DHIS2 id"),
        ({"orgUnit": "x/../../api"}, "not a DHIS2 id"),
        ({"orgUnit": "ImspTQPwCqd%0A"}, "not a DHIS2 id"),
        ({"orgUnit": ["ImspTQPwCqd", "O6uvpzGd5pu"]}, "give orgUnit once"),
        ({"dryRun": ["true", "false"]}, "give dryRun once"),
        ({"dryRun": "maybe"}, "dryRun must be true or false"),
        ({"dataSets": "VMuFODsyWaO"}, "unknown parameter"),
    ],
)
def test_bad_query_is_a_400_envelope_and_nothing_reaches_dhis2(server, d2, params, says):
    refused(requests.get(f"{server}/push", params=params, timeout=30), 400, says)
    assert d2.store.requests == []


def test_a_data_set_cht_does_not_define_is_a_400_that_lists_the_defined_ones(server, d2):
    answer = requests.get(
        f"{server}/push", params={"period": PERIOD, "dataSet": "AbCdEfGhIj1"}, timeout=30
    )
    refused(answer, 400, "is not defined")
    assert d2.store.posts("/api/dataValueSets") == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"period": ', "not valid JSON"),
        (b'["2024-01"]', "must be a JSON object"),
        (b'{"period": 202401}', "must be a string"),
        (b'{"dataSet": {"id": "VMuFODsyWaO"}}', "must be a string"),
        (b'{"dryRun": "sometimes"}', "dryRun must be true or false"),
        (b'{"orgUnit": 12}', "not a DHIS2 id"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_malformed_json_body_is_a_400_envelope(server, d2, body, says):
    answer = requests.post(
        f"{server}/push", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    refused(answer, 400, says)
    assert d2.store.requests == []


def test_an_oversized_body_is_a_413_envelope(server, d2):
    body = json.dumps({"period": PERIOD, "pad": "x" * 100_000})
    answer = requests.post(f"{server}/push", data=body, timeout=30)
    refused(answer, 413, "larger than 64 KiB")
    assert d2.store.requests == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_a_wrong_method_is_a_405_envelope_naming_the_allowed_ones(server, d2, method):
    answer = requests.request(method, f"{server}/push", timeout=30)
    refused(answer, 405, "use GET or POST")
    assert answer.headers["Allow"] == "GET, POST"
    assert d2.store.requests == []


def test_health_and_unknown_paths_answer_json_not_html(server):
    assert requests.post(f"{server}/health", timeout=5).status_code == 405
    answer = requests.get(f"{server}/nope", timeout=5)
    assert answer.status_code == 404
    assert "no such endpoint" in answer.json()["error"]


def test_from_after_to_on_the_push_endpoint_is_a_400(server, d2):
    answer = requests.get(f"{server}/push", params={"from": "2024-03", "to": "2024-01"}, timeout=30)
    refused(answer, 400, "is after")
    assert d2.store.requests == []


@given(
    st.dictionaries(
        st.sampled_from(["period", "from", "to", "dataSet", "orgUnit", "dryRun", "other"]),
        st.lists(st.text(max_size=30), min_size=1, max_size=3),
    )
)
@settings(max_examples=300, deadline=None)
def test_the_request_parser_accepts_or_refuses_with_one_line_never_anything_else(query):
    fields = {k: vs if k in LISTS else vs[0] for k, vs in query.items()}
    try:
        parsed = RunRequest.from_fields(fields)
    except RunInputError as exc:
        assert str(exc) and "\n" not in str(exc)
        assert "validation error" not in str(exc) and "pydantic" not in str(exc)
    else:
        assert len(parsed.periods) <= MAX_PERIODS
        assert all(len(ds) == 11 for ds in parsed.data_sets)
        assert parsed.org_unit is None or len(parsed.org_unit) == 11


# -- the command line: exit status 2 and one clear line on stderr ------------------


@pytest.fixture
def cli_env(env, d2, monkeypatch) -> None:
    for key, value in {**env, "DHIS2_URL": d2.url}.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--period", "2024-13"], "does not exist"),
        (["--period", "2024-1"], "'2024-1'"),
        (["--period", PERIOD, "--data-set", "../../api/me"], "not a DHIS2 id"),
        (["--period", PERIOD, "--org-unit", "ImspTQ\nPwCqd"], "not a DHIS2 id"),
        (["--period", PERIOD, "--data-set", "AbCdEfGhIj1"], "is not defined"),
        (["--from", "2024-03", "--to", "2024-01"], "is after"),
        (["--from", "2024-03"], "together"),
        (["--period", PERIOD, "--from", "2024-01", "--to", "2024-02"], "not both"),
        (["--period", PERIOD, "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_command_line_exits_2_with_a_clear_line_and_pushes_nothing(
    cli_env, d2, capsys, args, says
):
    capsys.readouterr()
    try:
        code = main(["push", *args])
    except SystemExit as exc:  # argparse refuses malformed arguments itself
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    assert d2.store.posts("/api/dataValueSets") == []


def test_missing_configuration_exits_2_naming_the_variable(cli_env, monkeypatch, capsys):
    monkeypatch.delenv("CHT_URL")
    capsys.readouterr()
    assert main(["push", "--period", PERIOD]) == 2
    assert "CHT_URL is not set" in capsys.readouterr().err


# -- one set of rules: the command line and the push endpoint, same limits, same words --

MONTHS_37 = [f"{2020 + i // 12}-{i % 12 + 1:02d}" for i in range(37)]
DATA_SETS_51 = [f"Ds{i:09d}" for i in range(51)]

# (query parameters, command line arguments, what both say)
RULES = [
    ({"period": ""}, ["--period", ""], "is empty: omit {period} for the scheduled periods"),
    ({"period": " , "}, ["--period", " , "], "is empty: omit {period}"),
    ({"dataSet": ""}, ["--data-set", ""], "is empty: omit {dataSet} for the data sets"),
    ({"orgUnit": ""}, ["--org-unit", ""], "is empty: omit {orgUnit} for every org unit"),
    (
        {"from": "", "to": "2024-01"},
        ["--from", "", "--to", "2024-01"],
        "{from} is empty: give a month (YYYY-MM), or omit {from} and {to}",
    ),
    ({"period": "2024-13"}, ["--period", "2024-13"], "month 13 does not exist"),
    ({"period": "2024W05"}, ["--period", "2024W05"], "is not a DHIS2 period"),
    ({"period": MONTHS_37}, [a for m in MONTHS_37 for a in ("--period", m)], "at most 36 periods"),
    (
        {"from": "2020-01", "to": "2023-10"},
        ["--from", "2020-01", "--to", "2023-10"],
        "a backfill covers at most 36 months; 2020-01..2023-10 is 46",
    ),
    (
        {"dataSet": DATA_SETS_51},
        [a for d in DATA_SETS_51 for a in ("--data-set", d)],
        "at most 50 data sets per request, got 51",
    ),
    (
        {"dataSet": "../../api/me"},
        ["--data-set", "../../api/me"],
        "{dataSet} '../../api/me' is not",
    ),
    ({"orgUnit": "x/../../api"}, ["--org-unit", "x/../../api"], "{orgUnit} 'x/../../api' is not"),
    ({"from": "2024-03", "to": "2024-01"}, ["--from", "2024-03", "--to", "2024-01"], "is after"),
    ({"from": "2024-03"}, ["--from", "2024-03"], "give {from} and {to} together"),
    (
        {"period": PERIOD, "from": "2024-01", "to": "2024-02"},
        ["--period", PERIOD, "--from", "2024-01", "--to", "2024-02"],
        "give either {period} or {from}/{to}, not both",
    ),
    ({"period": "2" * 5000}, ["--period", "2" * 5000], "5000 characters long"),
]
HTTP = {p: p for p in ("period", "from", "to", "dataSet", "orgUnit")}
CLI = {"period": "--period", "from": "--from", "to": "--to"}
CLI |= {"dataSet": "--data-set", "orgUnit": "--org-unit"}


def one_clear_line(text: str) -> None:
    assert "\n" not in text.strip()
    assert "Traceback" not in text and "validation error" not in text
    assert "pydantic" not in text


@pytest.mark.parametrize(("params", "args", "says"), RULES)
def test_the_push_endpoint_refuses_with_the_rule(server, d2, params, args, says):
    envelope = refused(
        requests.get(f"{server}/push", params=params, timeout=30), 400, says.format_map(HTTP)
    )
    one_clear_line(envelope["properties"]["error"])
    assert d2.store.requests == []


@pytest.mark.parametrize(("params", "args", "says"), RULES)
def test_the_command_line_refuses_with_the_same_rule(cli_env, d2, capsys, params, args, says):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:  # as argparse ends on bad arguments
        main(["push", *args])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert says.format_map(CLI) in lines[0]
    one_clear_line(lines[0])
    assert d2.store.requests == []


def test_a_json_body_follows_the_same_rules(server, d2):
    for body, says in [
        ({"period": ""}, "period is empty"),
        ({"period": []}, "period is empty"),
        ({"dataSet": []}, "dataSet is empty"),
        ({"period": MONTHS_37}, "at most 36 periods"),
        ({"from": "2020-01", "to": "2023-10"}, "at most 36 months"),
        ({"dryRun": ""}, "dryRun is empty: omit dryRun for the configured default"),
    ]:
        refused(requests.post(f"{server}/push", json=body, timeout=30), 400, says)
    assert d2.store.requests == []


# -- a typo in each configuration variable: one line naming it, nothing sent -----------------

# (variable, a mistaken value, what the one line says about it)
TYPOS = [
    ("CHT_URL", "cht.example.org", "must start with http:// or https://"),
    ("CHT_URL", "http://cht.example.org:80a", "port that is not a number"),
    ("CHT_DB", "medic/_all_docs", "must be a database name"),
    ("CHT_PASSWORD", "", "set both CHT_USERNAME and CHT_PASSWORD"),
    ("CHT_USERNAME", "", "set both CHT_USERNAME and CHT_PASSWORD"),
    ("CHT_TIMEOUT", "6o", "is not a number"),
    ("CHT_PAGE_SIZE", "1,000", "is not a whole number"),
    ("CHT_OWNER_BATCH", "0", "must be from 1 to 10000"),
    ("CHT_CACHE", "ture", "must be true or false"),
    ("CHT_CA_BUNDLE", "/etc/ssl/no-such-ca.pem", "is not a file"),
    ("CHT_VERIFY_TLS", "nope", "must be true or false"),
    ("DHIS2_URL", "dhis2.example.org", "must start with http:// or https://"),
    ("DHIS2_URL", "https://dhis2.example.org/dhis-web-dashboard", "not DHIS2's base URL"),
    ("DHIS2_USERNAME", "", "set DHIS2_TOKEN, or both DHIS2_USERNAME and DHIS2_PASSWORD"),
    ("DHIS2_PASSWORD", "", "set DHIS2_TOKEN, or both DHIS2_USERNAME and DHIS2_PASSWORD"),
    ("DHIS2_TIMEOUT", "2m", "is not a number"),
    ("DHIS2_CHUNK_SIZE", "500 values", "is not a whole number"),
    ("DHIS2_MAX_ATTEMPTS", "50", "must be from 1 to 20"),
    ("DHIS2_MAX_RETRY_SECONDS", "-1", "must be from 0 to 86400"),
    ("DHIS2_ASYNC_IMPORT", "si", "must be true or false"),
    ("DHIS2_CA_BUNDLE", "/etc/ssl/no-such-dhis2.pem", "is not a file"),
    ("DHIS2_VERIFY_TLS", "0k", "must be true or false"),
    ("MEDIATOR_TIMEZONE", "Nairobi", "is not an IANA time zone (did you mean Africa/Nairobi?)"),
    ("MEDIATOR_TIMEZONE", "EAT+3", "is not an IANA time zone"),
    ("MEDIATOR_LOOKBACK_PERIODS", "two", "is not a whole number"),
    ("MEDIATOR_DATA_SETS", "VMuFODsyWaO;QX4ZTUbOt3a", "not a DHIS2 id"),
    ("MEDIATOR_VALUE_CHOICES", "births-this-month=sum", "must be <target id>=total, pass"),
    ("MEDIATOR_CHT_SOURCES", "north-1", "must be letters, digits or _"),
    ("MEDIATOR_COVERAGE_THRESHOLD", "80%", "is not a number"),
    ("MEDIATOR_COMPLETE_DATA_SETS", "yes please", "must be true or false"),
    ("MEDIATOR_DRY_RUN", "dry", "must be true or false"),
    ("MEDIATOR_CONCURRENT_RUNS", "queue", "must be wait or refuse"),
    ("MEDIATOR_LOCK_DIR", "{file}", "is a file, not a directory"),
    ("MEDIATOR_STATE_DIR", "{file}/state", "cannot be written"),
]
# read by push, but a mistake in them shows only when CHT or DHIS2 answers (a wrong password
# is refused by the server, which the run reports; tests/integration/test_hrio_month.py)
KNOWN_ONLY_BY_THE_SERVER = {"DHIS2_TOKEN"}


def test_every_variable_push_reads_has_a_typo_case():
    from mediator.settings.variables import ENV_VARS

    read = {v.name for v in ENV_VARS if "push" in v.commands}
    assert read - {name for name, _, _ in TYPOS} == KNOWN_ONLY_BY_THE_SERVER


@pytest.mark.parametrize(("name", "value", "says"), TYPOS)
def test_a_typo_in_a_variable_is_one_line_naming_it(
    cli_env, d2, capsys, monkeypatch, tmp_path, name, value, says
):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.setenv(name, value.format(file=a_file))
    if name == "MEDIATOR_CHT_SOURCES":
        monkeypatch.setenv("CHT_NORTH_1_URL", "https://north.example.org")
    capsys.readouterr()
    assert main(["push", "--period", PERIOD]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "weak secret" not in line]
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("error: ") and says in line and name in line
    one_clear_line(line)
    assert "errors.pydantic.dev" not in line
    if value and name not in ("CHT_PASSWORD",):  # a good value to copy is given
        assert f"for example {name}=" in line or "set " in line
    assert d2.store.requests == []


def test_a_secret_in_a_bad_value_is_never_echoed(cli_env, d2, capsys, monkeypatch):
    monkeypatch.setenv("CHT_URL", "cht-reader:Hidden-Pa55w0rd@cht.example.org")
    capsys.readouterr()
    assert main(["push", "--period", PERIOD]) == 2
    err = capsys.readouterr().err
    assert "Hidden-Pa55w0rd" not in err and "CHT_URL" in err


def test_cht_url_with_the_database_is_understood(cli_env, d2, capsys, monkeypatch, env):
    """CHT_URL ending in /medic (as the demo once printed it) works, and says so once."""
    monkeypatch.setenv("CHT_URL", f"{env['CHT_URL']}/{env['CHT_DB']}")
    capsys.readouterr()
    assert main(["push", "--period", PERIOD, "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["status"] == "Successful"
    said = [line for line in out.err.splitlines() if "ends with" in line]
    assert said == [
        f"warning: CHT_URL ends with /{env['CHT_DB']}, the database: using {env['CHT_URL']} "
        f"as the CHT instance's address (set CHT_URL without /{env['CHT_DB']}; the database "
        "is CHT_DB, default medic)"
    ]


# -- audit: the same rules, one line and exit 2 or a 4xx, nothing posted ---------------------

GHOST_OU = "Zz9Unknown1"  # a well-formed DHIS2 id no CHT place carries
# (query parameters, command line arguments, what both say)
AUDIT_RULES = [
    ({"period": "2024-13"}, ["--period", "2024-13"], "month 13 does not exist"),
    ({"period": "24-01"}, ["--period", "24-01"], "is not"),
    ({"period": "2024W05"}, ["--period", "2024W05"], "is not a DHIS2 period"),
    ({"period": ""}, ["--period", ""], "is empty: omit {period}"),
    ({"period": MONTHS_37}, [a for m in MONTHS_37 for a in ("--period", m)], "at most 36 periods"),
    (
        {"from": "2020-01", "to": "2023-10"},
        ["--from", "2020-01", "--to", "2023-10"],
        "a backfill covers at most 36 months; 2020-01..2023-10 is 46",
    ),
    ({"from": "2024-03", "to": "2024-01"}, ["--from", "2024-03", "--to", "2024-01"], "is after"),
    ({"from": "2024-03"}, ["--from", "2024-03"], "give {from} and {to} together"),
    (
        {"period": PERIOD, "dataSet": "../../api/me"},
        ["--period", PERIOD, "--data-set", "../../api/me"],
        "{dataSet} '../../api/me' is not",
    ),
    (
        {"period": PERIOD, "dataSet": "AbCdEfGhIj1"},
        ["--period", PERIOD, "--data-set", "AbCdEfGhIj1"],
        "data set AbCdEfGhIj1 is not defined in CHT's dhis_data_sets",
    ),
    (
        {"period": PERIOD, "orgUnit": "x/../../api"},
        ["--period", PERIOD, "--org-unit", "x/../../api"],
        "{orgUnit} 'x/../../api' is not",
    ),
    (
        {"period": PERIOD, "orgUnit": GHOST_OU},
        ["--period", PERIOD, "--org-unit", GHOST_OU],
        f"org unit {GHOST_OU}: no CHT place carries it",
    ),
]


def test_every_variable_audit_reads_is_one_push_reads():
    from mediator.settings.variables import ENV_VARS

    # so the typo cases above, run through push, cover every variable audit reads
    assert {v.name for v in ENV_VARS if "audit" in v.commands} <= {
        v.name for v in ENV_VARS if "push" in v.commands
    }


@pytest.mark.parametrize(("params", "args", "says"), AUDIT_RULES)
def test_the_audit_command_refuses_bad_input_in_one_line_with_exit_2(
    cli_env, d2, capsys, params, args, says
):
    capsys.readouterr()
    try:
        code = main(["audit", *args])
    except SystemExit as exc:  # refused while parsing, as argparse ends
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert says.format_map(CLI) in lines[0]
    one_clear_line(lines[0])
    assert "Traceback" not in err
    assert d2.store.posts() == []


@pytest.mark.parametrize(
    "args", [["--period", PERIOD, "--dry-run"], ["--period", PERIOD, "--json", "--csv"]]
)
def test_audit_refuses_options_it_has_no_use_for(cli_env, d2, capsys, args):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["audit", *args])
    assert exit.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert d2.store.requests == []


@pytest.mark.parametrize(("params", "args", "says"), AUDIT_RULES)
def test_the_audit_endpoint_refuses_bad_input_with_a_400_and_one_line(
    server, d2, params, args, says
):
    answer = requests.get(f"{server}/audit", params=params, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert says.format_map(HTTP) in error
    one_clear_line(error)
    assert d2.store.posts() == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"period": PERIOD, "format": "xml"}, "format must be json or csv"),
        ({"period": PERIOD, "dryRun": "true"}, "dryRun has no meaning for /audit"),
        ({"period": PERIOD, "orgUnit": ["ImspTQPwCqd", "O6uvpzGd5pu"]}, "give orgUnit once"),
        ({"period": PERIOD, "dataSets": "VMuFODsyWaO"}, "unknown parameter"),
    ],
)
def test_the_audit_endpoint_refuses_what_it_has_no_use_for(server, d2, params, says):
    answer = requests.get(f"{server}/audit", params=params, timeout=30)
    assert answer.status_code == 400 and says in answer.json()["error"]
    assert d2.store.requests == []


def test_the_audit_endpoint_answers_get_only(server, d2):
    answer = requests.post(f"{server}/audit", params={"period": PERIOD}, timeout=30)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"
    assert "use GET" in answer.json()["error"]
