"""Embedded adapter: durable records in one SQLite file, no service needed.

SQLite calls run on one dedicated thread so the event loop never blocks on disk and the connection is
never shared between threads.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from store.port import Record

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (kind, key)
)
"""


class SQLiteStore:
    """The default `Store`: a SQLite file under the data directory (or ':memory:' in tests)."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._path = str(path)
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._run_sync(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=10.0)
        # Switching a new file to WAL can report "locked" at once when another process opens it at the
        # same moment (the busy timeout does not apply to this pragma); retry briefly.
        for attempt in range(100):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        self._conn = conn

    def _run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(fn, *args).result()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    async def get(self, kind: str, key: str) -> Record | None:
        def op() -> Record | None:
            row = self._db.execute(
                "SELECT value FROM records WHERE kind=? AND key=? AND (expires_at IS NULL OR expires_at > ?)",
                (kind, key, self._clock()),
            ).fetchone()
            return None if row is None else json.loads(row[0])

        return await self._run(op)

    async def put(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> None:
        data = json.dumps(value)
        expires = self._expiry(ttl)

        def op() -> None:
            self._db.execute(
                "INSERT OR REPLACE INTO records (kind, key, value, expires_at) VALUES (?,?,?,?)",
                (kind, key, data, expires),
            )

        await self._run(op)

    async def create(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> bool:
        data = json.dumps(value)
        expires = self._expiry(ttl)

        def op() -> bool:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "DELETE FROM records WHERE kind=? AND key=? AND expires_at <= ?",
                    (kind, key, self._clock()),
                )
                cur = db.execute(
                    "INSERT OR IGNORE INTO records (kind, key, value, expires_at) VALUES (?,?,?,?)",
                    (kind, key, data, expires),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return cur.rowcount == 1

        return await self._run(op)

    async def delete(self, kind: str, key: str) -> bool:
        def op() -> bool:
            cur = self._db.execute(
                "DELETE FROM records WHERE kind=? AND key=? AND (expires_at IS NULL OR expires_at > ?)",
                (kind, key, self._clock()),
            )
            return cur.rowcount == 1

        return await self._run(op)

    async def scan(self, kind: str) -> list[tuple[str, Record]]:
        def op() -> list[tuple[str, Record]]:
            rows = self._db.execute(
                "SELECT key, value FROM records WHERE kind=? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
                (kind, self._clock()),
            ).fetchall()
            return [(k, json.loads(v)) for k, v in rows]

        return await self._run(op)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._run(conn.close)
        self._executor.shutdown(wait=True)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn
