"""Records a live room keeps in the shared store for later (its chat so far, who is in it), written behind
the conversation instead of in its way.

A live room is served by one node (signaling/nodes.py), which holds the truth in memory; the store's copy
is for whoever comes after: another node the room moves to when this one dies, a process restart. Writing
that copy while a chat message or a join waits for it put a store round trip (and, with a full chat, a
record of up to 100 KB read, compared and written again) into every message: a burst of 500 rooms
chatting at once queued behind 1,000 store operations and stalled for half a second (docs/benchmarks.md).

So a change only replaces the record's pending value, and one writer task stores the newest value of each
record, one record after the other: nothing waits for the write (a message is delivered first, its record
is stored a moment later), changes to one record that come while the writer waits cost one write, and
however many rooms change at once, the writer holds at most one store operation at a time. It writes
while the event loop is idle, and waits while the loop is busy (a burst of messages being delivered),
for at most MAX_WAIT_SECONDS counted from the first change it has not written yet: once that is over, it
writes everything pending one after the other without waiting again (waiting per record let a busy node
store ~2 records a second, its store trailing 200 active rooms by ~100 s). A failed write is put back
unless a newer value came meanwhile, and tried again after RETRY_SECONDS. `None` deletes. A node that
dies loses at most the changes not stored yet; `flush` (shutdown, expiry, tests) writes everything
pending at once (once: a store that does not answer leaves it pending, for the next change to retry).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sprechstunde.clock import Now
from sprechstunde.store.port import Record, Store

log = logging.getLogger(__name__)

Pending = tuple[Record | None, float]  # the newest value (None: delete) and when it expires (epoch)
BUSY_SECONDS = 0.002  # one turn of the event loop taking longer than this: it has other work
PAUSE_SECONDS = 0.005  # how long the writer steps back then
MAX_WAIT_SECONDS = 0.5  # written after this even on a loop that stays busy
RETRY_SECONDS = 1.0  # after a failed write (the store away), before the writer tries again


class WriteBehind:
    """Stores the newest value of each (kind, key) soon after it changed; best effort, never raises."""

    def __init__(self, store: Store, *, clock: Now = time.time) -> None:
        self._store = store
        self._clock = clock
        self._pending: dict[tuple[str, str], Pending] = {}
        self._writer: asyncio.Task | None = None
        self._hurry = False  # `flush`: no waiting for an idle loop
        self._gave_up = False  # a write failed during `flush`: the store is away, stop trying for now

    def set(self, kind: str, key: str, value: Record | None, expires_at: float) -> None:
        """Make `value` the record's newest value (None: delete it), to be written soon."""
        self._pending[(kind, key)] = (value, expires_at)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())

    def pending(self, kind: str, key: str) -> Pending | None:
        """The value not written yet, if any (a reader on this node must not get an older one)."""
        return self._pending.get((kind, key))

    async def _write_all(self) -> None:
        loop = asyncio.get_running_loop()
        # the deadline of the oldest change not written yet: set when the writer starts (the first
        # change), and again after an overdue round for what came during it
        deadline = loop.time() + MAX_WAIT_SECONDS
        while self._pending:
            while not self._hurry and loop.time() < deadline:
                before = loop.time()
                await asyncio.sleep(0)  # one turn of the loop: how much else is there to do?
                if loop.time() - before < BUSY_SECONDS:
                    break
                await asyncio.sleep(PAUSE_SECONDS)
            overdue = self._hurry or loop.time() >= deadline
            # idle: the oldest record, then look again; overdue: everything pending, without waiting
            batch = list(self._pending) if overdue else list(self._pending)[:1]
            failed = False
            for key in batch:
                entry = self._pending.pop(key, None)
                if entry is None:
                    continue
                if not await self._write(*key, *entry):
                    self._pending.setdefault(key, entry)  # unless a newer value is pending already
                    failed = True
            if failed:
                if self._hurry:
                    self._gave_up = True
                    return  # `flush` does not wait for a store that fails
                await asyncio.sleep(RETRY_SECONDS)
            if overdue:
                deadline = loop.time() + MAX_WAIT_SECONDS

    async def _write(self, kind: str, key: str, value: Record | None, expires_at: float) -> bool:
        """Store one record; False when the store failed (logged)."""
        ttl = expires_at - self._clock()
        try:
            if value is None or ttl <= 0:
                await self._store.delete(kind, key)
            else:
                await self._store.put(kind, key, value, ttl=ttl)
        except Exception as exc:  # the live room goes on; only a later reader misses this change
            log.warning("%s/%s not kept in the store: %s", kind, key, exc)
            return False
        return True

    async def flush(self) -> None:
        """Write everything pending now, and wait until it is written (or failed once)."""
        self._hurry = True
        self._gave_up = False
        try:
            while not self._gave_up:  # a change made while flushing is written too
                writer = self._writer
                if writer is None or writer.done():
                    if not self._pending:
                        return
                    self._writer = writer = asyncio.ensure_future(self._write_all())
                await asyncio.gather(writer, return_exceptions=True)
        finally:
            self._hurry = False
