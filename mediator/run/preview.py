"""``python -m mediator preview``: the data value sets CHT's export would give, written
as they are computed.

The output is one JSON list of ``{"dataSet", "completeDate", "period", "dataValues"}``
(``model.values.DataValueSet.as_export``), laid out as ``json.dump(..., indent=2)`` lays it
out, in the order of the run's jobs (data set, then period). Nothing holds a whole
month as objects: each (data set, period) is written as soon as its group of months
is aggregated (``run.read.ChtSide.groups``), its values a batch of org units at a time
by orjson, and its aggregation is let go before the next group is read. A national
month held as ``DataValue`` objects and printed by ``json.dump`` cost about 100 MB and
two of seven seconds (``benchmarks/``).

A preview reads no CHT users: they only say who synced (coverage), which it does not
show. A value set that is ready before the ones listed ahead of it (several data sets
over several periods) waits in a temporary file, so memory stays flat however many
periods are asked.
"""

from __future__ import annotations

import codecs
import functools
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

import orjson

from mediator.engine.aggregation import Aggregation, ValueRow
from mediator.http.errors import PeerError
from mediator.settings.config import RuntimeConfig

from .jobs import Job
from .read import ChtSide, collector_paused
from .request import RunRequest

UNITS_PER_WRITE = 250  # org units serialised at once: 5,000 values of a national data set
_INDENT = orjson.OPT_INDENT_2


class PreviewFailed(Exception):
    """A (data set, period) could not be computed (refused, or a CHT read it needs
    failed): the reason, in one line. What was written before it is not a whole list."""


@dataclass(frozen=True)
class JobNote:
    """What a written value set was made of, for the command's notes on stderr."""

    data_set: str
    period: str
    docs_read: int
    skipped: dict[str, int]


@dataclass
class Shown:
    """What ``write`` wrote: per job its note (in the output's order), and per CHT
    instance why its kept contacts were not used (``cht.cache``)."""

    notes: list[JobNote] = field(default_factory=list)
    warnings: dict[str, str] = field(default_factory=dict)
    closed: bool = False  # the reader of the output went away (``preview | head``)


def write(
    request: RunRequest,
    config: RuntimeConfig,
    out: IO[Any],
    *,
    human_readable: bool = False,
    complete_date: str | None = None,
) -> Shown:
    """Compute the request's value sets and write them to ``out`` (a text stream is
    written through its binary buffer) as one JSON list. Raises ``PreviewFailed`` for a
    job that cannot be computed, and what ``run.read.ChtSide`` raises (RunInputError,
    PeerError); nothing is written before the first value set is whole."""
    day = complete_date or date.today().isoformat()
    shown = Shown()
    cht = ChtSide(request, config, None, None, users=False)
    try:
        names = _translations(cht) if human_readable else None
        order = {id(job): n for n, job in enumerate(cht.jobs)}
        notes: dict[int, JobNote] = {}
        listing = JsonList(_binary(out))
        try:
            data_sets = {job.data_set for job in cht.jobs}
            carried: set[str] = set()  # data sets a CHT place carries the org unit for
            for group in cht.groups():
                carried |= {
                    job.data_set
                    for job in group
                    if not (job.problem or job.read_error) and job.merged.org_units
                }
                if {job.data_set for job in group} == data_sets:
                    _check_org_unit(request, carried)  # before anything is written
                for job in group:
                    if job.problem or job.read_error:
                        raise PreviewFailed(job.problem or job.read_error or "")
                    notes[order[id(job)]] = _note(job)
                    item = functools.partial(
                        value_set,
                        agg=job.merged,
                        complete_date=day,
                        human_readable=human_readable,
                        translations=names,
                    )
                    with collector_paused():  # half the writing's time, else (benchmarks/)
                        listing.add(order[id(job)], item)
                    job.release()
            _check_org_unit(request, carried)
            listing.close()
        except BrokenPipeError:
            shown.closed = True
            _silence(out)
        shown.notes = [notes[n] for n in sorted(notes)]
        shown.warnings = cht.source_warnings
        return shown
    finally:
        cht.close()


def _translations(cht: ChtSide) -> dict[str, str]:
    """CHT's translations in the app's locale (``app_settings.locale``, else English),
    from the first CHT instance that answers: names only, so a failed read shows the
    keys rather than failing the preview."""
    for src in cht.sources:
        if src.app_settings is None:
            continue
        locale = src.app_settings.get("locale")
        try:
            return src.reader.translations(locale if isinstance(locale, str) and locale else "en")
        except PeerError:
            continue
    return {}


def _check_org_unit(request: RunRequest, carried: set[str]) -> None:
    """An org unit asked for that no CHT place carries, for any data set: one line.
    Places do not change with the period, so once a group has held every data set
    this is known before anything is written."""
    if request.org_unit and not carried:
        raise PreviewFailed(
            f"org unit {request.org_unit}: no CHT place carries it (dhis.orgUnit); "
            "check the id against the dhis.orgUnit of CHT's places"
        )


def _note(job: Job) -> JobNote:
    merged = job.merged
    return JobNote(job.data_set, job.period.iso, merged.docs_read, dict(merged.skipped))


class JsonList:
    """One JSON list written item by item, items in their given order whatever order
    they come in (a late item waits in a temporary file). ``[`` is written with the
    first item, so a run that fails before it leaves the output empty."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.next = 0
        self.waiting: dict[int, IO[bytes]] = {}

    def add(self, index: int, item: Callable[[IO[bytes]], None]) -> None:
        if index != self.next:
            spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed when copied
            item(spool)
            self.waiting[index] = spool
            return
        self._start_item()
        item(self.out)
        self.next += 1
        while self.next in self.waiting:
            waited = self.waiting.pop(self.next)
            self._start_item()
            waited.seek(0)
            shutil.copyfileobj(waited, self.out)
            waited.close()
            self.next += 1

    def _start_item(self) -> None:
        self.out.write(b",\n" if self.next else b"[\n")

    def close(self) -> None:
        assert not self.waiting, "an item never came"
        self.out.write(b"\n]\n" if self.next else b"[]\n")
        self.out.flush()


def value_set(
    out: IO[bytes],
    agg: Aggregation,
    complete_date: str,
    human_readable: bool,
    translations: Mapping[str, str] | None = None,
) -> None:
    """One ``DataValueSet.as_export()`` as the second level of an indented list."""
    head = (
        ("dataSet", agg.label(human_readable=human_readable, translations=translations)),
        ("completeDate", complete_date),
        ("period", agg.period),
    )
    out.write(b"  {\n")
    for key, word in head:
        out.write(b'    "%s": %s,\n' % (key.encode(), orjson.dumps(word)))
    out.write(b'    "dataValues": [')
    units = agg.org_units
    wrote = False
    for start in range(0, len(units), UNITS_PER_WRITE):
        batch = units[start : start + UNITS_PER_WRITE]
        rows = [_export(row) for row in agg.value_rows(human_readable=human_readable, units=batch)]
        if not rows:
            continue
        # [\n  {\n    "k": v\n  },\n  {...}\n] -> each line indented four more spaces
        text = _dumps(rows)[1:-2].replace(b"\n", b"\n    ")
        out.write(b"," + text if wrote else text)
        wrote = True
    out.write(b"\n    ]\n  }" if wrote else b"]\n  }")


def _dumps(rows: list[dict[str, Any]]) -> bytes:
    """``rows`` as an indented JSON list: orjson, or json for a whole number past 64 bits
    (a float total like 1e20 becomes an int, ``engine.aggregation._tidy``), which orjson refuses."""
    try:
        return orjson.dumps(rows, option=_INDENT)
    except TypeError:
        return json.dumps(rows, indent=2, ensure_ascii=False).encode()


def _export(row: ValueRow) -> dict[str, Any]:
    """A value row as ``DataValue.as_export`` gives it: no null keys, in field order."""
    element, coc, aoc, org_unit, value = row
    out: dict[str, Any] = {"dataElement": element}
    if coc is not None:
        out["categoryOptionCombo"] = coc
    if aoc is not None:
        out["attributeOptionCombo"] = aoc
    out["orgUnit"] = org_unit
    out["value"] = value
    return out


def _binary(out: IO[Any]) -> IO[bytes]:
    """The bytes side of a text stream (what was printed to it first goes first)."""
    if isinstance(out, io.TextIOBase):
        out.flush()
        buffer = getattr(out, "buffer", None)
        return buffer if buffer is not None else _TextSink(out)
    return out


class _TextSink(io.RawIOBase):
    """A text stream without a buffer (``io.StringIO``) taking UTF-8 bytes."""

    def __init__(self, text: IO[str]) -> None:
        self.text = text
        self.decode = codecs.getincrementaldecoder("utf-8")().decode  # a copy may split a char

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.text.write(self.decode(bytes(data)))
        return len(data)


def _silence(out: IO[Any]) -> None:
    """The reader went away: later writes and the interpreter's final flush of this
    stream go to /dev/null, not to a BrokenPipeError traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
