"""A run told to people. For the OpenHIM transaction (the top of its response body, its
properties): one sentence of what DHIS2 received and each kind of problem once, with the
periods it concerns and what to do. For the command line (``cli.py`` prints ``text(...)``):
the table, the same problems, what was pushed and what was not, and the exact command that
resumes what did not complete; the JSON report it prints, and the status page, carry the
same ``resume`` command. Rerunning a (data set, period) is always safe: the push sends only
what differs from what DHIS2 holds (``dhis2.plan``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from mediator.model.report import DataSetResult, Diagnosis, RunReport

from .request import MAX_PERIODS, RunRequest

_SPACE = re.compile(r"\s+")


class Problem(BaseModel):
    """One kind of problem of the run, said once."""

    title: str
    periods: list[str] = Field(default_factory=list)
    data_sets: list[str] = Field(default_factory=list)
    cause: str
    fix: str
    count: int = 0

    def text(self) -> str:
        where = f"{', '.join(self.periods)}: " if self.periods else ""
        return f"{where}{self.cause} What to do: {self.fix}"


def cut(text: str, limit: int, more: str = "") -> str:
    """``text`` within ``limit`` characters, cut at a word, never mid-word: an ellipsis
    and ``more`` (where the rest is) say that something was left out."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    tail = f"… {more}".rstrip() if more else "…"
    room = max(0, limit - len(tail))
    head = text[:room].rsplit(" ", 1)[0] if " " in text[:room] else text[:room]
    return head.rstrip(" ,;:") + tail


def problems(diagnoses: Iterable[Diagnosis]) -> list[Problem]:
    """The diagnoses, one per kind of problem: a cause that differs only by its period
    (the same CHWs missing in three months) is said once, with the periods."""
    grouped: dict[tuple[str, str, str], tuple[Problem, str]] = {}
    for d in diagnoses:
        generic = _generic(d.cause, d.period) if d.period else d.cause
        key = (d.kind, generic, d.fix)
        if key not in grouped:
            grouped[key] = (Problem(title=d.title, cause=d.cause, fix=d.fix), generic)
        found, _ = grouped[key]
        found.count += d.count
        if d.period and d.period not in found.periods:
            found.periods.append(d.period)
            if len(found.periods) > 1:
                found.cause = generic  # said once for every period listed
        if d.data_set and d.data_set not in found.data_sets:
            found.data_sets.append(d.data_set)
    return [problem for problem, _ in grouped.values()]


def _generic(cause: str, period: str) -> str:
    """A cause said for several periods at once: its own period left out."""
    text = cause.replace(f" for {period}", "")
    text = text.replace(f"Period {period}", "The period").replace(f"period {period}", "the period")
    return text.replace(period, "the period")


def labels(report: RunReport, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """Data set id -> "Name (id)" where DHIS2 named it (in this run, else ``known``:
    names kept from earlier runs), else the id."""
    names = {**(known or {}), **report.data_set_names()}
    return {
        r.data_set: f"{names[r.data_set]} ({r.data_set})" if r.data_set in names else r.data_set
        for r in report.results
    }


def _names(report: RunReport) -> list[str]:
    named = labels(report)
    return [named.get(ds, ds) for ds in report.data_sets] or list(named.values())


def _periods(periods: list[str]) -> str:
    if len(periods) <= 3:
        return ", ".join(periods)
    return f"{periods[0]} to {periods[-1]}"


def sentence(report: RunReport) -> str:
    """What DHIS2 received, in one sentence, then how many kinds of problem."""
    totals = report.totals()
    sets = _names(report)
    periods = report.periods
    what = (
        f"{len(periods)} period{'s' if len(periods) != 1 else ''} ({_periods(periods)}) of "
        f"{len(sets)} data set{'s' if len(sets) != 1 else ''} ({', '.join(sets)})"
    )
    version = next((r.dhis2_version for r in report.results if r.dhis2_version), None)
    dhis2 = f"DHIS2 {version}" if version else "DHIS2"
    unchanged = sum(r.values_unchanged + r.values_zero for r in report.results)
    rejected = sum(len(r.rejected) for r in report.results)
    counts = (
        f"{totals.imported} imported, {totals.updated} updated, {totals.deleted} deleted, "
        f"{unchanged} already right, {rejected} rejected"
    )
    failed = [f for f in report.findings if f.level == "error"]
    if failed and not report.results:
        start = f"Nothing was pushed: {failed[0].message}"
    elif report.dry_run:
        start = f"Dry run, nothing stored: {dhis2} would have taken {what}: {counts}."
    elif report.status == "Failed":
        start = f"Nothing reached {dhis2} for {what}: {counts}."
    else:
        start = f"Pushed {what} to {dhis2}: {counts}."
    found = problems(report.diagnoses)
    if not found:
        return f"{start} No problems."
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    kinds = f"{len(found)} kind{'s' if len(found) != 1 else ''} of problem"
    return f"{start} {kinds}: {first.title}{more}."


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
        return [_join([*_asked(request), *tail])]
    return commands_for([(r.data_set, r.period) for r in Outcome.of(report).incomplete], tail)


def commands_for(
    pairs: Iterable[tuple[str, str]], tail: list[str], command: str = COMMAND
) -> list[str]:
    """The commands that do exactly these (data set, period) pairs: one for data sets
    that share their periods, at most ``MAX_PERIODS`` periods each. ``tail``: the options
    every command ends with (``--org-unit``…). The resume of a push, an audit's repair."""
    by_data_set: dict[str, list[str]] = {}
    for data_set, period in pairs:
        by_data_set.setdefault(data_set, []).append(period)
    by_periods: dict[tuple[str, ...], list[str]] = {}
    for data_set, listed in by_data_set.items():
        by_periods.setdefault(tuple(dict.fromkeys(listed)), []).append(data_set)
    commands = []
    for periods, data_sets in by_periods.items():
        sets = [a for ds in data_sets for a in ("--data-set", ds)]
        for start in range(0, len(periods), MAX_PERIODS):
            chosen = [a for p in periods[start : start + MAX_PERIODS] for a in ("--period", p)]
            commands.append(_join([*sets, *chosen, *tail], command))
    return commands


def _asked(request: RunRequest) -> list[str]:
    args = [a for ds in request.data_sets for a in ("--data-set", ds)]
    if request.span is not None:
        args += ["--from", request.span[0].tag, "--to", request.span[1].tag]
    args += [a for p in request.periods for a in ("--period", p.iso)]
    return args


def _tail(request: RunRequest) -> list[str]:
    return org_unit_tail(request) + (["--dry-run"] if request.dry_run else [])


def org_unit_tail(request: RunRequest) -> list[str]:
    return ["--org-unit", request.org_unit] if request.org_unit else []


def _join(args: Iterable[str], command: str = COMMAND) -> str:
    return " ".join([command, *(shlex.quote(a) for a in args)])


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
    named = labels(report, names)
    shown = [named[r.data_set] for r in report.results]
    width = max([len("data set"), *map(len, shown)])
    head = f"  {'data set':<{width}}  {'period':<10} {'status':<9}" + "".join(
        f"{c:>10}" for c in _COLUMNS
    )
    lines = [head]
    totals = [0] * len(_COLUMNS)
    for label, r in zip(shown, report.results, strict=True):
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
    """Each kind of problem once (``problems``), where it happened, what to do."""
    lines = []
    for p in problems(diagnoses):
        where = "; ".join(part for part in (", ".join(p.data_sets), _periods(p.periods)) if part)
        lines.append(f"  ✗ {p.title}{f' [{where}]' if where else ''}: {p.cause}")
        lines.append(f"    what to do: {p.fix}")
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
