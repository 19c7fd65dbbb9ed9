"""The OpenHIM core stand-in behaves as core does (reference: /work/shared/reference/openhim.md).

Everything goes over real HTTP: the stand-in runs on ServerThreads and a tiny Flask
"mediator" in this file plays the channel route.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from flask import Flask, Response, request

from devstack.net import ServerThread, free_port
from devstack.openhim_standin import (
    ChannelNotScheduled,
    Client,
    OpenhimStandIn,
    User,
    token_headers,
)

ROOT = ("root@openhim.org", "openhim-password")
URN = "urn:mediator:cht-dhis2"
ENVELOPE = "application/json+openhim"
TRUNCATED = "\n[truncated ...]"


# --- a route that records what core sent it ------------------------------------------------


class FakeMediator:
    """Flask app acting as the channel's route; `reply` decides the answer per test."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.reply: Callable[[], Response] = lambda: envelope_reply({"status": 200, "body": "ok"})
        self.app = Flask("fake_mediator")

        @self.app.route("/<path:_p>", methods=["GET", "POST", "PUT"])
        def any_path(_p: str) -> Response:
            self.received.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode(),
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                }
            )
            return self.reply()


def envelope_reply(response: Any, **extra: Any) -> Response:
    body = {"x-mediator-urn": URN, "response": response, **extra}
    return Response(json.dumps(body), status=200, content_type=ENVELOPE)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeMediator, ServerThread]]:
    mediator = FakeMediator()
    with ServerThread(mediator.app) as server:
        yield mediator, server


@pytest.fixture
def route(fake: tuple[FakeMediator, ServerThread]) -> FakeMediator:
    mediator, _ = fake
    mediator.received.clear()
    mediator.reply = lambda: envelope_reply({"status": 200, "body": "ok"})
    return mediator


@pytest.fixture
def route_port(fake: tuple[FakeMediator, ServerThread]) -> int:
    return fake[1].port


class Clock:
    """Shifts the stand-in's notion of now (token window, heartbeat freshness)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
def module_clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def module_standin(module_clock: Clock) -> Iterator[OpenhimStandIn]:
    users = [
        User("root@openhim.org", "openhim-password"),
        User("viewer@openhim.org", "viewer-password", groups=["viewer"]),
    ]
    clients = [Client("cht", "cht-secret", roles=["cht-dhis2"])]
    server = OpenhimStandIn(users=users, clients=clients, clock=module_clock).start()
    yield server
    server.stop()


@pytest.fixture
def clock(module_clock: Clock) -> Clock:
    module_clock.offset = timedelta()
    return module_clock


@pytest.fixture
def standin(module_standin: OpenhimStandIn, clock: Clock) -> OpenhimStandIn:
    """One running stand-in per module (stopping servers costs 0.5 s), state reset per test."""
    module_standin.reset()
    module_standin.up()
    return module_standin


@pytest.fixture
def api(standin: OpenhimStandIn) -> requests.Session:
    session = requests.Session()
    session.auth = ROOT
    return session


def mediator_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "urn": URN,
        "version": "1.0.0",
        "name": "CHT to DHIS2",
        "endpoints": [{"name": "sync", "host": "localhost", "port": "8005", "type": "http"}],
        "configDefs": [
            {"param": "dhis2Url", "type": "string"},
            {"param": "dhis2Password", "type": "password"},
            {"param": "mode", "type": "option", "values": ["dry", "live"]},
        ],
        "config": {"dhis2Url": "http://dhis2", "dhis2Password": "s3cret", "mode": "dry"},
    }
    body.update(overrides)
    return body


def polling_channel(port: int, **overrides: Any) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "name": "CHT DHIS2 sync",
        "type": "polling",
        "pollingSchedule": "0 2 1 * *",
        "urlPattern": "^/cht-dhis2-sync$",
        "allow": ["cht-dhis2"],
        "routes": [
            {"name": "sync route", "host": "127.0.0.1", "port": port, "path": "/sync",
             "primary": True, "type": "http"}
        ],
    }  # fmt: skip
    channel.update(overrides)
    return channel


def make_channel(api: requests.Session, standin: OpenhimStandIn, body: dict[str, Any]) -> str:
    res = api.post(f"{standin.url}/channels", json=body)
    assert res.status_code == 201, res.text
    assert res.text == "Channel successfully created"
    return next(c["_id"] for c in standin.channels if c["name"] == body["name"])


# --- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": "1.0.0"}, "URN is required"),
        (mediator_body(version="1.0"), "Version is required. Must be in SemVer form x.y.z"),
        (
            mediator_body(configDefs=[{"param": "s", "type": "struct"}], config={}),
            "Must specify a template for struct param 's'",
        ),
        (
            mediator_body(configDefs=[{"param": "o", "type": "option", "values": []}], config={}),
            "Must specify a values array for option param 'o'",
        ),
        (
            mediator_body(config={"unknown": 1}),
            "No config definition found for parameter unknown",
        ),
        (
            mediator_body(config={"dhis2Url": 5}),
            "Expected config param dhis2Url to be a string.",
        ),
        (
            mediator_body(config={"mode": "wet"}),
            "Expected config param mode to be one of dry,live",
        ),
        (mediator_body(endpoints=[]), "At least 1 endpoint is required"),
        (
            mediator_body(name=None),
            "Mediator validation failed: name: Path `name` is required.",
        ),
    ],
)
def test_registration_rejects_like_core(
    standin: OpenhimStandIn, api: requests.Session, body: dict[str, Any], message: str
) -> None:
    res = api.post(f"{standin.url}/mediators", json=body)
    assert res.status_code == 400
    assert res.text == f"Could not add Mediator via the API: ValidationError: {message}"
    assert standin.mediators == []


def test_registration_auth_and_permission(standin: OpenhimStandIn) -> None:
    anonymous = requests.post(f"{standin.url}/mediators", json=mediator_body())
    assert (anonymous.status_code, anonymous.text) == (401, "Unauthorized")
    wrong = requests.post(
        f"{standin.url}/mediators", json=mediator_body(), auth=("root@openhim.org", "x")
    )
    assert wrong.status_code == 401
    viewer = requests.post(
        f"{standin.url}/mediators",
        json=mediator_body(),
        auth=("viewer@openhim.org", "viewer-password"),
    )
    assert viewer.status_code == 403
    assert viewer.text == (
        "User viewer@openhim.org is not an admin, API access to addMediator denied."
    )  # fmt: skip


def test_reregistration_equal_version_ignored_newer_merges_config(
    standin: OpenhimStandIn, api: requests.Session
) -> None:
    url = f"{standin.url}/mediators"
    first = api.post(url, json=mediator_body())
    assert (first.status_code, first.text) == (201, "Created")
    assert standin.mediator(URN)["endpoints"][0]["port"] == 8005  # cast like mongoose

    same = api.post(url, json=mediator_body(name="Renamed", config={"mode": "live"}))
    assert same.status_code == 201
    assert standin.mediator(URN)["name"] == "CHT to DHIS2"

    assert api.put(f"{url}/{URN}/config", json={"dhis2Url": "http://edited", "mode": "live"}).ok
    newer_defs = [*mediator_body()["configDefs"], {"param": "batch", "type": "number"}]
    newer = api.post(
        url,
        json=mediator_body(
            version="1.1.0",
            name="Renamed",
            configDefs=newer_defs,
            config={"dhis2Url": "http://default", "batch": 100},
        ),
    )
    assert newer.status_code == 201
    stored = standin.mediator(URN)
    assert stored["name"] == "Renamed"
    # stored value wins, new param added, params absent from the new config dropped
    assert stored["config"] == {"dhis2Url": "http://edited", "batch": 100}

    no_config = mediator_body(version="2.0.0", configDefs=newer_defs)
    del no_config["config"]
    assert api.post(url, json=no_config).status_code == 201
    assert standin.mediator(URN)["config"] == {"dhis2Url": "http://edited", "batch": 100}
    assert standin.mediator(URN)["version"] == "2.0.0"


# --- heartbeat and config ----------------------------------------------------------------------


def test_heartbeat_responses(standin: OpenhimStandIn, api: requests.Session, clock: Clock) -> None:
    hb = f"{standin.url}/mediators/{URN}/heartbeat"
    assert api.post(hb, json={"uptime": 1}).status_code == 404
    body = mediator_body()
    del body["config"]
    assert api.post(f"{standin.url}/mediators", json=body).status_code == 201

    assert api.post(hb, json={}).status_code == 400
    no_config = api.post(hb, json={"uptime": 1, "config": True})
    assert (no_config.status_code, no_config.text) == (200, "OK")
    plain = api.post(hb, json={"uptime": 2})
    assert (plain.status_code, plain.text) == (200, "")

    new_config = {"dhis2Url": "http://dhis2", "dhis2Password": "pw", "mode": "live"}
    put = api.put(f"{standin.url}/mediators/{quote(URN, safe='')}/config", json=new_config)
    assert (put.status_code, put.text) == (200, "OK")
    pushed = api.post(hb, json={"uptime": 3})
    assert pushed.headers["content-type"].startswith("application/json")
    assert pushed.json() == new_config  # passwords unmasked on the heartbeat
    assert api.post(hb, json={"uptime": 4}).text == ""  # delivered once only
    assert api.post(hb, json={"uptime": 5, "config": True}).json() == new_config

    assert requests.get(f"{standin.url}/heartbeat").json()["mediators"] == {URN: 5}
    clock.offset = timedelta(seconds=61)
    public = requests.get(f"{standin.url}/heartbeat").json()
    assert public["mediators"] == {URN: None}
    assert public["master"] >= 61


def test_config_validation_and_404(standin: OpenhimStandIn, api: requests.Session) -> None:
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 201
    bad = api.put(f"{standin.url}/mediators/{URN}/config", json={"nope": "x"})
    assert (bad.status_code, bad.text) == (400, "No config definition found for parameter nope")
    missing = api.put(f"{standin.url}/mediators/urn:none/config", json={})
    assert (missing.status_code, missing.text) == (404, "No mediator found for this urn.")


def test_passwords_masked_on_get_and_restored_on_put(
    standin: OpenhimStandIn, api: requests.Session
) -> None:
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 201
    shown = api.get(f"{standin.url}/mediators/{quote(URN, safe='')}").json()
    assert shown["config"]["dhis2Password"] == "**********"
    # core's list endpoint forgets to mask (maskPasswords on an array)
    assert api.get(f"{standin.url}/mediators").json()[0]["config"]["dhis2Password"] == "s3cret"

    edited = {**shown["config"], "mode": "live"}
    assert api.put(f"{standin.url}/mediators/{URN}/config", json=edited).status_code == 200
    assert standin.mediator(URN)["config"] == {
        "dhis2Url": "http://dhis2",
        "dhis2Password": "s3cret",
        "mode": "live",
    }


# --- token auth --------------------------------------------------------------------------------


def test_token_auth_happy_path_and_clock_skew(standin: OpenhimStandIn) -> None:
    salt_res = requests.get(f"{standin.url}/authenticate/root@openhim.org")
    assert salt_res.status_code == 200
    salt = salt_res.json()["salt"]
    assert set(salt_res.json()) == {"salt", "ts"}

    headers = token_headers(*ROOT, salt, datetime.now(UTC))
    assert requests.get(f"{standin.url}/mediators", headers=headers).status_code == 200

    skewed = token_headers(*ROOT, salt, datetime.now(UTC) - timedelta(seconds=30))
    res = requests.get(f"{standin.url}/mediators", headers=skewed)
    assert (res.status_code, res.text) == (401, "Unauthorized")

    # any auth-* header makes it a token request: valid Basic is then ignored
    mixed = requests.get(f"{standin.url}/mediators", headers={"auth-username": ROOT[0]}, auth=ROOT)
    assert mixed.status_code == 401

    unknown = requests.get(f"{standin.url}/authenticate/nobody@x.org")
    assert (unknown.status_code, unknown.text) == (404, "Could not find user by email nobody@x.org")


# --- polling channels and the envelope ---------------------------------------------------------


LASTRUNAT = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d{2} \d{4} \d{2}:\d{2}:\d{2} "
    r"GMT\+0000 \(Coordinated Universal Time\)$"
)


def test_polling_fire_sends_core_headers_and_stores_envelope(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    orchestration = {
        "name": "DHIS2 dataValueSets",
        "request": {"method": "POST", "path": "/api/dataValueSets", "body": "{}",
                    "timestamp": now_iso()},
        "response": {"status": 200, "body": '{"status":"SUCCESS"}', "timestamp": now_iso()},
    }  # fmt: skip
    route.reply = lambda: envelope_reply(
        {"status": 200, "headers": {"content-type": "application/json"}, "body": '{"done":1}',
         "timestamp": now_iso()},
        status="Successful",
        orchestrations=[orchestration],
        properties={"imported": 3, "period": "202401"},
    )  # fmt: skip
    channel_id = make_channel(api, standin, polling_channel(route_port))
    assert standin.is_scheduled(channel_id)

    tx = standin.fire_polling_channel("CHT DHIS2 sync")

    (seen,) = route.received
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/sync", "")
    assert set(seen["headers"]) == {
        "host", "connection", "accept", "user-agent", "channel-id",
        "x-openhim-lastrunat", "x-openhim-transactionid",
    }  # fmt: skip
    assert seen["headers"]["channel-id"] == channel_id
    assert seen["headers"]["x-openhim-transactionid"] == tx["_id"]
    assert seen["headers"]["accept"] == "application/json, text/plain, */*"
    assert seen["headers"]["user-agent"] == "axios/0.21.4"
    assert LASTRUNAT.match(seen["headers"]["x-openhim-lastrunat"])

    assert tx["status"] == "Successful"
    assert tx["channelID"] == channel_id
    assert tx["request"]["method"] == "GET" and tx["request"]["path"] == "/trigger"
    assert tx["response"]["status"] == 200 and tx["response"]["body"] == '{"done":1}'
    assert tx["properties"] == {"imported": 3, "period": "202401"}
    mediator_orch, core_orch = tx["orchestrations"]
    assert mediator_orch["name"] == "DHIS2 dataValueSets"
    assert core_orch["name"] == "sync route"
    assert json.loads(core_orch["response"]["body"])["properties"]["imported"] == 3
    assert tx["autoRetry"] is False
    listed = api.get(f"{standin.url}/transactions", params={"filterRepresentation": "full"}).json()
    assert listed[0]["_id"] == tx["_id"] and len(listed[0]["orchestrations"]) == 2


def test_installed_default_channel_is_not_scheduled(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    body = mediator_body(defaultChannelConfig=[polling_channel(route_port)])
    assert api.post(f"{standin.url}/mediators", json=body).status_code == 201
    res = api.post(f"{standin.url}/mediators/{URN}/channels", json=["CHT DHIS2 sync"])
    assert res.status_code == 201
    bad = api.post(f"{standin.url}/mediators/{URN}/channels", json=["nope"])
    assert bad.status_code == 400
    assert bad.text.startswith("Could not load mediator default channel config, one or more")
    (channel,) = standin.channels
    assert not standin.is_scheduled(channel["_id"])
    with pytest.raises(ChannelNotScheduled):
        standin.fire_polling_channel(channel["_id"])

    trigger = api.post(f"{standin.url}/channels/{channel['_id']}/trigger")
    assert trigger.status_code == 200
    assert LASTRUNAT.match(route.received[-1]["headers"]["x-openhim-lastrunat"])

    assert api.put(f"{standin.url}/channels/{channel['_id']}", json={"description": "x"}).ok
    assert standin.is_scheduled(channel["_id"])
    assert standin.fire_polling_channel(channel["_id"])["status"] == "Successful"


def test_trigger_answers_500_when_route_fails(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    route.reply = lambda: envelope_reply({"status": 502, "body": "dhis2 down"})
    channel_id = make_channel(api, standin, polling_channel(route_port))
    assert api.post(f"{standin.url}/channels/{channel_id}/trigger").status_code == 500
    assert standin.transactions[0]["status"] == "Failed"


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"routes": []}, "Channel must have a primary route"),
        ({"methods": ["GET"]}, "Channel method can't be defined if channel type is not http"),
        (
            {"urlPattern": None},
            "Could not add channel via the API: ValidationError: Channel validation failed: "
            "urlPattern: Path `urlPattern` is required.",
        ),
    ],
)
def test_channel_validation(
    standin: OpenhimStandIn,
    api: requests.Session,
    route_port: int,
    channel: dict[str, Any],
    message: str,
) -> None:
    res = api.post(f"{standin.url}/channels", json=polling_channel(route_port, **channel))
    assert (res.status_code, res.text) == (400, message)


def _fire(api: requests.Session, standin: OpenhimStandIn, port: int) -> dict[str, Any]:
    make_channel(api, standin, polling_channel(port))
    return standin.fire_polling_channel("CHT DHIS2 sync")


@pytest.mark.parametrize(
    "bad_orchestrations",
    [
        [{"name": "x", "request": {"timestamp": "2024-01-01T00:00:00Z"},
          "response": {"status": 200, "body": {"not": "a string"}}}],
        {"name": "not an array"},
        [{"request": {"timestamp": "2024-01-01T00:00:00Z"}}],
        [{"name": "no timestamp", "request": {"path": "/x"}}],
    ],
)  # fmt: skip
def test_orchestration_violations_leave_transaction_without_response(
    standin: OpenhimStandIn,
    api: requests.Session,
    route: FakeMediator,
    route_port: int,
    bad_orchestrations: Any,
) -> None:
    route.reply = lambda: envelope_reply(
        {"status": 200, "body": "ok"}, status="Successful", orchestrations=bad_orchestrations,
        properties={"n": 1},
    )  # fmt: skip
    tx = _fire(api, standin, route_port)
    assert tx["status"] == "Successful"  # setFinalStatus still runs
    assert "response" not in tx and tx["orchestrations"] == [] and "properties" not in tx
    assert standin.store_failures[-1]["transactionID"] == tx["_id"]


@pytest.mark.parametrize(
    "inner",
    [None, {"status": "abc", "body": "x"}, {"status": True, "body": "x"}],
)
def test_bad_inner_response_fails_the_transaction(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int, inner: Any
) -> None:
    route.reply = lambda: envelope_reply(inner)
    tx = _fire(api, standin, route_port)
    assert tx["status"] == "Failed"
    assert tx["response"]["status"] == 500
    assert tx["response"]["body"] == "An internal server error occurred"
    assert tx["error"]["message"] and tx["autoRetry"] is True


def test_inner_response_type_coercions(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    route.reply = lambda: envelope_reply({"status": "201", "body": {"an": "object"}})
    tx = _fire(api, standin, route_port)
    assert tx["response"]["status"] == 201
    assert tx["response"]["body"] == "[object Object]"
    assert tx["status"] == "Successful"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, "Failed"), (404, "Completed"), (200, "Successful"), (302, "Completed")],
)
def test_status_derived_without_envelope_status(
    standin: OpenhimStandIn,
    api: requests.Session,
    route: FakeMediator,
    route_port: int,
    status: int,
    expected: str,
) -> None:
    route.reply = lambda: envelope_reply({"status": status, "body": "x"})
    assert _fire(api, standin, route_port)["status"] == expected


def test_plain_response_and_envelope_error(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    route.reply = lambda: Response("plain", status=200, content_type="text/plain")
    tx = _fire(api, standin, route_port)
    assert tx["status"] == "Successful" and tx["response"]["body"] == "plain"
    assert [o["name"] for o in tx["orchestrations"]] == ["sync route"]

    route.reply = lambda: envelope_reply(
        {"status": 200, "body": "x"}, error={"message": "partial", "stack": "s"}
    )
    tx = standin.fire_polling_channel("CHT DHIS2 sync")
    assert tx["error"] == {"message": "partial", "stack": "s"}
    assert tx["autoRetry"] is True and tx["_id"] in standin.autoretry_queue


def test_bodies_truncated_at_15_mib_and_for_display(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    big = "a" * (15 * 1024 * 1024 + 10)
    route.reply = lambda: Response(big, status=200, content_type="text/plain")
    tx = _fire(api, standin, route_port)
    assert tx["response"]["body"] == big[: 15 * 1024 * 1024] + TRUNCATED
    (core_orch,) = tx["orchestrations"]
    assert core_orch["response"]["body"] == TRUNCATED  # budget already spent
    shown = api.get(
        f"{standin.url}/transactions/{tx['_id']}", params={"filterRepresentation": "fulltruncate"}
    ).json()
    assert shown["response"]["body"] == "a" * 15000 + TRUNCATED


# --- transactions API, rerun, timeouts ---------------------------------------------------------


def test_put_transaction_async_pattern(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    route.reply = lambda: envelope_reply({"status": 202, "body": "accepted"}, status="Processing")
    tx = _fire(api, standin, route_port)
    assert tx["status"] == "Processing"
    update = {
        "status": "Successful",
        "response": {"status": 200, "body": "done", "timestamp": now_iso()},
        "properties": {"imported": 10},
    }
    res = api.put(f"{standin.url}/transactions/{tx['_id']}", json=update)
    assert (res.status_code, res.text) == (
        200,
        f"Transaction with ID: {tx['_id']} successfully updated",
    )
    stored = standin.transaction(tx["_id"])
    assert stored["status"] == "Successful" and stored["properties"] == {"imported": 10}
    assert stored["response"]["body"] == "done" and stored["orchestrations"]  # untouched

    assert api.put(f"{standin.url}/transactions/{tx['_id']}", json={"error": {"message": "x"}}).ok
    assert standin.transaction(tx["_id"])["autoRetry"] is True
    unknown = api.put(f"{standin.url}/transactions/{'0' * 24}", json={"status": "Failed"})
    assert unknown.status_code == 500
    assert unknown.text.startswith("Could not update transaction via the API: TypeError")


def test_post_transaction(standin: OpenhimStandIn, api: requests.Session) -> None:
    body = {
        "status": "Successful",
        "channelID": "c",
        "request": {"path": "/x", "timestamp": now_iso()},
    }
    created = api.post(f"{standin.url}/transactions", json=body)
    assert (created.status_code, created.text) == (201, "Created")
    assert standin.transactions[0]["request"]["path"] == "/x"
    invalid = api.post(f"{standin.url}/transactions", json={"request": {"path": "/x"}})
    assert invalid.status_code == 500
    assert invalid.text == (
        "Could not add a transaction via the API: ValidationError: Transaction validation "
        "failed: status: Path `status` is required., request.timestamp: Path `timestamp` is "
        "required."
    )


def test_rerun_creates_child_transaction(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    parent = _fire(api, standin, route_port)
    res = api.post(f"{standin.url}/tasks", json={"tids": [parent["_id"]]})
    assert res.status_code == 201 and "created task with id" in res.text

    first, again = route.received
    assert again["headers"]["parentid"] == parent["_id"]
    assert again["headers"]["channel-id"] == first["headers"]["channel-id"]
    assert again["headers"]["x-openhim-lastrunat"] == first["headers"]["x-openhim-lastrunat"]
    child_id = again["headers"]["x-openhim-transactionid"]
    assert child_id != parent["_id"]
    child = standin.transaction(child_id)
    assert child["parentID"] == parent["_id"] and child["taskID"] == again["headers"]["taskid"]
    assert child["status"] == "Successful"
    updated = standin.transaction(parent["_id"])
    assert updated["childIDs"] == [child_id] and updated["wasRerun"] is True


def test_route_timeout_and_refused_fail_the_transaction(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    def slow() -> Response:
        time.sleep(0.8)
        return envelope_reply({"status": 200, "body": "late"})

    route.reply = slow
    make_channel(api, standin, polling_channel(route_port, timeout=200))
    tx = standin.fire_polling_channel("CHT DHIS2 sync")
    assert tx["status"] == "Failed" and tx["autoRetry"] is True
    assert tx["error"]["message"] == "Request took longer than 200ms"
    assert tx["orchestrations"][-1]["error"]["message"] == "Request took longer than 200ms"

    dead = polling_channel(free_port(), name="dead")
    make_channel(api, standin, dead)
    refused = standin.fire_polling_channel("dead")
    assert refused["status"] == "Failed"
    assert "ECONNREFUSED" in refused["error"]["message"]


def test_http_channel_router_forwards_querystring(
    standin: OpenhimStandIn, api: requests.Session, route: FakeMediator, route_port: int
) -> None:
    make_channel(api, standin, polling_channel(route_port))
    url = f"{standin.router_url}/cht-dhis2-sync?period=202401"
    assert requests.get(url).status_code == 401
    assert requests.get(url, auth=("cht", "wrong")).status_code == 401
    res = requests.get(url, auth=("cht", "cht-secret"))
    assert (res.status_code, res.text) == (200, "ok")
    seen = route.received[-1]
    assert seen["path"] == "/sync" and seen["query"] == "period=202401"
    assert "authorization" not in seen["headers"]  # forwardAuthHeader defaults to false
    assert standin.transactions[0]["request"]["querystring"] == "period=202401"


# --- fault hooks -------------------------------------------------------------------------------


def test_fault_hooks(standin: OpenhimStandIn, api: requests.Session) -> None:
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 201
    hb = f"{standin.url}/mediators/{URN}/heartbeat"

    standin.faults.fail(r"/heartbeat$", status=500, times=2)
    codes = [api.post(hb, json={"uptime": 1}).status_code for _ in range(3)]
    assert codes == [500, 500, 200]

    standin.faults.fail(r"^/mediators$", status=401, times=None)
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 401
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 401
    standin.faults.clear()
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 201

    standin.faults.slow(r"/heartbeat$", seconds=0.3, times=1)
    started = time.monotonic()
    assert api.post(hb, json={"uptime": 1}).status_code == 200
    assert time.monotonic() - started >= 0.3

    standin.down()
    with pytest.raises(requests.ConnectionError):
        api.post(hb, json={"uptime": 1}, timeout=2)
    standin.up()
    assert api.post(hb, json={"uptime": 1}).status_code == 200


def test_concurrent_heartbeats_are_safe(standin: OpenhimStandIn, api: requests.Session) -> None:
    assert api.post(f"{standin.url}/mediators", json=mediator_body()).status_code == 201
    hb = f"{standin.url}/mediators/{URN}/heartbeat"
    codes: list[int] = []

    def beat() -> None:
        codes.append(requests.post(hb, json={"uptime": 1}, auth=ROOT).status_code)

    threads = [threading.Thread(target=beat) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
