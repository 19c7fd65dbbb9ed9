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
from mediator.periods import Month

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
