"""The DHIS2 stand-in against DHIS2's own import rules, release by release, over HTTP.

Each test pushes with ``POST /api/dataValueSets`` and reads back with
``GET /api/dataValueSets`` (as a superuser "root"), so what is asserted is what the
server answered and what it ended up storing. The rules and their boundaries are
dhis2-core's code at the tags named in each test (DataSet.isLocked,
DataInputPeriod, DataValueSetImportValidator, DefaultDataValueSetService).

Scenario: data set DS (Monthly, expiryDays 10) assigned to OU; period January 2024
(ends 2024-01-31), so the expiry boundary is around 2024-02-10/11.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from devstack.dhis2_standin import Dhis2StandIn, Dhis2Version

DS, DS2 = "pBOMPrpg1QX", "QX4ZTUbOt3a"
ROOT, DISTRICT = "ImspTQPwCqd", "YuQRtpLP10I"
OU, OU2, OTHER = "DiszpKrYNg8", "FNnj3jKGS7i", "jUb8gELQApl"  # OTHER is not under DISTRICT
DE, PCT = "f7n9E0hX8qk", "Ix2HsbDMLea"
COC, CC = "HllvX50cXC0", "bjDvmb4bfuf"
CC_AGE, COC_YOUNG, CO_YOUNG = "t3aNCvHsoSn", "S34ULMcHMca", "FbLZS3ueWbQ"
ADMIN = ("admin", "district")  # the realistic integration user (no ALL, no F_EDIT_EXPIRED)
ROOT_USER = ("root", "Root-pass-1")  # a superuser, to read back what is stored
JAN = "202401"
T0 = datetime(2024, 2, 5, 10, 0)


def metadata(expiry: float = 10, **ds_extra: Any) -> dict[str, Any]:
    def element(ident: str, value_type: str) -> dict[str, Any]:
        return {
            "id": ident,
            "name": ident,
            "valueType": value_type,
            "zeroIsSignificant": False,
            "aggregationType": "SUM",
            "categoryCombo": {"id": CC},
        }

    return {
        "defaultCategoryOptionCombo": COC,
        "categoryCombos": [
            {"id": CC, "name": "default", "categoryOptionCombos": [{"id": COC}]},
            {
                "id": CC_AGE,
                "name": "Age",
                "categoryOptionCombos": [
                    {"id": COC_YOUNG, "name": "<20y", "categoryOptions": [{"id": CO_YOUNG}]}
                ],
            },
        ],
        "dataElements": [
            element(DE, "INTEGER_ZERO_OR_POSITIVE"),
            element(PCT, "PERCENTAGE"),
        ],
        "dataSets": [
            {
                "id": DS,
                "name": "Monthly",
                "periodType": "Monthly",
                "expiryDays": expiry,
                "openFuturePeriods": 0,
                "categoryCombo": {"id": CC},
                "dataSetElements": [{"dataElement": {"id": DE}}, {"dataElement": {"id": PCT}}],
                "organisationUnits": [{"id": OU}],
                **ds_extra,
            }
        ],
        "organisationUnits": [
            {"id": ROOT, "name": "Sierra Leone"},
            {"id": "O6uvpzGd5pu", "name": "Bo", "parent": {"id": ROOT}},
            {"id": DISTRICT, "name": "Badjia", "parent": {"id": "O6uvpzGd5pu"}},
            {"id": OU, "name": "Ngelehun CHC", "parent": {"id": DISTRICT}},
            {"id": OU2, "name": "Bandajuma MCHP", "parent": {"id": DISTRICT}},
            {"id": OTHER, "name": "Kailahun", "parent": {"id": ROOT}},
        ],
        "users": [
            {"username": ROOT_USER[0], "password": ROOT_USER[1], "authorities": ["ALL"]},
        ],
    }


def second_data_set(md: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """DS2: also holds DE, at OU, never expires."""
    ds2 = {
        "id": DS2,
        "name": "Monthly bis",
        "periodType": "Monthly",
        "expiryDays": 0,
        "openFuturePeriods": 0,
        "categoryCombo": {"id": CC},
        "dataSetElements": [{"dataElement": {"id": DE}}],
        "organisationUnits": [{"id": OU}],
        **extra,
    }
    md["dataSets"].append(ds2)
    return md


Factory = Callable[..., Dhis2StandIn]


@pytest.fixture
def dhis2() -> Iterator[Factory]:
    started: list[Dhis2StandIn] = []

    def start(version: str, md: dict[str, Any] | None = None, **kwargs: Any) -> Dhis2StandIn:
        when = kwargs.pop("now", T0)
        standin = Dhis2StandIn(md or metadata(), version, **kwargs)
        standin.set_now(when)
        started.append(standin.start())
        return standin

    yield start
    for standin in started:  # a server stops after its 0.5 s poll: off the test's clock
        threading.Thread(target=standin.stop, daemon=True).start()


def push(
    standin: Dhis2StandIn,
    values: list[dict[str, Any]],
    auth: tuple[str, str] = ADMIN,
    period: str = JAN,
    header: dict[str, Any] | None = None,
    **params: str,
) -> requests.Response:
    body = {"dataSet": DS, "period": period, "orgUnit": OU} if header is None else header
    body = {**body, "dataValues": values}
    return requests.post(
        f"{standin.url}/api/dataValueSets",
        data=json.dumps(body),
        params=params,
        headers={"Content-Type": "application/json"},
        auth=auth,
        timeout=10,
    )


def summary(resp: requests.Response) -> dict[str, Any]:
    body = resp.json()
    return body["response"] if "httpStatusCode" in body else body  # type: ignore[no-any-return]


def codes(resp: requests.Response) -> list[str]:
    return [c["errorCode"] for c in summary(resp)["conflicts"]]


def held(standin: Dhis2StandIn, period: str = JAN, ou: str = OU) -> dict[str, str]:
    """What ``GET /api/dataValueSets`` gives back: data element -> value."""
    resp = requests.get(
        f"{standin.url}/api/dataValueSets",
        params={"dataSet": DS, "period": period, "orgUnit": ou},
        auth=ROOT_USER,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {v["dataElement"]: v["value"] for v in resp.json()["dataValues"]}


def one(value: str, de: str = DE) -> list[dict[str, Any]]:
    return [{"dataElement": de, "value": value}]


MS = timedelta(milliseconds=1)
OLD_LAST = datetime(2024, 2, 10)  # end (Jan 31 00:00) + 10 days, not yet "before" now
NEW_LAST = datetime(2024, 2, 10, 23, 59, 59, 999000)  # the day end + 10 is open all day
NEW_FIRST = datetime(2024, 2, 11)
V242_LAST = datetime(2024, 2, 11)  # end + 1 day + 10 days, to the instant


# -- expiryDays: the boundary per release ---------------------------------------------


@pytest.mark.parametrize(
    ("version", "last_open", "first_locked"),
    [
        ("2.36.13", OLD_LAST, OLD_LAST + MS),
        ("2.37.9", OLD_LAST, OLD_LAST + MS),
        ("2.37.10", NEW_LAST, NEW_FIRST),
        ("2.38.3", OLD_LAST, OLD_LAST + MS),
        ("2.38.4", NEW_LAST, NEW_FIRST),
        ("2.39.1", OLD_LAST, OLD_LAST + MS),
        ("2.39.2", NEW_LAST, NEW_FIRST),
        ("2.40.0", NEW_LAST, NEW_FIRST),
        ("2.41.1", NEW_LAST, NEW_FIRST),
        ("2.42.0", V242_LAST, V242_LAST + MS),
    ],
)
def test_expiry_days_boundary_per_release(
    dhis2: Factory, version: str, last_open: datetime, first_locked: datetime
) -> None:
    standin = dhis2(version, now=last_open)
    accepted = push(standin, one("5"))
    assert summary(accepted)["status"] == "SUCCESS" and held(standin) == {DE: "5"}
    standin.set_now(first_locked)
    refused = push(standin, one("6"))
    conflict = summary(refused)["conflicts"][0]
    if version.startswith("2.36"):
        assert refused.status_code == 200
        assert conflict == {
            "object": JAN,
            "value": f"Current date is past expiry days for period {JAN} and data set: {DS}",
        }
    else:
        # the raw entry's period: sent at set level only, MessageFormat prints null
        assert conflict["errorCode"] == "E7640"
        assert conflict["value"] == (
            f"Current date is past expiry days for period: `null`  and data set: `{DS}`"
        )
    assert held(standin) == {DE: "5"}  # the locked push changed nothing


def test_242_counts_fractional_expiry_days_and_241_truncates_them(dhis2: Factory) -> None:
    half_day = metadata(expiry=0.5)
    noon = datetime(2024, 2, 1, 12)  # Jan 31 + 1 day + 0.5 day
    s242 = dhis2("2.42.0", half_day, now=noon)
    assert summary(push(s242, one("1")))["status"] == "SUCCESS"
    s242.set_now(noon + MS)
    assert codes(push(s242, one("2"))) == ["E7640"]
    assert held(s242) == {DE: "1"}
    # an int field on 2.41: 0.5 becomes 0, "never expires"
    s241 = dhis2("2.41.1", metadata(expiry=0.5), now=datetime(2030, 1, 1))
    assert summary(push(s241, one("3")))["status"] == "SUCCESS" and held(s241) == {DE: "3"}


# -- who is never locked ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.41.1", "2.42.0"])
def test_lock_exception_opens_an_expired_period_for_its_org_unit_only(
    dhis2: Factory, version: str
) -> None:
    md = metadata()
    md["dataSets"][0]["organisationUnits"].append({"id": OU2})
    standin = dhis2(version, md, now=datetime(2024, 3, 1))
    assert codes(push(standin, one("5"))) == ["E7640"]
    url = f"{standin.url}/api/lockExceptions"
    # the integration user may not make one: no metadata write on the data set
    denied = requests.post(url, params={"ou": OU, "pe": JAN, "ds": DS}, auth=ADMIN, timeout=10)
    assert denied.status_code == 403
    assert denied.json()["message"] == "You don't have the proper permissions to update this object"
    made = requests.post(url, params={"ou": OU, "pe": JAN, "ds": DS}, auth=ROOT_USER, timeout=10)
    assert made.status_code == 201
    assert made.json()["message"] == "LockException created successfully."
    listed = requests.get(url, auth=ROOT_USER, timeout=10).json()["lockExceptions"]
    assert [
        (e["dataSet"]["id"], e["period"]["id"], e["organisationUnit"]["id"]) for e in listed
    ] == [(DS, JAN, OU)]
    assert listed[0]["name"] == "Monthly (Ngelehun CHC, January 2024)"
    assert summary(push(standin, one("5")))["status"] == "SUCCESS"
    assert held(standin) == {DE: "5"}
    # the exception is for OU: OU2 stays locked
    assert codes(push(standin, one("7"), header={"dataSet": DS, "period": JAN, "orgUnit": OU2}))
    assert held(standin, ou=OU2) == {}
    gone = requests.delete(url, params={"ou": OU, "pe": JAN, "ds": DS}, auth=ROOT_USER, timeout=10)
    assert gone.status_code == 204
    assert codes(push(standin, one("6"))) == ["E7640"] and held(standin) == {DE: "5"}


def test_lock_exception_api_refuses_unlinked_org_units_per_release(dhis2: Factory) -> None:
    params = {"ou": OU2, "pe": JAN, "ds": DS}  # OU2 is not assigned to DS
    new = dhis2("2.41.1")
    resp = requests.post(f"{new.url}/api/lockExceptions", params=params, auth=ROOT_USER, timeout=10)
    assert resp.status_code == 409
    assert resp.json()["message"] == (
        f"None of the target organisation unit(s) {OU2} is linked to the specified data set: {DS}"
    )
    old = dhis2("2.37.9")
    resp = requests.post(f"{old.url}/api/lockExceptions", params=params, auth=ROOT_USER, timeout=10)
    assert resp.status_code == 204
    assert old.store.lock_exceptions == [] and new.store.lock_exceptions == []


@pytest.mark.parametrize("version", ["2.41.1", "2.42.0"])
def test_f_edit_expired_is_never_locked(dhis2: Factory, version: str) -> None:
    standin = dhis2(version, now=datetime(2024, 6, 1))
    standin.add_user(
        {
            "username": "late",
            "password": "Late-pass-1",
            "authorities": ["F_DATAVALUE_ADD", "F_EDIT_EXPIRED"],
        }
    )
    assert codes(push(standin, one("5"))) == ["E7640"] and held(standin) == {}
    late = push(standin, one("5"), auth=("late", "Late-pass-1"))
    assert late.status_code == 200 and held(standin) == {DE: "5"}
    # the realistic default user holds neither ALL nor F_EDIT_EXPIRED, and /api/me says so
    me = requests.get(f"{standin.url}/api/me?fields=authorities", auth=ADMIN, timeout=10).json()
    assert me == {"authorities": ["F_DATAVALUE_ADD"]}


def test_force_skips_locks_for_superusers_only(dhis2: Factory) -> None:
    standin = dhis2("2.41.1", now=datetime(2024, 6, 1))
    standin.add_lock_exception(DS, JAN, OTHER)  # an exception elsewhere changes nothing
    assert codes(push(standin, one("5"), force="true")) == ["E7640"]
    future = push(standin, one("9"), auth=ROOT_USER, period="202406")
    assert codes(future) == ["E7641"]
    assert (
        summary(push(standin, one("9"), auth=ROOT_USER, period="202406", force="true"))["status"]
        == "SUCCESS"
    )
    assert held(standin, period="202406") == {DE: "9"} and held(standin) == {}


# -- dataInputPeriods and openFuturePeriods ---------------------------------------------


INPUT = [
    {
        "period": {"id": JAN},
        "openingDate": "2024-02-01T00:00:00.000",
        "closingDate": "2024-02-15T00:00:00.000",
    }
]


@pytest.mark.parametrize(
    ("version", "when", "open_"),
    [
        ("2.39.1", datetime(2024, 2, 1), False),  # exact: not after the opening instant
        ("2.39.1", datetime(2024, 2, 1, 0, 0, 1), True),
        ("2.39.1", datetime(2024, 2, 14, 23, 59, 59), True),
        ("2.39.1", datetime(2024, 2, 15), False),  # not before the closing instant
        ("2.39.2", datetime(2024, 2, 1), True),  # whole days, both ends inclusive
        ("2.39.2", datetime(2024, 2, 15, 23, 59, 59), True),
        ("2.39.2", datetime(2024, 2, 16), False),
        ("2.37.9", datetime(2024, 2, 15, 12), False),
        ("2.37.10", datetime(2024, 2, 15, 12), True),
    ],
)
def test_data_input_periods_per_release(
    dhis2: Factory, version: str, when: datetime, open_: bool
) -> None:
    standin = dhis2(version, metadata(expiry=0, dataInputPeriods=INPUT), now=when)
    resp = push(standin, one("4"))
    if open_:
        assert summary(resp)["status"] == "SUCCESS" and held(standin) == {DE: "4"}
    else:
        assert codes(resp) == ["E7643"] and held(standin) == {}


@pytest.mark.parametrize(("version", "accepted"), [("2.39.0", True), ("2.39.1", False)])
def test_open_future_periods_per_element_then_per_data_set(
    dhis2: Factory, version: str, accepted: bool
) -> None:
    """Up to 2.39.0 the element's most open data set decides; from 2.39.1 the data set."""
    md = second_data_set(metadata(expiry=0), openFuturePeriods=3)
    standin = dhis2(version, md, now=datetime(2024, 1, 15))
    resp = push(standin, one("2"), period="202402")  # next month, sent for DS (0 future)
    if accepted:
        assert summary(resp)["status"] == "SUCCESS" and held(standin, "202402") == {DE: "2"}
    else:
        conflict = summary(resp)["conflicts"][0]
        assert conflict["errorCode"] == "E7641"
        # the raw entry period: given at set level only, so null
        assert conflict["objects"] == {"period": None, "dataElement": DE, "dataSet": DS}
        assert held(standin, "202402") == {}


def test_all_target_data_sets_must_be_open_unless_the_setting_says_otherwise(
    dhis2: Factory,
) -> None:
    """2.39.1+: without a set-level dataSet every target data set is checked;
    keyDataImportStrictDataSetLocking (default true) says whether one open is enough."""
    md = second_data_set(metadata())  # DS expires after 10 days, DS2 never
    header = {"period": JAN, "orgUnit": OU}
    strict = dhis2("2.41.1", md, now=datetime(2024, 3, 1))
    assert codes(push(strict, one("3"), header=header)) == ["E7640"] and held(strict) == {}
    lenient = dhis2(
        "2.41.1",
        second_data_set(metadata()),
        now=datetime(2024, 3, 1),
        settings={"keyDataImportStrictDataSetLocking": False},
    )
    assert summary(push(lenient, one("3"), header=header))["status"] == "SUCCESS"
    assert held(lenient) == {DE: "3"}


# -- release boundaries of the write rules ----------------------------------------------


@pytest.mark.parametrize(("version", "left"), [("2.36.6", "4"), ("2.36.7", None)])
def test_zero_deletes_an_existing_value_from_2_36_7(
    dhis2: Factory, version: str, left: str | None
) -> None:
    standin = dhis2(version, metadata(expiry=0))
    standin.store.seed(DE, JAN, OU, "4")
    counts = push(standin, one("0")).json()["importCount"]
    assert held(standin).get(DE) == left
    assert counts["deleted"] == (0 if left else 1) and counts["ignored"] == (1 if left else 0)


@pytest.mark.parametrize(("version", "deleted"), [("2.36.6", False), ("2.36.7", True)])
def test_null_value_with_delete_strategy_from_2_36_7(
    dhis2: Factory, version: str, deleted: bool
) -> None:
    standin = dhis2(version, metadata(expiry=0))
    standin.store.seed(DE, JAN, OU, "4")
    body = push(standin, [{"dataElement": DE}], importStrategy="DELETE").json()
    if deleted:
        assert body["conflicts"] == [] and held(standin) == {}
    else:
        assert body["conflicts"] == [
            {
                "object": "Value",
                "value": f"Data value or comment not specified for data element: {DE}",
            }
        ]
        assert held(standin) == {DE: "4"}


@pytest.mark.parametrize(
    ("version", "present"),
    [("2.39.1", False), ("2.39.2", True), ("2.40.0", False), ("2.40.1", True), ("2.41.1", True)],
)
def test_rejected_indexes_exist_from_2_39_2_and_2_40_1(
    dhis2: Factory, version: str, present: bool
) -> None:
    standin = dhis2(version, metadata(expiry=0))
    resp = push(standin, [*one("1"), {"dataElement": "aaaaaaaaaaa", "value": "1"}])
    got = summary(resp)
    assert ("rejectedIndexes" in got) is present
    if present:
        assert got["rejectedIndexes"] == [1]
    assert held(standin) == {DE: "1"}


def test_percentage_takes_decimals_from_0_to_100(dhis2: Factory) -> None:
    standin = dhis2("2.41.1", metadata(expiry=0))
    resp = push(standin, [{"dataElement": PCT, "value": "12.5"}])
    assert summary(resp)["status"] == "SUCCESS" and held(standin) == {PCT: "12.5"}
    over = summary(push(standin, [{"dataElement": PCT, "value": "100.5"}]))["conflicts"][0]
    assert over["errorCode"] == "E7619" and over["objects"]["value"] == "value_not_percentage"
    assert held(standin) == {PCT: "12.5"}


@pytest.mark.parametrize(
    ("version", "aborts"),
    [
        ("2.37.9", True),
        ("2.37.10", False),
        ("2.38.3", True),
        ("2.38.4", False),
        ("2.39.1", True),
        ("2.39.2", False),
    ],
)
def test_e7602_strict_data_elements_without_data_set(
    dhis2: Factory, version: str, aborts: bool
) -> None:
    standin = dhis2(version, metadata(expiry=0))
    resp = push(standin, one("8"), header={"period": JAN, "orgUnit": OU}, strictDataElements="true")
    got = summary(resp)
    if aborts:
        assert got["status"] == "ERROR" and codes(resp) == ["E7602"] and held(standin) == {}
    else:
        assert got["status"] == "SUCCESS" and held(standin) == {DE: "8"}


# -- sharing, hierarchy, approval, strict settings ----------------------------------------


def test_e7601_no_data_write_sharing_aborts(dhis2: Factory) -> None:
    standin = dhis2("2.41.1", metadata(expiry=0))
    standin.user("admin").data_set_access = {DS: "r-r-----"}  # may view data, not capture
    resp = push(standin, one("5"))
    assert resp.status_code == 409 and summary(resp)["status"] == "ERROR"
    assert summary(resp)["conflicts"] == [
        {
            "object": DS,
            "objects": {"dataSet": DS},
            "value": f"User does not have write access for DataSet: `{DS}`",
            "errorCode": "E7601",
            "property": "dataSet",
        }
    ]
    assert held(standin) == {}


def test_e2010_no_data_read_sharing_refuses_the_read(dhis2: Factory) -> None:
    standin = dhis2("2.41.1", metadata(expiry=0))
    standin.user("admin").data_set_access = {DS: "r--w----"}  # capture, but not read
    assert summary(push(standin, one("5")))["status"] == "SUCCESS"
    resp = requests.get(
        f"{standin.url}/api/dataValueSets",
        params={"dataSet": DS, "period": JAN, "orgUnit": OU},
        auth=ADMIN,
        timeout=10,
    )
    assert resp.status_code == 409
    assert resp.json() == {
        "httpStatus": "Conflict",
        "httpStatusCode": 409,
        "status": "ERROR",
        "message": f"User is not allowed to read data for data set: `{DS}`",
        "errorCode": "E2010",
    }


def test_e2012_org_unit_outside_the_data_view_units(dhis2: Factory) -> None:
    standin = dhis2("2.41.1", metadata(expiry=0))
    standin.add_user({"username": "kailahun", "password": "K-pass-1", "organisationUnits": [OTHER]})
    standin.add_user(
        {
            "username": "viewer",
            "password": "V-pass-1",
            "organisationUnits": [OTHER],
            "dataViewOrganisationUnits": [DISTRICT],
        }
    )
    params = {"dataSet": DS, "period": JAN, "orgUnit": OU}
    url = f"{standin.url}/api/dataValueSets"
    refused = requests.get(url, params=params, auth=("kailahun", "K-pass-1"), timeout=10)
    assert refused.status_code == 409 and refused.json()["errorCode"] == "E2012"
    assert refused.json()["message"] == f"User is not allowed to view org unit: `{OU}`"
    # data view units, when set, replace the capture units for reading
    assert requests.get(url, params=params, auth=("viewer", "V-pass-1"), timeout=10).ok


def test_e7614_and_e7616_category_option_without_data_write(dhis2: Factory) -> None:
    for version in ("2.41.1", "2.36.13"):
        standin = dhis2(version, metadata(expiry=0))
        standin.user("admin").category_option_access = {CO_YOUNG: "rwr-----"}
        values = [
            {"dataElement": DE, "categoryOptionCombo": COC_YOUNG, "value": "1"},
            {"dataElement": PCT, "attributeOptionCombo": COC_YOUNG, "value": "2"},
        ]
        got = summary(push(standin, values))
        if version == "2.41.1":
            assert [(c["errorCode"], c["objects"], c["value"]) for c in got["conflicts"]] == [
                (
                    "E7614",
                    {"categoryOptionCombo": COC_YOUNG, "categoryOption": CO_YOUNG},
                    f"Category option combo: `{COC_YOUNG}` option not accessible: `{CO_YOUNG}`",
                ),
                (
                    "E7616",
                    {"categoryOptionCombo": COC_YOUNG, "categoryOption": CO_YOUNG},
                    f"Attribute option combo: `{COC_YOUNG}` option not accessible: `{CO_YOUNG}`",
                ),
            ]
        else:  # 2.36: the same text for both, object "dataValueSet", kept in a set
            assert got["conflicts"] == [
                {
                    "object": "dataValueSet",
                    "value": f"User has no data write access for CategoryOption: {CO_YOUNG}",
                }
            ]
        assert held(standin) == {}


@pytest.mark.parametrize(
    ("version", "text"),
    [
        (
            "2.38.6",
            f"Data is already approved for data set: `{DS}` period: `null` "
            "organisation unit: `null` attribute option combo: `null`",
        ),
        (
            "2.41.1",
            f"Data already approved for data set: `{DS}` period: `null` "
            "org unit: `null` attribute option combo: `null`",
        ),
    ],
)
def test_e7642_approved_data_is_not_changed(dhis2: Factory, version: str, text: str) -> None:
    standin = dhis2(version, metadata(expiry=0))
    assert summary(push(standin, one("5")))["status"] == "SUCCESS"
    standin.approve(DS, JAN, OU)
    conflict = summary(push(standin, one("6")))["conflicts"][0]
    assert conflict["errorCode"] == "E7642" and conflict["value"] == text
    assert conflict["objects"] == {
        "organisationUnit": None,
        "period": None,
        "categoryOptionCombo": None,
        "dataSet": DS,
    }
    assert held(standin) == {DE: "5"}


@pytest.mark.parametrize("version", ["2.36.13", "2.40.3", "2.42.0"])
def test_strict_org_units_system_setting_gives_e7636(dhis2: Factory, version: str) -> None:
    standin = dhis2(version, metadata(expiry=0))
    key = "keyDataImportStrictOrganisationUnits"
    setting = f"{standin.url}/api/systemSettings/{key}"
    assert requests.get(setting, auth=ADMIN, timeout=10).json() == {key: False}
    header = {"dataSet": DS, "period": JAN, "orgUnit": OU2}  # OU2 is not assigned to DS
    assert summary(push(standin, one("1"), header=header))["status"] == "SUCCESS"
    # only a user with F_SYSTEM_SETTING (or ALL) may change it
    assert (
        requests.post(setting, params={"value": "true"}, auth=ADMIN, timeout=10).status_code == 403
    )
    set_ = requests.post(setting, params={"value": "true"}, auth=ROOT_USER, timeout=10)
    assert set_.status_code == 200
    assert requests.get(setting, auth=ADMIN, timeout=10).json() == {key: True}
    plain = requests.get(setting, auth=ADMIN, headers={"Accept": "text/plain"}, timeout=10)
    assert plain.text == "true"
    resp = push(standin, one("2"), header=header)
    if version.startswith("2.36"):
        assert resp.json()["conflicts"] == [
            {
                "object": OU2,
                "value": f"Data element: {DE} must be assigned through data sets to "
                f"organisation unit: {OU2}",
            }
        ]
    else:
        assert codes(resp) == ["E7636"]
    assert held(standin, ou=OU2) == {DE: "1"}


@pytest.mark.parametrize(("version", "status"), [("2.40.3", 200), ("2.41.1", 404), ("2.42.0", 404)])
def test_unknown_system_setting(dhis2: Factory, version: str, status: int) -> None:
    standin = dhis2(version)
    resp = requests.get(f"{standin.url}/api/systemSettings/keyNoSuchThing", auth=ADMIN, timeout=10)
    assert resp.status_code == status
    if status == 200:
        assert resp.json() == {"keyNoSuchThing": ""}


# -- /api/me per release -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "username", "credentials"),
    [
        ("2.36.13", False, True),
        ("2.37.10", False, True),
        ("2.40.3", True, True),
        ("2.42.0", True, False),
    ],
)
def test_me_shape_per_release(
    dhis2: Factory, version: str, username: bool, credentials: bool
) -> None:
    standin = dhis2(version)
    me = requests.get(f"{standin.url}/api/me", auth=ADMIN, timeout=10).json()
    assert ("username" in me) is username
    assert ("userCredentials" in me) is credentials
    if credentials:
        assert me["userCredentials"]["username"] == "admin"
    assert me["authorities"] == ["F_DATAVALUE_ADD"]
    only = requests.get(f"{standin.url}/api/me?fields=username", auth=ADMIN, timeout=10).json()
    assert only == ({"username": "admin"} if username else {})


# -- 2.36 texts, verbatim from DefaultDataValueSetService 2.36.13.2 ------------------------


def test_236_conflict_texts(dhis2: Factory) -> None:
    md = metadata(expiry=0, dataInputPeriods=INPUT)
    standin = dhis2("2.36.13", md, now=datetime(2024, 3, 1))
    standin.set_setting("keyDataImportRequireAttributeOptionCombo", True)
    long_comment = "c" * 50_001
    values = [
        {"dataElement": DE, "value": "1", "attributeOptionCombo": COC},
        {"dataElement": PCT, "value": "7"},
        {"dataElement": PCT, "value": "8", "attributeOptionCombo": COC, "comment": long_comment},
        {"dataElement": DE, "value": "9", "attributeOptionCombo": COC, "storedBy": "s" * 256},
    ]
    got = push(standin, values).json()
    assert sorted(got["conflicts"], key=lambda c: c["value"]) == sorted(
        [
            # E7643: the object is the org unit (DVSS:1335-1337)
            {
                "object": OU,
                "value": f"Period: {JAN} is not open for this data set at this time: {DS}",
            },
            # E7631: the object is the raw value (DVSS:1182-1183)
            {"object": "7", "value": "Attribute option combo is required but is not specified"},
            # E7620 (DVSS:1145), E7637 (DVSS storedByValid) with i18n_global texts
            {"object": "Comment", "value": "Comment is greater than max length"},
            {"object": "s" * 256, "value": "Stored by is greater than max length"},
        ],
        key=lambda c: c["value"],
    )
    assert got["importCount"] == {"imported": 0, "updated": 0, "ignored": 4, "deleted": 0}
    assert held(standin) == {}


def test_236_strict_attribute_option_combo_text(dhis2: Factory) -> None:
    standin = dhis2("2.36.13", metadata(expiry=0))
    values = [{"dataElement": DE, "value": "1", "attributeOptionCombo": COC_YOUNG}]
    got = push(standin, values, strictAttributeOptionCombos="true").json()
    assert got["conflicts"] == [
        {
            "object": COC_YOUNG,
            "value": f"Attribute option combo: {COC_YOUNG} must be part of category combo "
            f"of data sets of data element: {DE}",
        }
    ]


# -- clock and versions ---------------------------------------------------------------------


def test_the_clock_is_the_server_date(dhis2: Factory) -> None:
    standin = dhis2("2.41.1", now=datetime(2024, 2, 10, 23, 59, 59, 999000))
    info = requests.get(f"{standin.url}/api/system/info", auth=ADMIN, timeout=10).json()
    assert info["serverDate"] == "2024-02-10T23:59:59.999"
    standin.set_now(datetime(2024, 2, 11))
    info = requests.get(f"{standin.url}/api/system/info", auth=ADMIN, timeout=10).json()
    assert info["serverDate"] == "2024-02-11T00:00:00.000"


def test_full_patch_versions_parse_to_their_rules() -> None:
    flags = {
        raw: Dhis2Version.parse(raw)
        for raw in (
            "2.36.6", "2.36.7", "2.37.9", "2.37.10", "2.38.3", "2.38.4", "2.39.1",
            "2.39.2", "2.40.0", "2.40.1", "2.41.1", "2.42.0", "2.39.1.2",
        )
    }  # fmt: skip
    assert [r for r, v in flags.items() if v.zero_deletes_existing][:1] == ["2.36.7"]
    assert [r for r, v in flags.items() if v.delete_needs_value] == ["2.36.6"]
    assert [r for r, v in flags.items() if v.day_truncated_periods] == [
        "2.37.10", "2.38.4", "2.39.2", "2.40.0", "2.40.1", "2.41.1", "2.42.0",
    ]  # fmt: skip
    assert [r for r, v in flags.items() if v.rejected_indexes] == [
        "2.39.2", "2.40.1", "2.41.1", "2.42.0",
    ]  # fmt: skip
    assert [r for r, v in flags.items() if v.strict_elements_needs_dataset] == [
        "2.36.6", "2.36.7", "2.37.9", "2.38.3", "2.39.1", "2.39.1.2",
    ]  # fmt: skip
    assert flags["2.39.1.2"].target_data_sets and not flags["2.38.4"].target_data_sets
    with pytest.raises(ValueError):
        Dhis2Version.parse("2.35.9")


def test_attribute_option_combo_dates_org_units_and_file_deletes(dhis2: Factory) -> None:
    """E7638, E7639 and E7645 in 2.41 and 2.36 words."""
    for version in ("2.41.1", "2.36.13"):
        md = metadata(expiry=0)
        md["categoryCombos"][1]["categoryOptionCombos"] += [
            {"id": "aocEnded001", "endDate": "2023-12-31T00:00:00.000"},
            {"id": "aocOther001", "organisationUnits": [{"id": OTHER}]},
        ]
        md["dataElements"].append({"id": "fileDe00001", "name": "File", "valueType": "IMAGE"})
        md["dataSets"][0]["dataSetElements"].append({"dataElement": {"id": "fileDe00001"}})
        standin = dhis2(version, md)
        ended = [{"dataElement": DE, "attributeOptionCombo": "aocEnded001", "value": "1"}]
        elsewhere = [{"dataElement": DE, "attributeOptionCombo": "aocOther001", "value": "1"}]
        no_file = [{"dataElement": "fileDe00001", "period": JAN, "orgUnit": OU}]
        got = [
            summary(push(standin, ended))["conflicts"][0],
            summary(push(standin, elsewhere))["conflicts"][0],
            summary(push(standin, no_file, importStrategy="DELETE", header={}))["conflicts"][0],
        ]
        if version == "2.41.1":
            assert [(c["errorCode"], c["value"]) for c in got] == [
                (
                    "E7638",
                    "Period: `null` is not within date range of attribute option combo: "
                    "`aocEnded001`",
                ),
                (
                    "E7639",
                    "Organisation unit: `null` is not valid for attribute option combo: "
                    "`aocOther001`",
                ),
                (
                    "E7645",
                    "No data value for file resource exist for the given combination for "
                    "data element: `fileDe00001`",
                ),
            ]
        else:
            assert got == [
                {
                    "object": OU,
                    "value": f"Period: {JAN} is not within date range of attribute option "
                    "combo: aocEnded001",
                },
                {
                    "object": OU,
                    "value": f"Organisation unit: {OU} is not valid for attribute option "
                    "combo: aocOther001",
                },
                {
                    "object": "fileDe00001",
                    "value": "No data value for file resource exist for the given combination",
                },
            ]
        assert held(standin) == {}
