"""Properties of the pure aggregation and the period parser (hypothesis)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediator.engine import Aggregation, EngineError, lineage_ids
from mediator.periods import Month, PeriodError

SETTINGS: dict[str, Any] = {
    "dhis_data_sets": [{"id": "dsX"}],
    "tasks": {"targets": {"items": [{"id": "t", "dhis": {"dataElement": "deX"}}]}},
}


def build_tree(shape: list[int]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """A strict hierarchy: a root place, ``shape[i]`` children per node at level i.

    Every place has its own org unit; returns the places and a lineage per place.
    """
    root = {"_id": "p", "dhis": {"orgUnit": "ou-p"}}
    places = [root]
    lineage = {"p": {"_id": "p"}}
    level = ["p"]
    for width in shape:
        nxt = []
        for parent in level:
            for k in range(width):
                ident = f"{parent}.{k}"
                places.append(
                    {"_id": ident, "dhis": {"orgUnit": f"ou-{ident}"}, "parent": lineage[parent]}
                )
                lineage[ident] = {"_id": ident, "parent": lineage[parent]}
                nxt.append(ident)
        level = nxt
    return places, lineage


def aggregate(places, owners, docs) -> dict[str, float]:
    agg = Aggregation(SETTINGS, "dsX", "202401")
    agg.add_places(places)
    for owner_id, owner in owners.items():
        agg.add_owner(owner_id, lineage_ids(owner))
    agg.add_target_docs(docs)
    return {dv.orgUnit: dv.value for dv in agg.data_values()}


@st.composite
def deployments(draw):
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    places, lineage = build_tree(shape)
    owners: dict[str, dict[str, Any]] = {}
    docs = []
    for place in places:
        for n in range(draw(st.integers(0, 2))):
            owner = f"user-{place['_id']}-{n}"
            owners[owner] = {"_id": owner, "parent": lineage[place["_id"]]}
            total = draw(st.integers(0, 50))
            docs.append(
                {
                    "type": "target",
                    "owner": owner,
                    "targets": [{"id": "t", "value": {"total": total}}],
                }
            )
    return places, owners, docs


@settings(max_examples=60, deadline=None)
@given(deployments())
def test_a_parent_equals_its_children_plus_its_own_users(deployment):
    places, owners, docs = deployment
    values = aggregate(places, owners, docs)
    own: dict[str, float] = {}
    for doc in docs:
        place = owners[doc["owner"]]["parent"]["_id"]
        own[place] = own.get(place, 0) + doc["targets"][0]["value"]["total"]
    for place in places:
        ident = place["_id"]
        children = [p["_id"] for p in places if p.get("parent", {}).get("_id") == ident]
        expected = own.get(ident, 0) + sum(values[f"ou-{c}"] for c in children)
        assert values[f"ou-{ident}"] == expected


@settings(max_examples=60, deadline=None)
@given(deployments(), st.randoms(use_true_random=False))
def test_permuting_doc_order_changes_nothing(deployment, rnd: random.Random):
    places, owners, docs = deployment
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    assert aggregate(places, owners, shuffled) == aggregate(places, owners, docs)


def test_lineage_loop_and_depth_are_detected():
    loop = {"_id": "a", "parent": {"_id": "b", "parent": {"_id": "a"}}}
    assert lineage_ids(loop) == "owner_lineage_loop"
    deep: dict[str, Any] = {"_id": "leaf"}
    node = deep
    for level in range(60):
        node["parent"] = {"_id": f"l{level}"}
        node = node["parent"]
    assert lineage_ids(deep) == "owner_lineage_too_deep"
    assert lineage_ids({"_id": "x", "parent": {"_id": "y"}}) == ("x", "y")


def test_conflicting_value_choices_for_one_row_are_refused():
    settings_two = {
        "dhis_data_sets": [{"id": "ds"}],
        "tasks": {
            "targets": {
                "items": [
                    {"id": "a", "dhis": {"dataElement": "de"}},
                    {"id": "b", "dhis": {"dataElement": "de"}},
                ]
            }
        },
    }
    with pytest.raises(EngineError, match="disagree"):
        Aggregation(settings_two, "ds", "202401", value_choices={"a": "pass"})


# -- periods ---------------------------------------------------------------------


@given(st.integers(1970, 2999), st.integers(1, 12), st.booleans())
def test_every_real_month_parses_in_both_forms(year, month, dash):
    text = f"{year:04d}-{month:02d}" if dash else f"{year:04d}{month:02d}"
    parsed = Month.parse(text)
    assert (parsed.year, parsed.month) == (year, month)
    assert Month.parse(parsed.tag) == Month.parse(parsed.dhis2) == parsed


@given(st.text(max_size=12))
def test_anything_else_is_a_period_error_never_a_crash(text):
    try:
        parsed = Month.parse(text)
    except PeriodError:
        return
    assert parsed.tag.replace("-", "") == text.strip().replace("-", "")


@given(st.integers(1971, 2998), st.integers(1, 12), st.integers(-240, 240))
def test_shift_is_consistent(year, month, delta):
    start = Month(year, month)
    try:
        moved = start.shift(delta)
    except PeriodError:
        return
    assert moved.shift(-delta) == start
    assert (moved.year * 12 + moved.month) - (year * 12 + month) == delta
