"""The national benchmark at a tiny size: it runs end to end and its report adds up.

Outcomes only, never timings (CI machines vary): every command of the side-by-side
table ran and is in the report with the figures the README quotes; the preview gives
CHT's own export's numbers; a warm run reads no owner again; the push sends values
and the identical re-run sends none; requests to CHT grow with docs / page size and
to DHIS2 with values / chunk size.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import national

PAGE, CHUNK = 50, 100


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "small.json"
    args = ["--small", "--page-size", str(PAGE), "--chunk-size", str(CHUNK), "--out", str(out)]
    assert national.main(args) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_the_table_has_every_command_and_figure_the_readme_quotes(report):
    rows = report["summary"]["commands"]
    expected = {key for key, _ in national.COMMANDS}
    if not national.ORACLE.exists():
        expected.discard("cht_export")  # CHT's export is run only where its oracle is
    assert set(rows) == expected
    for key, row in rows.items():
        assert row["wall_s"] > 0 and row["cpu_s"] > 0 and row["peak_rss_mb"] > 0, key
        assert row["cht_server_cpu_s"] >= 0, key
        if key not in ("preview_double", "push_double"):
            assert row["over_bare"] > 0, key
            assert (row["over_cht_export"] is None) == ("cht_export" not in rows), key
    assert rows["bare"]["over_bare"] == 1
    for key in ("push_cold", "push_warm", "rerun"):  # the push's time, split
        assert rows[key]["wait_cht_s"] >= 0 and rows[key]["wait_dhis2_s"] > 0
        assert rows[key]["wait_ahead_s"] >= 0  # the batch read ahead, waited for
        assert rows[key]["dhis2_server_cpu_s"] > 0  # the stand-in served every request
    assert rows["preview_cold"]["dhis2_server_cpu_s"] is None  # no DHIS2 ran meanwhile
    table = national.table(report)
    for row in rows.values():
        assert row["label"] in table
    for name in report["summary"]["targets"]:
        assert name in table
    assert report["machine"]["cores"] >= 1 and report["load_average_at_start"]


@pytest.mark.slow
@pytest.mark.skipif(not national.ORACLE.exists(), reason="CHT's export oracle is not installed")
def test_preview_gives_chts_own_export_numbers(report):
    (check,) = report["summary"]["checks"]
    assert check["equal"] is True
    assert check["preview_values"] == report["spec"]["cus"] * report["spec"]["rows_per_org_unit"]
    assert check["warm_output_equals_cold"] is True
    assert report["summary"]["targets"]["preview = CHT export, value for value"]["met"] is True


@pytest.mark.slow
def test_a_warm_run_reads_no_owner_again_and_a_cold_one_reads_each_once(report):
    runs = report["runs"]
    for cold, warm in (("preview_cold", "preview_warm"), ("push_cold", "push_warm")):
        assert runs[cold][0]["owners_looked_up"] == runs[cold][0]["target_docs"] > 0
        assert runs[warm][0]["owners_looked_up"] == 0
        assert runs[warm][0]["cht_requests"] < runs[cold][0]["cht_requests"]
    assert runs["rerun"][0]["owners_looked_up"] == 0


@pytest.mark.slow
def test_the_first_push_sends_values_and_the_identical_rerun_sends_none(report):
    rows = report["summary"]["commands"]
    spec = report["spec"]
    for key in ("push_cold", "push_warm"):
        assert rows[key]["status"] == "Successful"
        assert rows[key]["values_computed"] == spec["cus"] * spec["rows_per_org_unit"]
        assert rows[key]["values_sent"] > 0
    assert rows["rerun"]["status"] == "Successful"
    assert rows["rerun"]["values_sent"] == 0 and rows["rerun"]["dhis2_posts"] == 0
    assert report["summary"]["targets"]["re-run: values sent"]["met"] is True


@pytest.mark.slow
def test_requests_grow_with_docs_over_page_size_and_values_over_chunk_size(report):
    runs = report["runs"]
    bare = runs["bare"][0]
    assert bare["cht_requests"] == bare["pages"] == math.ceil(bare["target_docs"] / PAGE)
    for key in ("preview_cold", "push_cold"):
        assert runs[key][0]["pages"] == bare["pages"]
        assert runs[key][0]["target_docs"] == bare["target_docs"]
        assert runs[key][0]["cht_requests"] > runs[key][0]["pages"]  # settings, places, owners
    push = runs["push_cold"][0]
    assert push["dhis2_posts"] == math.ceil(push["values_sent"] / CHUNK)
    double = runs["preview_double"][0]
    assert double["target_docs"] > 1.9 * bare["target_docs"]


@pytest.mark.slow
def test_the_audit_of_a_month_sits_beside_a_dry_run_push_of_it(report):
    rows = report["summary"]["commands"]
    spec = report["spec"]
    values = spec["cus"] * spec["rows_per_org_unit"]
    # DHIS2 holds the month: the dry-run push has nothing to send, every cell is equal
    dry, audit = rows["push_dry"], rows["audit"]
    assert dry["status"] == "Successful" and dry["values_sent"] == dry["dhis2_posts"] == 0
    assert audit["status"] == "agrees" and audit["cells_differing"] == audit["cells_listed"] == 0
    assert audit["cells_equal"] == values
    assert audit["over_dry_push"] > 0 and audit["wait_dhis2_s"] > 0
    # DHIS2 holds nothing: the dry-run push sends every value, the audit lists each cell
    empty_dry, empty = rows["push_dry_empty"], rows["audit_empty"]
    assert empty_dry["values_sent"] > 0 and empty_dry["dhis2_posts"] > 0
    assert empty["status"] == "differs"
    assert empty["cells_listed"] == empty["cells_differing"] == empty_dry["values_sent"]
    assert empty["cells_equal"] + empty["cells_differing"] == values
    targets = report["summary"]["targets"]
    for name in (
        "audit / dry-run push, DHIS2 holds the month",
        "audit / dry-run push, DHIS2 empty",
    ):
        assert (
            targets[name]["value"]
            == rows["audit" if "holds" in name else "audit_empty"]["over_dry_push"]
        )
    table = national.table(report)
    assert "audit, beside a dry-run push" in table and audit["label"] in table
