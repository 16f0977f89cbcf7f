"""A durable, ordered, bounded queue of event payloads on disk (SQLite, WAL).

Every event the MQTT sink accepts goes here first and leaves only when the broker has
acknowledged it, so events survive a broker outage and a restart of the service. When the
bound is reached the oldest entries are discarded, and the count is returned so the
caller can log it: never silently.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class Spool:
    """FIFO of text payloads with a size bound; safe to use from several threads.

    Args:
        path: the database file (created with its folder).
        max_items: entries kept at most; the oldest go first when it is exceeded.
    """

    def __init__(self, path: str | Path, max_items: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # An entry is durable once the transaction commits; NORMAL keeps that across a
        # process crash, which is what a service restart is.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS spool ("
                         "id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                         "payload TEXT NOT NULL)")
        self._count = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def append(self, topic: str, payload: str) -> int:
        """Add one entry; returns how many old entries were discarded to stay in bound."""
        with self._lock:
            discarded = 0
            if self._count >= self.max_items:
                discarded = self._count - self.max_items + 1
                self._db.execute("DELETE FROM spool WHERE id IN "
                                 "(SELECT id FROM spool ORDER BY id LIMIT ?)", (discarded,))
                self._count -= discarded
            self._db.execute("INSERT INTO spool (topic, payload) VALUES (?, ?)", (topic, payload))
            self._count += 1
            return discarded

    def after(self, last_id: int, limit: int) -> list[tuple[int, str, str]]:
        """Up to ``limit`` entries with id > ``last_id``, oldest first: (id, topic, payload)."""
        with self._lock:
            return self._db.execute(
                "SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit)).fetchall()

    def remove(self, entry_id: int) -> None:
        """Drop a delivered entry (no-op if it is gone already)."""
        with self._lock:
            cur = self._db.execute("DELETE FROM spool WHERE id = ?", (entry_id,))
            self._count -= cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
