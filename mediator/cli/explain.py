"""explain: why one DHIS2 cell holds the number it does, on a terminal or as JSON.

On a terminal: the number CHT computes beside what DHIS2 holds, the places of the
roll-up, each contributing CHW's doc and what it added, the docs that did not count and
why, and the CHWs expected who have no doc. ``--json`` (the default when the output is a
file or a pipe) prints ``run.explain.json_explain``. Exit status 0 explained (whatever
DHIS2 holds: ``audit`` is the command that judges), 2 bad input or configuration, or a
cell no CHT place or target maps to, or CHT unreadable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mediator.http.errors import PeerError
from mediator.model.periods import PeriodError
from mediator.run.cell import CellAsk
from mediator.run.explain import explain
from mediator.run.explained import (
    HOW,
    REASONS,
    Explained,
    dumps,
    iso_date,
    json_explain,
    username,
)
from mediator.run.request import CLI_NAMES, RunInputError
from mediator.settings.config import RuntimeConfig
from mediator.settings.variables import ConfigError

from .exits import EXIT_OK, fail, scope_fields

NAMES = {
    **CLI_NAMES,
    "dataElement": "--data-element",
    "categoryOptionCombo": "--category-option-combo",
}
SHOWN = 200  # docs listed per section on a terminal; --json lists them all


def run_explain(args: argparse.Namespace) -> int:
    try:  # without DHIS2_URL, CHT's side alone (as preview): DHIS2's value is not shown
        config = RuntimeConfig.from_env(need_dhis2=bool(os.environ.get("DHIS2_URL", "").strip()))
    except ConfigError as exc:
        return fail(str(exc))
    fields = scope_fields(
        args, dataElement=args.data_element, categoryOptionCombo=args.category_option_combo
    )
    try:  # without DHIS2, CHT's own ids, as preview takes them
        ask = CellAsk.from_fields(fields, names=NAMES, dhis2_ids=config.dhis2 is not None)
        found = explain(ask, config)
    except (RunInputError, PeriodError, PeerError) as exc:
        return fail(str(exc))
    if args.json or (not args.summary and not sys.stdout.isatty()):
        sys.stdout.flush()
        sys.stdout.buffer.write(dumps(json_explain(found)))
        sys.stdout.flush()
    else:
        sys.stdout.write(text(found))
    return EXIT_OK


# -- in words ----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def text(found: Explained) -> str:
    """The explanation in words, for a terminal and the explain page."""
    return "\n".join(lines(found)) + "\n"


def lines(found: Explained) -> list[str]:
    ask = found.ask
    where = found.org_unit_name or ask.org_unit
    out = [
        f"{f'Data element {ask.data_element}' if ask.data_element else 'Every data element'}"
        f" of data set {ask.data_set}, {found.period}, at "
        f"{where} ({ask.org_unit})",
    ]
    if len(found.months) > 1:
        out.append(
            f"  a {len(found.months)}-month period: the months {', '.join(found.months)} summed"
        )
    out.append(f"  CHT targets mapped to it: {', '.join(found.targets)}")
    for row in found.rows:
        combo = row.row[1] or "default combo"
        combo = combo if ask.data_element else f"{row.row[0]} {combo}"
        dhis2 = _dhis2(found, row.dhis2, row.state)
        summed = (
            f"the contributions' pass {_n(row.summed.passed)} of total {_n(row.summed.total)}"
            if row.choice == "percent"
            else f"the contributions sum to {_n(row.summed.value)}"
        )
        out.append(f"  {combo}: CHT computes {row.computed} ({summed}); {dhis2}")
    if found.dhis2:
        out.append(f"  DHIS2: {found.dhis2}")
    out.append("The roll-up (places under the org unit that contributed):")
    for place in found.places:
        role = "carries the org unit" if place.carries else f"{place.chws} contributing CHW(s)"
        out.append(f"  {place.name or '(unnamed)'} ({place.id}): {role}")
    return out + _docs(found)


def _docs(found: Explained) -> list[str]:
    out = [f"Contributing CHWs: {len(found.counted)} target doc(s)"]
    choice = {r.row: r.choice for r in found.rows}
    for note in found.counted[:SHOWN]:
        added = ", ".join(
            f"{(row[1] or 'default')}: +{_n(a.passed)}/{_n(a.total)}"
            if choice[row] == "percent"
            else f"{(row[1] or 'default')}: +{_n(a.value)}"
            for row, a in note.added.items()
        )
        how = "; ".join(sorted({HOW[choice[row]] for row in note.added}))
        out.append(
            f"  {username(note.user) or '?'} (contact {note.owner}): {note.doc_id} rev {note.rev}"
            f"{_conflicts(found, note.doc_id)}, updated {_updated(note.updated_date)}, "
            f"targets {_targets(note.targets)}: {added} ({how})"
        )
    out += _more(found.counted)
    if found.not_counted:
        out.append(f"Docs under the org unit that did not count: {len(found.not_counted)}")
        for note in found.not_counted[:SHOWN]:
            out.append(
                f"  {note.doc_id} ({username(note.user) or '?'}): "
                f"{REASONS.get(note.reason or '', note.reason)}"
            )
        out += _more(found.not_counted)
    if found.unplaced:
        out.append(
            f"Docs of the period no place could be found for (they count nowhere): "
            f"{len(found.unplaced)}"
        )
        for note in found.unplaced[:SHOWN]:
            out.append(
                f"  {note.doc_id} ({username(note.user) or '?'}, contact {note.owner}): "
                f"{REASONS.get(note.reason or '', note.reason)}"
            )
        out += _more(found.unplaced)
    out.append(
        f"CHWs expected under the org unit: {found.expected}, with a doc for every month: "
        f"{found.synced}"
    )
    if found.missing:
        out.append(f"  no target doc for the period: {', '.join(found.missing)}")
    out += [f"Note: {note}" for note in found.notes]
    return out


def _dhis2(found: Explained, value: str | None, state: str) -> str:
    if not found.dhis2_read:
        return "DHIS2's value not read" + (" (DHIS2_URL is not set)" if not found.dhis2 else "")
    held = f"DHIS2 holds {value}" if value is not None else "DHIS2 holds nothing"
    verdict = {
        "equal": "equal",
        "differs": "they differ: a push would send CHT's value",
        "only_computed": "a push would send CHT's value",
        "only_in_dhis2": "a push would clear it",
    }.get(state, state)
    return f"{held} ({verdict})"


def _conflicts(found: Explained, doc_id: str) -> str:
    losing = found.conflicts.get(doc_id)
    if not losing:
        return ""
    return f" (conflicting revisions {', '.join(losing)} did not count: CouchDB's winner did)"


def _updated(value: Any) -> str:
    return iso_date(value) or "unknown"


def _targets(targets: dict[str, Any]) -> str:
    return (
        ", ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in targets.items())
        or "none"
    )


def _more(notes: list[Any]) -> list[str]:
    return (
        [f"  … and {len(notes) - SHOWN} more: --json lists them all"] if len(notes) > SHOWN else []
    )
