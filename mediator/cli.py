"""``python -m mediator preview | push | serve | demo``.

Exit status: 0 all good; 1 DHIS2 rejected something or a data set could not be
pushed; 2 bad input (bad period, unknown data set, unreachable or refusing CHT).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from . import preview as previews
from .cht import ChtError
from .config import ConfigError, RuntimeConfig
from .locks import RunBusyError
from .periods import PeriodError
from .pipeline import execute
from .run_request import CLI_NAMES, RunInputError, RunRequest
from .secrets import warn_weak_secrets

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mediator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def scope(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--period",
            action="append",
            help="a DHIS2 period: YYYY-MM or YYYYMM, YYYYQn, YYYYSn, YYYY, YYYYApril... "
            "(default: the latest completed period of each data set's type, and the ones "
            "before it that MEDIATOR_LOOKBACK_PERIODS says)",
        )
        p.add_argument("--from", dest="start", help="backfill from this month (YYYY-MM)")
        p.add_argument("--to", dest="end", help="backfill up to this month (YYYY-MM)")
        p.add_argument("--data-set", action="append", help="DHIS2 data set UID (repeatable)")
        p.add_argument("--org-unit", help="only this DHIS2 org unit")

    preview = sub.add_parser("preview", help="print the dataValueSets CHT's export would give")
    scope(preview)
    preview.add_argument("--human-readable", action="store_true", help="names instead of ids")
    push = sub.add_parser("push", help="compute and push to DHIS2, print the run report")
    scope(push)
    push.add_argument("--dry-run", action="store_true", help="DHIS2 validates, stores nothing")
    sub.add_parser("serve", help="run the OpenHIM mediator (HTTP endpoints, registration)")
    demo = sub.add_parser("demo", help="start the local stack and run the monthly channel once")
    demo.add_argument("--keep", action="store_true", help="keep the stack running, print URLs")
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


def push(request: RunRequest) -> int:
    try:
        config = RuntimeConfig.from_env()
        report = execute(request, config)
    except (ConfigError, RunInputError, PeriodError) as exc:
        return _fail(str(exc))
    except RunBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    print(report.model_dump_json(indent=2))
    for diagnosis in report.diagnoses:
        where = f"{diagnosis.data_set} {diagnosis.period}: " if diagnosis.data_set else ""
        print(f"problem: {where}{diagnosis.line()}", file=sys.stderr)
    if report.status == "Successful":
        return EXIT_OK
    if any(f.code == "cht_unreadable" for f in report.findings):
        print(f"error: {report.findings[0].message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_REJECTED


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = _parser().parse_args(argv)
    if args.command in ("preview", "push"):
        warn_weak_secrets(os.environ)
        try:  # preview reads CHT alone: CHT's ids, as CHT's export takes them
            request = _request(args, dhis2_ids=args.command == "push")
        except RunInputError as exc:
            _fail(str(exc))
            raise SystemExit(EXIT_BAD_INPUT) from None  # as argparse ends on bad arguments
        return preview(args, request) if args.command == "preview" else push(request)
    if args.command == "serve":
        from .service import serve

        return serve()
    if args.command == "demo":
        try:
            from devstack.demo import run_demo
        except ImportError:
            return _fail("the demo needs a source checkout (the devstack/ folder): see README")
        return run_demo(keep=args.keep)
    return _fail(f"unknown command {args.command}")
