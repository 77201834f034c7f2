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


async def test_a_room_hosted_here_is_joined_without_reading_the_node_list(tmp_path):
    """Issue 21 (joins per second with Redis): the second participant of a room this node hosts, and
    every reconnect to it, costs one read of the pin; the node list is read for rooms pinned elsewhere
    or not at all."""
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    here = NodeRegistry(store, "a", "http://a.example", lambda: (0, 0), clock=clock)
    there = NodeRegistry(store, "b", "http://b.example", lambda: (9, 18), clock=clock)
    scans: list[str] = []
    scan = store.scan

    async def counted_scan(kind: str, *args, **kwargs):
        scans.append(kind)
        return await scan(kind, *args, **kwargs)

    store.scan = counted_scan
    try:
        await here.beat()
        await there.beat()
        clock.now += 0.1
        assert (await here.home("room", clock.now + 3600)).node_id == "a"  # new: the list picks a
        assert len(scans) == 1
        for _ in range(3):  # the second participant, then reconnects
            home = await here.home("room", clock.now + 3600)
            assert (home.node_id, home.url) == ("a", "http://a.example")
        assert len(scans) == 1
        # asked at the other node, the room is found on a: that reads the list (a's liveness)
        assert (await there.home("room", clock.now + 3600)).node_id == "a"
        assert len(scans) == 2
    finally:
        await store.close()


async def test_a_phone_consultation_is_pinned_to_the_node_holding_the_call(tmp_path):
    """Issue 20: the SIP node pins its caller's room to itself, even when another node is less loaded,
    unless the room is live elsewhere already; a gone node's pin does not hold it back."""
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    sip = NodeRegistry(store, "sip", "http://sip.example", lambda: (5, 10), clock=clock)  # busy
    other = NodeRegistry(store, "other", "http://other.example", lambda: (0, 0), clock=clock)  # idle
    try:
        await sip.beat()
        await other.beat()
        clock.now += 0.1
        assert (await sip.pin_here("phone-room", clock.now + 3600)).node_id == "sip"
        # the advisor's browser reaching the idle node is sent to the caller's node
        assert (await other.home("phone-room", clock.now + 3600)).node_id == "sip"
        # a room the advisor's browser pinned first (live on the other node) stays there
        assert (await other.home("video-first", clock.now + 3600)).node_id == "other"
        assert (await sip.pin_here("video-first", clock.now + 3600)).node_id == "other"
        # that node gone (no heartbeat past its time to live): the next pin brings the room here
        clock.now += 10.0
        await sip.beat()
        assert (await sip.pin_here("video-first", clock.now + 3600)).node_id == "sip"
    finally:
        await store.close()


async def test_the_bridge_pins_the_claimed_callers_room_and_survives_a_store_error():
    from types import SimpleNamespace

    from sprechstunde.phone.bridge import RoomBridge

    room = SimpleNamespace(room_id="r1", expires_at=1234.0)

    class Rooms:
        async def get(self, room_id: str):
            return room if room_id == "r1" else None

    pinned: list[tuple[str, float]] = []

    async def pin_here(room_id: str, expires_at: float):
        pinned.append((room_id, expires_at))
        return SimpleNamespace(node_id="sip")

    bridge = RoomBridge(None, Rooms(), "ws://x/ws", pin_here=pin_here)  # type: ignore[arg-type]
    await bridge.pin(SimpleNamespace(entry_id="e1", room_id="r1"))  # type: ignore[arg-type]
    await bridge.pin(SimpleNamespace(entry_id="e2", room_id="gone"))  # type: ignore[arg-type]
    assert pinned == [("r1", 1234.0)]

    async def broken(room_id: str, expires_at: float):
        raise ConnectionError("store down")

    bridge.pin_here = broken
    await bridge.pin(SimpleNamespace(entry_id="e1", room_id="r1"))  # type: ignore[arg-type]  # no raise
