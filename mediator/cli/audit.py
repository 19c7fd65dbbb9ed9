"""audit: what DHIS2 holds beside what CHT computes now, on a terminal, as JSON or CSV.

On a terminal a summary per data set and period, the cells that are not equal (the first
``SHOWN``), what was not compared and why, the problems, and last the push that repairs
the difference. ``--json`` (the default when the output is a file or a pipe) prints
``run.audit.json_audit``; ``--csv`` the cells, with the summary on stderr. Exit status 0
when DHIS2 holds what CHT computes, 1 when something differs or could not be compared,
2 bad input or configuration, or CHT unreadable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from mediator.model.periods import PeriodError
from mediator.run import summary
from mediator.run.audit import Audit, Cell, PairAudit, audit, cells_csv, dumps, json_audit
from mediator.run.request import RunInputError, RunRequest
from mediator.settings.config import RuntimeConfig
from mediator.settings.variables import ConfigError

from .exits import EXIT_OK, EXIT_REJECTED, fail
from .push import Progress, asked

SHOWN = 50  # cells listed on a terminal; --csv lists them all
STATES = {
    "differs": "differs",
    "only_in_dhis2": "only in DHIS2",
    "only_computed": "only computed",
    "left_alone": "left alone",
}
_COLUMNS = ("equal", "differs", "only_in_dhis2", "only_computed", "left_alone")


def run_audit(args: argparse.Namespace, request: RunRequest) -> int:
    try:
        config = RuntimeConfig.from_env()
    except ConfigError as exc:
        return fail(str(exc))
    progress = Progress()
    print(_starting(request, config), file=sys.stderr, flush=True)
    try:
        found = audit(request, config, transport=progress)
    except (RunInputError, PeriodError) as exc:
        return fail(str(exc))
    finally:
        progress.close()
    unknown = summary.unknown_org_unit(request, found.report)
    if unknown:
        return fail(unknown)
    if found.cht_failed and not found.report.results:  # CHT unreadable: nothing compared
        return fail(next(f.message for f in found.report.findings if f.level == "error"))
    if args.csv:
        sys.stdout.write(cells_csv(found.cells))
        sys.stderr.write(text(found, cells=False))
    elif args.json or (not args.summary and not sys.stdout.isatty()):
        sys.stdout.flush()
        sys.stdout.buffer.write(dumps(json_audit(found)))
        sys.stdout.flush()
        sys.stderr.write(text(found, cells=False))
    else:
        sys.stdout.write(text(found))
    return EXIT_OK if found.status == "agrees" else EXIT_REJECTED


def _starting(request: RunRequest, config: RuntimeConfig) -> str:
    what, cht, dhis2 = asked(request, config)
    return (
        f"Auditing {what}: what DHIS2 at {dhis2} holds beside what CHT at {cht} computes "
        "now (nothing is pushed)…"
    )


# -- the summary for a terminal ----------------------------------------------------------------


def text(found: Audit, *, cells: bool = True) -> str:
    """The audit in words: the verdict, the table, the cells (unless ``cells`` is
    False: they are on stdout as JSON or CSV), what was not compared, the problems, and
    last the command that repairs the difference."""
    report = found.report
    names = summary.labels(report)
    totals = found.totals()
    differing = sum(totals[s] for s in ("differs", "only_in_dhis2", "only_computed"))
    verdict = {
        "agrees": "DHIS2 holds what CHT computes",
        "differs": f"{_values(differing, 'cell')} differ{'s' if differing == 1 else ''}",
        "incomplete": "no cell differs, but not everything could be compared",
    }[found.status]
    lines = [f"Audit {report.run_id}: {verdict} (nothing was pushed)"]
    if found.pairs:
        lines += table(found.pairs, names)
        lines.append(
            "  (cells of data values; left alone: values a person typed at org units CHT "
            "does not map, never cleared)"
        )
    listed = [c for c in found.cells if c.state != "left_alone"]
    if cells and listed:
        lines.append("Cells that differ (DHIS2's value, then CHT's):")
        lines += [f"  {cell_line(c)}" for c in listed[:SHOWN]]
        if len(listed) > SHOWN:
            lines.append(f"  … and {len(listed) - SHOWN} more: --csv lists every cell")
    lines += not_compared(found)
    problems = summary.problem_lines(report.diagnoses)
    if problems:
        lines += ["Problems:", *problems]
    lines += closing(found)
    return "\n".join(lines) + "\n"


def table(pairs: list[PairAudit], names: Mapping[str, str]) -> list[str]:
    shown = [names.get(p.data_set, p.data_set) for p in pairs]
    width = max([len("data set"), *map(len, shown)])
    heads = [STATES.get(c, c) for c in _COLUMNS]
    lines = [
        f"  {'data set':<{width}}  {'period':<10}" + "".join(f"{h:>14}" for h in heads),
    ]
    totals = [0] * len(_COLUMNS)
    for label, pair in zip(shown, pairs, strict=True):
        counts = [pair.counts[c] for c in _COLUMNS]
        totals = [t + n for t, n in zip(totals, counts, strict=True)]
        mark = "" if pair.error is None else "  not compared"
        lines.append(
            f"  {label:<{width}}  {pair.period:<10}" + "".join(f"{n:>14}" for n in counts) + mark
        )
    if len(pairs) > 1:
        lines.append(f"  {'total':<{width}}  {'':<10}" + "".join(f"{n:>14}" for n in totals))
    return lines


def cell_line(cell: Cell) -> str:
    where = (
        f"{cell.data_set} {cell.period} org unit {cell.org_unit} data element "
        f"{cell.data_element} ({cell.category_option_combo}/{cell.attribute_option_combo})"
    )
    by = f" (stored by {cell.stored_by})" if cell.stored_by else ""
    if cell.state == "only_in_dhis2":
        return f"{where}: DHIS2 holds {cell.dhis2_value}{by}, CHT computes nothing"
    if cell.state == "only_computed":
        return f"{where}: DHIS2 holds nothing, CHT computes {cell.computed_value}"
    return f"{where}: DHIS2 holds {cell.dhis2_value}{by}, CHT computes {cell.computed_value}"


def not_compared(found: Audit) -> list[str]:
    """What the audit said and did not compare (``run.audit``'s docstring)."""
    lines = []
    for p in found.pairs:
        where = f"{p.data_set} {p.period}"
        if p.error:
            lines.append(f"  {where}: not compared: {p.error}")
        if p.held:
            lines.append(
                f"  {where}: held by the coverage threshold, not compared (a push leaves "
                f"them until enough CHWs sync): {', '.join(p.held)}; while they are held, "
                "org units CHT no longer maps are not checked either"
            )
        if p.unread:
            lines.append(
                f"  {where}: DHIS2 would not say what it holds at {', '.join(p.unread)}: "
                f"{_values(p.counts['not_compared'], 'computed value')} not compared"
            )
        if p.kept_back:
            lines.append(
                f"  {where}: {_values(len(p.kept_back), 'computed value')} a push keeps back "
                "(DHIS2 would refuse them; see the problems), not compared"
            )
        if p.counts["left_alone"]:
            lines.append(
                f"  {where}: {_values(p.counts['left_alone'], 'value')} at org units CHT does "
                "not map, stored by another DHIS2 user than this integration's: left alone "
                "(--csv lists them)"
            )
    return ["Not compared, or left alone:", *lines] if lines else []


def _values(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def closing(found: Audit) -> list[str]:
    lines = []
    repair = found.repair()
    if repair:
        lines.append(
            "To make DHIS2 hold what CHT computes (a push sends only the cells that differ), run:"
        )
        lines.append("  " + " && ".join(repair))
    redo = found.redo()
    if redo:
        lines.append("To compare what could not be compared, once that is fixed, run:")
        lines.append("  " + " && ".join(redo))
    return lines
