"""The audit's cells, decided by the push planner itself: ``push.push`` with an audit's
``compare`` (steps 3 to 5 over mocked HTTP, as in test_dhis2_client), each plan
classified by ``audit.classify``. Nothing is ever posted.

The reference data set: Measles is INTEGER_ZERO_OR_POSITIVE and Dysentery NUMBER, both
zero-insignificant (DHIS2 stores their zeros as no value); Cholera is NUMBER and
zero-significant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses

from mediator.model.report import DataSetResult, RunReport
from mediator.run.audit import Audit, Cell, PairAudit, cells_csv, classify
from mediator.run.push import Compared, push
from mediator.run.request import RunRequest

from .test_dhis2_client import (
    CHOLERA,
    DEFAULT,
    DS,
    DVS,
    DYSENTERY,
    INFO,
    MEASLES,
    META,
    OU,
    OU2,
    PERIOD,
    Harness,
    dv,
    example,
    held_value,
    serve_user,
)

FOREIGN = "cDw53Ej8rju"  # assigned to the data set in DHIS2, no CHT place carries it


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def serve(
    mock: responses.RequestsMock,
    held: list[dict[str, Any]],
    assigned: list[str] | None = None,
) -> None:
    mock.get(INFO, json=example("constructed_get_system_info_nonsuperuser_241.json"))
    serve_user(mock)
    meta = example("constructed_get_dataSet_with_fields.json")
    if assigned is not None:
        meta["organisationUnits"] = [{"id": ou} for ou in assigned]
    mock.get(META, json=meta)
    mock.get(DVS, json={"dataSet": DS, "dataValues": held})


def compared(mock: responses.RequestsMock, rows: list[Any], **kw: Any) -> list[Compared]:
    """What an audit's ``compare`` receives from ``push``; nothing may be posted."""
    got: list[Compared] = []
    h = Harness(mock)
    push(h.client, DS, PERIOD, rows, compare=got.append, **kw)
    assert h.calls("POST", DVS) == []
    return got


def cells(mock: responses.RequestsMock, rows: list[Any], **kw: Any) -> tuple[dict, list[Cell]]:
    (one,) = compared(mock, rows, **kw)
    return classify(one)


def cell(de: str, state: str, dhis2: str | None, computed: str | None, **kw: Any) -> Cell:
    by = kw.pop("stored_by", "admin" if dhis2 is not None else None)
    ou = kw.pop("ou", OU)
    return Cell(DS, PERIOD, ou, de, DEFAULT, DEFAULT, state, dhis2, computed, by)


def test_a_zero_dhis2_stores_as_no_value_equals_no_value_and_differs_from_a_value(mock):
    # Measles 0 where DHIS2 holds nothing: equal. Dysentery 0 where DHIS2 holds 3: the
    # push would clear it, so it differs, both values shown. Cholera's zero is a value:
    # where DHIS2 holds nothing it is only computed.
    serve(mock, [held_value(DYSENTERY, "3")])
    counts, found = cells(mock, [dv(MEASLES, 0), dv(DYSENTERY, 0), dv(CHOLERA, 0)])
    assert found == [
        cell(DYSENTERY, "differs", "3", "0"),
        cell(CHOLERA, "only_computed", None, "0"),
    ]
    assert counts["equal"] == 1 and counts["differs"] == 1 and counts["only_computed"] == 1


@pytest.mark.parametrize(
    ("de", "held", "computed", "equal"),
    [
        (DYSENTERY, "5.0", 5, True),  # DHIS2 normalises; the planner compares numbers
        (DYSENTERY, "2.50", 2.5, True),
        (CHOLERA, "0.0", 0, True),  # a significant zero, stored as "0.0"
        (MEASLES, "12", 12.0, True),  # an integer total summed as a float
        (DYSENTERY, "5.01", 5, False),
        (MEASLES, "12", 13, False),
    ],
)
def test_numbers_are_equal_as_the_planner_decides(mock, de, held, computed, equal):
    serve(mock, [held_value(de, held)])
    counts, found = cells(mock, [dv(de, computed)])
    if equal:
        assert found == [] and counts["equal"] == 1
    else:
        text = str(computed)
        assert found == [cell(de, "differs", held, text)] and counts["differs"] == 1


def test_a_key_the_engine_no_longer_produces_is_only_in_dhis2(mock):
    serve(mock, [held_value(MEASLES, "12"), held_value(MEASLES, "9", ou=OU2)])
    counts, found = cells(mock, [dv(MEASLES, 12)], scope_org_units=[OU2])
    assert found == [cell(MEASLES, "only_in_dhis2", "9", None, ou=OU2)]
    assert counts["equal"] == 1 and counts["only_in_dhis2"] == 1


def stored(de: str, value: str, ou: str, by: str) -> dict[str, Any]:
    return {**held_value(de, value, ou=ou), "storedBy": by}


def test_at_an_org_unit_cht_no_longer_maps_our_values_are_only_in_dhis2_a_persons_left_alone(
    mock,
):
    # the sweep's batch: FOREIGN is assigned to the data set; the integration user
    # ("mediator") stored Measles there, a person ("jane") typed Cholera
    serve(
        mock,
        [stored(MEASLES, "4", FOREIGN, "mediator"), stored(CHOLERA, "7", FOREIGN, "jane")],
        assigned=[OU, FOREIGN],
    )
    mapped = [(MEASLES, None, None), (CHOLERA, None, None)]
    counts, found = cells(mock, [], mapped=mapped, sweep_assigned=True, owned_org_units=[OU])
    assert found == [
        cell(MEASLES, "only_in_dhis2", "4", None, ou=FOREIGN, stored_by="mediator"),
        cell(CHOLERA, "left_alone", "7", None, ou=FOREIGN, stored_by="jane"),
    ]
    assert counts["only_in_dhis2"] == 1 and counts["left_alone"] == 1


def test_values_at_an_org_unit_dhis2_would_not_say_are_not_compared(mock):
    mock.get(INFO, json=example("constructed_get_system_info_nonsuperuser_241.json"))
    serve_user(mock)
    mock.get(META, json=example("constructed_get_dataSet_with_fields.json"))

    def read(request: Any) -> tuple[int, dict[str, str], str]:
        if "orgUnit=bbbbbbbbbbb" in request.url:
            return 409, {}, '{"httpStatusCode": 409, "message": "not readable"}'
        return 200, {}, '{"dataValues": []}'

    mock.add_callback(responses.GET, DVS, callback=read)
    counts, found = cells(mock, [dv(MEASLES, 4), dv(MEASLES, 4, ou="bbbbbbbbbbb")])
    assert found == [cell(MEASLES, "only_computed", None, "4")]
    assert counts["not_compared"] == 1  # not "only computed": DHIS2 may hold it


def pair(**counts: int) -> PairAudit:
    p = PairAudit(DS, PERIOD)
    p.counts.update(counts)
    return p


def an_audit(*pairs: PairAudit, org_unit: str | None = None) -> Audit:
    request = RunRequest(org_unit=org_unit)
    report = RunReport(
        run_id="r", results=[DataSetResult(data_set=p.data_set, period=p.period) for p in pairs]
    )
    return Audit(request, report, list(pairs), [])


def test_the_status_and_the_repair_follow_the_cells():
    assert an_audit(pair(equal=3, left_alone=2)).status == "agrees"
    assert an_audit(pair(equal=3, left_alone=2)).repair() == []
    differing = an_audit(pair(equal=3, only_in_dhis2=1), org_unit=OU)
    assert differing.status == "differs"
    assert differing.repair() == [
        f"python -m mediator push --data-set {DS} --period {PERIOD} --org-unit {OU}"
    ]
    unread = pair(equal=3, not_compared=2)
    unread.unread = [OU2]
    assert an_audit(unread).status == "incomplete" and an_audit(unread).repair() == []
    held = pair(equal=3)
    held.held = [OU2]  # said, and no reason to exit 1: a push leaves them too
    assert an_audit(held).status == "agrees"


def test_the_csv_has_a_row_per_cell_and_empty_fields_for_no_value():
    text = cells_csv([cell(MEASLES, "only_computed", None, "4")])
    assert text.splitlines() == [
        "data_set,period,org_unit,data_element,category_option_combo,"
        "attribute_option_combo,state,dhis2_value,computed_value,stored_by",
        f"{DS},{PERIOD},{OU},{MEASLES},{DEFAULT},{DEFAULT},only_computed,,4,",
    ]
