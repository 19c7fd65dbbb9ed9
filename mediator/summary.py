"""A run report told to people: what was pushed, what was not and why, the exact command
that resumes what did not complete, and the short summary the command line prints.

The command line (``cli.py``) prints ``text(...)``; the JSON report it prints, and the
status page, carry the same ``resume`` command. Rerunning a (data set, period) is always
safe: the push sends only what differs from what DHIS2 holds (``plan.py``).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .report import DataSetResult, Diagnosis, RunReport
from .run_request import MAX_PERIODS, RunRequest

COMMAND = "python -m mediator push"
# what a not-completed (data set, period) says, by failure kind (report.DataSetResult)
WHY = {
    "unreachable": "DHIS2 could not be reached",
    "timeout": "DHIS2 did not answer in time",
    "not_attempted": "not attempted: the run stopped earlier",
    "cht_read": "CHT could not be read",
    "credentials": "DHIS2 refused the credentials",
    "login_redirect": "DHIS2 sent its login page",
    "token_refused": "DHIS2 refused the token",
    "forbidden": "DHIS2 refused access (403)",
    "tls": "DHIS2's certificate was not trusted",
    "internal": "an internal error (see the log)",
}


@dataclass
class Outcome:
    """The (data set, period) pairs of a run, sorted by what became of them."""

    pushed: list[DataSetResult] = field(default_factory=list)  # DHIS2 holds the result
    incomplete: list[DataSetResult] = field(default_factory=list)  # rerun once fixed/back
    blocked: list[DataSetResult] = field(default_factory=list)  # a problem to fix first
    skipped: list[DataSetResult] = field(default_factory=list)

    @classmethod
    def of(cls, report: RunReport) -> Outcome:
        out = cls()
        for r in report.results:
            if r.status == "skipped":
                out.skipped.append(r)
            elif r.error_kind is not None:  # a peer failed, or the run stopped before it
                out.incomplete.append(r)
            elif r.status == "error":
                out.blocked.append(r)
            else:
                out.pushed.append(r)
        return out


def resume_commands(report: RunReport, request: RunRequest) -> list[str]:
    """The commands that redo exactly what did not complete (empty: nothing to redo).

    A run that stopped before it had any (data set, period), CHT unreadable say, is
    redone as it was asked; otherwise each data set's incomplete periods are named, one
    command for data sets that share them."""
    tail = _tail(request)
    if not report.results:
        if not any(f.level == "error" for f in report.findings):
            return []
        return [_join([COMMAND, *_asked(request), *tail])]
    by_data_set: dict[str, list[str]] = {}
    for r in Outcome.of(report).incomplete:
        by_data_set.setdefault(r.data_set, []).append(r.period)
    by_periods: dict[tuple[str, ...], list[str]] = {}
    for data_set, listed in by_data_set.items():
        by_periods.setdefault(tuple(dict.fromkeys(listed)), []).append(data_set)
    commands = []
    for periods, data_sets in by_periods.items():
        sets = [a for ds in data_sets for a in ("--data-set", ds)]
        for start in range(0, len(periods), MAX_PERIODS):
            chosen = [a for p in periods[start : start + MAX_PERIODS] for a in ("--period", p)]
            commands.append(_join([COMMAND, *sets, *chosen, *tail]))
    return commands


def _asked(request: RunRequest) -> list[str]:
    args = [a for ds in request.data_sets for a in ("--data-set", ds)]
    if request.span is not None:
        args += ["--from", request.span[0].tag, "--to", request.span[1].tag]
    args += [a for p in request.periods for a in ("--period", p.iso)]
    return args


def _tail(request: RunRequest) -> list[str]:
    tail = ["--org-unit", request.org_unit] if request.org_unit else []
    return tail + (["--dry-run"] if request.dry_run else [])


def _join(args: Iterable[str]) -> str:
    return " ".join(shlex.quote(a) if a != COMMAND else a for a in args)


def unknown_org_unit(request: RunRequest, report: RunReport) -> str | None:
    """One line when ``orgUnit`` was asked for and no CHT place carries it: every data set
    then computed nothing and found no one to expect, so the run did nothing at all (it
    would otherwise look like a clean push of zero values)."""
    if request.org_unit is None or not report.results:
        return None
    results = [r for r in report.results if r.status != "skipped"]
    if not results or any(_did_something(r) for r in results):
        return None
    data_sets = ", ".join(dict.fromkeys(r.data_set for r in results))
    return (
        f"org unit {request.org_unit}: no CHT place carries it (dhis.orgUnit) for data set "
        f"{data_sets}, so nothing was computed or pushed; check the id against the "
        "dhis.orgUnit of CHT's places"
    )


def _did_something(r: DataSetResult) -> bool:
    c = r.counts
    done = c.imported + c.updated + c.ignored + c.deleted + r.values_unchanged + r.delivered
    return r.status == "error" or bool(r.values_computed or r.coverage or r.values_sent or done)


def json_report(report: RunReport, request: RunRequest) -> dict[str, Any]:
    """The report as the command line prints it with ``--json``: the HTTP answer's body
    (``status``, the report, ``totals``) and the ``resume`` commands. Stable for scripts:
    fields are only ever added."""
    data: dict[str, Any] = {"status": report.status, **report.model_dump(mode="json")}
    data["totals"] = report.totals().model_dump()
    data["resume"] = resume_commands(report, request)
    return data


# -- the summary for a terminal ----------------------------------------------------------------

_MARK = {"success": "✓", "warning": "!", "error": "✗", "skipped": "–"}
_COLUMNS = ("imported", "updated", "deleted", "unchanged", "rejected")


def _row(r: DataSetResult) -> tuple[int, ...]:
    c = r.counts
    return (c.imported, c.updated, c.deleted, r.values_unchanged, len(r.rejected))


def table(report: RunReport, names: Mapping[str, str] | None = None) -> list[str]:
    """Per (data set, period): status and what DHIS2 did, with a total line."""
    names = names or {}
    labels = [
        f"{names[r.data_set]} ({r.data_set})" if r.data_set in names else r.data_set
        for r in report.results
    ]
    width = max([len("data set"), *map(len, labels)])
    head = f"  {'data set':<{width}}  {'period':<10} {'status':<9}" + "".join(
        f"{c:>10}" for c in _COLUMNS
    )
    lines = [head]
    totals = [0] * len(_COLUMNS)
    for label, r in zip(labels, report.results, strict=True):
        counts = _row(r)
        totals = [t + n for t, n in zip(totals, counts, strict=True)]
        status = f"{_MARK.get(r.status, '?')} {r.status}"
        lines.append(
            f"  {label:<{width}}  {r.period:<10} {status:<9}" + "".join(f"{n:>10}" for n in counts)
        )
    if len(report.results) > 1:
        lines.append(
            f"  {'total':<{width}}  {'':<10} {'':<9}" + "".join(f"{n:>10}" for n in totals)
        )
    return lines


def problem_lines(diagnoses: Iterable[Diagnosis]) -> list[str]:
    """Each kind of problem once (its cause as first met), where it happened, what to do."""
    grouped: dict[tuple[str, str], list[Diagnosis]] = {}
    for d in diagnoses:
        grouped.setdefault((d.kind, d.fix), []).append(d)
    lines = []
    for (_kind, fix), found in grouped.items():
        where = list(dict.fromkeys(f"{d.data_set} {d.period}" for d in found if d.data_set))
        at = f" [{', '.join(where[:4])}{f' and {len(where) - 4} more' if len(where) > 4 else ''}]"
        lines.append(f"  ✗ {found[0].title}{at if where else ''}: {found[0].cause}")
        if len({d.cause for d in found}) > 1:
            lines.append("    (likewise for the others listed)")
        lines.append(f"    what to do: {fix}")
    return lines


def closing_lines(report: RunReport, request: RunRequest) -> list[str]:
    """What was pushed, what was not and why, and last, the command that resumes it."""
    out = Outcome.of(report)
    total = len(report.results)
    lines = []
    if out.pushed:
        lines.append(f"Pushed {len(out.pushed)} of {total}: {_pairs(out.pushed)}.")
    if out.blocked:
        lines.append(
            f"Not pushed until the problem above is fixed, {len(out.blocked)}: "
            f"{_pairs(out.blocked)}."
        )
    if out.incomplete:
        reasons = sorted({WHY.get(r.error_kind or "", r.error_kind or "") for r in out.incomplete})
        lines.append(
            f"Not completed, {len(out.incomplete)}: {_pairs(out.incomplete)} "
            f"({'; '.join(reasons)})."
        )
    if not report.results and any(f.level == "error" for f in report.findings):
        lines.append("Nothing was pushed.")
    commands = resume_commands(report, request)
    if commands:  # one line to copy, whatever it takes
        lines.append(
            "To resume once that is fixed (what DHIS2 already holds is not sent again), run:"
        )
        lines.append("  " + " && ".join(commands))
    return lines


def _pairs(results: list[DataSetResult]) -> str:
    by_data_set: dict[str, list[str]] = {}
    for r in results:
        by_data_set.setdefault(r.data_set, []).append(r.period)
    return "; ".join(f"{ds} {', '.join(periods)}" for ds, periods in by_data_set.items())


def text(report: RunReport, request: RunRequest, names: Mapping[str, str] | None = None) -> str:
    """The one-screen summary of a push: status, the table, problems once each, then
    what was pushed and how to resume."""
    mode = " (dry run: DHIS2 stored nothing)" if report.dry_run else ""
    lines = [f"Run {report.run_id}: {report.status}{mode}"]
    if report.results:
        lines += table(report, names)
        lines.append(
            "  (rows of data values; unchanged: already in DHIS2 with this value, not sent)"
        )
    problems = problem_lines(report.diagnoses)
    if problems:
        lines += ["Problems:", *problems]
    lines += closing_lines(report, request)
    return "\n".join(lines) + "\n"
