"""Step 5 of a run: what to send so that DHIS2 ends holding exactly what was computed.

Pure: no I/O. Given the rows that passed preflight and what DHIS2 holds, it decides
which values to send, which to clear with ``""`` (the one clear every DHIS2 from 2.36
to 2.42 honours with CREATE_AND_UPDATE), which are already right, and which stored
values elsewhere are this integration's to sweep. A payload looks like::

    {"dataElement": "kB0ZBFisE0e", "period": "202401", "orgUnit": "DiszpKrYNg8",
     "categoryOptionCombo": "HllvX50cXC0", "value": "12"}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from pydantic import BaseModel, Field

from mediator.model.report import RowRef

from .metadata import Combo, Key, normalise_stored
from .preflight import ReadyValue

T = TypeVar("T")


class Planned(BaseModel):
    """One value to post and where it came from."""

    ref: RowRef
    payload: dict[str, str]
    clear: bool = False
    from_engine: bool = True  # False: a key DHIS2 holds that the engine no longer produces
    held: str | None = None  # what DHIS2 held at the key, as read (None: nothing, or unread)


class PushPlan(BaseModel):
    """The difference between what the engine computed and what DHIS2 holds."""

    send: list[Planned] = Field(default_factory=list)
    unchanged: int = 0  # already in DHIS2 with this value
    zeros: int = 0  # zeros DHIS2 stores as no value, and holds none of: nothing to send

    @property
    def cleared(self) -> int:
        return sum(1 for p in self.send if p.clear)


def _payload(
    period: str, de: str, ou: str, coc: str | None, aoc: str | None, value: str
) -> dict[str, str]:
    payload = {"dataElement": de, "period": period, "orgUnit": ou}
    if coc:
        payload["categoryOptionCombo"] = coc
    if aoc:
        payload["attributeOptionCombo"] = aoc
    payload["value"] = value
    return payload


def _planned(
    payload: dict[str, str], *, clear: bool, held: str | None, from_engine: bool = True
) -> Planned:
    return Planned(
        ref=RowRef(**payload), payload=payload, clear=clear, from_engine=from_engine, held=held
    )


def plan_push(
    period: str,
    ready: Sequence[ReadyValue],
    held: dict[Key, str],
    *,
    mapped: set[Combo],
    protected: set[Key],
    unread: frozenset[str] | set[str] = frozenset(),
) -> PushPlan:
    """Only what differs: new or changed values, clears for values that are now a
    zero DHIS2 would not store, and clears for mapped keys the engine no longer
    produces. ``protected`` keys (refused before posting) are never cleared.

    At ``unread`` org units (what DHIS2 holds there could not be read) nothing can be
    called unchanged: every computed value is sent, and every zero as a clear, so no
    stale number stays whatever DHIS2 held."""
    plan = PushPlan()
    produced: set[Key] = set()
    for item in ready:
        produced.add(item.key)
        row = item.row
        blind = row.orgUnit in unread
        current = held.get(item.key)
        fields = (period, row.dataElement, row.orgUnit)
        combos = (row.categoryOptionCombo, row.attributeOptionCombo)
        if item.zero_insignificant:
            if current is None and not blind:
                plan.zeros += 1  # DHIS2 holds nothing, which is what such a zero means
            else:
                # "0" would be skipped before 2.36.7 and leave the old value; "" deletes on all
                plan.send.append(_planned(_payload(*fields, *combos, ""), clear=True, held=current))
        elif (
            not blind
            and current is not None
            and normalise_stored(current, item.value_type) == item.text
        ):
            plan.unchanged += 1
        else:
            plan.send.append(
                _planned(_payload(*fields, *combos, item.text), clear=False, held=current)
            )
    for key in held:
        de, ou, coc, aoc = key
        if key in produced or key in protected or (de, coc, aoc) not in mapped:
            continue
        plan.send.append(
            _planned(
                _payload(period, de, ou, coc, aoc, ""),
                clear=True,
                held=held[key],
                from_engine=False,
            )
        )
    return plan


def sweep_org_units(assigned: Iterable[str], owned: set[str]) -> list[str]:
    """Org units assigned to the data set that CHT no longer maps: where stale values of
    this integration may remain."""
    return [ou for ou in assigned if ou not in owned]


def own_values(
    held: dict[Key, str], stored_by: dict[Key, str], foreign: set[str], me: str | None
) -> dict[Key, str]:
    """At org units CHT does not map (``foreign``), only the values this integration user
    stored: a number a person typed in DHIS2 is never cleared."""
    return {
        key: value
        for key, value in held.items()
        if key[1] not in foreign or (me is not None and stored_by.get(key) == me)
    }


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
