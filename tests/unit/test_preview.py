"""``preview`` streams its value sets: the same JSON value as the list ``json.dump`` used
to print, whatever the values, names and order of the jobs (``mediator/preview.py``)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediator.engine.aggregation import Aggregation
from mediator.run import preview

DAY = "2024-02-03"


def app_settings(coc: str | None = "COC00000001") -> dict[str, Any]:
    pair = {"dataElement": "DEage000001"}
    return {
        "dhis_data_sets": [{"id": "DSa00000001", "translation_key": "Jeux de données é"}],
        "tasks": {
            "targets": {
                "items": [
                    {"id": "births", "dhis": {"dataElement": "DEbirths001"}},
                    {"id": "under-5", "dhis": {**pair, "categoryOptionCombo": coc}},
                    {"id": "pct", "dhis": {"dataElement": "DEpct000001"}},
                ]
            }
        },
    }


def aggregation(places: list[tuple[str, str]], totals: list[Any], period: str) -> Aggregation:
    """Places (id, name), each with an owner whose one doc counts ``totals[i]``."""
    agg = Aggregation(app_settings(), "DSa00000001", period, value_choices={"pct": "percent"})
    agg.add_places(
        [{"_id": ident, "name": name, "dhis": {"orgUnit": f"OU{ident}"}} for ident, name in places]
    )
    docs = []
    for n, ((ident, _), total) in enumerate(zip(places, totals, strict=False)):
        agg.add_owner(f"chw{n}", (f"chw{n}", ident))
        targets = [
            {"id": "births", "value": {"total": total}},
            {"id": "under-5", "value": {"total": total}},
            {"id": "pct", "value": {"total": 3, "pass": 1}},
        ]
        docs.append({"type": "target", "owner": f"chw{n}", "targets": targets})
    agg.add_target_docs(docs)
    return agg


def old_output(aggs: list[Aggregation], human_readable: bool) -> str:
    """What ``python -m mediator preview`` printed before it streamed (``cli.py`` at
    be1dc59): every value set as objects, then one ``json.dump``."""
    out = io.StringIO()
    sets = [agg.result(DAY, human_readable=human_readable).as_export() for agg in aggs]
    json.dump(sets, out, indent=2)
    out.write("\n")
    return out.getvalue()


def streamed(aggs: list[Aggregation], human_readable: bool, order: list[int]) -> bytes:
    """The value sets written as ``preview.write`` writes them, coming in ``order``."""
    out = io.BytesIO()
    listing = preview.JsonList(out)
    for index in order:
        listing.add(
            index, lambda sink, a=aggs[index]: preview.value_set(sink, a, DAY, human_readable)
        )
    listing.close()
    return out.getvalue()


@pytest.mark.parametrize("human_readable", [False, True])
def test_the_streamed_list_is_byte_for_byte_what_json_dump_printed(human_readable, monkeypatch):
    monkeypatch.setattr(preview, "UNITS_PER_WRITE", 2)  # several batches per value set
    places = [("a", "Alpha"), ("b", "Beta"), ("c", "Gamma"), ("d", "Delta"), ("e", "Eps")]
    aggs = [
        aggregation(places, [1, 2, 3, 4, 5], "202401"),
        aggregation(places[:1], [7], "202402"),
        aggregation([], [], "202403"),  # no org unit: "dataValues": []
    ]
    want = old_output(aggs, human_readable)
    got = streamed(aggs, human_readable, [0, 1, 2]).decode()
    if human_readable:  # json.dump escaped the accent, orjson writes UTF-8: the same value
        assert json.loads(got) == json.loads(want)
        assert "Jeux de données é" in got
    else:
        assert got == want


def test_value_sets_ready_out_of_order_are_written_in_the_jobs_order(monkeypatch):
    monkeypatch.setattr(preview, "UNITS_PER_WRITE", 1)
    places = [("a", "A"), ("b", "B")]
    aggs = [aggregation(places, [n, n + 1], f"2024{n + 1:02d}") for n in range(4)]
    got = streamed(aggs, False, [2, 0, 3, 1])
    assert got.decode() == old_output(aggs, False)


def test_nothing_at_all_is_an_empty_list():
    assert streamed([], False, []) == b"[]\n"


@settings(max_examples=50, deadline=None)
@given(
    totals=st.lists(
        st.one_of(
            st.integers(-(10**6), 10**15),
            st.floats(allow_nan=False, allow_infinity=False, width=64),
        ),
        min_size=1,
        max_size=6,
    ),
    batch=st.integers(1, 4),
)
def test_any_numbers_stream_to_the_same_json_value(totals, batch):
    """Floats print differently (orjson: ``1e16``, json: ``1e+16``), never as another
    number."""
    preview.UNITS_PER_WRITE, before = batch, preview.UNITS_PER_WRITE
    try:
        places = [(f"p{n}", f"Place {n}") for n in range(len(totals))]
        aggs = [aggregation(places, totals, "202401")]
        assert json.loads(streamed(aggs, False, [0])) == json.loads(old_output(aggs, False))
    finally:
        preview.UNITS_PER_WRITE = before


def test_a_text_stream_without_a_buffer_gets_the_same_text():
    aggs = [aggregation([("a", "Ä")], [1], "202401")]
    out = io.StringIO()
    listing = preview.JsonList(preview._binary(out))
    listing.add(0, lambda sink: preview.value_set(sink, aggs[0], DAY, True))
    listing.close()
    assert json.loads(out.getvalue()) == json.loads(old_output(aggs, True))
