"""``python -m devstack.screenshot [PATH]``: the status page after seeded runs, as a PNG.

Starts the local stack (demo CHT deployment, DHIS2 and OpenHIM stand-ins, the
mediator with push credentials and a 70 % coverage threshold), seeds two runs
(:func:`seed_runs`, shared with the browser test) and screenshots ``GET /`` in
headless Chromium. The README shows the result (``docs/status-page.png``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from mediator.model.periods import Month

from .browser import chromium_page, missing
from .stack import LocalStack

PUSH_AUTH = ("hrio", "status-page-Pa55")
STATUS_ENV = {
    "MEDIATOR_PUSH_USERNAME": PUSH_AUTH[0],
    "MEDIATOR_PUSH_PASSWORD": PUSH_AUTH[1],
    "MEDIATOR_COVERAGE_THRESHOLD": "70",
}
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "status-page.png"


def _stamp_sync_times(stack: LocalStack, now_ms: int) -> None:
    """Give the demo's target docs update times a few hours to days old, as CHT's
    rules engine writes them, so the page has sync ages to show."""
    assert stack.couch is not None
    session = stack.couch.session()
    base = f"{stack.couch.url}/{stack.db}"
    rows = session.get(
        f"{base}/_all_docs",
        params={
            "include_docs": "true",
            "startkey": json.dumps("target~"),
            "endkey": json.dumps("target~\ufff0"),
        },
        timeout=30,
    ).json()["rows"]
    docs = [row["doc"] for row in rows]
    for i, doc in enumerate(docs):
        doc["updated_date"] = now_ms - (5 + (i * 7) % 60) * 3_600_000
    session.post(f"{base}/_bulk_docs", json={"docs": docs}, timeout=30).raise_for_status()


def _late_correction(stack: LocalStack, month: Month, now_ms: int) -> None:
    """CHW 1.1 syncs a corrected target doc for ``month`` after the monthly run."""
    assert stack.couch is not None
    session = stack.couch.session()
    doc_id = f"target~{month.tag}~chw-1-1~org.couchdb.user:chw11"
    url = f"{stack.couch.url}/{stack.db}/{quote(doc_id, safe='')}"
    doc = session.get(url, timeout=30).json()
    for target in doc["targets"]:
        if target["id"] == "births-this-month":
            target["value"] = {
                "pass": target["value"]["pass"] + 2,
                "total": target["value"]["total"] + 2,
            }
    doc["updated_date"] = now_ms - 3_600_000
    session.put(url, json=doc, timeout=30).raise_for_status()


def seed_runs(
    stack: LocalStack,
    auth: tuple[str, str] = PUSH_AUTH,
    extra_docs: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Two runs through ``/push``, as a month goes: the monthly kind (no period: the
    latest completed month and the lookback), then, after a CHW synced a corrected
    target doc late, a push of the latest month alone. Returns both envelopes, oldest
    first; the last one's report (small enough to keep its coverage tables in the
    envelope) is what the page's latest run and coverage show."""
    assert stack.couch is not None
    extra = list(extra_docs)
    if extra:
        stack.couch.session().post(
            f"{stack.couch.url}/{stack.db}/_bulk_docs", json={"docs": extra}, timeout=30
        ).raise_for_status()
    now_ms = int(time.time() * 1000)
    _stamp_sync_times(stack, now_ms)
    last = Month.previous_completed("UTC")
    push = f"{stack.mediator_url}/push"
    envelopes = [requests.get(push, auth=auth, timeout=300).json()]
    _late_correction(stack, last, now_ms)
    envelopes.append(requests.get(push, params={"period": last.tag}, auth=auth, timeout=300).json())
    return envelopes


def main(argv: list[str]) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    out = Path(argv[0]) if argv else DEFAULT_PATH
    problem = missing()
    if problem:
        print(f"cannot take the screenshot: {problem}", file=sys.stderr)
        return 1
    last = Month.previous_completed("UTC")
    with LocalStack(months=[last.shift(-1).tag, last.tag], extra_env=STATUS_ENV) as stack:
        envelopes = seed_runs(stack)
        print(f"seeded runs: {', '.join(e['status'] for e in envelopes)}")
        with chromium_page(http_credentials=PUSH_AUTH, width=1280, height=900) as page:
            response = page.goto(f"{stack.mediator_url}/", wait_until="load")
            if response is None or response.status != 200:
                print("the status page did not load", file=sys.stderr)
                return 1
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
