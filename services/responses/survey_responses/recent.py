"""Invitations this process has just shown as open, by their token's hash.

Nearly every form POST follows its page's GET within a minute, over the same connection, so it
reaches the process that served the page. An invitation's columns never change (the table is
insert-only): the POST can build its event from the row the GET read, and skip reading it
again. What can change is only the link's state: the response insert decides "already answered"
atomically (unique key), and expiry is a column. A POST that reaches another replica, or comes
after the entry aged out, reads the row as before.
"""

from __future__ import annotations

from collections import OrderedDict

import asyncpg

MAX_ENTRIES = 10_000  # a few minutes of pages at 50 a second; ~1 KB each


class RecentInvitations:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._rows: OrderedDict[str, asyncpg.Record] = OrderedDict()

    def remember(self, digest: str, row: asyncpg.Record) -> None:
        self._rows[digest] = row
        self._rows.move_to_end(digest)
        if len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    def get(self, digest: str) -> asyncpg.Record | None:
        return self._rows.get(digest)

    def forget(self, digest: str) -> None:
        self._rows.pop(digest, None)

    def __len__(self) -> int:
        return len(self._rows)
