"""What explain asks CHT that a run never needs, in one read: the docs it lists and the
places of the roll-up at their winning revisions with their losing ones, and whether an
owner that could not be found was deleted. Reads only, through the reader's own requests
(``ChtReader._request``: retries, status and shape checks)."""

from __future__ import annotations

from typing import Any

from .client import ChtReader


def doc_rows(reader: ChtReader, ids: list[str]) -> list[dict[str, Any]]:
    """``POST _all_docs?include_docs=true&conflicts=true`` rows for these ids: each doc
    its winning revision, the one every read counts, with ``_conflicts`` listing the
    losing leaves (CouchDB's "Working with conflicts"); a deleted doc's row has
    ``value.deleted`` true and no doc, an id CHT never had ``"error": "not_found"``
    (CouchDB: /{db}/_all_docs with keys). ``owner_batch`` ids a request."""
    rows: list[dict[str, Any]] = []
    params, batch = {"include_docs": "true", "conflicts": "true"}, reader.settings.owner_batch
    for start in range(0, len(ids), batch):
        body = reader._request(
            "POST",
            f"{reader.db_url}/_all_docs",
            params=params,
            body={"keys": ids[start : start + batch]},
            what="the docs explained and their revisions",
        )
        rows += [row for row in body.get("rows", []) if isinstance(row, dict)]
    return rows
