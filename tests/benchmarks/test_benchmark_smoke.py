"""The national benchmark at a tiny size: it runs end to end and its report adds up.

Outcomes only, never timings (CI machines vary): the push sends values and the
identical re-run sends none; requests to CHT grow with docs ÷ page size and to
DHIS2 with values ÷ chunk size; every figure the README quotes is present.
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
def test_the_first_push_sends_values_and_the_identical_rerun_sends_none(report):
    s = report["summary"]
    spec = report["spec"]
    assert s["push_1_month"]["status"] == "Successful"
    assert s["push_1_month"]["values_computed"] == spec["cus"] * spec["rows_per_org_unit"]
    assert s["push_1_month"]["values_sent"] > 0
    assert s["push_1_month_rerun"]["values_sent"] == 0
    assert s["push_1_month_rerun"]["dhis2_posts"] == 0
    assert s["targets_met"]["rerun_sends_nothing"] is True
    window = s["push_window"]
    assert window["status"] == "Successful"
    assert len(window["per_period"]) == len(spec["months"])
    first = window["per_period"][spec["months"][0].replace("-", "")]
    assert first["values_sent"] == 0  # pushed just before: unchanged


@pytest.mark.slow
def test_requests_grow_with_docs_over_page_size_and_values_over_chunk_size(report):
    runs = report["runs"]
    one = runs["push_1_month"]
    assert one["pages"] == math.ceil(one["docs"] / PAGE)
    bare = runs["bare"][0]
    assert bare["docs"] == one["docs"]
    assert bare["cht_requests"] == math.ceil(bare["docs"] / PAGE)
    assert one["dhis2_posts"] == math.ceil(one["values_sent"] / CHUNK)
    window = runs["push_window"]
    months = len(report["spec"]["months"])
    assert window["docs"] == months * one["docs"]  # the same users sync every month
    assert window["pages"] == months * math.ceil(one["docs"] / PAGE)
    assert window["dhis2_posts"] == sum(
        math.ceil(p["values_sent"] / CHUNK) for p in window["per_period"].values()
    )
    assert one["cht_requests"] > one["pages"]  # settings, places, users and owners too


@pytest.mark.slow
def test_a_warm_run_reads_no_owner_again_and_computes_what_a_cold_run_does(report):
    """The contacts a run keeps spare the next one every owner look-up, never a value."""
    runs = report["runs"]
    for cold, warm in zip(runs["aggregate_cold"], runs["aggregate"], strict=True):
        assert cold["owners_looked_up"] == cold["docs"] > 0
        assert warm["owners_looked_up"] == 0
        assert warm["values"] == cold["values"] > 0
        assert warm["read_errors"] == cold["read_errors"] == []
        assert warm["cht_requests"] < cold["cht_requests"]


@pytest.mark.slow
def test_the_report_has_every_figure_the_readme_quotes(report):
    s = report["summary"]
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"]
    assert s["docs_one_month"] > 0
    assert s["bare_read_s"] > 0 and s["aggregate_one_month_s"] > 0
    assert s["read_bound_ratio"] > 0 and s["read_bound_ratio_cold"] > 0
    assert s["pure_docs_per_second"] > 0
    assert report["pure"]["values"] == report["spec"]["cus"] * report["spec"]["rows_per_org_unit"]
    assert 0 < s["json_share_pure"] < 1
    assert all(mb > 0 for mb in s["peak_rss_mb"].values())
    double = s["double"]
    assert double["docs"] > 1.9 * s["docs_one_month"]
    for key in ("push_1_month", "push_window"):
        p = s[key]
        assert p["wall_s"] > 0
        assert p["waiting_on_cht_s"] >= 0 and p["waiting_on_dhis2_s"] >= 0
        assert p["cht_requests"] > 0 and p["dhis2_requests"] > 0
    assert set(s["targets_met"]) >= {"read_bound", "pure_aggregation", "memory_peak"}
