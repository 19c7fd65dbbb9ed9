"""Who synced: the CHT users a data set expects and the months each has a target doc for.

What coverage is made of (``Aggregation.coverage``): a user is synced for a period when
a target doc of theirs exists for every month the period holds. Pure: no I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncLog:
    """Who synced: the users expected (username -> contact id), the months each has a
    target doc for, and the newest ``updated_date`` (ms) of their docs. One month tag (a
    shared string) per user until a second month shows: a set per user costs 200 bytes,
    and national runs have tens of thousands of users."""

    expected: dict[str, str] = field(default_factory=dict)
    months: dict[str, str | set[str]] = field(default_factory=dict)
    newest: dict[str, int] = field(default_factory=dict)

    def saw(self, doc: Mapping[str, Any]) -> None:
        """Note that the doc's user synced a doc for its month (coverage)."""
        user = doc.get("user")
        ident = doc.get("_id")
        if not isinstance(user, str) or not isinstance(ident, str):
            return
        parts = ident.split("~")
        if len(parts) < 3:
            return
        username = user.removeprefix("org.couchdb.user:")
        tag = sys.intern(parts[1])
        seen = self.months.get(username)
        if seen is None:
            self.months[username] = tag
        elif isinstance(seen, set):
            seen.add(tag)
        elif seen != tag:
            self.months[username] = {seen, tag}
        updated = doc.get("updated_date")
        if isinstance(updated, int | float) and not isinstance(updated, bool):
            self.newest[username] = max(self.newest.get(username, 0), int(updated))

    def synced(self, username: str, wanted: set[str]) -> bool:
        """Has the user a doc for every wanted month?"""
        seen = self.months.get(username)
        if seen is None:
            return not wanted
        return wanted <= ({seen} if isinstance(seen, str) else seen)
