"""signaling/persist.py: the write-behind of a live room's records (chat so far, roster) keeps up with a busy
node, and a write the store refused is tried again unless a newer value replaced it."""

from __future__ import annotations

import asyncio
import time

from sprechstunde.signaling import persist
from sprechstunde.signaling.persist import BATCH_RECORDS, MAX_WAIT_SECONDS, WriteBehind
from sprechstunde.store.port import Put


class Recording:
    """The two store operations WriteBehind uses, in memory; `fail` refuses that many writes first."""

    def __init__(self, fail: int = 0) -> None:
        self.records: dict[tuple[str, str], object] = {}
        self.fail = fail
        self.writes = 0

    async def put(self, kind: str, key: str, value: object, *, ttl: float) -> None:
        await asyncio.sleep(0)  # a store operation gives the loop back, as a real one does
        self.writes += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store away")
        self.records[(kind, key)] = value

    async def delete(self, kind: str, key: str) -> None:
        self.records.pop((kind, key), None)


async def keep_busy(stop: asyncio.Event) -> None:
    """Every turn of the loop takes 2.5 ms: the writer never finds it idle."""
    while not stop.is_set():
        time.sleep(0.0025)
        await asyncio.sleep(0)


async def test_a_busy_loop_gets_all_pending_records_written_soon_after_the_deadline():
    store = Recording()
    writes = WriteBehind(store)  # type: ignore[arg-type]
    stop = asyncio.Event()
    busy = asyncio.ensure_future(keep_busy(stop))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        expires = time.time() + 3600
        for n in range(200):
            writes.set("room-roster", f"room-{n}", {"n": n}, expires)
        while len(store.records) < 200 and loop.time() - started < 5.0:
            await asyncio.sleep(0.01)
        took = loop.time() - started
    finally:
        stop.set()
        await busy
    assert len(store.records) == 200
    # the deadline, then 200 writes of a loop turn (2.5 ms) each; waiting per record wrote ~2 a second
    assert took < MAX_WAIT_SECONDS + 1.0, took


async def test_a_failed_write_is_tried_again_unless_a_newer_value_is_pending():
    store = Recording(fail=1)
    writes = WriteBehind(store)  # type: ignore[arg-type]
    expires = time.time() + 3600
    writes.set("chat-history", "room-1", {"messages": ["a"]}, expires)
    await writes.flush()  # the store refuses: flush gives up, the value stays pending
    assert store.records == {}
    assert writes.pending("chat-history", "room-1") == ({"messages": ["a"]}, expires)
    await writes.flush()
    assert store.records == {("chat-history", "room-1"): {"messages": ["a"]}}

    # a newer value that came while the older one was being written wins over the failed older one
    store.fail = 1
    original = store.put

    async def put_then_change(kind: str, key: str, value: object, *, ttl: float) -> None:
        if value == {"messages": ["a", "b"]}:
            writes.set(kind, key, {"messages": ["a", "b", "c"]}, expires)
        await original(kind, key, value, ttl=ttl)

    store.put = put_then_change  # type: ignore[method-assign]
    writes.set("chat-history", "room-1", {"messages": ["a", "b"]}, expires)
    await writes.flush()
    await writes.flush()
    assert store.records == {("chat-history", "room-1"): {"messages": ["a", "b", "c"]}}


class Batching(Recording):
    """A store with `put_many`, counting its operations; `fail` refuses that many operations first."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__(fail)
        self.operations = 0

    async def put_many(self, puts: list[Put]) -> None:
        await asyncio.sleep(0)
        self.operations += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("store away")
        for put in puts:
            assert put.ttl is not None and put.ttl > 0
            self.records[(put.kind, put.key)] = put.value


async def test_a_burst_of_changes_is_written_in_batches_of_one_store_operation_each():
    """500 rooms changing at once cost the loop ~10 store operations, not 500 (issue 21: written one by
    one on Redis they still ran when the next burst came)."""
    store = Batching()
    writes = WriteBehind(store)  # type: ignore[arg-type]
    expires = time.time() + 3600
    for n in range(500):
        writes.set("chat-history", f"room-{n}", {"n": n}, expires)
    writes.set("chat-history", "room-gone", None, 0.0)  # a deletion goes on its own
    loop = asyncio.get_running_loop()
    started = loop.time()
    while writes.pending("chat-history", "room-499") is not None and loop.time() - started < 5.0:
        await asyncio.sleep(0.01)
    assert len(store.records) == 500
    assert store.writes == 0  # no record written on its own
    assert store.operations == -(-500 // BATCH_RECORDS)


async def test_a_failed_batch_stays_pending_and_is_written_by_the_next_flush():
    store = Batching(fail=1)
    writes = WriteBehind(store)  # type: ignore[arg-type]
    expires = time.time() + 3600
    for n in range(3):
        writes.set("room-roster", f"room-{n}", {"n": n}, expires)
    await writes.flush()  # the store refuses the batch: every record stays pending
    assert store.records == {}
    assert all(writes.pending("room-roster", f"room-{n}") is not None for n in range(3))
    writes.set("room-roster", "room-1", {"n": "newer"}, expires)  # a newer value wins over the failed one
    await writes.flush()
    assert store.records == {
        ("room-roster", "room-0"): {"n": 0},
        ("room-roster", "room-1"): {"n": "newer"},
        ("room-roster", "room-2"): {"n": 2},
    }


class Slow(Recording):
    """A store whose writes take until `release` is set."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__(fail)
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def put(self, kind: str, key: str, value: object, *, ttl: float) -> None:
        self.started.set()
        await self.release.wait()
        await super().put(kind, key, value, ttl=ttl)


async def test_settled_resolves_once_the_value_or_a_newer_one_is_written_and_on_a_failed_write():
    """What a chat message's acknowledgement waits for: not before its record is stored, also while
    the write is in flight; a newer value written covers it; a failed write answers False."""
    store = Slow()
    writes = WriteBehind(store)  # type: ignore[arg-type]
    expires = time.time() + 3600
    assert await writes.settled("chat-history", "r1") is True  # nothing pending: at once
    writes.set("chat-history", "r1", {"messages": [1]}, expires)
    first = writes.settled("chat-history", "r1")
    await asyncio.wait_for(store.started.wait(), 2)  # the write is in flight now
    assert not first.done()
    in_flight = writes.settled("chat-history", "r1")  # asked while the value is being written
    writes.set("chat-history", "r1", {"messages": [1, 2]}, expires)  # a newer value meanwhile
    store.release.set()
    assert await asyncio.wait_for(first, 2) is True
    assert await asyncio.wait_for(in_flight, 2) is True
    assert store.records[("chat-history", "r1")] == {"messages": [1, 2]}  # only after the newer value

    failing = Recording(fail=1)  # one failed write: retried after RETRY_SECONDS, then kept
    writes = WriteBehind(failing)  # type: ignore[arg-type]
    writes.set("chat-history", "r2", {"messages": [1]}, expires)
    retried = writes.settled("chat-history", "r2")
    await asyncio.sleep(0.3)
    assert failing.writes == 1 and not retried.done()  # a failed write answers nothing yet
    assert await asyncio.wait_for(retried, 3) is True
    assert failing.records[("chat-history", "r2")] == {"messages": [1]}


async def test_settled_answers_false_after_the_limit_and_the_next_value_waits_for_its_own_write(monkeypatch):
    """A store that keeps failing (or hangs): False after SETTLE_LIMIT_SECONDS; a value set after that
    is not answered by the old, done future but waits for a write of its own."""
    monkeypatch.setattr(persist, "SETTLE_LIMIT_SECONDS", 0.2)
    store = Slow()
    writes = WriteBehind(store)  # type: ignore[arg-type]
    expires = time.time() + 3600
    try:
        writes.set("chat-history", "r1", {"messages": [1]}, expires)
        first = writes.settled("chat-history", "r1")
        await asyncio.wait_for(store.started.wait(), 2)  # the write hangs in the store
        assert writes.pending("chat-history", "r1") == ({"messages": [1]}, expires)  # in flight: still read
        assert await asyncio.wait_for(first, 2) is False
        writes.set("chat-history", "r1", {"messages": [1, 2]}, expires)
        second = writes.settled("chat-history", "r1")
        assert not second.done()
    finally:
        store.release.set()
        await writes.flush()
    assert await asyncio.wait_for(second, 2) is True


async def test_each_record_waits_its_own_limit_and_a_write_settles_those_not_given_up(monkeypatch):
    """One timer serves every record waiting (a burst of 500 rooms: no timer per chat message): a record
    asked about later is not given up with an earlier one, each answers False at its own limit; asked
    again, a record waits anew (behind the others) and a write that completes first answers True; once
    nobody waits, the next record asked about still gets its own limit."""
    monkeypatch.setattr(persist, "SETTLE_LIMIT_SECONDS", 0.3)
    store = Slow()
    writes = WriteBehind(store)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    expires = time.time() + 3600

    async def answer(future: asyncio.Future[bool], asked: float) -> tuple[bool, float]:
        value = await asyncio.wait_for(future, 2)
        return value, loop.time() - asked

    try:
        writes.set("chat-history", "early", {"messages": [1]}, expires)
        early, early_asked = writes.settled("chat-history", "early"), loop.time()
        await asyncio.wait_for(store.started.wait(), 2)  # its write hangs in the store
        await asyncio.sleep(0.15)
        writes.set("chat-history", "late", {"messages": [2]}, expires)
        late, late_asked = writes.settled("chat-history", "late"), loop.time()
        value, took = await answer(early, early_asked)
        assert value is False and 0.3 <= took < 0.45
        assert not late.done()  # asked 0.15 s later: its limit is not over
        again, again_asked = writes.settled("chat-history", "early"), loop.time()  # still in flight
        assert again is not early and not again.done()
        value, took = await answer(late, late_asked)
        assert value is False and 0.3 <= took < 0.45
        assert not again.done()
        store.release.set()  # the write of "early" completes within its new limit
        value, took = await answer(again, again_asked)
        assert value is True and took < 0.3
        await writes.flush()
        assert store.records[("chat-history", "late")] == {"messages": [2]}
        # nobody waits now: a record asked about next gets its own limit from a timer armed anew
        store.release.clear()
        store.started.clear()
        writes.set("chat-history", "third", {"messages": [3]}, expires)
        third, third_asked = writes.settled("chat-history", "third"), loop.time()
        await asyncio.wait_for(store.started.wait(), 2)
        value, took = await answer(third, third_asked)
        assert value is False and 0.3 <= took < 0.45
    finally:
        store.release.set()
        await writes.flush()
    assert store.records[("chat-history", "third")] == {"messages": [3]}
    assert await writes.settled("chat-history", "third") is True  # written: nothing to wait for
