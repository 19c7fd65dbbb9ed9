"""The DHIS2 stand-in checked against the reference example bodies, over real HTTP.

Scenario (dhis2-examples/README.md): server date 2024-11-15, data set
pBOMPrpg1QX Monthly with expiryDays=30 and openFuturePeriods=0 assigned to
DiszpKrYNg8, a non-superuser "clerk" whose hierarchy holds DiszpKrYNg8.
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.dhis2_standin import Dhis2StandIn, make_token
from devstack.dhis2_standin.periods import latest_open_future_period, parse_period
from devstack.dhis2_standin.validation import value_type_error

EXAMPLES = Path("/work/shared/reference/dhis2-examples")
NOW = datetime(2024, 11, 15, 10, 0, 0)
DS, OU = "pBOMPrpg1QX", "DiszpKrYNg8"
MEASLES, DYSENTERY, CHOLERA = "f7n9E0hX8qk", "Ix2HsbDMLea", "eY5ehpbEsB7"
COC = "HllvX50cXC0"
CLERK = ("clerk", "Clerk-pass-1")
ADMIN = ("admin", "district")
JSON_HEADERS = {"Content-Type": "application/json"}


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def scenario_metadata() -> dict[str, Any]:
    cc = {
        "id": "bjDvmb4bfuf",
        "name": "default",
        "categoryOptionCombos": [{"id": COC, "name": "default"}],
    }

    def element(ident: str, name: str, value_type: str, zero: bool) -> dict[str, Any]:
        return {
            "id": ident,
            "name": name,
            "valueType": value_type,
            "zeroIsSignificant": zero,
            "aggregationType": "SUM",
            "categoryCombo": {"id": cc["id"]},
        }

    return {
        "defaultCategoryOptionCombo": COC,
        "categoryCombos": [cc],
        "dataElements": [
            element(MEASLES, "Measles", "INTEGER_ZERO_OR_POSITIVE", False),
            element(DYSENTERY, "Dysentery", "NUMBER", False),
            element(CHOLERA, "Cholera", "NUMBER", True),
        ],
        "dataSets": [
            {
                "id": DS,
                "name": "Mortality < 5 years",
                "periodType": "Monthly",
                "expiryDays": 30,
                "openFuturePeriods": 0,
                "categoryCombo": {"id": cc["id"]},
                "dataSetElements": [
                    {"dataElement": {"id": d}} for d in (MEASLES, DYSENTERY, CHOLERA)
                ],
                "organisationUnits": [{"id": OU}],
            }
        ],
        "organisationUnits": [
            {"id": "ImspTQPwCqd", "name": "Sierra Leone"},
            {"id": "O6uvpzGd5pu", "name": "Bo", "parent": {"id": "ImspTQPwCqd"}},
            {"id": "YuQRtpLP10I", "name": "Badjia", "parent": {"id": "O6uvpzGd5pu"}},
            {
                "id": OU,
                "name": "Ngelehun CHC",
                "code": "OU_559",
                "openingDate": "1970-01-01T00:00:00.000",
                "parent": {"id": "YuQRtpLP10I"},
            },
            {"id": "FNnj3jKGS7i", "name": "Bandajuma MCHP", "parent": {"id": "YuQRtpLP10I"}},
        ],
        "users": [
            {
                "username": CLERK[0],
                "password": CLERK[1],
                "authorities": ["F_DATAVALUE_ADD"],
                "organisationUnits": [OU],
            },
            {
                "username": "viewer",
                "password": "Viewer-pass-1",
                "authorities": ["M_dhis-web-dashboard"],
            },
        ],
    }


StandinFactory = Callable[..., Dhis2StandIn]


@pytest.fixture
def dhis2() -> Iterator[StandinFactory]:
    """Start stand-ins on loopback; all of them stop at teardown."""
    started: list[Dhis2StandIn] = []

    def start(version: str = "2.41.1", **kwargs: Any) -> Dhis2StandIn:
        kwargs.setdefault("now", lambda: NOW)
        standin = Dhis2StandIn(
            kwargs.pop("metadata", scenario_metadata()), version, **kwargs
        ).start()
        started.append(standin)
        return standin

    yield start
    # shutting a server down waits out its 0.5 s poll; do it off the test's clock
    for standin in started:
        threading.Thread(target=standin.stop, daemon=True).start()


def post(
    standin: Dhis2StandIn,
    body: Any,
    auth: tuple[str, str] = CLERK,
    path: str = "/api/dataValueSets",
    **params: str,
) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return requests.post(
        standin.url + path, data=data, params=params, headers=JSON_HEADERS, auth=auth, timeout=10
    )


def summary_of(resp: requests.Response) -> dict[str, Any]:
    body = resp.json()
    return body["response"] if "httpStatusCode" in body else body


def monthly(values: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"dataSet": DS, "period": "202410", "orgUnit": OU, "dataValues": values, **extra}


# -- the constructed conflict examples, per version ---------------------------------


def test_241_conflicts_equal_the_example(dhis2: StandinFactory) -> None:
    standin = dhis2("2.41.1")
    resp = post(standin, example("constructed_request_conflict_scenarios.json"))
    assert resp.status_code == 409
    assert resp.json() == example("constructed_241_409_warning_conflicts.json")
    assert standin.store.values() == {(MEASLES, "202410", OU, COC, COC): "12"}


def test_236_conflicts_equal_the_example(dhis2: StandinFactory) -> None:
    resp = post(dhis2("2.36"), example("constructed_request_conflict_scenarios.json"))
    expected = example("constructed_236_200_bare_warning_conflicts.json")
    body = resp.json()
    assert resp.status_code == 200
    # 2.36 keeps conflicts in a HashSet: compare them as a set
    key = lambda c: (c["object"], c["value"])  # noqa: E731
    assert sorted(body.pop("conflicts"), key=key) == sorted(expected.pop("conflicts"), key=key)
    assert body == expected


def test_237_extended_conflicts_equal_the_example(dhis2: StandinFactory) -> None:
    request = example("constructed_request_conflict_scenarios.json")
    request["dataValues"] = request["dataValues"][:3]
    resp = post(dhis2("2.37"), request)
    assert resp.status_code == 200
    assert resp.json() == example("constructed_237_200_bare_warning_extended_conflicts.json")


def test_238_is_wrapped_409_with_old_texts_and_no_rejected_indexes(dhis2: StandinFactory) -> None:
    resp = post(dhis2("2.38.6"), example("constructed_request_conflict_scenarios.json"))
    body = resp.json()
    assert resp.status_code == 409 and body["httpStatusCode"] == 409 and body["status"] == "WARNING"
    summary = body["response"]
    assert "rejectedIndexes" not in summary
    assert "strictDataSetLocking" not in summary["importOptions"]
    by_code = {c["errorCode"]: c for c in summary["conflicts"]}
    assert by_code["E7619"] == example(
        "androidsdk_conflict_E7619_value_not_numeric_237_238.json"
    ) | {
        "object": DYSENTERY,
        "objects": {"dataElement": DYSENTERY, "value": "value_not_numeric"},
        "value": f"Value must match data element's `{DYSENTERY}` type constraints: "
        "Data value is not numeric",
        "indexes": [2],
    }
    assert by_code["E7641"]["objects"] == {"period": "202411", "dataElement": MEASLES}


def test_242_always_wraps_and_241_gives_bare_body_on_api_37(dhis2: StandinFactory) -> None:
    request = example("constructed_request_conflict_scenarios.json")
    bare = post(dhis2("2.41.1"), request, path="/api/37/dataValueSets")
    assert bare.status_code == 200
    assert bare.json() == example("constructed_241_409_warning_conflicts.json")["response"]
    wrapped = post(dhis2("2.42.0"), request, path="/api/37/dataValueSets")
    assert (
        wrapped.status_code == 409 and wrapped.json()["response"]["responseType"] == "ImportSummary"
    )
    versioned = post(dhis2("2.37"), request, path="/api/38/dataValueSets")
    assert versioned.status_code == 409 and "httpStatusCode" in versioned.json()


def test_conflicts_group_by_code_and_objects(dhis2: StandinFactory) -> None:
    values = [{"dataElement": "aaaaaaaaaaa", "value": "1"} for _ in range(3)]
    values.insert(1, {"dataElement": MEASLES, "value": "2"})
    summary = summary_of(post(dhis2(), monthly(values)))
    assert [c["indexes"] for c in summary["conflicts"]] == [[0, 2, 3]]
    assert summary["rejectedIndexes"] == [0, 2, 3]
    assert summary["importCount"] == {"imported": 1, "updated": 0, "ignored": 3, "deleted": 0}


# -- success, re-post, zero and clear --------------------------------------------------


def test_first_post_and_identical_repost_equal_the_examples(dhis2: StandinFactory) -> None:
    standin = dhis2("2.41.1", superuser=True)  # the docs' 2014 period: expired for any other user
    request = example("docs241_request_dataValueSet_pBOMPrpg1QX.json")
    first = post(standin, request, auth=ADMIN)
    assert first.status_code == 200
    assert first.json() == example("constructed_241_200_success_first_post.json")
    again = post(standin, request, auth=ADMIN)
    assert again.json() == example("constructed_241_200_success_identical_repost.json")
    assert standin.store.registrations[(DS, "201401", OU, COC)]["date"] == "2014-02-03"


def test_236_success_is_bare_200_like_the_example(dhis2: StandinFactory) -> None:
    request = example("docs241_request_dataValueSet_pBOMPrpg1QX.json")
    del request["completeDate"]
    resp = post(dhis2("2.36", superuser=True), request, auth=ADMIN)  # 2014: expired otherwise
    assert resp.status_code == 200
    assert resp.json() == example("constructed_236_200_bare_success.json")


@pytest.mark.parametrize(
    ("version", "counter"),
    [
        ("2.36", "updated"),
        ("2.37", "updated"),
        ("2.38.5", "updated"),
        ("2.38.6", "ignored"),
        ("2.39.4", "updated"),
        ("2.39.5", "ignored"),
        ("2.40.2", "updated"),
        ("2.40.3", "ignored"),
        ("2.41", "ignored"),
        ("2.42", "ignored"),
    ],
)
def test_identical_repost_counter_follows_dhis2_15254(
    dhis2: StandinFactory, version: str, counter: str
) -> None:
    standin = dhis2(version)
    body = monthly([{"dataElement": MEASLES, "value": "7"}, {"dataElement": CHOLERA, "value": "3"}])
    post(standin, body)
    counts = summary_of(post(standin, body))["importCount"]
    assert counts[counter] == 2 and sum(counts.values()) == 2
    assert standin.store.values()[(MEASLES, "202410", OU, COC, COC)] == "7"


def test_ignore_unchanged_can_be_pinned(dhis2: StandinFactory) -> None:
    standin = dhis2("2.38.5", ignore_unchanged=True)
    body = monthly([{"dataElement": MEASLES, "value": "7"}])
    post(standin, body)
    assert summary_of(post(standin, body))["importCount"]["ignored"] == 1


def test_cht_monthly_on_empty_store(dhis2: StandinFactory) -> None:
    request = example("constructed_request_cht_monthly.json")
    s241 = dhis2("2.41.1")
    summary = summary_of(post(s241, request))
    # "0" on a zero-insignificant element is counted nowhere on 2.37+; "" is ignored
    assert summary["importCount"] == {"imported": 1, "updated": 0, "ignored": 1, "deleted": 0}
    assert summary["dataSetComplete"] == "2024-11-05" and summary["rejectedIndexes"] == []
    assert s241.store.values() == {(MEASLES, "202410", OU, COC, COC): "12"}
    s236 = dhis2("2.36")
    assert post(s236, request).json()["importCount"] == {
        "imported": 1,
        "updated": 0,
        "ignored": 2,
        "deleted": 0,
    }


@pytest.mark.parametrize(
    ("version", "deleted", "dysentery_left"),
    [("2.36", 1, "4"), ("2.37", 2, None), ("2.41.1", 2, None)],
)
def test_zero_and_empty_string_against_existing_values(
    dhis2: StandinFactory, version: str, deleted: int, dysentery_left: str | None
) -> None:
    standin = dhis2(version)
    standin.store.seed(DYSENTERY, "202410", OU, "4")
    standin.store.seed(CHOLERA, "202410", OU, "3")
    counts = summary_of(post(standin, example("constructed_request_cht_monthly.json")))[
        "importCount"
    ]
    assert counts["deleted"] == deleted and counts["imported"] == 1
    values = standin.store.values()
    assert values.get((DYSENTERY, "202410", OU, COC, COC)) == dysentery_left
    assert (CHOLERA, "202410", OU, COC, COC) not in values  # "" cleared it (soft delete)
    assert standin.store.get((CHOLERA, "202410", OU, COC, COC)).deleted  # type: ignore[union-attr]


def test_deleted_flag_and_reimport_of_soft_deleted_value(dhis2: StandinFactory) -> None:
    standin = dhis2()
    standin.store.seed(MEASLES, "202410", OU, "9")
    gone = summary_of(
        post(standin, monthly([{"dataElement": MEASLES, "value": "9", "deleted": True}]))
    )
    assert gone["importCount"]["deleted"] == 1 and standin.store.values() == {}
    back = summary_of(post(standin, monthly([{"dataElement": MEASLES, "value": "9"}])))
    assert back["importCount"]["imported"] == 1
    assert standin.store.values() == {(MEASLES, "202410", OU, COC, COC): "9"}


@pytest.mark.parametrize("strategy", ["CREATE", "NEW"])
def test_create_strategy_ignores_existing_values(dhis2: StandinFactory, strategy: str) -> None:
    standin = dhis2()
    standin.store.seed(MEASLES, "202410", OU, "9")
    body = monthly([{"dataElement": MEASLES, "value": "1"}, {"dataElement": CHOLERA, "value": "2"}])
    summary = summary_of(post(standin, body, importStrategy=strategy))
    assert summary["importCount"] == {"imported": 1, "updated": 0, "ignored": 1, "deleted": 0}
    assert summary["rejectedIndexes"] == [0] and summary["conflicts"] == []
    assert summary["importOptions"]["importStrategy"] == strategy
    assert standin.store.values()[(MEASLES, "202410", OU, COC, COC)] == "9"


def test_update_and_delete_strategies(dhis2: StandinFactory) -> None:
    standin = dhis2()
    standin.store.seed(MEASLES, "202410", OU, "9")
    body = monthly([{"dataElement": MEASLES, "value": "1"}, {"dataElement": CHOLERA, "value": "2"}])
    upd = summary_of(post(standin, body, importStrategy="UPDATE"))
    assert upd["importCount"] == {"imported": 0, "updated": 1, "ignored": 1, "deleted": 0}
    keys_only = monthly([{"dataElement": MEASLES}, {"dataElement": CHOLERA}])
    dele = summary_of(post(standin, keys_only, strategy="DELETE"))
    assert dele["importCount"] == {"imported": 0, "updated": 0, "ignored": 1, "deleted": 1}
    assert dele["rejectedIndexes"] == [1] and standin.store.values() == {}
    # 2.36 still wants a value or comment for DELETE
    old = dhis2("2.36")
    old.store.seed(MEASLES, "202410", OU, "9")
    assert post(old, keys_only, importStrategy="DELETE").json()["importCount"]["deleted"] == 0


def test_json_numbers_keep_their_literal_text(dhis2: StandinFactory) -> None:
    standin = dhis2()
    head = json.dumps({"dataSet": DS, "period": "202410", "orgUnit": OU})[:-1]
    raw = (
        f'{head},"dataValues":[{{"dataElement":"{MEASLES}","value":5}},'
        f'{{"dataElement":"{MEASLES}","value":5.0}},{{"dataElement":"{DYSENTERY}","value":1e3}}]}}'
    )
    summary = summary_of(post(standin, raw))
    assert standin.store.values() == {(MEASLES, "202410", OU, COC, COC): "5"}
    assert [(c["errorCode"], c["indexes"]) for c in summary["conflicts"]] == [
        ("E7619", [1]),
        ("E7619", [2]),
    ]
    assert summary["conflicts"][0]["objects"]["value"] == "value_not_zero_or_positive_integer"


def test_set_level_fields_override_values_and_default_coc_applies(dhis2: StandinFactory) -> None:
    standin = dhis2()
    values = [{"dataElement": MEASLES, "period": "202301", "orgUnit": "FNnj3jKGS7i", "value": "3"}]
    summary = summary_of(post(standin, monthly(values)))
    assert summary["status"] == "SUCCESS"
    assert standin.store.values() == {(MEASLES, "202410", OU, COC, COC): "3"}


def test_dry_run_counts_but_writes_nothing(dhis2: StandinFactory) -> None:
    standin = dhis2()
    summary = summary_of(
        post(standin, monthly([{"dataElement": MEASLES, "value": "3"}]), dryRun="true")
    )
    assert summary["importCount"]["imported"] == 1 and summary["importOptions"]["dryRun"] is True
    assert standin.store.values() == {} and standin.store.audit == []


# -- aborts, parse failures, bad requests ---------------------------------------------


def test_aborts_equal_the_examples(dhis2: StandinFactory) -> None:
    s241 = dhis2("2.41.1")
    no_ds = post(s241, {"dataSet": "zzzzzzzzzzz", "dataValues": [{"dataElement": MEASLES}]})
    assert no_ds.status_code == 409
    assert no_ds.json() == example("constructed_241_409_error_aborted_dataset_not_found.json")
    no_ou = post(s241, {"dataSet": DS, "orgUnit": "bbbbbbbbbbb", "dataValues": []})
    assert no_ou.json() == example("constructed_241_409_error_aborted_orgunit_not_found.json")
    no_aoc = summary_of(post(s241, {"attributeOptionCombo": "ccccccccccc", "dataValues": []}))
    assert no_aoc["conflicts"][0]["errorCode"] == "E7604" and no_aoc["status"] == "ERROR"
    old = post(dhis2("2.36"), {"orgUnit": "bbbbbbbbbbb", "dataValues": [{"dataElement": MEASLES}]})
    assert old.status_code == 200
    assert old.json() == example("constructed_236_200_bare_error_aborted.json")
    assert s241.store.values() == {}


def test_parse_failures_are_import_errors(dhis2: StandinFactory) -> None:
    standin = dhis2()
    empty = post(standin, b"")
    shape = example("constructed_241_409_error_parse_failure.json")
    assert empty.status_code == 409 and empty.json().keys() == shape.keys()
    summary = empty.json()["response"]
    assert summary.keys() == shape["response"].keys()
    assert (
        summary["description"] == "The import process failed: No content to map due to end-of-input"
    )
    broken = summary_of(post(standin, b"{not json"))
    assert broken["status"] == "ERROR" and broken["description"].startswith(
        "The import process failed: Unexpected character"
    )
    assert summary_of(post(standin, {}))["status"] == "SUCCESS"


def test_gzip_body_is_sniffed(dhis2: StandinFactory) -> None:
    standin = dhis2()
    raw = gzip.compress(json.dumps(monthly([{"dataElement": MEASLES, "value": "4"}])).encode())
    assert summary_of(post(standin, raw))["importCount"]["imported"] == 1


def test_wrong_content_type_and_bad_parameters(dhis2: StandinFactory) -> None:
    standin = dhis2()
    csv = requests.post(
        standin.url + "/api/dataValueSets",
        data="a,b",
        headers={"Content-Type": "text/csv"},
        auth=CLERK,
    )
    assert csv.status_code == 415
    assert csv.json()["message"] == "Content type 'text/csv' not supported"
    bad_enum = post(standin, {}, importStrategy="MERGE")
    assert bad_enum.status_code == 400
    assert bad_enum.json()["message"].startswith(
        "Value 'MERGE' is not valid for parameter importStrategy."
    )
    bad_bool = post(standin, {}, dryRun="maybe")
    assert bad_bool.status_code == 400 and "dryRun" in bad_bool.json()["message"]
    assert post(standin, {}, preheatCache="true", unknownThing="x").status_code == 200


# -- locking and strict flags ----------------------------------------------------------


def test_force_bypasses_locks_only_for_superusers(dhis2: StandinFactory) -> None:
    standin = dhis2(superuser=True)
    future = monthly([{"dataElement": MEASLES, "value": "1"}], period="202411")
    clerk = summary_of(post(standin, future, force="true"))
    assert [c["errorCode"] for c in clerk["conflicts"]] == ["E7641"]
    admin_no_force = summary_of(post(standin, future, auth=ADMIN))
    assert [c["errorCode"] for c in admin_no_force["conflicts"]] == ["E7641"]
    admin = summary_of(post(standin, future, auth=ADMIN, force="true"))
    assert admin["status"] == "SUCCESS"
    # superusers skip expiry (F_EDIT_EXPIRED is implied by ALL)
    expired = monthly([{"dataElement": MEASLES, "value": "1"}], period="202301")
    assert summary_of(post(standin, expired, auth=ADMIN))["status"] == "SUCCESS"
    assert summary_of(post(standin, expired))["conflicts"][0]["errorCode"] == "E7640"


def test_unassigned_org_unit_is_accepted_unless_strict(dhis2: StandinFactory) -> None:
    standin = dhis2()
    standin.add_user(
        {
            "username": "district",
            "password": "D-pass-1",
            "authorities": ["F_DATAVALUE_ADD"],
            "organisationUnits": ["YuQRtpLP10I"],
        }
    )
    body = monthly([{"dataElement": MEASLES, "value": "1"}], orgUnit="FNnj3jKGS7i")
    auth = ("district", "D-pass-1")
    assert summary_of(post(standin, body, auth=auth))["status"] == "SUCCESS"
    strict = summary_of(post(standin, body, auth=auth, strictOrganisationUnits="true"))
    assert strict["conflicts"][0]["errorCode"] == "E7636"
    assert strict["conflicts"][0]["objects"] == {
        "organisationUnit": "FNnj3jKGS7i",
        "dataElement": MEASLES,
    }


def test_org_unit_outside_user_hierarchy_is_e7617(dhis2: StandinFactory) -> None:
    summary = summary_of(
        post(dhis2(), monthly([{"dataElement": MEASLES, "value": "1"}], orgUnit="FNnj3jKGS7i"))
    )
    assert summary["conflicts"][0]["errorCode"] == "E7617"
    # the user's uid, not its name (2.41.9.1 VAL validateDataValueOrgUnitInUserHierarchy)
    assert summary["conflicts"][0]["objects"] == {"organisationUnit": None, "user": "xE7jOejl9FI"}


def test_periods_and_value_types() -> None:
    assert parse_period("2024-01").iso == "202401"  # type: ignore[union-attr]
    assert parse_period("2024M1") is None and parse_period("202413") is None
    assert parse_period("2024W5").start.isoformat() == "2024-01-29"  # type: ignore[union-attr]
    assert parse_period("2024April").end.isoformat() == "2025-03-31"  # type: ignore[union-attr]
    assert parse_period("2024S2").start.isoformat() == "2024-07-01"  # type: ignore[union-attr]
    assert latest_open_future_period("Monthly", NOW.date(), 0).iso == "202410"
    assert latest_open_future_period("Monthly", NOW.date(), 2).iso == "202412"
    cases = {
        ("007", "NUMBER"): "value_not_numeric",
        ("1e3", "NUMBER"): "value_not_numeric",
        ("-0.5", "NUMBER"): None,
        ("5.0", "INTEGER"): "value_not_integer",
        ("0", "INTEGER_POSITIVE"): "value_not_positive_integer",
        ("0", "INTEGER_ZERO_OR_POSITIVE"): None,
        ("-3", "INTEGER_NEGATIVE"): None,
        ("101", "PERCENTAGE"): "value_not_percentage",
        ("0.5", "UNIT_INTERVAL"): None,
        ("T", "BOOLEAN"): None,
        ("false", "TRUE_ONLY"): "value_not_true_only",
    }
    for (value, value_type), key in cases.items():
        assert value_type_error(value, value_type) == key, (value, value_type)


# -- authentication -------------------------------------------------------------------


def test_basic_auth_failures(dhis2: StandinFactory) -> None:
    standin = dhis2("2.41.1")
    url = standin.url + "/api/dataValueSets"
    wrong = requests.post(url, json={}, auth=("clerk", "nope"))
    assert wrong.status_code == 401
    assert wrong.json() == example("constructed_401_basic_bad_credentials.json")
    assert "WWW-Authenticate" not in wrong.headers
    anon = requests.get(standin.url + "/api/me", allow_redirects=False)
    assert anon.status_code == 302 and anon.headers["Location"].endswith("/dhis-web-login/")
    xhr = requests.get(standin.url + "/api/me", headers={"X-Requested-With": "XMLHttpRequest"})
    assert xhr.status_code == 401
    old = dhis2("2.40.3")
    anon_old = requests.get(old.url + "/api/me", allow_redirects=False)
    assert anon_old.headers["Location"].endswith("/dhis-web-commons/security/login.action")


def test_session_cookie_is_issued_and_honoured(dhis2: StandinFactory) -> None:
    standin = dhis2()
    with requests.Session() as session:
        first = session.get(standin.url + "/api/me", auth=CLERK)
        assert "JSESSIONID" in first.cookies
        again = session.get(standin.url + "/api/me?fields=username", allow_redirects=False)
        assert again.status_code == 200 and again.json() == {"username": "clerk"}


def test_api_tokens(dhis2: StandinFactory) -> None:
    standin = dhis2("2.41.1")
    token = standin.add_token("clerk")

    def call(value: str, s: Dhis2StandIn = standin) -> requests.Response:
        return requests.get(s.url + "/api/me", headers={"Authorization": value})

    assert call(f"ApiToken {token}").json()["username"] == "clerk"
    unknown = call(f"ApiToken {make_token(v2=True)}")
    assert unknown.status_code == 401
    assert unknown.json() == example("constructed_401_apitoken_unknown.json")
    assert unknown.headers["WWW-Authenticate"].startswith("ApiToken")
    bad_sum = call("ApiToken d2pat_" + "a" * 42)
    assert bad_sum.status_code == 400
    assert bad_sum.json() == example("constructed_400_apitoken_bad_checksum_241plus.json")
    malformed = call("ApiToken not a token!")
    assert malformed.status_code == 400 and malformed.json()["message"] == "Api token is malformed"
    s237 = dhis2("2.37")
    assert (
        call("ApiToken d2pat_" + "a" * 42, s237).json()["message"]
        == "The API token does not exists"
    )
    s236 = dhis2("2.36")
    assert call(f"ApiToken {make_token()}", s236).status_code == 401


@pytest.mark.parametrize(
    ("version", "message"), [("2.41.1", "Access is denied"), ("2.42", "Access Denied")]
)
def test_missing_authority_is_403(dhis2: StandinFactory, version: str, message: str) -> None:
    resp = post(dhis2(version), {}, auth=("viewer", "Viewer-pass-1"))
    assert resp.status_code == 403
    assert resp.json() == example("constructed_403_missing_F_DATAVALUE_ADD.json") | {
        "message": message
    }


# -- metadata --------------------------------------------------------------------------


def test_metadata_not_found_equals_the_examples(dhis2: StandinFactory) -> None:
    for version, name in [
        ("2.36", "constructed_404_dataset_236.json"),
        ("2.41.1", "constructed_404_dataset_241.json"),
    ]:
        resp = requests.get(dhis2(version).url + "/api/dataSets/zzzzzzzzzzz", auth=ADMIN)
        assert resp.status_code == 404 and resp.json() == example(name)


def test_data_set_fields_expand_like_the_example(dhis2: StandinFactory) -> None:
    fields = (
        "id,name,periodType,expiryDays,openFuturePeriods,categoryCombo[id,name],dataInputPeriods,"
        "dataSetElements[dataElement[id,name,valueType,zeroIsSignificant,aggregationType,"
        "categoryCombo[id,name,categoryOptionCombos[id,name]]]],organisationUnits[id]"
    )
    resp = requests.get(f"{dhis2().url}/api/dataSets/{DS}", params={"fields": fields}, auth=CLERK)
    assert resp.json() == example("constructed_get_dataSet_with_fields.json")


def test_org_unit_and_lists(dhis2: StandinFactory) -> None:
    standin = dhis2()
    fields = "id,name,code,level,path,openingDate,parent[id],dataSets[id]"
    ou = requests.get(
        f"{standin.url}/api/organisationUnits/{OU}", params={"fields": fields}, auth=CLERK
    )
    assert ou.json() == example("constructed_get_organisationUnit.json")
    listed = requests.get(
        f"{standin.url}/api/dataElements",
        params={
            "filter": f"id:in:[{MEASLES},{CHOLERA}]",
            "fields": "id,valueType,categoryCombo[id]",
        },
        auth=CLERK,
    ).json()
    assert listed["pager"]["total"] == 2
    assert {d["id"] for d in listed["dataElements"]} == {MEASLES, CHOLERA}
    assert listed["dataElements"][0]["categoryCombo"] == {"id": "bjDvmb4bfuf"}
    unpaged = requests.get(f"{standin.url}/api/dataSets?paging=false&fields=*", auth=CLERK).json()
    assert "pager" not in unpaged and unpaged["dataSets"][0]["organisationUnits"] == [{"id": OU}]
    cocs = requests.get(
        f"{standin.url}/api/categoryOptionCombos?fields=id,categoryCombo[name]", auth=CLERK
    )
    assert cocs.json()["categoryOptionCombos"] == [
        {"id": COC, "categoryCombo": {"name": "default"}}
    ]


def test_system_info_me_period_types(dhis2: StandinFactory) -> None:
    standin = dhis2("2.41.1")
    info = requests.get(standin.url + "/api/system/info", auth=CLERK).json()
    assert info.keys() == example("constructed_get_system_info_nonsuperuser_241.json").keys()
    assert info["version"] == "2.41.1" and info["serverDate"] == "2024-11-15T10:00:00.000"
    assert requests.get(standin.url + "/api/system/ping").text == "pong"
    me = requests.get(standin.url + "/api/me?fields=organisationUnits[id,path]", auth=CLERK).json()
    assert me == {
        "organisationUnits": [{"id": OU, "path": f"/ImspTQPwCqd/O6uvpzGd5pu/YuQRtpLP10I/{OU}"}]
    }
    types = requests.get(standin.url + "/api/periodTypes", auth=CLERK).json()["periodTypes"]
    for wanted in example("constructed_get_periodTypes_excerpt.json")["periodTypes"]:
        assert wanted in types


# -- read-back and completeness ----------------------------------------------------------


def test_get_data_value_sets_reads_back_live_values(dhis2: StandinFactory) -> None:
    standin = dhis2()
    post(
        standin,
        monthly(
            [
                {"dataElement": MEASLES, "value": "12", "comment": "c"},
                {"dataElement": CHOLERA, "value": "0"},
            ]
        ),
    )
    post(standin, monthly([{"dataElement": CHOLERA, "value": ""}]))
    got = requests.get(
        standin.url + "/api/dataValueSets",
        params={"dataSet": DS, "period": "202410", "orgUnit": OU},
        auth=CLERK,
    ).json()
    assert got["dataSet"] == DS and got["period"] == "202410" and got["orgUnit"] == OU
    assert [(v["dataElement"], v["value"]) for v in got["dataValues"]] == [(MEASLES, "12")]
    row = got["dataValues"][0]
    assert set(row) == {
        "dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo",
        "value", "storedBy", "created", "lastUpdated", "comment", "followup",
    }  # fmt: skip
    assert row["storedBy"] == "clerk" and row["created"] == "2024-11-15T10:00:00.000"
    for params, code in [
        ({"period": "202410", "orgUnit": OU}, "E2001"),
        ({"dataSet": DS, "orgUnit": OU}, "E2002"),
        ({"dataSet": DS, "period": "202410"}, "E2006"),
    ]:
        resp = requests.get(standin.url + "/api/dataValueSets", params=params, auth=CLERK)
        assert resp.status_code == 409 and resp.json()["errorCode"] == code
    children = requests.get(
        standin.url + "/api/dataValueSets",
        params={"dataSet": DS, "period": "202410", "orgUnit": "ImspTQPwCqd", "children": "true"},
        auth=ADMIN,
    ).json()
    assert "dataSet" not in children and len(children["dataValues"]) == 1


def test_complete_data_set_registrations(dhis2: StandinFactory) -> None:
    standin = dhis2()
    body = {"completeDataSetRegistrations": [
        {"dataSet": DS, "period": "202410", "organisationUnit": OU},
        {"dataSet": "zzzzzzzzzzz", "period": "202410", "organisationUnit": OU},
    ]}  # fmt: skip
    resp = post(standin, body, path="/api/completeDataSetRegistrations")
    summary = summary_of(resp)
    assert resp.status_code == 409 and summary["importCount"]["imported"] == 1
    assert summary["conflicts"] == [
        {"object": "zzzzzzzzzzz", "value": "Data set not found or not accessible"}
    ]
    got = requests.get(
        standin.url + "/api/completeDataSetRegistrations",
        params={"dataSet": DS, "period": "202410", "orgUnit": OU},
        auth=CLERK,
    ).json()["completeDataSetRegistrations"]
    assert [(r["dataSet"], r["period"], r["completed"]) for r in got] == [(DS, "202410", True)]


# -- async --------------------------------------------------------------------------------


def test_async_import_flow_241(dhis2: StandinFactory) -> None:
    standin = dhis2("2.41.1", async_delay=0.3)
    resp = post(standin, monthly([{"dataElement": MEASLES, "value": "5"}]), **{"async": "true"})
    body = resp.json()
    shape = example("constructed_241_200_async_initiated.json")
    assert resp.status_code == 200 and body.keys() == shape.keys()
    assert body["response"].keys() == shape["response"].keys()
    job = body["response"]
    assert (
        body["message"] == f"Initiated {job['name']}"
        and job["name"] == "DATAVALUE_IMPORT (1731664800000)"
    )
    assert resp.headers["Location"].endswith("/api/system/tasks/DATAVALUE_IMPORT")
    tasks = standin.url + job["relativeNotifierEndpoint"]
    summary_url = f"{standin.url}/api/system/taskSummaries/DATAVALUE_IMPORT/{job['id']}"
    assert requests.get(tasks, auth=CLERK).json() == []
    early = requests.get(summary_url, auth=CLERK)
    assert early.status_code == 200 and early.content == b""
    deadline = time.monotonic() + 5
    notes: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not any(n["completed"] for n in notes):
        time.sleep(0.05)
        notes = requests.get(tasks, auth=CLERK).json()
    assert notes[0]["completed"] is True and notes[-1]["message"] == "Process started"
    summary = requests.get(summary_url, auth=CLERK).json()
    assert summary["responseType"] == "ImportSummary" and summary["importCount"]["imported"] == 1
    assert standin.store.values() == {(MEASLES, "202410", OU, COC, COC): "5"}


def test_async_message_up_to_240(dhis2: StandinFactory) -> None:
    resp = post(dhis2("2.40.3"), monthly([]), **{"async": "true"})
    docs = example("docs241_response_async_initiated.json")
    assert (
        resp.json()["message"] == docs["message"]
        and resp.json()["response"]["name"] == "dataValueImport"
    )


# -- faults and the request log --------------------------------------------------------------


def test_fault_hooks(dhis2: StandinFactory) -> None:
    standin = dhis2()
    body = monthly([{"dataElement": MEASLES, "value": "5"}])
    standin.faults.fail_next(2, status=429, path="/api/dataValueSets", retry_after=7)
    first = post(standin, body)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert post(standin, body).status_code == 429
    assert post(standin, body).status_code == 200
    standin.faults.garbage_next(path="/api/system/info")
    garbage = requests.get(standin.url + "/api/system/info", auth=CLERK)
    with pytest.raises(ValueError):
        garbage.json()
    standin.faults.drop_next(path="/api/dataValueSets")
    with pytest.raises(requests.ConnectionError):
        post(standin, body)
    standin.faults.delay_next(1.0, path="/api/dataValueSets")
    with pytest.raises(requests.ReadTimeout):
        requests.post(standin.url + "/api/dataValueSets", json=body, auth=CLERK, timeout=0.3)
    admin = requests.post(
        standin.url + "/__standin__/faults",
        json={"kind": "status", "status": 502, "path": "/api/me"},
    )
    assert admin.json()["faults"][0]["status"] == 502
    assert requests.get(standin.url + "/api/me", auth=CLERK).status_code == 502
    posts = standin.store.posts("/api/dataValueSets")
    assert [p.fault for p in posts] == ["status", "status", None, "drop", "delay"]
    assert all(json.loads(p.body) == body for p in posts)
    assert standin.store.settled(), "the delayed request never finished"
    assert sum(1 for a in standin.store.audit if a.audit_type == "UPDATE") == 0


def test_default_metadata_from_the_deployment(dhis2: StandinFactory) -> None:
    from devstack import deployment as dep

    standin = dhis2("2.41.1", metadata=copy.deepcopy(dep.dhis2_metadata()))
    body = {
        "dataSet": dep.DS_MONTHLY,
        "period": "202410",
        "orgUnit": dep.OU_CHU[0],
        "dataValues": [
            {"dataElement": dep.DE_BIRTHS, "value": "3"},
            {
                "dataElement": dep.DE_ANC_VISITS,
                "categoryOptionCombo": dep.COC_UNDER_20,
                "value": "2",
            },
        ],
    }
    summary = summary_of(post(standin, body, auth=ADMIN))
    assert summary["importCount"]["imported"] == 2
    assert (
        dep.DE_BIRTHS,
        "202410",
        dep.OU_CHU[0],
        dep.DEFAULT_COC,
        dep.DEFAULT_COC,
    ) in standin.store.values()
