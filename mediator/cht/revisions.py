"""What explain asks CHT that a run never needs: the losing revisions of the docs it
lists, and whether an owner that could not be found was deleted. Reads only, through
the reader's own requests (``ChtReader._request``: retries, status and shape checks)."""

from __future__ import annotations

from .client import ChtReader


def conflicts(reader: ChtReader, ids: list[str]) -> dict[str, list[str]]:
    """The losing revisions of these docs, for those that have any (``explain``).

    ``POST _all_docs?include_docs=true&conflicts=true`` with ``keys``: each doc is
    its winning revision, the one every read counts, with ``_conflicts`` listing
    the other leaves (CouchDB's "Working with conflicts": ``conflicts=true`` adds
    ``_conflicts`` to each doc). ``owner_batch`` ids a request."""
    found: dict[str, list[str]] = {}
    batch = reader.settings.owner_batch
    for start in range(0, len(ids), batch):
        body = reader._request(
            "POST",
            f"{reader.db_url}/_all_docs",
            params={"include_docs": "true", "conflicts": "true"},
            body={"keys": ids[start : start + batch]},
            what="the revisions of the docs explained",
        )
        for row in body.get("rows", []):
            doc = row.get("doc")
            revs = doc.get("_conflicts") if isinstance(doc, dict) else None
            if isinstance(revs, list) and revs and isinstance(row.get("key"), str):
                found[row["key"]] = [str(r) for r in revs]
    return found


def deleted(reader: ChtReader, ids: list[str]) -> set[str]:
    """Which of these ids name a deleted doc, as against one CHT never had.
    ``POST _all_docs`` with ``keys``: a deleted doc's row has ``value.deleted``
    true, a missing one ``"error": "not_found"`` (CouchDB wiki, HTTP_Bulk_Document_API)."""
    gone: set[str] = set()
    batch = reader.settings.owner_batch
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), batch):
        body = reader._request(
            "POST",
            f"{reader.db_url}/_all_docs",
            body={"keys": wanted[start : start + batch]},
            what="whether the owners not found were deleted",
        )
        for row in body.get("rows", []):
            value = row.get("value")
            if isinstance(value, dict) and value.get("deleted") is True:
                gone.add(str(row.get("key")))
    return gone
