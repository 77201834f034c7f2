"""The storage port's contract. Issue `multi-node` runs the same suite against the Redis adapter."""

from __future__ import annotations

import asyncio

import pytest

from store import SQLiteStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_store(adapter: str, tmp_path, clock):
    """One store per adapter; issue `multi-node` adds "redis" here and to the fixture's params."""
    if adapter == "embedded":
        return SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    raise ValueError(adapter)


@pytest.fixture(params=["embedded"])
async def store(request, tmp_path, clock):
    s = open_store(request.param, tmp_path, clock)
    yield s
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
