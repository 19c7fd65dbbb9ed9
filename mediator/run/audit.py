"""An audit: what DHIS2 holds beside what CHT computes now, cell by cell; nothing is pushed.

It is a push stopped after step 5 (``pipeline.execute`` with ``compare``): the same jobs,
CHT read and aggregation, preflight, ``push.read_stored`` (batches of org units, then one
by one), sweep of the org units CHT no longer maps, and the push planner's own comparison
(``dhis2.plan.plan_push``), so a cell is equal exactly when a push would leave it alone.
Each cell's state is read off the plan (``classify``)::

    the plan                                                the cell
    unchanged, or a zero DHIS2 stores as no value           equal (counted, not listed)
    sent where DHIS2 holds nothing                          only_computed
    sent where DHIS2 holds another value                    differs
    cleared: a computed zero DHIS2 stores as no value,      differs (computed "0")
      where DHIS2 holds a value
    cleared: a key the engine no longer produces            only_in_dhis2

Said, and not compared:

- org units held by the coverage threshold (``MEDIATOR_COVERAGE_THRESHOLD``): a push
  leaves them alone, so their cells are not compared; while any is held, a push does not
  sweep the org units CHT no longer maps, and the audit does not check them either;
- values at org units CHT does not map stored by another DHIS2 user than this
  integration's (a number a person typed): a push never clears them; listed as
  ``left_alone`` with who stored them, and no reason to exit 1;
- org units DHIS2 would not say what it holds at, and rows the preflight keeps back
  (a value or option combo DHIS2 would refuse): the audit is then ``incomplete``.

Only the data elements CHT maps are compared: a data set's other elements are DHIS2's.
An audit takes no run lock (it writes nothing) and waits for no run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Literal

import orjson

from mediator.dhis2.plan import Planned
from mediator.engine.aggregation import Aggregation
from mediator.http.transport import Transport
from mediator.model.report import DataSetResult, RejectedRow, RunReport
from mediator.settings.config import RuntimeConfig

from .pipeline import execute
from .push import Compare, Compared
from .read import MakeAggregation
from .request import RunRequest
from .summary import Outcome, commands_for, org_unit_tail

AUDIT_COMMAND = "python -m mediator audit"
COUNTED = ("equal", "differs", "only_in_dhis2", "only_computed", "left_alone", "not_compared")
Status = Literal["agrees", "differs", "incomplete"]


@dataclass(frozen=True, slots=True)
class Cell:
    """One DHIS2 cell that is not equal (or that a push leaves alone). Slotted, and
    written by orjson as it is: a national month DHIS2 holds nothing of lists 120,000."""

    data_set: str
    period: str
    org_unit: str
    data_element: str
    category_option_combo: str
    attribute_option_combo: str
    state: str  # differs | only_in_dhis2 | only_computed | left_alone
    dhis2_value: str | None  # as DHIS2 holds it ("5.0"), None: nothing
    computed_value: str | None  # as a push would send it, None: nothing computed
    stored_by: str | None  # who stored DHIS2's value, as DHIS2 says


CSV_COLUMNS = tuple(f.name for f in fields(Cell))


@dataclass
class PairAudit:
    """One (data set, period): how many cells are in each state, and what was not
    compared, and why."""

    data_set: str
    period: str
    name: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    unread: list[str] = field(default_factory=list)  # org units DHIS2 would not say
    held: list[str] = field(default_factory=list)  # coverage held: not compared
    kept_back: list[RejectedRow] = field(default_factory=list)  # preflight: never sent
    swept: bool = False  # org units CHT no longer maps were checked
    error: str | None = None  # not compared at all

    @property
    def differing(self) -> int:
        return sum(self.counts[s] for s in ("differs", "only_in_dhis2", "only_computed"))

    @property
    def complete(self) -> bool:
        return self.error is None and not self.unread and not self.kept_back


def classify(compared: Compared) -> tuple[dict[str, int], list[Cell]]:
    """One batch's plan as cells: counts per state, and the cells that are not equal
    (with the values left alone). At org units DHIS2 would not say what it holds at,
    the plan sends everything: those values are counted as not compared."""
    plan = compared.plan
    counts = dict.fromkeys(COUNTED, 0)
    counts["equal"] = plan.unchanged + plan.zeros
    cells: list[Cell] = []
    for planned in plan.send:
        if planned.ref.orgUnit in compared.unread:
            counts["not_compared"] += 1
            continue
        state, computed = _state(planned)
        counts[state] += 1
        cells.append(_cell(compared, planned, state, computed))
    for key, value in compared.left_alone.items():
        de, ou, coc, aoc = key
        counts["left_alone"] += 1
        by = compared.stored.stored_by.get(key)
        cells.append(
            Cell(
                compared.data_set, compared.period, ou, de, coc, aoc, "left_alone", value, None, by
            )
        )
    return counts, cells


def _state(planned: Planned) -> tuple[str, str | None]:
    """A planned value's state and the value CHT computes there."""
    if not planned.clear:
        return ("differs" if planned.held is not None else "only_computed"), planned.ref.value
    if planned.from_engine:  # a computed zero DHIS2 stores as no value, and DHIS2 holds one
        return "differs", "0"
    return "only_in_dhis2", None  # the engine no longer produces it


def _cell(compared: Compared, planned: Planned, state: str, computed: str | None) -> Cell:
    ref, default = planned.ref, compared.default_coc
    coc, aoc = ref.categoryOptionCombo or default, ref.attributeOptionCombo or default
    by = compared.stored.stored_by.get((ref.dataElement, ref.orgUnit, coc, aoc))
    return Cell(
        compared.data_set,
        compared.period,
        ref.orgUnit,
        ref.dataElement,
        coc,
        aoc,
        state,
        planned.held,
        computed,
        by if planned.held is not None else None,
    )


@dataclass
class Audit:
    """What an audit found: per (data set, period) the counts, every cell not equal,
    and the run report its steps made (findings, diagnoses, DHIS2's names)."""

    request: RunRequest
    report: RunReport
    pairs: list[PairAudit]
    cells: list[Cell]

    def totals(self) -> dict[str, int]:
        return {s: sum(p.counts[s] for p in self.pairs) for s in COUNTED}

    @property
    def cht_failed(self) -> bool:
        return any(f.level == "error" for f in self.report.findings)

    @property
    def status(self) -> Status:
        """``differs`` when a cell differs; else ``incomplete`` when something could not
        be compared (DHIS2 or CHT unreadable, rows kept back); else ``agrees``."""
        if any(p.differing for p in self.pairs):
            return "differs"
        if self.cht_failed or not all(p.complete for p in self.pairs):
            return "incomplete"
        return "agrees"

    def repair(self) -> list[str]:
        """The push that makes DHIS2 hold what CHT computes: the pairs that differ (a
        push sends only what differs, so a repair sends exactly the cells listed)."""
        pairs = [(p.data_set, p.period) for p in self.pairs if p.differing]
        return commands_for(pairs, org_unit_tail(self.request))

    def redo(self) -> list[str]:
        """The audit of what could not be compared because a peer failed."""
        failed = Outcome.of(self.report).incomplete
        pairs = [(r.data_set, r.period) for r in failed]
        return commands_for(pairs, org_unit_tail(self.request), AUDIT_COMMAND)


class _Collector:
    """``compare`` for ``pipeline.execute``: each batch's plan, classified as it comes."""

    def __init__(self, also: Compare | None = None) -> None:
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.cells: list[Cell] = []
        self.also = also

    def __call__(self, compared: Compared) -> None:
        if self.also is not None:
            self.also(compared)
        counts, cells = classify(compared)
        total = self.counts.setdefault((compared.data_set, compared.period), {})
        for state, n in counts.items():
            total[state] = total.get(state, 0) + n
        self.cells += cells


def audit(
    request: RunRequest,
    config: RuntimeConfig,
    *,
    transport: Transport | None = None,
    aggregation: MakeAggregation = Aggregation,
    also: Compare | None = None,
) -> Audit:
    """Compare what DHIS2 holds with what CHT computes now, for the request's data sets,
    periods and org units. Raises what ``pipeline.execute`` raises (RunInputError…).
    ``aggregation`` and ``also`` are explain's: the cell's watched aggregation, and each
    batch's ``Compared`` (what DHIS2 holds there)."""
    collected = _Collector(also)
    report = execute(
        request, config, transport=transport, compare=collected, aggregation=aggregation
    )
    whole = request.org_unit is None
    pairs = [_pair(r, collected.counts.get((r.data_set, r.period)), whole) for r in report.results]
    return Audit(request, report, pairs, collected.cells)


def _pair(result: DataSetResult, counts: dict[str, int] | None, whole: bool) -> PairAudit:
    pair = PairAudit(result.data_set, result.period, name=result.data_set_name)
    if counts is not None:
        pair.counts.update(counts)
    pair.unread = sorted(
        {ou for f in result.preflight if f.code == "existing_values_unreadable" for ou in f.ids}
    )
    pair.held = list(result.held_org_units)
    pair.kept_back = list(result.rejected)
    # as ``push.push_job`` decides: every org unit asked for, none held, DHIS2 answered
    pair.swept = whole and not pair.held and result.status != "error"
    if result.status == "error":  # said as a push says it, less its "not pushed: "
        pair.error = (result.error or "not compared").removeprefix("not pushed: ")
    return pair


# -- what scripts read -------------------------------------------------------------------------


def json_audit(audit: Audit) -> dict[str, Any]:
    """The audit as ``audit --json`` and ``GET /audit`` give it. Stable for scripts:
    fields are only ever added."""
    report = audit.report
    return {
        "status": audit.status,
        "agrees": audit.status == "agrees",
        "periods": report.periods,
        "data_sets": report.data_sets,
        "org_unit": audit.request.org_unit,
        "started": report.started.isoformat(),
        "finished": report.finished.isoformat() if report.finished else None,
        "totals": audit.totals(),
        "results": [_pair_json(p) for p in audit.pairs],
        "cells": audit.cells,  # written as objects by ``dumps``
        "findings": [f.model_dump(mode="json") for f in report.findings],
        "diagnoses": [d.model_dump(mode="json") for d in report.diagnoses],
        "repair": audit.repair(),
        "redo": audit.redo(),
    }


def _pair_json(pair: PairAudit) -> dict[str, Any]:
    return {
        "data_set": pair.data_set,
        "data_set_name": pair.name,
        "period": pair.period,
        **pair.counts,
        "held_org_units": pair.held,
        "unread_org_units": pair.unread,
        "kept_back": [r.model_dump(mode="json") for r in pair.kept_back],
        "swept": pair.swept,
        "error": pair.error,
    }


def dumps(data: dict[str, Any]) -> bytes:
    """``json_audit``'s answer as indented JSON (the cells, dataclasses, as objects)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def cells_csv(cells: Iterable[Cell]) -> str:
    """The cells as CSV, one row each, ``CSV_COLUMNS`` first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    row = attrgetter(*CSV_COLUMNS)
    writer.writerows(["" if v is None else v for v in row(cell)] for cell in cells)
    return out.getvalue()
