"""``serve()``: the long-running mediator (``python -m mediator serve``).

Wires the Flask app, OpenHIM registration (background thread, back-off), the
10 s heartbeat (APScheduler job) and the optional internal schedule
(``MEDIATOR_SCHEDULE``, a 5-field cron in ``MEDIATOR_TIMEZONE``). A scheduled
run goes through OpenHIM core by triggering the polling channel, so it is an
ordinary, rerunnable transaction; only when that is impossible does the
mediator run itself and record the transaction with ``POST /transactions``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from werkzeug.serving import make_server

from mediator.http.errors import PeerError
from mediator.model.values import utcnow
from mediator.openhim.agent import OpenhimAgent
from mediator.openhim.client import OpenhimClient
from mediator.openhim.console_config import ConsoleConfig, load_registration, validate_config
from mediator.openhim.envelope import iso, transaction_document
from mediator.run.pipeline import execute
from mediator.run.request import RunRequest
from mediator.settings.config import MediatorSettings, OpenhimSettings
from mediator.settings.secrets import warn_weak_secrets
from mediator.settings.variables import ConfigError

from .app import PUSH_PATH, create_app
from .runs import Runner, RunService

log = logging.getLogger(__name__)

SCHEDULE_ENV = "MEDIATOR_SCHEDULE"
SCHEDULE_CHANNEL_ENV = "MEDIATOR_SCHEDULE_CHANNEL"
PUSH_USER_ENV, PUSH_PASSWORD_ENV = "MEDIATOR_PUSH_USERNAME", "MEDIATOR_PUSH_PASSWORD"
PUSH_AUTH_ENV = "MEDIATOR_PUSH_AUTH"  # "none": leave /push open off loopback, on purpose


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def push_credentials(env: Mapping[str, str], host: str) -> tuple[str, str] | None:
    """The Basic credentials /push requires, or None when it may stay open.

    Off loopback, /push would let anyone on the network trigger pushes: then the
    credentials are required unless ``MEDIATOR_PUSH_AUTH=none`` says otherwise.
    """
    user = (env.get(PUSH_USER_ENV) or "").strip()
    password = env.get(PUSH_PASSWORD_ENV) or ""
    if user and password:
        return user, password
    if user or password:
        raise ConfigError(f"set both {PUSH_USER_ENV} and {PUSH_PASSWORD_ENV}, or neither")
    if is_loopback(host):
        return None
    mode = (env.get(PUSH_AUTH_ENV) or "").strip().lower()
    if mode == "none":
        log.warning(
            "the push endpoint is open to anyone who can reach %s (%s=none): "
            "anyone there can trigger pushes to DHIS2",
            host,
            PUSH_AUTH_ENV,
        )
        return None
    raise ConfigError(
        f"MEDIATOR_HOST={host} makes /push reachable from the network, so it needs "
        f"credentials: set {PUSH_USER_ENV} and {PUSH_PASSWORD_ENV} (and the same username "
        f"and password as Basic auth on the OpenHIM channel's route), or {PUSH_AUTH_ENV}=none "
        "to leave it open on purpose"
    )


def polling_channel_name(registration: Mapping[str, Any]) -> str | None:
    for channel in registration.get("defaultChannelConfig", []):
        if channel.get("type") == "polling":
            return str(channel["name"])
    return None


class ScheduledRun:
    """The internal schedule's job: through core if possible, locally otherwise."""

    def __init__(
        self,
        service: RunService,
        agent: OpenhimAgent | None,
        channel_name: str | None,
        route: Mapping[str, str],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.service = service
        self.agent = agent
        self.channel_name = channel_name
        self.route = route
        self.clock = clock

    def __call__(self) -> None:
        try:
            self._run()
        except Exception:  # the scheduler must live on for next month
            log.exception("scheduled run failed")

    def _run(self) -> None:
        started = self.clock()
        channel_id: str | None = None
        if self.agent is not None and self.channel_name:
            try:
                channel_id = self.agent.trigger_channel(self.channel_name)
            except PeerError as exc:
                if self.service.queue.started_since(started):
                    # core answers 500 when the route answered a Failed run: the
                    # run happened and its transaction is in OpenHIM
                    log.info("scheduled run went through OpenHIM (trigger said: %s)", exc)
                    return
                log.warning(
                    "could not trigger channel %r: %s; running here", self.channel_name, exc
                )
            else:
                if channel_id is not None:
                    log.info("scheduled run triggered through channel %r", self.channel_name)
                    return
                log.warning("no OpenHIM channel named %r; running here", self.channel_name)
        self._run_locally(started, channel_id)

    def _run_locally(self, started: datetime, channel_id: str | None) -> None:
        try:
            effective = self.service.effective()
        except ConfigError as exc:
            envelope = self.service.refuse(500, f"configuration problem: {exc}")
        else:
            # like a polling channel: the latest completed period of each data set's
            # type and the lookback before it, as of the trigger time
            request = RunRequest(as_of=started, trigger="schedule")
            envelope = self.service.run(request, effective, {"trigger": "mediator schedule"})
        log.info("scheduled run finished: %s", envelope["status"])
        if self.agent is None:
            return
        document = transaction_document(
            envelope,
            request={
                **self.route,
                "method": "GET",
                "querystring": "",
                # a rerun from the console replays this time, so it redoes the same periods
                "headers": {"X-OpenHIM-LastRunAt": iso(started)},
                "body": "",
                "timestamp": iso(started),
            },
            channel_id=channel_id,
        )
        try:
            self.agent.client.create_transaction(document)
        except PeerError as exc:
            log.error("could not record the scheduled run in OpenHIM: %s", exc)


def build(
    env: Mapping[str, str] | None = None, runner: Runner = execute
) -> tuple[Any, BackgroundScheduler, OpenhimAgent | None]:
    """App, scheduler (not started) and agent, wired as ``serve()`` runs them."""
    source = os.environ if env is None else env
    mediator = MediatorSettings.from_env(source)
    openhim = OpenhimSettings.from_env(source)
    registration = load_registration(env=source)
    defs = registration.get("configDefs", [])
    shipped = validate_config(registration.get("config", {}), defs)
    if shipped.problems or shipped.unknown:
        raise ConfigError(
            "mediator-config.json: config does not match configDefs: "
            f"{shipped.problems + shipped.unknown}"
        )
    push_auth = push_credentials(source, mediator.host)
    console = ConsoleConfig(defs)
    agent: OpenhimAgent | None = None
    if openhim.url:
        agent = OpenhimAgent(OpenhimClient(openhim), registration, console)
    else:
        log.warning("OPENHIM_URL is not set: not registering; answering HTTP requests only")
    app = create_app(
        registration=registration,
        console=console,
        env=env,
        runner=runner,
        agent=agent,
        push_auth=push_auth,
    )
    service: RunService = app.extensions["mediator"]

    scheduler = BackgroundScheduler(timezone="UTC")
    if agent is not None:
        scheduler.add_job(
            agent.heartbeat,
            "interval",
            seconds=openhim.heartbeat_seconds,
            id="openhim-heartbeat",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    _schedule(scheduler, source, service, agent, registration, mediator)
    return app, scheduler, agent


def _schedule(
    scheduler: BackgroundScheduler,
    source: Mapping[str, str],
    service: RunService,
    agent: OpenhimAgent | None,
    registration: Mapping[str, Any],
    mediator: MediatorSettings,
) -> None:
    """The internal schedule (``MEDIATOR_SCHEDULE``), when one is asked for."""
    cron = source.get(SCHEDULE_ENV, "").strip()
    if cron:
        tz = source.get("MEDIATOR_TIMEZONE", "").strip() or "UTC"
        try:
            trigger = CronTrigger.from_crontab(cron, timezone=tz)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{SCHEDULE_ENV}={cron!r} is not a 5-field cron: {exc}") from None
        channel = source.get(SCHEDULE_CHANNEL_ENV, "").strip() or polling_channel_name(registration)
        route = {"host": mediator.host, "port": str(mediator.port), "path": PUSH_PATH}
        scheduler.add_job(
            ScheduledRun(service, agent, channel, route),
            trigger,
            id="internal-schedule",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
        log.info("internal schedule %r (%s) via channel %r", cron, tz, channel)


def serve(env: Mapping[str, str] | None = None) -> int:
    """Run until SIGTERM/SIGINT. Returns a process exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=os.environ.get("LOG_LEVEL", "INFO").upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    source = os.environ if env is None else env
    warn_weak_secrets(source)
    try:
        mediator = MediatorSettings.from_env(source)
        openhim = OpenhimSettings.from_env(source)
        app, scheduler, agent = build(env)
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        return 2
    server = make_server(mediator.host, mediator.port, app, threaded=True)
    scheduler.start()
    if agent is not None and openhim.register_on_start:
        agent.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("stopping (signal %d)", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    log.info("mediator listening on http://%s:%d", mediator.host, mediator.port)
    try:
        server.serve_forever()
    finally:
        if agent is not None:
            agent.stop()
        scheduler.shutdown(wait=False)
        server.server_close()
    return 0
