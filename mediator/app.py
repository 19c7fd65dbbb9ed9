"""The Flask app: the push endpoint OpenHIM routes to, ``/health``, and the
status page (``GET /``) that HRIOs read without logging into OpenHIM.

Every answer of the push endpoint is an ``application/json+openhim`` envelope,
bad input included (400 inside the envelope, never a bare 500). The runtime
configuration is built per request (file defaults < console < environment),
so a config saved in the OpenHIM console applies to the next run. Runs are
serialised by one lock per process: a second request waits for the first.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import Flask, Response, render_template, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from .cht import ChtError
from .config import ConfigError, RuntimeConfig, parse_flag
from .console_config import ConsoleConfig, Effective, load_registration, resolve, secrets_of
from .envelope import (
    CONTENT_TYPE,
    INNER_STATUS,
    Scrubber,
    error_envelope,
    processing_envelope,
    run_envelope,
    transaction_update,
)
from .history import RunHistory, page_context, summarize
from .locks import RunBusyError
from .models import is_uid, utcnow
from .openhim import OpenhimAgent
from .periods import Month, Period, PeriodError
from .pipeline import compute, execute
from .report import RunReport
from .run_request import RunInputError, RunRequest

log = logging.getLogger(__name__)

Runner = Callable[[RunRequest, RuntimeConfig], RunReport]
Background = Callable[[Callable[[], None]], None]

PUSH_PATH = "/push"
TRANSACTION_HEADER = "X-OpenHIM-TransactionID"
LAST_RUN_HEADER = "X-OpenHIM-LastRunAt"
PARAMS = ("period", "from", "to", "dataSet", "orgUnit", "dryRun")
MAX_BODY_BYTES = 64 * 1024  # a push request is a few ids; more is a mistake or an attack
MAX_VALUE_CHARS = 200  # one parameter value (a period, a uid): longer is never valid
MAX_PERIODS = 36  # periods in one request: three years of months
MAX_DATA_SETS = 50
MAX_WAITING = 20  # requests queued behind the running one; more are answered 429 "busy"
AUTH_REALM = 'Basic realm="cht-dhis2-mediator", charset="UTF-8"'
SECRET_PARAM = re.compile(r".*(Password|Token)$")
# JS Date.toString(), how core's poller sends X-OpenHIM-LastRunAt:
# "Mon Jan 01 2024 02:00:00 GMT+0000 (Coordinated Universal Time)"
_JS_DATE = re.compile(
    r"^\w{3} (\w{3}) (\d{1,2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT([+-])(\d{2})(\d{2})"
)
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


class BadRequest(ValueError):
    """Input the caller must fix; answered 400 inside the envelope."""


@dataclass
class PushInput:
    periods: list[Period]
    data_sets: list[str]
    org_unit: str | None
    dry_run: bool | None
    span: tuple[Month, Month] | None = None


def _dry_run(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return parse_flag(value, False)
        except ConfigError:
            pass
    raise BadRequest(f"dryRun must be true or false, got {value!r}")


def _strings(name: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise BadRequest(f"{name} must be a string or a list of strings")
    parts = [part.strip() for item in items for part in item.split(",") if part.strip()]
    long = next((part for part in parts if len(part) > MAX_VALUE_CHARS), None)
    if long is not None:
        raise BadRequest(f"a {name} value is {len(long)} characters long: that is not a {name}")
    return parts


def parse_push(args: MultiDict[str, str], body: Mapping[str, Any] | None) -> PushInput:
    """Query string and JSON body, body winning per field. Unknown fields are
    refused so that a typo (``dataSets``) does not silently push everything."""
    unknown = sorted(set(args) - set(PARAMS)) + sorted(set(body or {}) - set(PARAMS))
    if unknown:
        raise BadRequest(f"unknown parameter(s) {', '.join(unknown)}: use {', '.join(PARAMS)}")
    raw: dict[str, Any] = {name: args.getlist(name) for name in PARAMS if name in args}
    for name in ("orgUnit", "dryRun", "from", "to"):
        if len(raw.get(name, [])) > 1:
            raise BadRequest(f"give {name} once")
        if name in raw:
            raw[name] = raw[name][0]
    raw.update(body or {})

    periods = []
    for text in _strings("period", raw.get("period", [])):
        try:
            periods.append(Period.parse(text))
        except PeriodError as exc:
            raise BadRequest(str(exc)) from None
    if len(periods) > MAX_PERIODS:
        raise BadRequest(f"at most {MAX_PERIODS} periods per request, got {len(periods)}")
    span = _span(raw.get("from"), raw.get("to"))
    if span is not None and periods:
        raise BadRequest("give either period or from/to, not both")
    data_sets = _strings("dataSet", raw.get("dataSet", []))
    if len(set(data_sets)) > MAX_DATA_SETS:
        raise BadRequest(f"at most {MAX_DATA_SETS} data sets per request, got {len(data_sets)}")
    bad = [ds for ds in data_sets if not is_uid(ds)]
    if bad:
        raise BadRequest(
            f"dataSet {bad[0]!r} is not a DHIS2 id (11 letters/digits, starting with a letter)"
        )
    org_unit = raw.get("orgUnit")
    if org_unit is not None:
        if not isinstance(org_unit, str) or not is_uid(org_unit.strip()):
            shown = org_unit if len(repr(org_unit)) <= MAX_VALUE_CHARS else "(too long)"
            raise BadRequest(
                f"orgUnit {shown!r} is not a DHIS2 id (11 letters/digits, starting with a letter)"
            )
        org_unit = org_unit.strip()
    dry_run = _dry_run(raw["dryRun"]) if raw.get("dryRun") is not None else None
    return PushInput(sorted(set(periods)), list(dict.fromkeys(data_sets)), org_unit, dry_run, span)


def _span(start: Any, end: Any) -> tuple[Month, Month] | None:
    """A backfill range of months, ``from`` and ``to`` both given (YYYY-MM or YYYYMM)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise BadRequest("give from and to together (months, YYYY-MM)")
    try:
        first, last = Month.parse(_strings("from", start)[0]), Month.parse(_strings("to", end)[0])
    except (PeriodError, IndexError) as exc:
        raise BadRequest(f"from/to must be months (YYYY-MM): {exc}") from None
    if last < first:
        raise BadRequest(f"from {first.tag} is after to {last.tag}")
    if (last.year * 12 + last.month) - (first.year * 12 + first.month) >= MAX_PERIODS:
        raise BadRequest(f"a backfill covers at most {MAX_PERIODS} months")
    return first, last


def _plain_error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status=status, content_type="application/json")


def coverage_csv(tables: list[dict[str, Any]]) -> str:
    """One line per (data set, period, org unit), for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "dataSet",
            "period",
            "orgUnit",
            "name",
            "expected",
            "synced",
            "percent",
            "missing",
            "newest_doc",
            "newest_doc_age_days",
        ]
    )
    for table in tables:
        for row in table["orgUnits"]:
            writer.writerow(
                [
                    table["dataSet"],
                    table["period"],
                    row["orgUnit"],
                    row["name"],
                    row["expected"],
                    row["synced"],
                    row["percent"],
                    " ".join(row["missing"]),
                    row["newest_doc"] or "",
                    row["newest_doc_age_days"] if row["newest_doc_age_days"] is not None else "",
                ]
            )
    return out.getvalue()


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


@dataclass
class AppState:
    """What /health shows and what the schedule checks; guarded by ``lock``."""

    run_lock: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    waiting: int = 0
    last_run: dict[str, Any] | None = None
    last_request_at: datetime | None = None


def _default_background(work: Callable[[], None]) -> None:
    # not a daemon: a shutdown waits for the run and its transaction update
    threading.Thread(target=work, name="async-run", daemon=False).start()


class PushService:
    """The push endpoint's logic, outside Flask so the schedule can call it too."""

    def __init__(
        self,
        *,
        registration: Mapping[str, Any],
        console: ConsoleConfig,
        env: Mapping[str, str] | None,
        runner: Runner,
        agent: OpenhimAgent | None,
        clock: Callable[[], datetime],
        background: Background,
        push_auth: tuple[str, str] | None = None,
        max_waiting: int = MAX_WAITING,
        history: RunHistory | None = None,
    ) -> None:
        self.push_auth = push_auth
        self.history = history if history is not None else RunHistory()
        self.max_waiting = max_waiting
        self.registration = registration
        self.urn = str(registration["urn"])
        self.defaults: Mapping[str, Any] = registration.get("config", {})
        self.console = console
        self.env = env
        self.runner = runner
        self.agent = agent
        self.clock = clock
        self.background = background
        self.state = AppState()

    def effective(self) -> Effective:
        return resolve(
            self.env if self.env is not None else os.environ, self.console.current(), self.defaults
        )

    def _reply(self, envelope: Mapping[str, Any]) -> Response:
        status = int(envelope["response"]["status"])
        return Response(
            json.dumps(envelope, ensure_ascii=False), status=status, content_type=CONTENT_TYPE
        )

    def _fail(self, status: int, message: str, extra: Mapping[str, str] | None = None) -> Response:
        env = self.env if self.env is not None else os.environ
        secrets = [v for k, v in env.items() if re.search("PASSWORD|TOKEN", k) and v]
        secrets += [
            v
            for k, v in self.console.current().items()
            if isinstance(v, str) and SECRET_PARAM.match(k)
        ]
        if self.push_auth is not None:
            secrets.append(self.push_auth[1])
        return self._reply(
            error_envelope(
                urn=self.urn,
                http_status=status,
                message=message,
                now=self.clock(),
                secrets=secrets,
                extra_properties=extra,
            )
        )

    def authorized(self) -> bool:
        """Basic auth against MEDIATOR_PUSH_USERNAME/PASSWORD, when they are set."""
        if self.push_auth is None:
            return True
        given = request.authorization
        if given is None or given.type != "basic":
            return False
        user_ok = hmac.compare_digest(
            (given.username or "").encode("utf-8"), self.push_auth[0].encode("utf-8")
        )
        password_ok = hmac.compare_digest(
            (given.password or "").encode("utf-8"), self.push_auth[1].encode("utf-8")
        )
        return user_ok and password_ok

    def handle(self) -> Response:
        if not self.authorized():
            answer = self._fail(
                401,
                "the push endpoint needs credentials: HTTP Basic auth with "
                "MEDIATOR_PUSH_USERNAME and MEDIATOR_PUSH_PASSWORD (set them on the OpenHIM "
                "channel's route)",
            )
            answer.headers["WWW-Authenticate"] = AUTH_REALM
            return answer
        arrived = self.clock()
        with self.state.lock:
            self.state.last_request_at = arrived
        try:
            body = self._json_body()
            push = parse_push(request.args, body)
        except BadRequest as exc:
            return self._fail(400, str(exc))
        try:
            effective = self.effective()
        except ConfigError as exc:
            return self._fail(500, f"configuration problem: {exc}")
        extra: dict[str, str] = {}
        as_of: datetime | None = None
        if not push.periods and push.span is None:
            # the latest completed period of each data set's type, and the lookback,
            # as of the trigger time (a rerun replays it, so it redoes the same periods)
            as_of = parse_last_run_at(request.headers.get(LAST_RUN_HEADER))
            if as_of is None or as_of > arrived + timedelta(minutes=5):
                as_of = arrived
            lookback = effective.runtime.lookback_periods
            extra["period source"] = (
                f"latest completed period in {effective.runtime.timezone} as of "
                f"{as_of.isoformat(timespec='minutes')}"
                + (f", and the {lookback} before it" if lookback else "")
            )
        parent = request.headers.get("parentID")
        if parent:
            extra["rerun of"] = parent
        transaction = request.headers.get(TRANSACTION_HEADER)
        run_request = RunRequest(
            periods=push.periods,
            span=push.span,
            as_of=as_of,
            data_sets=push.data_sets,
            org_unit=push.org_unit,
            dry_run=push.dry_run,
            trigger="openhim" if transaction else "http",
        )
        if effective.async_mode and transaction and self.agent is not None:
            self.background(
                lambda: self._run_and_report(run_request, effective, transaction, extra)
            )
            props = {
                "period": ", ".join(p.iso for p in push.periods)
                or (f"{push.span[0].tag}..{push.span[1].tag}" if push.span else "latest"),
                "data sets": ", ".join(push.data_sets) or "configured",
                **extra,
            }
            return self._reply(
                processing_envelope(
                    urn=self.urn, run_id=transaction, properties=props, now=self.clock()
                )
            )
        if effective.async_mode and not transaction:
            log.info(
                "async mode is on but the request has no %s: answering synchronously",
                TRANSACTION_HEADER,
            )
        return self._reply(self.run(run_request, effective, extra, transaction))

    def _json_body(self) -> dict[str, Any] | None:
        if request.method != "POST":
            return None
        data = request.get_data(cache=True)
        if not data.strip():
            return None
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(
                f"the request body is not valid JSON ({exc});"
                " send a JSON object or use the query string"
            ) from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    def run(
        self,
        run_request: RunRequest,
        effective: Effective,
        extra: Mapping[str, str] | None = None,
        transaction: str | None = None,
    ) -> dict[str, Any]:
        """One run under the process-wide run lock; always returns an envelope."""
        secrets = secrets_of(effective.runtime)
        if self.push_auth is not None:
            secrets.append(self.push_auth[1])
        with self.state.lock:
            busy = self.state.running > 0 and self.state.waiting >= self.max_waiting
            if not busy:
                self.state.waiting += 1
        if busy:
            log.warning("refused a run: one is running and %d are waiting", self.max_waiting)
            return error_envelope(
                urn=self.urn,
                http_status=429,
                message=f"busy: a run is in progress and {self.max_waiting} more are waiting; "
                "nothing was started, try again when they have finished",
                now=self.clock(),
                secrets=secrets,
                extra_properties=extra,
            )
        with self.state.run_lock:
            with self.state.lock:
                self.state.waiting -= 1
                self.state.running += 1
            try:
                report = self.runner(run_request, effective.runtime)
            except (RunInputError, RunBusyError) as exc:  # e.g. a data set CHT does not define
                self._remember(None, "Failed", transaction, run_request.trigger, str(exc), secrets)
                return error_envelope(
                    urn=self.urn,
                    http_status=409 if isinstance(exc, RunBusyError) else 400,
                    message=str(exc),
                    now=self.clock(),
                    secrets=secrets,
                    extra_properties=extra,
                )
            except Exception as exc:
                log.exception("the run stopped on an unexpected error")
                message = Scrubber(secrets).text(
                    f"the run stopped on an unexpected error: {type(exc).__name__}: {exc}"
                )
                self._remember(None, "Failed", transaction, run_request.trigger, message, secrets)
                return error_envelope(
                    urn=self.urn,
                    http_status=500,
                    message=message,
                    now=self.clock(),
                    secrets=secrets,
                    extra_properties=extra,
                )
            finally:
                with self.state.lock:
                    self.state.running -= 1
        self._remember(report, report.status, transaction, run_request.trigger, None, secrets)
        return run_envelope(
            report,
            urn=self.urn,
            secrets=secrets,
            cht_url=effective.runtime.cht.url,
            extra_properties=extra,
            now=self.clock(),
        )

    def _remember(
        self,
        report: RunReport | None,
        status: str,
        transaction: str | None,
        trigger: str,
        message: str | None = None,
        secrets: list[str] | None = None,
    ) -> None:
        finished = report.finished if report and report.finished else self.clock()
        try:  # the status page's history; never a reason to fail the run
            summary, coverage = summarize(
                report,
                status=status,
                trigger=trigger,
                finished=finished,
                transaction_id=transaction,
                message=message,
                secrets=secrets or (),
            )
            self.history.record(summary, coverage)
        except Exception:
            log.exception("could not record the run for the status page")
        with self.state.lock:
            self.state.last_run = {
                "run_id": report.run_id if report else None,
                "status": status,
                "trigger": trigger,
                "periods": report.periods if report else [],
                "finished": finished.isoformat(),
                "transaction_id": transaction,
            }

    def _run_and_report(
        self,
        run_request: RunRequest,
        effective: Effective,
        transaction: str,
        extra: Mapping[str, str],
    ) -> None:
        try:
            envelope = self.run(run_request, effective, extra, transaction)
            assert self.agent is not None  # noqa: S101 - checked before scheduling
            self.agent.report_transaction(transaction, transaction_update(envelope))
        except Exception:
            log.exception("async run for transaction %s could not be reported", transaction)

    def status_page(self) -> Response:
        """``GET /``: the HRIO's page (last runs, sync coverage of the newest period).

        Protected like /push: it names CHT users.
        """
        if not self.authorized():
            answer = Response(
                "credentials needed, as for /push\n",
                status=401,
                content_type="text/plain; charset=utf-8",
            )
            answer.headers["WWW-Authenticate"] = AUTH_REALM
            return answer
        html = render_template("status.html", **page_context(self.history, self.clock()))
        answer = Response(html, status=200, content_type="text/html; charset=utf-8")
        # no script at all, and the page (CHW usernames) is not kept by caches
        answer.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        answer.headers["Cache-Control"] = "no-store"
        answer.headers["X-Content-Type-Options"] = "nosniff"
        answer.headers["Referrer-Policy"] = "no-referrer"
        return answer

    def coverage(self) -> Response:
        """``GET /coverage?period=…``: who is missing from the numbers, per org unit.

        Reads CHT only (no DHIS2); JSON, or CSV with ``format=csv``. Protected like
        /push: it names CHT users.
        """
        if not self.authorized():
            answer = _plain_error(401, "credentials needed, as for /push")
            answer.headers["WWW-Authenticate"] = AUTH_REALM
            return answer
        args = {k: v for k, v in request.args.lists() if k != "format"}
        wanted = request.args.get("format", "json").lower()
        if wanted not in ("json", "csv"):
            return _plain_error(400, "format must be json or csv")
        try:
            push = parse_push(MultiDict([(k, v) for k, vs in args.items() for v in vs]), None)
            if push.dry_run is not None:
                raise BadRequest("dryRun has no meaning for /coverage")
            effective = self.effective()
        except BadRequest as exc:
            return _plain_error(400, str(exc))
        except ConfigError as exc:
            return _plain_error(500, f"configuration problem: {exc}")
        runtime = effective.runtime.model_copy(update={"lookback_periods": 0})
        run_request = RunRequest(
            periods=push.periods,
            span=push.span,
            as_of=self.clock(),
            data_sets=push.data_sets,
            org_unit=push.org_unit,
        )
        try:
            computed = compute(run_request, runtime)
        except RunInputError as exc:
            return _plain_error(400, str(exc))
        except ChtError as exc:
            return _plain_error(502, Scrubber(secrets_of(runtime)).text(str(exc)))
        tables = [
            {
                "dataSet": job.data_set,
                "period": job.period.iso,
                "cht_interval": job.interval,
                "error": job.problem or job.read_error,
                "users_expected": job.users[0],
                "users_synced": job.users[1],
                "orgUnits": [
                    {**c.model_dump(mode="json"), "percent": c.percent} for c in job.coverage
                ],
            }
            for job in computed.jobs
        ]
        if wanted == "csv":
            return Response(coverage_csv(tables), content_type="text/csv; charset=utf-8")
        return Response(json.dumps({"coverage": tables}), content_type="application/json")

    def health(self) -> dict[str, Any]:
        config: dict[str, Any]
        try:
            effective = self.effective()
            config = {
                "ok": True,
                "pinned_by_environment": effective.pinned_by_environment,
                "async_mode": effective.async_mode,
            }
        except ConfigError as exc:
            config = {"ok": False, "error": Scrubber().text(str(exc))}
        with self.state.lock:
            last_run = dict(self.state.last_run) if self.state.last_run else None
            running, waiting = self.state.running, self.state.waiting
        return {
            "status": "ok",
            "urn": self.urn,
            "version": self.registration.get("version"),
            "running": running > 0,
            "waiting": waiting,
            "last_run": last_run,
            "openhim": self.agent.status()
            if self.agent
            else {"configured": False, "registered": False},
            "config": config,
        }


def create_app(
    *,
    registration: Mapping[str, Any] | None = None,
    console: ConsoleConfig | None = None,
    env: Mapping[str, str] | None = None,
    runner: Runner = execute,
    agent: OpenhimAgent | None = None,
    clock: Callable[[], datetime] = utcnow,
    background: Background = _default_background,
    push_auth: tuple[str, str] | None = None,
    max_waiting: int = MAX_WAITING,
    history: RunHistory | None = None,
) -> Flask:
    """Build the mediator's Flask app.

    ``env`` None reads ``os.environ`` per request; ``console`` is shared with the
    OpenHIM agent that fills it from heartbeats; ``runner`` and ``clock`` are
    injectable so tests need neither CHT, DHIS2 nor a frozen system clock.
    """
    registration = registration if registration is not None else load_registration(env=env)
    console = console or ConsoleConfig(registration.get("configDefs", []))
    service = PushService(
        registration=registration,
        console=console,
        env=env,
        runner=runner,
        agent=agent,
        clock=clock,
        background=background,
        push_auth=push_auth,
        max_waiting=max_waiting,
        history=history
        if history is not None
        else RunHistory.from_env(env if env is not None else os.environ),
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["mediator"] = service

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        """Wrong method, unknown path, oversized body: a clear answer, never HTML."""
        status = exc.code or 400
        message = {
            405: f"method {request.method} is not allowed here: use "
            + ("GET or POST" if request.path == PUSH_PATH else "GET"),
            413: f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB",
            404: f"no such endpoint {request.path}: use {PUSH_PATH} or /health",
        }.get(status, exc.description or exc.name)
        if request.path == PUSH_PATH:
            answer = service._fail(status, message)
        else:
            answer = Response(
                json.dumps({"error": message}), status=status, content_type="application/json"
            )
        if status == 405:
            answer.headers["Allow"] = "GET, POST" if request.path == PUSH_PATH else "GET"
        return answer

    @app.route(PUSH_PATH, methods=["GET", "POST"])
    def push() -> Response:
        try:
            return service.handle()
        except HTTPException:
            raise  # e.g. a body over MAX_BODY_BYTES: answered by http_error below
        except Exception:  # the envelope, never an HTML 500 with a stack trace
            log.exception("push endpoint failed")
            return service._fail(500, "internal error in the mediator; see its log")

    @app.route("/coverage", methods=["GET"])
    def coverage() -> Response:
        try:
            return service.coverage()
        except HTTPException:
            raise
        except Exception:
            log.exception("coverage endpoint failed")
            return _plain_error(500, "internal error in the mediator; see its log")

    @app.route("/", methods=["GET"])
    @app.route("/status", methods=["GET"])
    def status() -> Response:
        try:
            return service.status_page()
        except HTTPException:
            raise
        except Exception:
            log.exception("status page failed")
            return _plain_error(500, "internal error in the mediator; see its log")

    @app.route("/health", methods=["GET"])
    def health() -> Response:
        return Response(json.dumps(service.health()), status=200, content_type="application/json")

    return app


__all__ = ["INNER_STATUS", "BadRequest", "PushService", "Runner", "create_app", "parse_push"]
