"""python -m mediator preview | push | audit | explain | serve | demo

Exit status: 0 all good; 1 DHIS2 rejected something or a data set could not be
pushed (the summary says what to rerun); 2 bad input or configuration (a bad period,
an unknown data set or org unit, a variable with a bad value, CHT unreachable or
refusing the credentials).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from mediator import __version__
from mediator.run.request import (
    CLI_NAMES,
    MAX_BACKFILL_MONTHS,
    MAX_PERIODS,
    RunInputError,
    RunRequest,
)
from mediator.settings.secrets import warn_weak_secrets
from mediator.settings.variables import ENV_VARS

from .exits import EXIT_BAD_INPUT, fail, scope_fields

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
    "audit": "exit status: 0 DHIS2 holds what CHT computes; 1 something differs or could not "
    "be compared (the summary's last line is the push that repairs it); 2 bad input or "
    "configuration, or CHT unreadable",
    "explain": "exit status: 0 explained; 2 bad input or configuration, a cell no CHT place "
    "or target maps to, or CHT unreadable",
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
    _audit(sub)
    _explain(sub)
    _sub(
        sub,
        "serve",
        "run the OpenHIM mediator (HTTP endpoints, registration, heartbeat)",
        "Serve /push, /audit, /explain, /coverage, /health and the status page (GET /); "
        "register with OpenHIM core and heartbeat every 10 s. Stops on SIGTERM or Ctrl-C.",
    )
    _demo(sub)
    return parser


def _demo(sub: Any) -> None:
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


def _explain(sub: Any) -> None:
    """explain: one cell's scope (one of each) and how to print it."""
    p = _sub(
        sub,
        "explain",
        "why one DHIS2 cell holds its number: every CHW and doc behind it",
        "For one cell (data set, period, org unit, data element, and optionally category "
        "option combo): the value CHT computes now beside what DHIS2 holds, the places of "
        "the roll-up, each contributing CHW's target doc and what it added, each doc "
        "under the org unit that did not count and why, and the CHWs expected there with "
        "no doc for the period. On a terminal in words; with --json, or when the output "
        "is a file or a pipe, JSON.",
    )
    p.add_argument("--period", action="append", metavar="PERIOD", help="one DHIS2 period")
    p.add_argument("--data-set", action="append", metavar="UID", help="the data set")
    p.add_argument("--org-unit", metavar="UID", help="the org unit")
    p.add_argument("--data-element", metavar="UID", help="the data element")
    p.add_argument("--category-option-combo", metavar="UID", help="one combo (default: all)")
    p.add_argument("--from", dest="start", help=argparse.SUPPRESS)  # refused in words
    p.add_argument("--to", dest="end", help=argparse.SUPPRESS)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="JSON (default when not a terminal)")
    shown.add_argument("--summary", action="store_true", help="words (default on a terminal)")


def _audit(sub: Any) -> None:
    """audit: the scope of a push (no --dry-run: it pushes nothing) and how to print it."""
    audit = _sub(
        sub,
        "audit",
        "compare what DHIS2 holds with what CHT computes now; push nothing",
        "Compare, cell by cell, what DHIS2 holds with what CHT computes now, as a push "
        "would (the same reads and the push planner's comparison), and push nothing: per "
        "data set and period the cells equal, differing, only in DHIS2 and only computed, "
        "the cells themselves, and the push that repairs the difference. On a terminal a "
        "summary; with --json, or when the output is a file or a pipe, JSON; with --csv "
        "the cells as CSV (the summary on stderr).",
    )
    _scope(audit)
    shown = audit.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="JSON (default when not a terminal)")
    shown.add_argument("--csv", action="store_true", help="the cells as CSV, summary on stderr")
    shown.add_argument(
        "--summary", action="store_true", help="print the short summary (default on a terminal)"
    )


def _request(args: argparse.Namespace, *, dhis2_ids: bool = True) -> RunRequest:
    """The same checks and limits as the push endpoint (``RunRequest.from_fields``),
    told with the command line's option names."""
    fields = scope_fields(args, dryRun=getattr(args, "dry_run", False) or None)
    return RunRequest.from_fields(fields, names=CLI_NAMES, trigger="cli", dhis2_ids=dhis2_ids)


# -- push ------------------------------------------------------------------------------------


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
    if args.command in ("preview", "push", "audit"):
        _log_to_stderr()
        warn_weak_secrets(os.environ)
        try:  # preview reads CHT alone: CHT's ids, as CHT's export takes them
            request = _request(args, dhis2_ids=args.command != "preview")
        except RunInputError as exc:
            fail(str(exc))
            raise SystemExit(EXIT_BAD_INPUT) from None  # as argparse ends on bad arguments
        # each command's code is imported when it runs: a preview starts sooner
        if args.command == "audit":
            from .audit import run_audit

            return run_audit(args, request)
        if args.command == "preview":
            from .preview import preview

            return preview(args, request)
        from .push import push

        return push(args, request)
    if args.command == "explain":
        _log_to_stderr()
        warn_weak_secrets(os.environ)
        from .explain import run_explain

        return run_explain(args)
    if args.command == "serve":
        from mediator.service.serve import serve

        return serve()
    if args.command == "demo":
        try:
            from devstack.demo import run_demo
        except ImportError:
            return fail("the demo needs a source checkout (the devstack/ folder): see README")
        return run_demo(keep=args.keep)
    return fail(f"unknown command {args.command}")
