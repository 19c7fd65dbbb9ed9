"""preview: the value sets CHT's export would give, as JSON on stdout (read from CHT only),
and on stderr the docs that did not count, and why."""

from __future__ import annotations

import argparse
import sys

from mediator.cht.client import ChtError
from mediator.model.periods import PeriodError
from mediator.run import preview as previews
from mediator.run.request import RunInputError, RunRequest
from mediator.settings.config import RuntimeConfig
from mediator.settings.variables import ConfigError

from .exits import EXIT_OK, fail


def preview(args: argparse.Namespace, request: RunRequest) -> int:
    try:
        config = RuntimeConfig.from_env(need_dhis2=False)
        if request.scheduled:
            config.lookback_periods = 0  # a preview shows the latest completed month only
        shown = previews.write(request, config, sys.stdout, human_readable=args.human_readable)
    except (ConfigError, RunInputError, ChtError, PeriodError, previews.PreviewFailed) as exc:
        return fail(str(exc))
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
