"""``python -m mediator demo``: the whole local stack, the monthly channel fired once.

Starts the CouchDB server seeded with a demo CHT deployment, the DHIS2 stand-in,
the real OpenHIM core 8.5.0 (``devstack/openhim_core.py``) and the mediator, which
registers with core as its own OpenHIM user. Installs the mediator's channels
and saves them as an operator does in the console (saving schedules the polling
channel), lets core's own polling scheduler fire the monthly channel now, and
prints the transaction as core stored it: status, properties, orchestrations.
Then re-runs it from core's ``/tasks``, as the console's Re-run button does, to
show that a re-run writes nothing twice.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from mediator.periods import Month

from .stack import ADMIN_CLIENT, ADMIN_CLIENT_PASSWORD, LocalStack

URN = "urn:mediator:cht-dhis2-aggregate"


def _print_transaction(title: str, tx: dict[str, Any]) -> None:
    print(f"\n== {title}")
    print(f"transaction {tx.get('_id')}: status {tx.get('status')}")
    props = tx.get("properties") or {}
    for key in sorted(props):
        print(f"  {key}: {props[key]}")
    orchestrations = tx.get("orchestrations") or []
    print(f"  orchestrations: {len(orchestrations)}")
    for orch in orchestrations:
        response = orch.get("response") or {}
        request = orch.get("request") or {}
        print(f"    - {orch.get('name')}: {request.get('method', '')} {response.get('status', '')}")


def run_demo(keep: bool = False) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    last = Month.previous_completed("UTC")
    months = [last.shift(-2).tag, last.shift(-1).tag, last.tag]  # the channel redoes 3
    print(f"Starting the local stack (CHT target docs for {', '.join(months)})...")
    stack = LocalStack(months=months)
    try:
        stack.start()
        assert stack.openhim is not None and stack.dhis2 is not None
        stack.wait_registered(URN)
        channels = stack.install_channels(URN)
        polling = next(c for c in channels if c.get("type") == "polling")
        print(
            f"CHT (API front): {stack.env['CHT_URL']}/{stack.env['CHT_DB']}"
            f"  (as {stack.env['CHT_USERNAME']}, online non-admin)"
        )
        print(f"DHIS2 stand-in:  {stack.dhis2.url}  (version {stack.dhis2_version})")
        print(f"OpenHIM core:    {stack.openhim.url}  (8.5.0; the mediator logs in as")
        print(f"                 {stack.env['OPENHIM_USERNAME']}, an admin user of its own)")
        print(f"mediator:        {stack.mediator_url}/push  /health")

        print("core's polling scheduler fires the monthly channel now...")
        tx = stack.openhim.fire_polling_channel(polling["_id"])
        _print_transaction(f"monthly channel fired by core: {polling['name']}", tx)
        stored = stack.dhis2.store.values()
        print(f"\nDHIS2 now holds {len(stored)} data values for {last.dhis2}.")
        tx2 = stack.openhim.rerun(tx["_id"])
        _print_transaction("re-run from core's /tasks (must write nothing twice)", tx2)
        ok = tx.get("status") == "Successful" and tx2.get("status") == "Successful"
        if keep:
            from .openhim_console import ConsoleServer

            with ConsoleServer(stack.openhim) as console:
                print(
                    "\nThe stack keeps running. Trigger a run through the manual channel:\n"
                    f"  curl -u {ADMIN_CLIENT}:{ADMIN_CLIENT_PASSWORD} "
                    f"'{stack.openhim.router_url}/cht-dhis2/push?period={last.tag}'\n"
                    f"OpenHIM console 1.18.2: {console.url} (self-signed; accept core's too at\n"
                    f"  {stack.openhim.url}); log in as root@openhim.org / openhim-password,\n"
                    "  and the console asks for a new password.\n"
                    "Ctrl-C to stop."
                )
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        return 0 if ok else 1
    except Exception as exc:  # noqa: BLE001 - a demo says what failed, in one line
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(run_demo(keep="--keep" in sys.argv))
