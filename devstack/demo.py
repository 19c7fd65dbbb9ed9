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
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from mediator.model.periods import Month

from . import deployment as dep
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


def export_block(stack: LocalStack, period: Month) -> str:
    """The local stack's settings as the operator guide's blocks use them, to paste into
    a shell: ``source`` the environment, then ``export`` every variable. The guide's test
    (tests/integration/test_operator_guide.py) runs each block from this text alone."""
    assert stack.openhim is not None and stack.couch is not None
    variables = {
        **{k: v for k, v in stack.env.items() if k.startswith(("CHT_", "DHIS2_", "OPENHIM_"))},
        "MEDIATOR_STATE_DIR": stack.env.get("MEDIATOR_STATE_DIR", ""),
        "MEDIATOR_LOCK_DIR": stack.env.get("MEDIATOR_LOCK_DIR", ""),
        # core's API serves its bundled self-signed certificate, made for the name
        # localhost: curl trusts it as the guide's --cacert would (CURL_CA_BUNDLE)
        "OPENHIM_URL": stack.openhim.url.replace("127.0.0.1", "localhost"),
        "CURL_CA_BUNDLE": str(stack.openhim.certificate),
        "OPENHIM_ROUTER": stack.openhim.router_url,
        "CLIENT": f"{ADMIN_CLIENT}:{ADMIN_CLIENT_PASSWORD}",
        "MEDIATOR": stack.mediator_url,
        "DATA_SET": dep.DS_MONTHLY,
        "PERIOD": period.tag,
        "ORG_UNIT": dep.OU_CHU[0],  # CHU 1, for the guide's explain (section 8)
        "DATA_ELEMENT": dep.DE_BIRTHS,
        "FROM": period.shift(-1).tag,
        "CHT_ADMIN": f"{stack.couch.username}:{stack.couch.password}",
        "NEW_CHT_PASSWORD": "Guide-example-Pa55word",
    }
    lines = []
    if sys.prefix != sys.base_prefix:  # the environment the demo runs in has the mediator
        lines.append(f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}")
    lines += [f"export {k}={shlex.quote(v)}" for k, v in variables.items() if v]
    return "\n".join(lines) + "\n"


def _wait_for_stop() -> None:
    """Until Ctrl-C or SIGTERM; either leaves through the caller's ``finally``, which
    stops every server (pouchdb-server included)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.wait(1.0):
            continue
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _held_for(stack: LocalStack, period: Month) -> str:
    """How many values DHIS2 holds for ``period``, and for all the months pushed."""
    assert stack.dhis2 is not None
    stored = stack.dhis2.store.values()
    of_period = sum(1 for key in stored if key[1] == period.dhis2)
    return (
        f"DHIS2 now holds {of_period} data values for {period.dhis2} "
        f"({len(stored)} for all the periods the channel pushed)."
    )


def run_demo(keep: bool = False) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    last = Month.previous_completed("UTC")
    months = [last.shift(-2).tag, last.shift(-1).tag, last.tag]  # the channel redoes 3
    print(f"Starting the local stack (CHT target docs for {', '.join(months)})...")
    state = Path(tempfile.mkdtemp(prefix="cht-dhis2-demo-"))  # its runs and locks only
    stack = LocalStack(
        months=months,
        extra_env={
            "MEDIATOR_STATE_DIR": str(state / "state"),
            "MEDIATOR_LOCK_DIR": str(state / "locks"),
        },
    )
    try:
        stack.start()
        assert stack.openhim is not None and stack.dhis2 is not None
        stack.wait_registered(URN)
        channels = stack.install_channels(URN)
        polling = next(c for c in channels if c.get("type") == "polling")
        print(
            f"CHT (API front): {stack.env['CHT_URL']}  (CHT_DB {stack.env['CHT_DB']}, as "
            f"{stack.env['CHT_USERNAME']}, online non-admin)"
        )
        print(f"DHIS2 stand-in:  {stack.dhis2.url}  (version {stack.dhis2_version})")
        print(f"OpenHIM core:    {stack.openhim.url}  (8.5.0; the mediator logs in as")
        print(f"                 {stack.env['OPENHIM_USERNAME']}, an admin user of its own)")
        print(f"mediator:        {stack.mediator_url}/push  /health")

        print("core's polling scheduler fires the monthly channel now...")
        tx = stack.openhim.fire_polling_channel(polling["_id"])
        _print_transaction(f"monthly channel fired by core: {polling['name']}", tx)
        print(f"\n{_held_for(stack, last)}")
        tx2 = stack.openhim.rerun(tx["_id"])
        _print_transaction("re-run from core's /tasks (must write nothing twice)", tx2)
        ok = tx.get("status") == "Successful" and tx2.get("status") == "Successful"
        if keep:
            from .openhim_console import ConsoleServer

            with ConsoleServer(stack.openhim) as console:
                print(
                    "\nThe stack keeps running. In another shell, in this checkout, paste "
                    "these lines; then every block of docs/operator-guide.md runs as written:\n\n"
                    f"{export_block(stack, last)}\n"
                    f"The status page: {stack.mediator_url}/ (command-line runs appear on it "
                    "too).\n"
                    f"OpenHIM console 1.18.2: {console.url} (self-signed; accept core's too at\n"
                    f"  {stack.openhim.url}); log in as root@openhim.org / openhim-password,\n"
                    "  and the console asks for a new password.\n"
                    "Ctrl-C (or SIGTERM) stops the stack.",
                    flush=True,
                )
                _wait_for_stop()
        return 0 if ok else 1
    except Exception as exc:  # noqa: BLE001 - a demo says what failed, in one line
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_demo(keep="--keep" in sys.argv))
