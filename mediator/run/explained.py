"""What ``explain`` found for one DHIS2 cell, and the shapes it is given in.

``Explained`` is what was found for a cell (``cell.CellAsk``), ``json_explain`` the
shape ``explain --json`` and ``GET /explain?format=json`` give: it is documented in the
operator guide, and fields are only ever added. ``command`` is the explain command of
a cell, as the status page and the OpenHIM transaction name it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mediator.engine.explain import NO_TARGET_OF_THAT_ID, Amount, DocNote, Row

from .cell import CellAsk

EXPLAIN_COMMAND = "python -m mediator explain"
USER_PREFIX = "org.couchdb.user:"
# the words for each reason a doc did not count (the engine's stable codes, and ours)
REASONS = {
    "doc_not_an_object": "not a JSON object",
    "doc_type_not_target": "its type is not 'target'",
    "doc_without_targets": "it has no targets list",
    "doc_without_owner": "it names no owner",
    "owner_not_found": "its owner (the CHW's contact) is not in CHT",
    "owner_deleted": "its owner (the CHW's contact) was deleted",
    "owner_lineage_loop": "its owner's lineage loops",
    "owner_lineage_too_deep": "its owner's lineage is deeper than CHT allows",
    "target_without_value": "the target has no value",
    "target_value_not_numeric": "the target's value is not a number",
    "target_entry_malformed": "a target in it is malformed",
    NO_TARGET_OF_THAT_ID: "it holds no target mapped to this data element",
}
HOW = {
    "total": "its value.total added to the sum",
    "pass": "its value.pass added to the sum",
    "percent": "its pass and total added to the sums the percent is taken from",
}


@dataclass
class RowExplained:
    """One row of the cell (a category option combo of the data element)."""

    row: Row
    choice: str  # total | pass | percent
    computed: int | float
    summed: Amount  # the contributions' sum: value, or for a percent pass and total
    dhis2: str | None = None  # what DHIS2 holds there (None: nothing, or not read)
    state: str = "not_compared"  # equal | differs | only_computed | only_in_dhis2 | …


@dataclass
class Place:
    id: str
    name: str | None
    carries: bool  # carries the org unit (dhis.orgUnit)
    chws: int = 0  # contributing CHWs who sit under it


@dataclass
class Explained:
    """What ``explain`` found for one cell."""

    ask: CellAsk
    period: str
    months: list[str]
    org_unit_name: str | None
    rows: list[RowExplained]
    targets: list[str]  # CHT target ids mapped to the rows
    places: list[Place]
    counted: list[DocNote]
    not_counted: list[DocNote]
    unplaced: list[DocNote]
    elsewhere: dict[str, int]
    expected: int
    synced: int
    missing: list[str]  # usernames expected under the org unit with no doc for the period
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # doc id -> losing revs
    names: dict[str, str] = field(default_factory=dict)  # contact id -> name
    lineages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    dhis2: str | None = None  # why DHIS2's value is not shown (None: shown, or no DHIS2)
    dhis2_read: bool = False
    notes: list[str] = field(default_factory=list)  # what could not be asked of CHT


# -- what scripts read -------------------------------------------------------------------------


def username(user: str | None) -> str | None:
    return user.removeprefix(USER_PREFIX) if user else None


def _note_json(explained: Explained, note: DocNote) -> dict[str, Any]:
    lineage = explained.lineages.get(note.owner or "", ())
    place = lineage[1] if len(lineage) > 1 else None
    out: dict[str, Any] = {
        "doc_id": note.doc_id,
        "rev": note.rev,
        "conflicts": explained.conflicts.get(note.doc_id, []),
        "month": note.month,
        "username": username(note.user),
        "contact_id": note.owner,
        "contact_name": explained.names.get(note.owner or ""),
        "place_id": place,
        "place_name": explained.names.get(place or ""),
        "updated_date": iso_date(note.updated_date),
        "targets": note.targets,
    }
    if note.reason is not None:
        out["reason"] = note.reason
        out["reason_text"] = REASONS.get(note.reason, note.reason)
    else:
        choice = {r.row: r.choice for r in explained.rows}
        out["added"] = [
            {
                "data_element": row[0],
                "value_type": choice.get(row, "total"),
                "category_option_combo": row[1],
                "attribute_option_combo": row[2],
                "value": _tidy(amount.value),
                "pass": _tidy(amount.passed),
                "total": _tidy(amount.total),
            }
            for row, amount in note.added.items()
        ]
    return out


def iso_date(value: Any) -> str | None:
    """``updated_date`` as CHT writes it (milliseconds since 1970) in ISO form."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC).isoformat()
    return str(value) if value is not None else None


def _tidy(amount: float) -> int | float:
    return int(amount) if isinstance(amount, float) and amount.is_integer() else amount


def json_explain(explained: Explained) -> dict[str, Any]:
    """The explanation as ``explain --json`` and ``GET /explain?format=json`` give it."""
    ask = explained.ask
    return {
        "data_set": ask.data_set,
        "period": explained.period,
        "months": explained.months,
        "org_unit": ask.org_unit,
        "org_unit_name": explained.org_unit_name,
        "data_element": ask.data_element,
        "targets": explained.targets,
        "rows": [
            {
                "data_element": r.row[0],
                "category_option_combo": r.row[1],
                "attribute_option_combo": r.row[2],
                "value_type": r.choice,
                "computed": r.computed,
                "summed": {
                    "value": _tidy(r.summed.value),
                    "pass": _tidy(r.summed.passed),
                    "total": _tidy(r.summed.total),
                },
                "dhis2": r.dhis2,
                "state": r.state,
            }
            for r in explained.rows
        ],
        "dhis2_read": explained.dhis2_read,
        "dhis2_note": explained.dhis2,
        "places": [
            {"id": p.id, "name": p.name, "carries_org_unit": p.carries, "contributing_chws": p.chws}
            for p in explained.places
        ],
        "contributions": [_note_json(explained, n) for n in explained.counted],
        "not_counted": [_note_json(explained, n) for n in explained.not_counted],
        "unplaced": [_note_json(explained, n) for n in explained.unplaced],
        "docs_elsewhere": explained.elsewhere,
        "users": {"expected": explained.expected, "synced": explained.synced},
        "missing_users": explained.missing,
        "sources": explained.sources,
        "notes": explained.notes,
    }


def command(data_set: str, period: str, org_unit: str, data_element: str, coc: str | None) -> str:
    """The explain command for a cell, as the transaction and the status page name it."""
    args = ["--data-set", data_set, "--period", period, "--org-unit", org_unit]
    args += ["--data-element", data_element, *(["--category-option-combo", coc] if coc else [])]
    return " ".join([EXPLAIN_COMMAND, *(shlex.quote(a) for a in args)])


def row_command(data_set: str, row: Any) -> str:
    """``command`` for a row DHIS2 rejected (a ``RejectedRow``: the cell it names)."""
    return command(data_set, row.period, row.orgUnit, row.dataElement, row.categoryOptionCombo)


def dumps(data: dict[str, Any]) -> bytes:
    """``json_explain``'s answer as indented JSON."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
