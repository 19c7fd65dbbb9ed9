"""A national-size run's transaction, as the real OpenHIM core 8.5.0 stores it and its API
hands it to the console: the envelope of a month of 242 chunks and 2,000 rejected rows
(the size the benchmark's national deployment gives), answered through core's router.

Core keeps the route's whole answer as the body of its own orchestration and cuts every
body at 15,000 characters for the console (``fulltruncate``): the mediator keeps the
envelope under that, so what the console parses is JSON. The run itself is not redone
here (the benchmark does it); only its envelope goes through the real core.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from flask import Flask, Response

from devstack.net import ServerThread, wait_for
from mediator.openhim.envelope import CONTENT_TYPE, run_envelope
from tests.unit.test_envelope import big_report

URN = "urn:mediator:cht-dhis2-aggregate"


def serve(envelope: dict[str, Any]) -> ServerThread:
    app = Flask("national")

    @app.get("/national")
    def national() -> Response:
        return Response(json.dumps(envelope, ensure_ascii=False), content_type=CONTENT_TYPE)

    return ServerThread(app).start()


def test_a_national_month_stays_json_in_core_and_its_table_is_a_few_steps(openhim: Any) -> None:
    envelope = run_envelope(big_report(periods=1, data_sets=1, chunks=242, rejected=2000), urn=URN)
    server = serve(envelope)
    try:
        channel = {
            "name": "national month",
            "urlPattern": "^/national$",
            "authType": "public",
            "methods": ["GET"],
            "type": "http",
            "routes": [
                {
                    "name": "CHT to DHIS2 mediator",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "path": "/national",
                    "primary": True,
                    "type": "http",
                }
            ],
        }
        openhim.expect(201, "POST", "/channels", json=channel)
        channel_id = next(c["_id"] for c in openhim.channels if c["name"] == channel["name"])
        wait_for(lambda: requests.get(f"{openhim.router_url}/national", timeout=10).ok, 30, "route")
        stored = openhim.await_transaction(lambda t: True, channel_id)
        shown = openhim.expect(
            200,
            "GET",
            f"/transactions/{stored['_id']}",
            params={"filterRepresentation": "fulltruncate"},  # what the console reads
        ).json()
    finally:
        server.stop()
    assert shown["status"] == envelope["status"]
    # core's own copy of the envelope and the response body: whole, and JSON
    copy = shown["orchestrations"][-1]["response"]["body"]
    assert "[truncated" not in copy
    assert json.loads(copy)["status"] == envelope["status"]
    body = json.loads(shown["response"]["body"])
    assert body["results"][0]["rejected_count"] == 2000
    # steps, not 243 requests: CHT, read, push, then core's own
    assert len(shown["orchestrations"]) == 4
    assert all(o["request"].get("querystring", "") == "" for o in shown["orchestrations"][:-1])
