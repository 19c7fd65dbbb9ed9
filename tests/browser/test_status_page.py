"""The status page in a real browser: a run seeded through the real stack, then
``GET /`` in headless Chromium (Debian's), read back from the DOM Chromium built
and from the chart as it laid it out.

In CI (``CI=true``) a missing Chromium or Playwright fails this test: CI must
prove the page works. Elsewhere it skips and says what to install.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack import cht_docs as d
from devstack.browser import chromium_page
from devstack.screenshot import PUSH_AUTH, STATUS_ENV, seed_runs
from devstack.stack import LocalStack
from mediator.model.periods import Month, Period

LAST = Month.previous_completed("UTC")
_dbs = itertools.count(1)
# a CHT user whose name is markup: the page must show it as text and run nothing
HOSTILE = "chw<img src=x onerror=\"document.title='pwned'\">"

# what the page shows, read from the DOM and the layout Chromium computed
READ_PAGE = """() => {
  const text = el => (el ? el.textContent.trim() : null);
  const count = (root, name) => Number(text(root.querySelector(`[data-count="${name}"]`)));
  const counts = root => Object.fromEntries(
    ["imported", "updated", "ignored", "deleted", "unchanged", "rejected"]
      .map(n => [n, count(root, n)]));
  return {
    title: document.title,
    lang: document.documentElement.lang,
    headings: [...document.querySelectorAll("h1,h2,h3,h4,h5,h6")]
      .map(h => [Number(h.tagName[1]), h.innerText.trim()]),
    images: document.querySelectorAll("img").length,
    scripts: document.querySelectorAll("script").length,
    status: text(document.querySelector("#latest-status")),
    totals: counts(document.querySelector("#latest-totals")),
    results: [...document.querySelectorAll("#latest-results tbody tr")].map(tr => ({
      dataSet: tr.dataset.dataSet, label: text(tr.querySelector("th")),
      period: tr.dataset.period, ...counts(tr)})),
    runs: [...document.querySelectorAll("#runs tbody tr")].map(tr => counts(tr)),
    coverageHeading: text(document.querySelector("#coverage-heading")),
    sections: [...document.querySelectorAll("section.coverage-section")].map(sec => {
      const svg = sec.querySelector("svg");
      const box = svg.getBoundingClientRect();
      return {
        heading: text(sec.querySelector("h3")),
        svg: {role: svg.getAttribute("role"), label: svg.getAttribute("aria-label"),
              width: box.width, height: box.height},
        bars: [...svg.querySelectorAll("g.bar-group")].map(g => ({
          orgUnit: g.dataset.orgUnit,
          tooltip: text(g.querySelector("title")),
          labels: [...g.querySelectorAll("text")].map(t => t.textContent.trim()),
          bar: g.querySelector("rect.bar").getBoundingClientRect().width,
          track: g.querySelector("rect.track").getBoundingClientRect().width,
        })),
        rows: [...sec.querySelectorAll("table.coverage-table tbody tr")].map(tr => ({
          orgUnit: tr.dataset.orgUnit,
          name: text(tr.querySelector("th")),
          expected: Number(text(tr.querySelector('[data-field="expected"]'))),
          synced: Number(text(tr.querySelector('[data-field="synced"]'))),
          pushed: text(tr.cells[tr.cells.length - 1]),
        })),
        captions: [...sec.querySelectorAll("caption")].map(c => text(c)),
        missing: Object.fromEntries(
          [...sec.querySelectorAll("table.missing-table tbody tr")].map(tr => [
            tr.dataset.orgUnit,
            {users: [...tr.querySelectorAll("li.missing-user")].map(li => li.textContent),
             age: text(tr.cells[2])}])),
      };
    }),
  };
}"""


@pytest.fixture
def stack(couch: Any, openhim: Any, browser_ready: None) -> Iterator[LocalStack]:
    with LocalStack(
        months=[LAST.shift(-1).tag, LAST.tag],
        couch=couch,
        openhim=openhim,  # the session's OpenHIM core
        db=f"medic-status-{next(_dbs)}",
        extra_env={"OPENHIM_HEARTBEAT_SECONDS": "0.3", **STATUS_ENV},
    ) as running:
        yield running


def hostile_user() -> list[dict[str, Any]]:
    """A CHW under CHU 1 who never synced, with markup for a name."""
    chu1 = {"_id": "chu-1", "parent": {"_id": "district-1"}}
    return [
        d.person("chw-1-9", "CHW 1.9", parent=chu1),
        d.user_settings(HOSTILE, "chw-1-9", "chu-1"),
    ]


def test_status_page_in_chromium_matches_the_run_report(stack: LocalStack) -> None:
    envelopes = seed_runs(stack, PUSH_AUTH, extra_docs=hostile_user())
    assert [e["status"] for e in envelopes] == ["Successful", "Successful"]
    report = json.loads(envelopes[-1]["response"]["body"])
    url = f"{stack.mediator_url}/"

    # protected exactly like /push
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(url, auth=(PUSH_AUTH[0], "wrong"), timeout=10).status_code == 401

    with chromium_page(http_credentials=PUSH_AUTH) as page:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200
        seen = page.evaluate(READ_PAGE)

    # the page renders: title, language, headings in order, never skipping a level
    assert seen["title"] == "CHT to DHIS2 mediator: status"
    assert seen["lang"] == "en"
    levels = [level for level, _ in seen["headings"]]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), seen["headings"]
    h2 = [t for level, t in seen["headings"] if level == 2]
    latest = max((r["period"] for r in report["results"]), key=lambda p: Period.parse(p).last)
    assert h2[0] == "Latest run" and h2[-1] == "Recent runs"
    assert seen["coverageHeading"].startswith("Sync coverage") and latest in h2[1]

    # CHT's markup stayed text: no element was made of it, no script ran
    assert seen["images"] == 0 and seen["scripts"] == 0
    assert seen["title"] != "pwned"

    # the numbers of the last run are the run report's
    assert envelopes[-1]["status"] in seen["status"]
    totals = {
        name: sum(r["counts"][name] for r in report["results"])
        for name in ("imported", "updated", "ignored", "deleted")
    }
    totals["unchanged"] = sum(r["values_unchanged"] for r in report["results"])
    totals["rejected"] = sum(r["rejected_count"] for r in report["results"])
    assert seen["totals"] == totals
    assert totals["updated"] > 0  # the late correction
    assert seen["runs"][0] == totals and len(seen["runs"]) == 2
    first = json.loads(envelopes[0]["response"]["body"])
    assert seen["runs"][1]["imported"] == first["totals"]["imported"] > 0
    by_result = {(r["data_set"], r["period"]): r for r in report["results"]}
    assert {(r["dataSet"], r["period"]) for r in seen["results"]} == set(by_result)
    for row in seen["results"]:
        result = by_result[(row["dataSet"], row["period"])]
        assert row["imported"] == result["counts"]["imported"]
        assert row["updated"] == result["counts"]["updated"]
        assert row["ignored"] == result["counts"]["ignored"]
        assert row["rejected"] == result["rejected_count"]
        assert row["unchanged"] == result["values_unchanged"]
        # the data set by its DHIS2 name, and its id
        name = stack.dhis2.metadata.get("dataSets", row["dataSet"])["name"]
        assert row["label"] == f"{name} {row['dataSet']}"

    # the coverage view: the latest period, one chart per data set, drawn to scale; the
    # per-org-unit tables as GET /coverage serves them (the envelope keeps counts only,
    # to stay under what core shows), the held org units as the transaction names them
    newest = [r for r in report["results"] if r["period"] == latest]
    tables = requests.get(
        f"{stack.mediator_url}/coverage", params={"period": latest}, auth=PUSH_AUTH, timeout=60
    ).json()["coverage"]
    by_set = {t["dataSet"]: t for t in tables}
    held_units = set(
        envelopes[-1]["properties"].get("org units held", "").split(": ")[-1].split(", ")
    )
    assert len(seen["sections"]) == len(newest) >= 1
    for section, result in zip(seen["sections"], newest, strict=True):
        assert result["data_set"] in section["heading"]
        assert f"{result['users_synced']} of {result['users_expected']}" in section["heading"]
        coverage = {
            c["orgUnit"]: {**c, "held": c["orgUnit"] in held_units}
            for c in by_set[result["data_set"]]["orgUnits"]
        }
        assert section["svg"]["role"] == "img" and section["svg"]["label"]
        assert section["svg"]["width"] > 300 and section["svg"]["height"] > 50
        # one bar per org unit, width proportional to the share of CHWs synced
        assert sorted(b["orgUnit"] for b in section["bars"]) == sorted(coverage)
        for bar in section["bars"]:
            c = coverage[bar["orgUnit"]]
            share = c["synced"] / c["expected"] if c["expected"] else 1.0
            assert bar["track"] > 100
            assert bar["bar"] == pytest.approx(share * bar["track"], abs=1.0), bar
            assert f"({c['synced']} of {c['expected']})" in bar["labels"][-1]
            assert bar["tooltip"].startswith(c["name"])
            assert ("(held)" in bar["labels"][0]) == c["held"]
        # the data table beside it says the same, for screen readers
        assert any("CHWs synced per org unit" in caption for caption in section["captions"])
        assert {r["orgUnit"]: (r["expected"], r["synced"]) for r in section["rows"]} == {
            ou: (c["expected"], c["synced"]) for ou, c in coverage.items()
        }
        for row in section["rows"]:
            assert ("held" in row["pushed"]) == coverage[row["orgUnit"]]["held"]
        # the org units where CHWs are missing, with the usernames, as text
        assert {ou: m["users"] for ou, m in section["missing"].items()} == {
            ou: c["missing"] for ou, c in coverage.items() if c["missing"]
        }
        assert any(HOSTILE in m["users"] for m in section["missing"].values())
        assert all(m["age"] for m in section["missing"].values())
    assert held_units - {""}, "the seeded 70 % threshold holds CHU 4 (2 of 3 CHWs synced)"
