"""Explain one DHIS2 cell: the number, what DHIS2 holds, and every doc behind it.

A cell is a data element (and category option combo) of a data set at an org unit for a
period. Explain runs what ``preview`` runs, or with DHIS2 configured what ``audit`` runs
(``run.audit``: the push's own steps up to its plan, nothing posted), for that one org
unit, with the engine's ``WatchedAggregation``: the same code path decides the number,
and notes what each doc did to it. Then it asks CHT about what it noted: the places'
names, each listed doc's conflicting revisions (``_all_docs?conflicts=true``), and
whether an owner that could not be found was deleted.

``json_explain`` is the shape ``explain --json`` and ``GET /explain?format=json`` give;
it is documented in the operator guide, and fields are only ever added.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mediator.cht import revisions
from mediator.cht.client import ChtReader
from mediator.engine.aggregation import Aggregation
from mediator.engine.explain import (
    NO_TARGET_OF_THAT_ID,
    Amount,
    DocNote,
    Row,
    WatchedAggregation,
)
from mediator.http.errors import PeerError
from mediator.http.transport import Transport
from mediator.model.report import Finding
from mediator.model.values import utcnow
from mediator.settings.config import RuntimeConfig

from .audit import Audit, audit, classify
from .cell import CellAsk
from .jobs import Job
from .pipeline import compute
from .push import Compared
from .request import RunInputError

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


def explain(
    ask: CellAsk, config: RuntimeConfig, *, transport: Transport | None = None
) -> Explained:
    """Explain the cell. Raises RunInputError (one line: a data set, org unit or data
    element CHT does not know; a period of another type) and PeerError when CHT cannot
    be read."""
    made: list[WatchedAggregation] = []

    def watched(*args: Any, **kwargs: Any) -> Aggregation:
        kwargs.update(
            data_element=ask.data_element, category_option_combo=ask.category_option_combo
        )
        agg = WatchedAggregation(*args, **kwargs)
        made.append(agg)
        return agg

    compared: list[Compared] = []
    found: Audit | None = None
    job: Job
    if config.dhis2 is not None:
        found = audit(
            ask.request, config, transport=transport, aggregation=watched, also=compared.append
        )
        failed = _cht_failure(found.report.findings)
        if failed and not made:
            raise PeerError("CHT", failed)
        result = found.report.results[0] if found.report.results else None
        if result is not None and result.status == "skipped" and not made:
            raise RunInputError(result.error or f"data set {ask.data_set} cannot be explained")
        job = Job(ask.data_set, ask.request.periods[0], aggs={a.source: a for a in made})
    else:
        computed = compute(ask.request, config, aggregation=watched)
        job = computed.jobs[0]
        if job.problem:
            raise RunInputError(job.problem)
        if job.read_error:
            raise PeerError("CHT", job.read_error)
    return _explained(ask, config, job, made, found, compared)


def _cht_failure(findings: list[Finding]) -> str | None:
    return next((f.message for f in findings if f.level == "error"), None)


def _explained(
    ask: CellAsk,
    config: RuntimeConfig,
    job: Job,
    made: list[WatchedAggregation],
    found: Audit | None,
    compared: list[Compared],
) -> Explained:
    if not made:
        raise RunInputError(f"no CHT instance defines data set {ask.data_set}")
    first = made[0]
    rows = first.watched.rows
    if not rows:
        raise RunInputError(_unknown_element(ask, first))
    tags = [m.tag for m in job.period.months]
    now = ask.request.as_of or utcnow()
    coverage = [
        row for agg in made for row in agg.coverage(tags, now) if row.orgUnit == ask.org_unit
    ]
    if not coverage:
        raise RunInputError(
            f"org unit {ask.org_unit}: no CHT place carries it (dhis.orgUnit) for data set "
            f"{ask.data_set}; check the id against the dhis.orgUnit of CHT's places"
        )
    merged = job.merged
    values = {
        (de, coc, aoc): value
        for de, coc, aoc, _ou, value in merged.value_rows(units=[ask.org_unit])
    }
    counted = [n for a in made for n in a.watched.counted]
    explained = Explained(
        ask=ask,
        period=job.period.iso,
        months=tags,
        org_unit_name=coverage[0].name,
        rows=[
            RowExplained(row, merged.row_choice(row), values[row], _summed(counted, row))
            for row in rows
        ],
        targets=sorted({m.target_id for m in first.mappings if m.row in rows}),
        places=[],
        counted=counted,
        not_counted=[n for a in made for n in a.watched.not_counted],
        unplaced=[n for a in made for n in a.watched.unplaced],
        elsewhere=dict(sum((Counter(a.watched.elsewhere) for a in made), Counter())),
        expected=sum(c.expected for c in coverage),
        synced=sum(c.synced for c in coverage),
        missing=[u for c in coverage for u in c.missing],
        lineages={k: v for a in made for k, v in a.watched.lineages.items()},
        sources=[a.source for a in made],
    )
    if found is not None:
        _dhis2_side(explained, found, compared)
    _ask_cht(explained, config, made, [p for c in coverage for p in c.places])
    return explained


def _unknown_element(ask: CellAsk, agg: Aggregation) -> str:
    elements = sorted({m.row[0] for m in agg.mappings})
    if ask.category_option_combo is not None and ask.data_element in elements:
        combos = sorted(
            {str(m.row[1]) for m in agg.mappings if m.row[0] == ask.data_element and m.row[1]}
        )
        return (
            f"category option combo {ask.category_option_combo}: no CHT target of data set "
            f"{ask.data_set} maps to it for data element {ask.data_element} (mapped: "
            f"{', '.join(combos) or 'the default combo only'})"
        )
    return (
        f"data element {ask.data_element}: no CHT target of data set {ask.data_set} maps to "
        f"it (tasks.targets.items[].dhis); mapped: {', '.join(elements) or 'none'}"
    )


def _summed(notes: list[DocNote], row: Row) -> Amount:
    total = Amount()
    for note in notes:
        amount = note.added.get(row)
        if amount is not None:
            total.value += amount.value
            total.passed += amount.passed
            total.total += amount.total
    return total


def _dhis2_side(explained: Explained, found: Audit, compared: list[Compared]) -> None:
    """DHIS2's value at each row, and the row's state as the audit decides it (the push
    planner's own comparison)."""
    result = found.report.results[0] if found.report.results else None
    if result is not None and result.status == "error":
        explained.dhis2 = (result.error or "DHIS2 could not be read").removeprefix("not pushed: ")
        return
    if result is not None and explained.ask.org_unit in result.held_org_units:
        explained.dhis2 = (
            "held back by the coverage threshold (MEDIATOR_COVERAGE_THRESHOLD): a push "
            "leaves this org unit alone, so its cells are not compared"
        )
    ou = explained.ask.org_unit
    for batch in compared:
        if ou in batch.unread:
            explained.dhis2 = f"DHIS2 would not say what it holds at org unit {ou}"
            continue
        explained.dhis2_read = True
        _, cells = classify(batch)
        states = {
            (c.data_element, c.category_option_combo, c.attribute_option_combo): c.state
            for c in cells
            if c.org_unit == ou
        }
        default = batch.default_coc
        for row in explained.rows:
            de, coc, aoc = row.row
            key = (de, coc or default, aoc or default)
            row.dhis2 = batch.stored.held.get((de, ou, key[1], key[2]))
            row.state = states.get(key, "equal")


def _ask_cht(
    explained: Explained,
    config: RuntimeConfig,
    made: list[WatchedAggregation],
    carriers: list[str],
) -> None:
    """What the aggregation does not need but a person does: the places' names, the
    listed docs' conflicting revisions, and which unfound owners were deleted."""
    sources = {s.name: s for s in config.sources()}
    several = len(made) > 1
    chws: Counter[str] = Counter()
    for owner, lineage in explained.lineages.items():
        if any(n.owner == owner for n in explained.counted):
            chws.update(lineage[1:])
    ids_by_source: dict[str, list[str]] = {}
    for agg in made:
        notes = [*agg.watched.counted, *agg.watched.not_counted, *agg.watched.unplaced]
        ids_by_source[agg.source] = [n.doc_id for n in notes]
    for agg in made:
        source = sources.get(agg.source)
        if source is None:
            continue
        reader = ChtReader(source.settings)
        try:
            place_ids = list(
                dict.fromkeys(
                    [c.split(":", 1)[1] if several and ":" in c else c for c in carriers]
                    + [i for lin in agg.watched.lineages.values() for i in lin]
                )
            )
            for ident, doc in reader.docs_by_id(place_ids).items():
                if doc and isinstance(doc.get("name"), str):
                    explained.names[ident] = doc["name"]
            explained.conflicts.update(revisions.conflicts(reader, ids_by_source[agg.source]))
            unfound = [n for n in agg.watched.unplaced if n.reason == "owner_not_found"]
            deleted = revisions.deleted(reader, [n.owner for n in unfound if n.owner])
            for note in unfound:
                if note.owner in deleted:
                    note.reason = "owner_deleted"
        except PeerError as exc:
            explained.notes.append(f"CHT ({agg.source}) could not say more: {exc}")
        finally:
            reader.close()
    carried = set(carriers)
    ordered = list(dict.fromkeys([*carriers, *chws]))
    explained.places = [
        Place(i, explained.names.get(i), i in carried, chws.get(i, 0)) for i in ordered
    ]


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
        out["added"] = [
            {
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


def dumps(data: dict[str, Any]) -> bytes:
    """``json_explain``'s answer as indented JSON."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def value_text(value: Any) -> str:
    """A target's value as the doc holds it, in JSON (``{"pass": 2, "total": 3}``)."""
    return orjson.dumps(value).decode()


def command(data_set: str, period: str, org_unit: str, data_element: str, coc: str | None) -> str:
    """The explain command for a cell, as the transaction and the status page name it."""
    tail = f" --category-option-combo {coc}" if coc else ""
    return (
        f"{EXPLAIN_COMMAND} --data-set {data_set} --period {period} --org-unit {org_unit} "
        f"--data-element {data_element}{tail}"
    )
