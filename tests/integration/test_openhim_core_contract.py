"""The mediator's OpenHIM client (``mediator/openhim.py``) against the real core
8.5.0, call by call: what the retired in-process stand-in used to model, checked
once where it counts (heartbeat and config delivery, the console's config
validation and password masking, token auth, permissions, POST /transactions,
a channel trigger whose route failed)."""

from __future__ import annotations

import pytest

from devstack.openhim_core import OpenhimCore
from mediator.http.errors import CredentialsRefused, Forbidden, PeerError
from mediator.model.values import utcnow
from mediator.openhim.client import MediatorNotFound, OpenhimClient
from mediator.openhim.console_config import load_registration
from mediator.openhim.envelope import error_envelope, iso, transaction_document
from mediator.settings.config import OpenhimSettings

URN = "urn:mediator:cht-dhis2-aggregate"
MASK = "**********"  # core's mask for password params (src/api/mediators.js maskPasswords)


def client(core: OpenhimCore, user: tuple[str, str] | None = None, **env: str) -> OpenhimClient:
    email, password = user or core.mediator_user
    settings = {
        "OPENHIM_URL": core.url,
        "OPENHIM_USERNAME": email,
        "OPENHIM_PASSWORD": password,
        "OPENHIM_TRUST_SELF_SIGNED": "true",
        **env,
    }
    return OpenhimClient(OpenhimSettings.from_env(settings))


@pytest.fixture
def registered(openhim: OpenhimCore) -> tuple[OpenhimClient, dict]:
    registration = load_registration(env={})
    mediator = client(openhim)
    mediator.register(registration)
    return mediator, registration


def test_heartbeat_hands_over_the_config_when_asked_and_once_after_a_change(openhim, registered):
    mediator, registration = registered
    first = mediator.heartbeat(URN, 1.0, want_config=True)
    # core stores no empty object (mongoose's minimize): an empty map param is absent
    assert first.config == {k: v for k, v in registration["config"].items() if v != {}}
    assert mediator.heartbeat(URN, 2.0, want_config=False).config is None  # empty body
    config = {**registration["config"], "chtDb": "medic-edited", "dhis2Password": "s3cret"}
    openhim.expect(200, "PUT", f"/mediators/{URN}/config", json=config)
    changed = mediator.heartbeat(URN, 3.0, want_config=False).config
    assert changed is not None
    assert changed["chtDb"] == "medic-edited"
    assert changed["dhis2Password"] == "s3cret"  # handed over in clear, by heartbeat only
    assert mediator.heartbeat(URN, 4.0, want_config=False).config is None  # once
    assert openhim.mediator(URN)["_uptime"] == 4.0
    with pytest.raises(MediatorNotFound):  # deleted in the console: re-register
        mediator.heartbeat("urn:mediator:unknown", 1.0, want_config=False)


def test_console_config_is_validated_and_masked_passwords_survive_an_edit(openhim, registered):
    _, registration = registered
    bad = openhim.api("PUT", f"/mediators/{URN}/config", json={"nope": "x"})
    assert (bad.status_code, bad.text) == (400, "No config definition found for parameter nope")
    missing = openhim.api("PUT", "/mediators/urn:none/config", json={})
    assert (missing.status_code, missing.text) == (404, "No mediator found for this urn.")
    secret = {**registration["config"], "dhis2Password": "s3cret"}
    openhim.expect(200, "PUT", f"/mediators/{URN}/config", json=secret)
    shown = openhim.mediator(URN)["config"]
    assert shown["dhis2Password"] == MASK
    # the console sends the masked value back when another field is edited
    openhim.expect(200, "PUT", f"/mediators/{URN}/config", json={**shown, "dryRun": True})
    stored = openhim.mediator_document(URN)["config"]
    assert stored["dhis2Password"] == "s3cret" and stored["dryRun"] is True


def test_token_auth_works_for_root(openhim):
    # root has a token passport with a salt from core's first start (src/server.js)
    client(openhim, openhim.root_auth, OPENHIM_AUTH="token").register(load_registration(env={}))
    assert openhim.mediator(URN) is not None


def test_token_auth_for_a_console_made_user_names_the_fix(openhim):
    with pytest.raises(CredentialsRefused, match="OPENHIM_AUTH=basic"):
        client(openhim, OPENHIM_AUTH="token").register(load_registration(env={}))


def test_a_user_outside_the_admin_group_is_told_what_core_8_5_0_wants(openhim):
    viewer = ("viewer@openhim.local", "viewer-Pa55")
    if openhim.mongo["users"].find_one({"email": viewer[0]}) is None:
        openhim.add_user(*viewer, groups=["viewers"])
    with pytest.raises(Forbidden) as refused:
        client(openhim, viewer).register(load_registration(env={}))
    assert refused.value.status == 403
    assert "is not an admin" in str(refused.value)  # core's own words
    assert "mediator-manage-all" not in str(refused.value)
    # what this call needs on this core, read from its /about
    assert "needs the admin role for the registration (core 8.5.0" in str(refused.value)


def test_post_transactions_records_a_run_that_did_not_go_through_core(openhim, registered):
    mediator, _ = registered
    started = utcnow()
    envelope = error_envelope(urn=URN, http_status=500, message="configuration problem: x")
    request = {"host": "127.0.0.1", "port": "5011", "path": "/push", "method": "GET"}
    document = transaction_document(
        envelope,
        request={
            **request,
            "querystring": "",
            "headers": {},
            "body": "",
            "timestamp": iso(started),
        },
        channel_id=None,
    )
    mediator.create_transaction(document)  # core answers 201 without the new id
    (stored,) = openhim.transactions
    assert stored["status"] == envelope["status"] == "Failed"
    assert stored["properties"] == envelope["properties"]
    assert stored["canRerun"] is False  # no channel to rerun it through


def test_trigger_answers_500_when_the_route_failed_and_the_run_is_recorded(openhim, registered):
    mediator, _ = registered
    dead = {"name": "nowhere", "host": "127.0.0.1", "port": 9, "primary": True, "type": "http"}
    channel = {
        "name": "polling to a closed port",
        "type": "polling",
        "pollingSchedule": "0 2 3 * *",
        "urlPattern": "^/nowhere$",
        "routes": [dead],
    }
    openhim.expect(201, "POST", "/channels", json=channel)
    channel_id = mediator.find_channel(channel["name"])
    assert channel_id is not None
    with pytest.raises(PeerError, match="500"):
        mediator.trigger_channel(channel_id)
    tx = openhim.await_transaction(lambda t: True, channel_id)
    assert tx["status"] == "Failed"
