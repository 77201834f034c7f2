"""Records a live room keeps in the shared store for later (its chat so far, who is in it), written behind
the conversation instead of in its way.

A live room is served by one node (signaling/nodes.py), which holds the truth in memory; the store's copy
is for whoever comes after: another node the room moves to when this one dies, a process restart. Writing
that copy while a chat message or a join waits for it put a store round trip (and, with a full chat, a
record of up to 100 KB read, compared and written again) into every message: a burst of 500 rooms
chatting at once queued behind 1,000 store operations and stalled for half a second (docs/benchmarks.md).

So a change only replaces the record's pending value, and one writer task stores the newest value of each
record: nothing waits for the write (a message is delivered first, its record is stored a moment later),
changes to one record that come while the writer waits cost one write, and however many rooms change at
once, the writer holds at most one store operation at a time. It writes up to BATCH_RECORDS records in
one store operation (`Store.put_many`: one Redis round trip, one SQLite transaction): written one by one,
the 500 records of a 500-room burst took 500 Redis transactions of redis-py's work (~0.5 ms of this
process each, some 250 ms in all) and still ran when the next burst came (in one profiled run a third
of the loop's time around a burst; docs/benchmarks.md, issue 21). It writes while the event loop is idle
(and, with many records pending, once no change came for QUIET_SECONDS), and waits while the loop is
busy (a burst of messages being delivered), for at most MAX_WAIT_SECONDS
counted from the first change it has not written yet: once that is over, it writes everything pending,
batch after batch, without waiting again (waiting per record let a busy node store ~2 records a second,
its store trailing 200 active rooms by ~100 s). A failed write is put back unless a newer value came
meanwhile, and tried again after RETRY_SECONDS. `None` deletes. A node that dies loses at most the
changes not stored yet; `flush` (shutdown, expiry, tests) writes everything pending at once (once: a
store that does not answer leaves it pending, for the next change to retry).

Who must know that a change is stored before answering (a chat message's sender: its acknowledgement
says "kept", and a page resends what was never acknowledged) awaits `settled`, which resolves True once
the record's value of that moment, or a newer one, has been written, and False when no write succeeded
within SETTLE_LIMIT_SECONDS (the store away or hanging; the record stays pending and is retried).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sprechstunde.clock import Now
from sprechstunde.store.port import Put, Record, Store

log = logging.getLogger(__name__)

Pending = tuple[Record | None, float]  # the newest value (None: delete) and when it expires (epoch)
BUSY_SECONDS = 0.002  # one turn of the event loop taking longer than this: it has other work
# with more than QUIET_ABOVE records pending (many rooms changing at once: a burst), no change for
# QUIET_SECONDS before the writer starts (unless overdue): the messages of a burst arrive over some
# milliseconds, with short loop turns between them that look idle, and batches written then hold up
# the rest of the burst. A few pending records (one room's chat) are written at the first idle turn.
QUIET_SECONDS = 0.05
QUIET_ABOVE = 8
PAUSE_SECONDS = 0.005  # how long the writer steps back then
MAX_WAIT_SECONDS = 0.5  # written after this even on a loop that stays busy
RETRY_SECONDS = 1.0  # after a failed write (the store away), before the writer tries again
# records per store operation: a batch costs the loop ~2 ms of encoding and parsing on Redis, so the
# messages of a burst that arrive meanwhile wait no longer than for one loop turn
BATCH_RECORDS = 50
SETTLE_LIMIT_SECONDS = 5.0  # `settled` answers False after this without a successful write
# the loop runs a timer up to its clock's resolution early: a limit that close is over
EARLY_SECONDS = max(0.001, time.get_clock_info("monotonic").resolution)


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class WriteBehind:
    """Stores the newest value of each (kind, key) soon after it changed; best effort, never raises."""

    def __init__(self, store: Store, *, clock: Now = time.time) -> None:
        self._store = store
        self._clock = clock
        self._pending: dict[tuple[str, str], Pending] = {}
        self._writer: asyncio.Task | None = None
        self._hurry = False  # `flush`: no waiting for an idle loop
        self._gave_up = False  # a write failed during `flush`: the store is away, stop trying for now
        self._changed = 0.0  # the loop's time of the latest `set`
        # `settled` futures of records with a value pending, with the loop time at which they give up:
        # resolved when that value (or a newer one) was written, or after the limit. Oldest first (the
        # order they were asked in), so one timer, `_limit`, serves them all: a timer per record cost
        # every chat message of a burst a push onto the loop's heap of timers and a cancellation.
        self._waiting: dict[tuple[str, str], tuple[asyncio.Future[bool], float]] = {}
        self._limit: asyncio.TimerHandle | None = None
        self._settle_limit = SETTLE_LIMIT_SECONDS  # one for the instance: deadlines come in order
        self._writing: dict[tuple[str, str], Pending] = {}  # the batch being written now

    def set(self, kind: str, key: str, value: Record | None, expires_at: float) -> None:
        """Make `value` the record's newest value (None: delete it), to be written soon."""
        self._pending[(kind, key)] = (value, expires_at)
        self._changed = asyncio.get_running_loop().time()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())

    def settled(self, kind: str, key: str) -> asyncio.Future[bool]:
        """Resolves True once the record's value pending now, or a newer one, is written; at once when
        nothing is pending; False after SETTLE_LIMIT_SECONDS without a successful write (the store away
        or hanging: a failed write is retried meanwhile). Everyone asking while one value is pending
        shares one future (a burst of 500 chat messages: one per room, no timer per message)."""
        record = (kind, key)
        waiting = self._waiting.get(record)
        if waiting is not None:
            return waiting[0]
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if record in self._pending or record in self._writing:
            deadline = loop.time() + self._settle_limit
            self._waiting[record] = (future, deadline)
            if self._limit is None:
                self._limit = loop.call_at(deadline, self._give_up)
        else:
            future.set_result(True)
        return future

    def _give_up(self) -> None:
        """Answer False to those waiting longer than the limit, and let whoever asks next about their
        records wait for the next write; then wait for the oldest one left, if any."""
        self._limit = None
        loop = asyncio.get_running_loop()
        now = loop.time() + EARLY_SECONDS
        over: list[tuple[str, str]] = []
        for record, (_, deadline) in self._waiting.items():  # oldest first: stop at the first not over
            if deadline > now:
                self._limit = loop.call_at(deadline, self._give_up)
                break
            over.append(record)
        for record in over:
            _resolve(self._waiting.pop(record)[0], False)

    def _settle(self, key: tuple[str, str]) -> None:
        """The record's value was written: wake who waits for it, unless a newer value came meanwhile
        (its own write settles them, and it holds what they wait for)."""
        if key in self._pending:
            return
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            _resolve(waiting[0], True)

    def pending(self, kind: str, key: str) -> Pending | None:
        """The value not written yet or being written, if any (a reader on this node must not get an
        older one from the store)."""
        return self._pending.get((kind, key)) or self._writing.get((kind, key))

    async def _write_all(self) -> None:
        loop = asyncio.get_running_loop()
        # the deadline of the oldest change not written yet: set when the writer starts (the first
        # change), and again after an overdue round for what came during it
        deadline = loop.time() + MAX_WAIT_SECONDS
        while self._pending:
            while not self._hurry and loop.time() < deadline:
                quiet = self._changed + QUIET_SECONDS - loop.time()
                if quiet > 0 and len(self._pending) > QUIET_ABOVE:
                    await asyncio.sleep(min(quiet, deadline - loop.time()))
                    continue
                before = loop.time()
                await asyncio.sleep(0)  # one turn of the loop: how much else is there to do?
                if loop.time() - before < BUSY_SECONDS:
                    break
                await asyncio.sleep(PAUSE_SECONDS)
            overdue = self._hurry or loop.time() >= deadline
            # idle: the oldest batch, then look again; overdue: everything pending, batch after batch
            # (each one store operation, the loop getting its turns in between), without waiting
            keys = list(self._pending) if overdue else list(self._pending)[:BATCH_RECORDS]
            failed = False
            for start in range(0, len(keys), BATCH_RECORDS):
                batch: dict[tuple[str, str], Pending] = {}
                for key in keys[start : start + BATCH_RECORDS]:
                    entry = self._pending.pop(key, None)
                    if entry is not None:
                        batch[key] = entry
                self._writing = batch
                try:
                    lost = await self._write_batch(batch)
                finally:
                    self._writing = {}
                for key, entry in lost.items():
                    self._pending.setdefault(key, entry)  # unless a newer value is pending already
                    failed = True
                for key in batch:
                    if key not in lost:
                        self._settle(key)
            if failed:
                if self._hurry:
                    self._gave_up = True
                    return  # `flush` does not wait for a store that fails
                await asyncio.sleep(RETRY_SECONDS)
            if overdue:
                deadline = loop.time() + MAX_WAIT_SECONDS

    async def _write_batch(self, batch: dict[tuple[str, str], Pending]) -> dict[tuple[str, str], Pending]:
        """Store `batch`: the values in one `put_many` (a test double without it: one `put` each), deletions
        one by one.
        Returns what failed (logged)."""
        now = self._clock()
        put_many = getattr(self._store, "put_many", None)
        failed: dict[tuple[str, str], Pending] = {}
        puts: dict[tuple[str, str], Pending] = {}
        for key, entry in batch.items():
            value, expires_at = entry
            if put_many is not None and value is not None and expires_at > now:
                puts[key] = entry
            elif not await self._write(*key, *entry):
                failed[key] = entry
        if puts:
            assert put_many is not None
            try:
                await put_many([Put(k, key, v, ttl=e - now) for (k, key), (v, e) in puts.items()])
            except Exception as exc:  # as in `_write`: the live room goes on
                log.warning("%d records (%s …) not kept in the store: %s", len(puts), next(iter(puts)), exc)
                failed.update(puts)
        return failed

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
