"""The DHIS2 client over mocked HTTP (``responses``): auth, retries, recording,
preflight through the API, exact push, chunking and row mapping of rejections."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from pydantic import SecretStr

from mediator.dhis2.answers import parse_version
from mediator.dhis2.client import Dhis2Client
from mediator.http.errors import CredentialsRefused, PeerError
from mediator.model.report import RunReport
from mediator.model.values import DataValue, Exchange
from mediator.run.diagnoses import diagnose
from mediator.run.push import preflight, push
from mediator.settings.config import Dhis2Settings

EXAMPLES = Path(__file__).parent / "dhis2_examples"
BASE = "https://dhis2.example.org"
DS = "pBOMPrpg1QX"
MEASLES, DYSENTERY, CHOLERA = "f7n9E0hX8qk", "Ix2HsbDMLea", "eY5ehpbEsB7"
OU, OU2 = "DiszpKrYNg8", "Rp268JB6Ne4"
DEFAULT = "HllvX50cXC0"
PERIOD = "202410"
INFO = f"{BASE}/api/system/info"
ME = f"{BASE}/api/me"
STRICT = f"{BASE}/api/systemSettings/keyDataImportStrictOrganisationUnits"
LOCKS = f"{BASE}/api/lockExceptions"
META = f"{BASE}/api/dataSets/{DS}"
DVS = f"{BASE}/api/dataValueSets"
PASSWORD = "s3cret-Pa55"  # noqa: S105 - a test credential
TOKEN = "d2pat_5xVA12xyUbWNedQxy4ohH77WlxRGVvZZ1151814092"  # noqa: S105


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def settings(**changes: Any) -> Dhis2Settings:
    base: dict[str, Any] = {
        "url": BASE,
        "username": "mediator",
        "password": SecretStr(PASSWORD),
        "max_attempts": 4,
        "max_retry_seconds": 60,
    }
    base.update(changes)
    return Dhis2Settings(**base)


class Harness:
    def __init__(self, mock: responses.RequestsMock, **changes: Any) -> None:
        self.mock = mock
        self.exchanges: list[Exchange] = []
        self.sleeps: list[float] = []
        self.client = Dhis2Client(
            settings(**changes), recorder=self.exchanges.append, sleep=self.sleeps.append
        )
        self.client.http.rng = random.Random(1)

    def calls(self, method: str, url: str) -> list[Any]:
        return [
            c
            for c in self.mock.calls
            if c.request.method == method and c.request.url.split("?")[0] == url
        ]

    def posted(self) -> list[list[dict[str, Any]]]:
        return [json.loads(c.request.body)["dataValues"] for c in self.calls("POST", DVS)]


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def serve_dhis2(
    mock: responses.RequestsMock,
    *,
    held: list[dict[str, Any]] | None = None,
    imports: list[tuple[int, Any]] | None = None,
    version: str = "2.41.1",
) -> None:
    info = example("constructed_get_system_info_nonsuperuser_241.json")
    info["version"] = version
    mock.get(INFO, json=info)
    serve_user(mock)
    mock.get(META, json=example("constructed_get_dataSet_with_fields.json"))
    mock.get(DVS, json={"dataSet": DS, "dataValues": held or []})
    for status, body in imports or [(200, example("constructed_241_200_success_first_post.json"))]:
        mock.post(DVS, status=status, json=body)


def serve_user(mock: responses.RequestsMock, authorities: list[str] | None = None) -> None:
    """What the preflight asks once per run: the user's authorities, the strict setting."""
    mock.get(ME, json={"username": "mediator", "authorities": authorities or ["F_DATAVALUE_ADD"]})
    mock.get(STRICT, json={"keyDataImportStrictOrganisationUnits": False})
    mock.get(LOCKS, json={"lockExceptions": []})


def held_value(de: str, value: str, ou: str = OU, coc: str = DEFAULT) -> dict[str, Any]:
    """One value as GET /api/dataValueSets exports it."""
    return {
        "dataElement": de,
        "period": PERIOD,
        "orgUnit": ou,
        "categoryOptionCombo": coc,
        "attributeOptionCombo": DEFAULT,
        "value": value,
        "storedBy": "admin",
        "followup": False,
    }


def dv(de: str, value: float, ou: str = OU) -> DataValue:
    return DataValue(dataElement=de, orgUnit=ou, value=value)


def summary(imported: int = 0, updated: int = 0, ignored: int = 0, deleted: int = 0) -> Any:
    body = example("constructed_241_200_success_first_post.json")
    body["response"]["importCount"] = {
        "imported": imported,
        "updated": updated,
        "ignored": ignored,
        "deleted": deleted,
    }
    return body


# -- server info and auth -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("2.36.0", (2, 36, 0)),
        ("2.38.5", (2, 38, 5)),
        ("2.40.4.1", (2, 40, 4)),
        ("2.42-SNAPSHOT", (2, 42, 0)),
        ("2.39.0-rc1", (2, 39, 0)),
    ],
)
def test_versions_parse_without_suffixes(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


def test_system_info_is_read_once_with_version_and_server_date(
    mock: responses.RequestsMock,
) -> None:
    serve_dhis2(mock, version="2.40.3-SNAPSHOT")
    h = Harness(mock)
    info = h.client.system_info()
    h.client.system_info()
    assert info.version_tuple == (2, 40, 3)
    assert info.server_date is not None and info.server_date.isoformat() == "2024-11-15T10:00:00"
    assert len(h.calls("GET", INFO)) == 1
    assert h.exchanges[0].name == "DHIS2 system info" and h.exchanges[0].status == 200


def test_basic_credentials_are_sent_up_front_and_never_recorded(
    mock: responses.RequestsMock,
) -> None:
    serve_dhis2(mock)
    h = Harness(mock)
    push(h.client, DS, PERIOD, [dv(MEASLES, 3)])
    expected = "Basic " + base64.b64encode(f"mediator:{PASSWORD}".encode()).decode()
    assert all(c.request.headers["Authorization"] == expected for c in mock.calls)
    # info, user, strict setting, metadata, read, post
    assert len(h.exchanges) == len(mock.calls) == 6
    recorded = json.dumps([e.model_dump(mode="json") for e in h.exchanges])
    assert PASSWORD not in recorded
    assert expected.split(" ")[1] not in recorded
    assert h.exchanges[0].request_headers["Authorization"] == "Basic ****"


def test_api_token_goes_in_the_apitoken_header_and_is_never_recorded(
    mock: responses.RequestsMock,
) -> None:
    serve_dhis2(mock)
    h = Harness(mock, username=None, password=None, token=SecretStr(TOKEN))
    push(h.client, DS, PERIOD, [dv(MEASLES, 3)])
    assert all(c.request.headers["Authorization"] == f"ApiToken {TOKEN}" for c in mock.calls)
    recorded = json.dumps([e.model_dump(mode="json") for e in h.exchanges])
    assert TOKEN not in recorded and "ApiToken ****" in recorded


def test_a_redirect_to_the_login_page_is_an_auth_error_and_is_not_followed(
    mock: responses.RequestsMock,
) -> None:
    login = f"{BASE}/dhis-web-commons/security/login.action"
    mock.get(INFO, status=302, headers={"Location": login})
    mock.get(login, body="<html>login</html>")
    h = Harness(mock)
    with pytest.raises(CredentialsRefused, match="redirected to its login page"):
        h.client.system_info()
    assert len(mock.calls) == 1  # the login page was never requested
    with pytest.raises(CredentialsRefused):  # and the refused credentials are not tried again
        h.client.system_info()
    assert len(mock.calls) == 1


def test_a_fork_for_another_thread_knows_what_was_read_and_stops_with_the_client(
    mock: responses.RequestsMock,
) -> None:
    """``run.push`` reads the next batch on a fork while this one posts: the fork asks
    nothing already known, and refused credentials on either side are never sent again
    by the other (repeating them can lock the DHIS2 account)."""
    serve_dhis2(mock)
    h = Harness(mock)
    version = h.client.system_info().version
    fork = h.client.fork()
    assert fork.system_info().version == version
    assert len(mock.calls) == 1  # the fork did not ask again
    mock.replace(
        responses.GET, META, status=401, json=example("constructed_401_basic_bad_credentials.json")
    )
    with pytest.raises(CredentialsRefused):
        fork.data_set(DS)
    asked = len(mock.calls)
    with pytest.raises(CredentialsRefused):
        h.client.data_set(DS)  # the client stops too, without sending them again
    assert len(mock.calls) == asked and h.client.stopped is fork.stopped


@pytest.mark.parametrize(
    ("status", "name", "words"),
    [
        (401, "constructed_401_basic_bad_credentials.json", "refused the credentials"),
        (401, "constructed_401_apitoken_unknown.json", "The API token does not exists"),
        (400, "constructed_400_apitoken_bad_checksum_241plus.json", "Checksum validation failed"),
    ],
)
def test_refused_credentials_fail_the_push_without_retrying(
    mock: responses.RequestsMock, status: int, name: str, words: str
) -> None:
    mock.get(INFO, status=status, json=example(name))
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 3)])
    assert result.status == "error"
    assert result.error is not None and words in result.error
    assert PASSWORD not in result.error
    assert len(mock.calls) == 1 and h.sleeps == []


def test_a_403_on_import_reports_the_missing_authority(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, imports=[(403, example("constructed_403_missing_F_DATAVALUE_ADD.json"))])
    h = Harness(mock, chunk_size=1)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 3), dv(DYSENTERY, 4)])
    assert result.status == "error"
    assert result.error is not None and "Access is denied" in result.error
    assert len(h.calls("POST", DVS)) == 1  # the second chunk would fail the same way
    assert len(result.rejected) == 2 and result.delivered == 0


# -- retries --------------------------------------------------------------------------


def test_5xx_are_retried_with_growing_jittered_backoff(mock: responses.RequestsMock) -> None:
    for status in (500, 502, 503):
        mock.get(INFO, status=status, body="oops")
    mock.get(INFO, json={"version": "2.38.5", "serverDate": "2024-11-15T10:00:00.000"})
    h = Harness(mock)
    assert h.client.system_info().minor == 38
    assert len(mock.calls) == 4
    assert len(h.sleeps) == 3
    for attempt, slept in enumerate(h.sleeps, start=1):
        assert 0.5 * 2 ** (attempt - 1) <= slept <= 2 ** (attempt - 1)
    assert [e.name for e in h.exchanges] == [
        "DHIS2 system info",
        "DHIS2 system info (attempt 2)",
        "DHIS2 system info (attempt 3)",
        "DHIS2 system info (attempt 4)",
    ]


def test_429_honours_retry_after(mock: responses.RequestsMock) -> None:
    mock.get(INFO, status=429, headers={"Retry-After": "7"})
    mock.get(INFO, status=429, headers={"Retry-After": "3"})
    mock.get(INFO, json={"version": "2.42.0"})
    h = Harness(mock)
    h.client.system_info()
    assert h.sleeps == [7.0, 3.0]


def test_a_retry_after_beyond_the_budget_gives_up_at_once(mock: responses.RequestsMock) -> None:
    mock.get(INFO, status=429, headers={"Retry-After": "600"})
    h = Harness(mock, max_retry_seconds=60)
    with pytest.raises(PeerError, match="HTTP 429"):
        h.client.system_info()
    assert h.sleeps == [] and len(mock.calls) == 1


def test_attempts_are_bounded(mock: responses.RequestsMock) -> None:
    mock.get(INFO, status=503)
    h = Harness(mock, max_attempts=3)
    with pytest.raises(PeerError, match=r"HTTP 503 .* after 3 attempt"):
        h.client.system_info()
    assert len(mock.calls) == 3 and len(h.sleeps) == 2


def test_total_retry_time_is_bounded(mock: responses.RequestsMock) -> None:
    mock.get(INFO, status=502)
    h = Harness(mock, max_attempts=20, max_retry_seconds=10)
    with pytest.raises(PeerError):
        h.client.system_info()
    assert sum(h.sleeps) <= 10


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (requests.ConnectTimeout("connect timed out"), "timed out"),
        (requests.ReadTimeout("read timed out"), "timed out"),
        (requests.ConnectionError("Connection refused"), "is unreachable"),
    ],
)
def test_timeouts_and_refused_connections_are_retried_then_reported(
    mock: responses.RequestsMock, error: Exception, words: str
) -> None:
    mock.get(INFO, body=error)
    h = Harness(mock, max_attempts=3)
    with pytest.raises(PeerError, match=words) as caught:
        h.client.system_info()
    assert BASE in str(caught.value)
    assert len(mock.calls) == 3 and len(h.sleeps) == 2
    assert all(e.error and words in e.error for e in h.exchanges)


def test_a_timeout_then_success_is_transparent(mock: responses.RequestsMock) -> None:
    mock.get(INFO, body=requests.ReadTimeout("slow"))
    mock.get(INFO, json={"version": "2.36.0"})
    h = Harness(mock)
    assert h.client.system_info().minor == 36
    assert len(h.sleeps) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_other_4xx_are_never_retried(mock: responses.RequestsMock, status: int) -> None:
    mock.get(INFO, status=status, json={"httpStatusCode": status, "message": "no"})
    h = Harness(mock)
    with pytest.raises(PeerError, match=f"HTTP {status}"):
        h.client.system_info()
    assert len(mock.calls) == 1 and h.sleeps == []


def test_a_retried_post_delivers_once(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, imports=[(502, None), (200, summary(imported=1))])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 3)])
    assert result.status == "success"
    assert len(h.calls("POST", DVS)) == 2 and len(h.sleeps) == 1
    assert result.counts.imported == 1 and result.delivered == 1
    assert [e.name for e in h.exchanges if e.method == "POST"] == [
        "DHIS2 dataValueSets POST (chunk 1/1)",
        "DHIS2 dataValueSets POST (chunk 1/1) (attempt 2)",
    ]


# -- preflight through the API -------------------------------------------------------------


def test_preflight_reads_the_metadata_once_per_data_set(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock)
    h = Harness(mock)
    first = preflight(h.client, DS, PERIOD, [dv(MEASLES, 1)])
    second = preflight(h.client, DS, "202409", [dv(DYSENTERY, 1)])
    assert first.findings == []
    assert [f.code for f in second.findings] == ["period_expired"]  # ended 2024-09-30 + 30 days
    metadata = h.calls("GET", META)
    assert len(metadata) == 1
    fields = parse_qs(urlsplit(metadata[0].request.url).query)["fields"][0]
    assert "zeroIsSignificant" in fields and "organisationUnits[id]" in fields


def test_a_missing_data_set_is_a_finding_and_nothing_is_posted(
    mock: responses.RequestsMock,
) -> None:
    mock.get(INFO, json=example("constructed_get_system_info_nonsuperuser_241.json"))
    mock.get(
        f"{BASE}/api/dataSets/zzzzzzzzzzz",
        status=404,
        json=example("constructed_404_dataset_241.json"),
    )
    h = Harness(mock)
    result = push(h.client, "zzzzzzzzzzz", PERIOD, [dv(MEASLES, 1)])
    assert result.status == "error"
    assert [f.code for f in result.preflight] == ["data_set_not_found"]
    assert h.calls("POST", DVS) == [] and h.calls("GET", DVS) == []


def test_a_locked_period_is_predicted_and_posted_and_dhis2s_refusal_names_each_row(
    mock: responses.RequestsMock,
) -> None:
    """The preflight may warn, never block: DHIS2 decides, row by row (E7640)."""
    serve_dhis2(
        mock,
        imports=[
            (
                409,
                conflict_241(
                    0,
                    "E7640",
                    f"Current date is past expiry days for period: `202301`  and data set: `{DS}`",
                    period="202301",
                ),
            )
        ],
    )
    h = Harness(mock)
    result = push(h.client, DS, "202301", [dv(MEASLES, 1)])
    (predicted,) = [f for f in result.preflight if f.code == "period_expired"]
    assert predicted.level == "warning" and "will refuse the values at " + OU in predicted.message
    assert len(h.calls("POST", DVS)) == 1  # posted all the same
    assert [(r.orgUnit, r.errorCode) for r in result.rejected] == [(OU, "E7640")]
    assert result.status == "error" and result.delivered == 0


def test_a_user_who_may_edit_expired_data_is_not_told_the_period_is_locked(
    mock: responses.RequestsMock,
) -> None:
    info = example("constructed_get_system_info_nonsuperuser_241.json")
    mock.get(INFO, json=info)
    serve_user(mock, authorities=["F_DATAVALUE_ADD", "F_EDIT_EXPIRED"])
    mock.get(META, json=example("constructed_get_dataSet_with_fields.json"))
    h = Harness(mock)
    pre = preflight(h.client, DS, "202301", [dv(MEASLES, 1)])
    assert [f.code for f in pre.findings] == []
    assert h.calls("GET", LOCKS) == []  # exceptions only matter to users who lack it


def test_rows_refused_by_preflight_are_reported_and_the_rest_is_sent(
    mock: responses.RequestsMock,
) -> None:
    serve_dhis2(mock, imports=[(200, summary(imported=1))])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 2.5), dv(DYSENTERY, 4)])
    assert result.status == "warning"
    assert [(r.dataElement, r.value) for r in result.rejected] == [(MEASLES, "2.5")]
    assert h.posted() == [
        [{"dataElement": DYSENTERY, "period": PERIOD, "orgUnit": OU, "value": "4"}]
    ]
    assert result.delivered == 1


# -- exact push ---------------------------------------------------------------------------


def test_first_push_sends_values_as_strings_per_value_and_no_complete_date(
    mock: responses.RequestsMock,
) -> None:
    serve_dhis2(mock, imports=[(200, summary(imported=3))])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 12.0), dv(DYSENTERY, 2.5), dv(CHOLERA, 0)])
    post = h.calls("POST", DVS)[0].request
    body = json.loads(post.body)
    assert body == {
        "dataSet": DS,
        "dataValues": [
            {"dataElement": MEASLES, "period": PERIOD, "orgUnit": OU, "value": "12"},
            {"dataElement": DYSENTERY, "period": PERIOD, "orgUnit": OU, "value": "2.5"},
            {"dataElement": CHOLERA, "period": PERIOD, "orgUnit": OU, "value": "0"},
        ],
    }
    query = parse_qs(urlsplit(post.url).query)
    assert query["importStrategy"] == ["CREATE_AND_UPDATE"] and query["dryRun"] == ["false"]
    assert "async" not in query
    assert post.headers["Content-Type"] == "application/json"
    assert (result.status, result.values_sent, result.values_unchanged) == ("success", 3, 0)
    assert result.counts.imported == 3 and result.delivered == 3
    assert result.dhis2_version == "2.41.1"
    read = parse_qs(urlsplit(h.calls("GET", DVS)[0].request.url).query)
    assert read == {"dataSet": [DS], "period": [PERIOD], "orgUnit": [OU]}


def test_an_identical_second_push_sends_nothing(mock: responses.RequestsMock) -> None:
    held = [held_value(MEASLES, "12"), held_value(DYSENTERY, "2.50"), held_value(CHOLERA, "0")]
    serve_dhis2(mock, held=held)
    h = Harness(mock)
    rows = [dv(MEASLES, 12.0), dv(DYSENTERY, 2.5), dv(CHOLERA, 0), dv(MEASLES, 0, ou=OU2)]
    result = push(h.client, DS, PERIOD, rows)
    assert h.calls("POST", DVS) == []
    assert (result.values_sent, result.values_unchanged, result.values_cleared) == (0, 3, 0)
    assert result.values_zero == 1  # the zero at OU2, where DHIS2 holds nothing
    assert result.status == "success" and result.delivered == 4


def test_only_changed_values_are_sent_and_dropped_ones_are_cleared(
    mock: responses.RequestsMock,
) -> None:
    held = [
        held_value(MEASLES, "12"),  # unchanged
        held_value(DYSENTERY, "3"),  # now 0 on a zero-insignificant element → clear
        held_value(CHOLERA, "4"),  # changed; zero-significant so 0 is a value
        held_value(MEASLES, "9", ou=OU2),  # the engine no longer produces it → clear
        held_value(MEASLES, "1", ou="cDw53Ej8rju"),  # outside the scope → untouched
    ]
    serve_dhis2(mock, held=held, imports=[(200, summary(updated=1, deleted=2))])
    h = Harness(mock)
    rows = [dv(MEASLES, 12), dv(DYSENTERY, 0), dv(CHOLERA, 0)]
    result = push(h.client, DS, PERIOD, rows, scope_org_units=[OU2])
    assert h.posted() == [
        [
            {"dataElement": DYSENTERY, "period": PERIOD, "orgUnit": OU, "value": ""},
            {"dataElement": CHOLERA, "period": PERIOD, "orgUnit": OU, "value": "0"},
            {
                "dataElement": MEASLES,
                "period": PERIOD,
                "orgUnit": OU2,
                "categoryOptionCombo": DEFAULT,
                "attributeOptionCombo": DEFAULT,
                "value": "",
            },
        ]
    ]
    assert (result.values_sent, result.values_unchanged, result.values_cleared) == (3, 1, 2)
    assert result.status == "success"
    assert result.delivered == 3  # MEASLES unchanged + DYSENTERY cleared + CHOLERA updated
    read = parse_qs(urlsplit(h.calls("GET", DVS)[0].request.url).query)
    assert read["orgUnit"] == [OU, OU2]


def test_values_of_elements_the_engine_does_not_map_are_never_touched(
    mock: responses.RequestsMock,
) -> None:
    """Somebody typed Cholera in DHIS2; the engine maps only Measles."""
    serve_dhis2(mock, held=[held_value(CHOLERA, "7"), held_value(MEASLES, "2")])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 2)])
    assert h.calls("POST", DVS) == []
    assert result.values_sent == 0 and result.values_unchanged == 1


def test_mapped_rows_let_a_vanished_org_unit_be_cleared(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, held=[held_value(MEASLES, "5", ou=OU2)], imports=[(200, summary(deleted=1))])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [], scope_org_units=[OU2], mapped=[(MEASLES, None, None)])
    assert [v["value"] for v in h.posted()[0]] == [""]
    assert result.values_cleared == 1 and result.status == "success"


def test_a_zero_where_dhis2_holds_nothing_sends_nothing(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock)
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 0), dv(DYSENTERY, 0.0)])
    assert h.calls("POST", DVS) == []
    # not "unchanged": zeros DHIS2 keeps as no value, already right
    assert result.values_zero == 2 and result.values_unchanged == 0
    assert result.status == "success" and result.delivered == 2


def test_reads_are_batched_to_keep_urls_short(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, imports=[(200, summary(imported=120))])
    h = Harness(mock, chunk_size=1000)
    units = [f"ou{n:09d}" for n in range(120)]
    push(h.client, DS, PERIOD, [dv(MEASLES, 1, ou=u) for u in units])
    reads = h.calls("GET", DVS)
    sizes = [len(parse_qs(urlsplit(c.request.url).query)["orgUnit"]) for c in reads]
    assert sizes == [50, 50, 20]
    assert max(len(c.request.url) for c in reads) < 2000
    assert [
        e.name for e in h.exchanges if e.path == "/api/dataValueSets" and e.method == "GET"
    ] == [
        "DHIS2 dataValueSets GET (batch 1/3)",
        "DHIS2 dataValueSets GET (batch 2/3)",
        "DHIS2 dataValueSets GET (batch 3/3)",
    ]


def test_a_read_refused_for_a_batch_falls_back_to_single_org_units(
    mock: responses.RequestsMock,
) -> None:
    mock.get(INFO, json=example("constructed_get_system_info_nonsuperuser_241.json"))
    serve_user(mock)
    mock.get(META, json=example("constructed_get_dataSet_with_fields.json"))

    def read(request: Any) -> tuple[int, dict[str, str], str]:
        units = parse_qs(urlsplit(request.url).query)["orgUnit"]
        if "bbbbbbbbbbb" in units:
            return 409, {}, json.dumps({"httpStatusCode": 409, "message": "not readable"})
        return 200, {}, json.dumps({"dataValues": [held_value(MEASLES, "4")]})

    mock.add_callback(responses.GET, DVS, callback=read)
    mock.post(DVS, json=summary(imported=1))
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 4), dv(MEASLES, 4, ou="bbbbbbbbbbb")])
    assert len(h.calls("GET", DVS)) == 3
    assert result.values_unchanged == 1 and result.values_sent == 1
    assert "existing_values_unreadable" in [f.code for f in result.preflight]


# -- chunks and rejections ------------------------------------------------------------------


def conflict_241(index: int, code: str, message: str, **objects: str) -> dict[str, Any]:
    body = example("constructed_241_409_warning_conflicts.json")
    body["response"]["importCount"] = {"imported": 1, "updated": 0, "ignored": 1, "deleted": 0}
    body["response"]["rejectedIndexes"] = [index]
    body["response"]["conflicts"] = [
        {
            "object": next(iter(objects.values())),
            "objects": objects,
            "value": message,
            "errorCode": code,
            "property": "orgUnit",
            "indexes": [index],
        }
    ]
    return body


def test_chunks_are_independent_and_rejections_map_back_to_rows_on_241(
    mock: responses.RequestsMock,
) -> None:
    units = [OU, OU2, "cDw53Ej8rju", "EJoI3HArJ2W", "g8upMTyEZGZ"]
    serve_dhis2(
        mock,
        imports=[
            (200, summary(imported=2)),
            (
                409,
                conflict_241(
                    1,
                    "E7612",
                    "Organisation unit not found or not accessible: `EJoI3HArJ2W`",
                    organisationUnit="EJoI3HArJ2W",
                ),
            ),
            (200, summary(imported=1)),
        ],
    )
    h = Harness(mock, chunk_size=2)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, n + 1, ou=u) for n, u in enumerate(units)])
    assert [len(c) for c in h.posted()] == [2, 2, 1]
    assert (result.chunks_sent, result.chunks_failed) == (3, 0)
    assert result.counts.imported == 4 and result.counts.ignored == 1
    assert [(r.orgUnit, r.value, r.errorCode) for r in result.rejected] == [
        ("EJoI3HArJ2W", "4", "E7612")
    ]
    assert result.conflicts[0].indexes == [3]  # position among all values sent
    assert result.status == "warning" and result.delivered == 4
    assert [e.name for e in h.exchanges if e.method == "POST"] == [
        "DHIS2 dataValueSets POST (chunk 1/3)",
        "DHIS2 dataValueSets POST (chunk 2/3)",
        "DHIS2 dataValueSets POST (chunk 3/3)",
    ]


def test_rejections_on_236_map_back_by_conflict_object(mock: responses.RequestsMock) -> None:
    body = example("constructed_236_200_bare_warning_conflicts.json")
    body["importCount"] = {"imported": 2, "updated": 0, "ignored": 1, "deleted": 0}
    body["conflicts"] = [
        {"object": "bbbbbbbbbbb", "value": "Organisation unit not found or not accessible"}
    ]
    serve_dhis2(mock, imports=[(200, body)], version="2.36.11")
    h = Harness(mock)
    rows = [dv(MEASLES, 1), dv(MEASLES, 2, ou="bbbbbbbbbbb"), dv(DYSENTERY, 3)]
    result = push(h.client, DS, PERIOD, rows)
    assert [(r.orgUnit, r.reason) for r in result.rejected] == [
        ("bbbbbbbbbbb", "Organisation unit not found or not accessible")
    ]
    assert result.status == "warning" and result.delivered == 2
    assert result.dhis2_version == "2.36.11"


def test_unattributable_236_conflicts_are_kept_and_counted(mock: responses.RequestsMock) -> None:
    body = example("constructed_236_200_bare_warning_conflicts.json")
    body["conflicts"] = [{"object": "Value", "value": "Something DHIS2 did not like"}]
    serve_dhis2(mock, imports=[(200, body)], version="2.36.0")
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1)])
    assert len(result.conflicts) == 1 and result.rejected == []
    assert "conflicts_unattributed" in [f.code for f in result.preflight]
    assert result.status == "warning"


def test_a_failed_chunk_does_not_block_the_rest(mock: responses.RequestsMock) -> None:
    serve_dhis2(
        mock,
        imports=[(200, summary(imported=1))]
        + [(500, {"httpStatusCode": 500, "message": "boom"})] * 2
        + [(200, summary(imported=1))],
    )
    h = Harness(mock, chunk_size=1, max_attempts=2)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1), dv(DYSENTERY, 2), dv(CHOLERA, 3)])
    assert (result.chunks_sent, result.chunks_failed) == (3, 1)
    assert [r.dataElement for r in result.rejected] == [DYSENTERY]
    assert "HTTP 500" in result.rejected[0].reason
    assert result.status == "warning" and result.delivered == 2
    assert result.error is not None and "boom" in result.error


def test_an_aborted_import_accepts_nothing(mock: responses.RequestsMock) -> None:
    serve_dhis2(
        mock, imports=[(409, example("constructed_241_409_error_aborted_dataset_not_found.json"))]
    )
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1), dv(DYSENTERY, 2)])
    assert result.status == "error" and result.delivered == 0
    assert result.chunks_failed == 1 and len(result.rejected) == 2
    assert result.error is not None and "Data set not found" in result.error


def test_a_409_without_an_import_summary_is_an_error(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, imports=[(409, {"httpStatusCode": 409, "message": "Conflict happened"})])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1)])
    assert result.status == "error" and result.chunks_failed == 1
    assert result.error is not None and "Conflict happened" in result.error
    assert len(h.calls("POST", DVS)) == 1


def test_a_dry_run_posts_with_dry_run_and_delivers_nothing_new(
    mock: responses.RequestsMock,
) -> None:
    serve_dhis2(mock, held=[held_value(MEASLES, "1")], imports=[(200, summary(imported=1))])
    h = Harness(mock)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1), dv(DYSENTERY, 2)], dry_run=True)
    query = parse_qs(urlsplit(h.calls("POST", DVS)[0].request.url).query)
    assert query["dryRun"] == ["true"]
    assert result.dry_run and result.status == "success"
    assert result.values_sent == 1 and result.delivered == 1  # only the unchanged value


# -- async -------------------------------------------------------------------------------------


def test_async_import_polls_the_job_then_reads_its_summary(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, imports=[(200, example("constructed_241_200_async_initiated.json"))])
    tasks = f"{BASE}/api/system/tasks/DATAVALUE_IMPORT/qtCHqU4uEGt"
    summaries = f"{BASE}/api/system/taskSummaries/DATAVALUE_IMPORT/qtCHqU4uEGt"
    mock.get(tasks, json=[])
    mock.get(tasks, json=example("constructed_tasks_notifications_running.json"))
    mock.get(tasks, json=example("docs241_response_system_tasks_notifications.json"))
    mock.get(summaries, body="")
    mock.get(summaries, json=example("docs241_response_taskSummaries_importSummary.json"))
    h = Harness(mock, async_import=True)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1)])
    query = parse_qs(urlsplit(h.calls("POST", DVS)[0].request.url).query)
    assert query["async"] == ["true"]
    assert len(h.calls("GET", tasks)) == 3 and len(h.calls("GET", summaries)) == 2
    assert h.sleeps == [0.5, 1.0, 2.0]
    assert result.counts.updated == 431 and result.status == "success"


def test_async_polling_is_bounded(mock: responses.RequestsMock) -> None:
    serve_dhis2(mock, imports=[(200, example("docs241_response_async_initiated.json"))])
    mock.get(f"{BASE}/api/system/tasks/DATAVALUE_IMPORT/YR1UxOUXmzT", json=[])
    h = Harness(mock, async_import=True, timeout=60)
    result = push(h.client, DS, PERIOD, [dv(MEASLES, 1)])
    assert result.status == "error"
    assert result.error is not None and "did not finish within 60 s" in result.error
    assert 60 <= sum(h.sleeps) <= 65 and max(h.sleeps) == 5.0


def test_metadata_of_a_shape_dhis2_never_sends_is_one_clear_line(
    mock: responses.RequestsMock,
) -> None:
    """Not pydantic's "1 validation error for DataSetMeta…": the field and what is wrong."""
    info = example("constructed_get_system_info_nonsuperuser_241.json")
    mock.get(INFO, json=info)
    meta = example("constructed_get_dataSet_with_fields.json")
    meta["organisationUnits"] = "not-a-list"
    mock.get(META, json=meta)
    result = push(Harness(mock).client, DS, PERIOD, [dv(MEASLES, 3)])
    assert result.status == "error" and result.error_kind == "shape"
    assert result.error is not None and "\n" not in result.error
    assert "validation error" not in result.error and "pydantic" not in result.error
    # the call, the field, what came instead, and the DHIS2 version that sent it
    assert f"GET /api/dataSets/{DS}" in result.error
    assert "organisationUnits: input should be a valid list, got 'not-a-list'" in result.error
    assert f"DHIS2 {info['version']} " in result.error
    (diagnosis,) = diagnose(RunReport(run_id="r", results=[result]))
    assert diagnosis.kind == "dhis2_unexpected_shape"
    assert "DHIS2_URL points at the DHIS2 instance" in diagnosis.fix
    assert "client_max_body_size" not in diagnosis.fix + diagnosis.cause


@pytest.mark.parametrize(
    ("status", "kind", "title"),
    [
        (200, "not_json", "Something other than DHIS2 answered"),
        (502, "status", "DHIS2 kept failing"),
        (413, "too_large", "The import was too large for DHIS2's web server or a proxy"),
    ],
)
def test_a_web_page_and_a_413_are_told_apart(
    mock: responses.RequestsMock, status: int, kind: str, title: str
) -> None:
    """A proxy's HTML page on the import is "not JSON" (its fix names DHIS2_URL); only a
    413 is the body size limit (its fix names DHIS2_CHUNK_SIZE)."""
    info = example("constructed_get_system_info_nonsuperuser_241.json")
    mock.get(INFO, json=info)
    serve_user(mock)
    mock.get(META, json=example("constructed_get_dataSet_with_fields.json"))
    mock.get(DVS, json={"dataSet": DS, "dataValues": []})
    page = "<html><head><title>Proxy error</title></head><body>nginx</body></html>"
    mock.post(DVS, status=status, body=page, content_type="text/html")
    result = push(Harness(mock).client, DS, PERIOD, [dv(MEASLES, 3)])
    assert result.error_kind == kind, result.error
    (diagnosis,) = diagnose(RunReport(run_id="r", results=[result]))
    assert diagnosis.title == title
    assert ("DHIS2_CHUNK_SIZE" in diagnosis.fix) is (status == 413)
    assert ("DHIS2_URL" in diagnosis.fix) is (status == 200)
