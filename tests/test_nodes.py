"""Which node a room goes to: the least-loaded live one, also when many rooms start between two heartbeats."""

from __future__ import annotations

from sprechstunde.signaling.nodes import NodeRegistry
from sprechstunde.store import SQLiteStore
from tests.test_store import Clock


async def test_a_burst_of_new_rooms_is_spread_before_the_next_heartbeat(tmp_path):
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    mine: list[str] = []  # rooms the entry node hosts; their two participants join it at once

    def entry_load() -> tuple[int, int]:
        return 1 + len(mine), 2 + 2 * len(mine)  # one call was running already

    entry = NodeRegistry(store, "a", "http://a.example", entry_load, clock=clock)
    worker = NodeRegistry(store, "b", "http://b.example", lambda: (0, 0), clock=clock)  # idle
    try:
        await entry.beat()
        await worker.beat()
        clock.now += 0.1
        # six consultations start within the same second, all asked at the entry node: b's stored load
        # still says 0, but the rooms sent there since count, so they alternate instead of all going to b
        homes = []
        for k in range(6):
            homes.append((await entry.home(f"room-{k}", clock.now + 3600)).node_id)
            if homes[-1] == "a":
                mine.append(f"room-{k}")
        assert homes == ["b", "a", "b", "a", "b", "a"], homes
        # once b's heartbeat reports its three calls, that is what counts (not those plus the pending ones)
        clock.now += 2.0
        worker._load = lambda: (3, 6)
        await worker.beat()
        clock.now += 0.1
        assert (await entry.home("room-6", clock.now + 3600)).node_id == "b"
    finally:
        await store.close()
