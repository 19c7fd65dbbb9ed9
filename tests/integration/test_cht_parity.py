"""CHT's 13 upstream export test cases (cht-export.md §7.1), against a live CouchDB.

Each case seeds the same fixtures into pouchdb-server and runs
``python -m mediator preview`` (in process), expecting CHT's numbers. Where the
mediator deliberately differs (README "Differences from CHT's built-in export")
the assertion says so: custom ``dhis`` keys such as ``arbitrary`` are not copied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from mediator.cli.commands import main
from tests.cht_fixtures import (
    DATA_SET,
    DEFAULT_SETTINGS,
    MULTI,
    contact,
    mock_settings,
    seed,
    target_doc,
    use_db,
)

BIRTHS, DELIVERIES, COC = "kB0ZBFisE0e", "e22tIwy1nKR", "HllvX50cXC0"


@dataclass
class Preview:
    code: int
    sets: list[dict[str, Any]]
    stderr: str


@pytest.fixture
def preview(couch, monkeypatch, capsys):
    def run(settings: dict[str, Any], docs: list[dict[str, Any]], *args: str) -> Preview:
        use_db(monkeypatch, couch, seed(couch, settings, docs))
        capsys.readouterr()
        code = main(["preview", "--period", "2000-02", *args])
        out = capsys.readouterr()
        return Preview(code, json.loads(out.out) if code == 0 else [], out.err)

    return run


def births(ou: str, value: int) -> dict[str, Any]:
    return {"dataElement": BIRTHS, "orgUnit": ou, "value": value}


def deliveries(ou: str, value: int) -> dict[str, Any]:
    return {
        "dataElement": DELIVERIES,
        "categoryOptionCombo": COC,
        "attributeOptionCombo": COC,
        "orgUnit": ou,
        "value": value,
    }


def envelope(values: list[dict[str, Any]], data_set: str = DATA_SET) -> dict[str, Any]:
    return {
        "dataSet": data_set,
        "completeDate": date.today().isoformat(),  # CHT: the day of the export
        "period": "200002",
        "dataValues": values,
    }


CASE1_DOCS = [
    contact("chu1"),
    contact("chu2"),
    contact("chw", dhis=None, parent={"_id": "chu1-guid"}),
    target_doc("ignore1", "2000-01"),
    target_doc("chw", "2000-02"),
    target_doc("chu1", "2000-02"),
    target_doc("chu2", "2000-02"),
    target_doc("ignore2", "2000-03"),
]


def test_case01_sums_all_data_elements_for_the_interval(preview):
    result = preview(DEFAULT_SETTINGS, CASE1_DOCS, "--data-set", DATA_SET)
    assert result.code == 0
    assert result.sets == [
        envelope(
            [
                births("ou-chu1", 24),
                deliveries("ou-chu1", 8),
                births("ou-chu2", 12),
                deliveries("ou-chu2", 4),
            ]
        )
    ]


def test_case02_zeros_for_an_org_unit_without_target_docs(preview):
    result = preview(DEFAULT_SETTINGS, [contact("chu")], "--data-set", DATA_SET)
    assert result.sets == [envelope([births("ou-chu", 0), deliveries("ou-chu", 0)])]


def test_case03_human_readable_single_data_set_single_org_unit(preview):
    result = preview(
        DEFAULT_SETTINGS,
        [contact("chu"), target_doc("chu", "2000-02")],
        "--data-set",
        DATA_SET,
        "--human-readable",
    )
    assert result.sets[0]["dataValues"] == [
        {"dataElement": "births-this-month", "orgUnit": "chu", "value": 12},
        {
            "dataElement": "facility-deliveries",
            "categoryOptionCombo": COC,
            "attributeOptionCombo": COC,
            "orgUnit": "chu",
            "value": 4,
        },
    ]


MULTI_CONTACT = contact(
    "chu", dhis=[{"orgUnit": "ou-1", "dataSet": "ds-1"}, {"orgUnit": "ou-2", "dataSet": "ds-2"}]
)


def test_human_readable_names_the_data_set_in_chts_language(preview):
    """CHT's export translates the data set's translation_key (``config.translate``:
    the app's locale, then English, then the key itself); the oracle here stubs
    translate, so the expectation is CHT's rule, not the oracle's output."""
    english = {
        "_id": "messages-en",
        "type": "translations",
        "code": "en",
        "generic": {"dataset 1": "Monthly CHW report", "other": "x"},
        "custom": {},
    }
    french = {
        "_id": "messages-fr",
        "type": "translations",
        "code": "fr",
        "generic": {},
        "custom": {"dataset 1": "Rapport mensuel des ASC"},
    }
    args = ("--data-set", "ds-1", "--human-readable")
    shown = preview(MULTI, [MULTI_CONTACT, english], *args)
    assert shown.code == 0 and shown.sets[0]["dataSet"] == "Monthly CHW report"
    in_french = preview({**MULTI, "locale": "fr"}, [MULTI_CONTACT, english, french], *args)
    assert in_french.sets[0]["dataSet"] == "Rapport mensuel des ASC"
    # a key no translation doc holds is shown as the key, as CHT shows it
    missing = preview(
        {**MULTI, "locale": "fr"}, [MULTI_CONTACT, french], "--data-set", "ds-2", "--human-readable"
    )
    assert missing.code == 0 and missing.sets[0]["dataSet"] == "dataset 2"


def test_case04_human_readable_contact_with_multiple_org_units(preview):
    result = preview(MULTI, [MULTI_CONTACT], "--data-set", "ds-1", "--human-readable")
    # Difference: CHT also copies the custom key "arbitrary": "yes" into the first value.
    assert result.sets == [
        {
            "dataSet": "dataset 1",
            "completeDate": date.today().isoformat(),
            "period": "200002",
            "dataValues": [
                {"dataElement": "data element 1", "orgUnit": "chu", "value": 0},
                {"dataElement": "data element both", "orgUnit": "chu", "value": 0},
            ],
        }
    ]


def test_case05_filters_data_by_org_unit(preview):
    docs = [d for d in CASE1_DOCS if "ignore" not in d["_id"]]
    result = preview(DEFAULT_SETTINGS, docs, "--data-set", DATA_SET, "--org-unit", "ou-chu1")
    assert result.sets == [envelope([births("ou-chu1", 24), deliveries("ou-chu1", 8)])]


@pytest.mark.parametrize("case", ["06 no contacts for placeId", "07 data set not included"])
def test_cases06_07_contact_tagged_for_another_data_set_gives_no_rows(preview, case):
    other = contact("chu", dhis={"orgUnit": "ou", "dataSet": "other"})
    result = preview(DEFAULT_SETTINGS, [other], "--data-set", DATA_SET)
    assert result.code == 0
    assert result.sets[0]["dataValues"] == []


def test_case08_contact_with_multiple_org_units_per_data_set(preview):
    doc = target_doc(
        "chu",
        "2000-02",
        targets=[
            {"id": "data element 1", "value": {"pass": 0, "total": 1}},
            {"id": "data element 2", "value": {"pass": 0, "total": 2}},
            {"id": "data element both", "value": {"pass": 0, "total": 100}},
        ],
    )
    ds1 = preview(MULTI, [MULTI_CONTACT, doc], "--data-set", "ds-1")
    assert ds1.sets == [
        envelope(
            [
                {"dataElement": "de-1", "orgUnit": "ou-1", "value": 1},  # CHT adds "arbitrary"
                {"dataElement": "de-both", "orgUnit": "ou-1", "value": 100},
            ],
            data_set="ds-1",
        )
    ]
    ds2 = preview(MULTI, [MULTI_CONTACT, doc], "--data-set", "ds-2")
    assert ds2.sets == [
        envelope(
            [
                {"dataElement": "de-2", "orgUnit": "ou-2", "value": 2},
                {"dataElement": "de-both", "orgUnit": "ou-2", "value": 100},
            ],
            data_set="ds-2",
        )
    ]


def test_case09_one_target_doc_counts_at_two_org_units_in_the_hierarchy(preview):
    docs = [
        contact("hc", dhis={"orgUnit": "alt"}),
        contact("chu", parent={"_id": "hc-guid"}),
        contact("chw", dhis=None, parent={"_id": "chu-guid", "parent": {"_id": "hc-guid"}}),
        target_doc("chw", "2000-02"),
        target_doc("hc", "2000-02"),
    ]
    result = preview(DEFAULT_SETTINGS, docs, "--data-set", DATA_SET)
    assert result.sets[0]["dataValues"] == [
        births("alt", 24),
        deliveries("alt", 8),
        births("ou-chu", 12),
        deliveries("ou-chu", 4),
    ]


def test_case10_target_definitions_for_other_data_sets_are_not_included(preview):
    settings = mock_settings(
        [{"id": "myDataSet", "translation_key": "my data set"}],
        [
            {"id": "relevant", "dhis": {"dataSet": "myDataSet", "dataElement": "relevant"}},
            {"id": "irrelevant", "dhis": {"dataSet": "other", "dataElement": "irrelevant"}},
        ],
    )
    result = preview(settings, [contact("chu")], "--data-set", "myDataSet")
    assert result.sets[0]["dataValues"] == [
        {"dataElement": "relevant", "orgUnit": "ou-chu", "value": 0}
    ]


def test_case11_undefined_data_set_is_bad_input_naming_the_defined_ones(preview):
    result = preview(DEFAULT_SETTINGS, [], "--data-set", "dne")
    assert result.code == 2
    assert "is not defined" in result.stderr
    assert DATA_SET in result.stderr  # the ones it does define


def test_case12_data_set_without_data_elements(preview):
    settings = mock_settings(
        [{"id": "myDataSet"}], [{"id": "t", "dhis": {"dataSet": "other", "dataElement": "de"}}]
    )
    result = preview(settings, [], "--data-set", "myDataSet")
    assert result.code == 2
    assert "has no dataElements" in result.stderr


def test_case13_absent_target_definitions(preview):
    result = preview(mock_settings([{"id": "ds-1"}], None), [], "--data-set", "ds-1")
    assert result.code == 2
    assert "has no dataElements" in result.stderr
