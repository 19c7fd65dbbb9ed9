"""python -m mediator preview | push | serve | demo

Exit status: 0 all good; 1 DHIS2 rejected something or a data set could not be
pushed (the summary says what to rerun); 2 bad input or configuration (a bad period,
an unknown data set or org unit, a variable with a bad value, CHT unreachable or
refusing the credentials).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import requests

from mediator import __version__
from mediator.cht.client import ChtError
from mediator.http.client import without_userinfo
from mediator.http.transport import SessionTransport, Transport
from mediator.model.periods import PeriodError
from mediator.model.report import RunReport
from mediator.run import preview as previews
from mediator.run import summary
from mediator.run.locks import RunBusyError
from mediator.run.pipeline import execute
from mediator.run.request import (
    CLI_NAMES,
    MAX_BACKFILL_MONTHS,
    MAX_PERIODS,
    RunInputError,
    RunRequest,
)
from mediator.service.records import record_cli_run
from mediator.settings.config import RuntimeConfig
from mediator.settings.secrets import warn_weak_secrets
from mediator.settings.variables import ENV_VARS, ConfigError

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2
PERIOD_FORMATS = "YYYY-MM or YYYYMM (monthly), YYYYQn, YYYYSn, YYYY, YYYYApril/July/Oct/Nov"
EXIT_STATUS = (
    "exit status: 0 all good; 1 DHIS2 rejected rows or a data set could not be pushed "
    "(the summary's last line says how to resume); 2 bad input or configuration"
)


def _env_help(command: str) -> str:
    """The variables ``command`` reads, with an example of each (``config.ENV_VARS``)."""
    chosen = [v for v in ENV_VARS if command in v.commands]
    width = max(len(f"{v.name}={v.example}") for v in chosen)
    lines = [f"  {f'{v.name}={v.example}':<{width}}  {v.meaning}" for v in chosen]
    return f"environment ({command} reads these; examples of good values):\n" + "\n".join(lines)


EXITS = {
    "preview": "exit status: 0 printed; 2 bad input or configuration, or CHT unreadable",
    "push": EXIT_STATUS,
    "serve": "exit status: 0 stopped by SIGTERM or Ctrl-C; 2 configuration that cannot work",
}


def _sub(sub: Any, name: str, summary_line: str, description: str) -> argparse.ArgumentParser:
    epilog = None
    if name in EXITS:
        epilog = f"{textwrap.fill(EXITS[name], 88)}\n\n{_env_help(name)}"
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary_line,
        description=textwrap.fill(description, 88),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _scope(p: argparse.ArgumentParser) -> None:
    """What a run covers: periods or a backfill, data sets, one org unit."""
    p.add_argument(
        "--period",
        action="append",
        metavar="PERIOD",
        help=f"a DHIS2 period, repeatable (at most {MAX_PERIODS}): {PERIOD_FORMATS}. "
        "Default: the latest completed period of each data set's type, and the "
        "MEDIATOR_LOOKBACK_PERIODS before it",
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="YYYY-MM",
        help=f"backfill from this month (with --to; at most {MAX_BACKFILL_MONTHS} months): "
        "every period of each data set's type that holds a month of the range",
    )
    p.add_argument("--to", dest="end", metavar="YYYY-MM", help="backfill up to this month")
    p.add_argument(
        "--data-set",
        action="append",
        metavar="UID",
        help="a data set of CHT's dhis_data_sets (repeatable; default: all, or MEDIATOR_DATA_SETS)",
    )
    p.add_argument("--org-unit", metavar="UID", help="only this DHIS2 org unit")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mediator",
        description="Moves CHT target aggregates into DHIS2 data value sets; an OpenHIM "
        "mediator. Each command's --help lists the environment variables it reads.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    preview = _sub(
        sub,
        "preview",
        "print the dataValueSets CHT's export would give (reads CHT only)",
        "Print, as JSON, one dataValueSet per data set and period, in the shape CHT's own "
        "export gives. Reads CHT only: nothing is sent to DHIS2.",
    )
    _scope(preview)
    preview.add_argument("--human-readable", action="store_true", help="names instead of ids")
    push = _sub(
        sub,
        "push",
        "compute and push to DHIS2; print a summary (a terminal) or the JSON report",
        "Compute the values from CHT and make DHIS2 hold exactly them (only what differs "
        "is sent). On a terminal it prints a short summary; with --json, or when the "
        "output is a file or a pipe, the run report as JSON (status, totals, results, "
        "diagnoses, resume). Progress goes to stderr.",
    )
    _scope(push)
    push.add_argument("--dry-run", action="store_true", help="DHIS2 validates, stores nothing")
    shown = push.add_mutually_exclusive_group()
    shown.add_argument(
        "--json", action="store_true", help="print the JSON report (default when not a terminal)"
    )
    shown.add_argument(
        "--summary", action="store_true", help="print the short summary (default on a terminal)"
    )
    _sub(
        sub,
        "serve",
        "run the OpenHIM mediator (HTTP endpoints, registration, heartbeat)",
        "Serve /push, /coverage, /health and the status page (GET /); register with "
        "OpenHIM core and heartbeat every 10 s. Stops on SIGTERM or Ctrl-C.",
    )
    demo = _sub(
        sub,
        "demo",
        "start the local stack and run the monthly channel once",
        "Start the local stack (CHT's API on pouchdb-server, the DHIS2 stand-in, the real "
        "OpenHIM core and console, the mediator) and fire the monthly channel through "
        "core. Needs a source checkout.",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the stack running and print the settings (an export block) to try "
        "the operator guide against it; Ctrl-C or SIGTERM stops it",
    )
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _request(args: argparse.Namespace, *, dhis2_ids: bool = True) -> RunRequest:
    """The same checks and limits as the push endpoint (``RunRequest.from_fields``),
    told with the command line's option names."""
    given = {
        "period": args.period,
        "from": args.start,
        "to": args.end,
        "dataSet": args.data_set,
        "orgUnit": args.org_unit,
        "dryRun": getattr(args, "dry_run", False) or None,
    }
    fields = {name: value for name, value in given.items() if value is not None}
    return RunRequest.from_fields(fields, names=CLI_NAMES, trigger="cli", dhis2_ids=dhis2_ids)


def preview(args: argparse.Namespace, request: RunRequest) -> int:
    try:
        config = RuntimeConfig.from_env(need_dhis2=False)
        if request.scheduled:
            config.lookback_periods = 0  # a preview shows the latest completed month only
        shown = previews.write(request, config, sys.stdout, human_readable=args.human_readable)
    except (ConfigError, RunInputError, ChtError, PeriodError, previews.PreviewFailed) as exc:
        return _fail(str(exc))
    for name, warning in shown.warnings.items():
        print(f"warning: CHT instance {name}: {warning}", file=sys.stderr)
    for note in shown.notes:
        _diagnose(f"{note.data_set} {note.period}", note.docs_read, note.skipped)
    return EXIT_OK


def _diagnose(what: str, docs: int, skipped: dict[str, int]) -> None:
    if not skipped:
        return
    detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
    print(f"{what}: of {docs} target docs, not counted: {detail}", file=sys.stderr)


# -- push ------------------------------------------------------------------------------------


class Progress:
    """DHIS2's transport for a run on the command line: it sends as ``SessionTransport``
    does and tells stderr, one line each, when the run reaches the next (data set, period)
    (its first read of what DHIS2 holds, ``GET /api/dataValueSets?dataSet=&period=``),
    what it sends, and when DHIS2 does not answer and the request is retried, so a run
    that waits on DHIS2 is never silent."""

    def __init__(self, inner: Transport | None = None, out: IO[str] | None = None) -> None:
        self.inner = inner or SessionTransport()
        self.out = out or sys.stderr
        self.started = time.monotonic()
        self.pair: tuple[str, str] | None = None
        self.pairs = 0
        self.failures = 0  # failed attempts in a row
        self.posted: requests.PreparedRequest | None = None

    def say(self, line: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):d}:{int(elapsed % 60):02d}] {line}", file=self.out, flush=True)

    def send(
        self,
        request: requests.PreparedRequest,
        *,
        timeout: float | tuple[float, float],
        verify: bool | str,
    ) -> requests.Response:
        self._announce(request)
        try:
            response = self.inner.send(request, timeout=timeout, verify=verify)
        except requests.RequestException as exc:
            self._failed(request, f"no answer ({type(exc).__name__})")
            raise
        if response.status_code in (429, 500, 502, 503, 504):
            self._failed(request, f"DHIS2 answered HTTP {response.status_code}")
        elif self.failures:
            self.say(f"DHIS2 answers again, after {self.failures} failed attempt(s)")
            self.failures = 0
        return response

    def _failed(self, request: requests.PreparedRequest, what: str) -> None:
        """Every failed attempt, counted: the run retries within DHIS2_MAX_ATTEMPTS and
        DHIS2_MAX_RETRY_SECONDS, then stops and says how to resume."""
        self.failures += 1
        where = without_userinfo(request.url or "").split("?")[0]
        first = " (retried within DHIS2_MAX_ATTEMPTS, DHIS2_MAX_RETRY_SECONDS)"
        self.say(
            f"DHIS2 {request.method} {where}: {what}, failed attempt "
            f"{self.failures}{first if self.failures == 1 else ''}"
        )

    def _announce(self, request: requests.PreparedRequest) -> None:
        parts = urlsplit(request.url or "")
        if not parts.path.endswith("/api/dataValueSets"):
            return
        if request.method == "GET":
            query = parse_qs(parts.query)
            pair = (query.get("dataSet", [""])[0], query.get("period", [""])[0])
            if pair != self.pair and all(pair):
                self.pair = pair
                self.pairs += 1
                self.say(f"{pair[0]} {pair[1]}: comparing with what DHIS2 holds")
        elif request.method == "POST" and self.pair is not None and request is not self.posted:
            self.posted = request  # a retry sends the same request again: said once
            try:
                sent = len(json.loads(request.body or b"{}").get("dataValues", []))
            except (ValueError, AttributeError):
                return
            self.say(f"{self.pair[0]} {self.pair[1]}: sending {sent} values")

    def close(self) -> None:
        self.inner.close()


def _wants_json(args: argparse.Namespace) -> bool:
    if args.json or args.summary:
        return bool(args.json)
    return not sys.stdout.isatty()


def push(args: argparse.Namespace, request: RunRequest) -> int:
    as_json = _wants_json(args)
    try:
        config = RuntimeConfig.from_env()
    except ConfigError as exc:  # on the status page too: the HRIO may not see this terminal
        record_cli_run(None, request, None, f"configuration problem: {exc}")
        return _fail(str(exc))
    progress = Progress()
    print(_starting(request, config), file=sys.stderr, flush=True)
    try:
        report = execute(request, config, transport=progress)
    except (RunInputError, PeriodError) as exc:
        record_cli_run(config, request, None, str(exc))
        return _fail(str(exc))
    except RunBusyError as exc:
        record_cli_run(config, request, None, str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    finally:
        progress.close()
    unknown = summary.unknown_org_unit(request, report)
    names = record_cli_run(config, request, report, unknown)
    if unknown:
        return _fail(unknown)
    _print_report(report, request, as_json, names)
    if report.status == "Successful":
        return EXIT_OK
    if any(f.code == "cht_unreadable" for f in report.findings):
        return EXIT_BAD_INPUT
    return EXIT_REJECTED


def _starting(request: RunRequest, config: RuntimeConfig) -> str:
    asked = ", ".join(p.iso for p in request.periods)
    if request.span:
        asked = f"{request.span[0].tag}..{request.span[1].tag}"
    what = asked or f"the latest completed periods (in {config.timezone})"
    target = without_userinfo(config.dhis2.url) if config.dhis2 else "DHIS2"
    dry = " (dry run)" if request.dry_run or (request.dry_run is None and config.dry_run) else ""
    return (
        f"Pushing {what} from CHT at {without_userinfo(config.cht.url)} to DHIS2 at {target}{dry}…"
    )


def _print_report(
    report: RunReport, request: RunRequest, as_json: bool, names: dict[str, str]
) -> None:
    """JSON on stdout (with the problems and the closing lines on stderr), or the
    summary on stdout."""
    if not as_json:
        sys.stdout.write(summary.text(report, request, names))
        return
    json.dump(summary.json_report(report, request), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    for diagnosis in report.diagnoses:
        where = f"{diagnosis.data_set} {diagnosis.period}: " if diagnosis.data_set else ""
        print(f"problem: {where}{diagnosis.line()}", file=sys.stderr)
    for line in [f"{report.status}.", *summary.closing_lines(report, request)]:
        print(line, file=sys.stderr)


class _CliHandler(logging.Handler):
    """Log records as the command line's other lines read (``warning: …``), on the
    current stderr. Tracebacks are kept: they are the mediator's own bugs."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"{record.levelname.lower()}: {record.getMessage()}"
            if record.exc_info:
                line += "\n" + logging.Formatter().formatException(record.exc_info)
            print(line, file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def _log_to_stderr() -> None:
    """Warnings and errors (``LOG_LEVEL`` for more) to stderr, once; other handlers stay."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(old)
    handler = _CliHandler()
    level = os.environ.get("LOG_LEVEL", "").strip().upper() or "WARNING"
    handler.setLevel(level if level in logging.getLevelNamesMapping() else "WARNING")
    root.addHandler(handler)
    if handler.level < root.getEffectiveLevel():
        root.setLevel(handler.level)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("preview", "push"):
        _log_to_stderr()
        warn_weak_secrets(os.environ)
        try:  # preview reads CHT alone: CHT's ids, as CHT's export takes them
            request = _request(args, dhis2_ids=args.command == "push")
        except RunInputError as exc:
            _fail(str(exc))
            raise SystemExit(EXIT_BAD_INPUT) from None  # as argparse ends on bad arguments
        return preview(args, request) if args.command == "preview" else push(args, request)
    if args.command == "serve":
        from mediator.service.serve import serve

        return serve()
    if args.command == "demo":
        try:
            from devstack.demo import run_demo
        except ImportError:
            return _fail("the demo needs a source checkout (the devstack/ folder): see README")
        return run_demo(keep=args.keep)
    return _fail(f"unknown command {args.command}")
