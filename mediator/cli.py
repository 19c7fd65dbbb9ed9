"""``python -m mediator preview | push | serve | demo``.

Exit status: 0 all good; 1 DHIS2 rejected something or a data set could not be
pushed; 2 bad input (bad period, unknown data set, unreachable or refusing CHT).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date

from .cht import ChtError
from .config import ConfigError, RuntimeConfig
from .periods import Month, PeriodError
from .run import RunInputError, RunRequest, compute, execute

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except PeriodError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mediator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def scope(p: argparse.ArgumentParser) -> None:
        p.add_argument("--period", type=_month, help="YYYY-MM or YYYYMM (default: last month)")
        p.add_argument(
            "--data-set", action="append", default=[], help="DHIS2 data set UID (repeatable)"
        )
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


def _request(args: argparse.Namespace, trigger: str = "cli") -> RunRequest:
    return RunRequest(
        periods=[args.period] if args.period else [],
        data_sets=args.data_set,
        org_unit=args.org_unit,
        dry_run=getattr(args, "dry_run", None) or None,
        trigger=trigger,
    )


def preview(args: argparse.Namespace) -> int:
    try:
        config = RuntimeConfig.from_env(need_dhis2=False)
        data_sets, periods = compute(_request(args), config)
    except (ConfigError, RunInputError, ChtError) as exc:
        return _fail(str(exc))
    today = date.today().isoformat()
    out = []
    for data in periods:
        if data.read.error:
            return _fail(data.read.error)
        for ds in data_sets:
            out.append(data.value_set(ds, today, human_readable=args.human_readable).as_export())
            _diagnose(ds, data.read.target_docs, data.read.skipped.get(ds, {}))
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def _diagnose(data_set: str, docs: int, skipped: dict[str, int]) -> None:
    if not skipped:
        return
    detail = ", ".join(f"{reason}: {n}" for reason, n in skipped.items())
    print(f"{data_set}: of {docs} target docs, not counted: {detail}", file=sys.stderr)


def push(args: argparse.Namespace) -> int:
    try:
        config = RuntimeConfig.from_env()
        report = execute(_request(args), config)
    except (ConfigError, RunInputError) as exc:
        return _fail(str(exc))
    print(report.model_dump_json(indent=2))
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
    if args.command == "preview":
        return preview(args)
    if args.command == "push":
        return push(args)
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
