"""Properties of the pure aggregation and the period parser (hypothesis)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mediator.engine.aggregation import Aggregation
from mediator.engine.mapping import EngineError, lineage_ids
from mediator.model.periods import Month, PeriodError

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


# Several targets, each way of choosing a value (a percent keeps pass and total apart
# until the end), two targets summed into one row, docs and targets that must be skipped,
# owners CHT does not have, and users synced for some months: everything in the engine
# that keeps state across docs, so that the order or the paging of docs could show.
RICH: dict[str, Any] = {
    "dhis_data_sets": [{"id": "dsX"}],
    "tasks": {
        "targets": {
            "items": [
                {"id": "visits", "dhis": {"dataElement": "deV"}},
                {"id": "home", "dhis": {"dataElement": "deS"}},
                {"id": "away", "dhis": {"dataElement": "deS"}},
                {"id": "coverage", "dhis": {"dataElement": "deP"}},
                {"id": "passed", "dhis": {"dataElement": "deQ"}},
            ]
        }
    },
}
CHOICES: dict[str, Any] = {"coverage": "percent", "passed": "pass"}


@st.composite
def rich_deployments(draw):
    places, owners, _ = draw(deployments())
    users = [f"u{n}" for n in range(draw(st.integers(0, 4)))]
    number = st.one_of(st.integers(0, 40), st.sampled_from(["7", "x", None, 2.5]))
    target = st.one_of(
        st.fixed_dictionaries(
            {
                "id": st.sampled_from(["visits", "home", "away", "coverage", "passed", "other"]),
                "value": st.one_of(
                    st.fixed_dictionaries({"total": number, "pass": st.integers(0, 40)}),
                    st.fixed_dictionaries({"total": number}),
                    st.just("broken"),
                ),
            }
        ),
        st.just({"value": {"total": 1}}),  # no id
    )
    docs: list[Any] = []
    for n in range(draw(st.integers(0, 25))):
        owner = draw(st.sampled_from([*owners, "unknown-owner"] if owners else ["unknown-owner"]))
        month = draw(st.sampled_from(["2024-01", "2023-12"]))
        doc: dict[str, Any] = {
            "_id": f"target~{month}~{owner}~{n}",
            "type": "target",
            "owner": owner,
            "targets": draw(st.lists(target, max_size=5)),
            "updated_date": draw(st.integers(1_700_000_000_000, 1_710_000_000_000)),
        }
        if users:
            doc["user"] = f"org.couchdb.user:{draw(st.sampled_from(users))}"
        docs.append(draw(st.sampled_from([doc, {**doc, "targets": "none"}, "not a doc"])))
    expected = {u: draw(st.sampled_from(list(owners) or ["nobody"])) for u in users}
    return places, owners, docs, expected


def everything(places, owners, pages, expected) -> dict[str, Any]:
    """All an aggregation tells: rows in order, skips, counts, coverage."""
    agg = Aggregation(RICH, "dsX", "202401", value_choices=CHOICES)
    agg.add_places(places)
    agg.expect_users(expected)
    for page in pages:  # as the reader feeds it: a page's owners, then its docs
        for owner in {d["owner"] for d in page if isinstance(d, dict)} & set(owners):
            agg.add_owner(owner, lineage_ids(owners[owner]))
        agg.add_target_docs(page)
    now = datetime(2024, 2, 10, tzinfo=UTC)
    return {
        "rows": [dv.model_dump() for dv in agg.data_values()],
        "skipped": dict(agg.skipped),
        "counted": agg.docs_counted,
        "coverage": [row.model_dump() for row in agg.coverage(["2024-01"], now)],
        "synced": agg.users_synced(["2024-01"]),
    }


@settings(max_examples=150, deadline=None)
@given(rich_deployments(), st.randoms(use_true_random=False))
def test_neither_the_order_of_docs_nor_their_paging_changes_anything(
    deployment, rnd: random.Random
):
    """CouchDB pages docs in _id order and the reader may split them anywhere; DHIS2
    must get the same rows in the same order, and coverage the same users, whatever
    the order and the page boundaries."""
    places, owners, docs, expected = deployment
    one_page = everything(places, owners, [docs], expected)
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.sample(range(len(shuffled) + 1), k=min(3, len(shuffled) + 1)))
    pages = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    assert everything(places, owners, pages, expected) == one_page


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
