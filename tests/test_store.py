# Over 500 lines: the whole port contract in one file, so both adapters run exactly the same list.
"""The storage port's contract, run against both adapters: embedded (SQLite) and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from sprechstunde.store import RedisStore, SQLiteStore
from sprechstunde.store.port import Change, Put, StoreContention, Updated, from_record, update

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@contextlib.asynccontextmanager
async def redis_namespace(url: str = REDIS_URL):
    """A fresh key prefix on the real server at 127.0.0.1:6379; its keys are removed afterwards.

    Without a server the test is skipped, except under CI (`CI` set), where `./run test` starts one."""
    client = Redis.from_url(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"no Redis server at {url} ({exc}); `./run test` starts one"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    prefix = f"sprechstunde-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["embedded", "redis"])
async def store(request, tmp_path, clock):
    """The same contract for every adapter; the Redis one uses a real server and a per-test prefix."""
    if request.param == "embedded":
        s = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
        yield s
        await s.close()
        return
    async with redis_namespace() as prefix:
        s = RedisStore(REDIS_URL, prefix=prefix, clock=clock)
        yield s
        await s.close()


@pytest.fixture(params=["embedded", "redis"])
async def twins(request, tmp_path, clock):
    """Two handles (own connections) on the same data, as two server processes would hold them."""
    if request.param == "embedded":
        pair = [SQLiteStore(tmp_path / "s.sqlite3", clock=clock) for _ in range(2)]
        yield pair
        for s in pair:
            await s.close()
        return
    async with redis_namespace() as prefix:
        pair = [RedisStore(REDIS_URL, prefix=prefix, clock=clock) for _ in range(2)]
        yield pair
        for s in pair:
            await s.close()


async def test_put_get_delete(store):
    assert await store.get("room", "a") is None
    await store.put("room", "a", {"office": "vhs", "n": 1})
    assert await store.get("room", "a") == {"office": "vhs", "n": 1}
    assert await store.delete("room", "a") is True
    assert await store.delete("room", "a") is False
    assert await store.get("room", "a") is None


async def test_kinds_are_separate_namespaces(store):
    await store.put("room", "x", {"v": 1})
    await store.put("staff", "x", {"v": 2})
    assert (await store.get("room", "x"))["v"] == 1
    assert await store.scan("staff") == [("x", {"v": 2})]


async def test_expiry(store, clock):
    await store.put("session", "s", {"u": "demo"}, ttl=10)
    clock.now += 9
    assert await store.get("session", "s") is not None
    clock.now += 2
    assert await store.get("session", "s") is None
    assert await store.scan("session") == []
    # An expired record no longer blocks creation.
    assert await store.create("session", "s", {"u": "new"}) is True


async def test_put_many_writes_every_record_in_one_operation(store, clock):
    await store.put("chat-history", "r0", {"messages": ["old"]})
    await store.put_many([])  # nothing to write: no error
    await store.put_many(
        [
            Put("chat-history", "r0", {"messages": ["new"]}, ttl=10),  # replaces
            Put("chat-history", "r1", {"messages": ["a"]}, ttl=10),
            Put("room-roster", "r1", {"participants": []}),  # another kind, no expiry
            Put("chat-history", "r2", {"messages": ["first"]}, ttl=10),
            Put("chat-history", "r2", {"messages": ["second"]}, ttl=10),  # named twice: the later wins
        ]
    )
    assert await store.scan("chat-history") == [
        ("r0", {"messages": ["new"]}),
        ("r1", {"messages": ["a"]}),
        ("r2", {"messages": ["second"]}),
    ]
    assert await store.get("room-roster", "r1") == {"participants": []}
    clock.now += 11
    assert await store.scan("chat-history") == []
    assert await store.get("room-roster", "r1") == {"participants": []}


async def test_create_is_atomic_under_concurrency(store):
    results = await asyncio.gather(*(store.create("room", "same", {"i": i}) for i in range(50)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get("room", "same") == {"i": winner}


async def test_records_survive_reopen(tmp_path, clock):
    path = tmp_path / "durable.sqlite3"
    first = SQLiteStore(path, clock=clock)
    await first.put("room", "r", {"office": "vhs"})
    await first.close()
    second = SQLiteStore(path, clock=clock)
    assert await second.get("room", "r") == {"office": "vhs"}
    await second.close()


# --- compare-and-set, counters, prefix scan ---------------------------------------------------------


async def test_compare_and_set(store):
    assert await store.compare_and_set("t", "a", None, {"v": 1}) is True
    assert await store.compare_and_set("t", "a", None, {"v": 9}) is False  # exists now
    assert await store.compare_and_set("t", "a", {"v": 2}, {"v": 9}) is False  # stale expectation
    assert await store.compare_and_set("t", "a", {"v": 1}, {"v": 2}) is True
    assert await store.get("t", "a") == {"v": 2}
    assert await store.compare_and_set("t", "missing", {"v": 1}, {"v": 2}) is False
    assert await store.get("t", "missing") is None


async def test_compare_and_set_sees_expired_as_absent(store, clock):
    await store.put("t", "a", {"v": 1}, ttl=5)
    clock.now += 6
    assert await store.compare_and_set("t", "a", {"v": 1}, {"v": 2}) is False
    assert await store.compare_and_set("t", "a", None, {"v": 3}, ttl=5) is True
    assert await store.get("t", "a") == {"v": 3}
    clock.now += 6
    assert await store.get("t", "a") is None


async def test_compare_and_set_loses_no_update_under_concurrency(store):
    await store.put("t", "count", {"n": 0})

    async def bump() -> None:
        while True:
            current = await store.get("t", "count")
            if await store.compare_and_set("t", "count", current, {"n": current["n"] + 1}):
                return

    await asyncio.gather(*(bump() for _ in range(40)))
    assert await store.get("t", "count") == {"n": 40}


async def test_update_is_the_one_compare_and_set_loop(twins, clock):
    """`update` (store/port.py) reads, changes and compare-and-sets one record, starting over when another
    writer (here: another handle, as another process) got there first; it loses no change, leaves a
    record alone when `change` hands it back, passes a refusal through and bounds its retries."""
    one, two = twins
    assert (await update(one, "t", "count", lambda r: {"n": 0}, ttl=5)).written

    # concurrent increments over two handles, with sync and async changes: none is lost
    async def slow_bump(record):
        await asyncio.sleep(0)
        return {"n": record["n"] + 1}

    await asyncio.gather(
        *(update(s, "t", "count", lambda r: {"n": r["n"] + 1}) for _ in range(15) for s in twins),
        *(update(one, "t", "count", slow_bump) for _ in range(10)),
    )
    assert await two.get("t", "count") == {"n": 40}
    same = await update(one, "t", "count", lambda r: r)  # handed back: nothing is written
    assert not same.written and same.before == same.after == {"n": 40}
    absent = await update(one, "t", "missing", lambda r: r)
    assert absent == Updated(None, None) and await one.get("t", "missing") is None

    def refuse(record):
        raise LookupError("not now")

    with pytest.raises(LookupError):
        await update(one, "t", "count", refuse)
    assert await one.get("t", "count") == {"n": 40}
    clock.now += 6  # written with ttl=5 at first, then by updates without one: never expires now
    assert await one.get("t", "count") == {"n": 40}

    async def overtaken(record):
        await two.put("t", "count", {"n": record["n"] - 1})  # another writer, every time
        return {"n": 0}

    with pytest.raises(StoreContention):
        await update(one, "t", "count", overtaken, attempts=3)


@dataclass(frozen=True)
class _Stored:
    name: str
    size: int = 0
    tags: list[str] = field(default_factory=list)


def test_records_load_across_versions():
    """`from_record`: a field of a newer version is ignored, a field an older one lacks gets its default;
    only a field without a default must be there."""
    assert from_record(_Stored, {"name": "a", "size": 3, "colour": "blue"}) == _Stored("a", 3)
    assert from_record(_Stored, {"name": "b"}) == _Stored("b", 0, [])
    with pytest.raises(TypeError):
        from_record(_Stored, {"size": 1})


async def test_compare_and_set_many_writes_all_or_nothing(store, clock):
    """Issue 15, finding 8: a seat and its booking change together or not at all."""
    await store.put("seat", "anna", {"busy": []})
    assert await store.incr("seq", "2027") == 1
    stale = [
        Change("seat", "anna", {"busy": []}, {"busy": ["b1"]}),
        Change("booking", "b1", None, {"v": 1}),
        Change("seq", "2027", {"n": 0}, {"n": 1}),  # stale: the counter is at 1
    ]
    assert await store.compare_and_set_many(stale) is False
    assert await store.get("seat", "anna") == {"busy": []} and await store.get("booking", "b1") is None
    fresh = [
        Change("seat", "anna", {"busy": []}, {"busy": ["b1"]}),
        Change("booking", "b1", None, {"v": 1}, ttl=5),
        Change("seq", "2027", {"n": 1}, {"n": 2}),  # an incr counter reads as {"n": value}
    ]
    assert await store.compare_and_set_many(fresh) is True
    assert await store.get("seat", "anna") == {"busy": ["b1"]}
    assert await store.get("booking", "b1") == {"v": 1}
    assert await store.incr("seq", "2027") == 3
    assert await store.compare_and_set_many(fresh) is False  # the booking exists now
    assert await store.compare_and_set_many([]) is True
    with pytest.raises(ValueError):
        await store.compare_and_set_many([Change("t", "x", None, {"v": 1}), Change("t", "x", None, {"v": 2})])
    clock.now += 6  # expired counts as absent
    assert await store.compare_and_set_many([Change("booking", "b1", None, {"v": 2})]) is True
    assert await store.scan("booking") == [("b1", {"v": 2})]


async def test_compare_and_set_many_loses_no_update_under_concurrency(twins):
    """Each task moves one unit from one record to another: however the tasks interleave (two handles,
    as two processes), the sum stays and no move is lost."""
    one, two = twins
    await one.put("acct", "a", {"n": 60})
    await one.put("acct", "b", {"n": 0})

    async def move(store) -> None:
        while True:
            a, b = await store.get("acct", "a"), await store.get("acct", "b")
            changes = [Change("acct", "a", a, {"n": a["n"] - 1}), Change("acct", "b", b, {"n": b["n"] + 1})]
            if await store.compare_and_set_many(changes):
                return

    await asyncio.gather(*(move(s) for _ in range(30) for s in twins))
    assert (await two.get("acct", "a"), await two.get("acct", "b")) == ({"n": 0}, {"n": 60})


async def test_incr_is_atomic_and_per_key(store):
    values = await asyncio.gather(*(store.incr("seq", "2026") for _ in range(60)))
    assert sorted(values) == list(range(1, 61))
    assert await store.incr("seq", "2027") == 1
    assert await store.incr("seq", "2026") == 61


async def test_scan_with_prefix(store):
    for key in ("2026-03-01/a", "2026-03-01/b", "2026-03-02/a", "2026-03-0%/x", "2026-04-01/a"):
        await store.put("stat", key, {"k": key})
    assert [k for k, _ in await store.scan("stat", "2026-03-01/")] == ["2026-03-01/a", "2026-03-01/b"]
    assert len(await store.scan("stat", "2026-03")) == 4
    assert [k for k, _ in await store.scan("stat", "2026-03-0%")] == ["2026-03-0%/x"]  # no wildcards
    assert len(await store.scan("stat")) == 5


# --- ordered queues ------------------------------------------------------------------------------


async def test_queue_orders_by_score_then_key(store):
    assert await store.enqueue("q", "b", lane="vhs:de", score=2) is True
    assert await store.enqueue("q", "a", lane="vhs:de", score=2) is True
    assert await store.enqueue("q", "c", lane="vhs:en", score=1) is True
    assert await store.enqueue("q", "c", lane="vhs:en", score=0) is False  # already queued
    assert [i.key for i in await store.queued("q")] == ["c", "a", "b"]
    assert [i.key for i in await store.queued("q", ["vhs:de"])] == ["a", "b"]
    assert await store.queued("q", []) == []
    assert await store.queued("other") == []


async def test_claim_first_takes_lowest_in_given_lanes(store, clock):
    await store.enqueue("q", "de1", lane="vhs:de", score=10)
    await store.enqueue("q", "en1", lane="vhs:en", score=5)
    await store.enqueue("q", "fb1", lane="fb:de", score=1)
    item = await store.claim_first("q", ["vhs:de", "vhs:en"], "anna")
    assert (item.key, item.lane, item.score, item.claimed_by, item.claimed_at) == (
        "en1",
        "vhs:en",
        5,
        "anna",
        clock.now,
    )
    assert (await store.claim_first("q", ["vhs:de", "vhs:en"], "ben")).key == "de1"
    assert await store.claim_first("q", ["vhs:de", "vhs:en"], "ben") is None
    assert await store.claim_first("q", [], "ben") is None
    assert [i.key for i in await store.queued("q")] == ["fb1"]
    assert [i.key for i in await store.queued("q", claimed=True)] == ["en1", "de1"]
    assert len(await store.queued("q", claimed=None)) == 3


async def test_claim_first_respects_max_score(store):
    await store.enqueue("q", "later", lane="l", score=100)
    assert await store.claim_first("q", ["l"], "anna", max_score=99) is None
    assert (await store.claim_first("q", ["l"], "anna", max_score=100)).key == "later"


async def test_claim_first_hands_each_item_to_exactly_one_claimant(store):
    for i in range(50):
        await store.enqueue("q", f"e{i:02d}", lane="l", score=i)
    results = await asyncio.gather(*(store.claim_first("q", ["l"], f"adv{n}") for n in range(100)))
    won = [r for r in results if r is not None]
    assert len(won) == 50 and results.count(None) == 50
    assert sorted(r.key for r in won) == [f"e{i:02d}" for i in range(50)]
    assert len({r.claimed_by for r in won}) == 50
    assert await store.queued("q") == []


async def test_claim_item(store):
    await store.enqueue("q", "x", lane="vhs:de", score=1)
    assert await store.claim_item("q", "x", "anna", lanes=["fb:de"]) is None  # wrong lane
    assert await store.claim_item("q", "nope", "anna") is None
    results = await asyncio.gather(*(store.claim_item("q", "x", f"adv{n}") for n in range(20)))
    assert len([r for r in results if r is not None]) == 1
    held = await store.queue_item("q", "x")
    assert held.claimed_by.startswith("adv") and held.claimed_at is not None


async def test_dequeue_conditions(store):
    await store.enqueue("q", "x", lane="l", score=1)
    await store.claim_item("q", "x", "anna")
    assert await store.dequeue("q", "x", only_unclaimed=True) is False
    assert await store.dequeue("q", "x", claimant="ben") is False
    assert await store.dequeue("q", "x", claimant="anna") is True
    assert await store.queue_item("q", "x") is None
    assert await store.dequeue("q", "x") is False
    await store.enqueue("q", "y", lane="l", score=1)
    assert await store.dequeue("q", "y", only_unclaimed=True) is True


async def test_enqueue_replace_moves_item_back_unclaimed(store):
    await store.enqueue("q", "x", lane="vhs:de", score=1)
    await store.claim_item("q", "x", "anna")
    assert await store.enqueue("q", "x", lane="fb:de", score=1, replace=True) is True
    item = await store.queue_item("q", "x")
    assert (item.lane, item.claimed_by, item.claimed_at) == ("fb:de", None, None)


async def test_queues_survive_reopen(tmp_path, clock):
    path = tmp_path / "durable.sqlite3"
    first = SQLiteStore(path, clock=clock)
    await first.enqueue("q", "x", lane="l", score=1)
    await first.enqueue("q", "y", lane="l", score=2)
    await first.claim_first("q", ["l"], "anna")
    await first.incr("seq", "2026")
    await first.close()
    second = SQLiteStore(path, clock=clock)
    assert [(i.key, i.claimed_by) for i in await second.queued("q", claimed=None)] == [
        ("x", "anna"),
        ("y", None),
    ]
    assert await second.incr("seq", "2026") == 2
    await second.close()


# --- several processes, odd keys ------------------------------------------------------------------


async def test_two_handles_share_records_and_claim_each_item_once(twins):
    one, two = twins
    await one.put("room", "r", {"v": 1})
    assert await two.get("room", "r") == {"v": 1}
    assert [await s.create("room", "new", {"by": i}) for i, s in enumerate(twins)] == [True, False]
    for i in range(30):
        await one.enqueue("q", f"e{i:02d}", lane="vhs:de" if i % 2 else "vhs:en", score=i)
    claims = await asyncio.gather(
        *(s.claim_first("q", ["vhs:de", "vhs:en"], f"adv{n}") for n in range(30) for s in twins)
    )
    won = [c for c in claims if c is not None]
    assert sorted(c.key for c in won) == [f"e{i:02d}" for i in range(30)]
    counters = await asyncio.gather(*(s.incr("seq", "2026") for _ in range(20) for s in twins))
    assert sorted(counters) == list(range(1, 41))


async def test_keys_sort_by_code_point_and_may_hold_any_character(store):
    keys = ["b", "a:b", "a", "ä", "a b", "Z", "a%", "\u00e9t\u00e9", "\U0001f600", "a*", "a[1]"]
    for key in keys:
        await store.put("k:ind", key, {"k": key})
    assert [k for k, _ in await store.scan("k:ind")] == sorted(keys)
    assert [k for k, _ in await store.scan("k:ind", "a")] == sorted(k for k in keys if k.startswith("a"))
    assert await store.scan("k", "ind") == [] and await store.get("k", "ind:a") is None
    for i, key in enumerate(keys):
        await store.enqueue("q:x", key, lane="l:1", score=1 if i % 2 else 0.5)
    expected = sorted(keys, key=lambda k: (1 if keys.index(k) % 2 else 0.5, k))
    assert [i.key for i in await store.queued("q:x")] == expected
    first = await store.claim_first("q:x", ["l:1", "l"], "anna")
    assert first.key == expected[0] and first.score == 0.5
    assert (await store.claim_item("q:x", "\U0001f600", "ben")).claimed_by == "ben"
    assert await store.queued("q") == []


async def test_scores_and_claim_times_keep_full_precision(store, clock):
    clock.now = 1_764_000_000.123456
    await store.enqueue("q", "x", lane="l", score=1_764_000_000.987654)
    claimed = await store.claim_first("q", ["l"], "anna", max_score=1_764_000_000.987654)
    assert (claimed.score, claimed.claimed_at) == (1_764_000_000.987654, 1_764_000_000.123456)
    item = await store.queue_item("q", "x")
    assert (item.score, item.claimed_at) == (1_764_000_000.987654, 1_764_000_000.123456)


async def test_delete_and_scan_forget_expired_records(store, clock):
    await store.put("s", "a", {"v": 1}, ttl=5)
    await store.put("s", "b", {"v": 2})
    clock.now += 6
    assert await store.delete("s", "a") is False
    assert await store.scan("s") == [("b", {"v": 2})]
    assert await store.incr("s", "a") == 1  # an expired record counts as absent


# --- channels -----------------------------------------------------------------------------------


async def test_channels_deliver_in_order_to_every_subscriber_of_that_channel(store):
    first, second = await store.subscribe("queue"), await store.subscribe("queue")
    other = await store.subscribe("room-events")
    await store.publish("queue", {"n": 1})
    await store.publish("queue", {"n": 2, "text": "Grüße"})
    for subscription in (first, second):
        assert await asyncio.wait_for(subscription.next(), 2) == {"n": 1}
        assert await asyncio.wait_for(subscription.next(), 2) == {"n": 2, "text": "Grüße"}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(other.next(), 0.3)
    await second.close()
    await store.publish("queue", {"n": 3})
    assert await asyncio.wait_for(first.next(), 2) == {"n": 3}
    for subscription in (first, other):
        await subscription.close()


async def test_redis_channels_reach_other_processes_and_survive_a_dropped_connection():
    async with redis_namespace() as prefix:
        publisher = RedisStore(REDIS_URL, prefix=prefix)
        listener = RedisStore(REDIS_URL, prefix=prefix)
        raw = Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            subscription = await listener.subscribe("queue")
            await publisher.publish("queue", {"from": "node-1"})
            assert await asyncio.wait_for(subscription.next(), 2) == {"from": "node-1"}
            # Redis drops every pub/sub connection (as on a restart): the subscription comes back.
            await raw.client_kill_filter(_type="pubsub")
            pending = asyncio.ensure_future(subscription.next())
            for _ in range(50):
                await publisher.publish("queue", {"from": "again"})
                done, _ = await asyncio.wait({pending}, timeout=0.2)
                if done:
                    break
            assert pending.result() == {"from": "again"}
            await subscription.close()
        finally:
            for store in (publisher, listener):
                await store.close()
            await raw.aclose()


# --- Redis only: native expiry and the key layout ----------------------------------------------


async def test_redis_records_expire_natively_and_leave_no_index_behind():
    async with redis_namespace() as prefix:
        store = RedisStore(REDIS_URL, prefix=prefix)
        raw = Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            await store.put("session", "s", {"u": "demo"}, ttl=0.2)
            await store.incr("seq", "2026")
            assert 0 < await raw.pttl(f"{prefix}r:session:s") <= 200
            assert await raw.pttl(f"{prefix}r:seq:2026") == -1  # counters never expire
            await asyncio.sleep(0.3)
            assert await raw.exists(f"{prefix}r:session:s") == 0
            assert await raw.zrange(f"{prefix}i:session", 0, -1) == ["s"]
            assert await store.scan("session") == []
            assert await raw.exists(f"{prefix}i:session") == 0  # cleaned by the scan
            await store.enqueue("q", "x", lane="l", score=1)
            await store.claim_first("q", ["l"], "anna")
            await store.dequeue("q", "x", claimant="anna")
            # An emptied queue leaves no key behind; the counter and its index entry stay.
            left = sorted([k async for k in raw.scan_iter(match=f"{prefix}*")])
            assert left == [f"{prefix}i:seq", f"{prefix}r:seq:2026"]
        finally:
            await store.close()
            await raw.aclose()
