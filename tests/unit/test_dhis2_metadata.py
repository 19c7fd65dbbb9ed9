"""Preflight: what the data set's metadata says before anything is posted.

Uses the reference metadata body (``constructed_get_dataSet_with_fields.json``)
and the demo deployment's metadata, expanded the way DHIS2 answers the
``fields=`` request.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devstack import deployment as demo
from mediator.dhis2.metadata import DataSetMeta, format_number, normalise_stored, value_problem
from mediator.dhis2.preflight import check
from mediator.model.values import DataValue

EXAMPLES = Path(__file__).parent / "dhis2_examples"
NOW = datetime(2024, 11, 15, 10, 0, 0)  # the examples' server date
DS = "pBOMPrpg1QX"
MEASLES, DYSENTERY, CHOLERA = "f7n9E0hX8qk", "Ix2HsbDMLea", "eY5ehpbEsB7"
OU = "DiszpKrYNg8"


def reference_meta(**changes: Any) -> DataSetMeta:
    body = json.loads((EXAMPLES / "constructed_get_dataSet_with_fields.json").read_text())
    body.update(changes)
    return DataSetMeta.model_validate(body)


def demo_data_set(ident: str, chus: int = 4) -> dict[str, Any]:
    """A demo data set as ``GET /api/dataSets/{id}?fields=…`` returns it."""
    meta = demo.dhis2_metadata(chus)
    combos = {c["id"]: c for c in meta["categoryCombos"]}
    elements = {e["id"]: e for e in meta["dataElements"]}
    ds = next(d for d in meta["dataSets"] if d["id"] == ident)
    return {
        **ds,
        "categoryCombo": combos[ds["categoryCombo"]["id"]],
        "dataSetElements": [
            {
                "dataElement": {
                    **elements[dse["dataElement"]["id"]],
                    "categoryCombo": combos[
                        elements[dse["dataElement"]["id"]]["categoryCombo"]["id"]
                    ],
                }
            }
            for dse in ds["dataSetElements"]
        ],
    }


def dv(
    de: str, value: float, ou: str = OU, coc: str | None = None, aoc: str | None = None
) -> DataValue:
    return DataValue(
        dataElement=de, orgUnit=ou, value=value, categoryOptionCombo=coc, attributeOptionCombo=aoc
    )


def codes(pre: Any) -> list[str]:
    return [f.code for f in pre.findings]


def test_clean_rows_are_ready_with_values_formatted_as_dhis2_validates_them() -> None:
    pre = check(reference_meta(), DS, "202410", [dv(MEASLES, 12.0), dv(DYSENTERY, 2.5)], NOW)
    assert pre.findings == [] and not pre.blocked
    assert [(r.key, r.text) for r in pre.ready] == [
        ((MEASLES, OU, "HllvX50cXC0", "HllvX50cXC0"), "12"),  # INTEGER type: never "12.0"
        ((DYSENTERY, OU, "HllvX50cXC0", "HllvX50cXC0"), "2.5"),
    ]
    assert pre.period_type == "Monthly" and pre.name == "Mortality < 5 years"


def test_missing_data_set_blocks() -> None:
    pre = check(None, "zzzzzzzzzzz", "202410", [dv(MEASLES, 1)], NOW)
    assert pre.blocked and not pre.found
    assert codes(pre) == ["data_set_not_found"]
    assert "zzzzzzzzzzz" in pre.findings[0].message and pre.ready == []


def test_weekly_and_daily_data_sets_are_refused_with_the_reason() -> None:
    for period_type in ("Weekly", "Daily"):
        pre = check(reference_meta(periodType=period_type), DS, "2024W5", [dv(MEASLES, 1)], NOW)
        assert pre.blocked and pre.period_type == period_type
        assert codes(pre) == ["period_type_unsupported"]
        assert "CHT keeps targets by calendar month" in pre.findings[0].message


def test_a_period_of_another_type_than_the_data_set_is_refused() -> None:
    pre = check(reference_meta(periodType="Quarterly"), DS, "202410", [dv(MEASLES, 1)], NOW)
    assert pre.blocked and pre.period_type == "Quarterly"
    assert codes(pre) == ["period_type_mismatch"]
    assert "Monthly" in pre.findings[0].message and "Quarterly" in pre.findings[0].message


def test_quarterly_periods_lock_at_the_end_of_the_quarter() -> None:
    meta = reference_meta(periodType="Quarterly", expiryDays=60, openFuturePeriods=0)
    assert codes(check(meta, DS, "2024Q3", [dv(MEASLES, 1)], NOW)) == []  # 30 Sep + 60 d
    assert codes(check(meta, DS, "2024Q2", [dv(MEASLES, 1)], NOW)) == ["period_expired"]
    assert codes(check(meta, DS, "2024Q4", [dv(MEASLES, 1)], NOW)) == ["period_not_open_yet"]


def test_data_elements_outside_the_data_set_block_it_and_are_named() -> None:
    pre = check(reference_meta(), DS, "202410", [dv(MEASLES, 1), dv("aaaaaaaaaaa", 3)], NOW)
    assert pre.blocked and pre.ready == []
    assert codes(pre) == ["data_elements_not_in_data_set"]
    assert pre.findings[0].ids == ["aaaaaaaaaaa"]
    assert "aaaaaaaaaaa" in pre.findings[0].message


def test_unassigned_org_units_are_a_warning_and_their_values_still_go() -> None:
    pre = check(reference_meta(), DS, "202410", [dv(MEASLES, 1, ou="Rp268JB6Ne4")], NOW)
    assert not pre.blocked
    assert codes(pre) == ["org_units_not_assigned"]
    assert pre.findings[0].level == "warning" and pre.findings[0].ids == ["Rp268JB6Ne4"]
    assert len(pre.ready) == 1


@pytest.mark.parametrize(
    ("period", "meta", "code"),
    [
        ("202301", {}, "period_expired"),  # 2023-01-31 + 30 days < 2024-11-15
        ("202411", {}, "period_not_open_yet"),  # openFuturePeriods 0: the current month is closed
        ("202412", {"openFuturePeriods": 1}, "period_not_open_yet"),
        ("202410", {"dataInputPeriods": [{"period": {"id": "202409"}}]}, "period_input_closed"),
        (
            "202410",
            {"dataInputPeriods": [{"period": {"id": "202410"}, "closingDate": "2024-11-10"}]},
            "period_input_closed",
        ),
    ],
)
def test_locked_periods_are_predicted_but_never_block(
    period: str, meta: dict[str, Any], code: str
) -> None:
    """A preflight may warn; DHIS2 decides (its conflicts come back per row)."""
    pre = check(reference_meta(**meta), DS, period, [dv(MEASLES, 1)], NOW)
    assert not pre.blocked and len(pre.ready) == 1
    assert codes(pre) == [code]
    assert pre.findings[0].level == "warning"
    assert period in pre.findings[0].message


@pytest.mark.parametrize(
    ("period", "meta"),
    [
        ("202410", {}),  # ended 2024-10-31, expires 2024-11-30
        ("202411", {"openFuturePeriods": 1}),
        ("201001", {"expiryDays": 0}),  # 0: never expires
        (
            "202410",
            {
                "dataInputPeriods": [
                    {
                        "period": {"id": "202410"},
                        "openingDate": "2024-11-01",
                        "closingDate": "2024-11-20",
                    }
                ]
            },
        ),
    ],
)
def test_open_periods_pass(period: str, meta: dict[str, Any]) -> None:
    pre = check(reference_meta(**meta), DS, period, [dv(MEASLES, 1)], NOW)
    assert pre.findings == []


def test_values_that_fail_the_value_type_are_rejected_before_posting() -> None:
    rows = [dv(MEASLES, 2.5), dv(MEASLES, -3, ou="x1234567890"), dv(DYSENTERY, 4)]
    pre = check(reference_meta(), DS, "202410", rows, NOW)
    assert not pre.blocked
    assert [(r.dataElement, r.value) for r in pre.rejected] == [(MEASLES, "2.5"), (MEASLES, "-3")]
    assert "not a whole number" in pre.rejected[0].reason
    assert "zero or a positive integer" in pre.rejected[1].reason
    assert [r.row.dataElement for r in pre.ready] == [DYSENTERY]
    assert "values_invalid" in codes(pre)


def test_zero_on_a_zero_insignificant_element_is_marked_not_rejected() -> None:
    rows = [dv(MEASLES, 0), dv(DYSENTERY, 0.0), dv(CHOLERA, 0)]
    pre = check(reference_meta(), DS, "202410", rows, NOW)
    assert pre.rejected == []
    assert [(r.text, r.zero_insignificant) for r in pre.ready] == [
        ("0", True),
        ("0", True),
        ("0", False),  # Cholera has zeroIsSignificant: its zero is a value
    ]


def test_demo_metadata_checks_cocs_against_the_element_combo() -> None:
    meta = DataSetMeta.model_validate(demo_data_set(demo.DS_MONTHLY))
    rows = [
        dv(demo.DE_ANC_VISITS, 3, ou=demo.OU_CHU[0], coc=demo.COC_UNDER_20),
        dv(demo.DE_ANC_VISITS, 4, ou=demo.OU_CHU[0], coc=demo.COC_20_PLUS),
        dv(demo.DE_ANC_VISITS, 5, ou=demo.OU_CHU[0]),  # default COC on a disaggregated element
        dv(demo.DE_BIRTHS, 6, ou=demo.OU_CHU[0], coc=demo.COC_UNDER_20),
        dv(
            demo.DE_FACILITY_DELIVERIES,
            50,
            ou=demo.OU_CHU[0],
            coc=demo.DEFAULT_COC,
            aoc=demo.DEFAULT_COC,
        ),
        dv(demo.DE_BIRTHS, 1, ou=demo.OU_CHU[1], aoc=demo.COC_20_PLUS),
    ]
    pre = check(meta, demo.DS_MONTHLY, "202410", rows, NOW)
    assert not pre.blocked
    assert pre.default_coc == demo.DEFAULT_COC
    assert [r.text for r in pre.ready] == ["3", "4", "50"]
    reasons = [
        (r.dataElement, r.categoryOptionCombo, r.reason.split(" is ")[0]) for r in pre.rejected
    ]
    assert reasons == [
        (demo.DE_ANC_VISITS, None, f"category option combo {demo.DEFAULT_COC}"),
        (demo.DE_BIRTHS, demo.COC_UNDER_20, f"category option combo {demo.COC_UNDER_20}"),
        (demo.DE_BIRTHS, None, f"attribute option combo {demo.COC_20_PLUS}"),
    ]
    assert {"category_option_combo_invalid", "attribute_option_combo_invalid"} <= set(codes(pre))


def test_demo_household_visits_belong_only_to_the_chw_data_set() -> None:
    monthly = DataSetMeta.model_validate(demo_data_set(demo.DS_MONTHLY))
    chw = DataSetMeta.model_validate(demo_data_set(demo.DS_CHW))
    row = [dv(demo.DE_HOUSEHOLD_VISITS, 12, ou=demo.OU_CHU[0])]
    assert codes(check(monthly, demo.DS_MONTHLY, "202410", row, NOW)) == [
        "data_elements_not_in_data_set"
    ]
    assert check(chw, demo.DS_CHW, "202410", row, NOW).findings == []


def test_demo_org_units_beyond_the_assigned_ones_warn() -> None:
    meta = DataSetMeta.model_validate(demo_data_set(demo.DS_MONTHLY, chus=2))
    rows = [dv(demo.DE_BIRTHS, 1, ou=ou) for ou in demo.OU_CHU[:4]]
    pre = check(meta, demo.DS_MONTHLY, "202410", rows, NOW)
    assert pre.unassigned_org_units == sorted(demo.OU_CHU[2:4])
    assert len(pre.ready) == 4


def test_duplicate_keys_keep_the_first_row() -> None:
    pre = check(reference_meta(), DS, "202410", [dv(MEASLES, 1), dv(MEASLES, 2)], NOW)
    assert [r.text for r in pre.ready] == ["1"]
    assert pre.rejected[0].value == "2"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        (5.0, "5"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (1e-7, "0.0000001"),
        (1e20, "100000000000000000000"),
        (2.50, "2.5"),
        (float("nan"), None),
    ],
)
def test_numbers_are_formatted_without_exponent_or_trailing_zeros(
    value: float, text: str | None
) -> None:
    assert format_number(value) == text


def test_stored_values_compare_after_normalising() -> None:
    assert normalise_stored("5.0", "NUMBER") == "5"
    assert normalise_stored(" 12 ", "INTEGER_ZERO_OR_POSITIVE") == "12"
    assert normalise_stored("abc", "NUMBER") == "abc"


@pytest.mark.parametrize(
    ("text", "value_type", "ok"),
    [
        ("007", "NUMBER", False),
        ("5.0", "INTEGER", False),
        ("-5", "INTEGER", True),
        ("0", "INTEGER_POSITIVE", False),
        ("101", "PERCENTAGE", False),
        ("0.5", "UNIT_INTERVAL", True),
        ("3", "TEXT", True),
        ("1", "DATE", False),
    ],
)
def test_value_type_rules_match_dhis2(text: str, value_type: str, ok: bool) -> None:
    assert (value_problem(text, value_type) is None) is ok
