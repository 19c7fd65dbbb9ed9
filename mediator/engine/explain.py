"""Why a number is what it is: the aggregation of one org unit, watched doc by doc.

``WatchedAggregation`` is an ``Aggregation`` (the one code path that decides a number)
that, for each target doc, notes what the aggregation itself did with it: the amount it
added to each watched cell (read off the cells before and after, never recomputed), the
skip reason it gave, or that the doc is elsewhere. Only ``explain`` makes one; a
preview or a push uses ``Aggregation`` and pays nothing for this.

What it notes per doc is small (ids, revision, dates, the watched targets' values), so
a month of an org unit's docs stays in memory; docs under other org units are counted,
not kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .aggregation import Aggregation
from .mapping import (
    OUTSIDE_DATA_SET,
    SKIP_LINEAGE_DEEP,
    SKIP_LINEAGE_LOOP,
    SKIP_NO_OWNER,
    SKIP_OWNER_MISSING,
)

Row = tuple[str, str | None, str | None]  # dataElement, categoryOptionCombo, aoc

# The doc belongs nowhere: no owner, or an owner the aggregation could not place.
UNPLACED = frozenset({SKIP_NO_OWNER, SKIP_OWNER_MISSING, SKIP_LINEAGE_LOOP, SKIP_LINEAGE_DEEP})
# Not an engine skip reason: the doc counted, but holds no target mapped to the cell.
NO_TARGET_OF_THAT_ID = "no_target_of_that_id"


@dataclass(slots=True)
class Amount:
    """What one doc added to one cell: to its sum (``value``), or for a percent to the
    summed ``passed`` and ``total`` the percent is taken from."""

    value: float = 0
    passed: float = 0
    total: float = 0

    def __bool__(self) -> bool:
        return bool(self.value or self.passed or self.total)


@dataclass
class DocNote:
    """One target doc under the watched org unit (or placed nowhere), as read."""

    doc_id: str
    rev: str | None
    owner: str | None
    user: str | None
    updated_date: Any
    month: str  # of its id, YYYY-MM
    targets: dict[str, Any]  # the watched targets it holds: id -> value, as in the doc
    added: dict[Row, Amount] = field(default_factory=dict)  # counted: what it added
    reason: str | None = None  # did not count: why (an engine skip reason, or ours)


@dataclass
class Watched:
    """What the watched aggregation saw of one org unit's cells, doc by doc."""

    org_unit: str
    rows: list[Row]
    counted: list[DocNote] = field(default_factory=list)
    not_counted: list[DocNote] = field(default_factory=list)
    unplaced: list[DocNote] = field(default_factory=list)
    elsewhere: Counter[str] = field(default_factory=Counter)  # docs of other org units
    lineages: dict[str, tuple[str, ...]] = field(default_factory=dict)  # owners under it


def _targets_of(doc: Mapping[str, Any], wanted: set[str]) -> dict[str, Any]:
    targets = doc.get("targets")
    if not isinstance(targets, list):
        return {}
    return {
        t["id"]: t.get("value")
        for t in targets
        if isinstance(t, Mapping) and isinstance(t.get("id"), str) and t["id"] in wanted
    }


def _month(doc_id: Any) -> str:
    """The month of a target doc's id, ``target~YYYY-MM~…`` (what CHT's reader pages by)."""
    parts = doc_id.split("~") if isinstance(doc_id, str) else []
    return parts[1] if len(parts) > 2 else ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class WatchedAggregation(Aggregation):
    """An ``Aggregation`` of one org unit (``org_unit``, required) that notes, for the
    cells of ``data_element`` (one ``category_option_combo``, or all), what each doc
    did to them."""

    data_element: str | None = None  # None: every data element the data set maps
    category_option_combo: str | None = None
    watched: Watched = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.org_unit is None:
            raise ValueError("a watched aggregation is of one org unit")
        rows = [
            row
            for row in self._rows
            if self.data_element in (None, row[0])
            and (self.category_option_combo is None or row[1] == self.category_option_combo)
        ]
        self.watched = Watched(self.org_unit, rows)
        self._watched_targets = {m.target_id for m in self.mappings if m.row in rows}

    def add_owner(self, owner_id: str, lineage: tuple[str, ...] | str | None) -> None:
        super().add_owner(owner_id, lineage)
        if isinstance(lineage, tuple) and self._units_by_owner.get(owner_id):
            self.watched.lineages[owner_id] = lineage  # the places it counts through

    def add_target_docs(self, docs: Iterable[Any]) -> None:
        """Each doc fed to ``Aggregation.add_target_docs`` in two parts, its watched
        targets first, then the others, the watched cells read before and after the
        first: what the doc added is what the aggregation added, and a doc it did not
        count carries the aggregation's own reason (for the doc, or for its watched
        targets). The doc's own counters are as if it had been fed whole."""
        cells = self._cells.get(self.watched.org_unit)
        if cells is None:  # no place carries the org unit: no doc can count there
            super().add_target_docs(docs)
            return
        index = [self._rows.index(row) for row in self.watched.rows]
        for doc in docs:
            mine, rest = self._split(doc)
            before = [(cells[i].value, cells[i].passed, cells[i].total) for i in index]
            skipped, counted = Counter(self.skipped), self.docs_counted
            super().add_target_docs([mine])
            new = self.skipped - skipped
            if self.docs_counted == counted:  # the doc as a whole did not count: one reason
                self._skipped(doc, next(iter(new)))
                continue
            if rest is not None:  # the doc's other targets, counted as one doc with these
                super().add_target_docs([rest])
                self.docs_read -= 1
                self.docs_counted -= 1
            if not self._under(doc):
                self.watched.elsewhere["other_org_units"] += 1
                continue
            note = self._note(doc)
            for (value, passed, total), i, row in zip(
                before, index, self.watched.rows, strict=True
            ):
                cell = cells[i]
                amount = Amount(cell.value - value, cell.passed - passed, cell.total - total)
                if amount or row_has_target(note, self, row):
                    note.added[row] = amount
            held = len(mine.get("targets", ())) if isinstance(mine, Mapping) else 0
            if not note.targets:
                note.reason = NO_TARGET_OF_THAT_ID
            elif new and new.total() >= held:  # every watched target of it was refused
                note.reason = next(iter(new))
            (self.watched.not_counted if note.reason else self.watched.counted).append(note)

    def _split(self, doc: Any) -> tuple[Any, Any]:
        """The doc with only its watched targets, and with only the others (None when
        it has none, or its targets are no list: then the first is the doc itself)."""
        targets = doc.get("targets") if isinstance(doc, Mapping) else None
        if not isinstance(targets, list):
            return doc, None
        mine: list[Any] = []
        others: list[Any] = []
        for target in targets:
            ident = target.get("id") if isinstance(target, Mapping) else None
            (mine if isinstance(ident, str) and ident in self._watched_targets else others).append(
                target
            )
        if not others:
            return doc, None
        return {**doc, "targets": mine}, {**doc, "targets": others}

    def _skipped(self, doc: Any, reason: str) -> None:
        if reason == OUTSIDE_DATA_SET:
            self.watched.elsewhere[reason] += 1
        elif reason in UNPLACED:
            note = self._note(doc)
            note.reason = reason
            self.watched.unplaced.append(note)
        elif isinstance(doc, Mapping) and self._under(doc):
            note = self._note(doc)
            note.reason = reason
            self.watched.not_counted.append(note)
        else:
            self.watched.elsewhere[reason] += 1

    def _under(self, doc: Mapping[str, Any]) -> bool:
        """Whether the doc's owner sits under the watched org unit (the engine's table)."""
        owner = doc.get("owner")
        placed = self._units_by_owner.get(owner) if isinstance(owner, str) else None
        return isinstance(placed, tuple) and self.watched.org_unit in placed

    def _note(self, doc: Any) -> DocNote:
        doc = doc if isinstance(doc, Mapping) else {}
        return DocNote(
            doc_id=str(doc.get("_id")),
            rev=_text(doc.get("_rev")),
            owner=_text(doc.get("owner")),
            user=_text(doc.get("user")),
            updated_date=doc.get("updated_date"),
            month=_month(doc.get("_id")),
            targets=_targets_of(doc, self._watched_targets),
        )


def row_has_target(note: DocNote, agg: Aggregation, row: Row) -> bool:
    """Whether the doc holds a target mapped to ``row`` (it then counted, maybe as 0)."""
    return any(m.row == row and m.target_id in note.targets for m in agg.mappings)
