"""Where the mediator deliberately does better than CHT's export, against a live CouchDB.

One test per item of the README's "Differences from CHT's built-in export", one
per kind of malformed doc, paging, and the bad-input exits of ``preview``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack import cht_docs
from mediator.cli.commands import main
from mediator.model.periods import Month
from mediator.run.pipeline import compute
from mediator.run.request import RunRequest
from mediator.settings.config import ChtSettings, RuntimeConfig
from tests.cht_fixtures import (
    DATA_SET,
    DEFAULT_SETTINGS,
    contact,
    mock_settings,
    seed,
    target_doc,
    use_db,
)


def config_for(couch, db: str, **cht: Any) -> RuntimeConfig:
    return RuntimeConfig(
        cht=ChtSettings(
            url=couch.url, db=db, username=couch.username, password=couch.password, **cht
        )
    )


def values(job) -> list[dict[str, Any]]:
    return [dv.as_export() for dv in job.merged.data_values()]


def run(couch, settings, docs, *, ds=DATA_SET, org_unit=None, choices=None, **cht):
    """The one (data set, February 2000) job, and what was read for it."""
    db = seed(couch, settings, docs)
    config = config_for(couch, db, **cht)
    if choices:
        config.value_choices = choices
    request = RunRequest(periods=[Month(2000, 2)], data_sets=[ds], org_unit=org_unit)
    computed = compute(request, config)
    (job,) = computed.jobs
    job.reads = computed.reads
    return job


AGE = mock_settings(
    [{"id": "dsAge"}],
    [
        {"id": "anc-u20", "dhis": {"dataElement": "deAnc", "categoryOptionCombo": "cocU20"}},
        {"id": "anc-20p", "dhis": {"dataElement": "deAnc", "categoryOptionCombo": "coc20p"}},
    ],
)


def test_two_targets_disaggregating_one_data_element_stay_two_rows(couch):
    doc = target_doc(
        "chu",
        "2000-02",
        targets=[
            {"id": "anc-u20", "value": {"pass": 3, "total": 3}},
            {"id": "anc-20p", "value": {"pass": 5, "total": 5}},
        ],
    )
    data = run(couch, AGE, [contact("chu"), doc], ds="dsAge")
    # CHT collapses these into one row {deAnc, coc20p, 8}
    assert values(data) == [
        {"dataElement": "deAnc", "categoryOptionCombo": "cocU20", "orgUnit": "ou-chu", "value": 3},
        {"dataElement": "deAnc", "categoryOptionCombo": "coc20p", "orgUnit": "ou-chu", "value": 5},
    ]


def test_dhis_array_on_a_target_definition_is_honoured(couch):
    settings = mock_settings(
        [{"id": "dsA"}, {"id": "dsB"}],
        [
            {
                "id": "visits",
                "dhis": [
                    {"dataElement": "deVisitsA", "dataSet": "dsA"},
                    {"dataElement": "deVisitsB", "dataSet": "dsB"},
                ],
            }
        ],
    )
    doc = target_doc("chu", "2000-02", targets=[{"id": "visits", "value": {"total": 7}}])
    data_a = run(couch, settings, [contact("chu"), doc], ds="dsA")
    data_b = run(couch, settings, [contact("chu"), doc], ds="dsB")
    # CHT drops the target and answers 'dataSet "dsA" has no dataElements'
    assert values(data_a) == [{"dataElement": "deVisitsA", "orgUnit": "ou-chu", "value": 7}]
    assert values(data_b) == [{"dataElement": "deVisitsB", "orgUnit": "ou-chu", "value": 7}]


def test_org_unit_filter_returns_only_that_org_unit(couch):
    both = contact("chu", dhis=[{"orgUnit": "ou-x"}, {"orgUnit": "ou-y"}])
    data = run(couch, DEFAULT_SETTINGS, [both, target_doc("chu", "2000-02")], org_unit="ou-x")
    # CHT also returns the ou-y rows (sibling leak)
    assert {v["orgUnit"] for v in values(data)} == {"ou-x"}
    assert [v["value"] for v in values(data)] == [12, 4]


def test_value_choice_per_target(couch):
    docs = [
        contact("chu"),
        contact("chw", dhis=None, parent={"_id": "chu-guid"}),
        target_doc(
            "chu",
            "2000-02",
            targets=[
                {"id": "births-this-month", "value": {"pass": 1, "total": 12}},
                {"id": "facility-deliveries", "value": {"pass": 1, "total": 4, "percent": 25}},
            ],
        ),
        target_doc(
            "chw",
            "2000-02",
            targets=[
                {"id": "births-this-month", "value": {"pass": 2, "total": 3}},
                {"id": "facility-deliveries", "value": {"pass": 2, "total": 2, "percent": 100}},
            ],
        ),
    ]
    data = run(
        couch,
        DEFAULT_SETTINGS,
        docs,
        choices={"births-this-month": "pass", "facility-deliveries": "percent"},
    )
    births, deliveries = values(data)
    assert births["value"] == 3  # pass: 1 + 2
    # percent is recomputed from the summed pass and total (3 / 6), never averaged (62.5)
    assert deliveries["value"] == 50


def test_default_value_is_total_for_parity(couch):
    doc = target_doc(
        "chu",
        "2000-02",
        targets=[{"id": "facility-deliveries", "value": {"pass": 1, "total": 4, "percent": 25}}],
    )
    data = run(couch, DEFAULT_SETTINGS, [contact("chu"), doc])
    assert values(data)[1]["value"] == 4


def test_only_dhis2_data_value_fields_are_emitted(couch):
    settings = mock_settings(
        [{"id": "ds-1"}],
        [{"id": "t", "dhis": {"dataElement": "de-1", "arbitrary": "yes", "value": 99}}],
    )
    data = run(couch, settings, [contact("chu")], ds="ds-1")
    assert values(data) == [{"dataElement": "de-1", "orgUnit": "ou-chu", "value": 0}]


def deep_person(depth: int) -> dict[str, Any]:
    lineage: dict[str, Any] = {"_id": "chu-guid"}
    for level in range(depth):
        lineage = {"_id": f"level-{level}", "parent": lineage}
    return contact("deep", dhis=None, parent=lineage)


MALFORMED = [
    contact("chu"),
    contact("ok", dhis=None, parent={"_id": "chu-guid"}),
    contact("loop", dhis=None, parent={"_id": "a", "parent": {"_id": "loop-guid"}}),
    deep_person(60),
    target_doc("ok", "2000-02"),
    target_doc("notargets", "2000-02", owner="ok-guid", targets=None),
    target_doc(
        "novalue",
        "2000-02",
        owner="ok-guid",
        targets=[
            {"id": "births-this-month"},
            {"id": "facility-deliveries", "value": {"pass": 1, "total": 1}},
        ],
    ),
    target_doc(
        "text",
        "2000-02",
        owner="ok-guid",
        targets=[{"id": "births-this-month", "value": {"pass": 1, "total": "twelve"}}],
    ),
    target_doc("ghost", "2000-02"),
    target_doc("noowner", "2000-02", owner=None),
    target_doc("loop", "2000-02"),
    target_doc("deep", "2000-02"),
    target_doc("wrongtype", "2000-02", type="data_record"),
]


def test_malformed_docs_are_skipped_and_counted_by_reason(couch):
    data = run(couch, DEFAULT_SETTINGS, MALFORMED)
    assert dict(data.merged.skipped) == {
        "doc_type_not_target": 1,
        "doc_without_owner": 1,
        "doc_without_targets": 1,
        "owner_lineage_loop": 1,
        "owner_lineage_too_deep": 1,
        "owner_not_found": 1,
        "target_value_not_numeric": 1,
        "target_without_value": 1,
    }
    assert sum(r.target_docs for r in data.reads) == 9
    # counted: "ok" (12 and 4) and the one good target of "novalue" (deliveries 1)
    assert [v["value"] for v in values(data)] == [12, 5]


def test_malformed_docs_are_reported_on_stderr_by_preview(couch, monkeypatch, capsys):
    use_db(monkeypatch, couch, seed(couch, DEFAULT_SETTINGS, MALFORMED))
    assert main(["preview", "--period", "2000-02"]) == 0
    err = capsys.readouterr().err
    assert "owner_lineage_loop: 1" in err
    assert "owner_not_found: 1" in err


def test_target_docs_arrive_in_pages_and_give_the_same_result(couch):
    docs = [contact("chu")]
    for n in range(7):
        docs.append(contact(f"chw{n}", dhis=None, parent={"_id": "chu-guid"}))
        docs.append(target_doc(f"chw{n}", "2000-02"))
    docs.append(target_doc("chw0", "2000-03"))  # next month: outside the range
    paged = run(couch, DEFAULT_SETTINGS, docs, page_size=2, owner_batch=3)
    whole = run(couch, DEFAULT_SETTINGS, docs, page_size=1000)
    assert [r.pages for r in paged.reads] == [4]
    assert [r.pages for r in whole.reads] == [1]
    assert paged.reads[0].target_docs == whole.reads[0].target_docs == 7
    assert values(paged) == values(whole)
    assert values(paged)[0]["value"] == 7 * 12


def test_legacy_and_configurable_contact_types_both_roll_up(couch):
    district = cht_docs.place(
        "d1", "District", "district_hospital", dhis={"orgUnit": "ou-d"}, legacy=True
    )
    hc = cht_docs.place("hc1", "HC", "health_center", parent=district, dhis={"orgUnit": "ou-hc"})
    chw = cht_docs.person("chw1", "CHW", parent={"_id": "hc1", "parent": district})
    doc = cht_docs.target_doc("2000-02", "chw1", "chw1", [cht_docs.target("births-this-month", 5)])
    data = run(couch, DEFAULT_SETTINGS, [district, hc, chw, doc])
    by_ou = {(v["orgUnit"], v["dataElement"]): v["value"] for v in values(data)}
    assert by_ou[("ou-d", "kB0ZBFisE0e")] == 5
    assert by_ou[("ou-hc", "kB0ZBFisE0e")] == 5


# -- bad input -------------------------------------------------------------------


@pytest.fixture
def cht_env(couch, monkeypatch):
    use_db(monkeypatch, couch, seed(couch, DEFAULT_SETTINGS, [contact("chu")]))
    return monkeypatch


@pytest.mark.parametrize("period", ["2024-13", "2024/01", "24-01", "January", "2024-1"])
def test_malformed_period_exits_2_with_one_clear_line(cht_env, capsys, period):
    with pytest.raises(SystemExit) as exc:
        main(["preview", "--period", period])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "YYYY-MM" in err or "does not exist" in err


def test_unknown_data_set_names_the_defined_ones(cht_env, capsys):
    assert main(["preview", "--period", "2000-02", "--data-set", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nope" in err[0] and DATA_SET in err[0]


def test_wrong_password_exits_2_naming_url_not_password(cht_env, couch, capsys):
    cht_env.setenv("CHT_PASSWORD", "Wr0ng-Secret-xyz")
    assert main(["preview", "--period", "2000-02"]) == 2
    err = capsys.readouterr().err
    assert couch.url in err and "refused the credentials" in err
    assert "Wr0ng-Secret-xyz" not in err


def test_unreachable_cht_exits_2(cht_env, capsys):
    from devstack.net import free_port

    url = f"http://127.0.0.1:{free_port()}"
    cht_env.setenv("CHT_URL", url)
    assert main(["preview", "--period", "2000-02"]) == 2
    err = capsys.readouterr().err
    assert url in err and "unreachable" in err
    assert json.dumps(err)  # one readable line, no traceback
    assert "Traceback" not in err
