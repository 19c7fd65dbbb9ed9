"""OpenHIM client and agent against mocked core answers (reference §1-§3)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import responses
from pydantic import SecretStr

from mediator.http.client import RetryPolicy
from mediator.http.errors import BadStatus, CredentialsRefused, Forbidden
from mediator.openhim.agent import OpenhimAgent, retry_later
from mediator.openhim.client import MediatorNotFound, OpenhimClient
from mediator.openhim.console_config import ConsoleConfig, load_registration
from mediator.settings.config import OpenhimSettings

CORE = "https://openhim.test:8080"
URN = "urn:mediator:cht-dhis2-aggregate"
HEARTBEAT = f"{CORE}/mediators/{URN}/heartbeat"


def settings(**overrides: Any) -> OpenhimSettings:
    values: dict[str, Any] = {
        "url": CORE,
        "username": "root@openhim.org",
        "password": SecretStr("Hb-s3cret-pw"),
    }
    values.update(overrides)
    return OpenhimSettings(**values)


def make_agent(
    sleeps: list[float] | None = None, monotonic: list[float] | None = None
) -> OpenhimAgent:
    registration = load_registration(env={})
    ticks = iter(monotonic or [100.0, 142.5, 152.5, 162.5, 172.5, 182.5, 192.5])
    return OpenhimAgent(
        OpenhimClient(settings()),
        registration,
        ConsoleConfig(registration["configDefs"]),
        retry=RetryPolicy(attempts=10**6, base_seconds=2.0, cap_seconds=30.0, jitter=False),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        monotonic=lambda: next(ticks),
    )


def body_of(call: Any) -> Any:
    return json.loads(call.request.body)


# --- registration ---


@responses.activate
def test_registration_posts_the_mediator_config_with_basic_auth() -> None:
    responses.post(f"{CORE}/mediators", status=201, body="Created")
    registration = load_registration(env={})
    OpenhimClient(settings()).register(registration)
    call = responses.calls[0]
    assert body_of(call)["urn"] == URN
    assert body_of(call)["configDefs"] == registration["configDefs"]
    expected = base64.b64encode(b"root@openhim.org:Hb-s3cret-pw").decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"
    assert not any(h.lower().startswith("auth-") for h in call.request.headers)


@responses.activate
def test_registration_retries_with_capped_backoff_while_core_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.post(f"{CORE}/mediators", body=requests.ConnectionError("refused"))
    for _ in range(6):
        responses.post(f"{CORE}/mediators", status=503, body="starting")
    responses.post(f"{CORE}/mediators", status=201)
    sleeps: list[float] = []
    agent = make_agent(sleeps)
    with caplog.at_level(logging.INFO, logger="mediator.openhim"):
        assert agent.register_until_done() is True
    assert agent.registered
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]  # doubling, capped at 30 s
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # one line for the connection error, one when it turned into 503: not one per attempt
    assert len(warnings) == 2
    assert any("after 7 failed attempts" in r.getMessage() for r in caplog.records)


def test_backoff_jitter_stays_between_half_and_full_delay() -> None:
    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0)
    rng = random.Random(7)
    for attempt in range(1, 41):
        delay = policy.pause(attempt, rng)
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


@responses.activate
def test_registration_400_logs_cores_validation_message_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message = "Could not add Mediator via the API: ValidationError: Version is required."
    responses.post(f"{CORE}/mediators", status=400, body=message)
    sleeps: list[float] = []
    agent = make_agent(sleeps)
    with caplog.at_level(logging.INFO, logger="mediator.openhim"):
        assert agent.register_until_done(max_attempts=4) is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert message in errors[0]
    assert len(sleeps) == 3
    assert not agent.registered
    assert message in (agent.status()["last_error"] or "")


@responses.activate
def test_registration_401_names_the_credentials() -> None:
    responses.post(f"{CORE}/mediators", status=401, body="Unauthorized")
    with pytest.raises(CredentialsRefused, match="OPENHIM_USERNAME/OPENHIM_PASSWORD"):
        OpenhimClient(settings()).register({"urn": URN})


@responses.activate
def test_5xx_is_retryable_and_4xx_is_not() -> None:
    responses.post(f"{CORE}/mediators", status=502)
    responses.post(f"{CORE}/mediators", status=400, body="ValidationError")
    with pytest.raises(BadStatus) as away:
        OpenhimClient(settings()).register({"urn": URN})
    with pytest.raises(BadStatus) as refused:
        OpenhimClient(settings()).register({"urn": URN})
    assert retry_later(away.value) and not retry_later(refused.value)


def test_error_messages_do_not_show_credentials_in_the_url() -> None:
    client = OpenhimClient(settings(url="https://admin:pw123456@openhim.test:8080"))
    assert client.display_url == "https://openhim.test:8080"


# --- heartbeat ---


def registered_agent() -> OpenhimAgent:
    agent = make_agent()
    agent.registered = True
    return agent


@responses.activate
def test_first_heartbeat_asks_for_config_and_applies_it() -> None:
    responses.post(HEARTBEAT, json={"dataSets": ["ABCdef12345"], "dryRun": True})
    responses.post(HEARTBEAT, body="")
    agent = registered_agent()
    agent.heartbeat()
    agent.heartbeat()
    first, second = (body_of(c) for c in responses.calls)
    assert first == {"uptime": 42.5, "config": True}  # process uptime, not system uptime
    assert second == {"uptime": 52.5}
    assert agent.console.current() == {"dataSets": ["ABCdef12345"], "dryRun": True}
    assert agent.status()["last_heartbeat_ok"] is True


@pytest.mark.parametrize("answer", ["", "OK"])
@responses.activate
def test_empty_and_ok_answers_mean_no_change(answer: str) -> None:
    responses.post(HEARTBEAT, body=answer)
    agent = registered_agent()
    agent.console.apply({"dryRun": True})
    agent.heartbeat()
    assert agent.console.current() == {"dryRun": True}
    assert agent.last_heartbeat_ok is True


@responses.activate
def test_invalid_console_config_keeps_the_last_good_one(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(HEARTBEAT, json={"dataSets": ["ABCdef12345"]})
    responses.post(HEARTBEAT, json={"dataSets": "not-a-list", "chunkSize": "big"})
    agent = registered_agent()
    agent.heartbeat()
    agent._want_config = True
    with caplog.at_level(logging.WARNING):
        agent.heartbeat()
    assert agent.console.current() == {"dataSets": ["ABCdef12345"]}
    assert any("keeping the last good config" in r.getMessage() for r in caplog.records)


@responses.activate
def test_unknown_console_params_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.post(HEARTBEAT, json={"dryRun": True, "legacyParam": "x"})
    agent = registered_agent()
    with caplog.at_level(logging.WARNING):
        agent.heartbeat()
    assert agent.console.current() == {"dryRun": True}
    assert any("legacyParam" in r.getMessage() for r in caplog.records)


@responses.activate
def test_failing_heartbeat_never_raises_logs_once_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responses.post(HEARTBEAT, body="")
    responses.post(HEARTBEAT, status=500, body="boom")
    responses.post(HEARTBEAT, body=requests.ConnectionError("down"))
    responses.post(HEARTBEAT, status=500)
    responses.post(HEARTBEAT, body="")
    agent = registered_agent()
    with caplog.at_level(logging.INFO, logger="mediator.openhim"):
        for _ in range(5):
            agent.heartbeat()  # must not raise
    sent = [body_of(c) for c in responses.calls]
    assert [b.get("config", False) for b in sent] == [True, False, True, True, True]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert any("recovered after 3 failures" in r.getMessage() for r in caplog.records)
    assert agent.last_heartbeat_ok is True


@responses.activate
def test_heartbeat_404_re_registers_the_deleted_mediator() -> None:
    responses.post(HEARTBEAT, status=404)
    responses.post(f"{CORE}/mediators", status=201)
    responses.post(HEARTBEAT, json={"dryRun": True})
    agent = registered_agent()
    agent.heartbeat()
    assert agent._thread is not None
    agent._thread.join(timeout=10)
    paths = [c.request.method + " " + c.request.url for c in responses.calls]
    assert paths == [f"POST {HEARTBEAT}", f"POST {CORE}/mediators", f"POST {HEARTBEAT}"]
    assert agent.registered
    assert body_of(responses.calls[2])["config"] is True
    assert agent.console.current() == {"dryRun": True}


def test_heartbeat_waits_while_not_registered() -> None:
    agent = make_agent()
    with responses.RequestsMock() as mock:  # any call would fail the test
        agent.heartbeat()
        assert len(mock.calls) == 0


@responses.activate
def test_heartbeat_job_survives_unexpected_errors() -> None:
    agent = registered_agent()

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    agent.client.heartbeat = explode  # type: ignore[method-assign]
    agent.heartbeat()
    assert agent.last_heartbeat_ok is False
    assert agent._want_config is True


@responses.activate
def test_non_json_heartbeat_answer_is_a_failure_not_a_crash() -> None:
    responses.post(HEARTBEAT, body="<html>proxy error</html>")
    agent = registered_agent()
    agent.heartbeat()
    assert agent.last_heartbeat_ok is False


def test_heartbeat_raises_typed_404() -> None:
    with responses.RequestsMock() as mock:
        mock.post(HEARTBEAT, status=404)
        with pytest.raises(MediatorNotFound):
            OpenhimClient(settings()).heartbeat(URN, 1.0, want_config=False)


# --- legacy token auth (§3a) ---


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


@responses.activate
def test_token_auth_headers_follow_the_core_formula() -> None:
    responses.get(
        f"{CORE}/authenticate/root@openhim.org",
        json={"salt": "d9bcb40e-ae65-478f-962e-5e5e5e7d0a01", "ts": "2024-03-03T02:00:00.000Z"},
    )
    responses.post(HEARTBEAT, body="")
    responses.post(HEARTBEAT, body="")
    fixed = datetime(2024, 3, 3, 2, 0, 1, 250000, tzinfo=UTC)
    client = OpenhimClient(
        settings(auth="token", password=SecretStr("openhim-password")),
        clock=lambda: fixed,
        salt_factory=lambda: "4f1c8b9e-0000-4000-8000-000000000001",
    )
    client.heartbeat(URN, 1.0, want_config=False)
    client.heartbeat(URN, 2.0, want_config=False)
    headers = responses.calls[1].request.headers
    assert headers["auth-username"] == "root@openhim.org"
    assert headers["auth-ts"] == "2024-03-03T02:00:01.250Z"
    assert headers["auth-salt"] == "4f1c8b9e-0000-4000-8000-000000000001"
    password_hash = sha512("d9bcb40e-ae65-478f-962e-5e5e5e7d0a01" + "openhim-password")
    assert headers["auth-token"] == sha512(
        password_hash + "4f1c8b9e-0000-4000-8000-000000000001" + "2024-03-03T02:00:01.250Z"
    )
    assert "Authorization" not in headers  # any auth-* header makes core skip basic auth
    # the passport salt is fetched once, not before every heartbeat
    assert sum(1 for c in responses.calls if "/authenticate/" in c.request.url) == 1


@responses.activate
def test_token_auth_without_token_passport_says_to_use_basic() -> None:
    responses.get(
        f"{CORE}/authenticate/ops@example.org",
        status=404,
        body="Could not find token passport for user ops@example.org",
    )
    client = OpenhimClient(settings(auth="token", username="ops@example.org"))
    with pytest.raises(CredentialsRefused, match="OPENHIM_AUTH=basic"):
        client.register({"urn": URN})


# --- transactions and channels (§5, §6) ---


@responses.activate
def test_update_transaction_puts_to_the_transaction_id() -> None:
    responses.put(
        f"{CORE}/transactions/65f000000000000000000001",
        body="Transaction with ID: 65f000000000000000000001 successfully updated",
    )
    OpenhimClient(settings()).update_transaction(
        "65f000000000000000000001", {"status": "Successful"}
    )
    assert body_of(responses.calls[0]) == {"status": "Successful"}


@responses.activate
def test_trigger_channel_finds_the_channel_by_name() -> None:
    responses.get(
        f"{CORE}/channels",
        json=[{"_id": "c1", "name": "other"}, {"_id": "c2", "name": "CHT to DHIS2 monthly push"}],
    )
    responses.post(f"{CORE}/channels/c2/trigger", body="OK")
    agent = registered_agent()
    assert agent.trigger_channel("CHT to DHIS2 monthly push") == "c2"
    assert agent.trigger_channel("missing") is None


@responses.activate
def test_report_transaction_retries_while_core_is_away() -> None:
    url = f"{CORE}/transactions/abc"
    responses.put(url, status=503)
    responses.put(url, body=requests.ConnectionError("down"))
    responses.put(url, body="updated")
    sleeps: list[float] = []
    agent = make_agent(sleeps)
    assert agent.report_transaction("abc", {"status": "Failed"}) is True
    assert len(sleeps) == 2


@responses.activate
@pytest.mark.parametrize(
    ("version", "words"),
    [
        ("8.5.0", "needs the admin role for the transaction update (core 8.5.0 allows it"),
        ("8.6.0", "role needs the channel-manage-all permission (core 8.6.0)"),
        (None, "needs the admin role for the transaction update (core 8.5 and earlier"),
    ],
)
def test_a_403_says_what_this_call_needs_on_this_core(version: str | None, words: str) -> None:
    """Core 8.5.0 allows every call the mediator makes to admins only (its
    ``authorisation.inGroup('admin', …)``); later cores check role permissions."""
    responses.put(
        f"{CORE}/transactions/abc",
        status=403,
        body="User ops@example.org is not an admin, API access to updateTransaction denied.",
    )
    if version is None:
        responses.get(f"{CORE}/about", status=404)
    else:
        responses.get(f"{CORE}/about", json={"currentCoreVersion": version})
    with pytest.raises(Forbidden) as exc:
        OpenhimClient(settings()).update_transaction("abc", {"status": "Failed"})
    assert words in str(exc.value)
    assert "API access to updateTransaction denied" in str(exc.value)  # core's own words
