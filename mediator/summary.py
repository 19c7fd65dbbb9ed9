"""A run in plain words: one sentence of what DHIS2 received, and each kind of problem
once, with the periods it concerns and its fix. For the OpenHIM transaction (the top of
its response body, its properties) and anyone else who shows a run to a person."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field

from .report import DataSetResult, Diagnosis, RunReport

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


def data_set_label(result: DataSetResult) -> str:
    return (
        f"{result.data_set_name} ({result.data_set})" if result.data_set_name else result.data_set
    )


def _names(report: RunReport) -> list[str]:
    named: dict[str, str] = {}
    for r in report.results:
        named.setdefault(r.data_set, data_set_label(r))
        if r.data_set_name:
            named[r.data_set] = data_set_label(r)
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
