"""Embedded adapter: durable records in one SQLite file, no service needed.

SQLite calls run on one dedicated thread so the event loop never blocks on disk and the connection is
never shared between threads.

Deleting means gone (issue 15, finding 7): reads hide an expired record at once, and `purge_expired`
(run at open and by the app's retention sweep) deletes the rows. `secure_delete` makes SQLite overwrite
deleted content with zeros instead of leaving it in free space, and the sweep ends with a truncating
WAL checkpoint, so the text is gone from the database file and from its `-wal` file too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sprechstunde.store.port import Change, Put, QueueItem, Record, check_distinct

T = TypeVar("T")

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (kind, key)
)""",
    """
CREATE TABLE IF NOT EXISTS queue_items (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    lane TEXT NOT NULL,
    score REAL NOT NULL,
    claimed_by TEXT,
    claimed_at REAL,
    PRIMARY KEY (queue, key)
)""",
    "CREATE INDEX IF NOT EXISTS queue_items_order ON queue_items (queue, lane, claimed_by, score, key)",
)
_ITEM_COLUMNS = "key, lane, score, claimed_by, claimed_at"


class SQLiteStore:
    """The default `Store`: a SQLite file under the data directory (or ':memory:' in tests)."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._path = str(path)
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._channels: dict[str, set[asyncio.Queue[Record]]] = {}
        self._run_sync(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=10.0)
        # Only takes effect on a new file (before WAL writes its header): lets the sweep give freed pages
        # back to the file system.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
        # Per connection: overwrite deleted records (and freed pages) with zeros, so an expired note or
        # transcript cannot be read back from free space in the file.
        conn.execute("PRAGMA secure_delete=ON")
        for statement in _SCHEMA:
            conn.execute(statement)
        self._conn = conn
        self._purge(conn)

    def _run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(fn, *args).result()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one write transaction. BEGIN IMMEDIATE takes the write lock up front, so a read
        inside `body` cannot be invalidated by another process before the write; within this process
        the single store thread already serialises every call."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = body(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    def _live_value(self, db: sqlite3.Connection, kind: str, key: str) -> Any:
        row = db.execute(
            "SELECT value FROM records WHERE kind=? AND key=? AND (expires_at IS NULL OR expires_at > ?)",
            (kind, key, self._clock()),
        ).fetchone()
        return None if row is None else json.loads(row[0])

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

    async def put_many(self, puts: Sequence[Put]) -> None:
        rows = [(p.kind, p.key, json.dumps(p.value), self._expiry(p.ttl)) for p in puts]
        if not rows:
            return

        def op(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO records (kind, key, value, expires_at) VALUES (?,?,?,?)", rows
            )

        await self._run(self._transaction, op)

    async def create(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> bool:
        data = json.dumps(value)
        expires = self._expiry(ttl)

        def op(db: sqlite3.Connection) -> bool:
            db.execute(
                "DELETE FROM records WHERE kind=? AND key=? AND expires_at <= ?",
                (kind, key, self._clock()),
            )
            cur = db.execute(
                "INSERT OR IGNORE INTO records (kind, key, value, expires_at) VALUES (?,?,?,?)",
                (kind, key, data, expires),
            )
            return cur.rowcount == 1

        return await self._run(self._transaction, op)

    async def compare_and_set(
        self, kind: str, key: str, expected: Record | None, new: Record, *, ttl: float | None = None
    ) -> bool:
        data = json.dumps(new)
        expires = self._expiry(ttl)

        def op(db: sqlite3.Connection) -> bool:
            # Compared as decoded JSON, so key order or float formatting cannot make equal records differ.
            if self._live_value(db, kind, key) != expected:
                return False
            db.execute(
                "INSERT OR REPLACE INTO records (kind, key, value, expires_at) VALUES (?,?,?,?)",
                (kind, key, data, expires),
            )
            return True

        return await self._run(self._transaction, op)

    async def compare_and_set_many(self, changes: Sequence[Change]) -> bool:
        """All of `changes` in one transaction: SQLite writes it to the WAL as one commit, so a killed
        process leaves all or none of it."""
        check_distinct(changes)
        rows = [(c.kind, c.key, c.expected, json.dumps(c.new), self._expiry(c.ttl)) for c in changes]

        def op(db: sqlite3.Connection) -> bool:
            if any(self._live_value(db, kind, key) != expected for kind, key, expected, _, _ in rows):
                return False
            db.executemany(
                "INSERT OR REPLACE INTO records (kind, key, value, expires_at) VALUES (?,?,?,?)",
                [(kind, key, data, expires) for kind, key, _, data, expires in rows],
            )
            return True

        return await self._run(self._transaction, op)

    async def incr(self, kind: str, key: str) -> int:
        def op(db: sqlite3.Connection) -> int:
            current = self._live_value(db, kind, key)
            value = (current or {}).get("n", 0) + 1
            db.execute(
                "INSERT OR REPLACE INTO records (kind, key, value, expires_at) VALUES (?,?,?,NULL)",
                (kind, key, json.dumps({"n": value})),
            )
            return value

        return await self._run(self._transaction, op)

    async def delete(self, kind: str, key: str) -> bool:
        def op() -> bool:
            cur = self._db.execute(
                "DELETE FROM records WHERE kind=? AND key=? AND (expires_at IS NULL OR expires_at > ?)",
                (kind, key, self._clock()),
            )
            return cur.rowcount == 1

        return await self._run(op)

    async def scan(self, kind: str, prefix: str = "") -> list[tuple[str, Record]]:
        def op() -> list[tuple[str, Record]]:
            # substr() rather than LIKE: a key may contain % or _, and LIKE ignores case.
            rows = self._db.execute(
                "SELECT key, value FROM records WHERE kind=? AND substr(key, 1, ?) = ? "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
                (kind, len(prefix), prefix, self._clock()),
            ).fetchall()
            return [(k, json.loads(v)) for k, v in rows]

        return await self._run(op)

    async def purge_expired(self) -> int:
        return await self._run(self._purge, self._db)

    def _purge(self, db: sqlite3.Connection) -> int:
        """Delete every expired record, return freed pages, and move the WAL's content into the main file
        and truncate the WAL: old page images holding the deleted text must not survive there either.
        The checkpoint cannot finish while another process reads (it then completes at the next sweep)."""
        removed = db.execute(
            "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?", (self._clock(),)
        ).rowcount
        db.execute("PRAGMA incremental_vacuum").fetchall()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return removed

    # --- ordered queues -------------------------------------------------------------------------

    async def enqueue(self, queue: str, key: str, *, lane: str, score: float, replace: bool = False) -> bool:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"

        def op() -> bool:
            cur = self._db.execute(
                f"{verb} INTO queue_items (queue, key, lane, score, claimed_by, claimed_at) "
                "VALUES (?,?,?,?,NULL,NULL)",
                (queue, key, lane, float(score)),
            )
            return cur.rowcount == 1

        return await self._run(op)

    async def claim_first(
        self, queue: str, lanes: Sequence[str], claimant: str, *, max_score: float | None = None
    ) -> QueueItem | None:
        lanes = list(lanes)
        if not lanes:
            return None
        marks = ",".join("?" * len(lanes))
        limit = float("inf") if max_score is None else float(max_score)

        def op(db: sqlite3.Connection) -> QueueItem | None:
            row = db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE queue=? AND lane IN ({marks}) "
                "AND claimed_by IS NULL AND score <= ? ORDER BY score, key LIMIT 1",
                (queue, *lanes, limit),
            ).fetchone()
            if row is None:
                return None
            now = self._clock()
            db.execute(
                "UPDATE queue_items SET claimed_by=?, claimed_at=? WHERE queue=? AND key=?",
                (claimant, now, queue, row[0]),
            )
            return QueueItem(row[0], row[1], row[2], claimant, now)

        return await self._run(self._transaction, op)

    async def claim_item(
        self, queue: str, key: str, claimant: str, *, lanes: Sequence[str] | None = None
    ) -> QueueItem | None:
        def op(db: sqlite3.Connection) -> QueueItem | None:
            row = db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE queue=? AND key=? AND claimed_by IS NULL",
                (queue, key),
            ).fetchone()
            if row is None or (lanes is not None and row[1] not in lanes):
                return None
            now = self._clock()
            # The claimed_by IS NULL guard makes the update itself the compare-and-set.
            cur = db.execute(
                "UPDATE queue_items SET claimed_by=?, claimed_at=? "
                "WHERE queue=? AND key=? AND claimed_by IS NULL",
                (claimant, now, queue, key),
            )
            return QueueItem(row[0], row[1], row[2], claimant, now) if cur.rowcount == 1 else None

        return await self._run(self._transaction, op)

    async def queue_item(self, queue: str, key: str) -> QueueItem | None:
        def op() -> QueueItem | None:
            row = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE queue=? AND key=?", (queue, key)
            ).fetchone()
            return None if row is None else QueueItem(*row)

        return await self._run(op)

    async def queued(
        self, queue: str, lanes: Sequence[str] | None = None, *, claimed: bool | None = False
    ) -> list[QueueItem]:
        sql = f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE queue=?"
        params: list[Any] = [queue]
        if lanes is not None:
            lanes = list(lanes)
            if not lanes:
                return []
            sql += f" AND lane IN ({','.join('?' * len(lanes))})"
            params += lanes
        if claimed is not None:
            sql += " AND claimed_by IS NOT NULL" if claimed else " AND claimed_by IS NULL"
        sql += " ORDER BY score, key"

        def op() -> list[QueueItem]:
            return [QueueItem(*row) for row in self._db.execute(sql, params).fetchall()]

        return await self._run(op)

    async def dequeue(
        self, queue: str, key: str, *, only_unclaimed: bool = False, claimant: str | None = None
    ) -> bool:
        sql = "DELETE FROM queue_items WHERE queue=? AND key=?"
        params: list[Any] = [queue, key]
        if only_unclaimed:
            sql += " AND claimed_by IS NULL"
        if claimant is not None:
            sql += " AND claimed_by = ?"
            params.append(claimant)

        def op() -> bool:
            return self._db.execute(sql, params).rowcount == 1

        return await self._run(op)

    async def publish(self, channel: str, message: Record) -> None:
        for queue in list(self._channels.get(channel, ())):
            queue.put_nowait(json.loads(json.dumps(message)))  # a copy, as if it went over the wire

    async def subscribe(self, channel: str) -> LocalSubscription:
        return LocalSubscription(self._channels, channel)

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


class LocalSubscription:
    """A channel within this process (the embedded store has no other processes to reach)."""

    def __init__(self, channels: dict[str, set[asyncio.Queue[Record]]], channel: str) -> None:
        self._channels = channels
        self._channel = channel
        self._queue: asyncio.Queue[Record] = asyncio.Queue()
        channels.setdefault(channel, set()).add(self._queue)

    async def next(self) -> Record:
        return await self._queue.get()

    async def close(self) -> None:
        listeners = self._channels.get(self._channel)
        if listeners is not None:
            listeners.discard(self._queue)
            if not listeners:
                del self._channels[self._channel]
