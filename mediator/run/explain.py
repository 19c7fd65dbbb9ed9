"""Explain one DHIS2 cell: the number, what DHIS2 holds, and every doc behind it.

A cell is a data element (and category option combo) of a data set at an org unit for a
period. Explain runs what ``preview`` runs, or with DHIS2 configured what ``audit`` runs
(``run.audit``: the push's own steps up to its plan, nothing posted, the planner's own
equality), for that one org unit, with the engine's ``WatchedAggregation``: the same
code path decides the number, and notes what each doc did to it. Then it asks CHT, in
one ``_all_docs?conflicts=true`` read, what the aggregation does not need but a person
does: the places' names, each listed doc's losing revisions, and whether an owner that
could not be found was deleted. The shapes it is given in: ``run.explained``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mediator.cht.client import ChtReader
from mediator.cht.revisions import doc_rows
from mediator.engine.aggregation import Aggregation
from mediator.engine.explain import Amount, DocNote, Row, WatchedAggregation
from mediator.http.errors import PeerError
from mediator.http.transport import Transport
from mediator.model.report import Finding
from mediator.model.values import utcnow
from mediator.settings.config import RuntimeConfig

from .audit import Audit, audit, classify
from .cell import CellAsk
from .explained import Explained, Place, RowExplained
from .jobs import Job
from .pipeline import compute
from .push import Compared
from .request import RunInputError

__all__ = ["explain"]


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
    if ask.data_element is None:
        return f"data set {ask.data_set}: no CHT target maps to any of its data elements"
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
    chws: Counter[str] = Counter()  # per place from the CHW's up to the carrier's
    bare = {c.split(":", 1)[1] if several and ":" in c else c for c in carriers}
    counted = {n.owner for n in explained.counted}
    for owner, lineage in explained.lineages.items():
        top = next((i for i, ident in enumerate(lineage) if ident in bare), len(lineage) - 1)
        if owner in counted:
            chws.update(lineage[1 : top + 1])
    ids_by_source: dict[str, list[str]] = {}
    for agg in made:
        notes = [*agg.watched.counted, *agg.watched.not_counted, *agg.watched.unplaced]
        ids_by_source[agg.source] = [n.doc_id for n in notes]
    for agg in made:
        source = sources.get(agg.source)
        if source is None:
            continue
        place_ids = [c.split(":", 1)[1] if several and ":" in c else c for c in carriers]
        place_ids += [i for lineage in agg.watched.lineages.values() for i in lineage]
        unfound = [n for n in agg.watched.unplaced if n.reason == "owner_not_found"]
        ids = [*ids_by_source[agg.source], *place_ids, *(n.owner for n in unfound if n.owner)]
        reader = ChtReader(source.settings)
        try:
            rows = doc_rows(reader, list(dict.fromkeys(ids)))
        except PeerError as exc:
            explained.notes.append(f"CHT ({agg.source}) could not say more: {exc}")
            continue
        finally:
            reader.close()
        deleted = set()
        for row in rows:
            key, doc, value = row.get("key"), row.get("doc"), row.get("value")
            if isinstance(value, dict) and value.get("deleted") is True:
                deleted.add(key)
            if not isinstance(key, str) or not isinstance(doc, dict):
                continue
            if isinstance(doc.get("name"), str):
                explained.names[key] = doc["name"]
            if isinstance(doc.get("_conflicts"), list) and doc["_conflicts"]:
                explained.conflicts[key] = [str(r) for r in doc["_conflicts"]]
        for note in unfound:
            if note.owner in deleted:
                note.reason = "owner_deleted"
    ordered = list(dict.fromkeys([*bare, *chws]))
    explained.places = [
        Place(i, explained.names.get(i), i in bare, chws.get(i, 0)) for i in ordered
    ]
