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


@pytest.fixture
async def store(tmp_path, clock):
    s = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
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
