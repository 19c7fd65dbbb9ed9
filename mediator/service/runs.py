"""The runs the mediator serves, without Flask: the queue that lets one run at a
time, sync or async dispatch, the envelope OpenHIM gets, the history the status
page shows, coverage and health. ``app.py`` parses HTTP and renders; the internal
schedule (``service.py``) calls the same ``RunService``.

Runs are serialised by one lock per process: a second request waits for the
first, and more than ``MAX_WAITING`` waiting are answered 429 "busy". The
runtime configuration is built per run (file defaults < console < environment),
so a config saved in the OpenHIM console applies to the next run.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from mediator.cht.client import ChtError
from mediator.model.report import RunReport
from mediator.openhim.agent import OpenhimAgent
from mediator.openhim.console_config import ConsoleConfig, Effective, resolve
from mediator.openhim.envelope import (
    error_envelope,
    processing_envelope,
    run_envelope,
    transaction_update,
)
from mediator.run.jobs import Job
from mediator.run.locks import RunBusyError
from mediator.run.pipeline import compute, new_run_id
from mediator.run.push import held
from mediator.run.request import RunInputError, RunRequest
from mediator.run.summary import unknown_org_unit
from mediator.settings.config import RuntimeConfig
from mediator.settings.secrets import Scrubber, secret_values
from mediator.settings.variables import ConfigError, check_timezone

from .history import RunHistory
from .queue import MAX_WAITING, QueueFull, RunQueue, default_background
from .records import asked, record_run
from .render import status_page

log = logging.getLogger(__name__)

Runner = Callable[[RunRequest, RuntimeConfig], RunReport]
Background = Callable[[Callable[[], None]], None]

# JS Date.toString(), how core's poller sends X-OpenHIM-LastRunAt:
# "Mon Jan 01 2024 02:00:00 GMT+0000 (Coordinated Universal Time)"
_JS_DATE = re.compile(
    r"^\w{3} (\w{3}) (\d{1,2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT([+-])(\d{2})(\d{2})"
)
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def parse_last_run_at(value: str | None) -> datetime | None:
    """Core's poller stamps its trigger time; a rerun replays the stored header,
    so the run without a period pushes the same month as the original."""
    if not value:
        return None
    match = _JS_DATE.match(value.strip())
    if match:
        mon, day, year, hh, mm, ss, sign, oh, om = match.groups()
        if mon not in _MONTHS:
            return None
        offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
        try:
            return datetime(
                int(year),
                _MONTHS.index(mon) + 1,
                int(day),
                int(hh),
                int(mm),
                int(ss),
                tzinfo=timezone(offset),
            )
        except ValueError:
            return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Trigger:
    """Where a push came from, as OpenHIM core's headers tell it."""

    transaction: str | None = None  # X-OpenHIM-TransactionID: it came through core
    last_run_at: str | None = None  # X-OpenHIM-LastRunAt: a polling channel's trigger time
    parent: str | None = None  # parentID: the transaction this one reruns


class Refused(Exception):
    """A request answered without a run: an HTTP status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def coverage_table(job: Job, threshold: float | None = None) -> dict[str, Any]:
    """One (data set, period)'s coverage as ``GET /coverage`` serves it; ``held``: below
    the coverage threshold (MEDIATOR_COVERAGE_THRESHOLD), so a push holds it back."""
    kept_back = held(job.coverage, threshold)
    return {
        "dataSet": job.data_set,
        "period": job.period.iso,
        "cht_interval": job.interval,
        "error": job.problem or job.read_error,
        "users_expected": job.users[0],
        "users_synced": job.users[1],
        "orgUnits": [
            {**c.model_dump(mode="json"), "percent": c.percent, "held": c.orgUnit in kept_back}
            for c in job.coverage
        ],
    }


class RunService:
    """What the endpoints and the schedule do, outside Flask."""

    def __init__(
        self,
        *,
        registration: Mapping[str, Any],
        console: ConsoleConfig,
        env: Mapping[str, str] | None,
        runner: Runner,
        agent: OpenhimAgent | None,
        clock: Callable[[], datetime],
        background: Background = default_background,
        push_auth: tuple[str, str] | None = None,
        max_waiting: int = MAX_WAITING,
        history: RunHistory | None = None,
    ) -> None:
        self.registration = registration
        self.urn = str(registration["urn"])
        self.defaults: Mapping[str, Any] = registration.get("config", {})
        self.console = console
        self.env = env
        self.runner = runner
        self.agent = agent
        self.clock = clock
        self.background = background
        self.push_auth = push_auth
        self.history = history if history is not None else RunHistory.from_env(self.environ)
        self.queue = RunQueue(max_waiting, clock)
        self._lock = threading.Lock()
        self.last_run: dict[str, Any] | None = None

    @property
    def environ(self) -> Mapping[str, str]:
        return self.env if self.env is not None else os.environ

    def effective(self) -> Effective:
        return resolve(self.environ, self.console.current(), self.defaults)

    def secrets(self, runtime: RuntimeConfig | None = None) -> list[str]:
        """Every secret in play (``secrets.secret_values``): environment, console, run."""
        extra = [self.push_auth[1]] if self.push_auth else []
        return secret_values(self.environ, self.console.current(), runtime, extra)

    def authorized(self, username: str | None, password: str | None) -> bool:
        """Basic auth against MEDIATOR_PUSH_USERNAME/PASSWORD, when they are set."""
        if self.push_auth is None:
            return True
        if username is None or password is None:
            return False
        user_ok = hmac.compare_digest(username.encode(), self.push_auth[0].encode())
        password_ok = hmac.compare_digest(password.encode(), self.push_auth[1].encode())
        return user_ok and password_ok

    def refuse(
        self, status: int, message: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The envelope of a request that never became a run."""
        return error_envelope(
            urn=self.urn,
            http_status=status,
            message=message,
            now=self.clock(),
            secrets=self.secrets(),
            extra_properties=extra,
        )

    def push(self, request: RunRequest, trigger: Trigger) -> dict[str, Any]:
        """``/push``: run now and answer the run's envelope, or (async mode, through
        core) answer Processing and update the transaction when the run ends."""
        arrived = self.clock()
        try:
            effective = self.effective()
        except ConfigError as exc:
            return self.refuse(500, f"configuration problem: {exc}")
        extra: dict[str, str] = {}
        if request.scheduled:
            # the latest completed period of each data set's type, and the lookback,
            # as of the trigger time (a rerun replays it, so it redoes the same periods)
            as_of = parse_last_run_at(trigger.last_run_at)
            if as_of is None or as_of > arrived + timedelta(minutes=5):
                as_of = arrived
            request = request.model_copy(update={"as_of": as_of})
            lookback = effective.runtime.lookback_periods
            extra["period source"] = (
                f"latest completed period in {effective.runtime.timezone} as of "
                f"{as_of.isoformat(timespec='minutes')}"
                + (f", and the {lookback} before it" if lookback else "")
            )
        if trigger.parent:
            extra["rerun of"] = trigger.parent
        transaction = trigger.transaction
        if effective.async_mode and transaction and self.agent is not None:
            # the run id the Processing answer names is the one its update will carry
            request = request.model_copy(update={"run_id": new_run_id()})
            self.background(lambda: self._run_and_report(request, effective, transaction, extra))
            return processing_envelope(
                urn=self.urn,
                run_id=request.run_id or "",
                properties={**asked(request), **extra},
                now=self.clock(),
            )
        if effective.async_mode and not transaction:
            log.info("async mode is on but the request did not come through core: answering now")
        return self.run(request, effective, extra, transaction)

    def run(
        self,
        request: RunRequest,
        effective: Effective,
        extra: Mapping[str, str] | None = None,
        transaction: str | None = None,
    ) -> dict[str, Any]:
        """One run in its turn of the queue; always returns an envelope."""
        secrets = self.secrets(effective.runtime)
        try:
            report = self.queue.run(lambda: self.runner(request, effective.runtime))
        except QueueFull as exc:
            log.warning("refused a run: %s", exc)
            message = f"busy: {exc}; nothing was started, try again when they have finished"
            return self.refuse(429, message, extra)
        except (RunInputError, RunBusyError) as exc:  # e.g. a data set CHT does not define
            status, message = (409 if isinstance(exc, RunBusyError) else 400), str(exc)
        except Exception as exc:
            log.exception("the run stopped on an unexpected error")
            status = 500
            message = f"the run stopped on an unexpected error: {type(exc).__name__}: {exc}"
        else:
            unknown = unknown_org_unit(request, report)
            if unknown is None:
                self._remember(request, report, report.status, transaction, None, effective)
                return run_envelope(
                    report,
                    urn=self.urn,
                    secrets=secrets,
                    cht_url=effective.runtime.cht.url,
                    extra_properties=extra,
                    now=self.clock(),
                )
            status, message = 400, unknown
        message = Scrubber(secrets).text(message)
        self._remember(request, None, "Failed", transaction, message, effective)
        return error_envelope(
            urn=self.urn,
            http_status=status,
            message=message,
            now=self.clock(),
            secrets=secrets,
            extra_properties=extra,
        )

    def _remember(
        self,
        request: RunRequest,
        report: RunReport | None,
        status: str,
        transaction: str | None,
        message: str | None,
        effective: Effective,
    ) -> None:
        finished = report.finished if report and report.finished else self.clock()
        record_run(
            self.history,
            effective.runtime,
            request,
            report,
            status=status,
            finished=finished,
            transaction=transaction,
            message=message,
            secrets=self.secrets(effective.runtime),
        )
        with self._lock:
            self.last_run = {
                "run_id": report.run_id if report else None,
                "status": status,
                "trigger": request.trigger,
                "periods": report.periods if report else [],
                "finished": finished.isoformat(),
                "transaction_id": transaction,
            }

    def _run_and_report(
        self, request: RunRequest, effective: Effective, transaction: str, extra: Mapping[str, str]
    ) -> None:
        try:
            envelope = self.run(request, effective, extra, transaction)
            assert self.agent is not None  # noqa: S101 - checked before scheduling
            self.agent.report_transaction(transaction, transaction_update(envelope))
        except Exception:
            log.exception("async run for transaction %s could not be reported", transaction)

    def coverage(self, request: RunRequest) -> list[dict[str, Any]]:
        """``GET /coverage``: who is missing from the numbers, per org unit, read from
        CHT only (no DHIS2). Raises Refused."""
        if request.dry_run is not None:
            raise Refused(400, "dryRun has no meaning for /coverage")
        try:
            runtime = self.effective().runtime.model_copy(update={"lookback_periods": 0})
        except ConfigError as exc:
            message = Scrubber(self.secrets()).text(f"configuration problem: {exc}")
            raise Refused(500, message) from None
        try:
            computed = compute(request.model_copy(update={"as_of": self.clock()}), runtime)
        except RunInputError as exc:
            raise Refused(400, str(exc)) from None
        except ChtError as exc:
            raise Refused(502, Scrubber(self.secrets(runtime)).text(str(exc))) from None
        return [coverage_table(job, runtime.coverage_threshold) for job in computed.jobs]

    def status_page(self) -> str:
        """The HRIO's page; a configuration that stops the next run is said at its top."""
        try:
            self.effective()
            problem = None
        except ConfigError as exc:
            problem = Scrubber(self.secrets()).text(str(exc))
        return status_page(self.history, self.clock(), self._timezone(), problem)

    def _timezone(self) -> str:
        """MEDIATOR_TIMEZONE (console: timezone) for the page's times; UTC if it is bad
        (the page still shows, and /health says what is wrong)."""
        try:
            return self.effective().runtime.timezone
        except ConfigError:
            try:
                return check_timezone(
                    "MEDIATOR_TIMEZONE", self.environ.get("MEDIATOR_TIMEZONE", "")
                )
            except ConfigError:
                return "UTC"

    def health(self) -> dict[str, Any]:
        """``ok`` only when the next run could start: a configuration that cannot work
        makes it ``misconfigured``, with the one line that says why."""
        config: dict[str, Any]
        try:
            effective = self.effective()
            config = {
                "ok": True,
                "pinned_by_environment": effective.pinned_by_environment,
                "async_mode": effective.async_mode,
            }
        except ConfigError as exc:
            config = {"ok": False, "error": Scrubber(self.secrets()).text(str(exc))}
        with self._lock:
            last_run = dict(self.last_run) if self.last_run else None
        running, waiting = self.queue.counts()
        return {
            "status": "ok" if config["ok"] else "misconfigured",
            "urn": self.urn,
            "version": self.registration.get("version"),
            "running": running,
            "waiting": waiting,
            "last_run": last_run,
            "openhim": self.agent.status()
            if self.agent
            else {"configured": False, "registered": False},
            "config": config,
        }
