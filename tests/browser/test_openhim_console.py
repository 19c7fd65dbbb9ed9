"""The monthly transaction in the real OpenHIM console 1.18.2, against the real core
8.5.0: the local stack's monthly channel fired by core's scheduler, then, in
headless Chromium at 1440 × 900, log in (root's forced password change
included), open Transactions, click the monthly transaction, and read what the
page shows from the DOM (``devstack/openhim_console.py`` ``read_transaction``).

In CI (``CI=true``) a missing Chromium or Playwright fails this test; elsewhere it
skips and says what to install.
"""

from __future__ import annotations

import json
from typing import Any

from devstack.openhim_console import (
    HEIGHT,
    WIDTH,
    ConsoleServer,
    console_page,
    login,
    open_transaction,
    read_transaction,
)
from devstack.stack import LocalStack
from mediator.model.periods import Month

URN = "urn:mediator:cht-dhis2-aggregate"
LAST = Month.previous_completed("UTC")


def test_monthly_transaction_as_the_console_shows_it(couch: Any, openhim: Any, browser_ready):
    months = [LAST.shift(-2).tag, LAST.shift(-1).tag, LAST.tag]
    with LocalStack(months=months, couch=couch, db="medic-console", openhim=openhim) as stack:
        stack.wait_registered(URN)
        polling = next(c for c in stack.install_channels(URN) if c["type"] == "polling")
        tx = openhim.fire_polling_channel(polling["_id"])
        assert stack.dhis2 is not None
        stored = {k: v for k, v in stack.dhis2.store.values().items() if v not in (None, "")}
        with ConsoleServer(openhim) as console, console_page() as page:
            login(page, console, openhim)
            open_transaction(page, console, tx["_id"], polling["name"])
            seen = read_transaction(page)

    assert seen["viewport"] == {"width": WIDTH, "height": HEIGHT}
    # the status badge says what core stored
    assert seen["status"] == tx["status"] == "Successful"
    # the properties shown include the number of values DHIS2 stored
    assert seen["properties"]["imported"] == str(len(stored)) == tx["properties"]["imported"]
    assert len(stored) > 0
    assert set(seen["properties"]) == set(tx["properties"])
    # every orchestration core stored is listed by name, in order
    assert seen["orchestrations"] == [o["name"] for o in tx["orchestrations"]]
    # the response body shown (pretty-printed by the console) is the report core stored
    assert json.loads(seen["responseBody"]) == json.loads(tx["response"]["body"])
    assert seen["orchestrationTable"] is not None and seen["orchestrationTable"]["width"] > 0
    # --- what ops need at a glance (issue 14) ---
    table = seen["orchestrationTable"]
    # the whole orchestration table fits the window: Status and Response Time in view
    assert table["right"] <= WIDTH, table
    assert table["statusHeaderVisible"] and table["responseTimeHeaderVisible"]
    # steps, not raw requests: each after CHT's and DHIS2's own names a data set (its
    # name and id) and a period, and there are at most two per (data set, period)
    steps = seen["orchestrations"][:-1]  # the last one is core's own record of the route
    assert steps[0].startswith("CHT: read ") and steps[1].startswith("DHIS2 ")
    pairs = {(ds, pe) for ds in ("VMuFODsyWaO", "QX4ZTUbOt3a") for pe in tx_periods(tx)}
    for name in steps[2:]:
        assert any(f"({ds}) {pe}: " in name for ds, pe in pairs), name
    assert len(steps) <= 2 + 2 * len(pairs)
    # the body opens with what DHIS2 received, in words
    assert seen["responseBody"].lstrip("{ \n").startswith('"summary": "Pushed 3 periods')
    # the counts are in the properties, and each problem is said once, whole
    assert seen["properties"]["summary"].startswith("Pushed 3 periods")
    problems = [v for k, v in seen["properties"].items() if k.startswith("problem:")]
    assert problems and all(" × " not in p for p in problems)
    # core's own copy of the envelope (its last orchestration) is still JSON
    json.loads(tx["orchestrations"][-1]["response"]["body"])


def tx_periods(tx: dict[str, Any]) -> list[str]:
    return tx["properties"]["periods"].split(", ")
