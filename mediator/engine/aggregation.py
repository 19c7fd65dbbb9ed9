"""The numbers: CHT target docs and places → DHIS2 data values. No I/O here.

Behaviour follows CHT's own export (cht-core ``api/src/services/export/dhis.js``,
cht-core 5.2.0, the same since 3.9) except where the README's
"Differences from CHT's built-in export" says otherwise. Target docs are fed in
pages, so memory grows with org units × data elements and with the number of
owners, never with the number of target docs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mediator.model.report import OrgUnitCoverage
from mediator.model.values import DataValue, DataValueSet, ValueChoice

from .mapping import (
    OUTSIDE_DATA_SET,
    SKIP_NO_OWNER,
    SKIP_NO_TARGETS,
    SKIP_NOT_A_TARGET,
    SKIP_NOT_AN_OBJECT,
    SKIP_OWNER_MISSING,
    SKIP_TARGET_MALFORMED,
    SKIP_TARGET_NO_VALUE,
    SKIP_TARGET_NON_NUMERIC,
    EngineError,
    TargetMapping,
    data_set_label,
    place_org_units,
    target_mappings,
)
from .sync import SyncLog

# dataElement, categoryOptionCombo, attributeOptionCombo, orgUnit, value
ValueRow = tuple[str, str | None, str | None, str, int | float]


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):  # NaN / infinities
        return None
    return value


@dataclass(slots=True)
class _Cell:
    """One (org unit, row) sum. Slots: a national month has 120,000 of them, 12 MB
    less than with a ``__dict__`` each (``benchmarks/``)."""

    total: float = 0
    passed: float = 0
    value: float = 0


# long: one object holds a data set's lookup tables (contacts and owners to org units,
# the cells), which places, target docs, coverage and the results all read; split, each
# part would reach into the others' private tables.
@dataclass
class Aggregation:
    """Aggregates one data set for one period from pages of target docs.

    Feed it the places (rows of ``contacts_by_dhis_orgunit``), then for each page
    of target docs the owners' lineages and the docs themselves.
    """

    settings: Mapping[str, Any]
    data_set: str
    period: str  # DHIS2 form, e.g. 202401
    org_unit: str | None = None
    value_choices: Mapping[str, ValueChoice] = field(default_factory=dict)
    # False: who synced is not noted (a preview shows no coverage; per user, it is the one
    # thing that grows with a month's target docs)
    track_sync: bool = True
    source: str = ""  # the CHT instance whose docs it sums (a run names each)
    mappings: list[TargetMapping] = field(init=False)
    skipped: Counter[str] = field(default_factory=Counter, init=False)
    docs_read: int = field(default=0, init=False)
    docs_counted: int = field(default=0, init=False)
    _units_by_contact: dict[str, list[str]] = field(default_factory=dict, init=False)
    _unit_names: dict[str, str] = field(default_factory=dict, init=False)
    _unit_order: list[str] = field(default_factory=list, init=False)
    _units_by_owner: dict[str, tuple[str, ...] | str] = field(default_factory=dict, init=False)
    _unit_sets: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, init=False)
    # per org unit, its cells in the order of ``_rows``: one list per org unit rather than a
    # (unit, row) key per cell, 10 MB less for a national month (benchmarks/)
    _cells: dict[str, list[_Cell]] = field(default_factory=dict, init=False)
    _by_target: dict[str, list[TargetMapping]] = field(default_factory=dict, init=False)
    _rows: list[tuple[str, str | None, str | None]] = field(default_factory=list, init=False)
    _row_choice: dict[tuple[str, str | None, str | None], ValueChoice] = field(
        default_factory=dict, init=False
    )
    # add_target_docs' lookup tables (see _hot_path), derived from the fields above
    _hot: tuple[tuple[int, int], dict[str, Any], dict[tuple[str, ...], Any]] | None = field(
        default=None, init=False, repr=False
    )
    sync: SyncLog = field(default_factory=SyncLog, init=False)  # for coverage

    def __post_init__(self) -> None:
        self.mappings = target_mappings(self.settings, self.data_set)
        for mapping in self.mappings:
            self._by_target.setdefault(mapping.target_id, []).append(mapping)
            if mapping.row not in self._rows:
                self._rows.append(mapping.row)
            choice = self.value_choices.get(mapping.target_id, "total")
            previous = self._row_choice.setdefault(mapping.row, choice)
            if previous != choice:
                raise EngineError(
                    f"targets mapped to {mapping.row[0]} disagree on the value to send "
                    f"({previous} vs {choice}); choose one per data element row"
                )

    # -- places ---------------------------------------------------------------

    def add_places(self, places: Iterable[Mapping[str, Any]]) -> None:
        """Contacts that carry ``dhis``; duplicates (one per view row) are fine."""
        for place in places:
            if not isinstance(place, Mapping) or not place.get("_id"):
                continue
            contact_id = str(place["_id"])
            if contact_id in self._units_by_contact:
                continue
            units = place_org_units(place, self.data_set)
            if self.org_unit is not None:
                # CHT leaks a contact's other org units here; we keep only the one asked for.
                units = [u for u in units if u == self.org_unit]
            if not units:
                continue
            self._units_by_contact[contact_id] = units
            for unit in units:
                if unit not in self._unit_names:
                    self._unit_names[unit] = str(place.get("name") or unit)
                    self._unit_order.append(unit)
                    self._cells[unit] = [_Cell() for _ in self._rows]

    def row_choice(self, row: tuple[str, str | None, str | None]) -> ValueChoice:
        """What a row sends: a target's total, its pass, or a percent of the sums."""
        return self._row_choice[row]

    @property
    def org_units(self) -> list[str]:
        return list(self._unit_order)

    # -- owners ---------------------------------------------------------------

    def add_owners(
        self, owner_ids: Iterable[str], lineages: Mapping[str, tuple[str, ...] | str | None]
    ) -> None:
        """``add_owner`` for each of these owners not placed yet (None if not in
        ``lineages``)."""
        for owner_id in owner_ids:
            if owner_id not in self._units_by_owner:
                self.add_owner(owner_id, lineages.get(owner_id))

    def add_owner(self, owner_id: str, lineage: tuple[str, ...] | str | None) -> None:
        """Record where an owner sits: its lineage ids, a skip reason, or None if missing."""
        if lineage is None:
            self._units_by_owner[owner_id] = SKIP_OWNER_MISSING
            return
        if isinstance(lineage, str):
            self._units_by_owner[owner_id] = lineage
            return
        units: list[str] = []
        for ident in lineage:
            for unit in self._units_by_contact.get(ident, ()):
                if unit not in units:
                    units.append(unit)
        found = tuple(units)
        # thousands of owners sit under the same org units: share one tuple per set
        self._units_by_owner[owner_id] = self._unit_sets.setdefault(found, found)

    # -- target docs ----------------------------------------------------------

    def add_target_docs(self, docs: Iterable[Any]) -> None:
        plan, cells = self._hot_path()
        for doc in docs:
            self.docs_read += 1
            reason = self._add_doc(doc, plan, cells)
            if reason:
                self.skipped[reason] += 1
            else:
                self.docs_counted += 1

    def _hot_path(self) -> tuple[dict[str, Any], dict[tuple[str, ...], Any]]:
        """Per target id, its (row index, value choice) pairs; per owner's org units
        (filled as docs come), their cells by row index. Rebuilt whenever rows or org
        units were added since, so each target in a doc costs a few dict lookups
        instead of tuple keys built and hashed per (org unit, row)."""
        shape = (len(self._rows), len(self._cells))
        if self._hot is None or self._hot[0] != shape:
            index = {row: i for i, row in enumerate(self._rows)}
            plan = {}
            for target, mappings in self._by_target.items():
                entries = tuple((index[m.row], self._row_choice[m.row]) for m in mappings)
                # -1 unless the target feeds one row with its total: the common case
                simple = entries[0][0] if len(entries) == 1 and entries[0][1] == "total" else -1
                plan[target] = (simple, entries)
            self._hot = (shape, plan, {})
        return self._hot[1], self._hot[2]

    def _unit_cells(self, units: tuple[str, ...], cache: dict[tuple[str, ...], Any]) -> Any:
        """For each org unit, its cells by row index (cached per set of org units:
        owners under the same units share one entry)."""
        found = tuple(self._cells[u] for u in units)
        cache[units] = found
        return found

    # long: one function on purpose: it runs for every target of every doc of a national
    # month, and splitting it into calls costs about a fifth of the aggregation time
    # (benchmarks/); its locals are the hot loop's lookup tables.
    def _add_doc(
        self,
        doc: Any,
        plan: dict[str, tuple[int, tuple[tuple[int, str], ...]]],
        cache: dict[tuple[str, ...], Any],
    ) -> str | None:
        # type(x) is dict short-cuts the (slow) Mapping ABC check for what JSON gives
        if type(doc) is not dict and not isinstance(doc, Mapping):
            return SKIP_NOT_AN_OBJECT
        if doc.get("type", "target") != "target":
            return SKIP_NOT_A_TARGET
        targets = doc.get("targets")
        if not isinstance(targets, list):
            return SKIP_NO_TARGETS
        if self.track_sync:
            self.sync.saw(doc)
        owner = doc.get("owner")
        if not isinstance(owner, str) or not owner:
            return SKIP_NO_OWNER
        units = self._units_by_owner.get(owner, SKIP_OWNER_MISSING)
        if isinstance(units, str):
            return units
        if not units:
            return OUTSIDE_DATA_SET
        cells = cache.get(units) or self._unit_cells(units, cache)
        skipped = self.skipped
        for target in targets:
            ident = target.get("id") if type(target) is dict or isinstance(target, Mapping) else 0
            if type(ident) is not str and not isinstance(ident, str):
                skipped[SKIP_TARGET_MALFORMED] += 1
                continue
            found = plan.get(ident)
            if found is None:
                continue
            value = target.get("value")
            if type(value) is not dict and not isinstance(value, Mapping):
                skipped[SKIP_TARGET_NO_VALUE] += 1
                continue
            total = value.get("total")
            if type(total) is not int:
                total = _number(total)
            simple, entries = found
            if simple >= 0 and total is not None:
                for row_cells in cells:
                    row_cells[simple].value += total
                continue
            passed = value.get("pass", 0 if total is not None else None)
            if type(passed) is not int:
                passed = _number(passed)
            for index, choice in entries:
                if choice == "total":
                    amount = total
                elif choice == "pass":
                    amount = passed
                else:
                    amount = total if passed is not None else None
                if amount is None:
                    skipped[SKIP_TARGET_NON_NUMERIC] += 1
                    break
                for row_cells in cells:
                    cell = row_cells[index]
                    cell.value += amount
                    if choice == "percent":
                        cell.total += total
                        cell.passed += passed
        return None

    # -- coverage ---------------------------------------------------------------

    def expect_users(self, users: Mapping[str, str]) -> None:
        """CHT users (username -> their contact id) whose docs this data set expects;
        their contacts' lineages must have been given to ``add_owner``."""
        self.sync.expected.update(users)

    def coverage(self, months: Iterable[str], now: datetime) -> list[OrgUnitCoverage]:
        """Per org unit: users expected under it, how many have a target doc for every
        month of the period, who is missing, and how fresh the newest doc is."""
        wanted = set(months)
        table = {
            unit: OrgUnitCoverage(orgUnit=unit, name=self._unit_names[unit])
            for unit in self._unit_order
        }
        for contact, carried in self._units_by_contact.items():
            for unit in carried:
                table[unit].places.append(contact)
        for username, contact in sorted(self.sync.expected.items()):
            units = self._units_by_owner.get(contact)
            if not isinstance(units, tuple):
                continue
            synced = self.sync.synced(username, wanted)
            newest = self.sync.newest.get(username)
            for unit in units:
                row = table[unit]
                row.expected += 1
                if synced:
                    row.synced += 1
                else:
                    row.missing.append(username)
                if newest:
                    stamp = datetime.fromtimestamp(newest / 1000, UTC)
                    if row.newest_doc is None or stamp > row.newest_doc:
                        row.newest_doc = stamp
        for row in table.values():
            if row.newest_doc is not None:
                row.newest_doc_age_days = round((now - row.newest_doc).total_seconds() / 86400, 1)
        return list(table.values())

    def users_synced(self, months: Iterable[str]) -> tuple[int, int]:
        """(users expected anywhere in this data set, those with a doc for every month)."""
        wanted = set(months)
        expected = synced = 0
        for username, contact in self.sync.expected.items():
            if (
                isinstance(self._units_by_owner.get(contact), tuple)
                and self._units_by_owner[contact]
            ):
                expected += 1
                synced += self.sync.synced(username, wanted)
        return expected, synced

    # -- result ---------------------------------------------------------------

    def value_rows(
        self, *, human_readable: bool = False, units: Iterable[str] | None = None
    ) -> Iterator[ValueRow]:
        """The rows as (dataElement, categoryOptionCombo, attributeOptionCombo, orgUnit,
        value), org unit by org unit; ``units`` picks some (a batch) in this order. What
        ``data_values`` and a streamed preview (``mediator/run/preview.py``) are made of."""
        names = {m.row: m.target_id for m in reversed(self.mappings)}
        percent = {row for row in self._rows if self._row_choice[row] == "percent"}
        for unit in self._unit_order if units is None else units:
            ou = self._unit_names[unit] if human_readable else unit
            for row, cell in zip(self._rows, self._cells[unit], strict=True):
                amount: float
                if row in percent:
                    amount = round(cell.passed * 100 / cell.total) if cell.total else 0
                else:
                    amount = cell.value
                element = names[row] if human_readable else row[0]
                yield element, row[1], row[2], ou, _tidy(amount)

    def data_values(
        self, *, human_readable: bool = False, units: Iterable[str] | None = None
    ) -> list[DataValue]:
        """The rows, org unit by org unit; ``units`` picks some (a batch) in this order."""
        return [
            DataValue(
                dataElement=element,
                categoryOptionCombo=coc,
                attributeOptionCombo=aoc,
                orgUnit=ou,
                value=value,
            )
            for element, coc, aoc, ou, value in self.value_rows(
                human_readable=human_readable, units=units
            )
        ]

    def label(
        self, *, human_readable: bool = False, translations: Mapping[str, str] | None = None
    ) -> str:
        """The data set as an export names it: its id, or its translated name."""
        if not human_readable:
            return self.data_set
        return data_set_label(self.settings, self.data_set, translations)

    def result(self, complete_date: str, *, human_readable: bool = False) -> DataValueSet:
        return DataValueSet(
            dataSet=self.label(human_readable=human_readable),
            completeDate=complete_date,
            period=self.period,
            dataValues=self.data_values(human_readable=human_readable),
        )


def _tidy(amount: float) -> int | float:
    """Whole numbers as ints (DHIS2 INTEGER types reject "5.0")."""
    if isinstance(amount, float) and amount.is_integer():
        return int(amount)
    return amount


def merge_into(total: Aggregation, other: Aggregation) -> None:
    """Add another CHT instance's aggregation of the same data set and period into
    ``total``: a national org unit is fed by every region."""
    for row in other._rows:
        choice = other._row_choice[row]
        if total._row_choice.setdefault(row, choice) != choice:
            raise EngineError(
                f"CHT instances disagree on the value to send for {row[0]} "
                f"({total._row_choice[row]} vs {choice})"
            )
        if row not in total._rows:
            total._rows.append(row)
            total.mappings.extend(m for m in other.mappings if m.row == row)
            for cells in total._cells.values():
                cells.append(_Cell())
    for unit in other._unit_order:
        if unit not in total._unit_names:
            total._unit_names[unit] = other._unit_names[unit]
            total._unit_order.append(unit)
            total._cells[unit] = [_Cell() for _ in total._rows]
    index = {row: i for i, row in enumerate(total._rows)}
    for unit, cells in other._cells.items():
        mine = total._cells[unit]
        for row, cell in zip(other._rows, cells, strict=True):
            into = mine[index[row]]
            into.value += cell.value
            into.total += cell.total
            into.passed += cell.passed
    total.skipped.update(other.skipped)
    total.docs_read += other.docs_read
    total.docs_counted += other.docs_counted
