"""Steps 6 and 7: post a push plan in chunks and map each import summary to rows.

A chunk that fails does not stop the next, except a 403 or DHIS2 gone
(``STOPS_THE_RUN``); every row DHIS2 refused is named with its reason, and rows whose
fate DHIS2 did not say (2.36 conflicts without a row) are never called delivered. Also
the completeness registrations, which are posted the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from mediator.dhis2.client import Dhis2Client
from mediator.dhis2.imports import ImportResult, attribute
from mediator.dhis2.plan import Planned, PushPlan, chunks
from mediator.http.errors import CredentialsRefused, PeerError, TimedOut, Unreachable
from mediator.model.report import ChunkCount, DataSetResult, Finding, RejectedRow, outcome

STOPS_THE_RUN = (Unreachable, TimedOut, CredentialsRefused)  # every later call would fail too


def post_plan(
    dhis2: Dhis2Client,
    data_set: str,
    plan: PushPlan,
    dry_run: bool,
    result: DataSetResult,
    *,
    nothing_to_do: bool = False,
) -> None:
    """6. and 7. Post the plan in chunks, then map each chunk's import summary back to
    the rows it refused. A chunk that fails does not stop the next, except a 403 (the
    same for every chunk) or DHIS2 gone (``STOPS_THE_RUN``)."""
    count_plan(plan, result)
    size = dhis2.settings.chunk_size
    sent = chunks(plan.send, size)
    tally = _Tally()
    for number, chunk in enumerate(sent, start=1):
        name = f"DHIS2 dataValueSets POST (chunk {number}/{len(sent)})"
        result.chunks_sent += 1
        try:
            answer = dhis2.post_values(
                data_set, [p.payload for p in chunk], dry_run=dry_run, name=name
            )
        except CredentialsRefused:
            raise
        except PeerError as exc:
            if _chunk_failed(result, exc, chunk, sent[number:]):
                break
            continue
        _map_answer(result, answer, chunk, (number - 1) * size, tally, f"{number}/{len(sent)}")
    if tally.unattributed:
        unsure = (
            f" {len(result.unconfirmed)} rows are not confirmed: " if result.unconfirmed else " "
        )
        result.preflight.append(
            Finding(
                level="warning",
                code="conflicts_unattributed",
                message=f"{tally.unattributed} DHIS2 conflicts could not be matched to a row."
                + unsure
                + "see the conflicts list; the next run compares and sends what is missing.",
            )
        )
    result.delivered = plan.unchanged + plan.zeros + (0 if dry_run else tally.accepted_engine)
    problems = (
        len(result.rejected) + len(result.unconfirmed) + result.chunks_failed + tally.unattributed
    )
    ok = tally.accepted + plan.unchanged + (1 if nothing_to_do and not plan.send else 0)
    result.status = outcome(ok, problems)
    if result.status == "success":
        result.error = None
    elif result.status == "error":
        result.error = result.error or "DHIS2 accepted none of the values: see the rejected rows"


def count_plan(plan: PushPlan, result: DataSetResult) -> None:
    """What the plan sends, clears and leaves, as the result counts it."""
    result.values_unchanged = plan.unchanged
    result.values_zero = plan.zeros
    result.values_sent = len(plan.send)
    result.values_cleared = plan.cleared


class _Tally:
    """What the chunks of one plan did: rows accepted (and of those, the engine's own,
    not sweep clears), and conflicts that named no row."""

    def __init__(self) -> None:
        self.accepted = self.accepted_engine = self.unattributed = 0


def _chunk_failed(
    result: DataSetResult,
    exc: PeerError,
    chunk: Sequence[Planned],
    rest: Sequence[Sequence[Planned]],
) -> bool:
    """A chunk DHIS2 never answered for: its rows are named as not imported. True when
    the rest cannot go either (a 403, or DHIS2 gone): they are named as not sent."""
    result.chunks_failed += 1
    result.chunks.append(ChunkCount(status=exc.status, error=str(exc)))
    result.rejected += [
        RejectedRow(**p.ref.model_dump(), reason=f"not imported: {exc}") for p in chunk
    ]
    result.error, result.error_status, result.error_kind = str(exc), exc.status, exc.kind
    if exc.status != 403 and not isinstance(exc, STOPS_THE_RUN):
        return False
    for later in rest:
        result.rejected += [
            RejectedRow(**p.ref.model_dump(), reason=f"not sent: {exc}") for p in later
        ]
    return True


def _map_answer(
    result: DataSetResult,
    answer: ImportResult,
    chunk: Sequence[Planned],
    offset: int,
    tally: _Tally,
    label: str,
) -> None:
    """7. One chunk's import summary: counts, conflicts (indexes made run-wide) and the
    rows DHIS2 refused, each with DHIS2's reason."""
    result.counts.add(answer.counts)
    result.chunks.append(
        ChunkCount(
            **answer.counts.model_dump(), status=answer.http_status, conflicts=len(answer.conflicts)
        )
    )
    result.conflicts += [
        c.model_copy(update={"indexes": [offset + i for i in c.indexes]}) for c in answer.conflicts
    ]
    found = attribute(answer, [p.ref for p in chunk])
    if answer.aborted:
        result.chunks_failed += 1
        reason = next(iter(found.rejected.values())).reason if found.rejected else "ERROR"
        result.error = f"DHIS2 refused chunk {label}: {reason}"
    tally.unattributed += len(found.unattributed)
    result.rejected += [found.rejected[i] for i in sorted(found.rejected)]
    kept = [p for i, p in enumerate(chunk) if i not in found.rejected]
    counted = answer.counts.imported + answer.counts.updated + answer.counts.deleted
    if found.unattributed and counted < len(kept):
        # a conflict that names no row (2.36) and fewer rows counted than sent: which
        # rows DHIS2 kept is unknown, so none of them is called delivered (the next run
        # reads what DHIS2 holds and sends what is missing)
        result.unconfirmed += [p.ref for p in kept]
        tally.accepted += counted  # DHIS2 took that many, which ones it does not say
        return
    tally.accepted += len(kept)
    tally.accepted_engine += sum(p.from_engine for p in kept)


def register_completeness(
    dhis2: Dhis2Client, data_set: str, period: str, org_units: list[str]
) -> tuple[list[str], list[Finding]]:
    """Mark the data set complete for the period at each org unit whose values DHIS2
    accepted. Returns the org units registered and findings for those DHIS2 refused."""
    done: list[str] = []
    findings: list[Finding] = []
    batches = chunks(org_units, dhis2.settings.chunk_size)
    for number, batch in enumerate(batches, start=1):
        name = f"DHIS2 completeDataSetRegistrations POST ({number}/{len(batches)})"
        try:
            answer = dhis2.register_completeness(data_set, period, list(batch), name)
        except PeerError as exc:
            findings.append(not_complete(data_set, period, list(batch), str(exc)))
            continue
        refused = {c.object for c in answer.conflicts if c.object and c.object in batch}
        if answer.aborted:
            refused = set(batch)
        done += [ou for ou in batch if ou not in refused]
        if refused:
            reasons = "; ".join(c.value for c in answer.conflicts[:5])
            findings.append(not_complete(data_set, period, sorted(refused), reasons))
    return done, findings


def not_complete(data_set: str, period: str, org_units: list[str], why: str) -> Finding:
    return Finding(
        level="warning",
        code="completeness_not_registered",
        message=f"DHIS2 did not mark data set {data_set} complete for {period} at "
        f"{', '.join(org_units)}: {why}",
        ids=org_units,
    )
