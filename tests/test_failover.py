"""Issue 21, failover: when the node hosting a consultation dies, the room moves to a live node at once and
the people in it come back as themselves.

- a node checks the room's node itself before sending a client there (signaling/nodes.py): a refused
  connection moves the room in the same hello; a client's `unreachable` report alone moves nothing;
- the room's roster is in the store (signaling/hub.py), so on the new node everyone resumes under the same
  participant id, name and media state (`resumed`), and the chat so far is there;
- `hello` with `media: false` sets up no peer connection (a signaling-only client);
- the shipped page behind `serve --workers 2`, and behind deploy/nginx.conf: kill -9 of the hosting
  process, both pages decode video again within 3 s, without showing the other person leave and come back
  (bench/failover.py measures it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import aiohttp
from aiohttp import web
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from sprechstunde.rooms.service import RoomService
from sprechstunde.signaling.chat_history import HISTORY_KIND
from sprechstunde.signaling.hub import ROSTER_KIND, Admission
from sprechstunde.signaling.nodes import NODE_KIND, PIN_KIND, NodeRegistry
from sprechstunde.signaling.persist import WriteBehind
from sprechstunde.store import SQLiteStore
from tests import test_multinode
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant
from tests.test_incall_history import joined, say
from tests.test_signaling import next_of
from tests.test_store import Clock

cluster = test_multinode.cluster


def closed_port() -> int:
    """A loopback port nobody listens on (what a killed node's port looks like)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_room_moves_only_when_its_node_is_found_gone(tmp_path, aiohttp_server):
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    healthz = web.Application()
    healthz.router.add_get("/healthz", health)
    alive = await aiohttp_server(healthz)
    here = NodeRegistry(store, "a", "http://a.example", lambda: (5, 10), clock=clock)  # busier
    there = NodeRegistry(
        store, "b", "http://b.example", lambda: (0, 0), address=f"127.0.0.1:{alive.port}", clock=clock
    )
    try:
        await here.beat()
        await there.beat()
        assert (await here.home("room-1", clock.now + 3600)).node_id == "b"
        # a client says it could not reach b: a's own check finds b answering, so the room stays
        clock.now += 1.0
        assert (await here.home("room-1", clock.now + 3600, suspect="b")).node_id == "b"
        assert (await store.get(PIN_KIND, "room-1"))["node"] == "b"
        assert await store.get(NODE_KIND, "b") is not None

        # b is killed: its record has not expired yet, but its port refuses connections; the next hello
        # for the room at a (no report needed once a's last answer about b is no longer fresh) moves it
        there.address = f"127.0.0.1:{closed_port()}"
        await there.beat()
        clock.now += 1.0
        home = await here.home("room-1", clock.now + 3600)
        assert home.node_id == "a"
        assert (await store.get(PIN_KIND, "room-1"))["node"] == "a"
        assert await store.get(NODE_KIND, "b") is None  # the others learn at once, too
        assert [n.node_id for n in await here.alive()] == ["a"]
        # b comes back (a restarted worker): its next heartbeat counts again; the moved room stays on a
        there.address = f"127.0.0.1:{alive.port}"
        clock.now += 2.0
        await there.beat()
        assert sorted(n.node_id for n in await here.alive()) == ["a", "b"]
        assert (await here.home("room-1", clock.now + 3600)).node_id == "a"
    finally:
        await here.close()
        await store.close()


async def test_a_report_is_checked_at_most_every_so_often(tmp_path, aiohttp_server):
    """A client repeating `unreachable` costs the node one check per PROBE_FORCED_EVERY_SECONDS."""
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    asked = []

    async def health(request: web.Request) -> web.Response:
        asked.append(clock.now)
        return web.json_response({"status": "ok"})

    healthz = web.Application()
    healthz.router.add_get("/healthz", health)
    alive = await aiohttp_server(healthz)
    here = NodeRegistry(store, "a", "http://a.example", lambda: (5, 10), clock=clock)
    there = NodeRegistry(
        store, "b", "http://b.example", lambda: (0, 0), address=f"127.0.0.1:{alive.port}", clock=clock
    )
    try:
        await there.beat()
        for _ in range(20):
            assert (await here.home("room-1", clock.now + 3600, suspect="b")).node_id == "b"
            clock.now += 0.01
        assert len(asked) == 1
        clock.now += 0.25
        await here.home("room-1", clock.now + 3600, suspect="b")
        assert len(asked) == 2
    finally:
        await here.close()
        await store.close()


async def test_hello_without_media_gets_no_offer(client, room_links, services):
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "id": 1, "v": 1, "token": token_of(room_links["citizen_url"]),
                        "media": False})  # fmt: skip
    welcome = await next_of(ws, "welcome")
    assert welcome["participant_id"]
    await ws.send_json({"type": "ping", "id": 2})
    assert (await next_of(ws, "pong"))["id"] == 2  # and no `offer` before it
    assert services.hub.rooms[room_links["room_id"]].media.stats()["peers"] == 0
    await ws.close()
    other = await client.ws_connect("/ws")
    await other.send_json({"type": "hello", "id": 3, "v": 1, "token": "x", "media": "no"})
    refused = await next_of(other, "error")
    assert refused["code"] == "bad_message" and "media" in refused["message"]
    await other.close()


async def test_everyone_resumes_as_themselves_on_the_node_the_room_moved_to(cluster):
    n1, n2 = cluster["nodes"]
    rooms = RoomService(cluster["store"], cluster["signer"])
    room = await rooms.create("buergertelefon", 3600)
    links = rooms.links(room, "")
    urls = [test_multinode.ws_url(n1), test_multinode.ws_url(n2)]
    async with aiohttp.ClientSession() as session:
        citizen = RtcParticipant(session, urls[0], token_of(links.citizen_url), "Frau A")
        advisor = RtcParticipant(session, urls[1], token_of(links.advisor_url), "Herr B")
        try:
            first = {"citizen": await citizen.join(), "advisor": await advisor.join()}
            await advisor.send({"type": "media-state", "id": "m", "audio": False, "video": True})
            await advisor.send({"type": "chat", "id": "c1", "text": "Vor dem Umzug"})
            await advisor.wait_for("chat", id="c1")
            await asyncio.gather(citizen.wait_frames(video=5, audio=5), advisor.wait_frames(video=5, audio=5))
            await asyncio.sleep(0.3)  # the roster and chat are written behind the conversation
            assert len((await cluster["store"].get(ROSTER_KIND, room.room_id))["participants"]) == 2

            host = n1 if citizen.ws_url.startswith(urls[0]) else n2
            survivor = n2 if host is n1 else n1
            os.kill(host.pid, signal.SIGKILL)
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            for participant in (citizen, advisor):
                await participant.drop()
                for track in participant.tracks:
                    track.stop()
                participant.tracks = [AudioStreamTrack(), VideoStreamTrack()]
            # through the surviving node at once (as the proxy sends them): no waiting for the heartbeat
            survivor_url = test_multinode.ws_url(survivor)
            again = {
                "citizen": await citizen.join(resume=citizen.resume, urls=[survivor_url]),
                "advisor": await advisor.join(resume=advisor.resume, urls=[survivor_url]),
            }
            assert loop.time() - killed_at < 2.0
            for role in ("citizen", "advisor"):
                assert again[role]["resumed"] is True, again[role]
                assert again[role]["participant_id"] == first[role]["participant_id"]
            others = {p["participant_id"]: p for p in again["citizen"]["participants"]}
            assert others[first["advisor"]["participant_id"]]["name"] == "Herr B"
            assert others[first["advisor"]["participant_id"]]["media"] == {"audio": False, "video": True}
            assert [m["text"] for m in again["citizen"]["chat_history"]] == ["Vor dem Umzug"]
            await asyncio.gather(citizen.wait_frames(video=5, audio=5), advisor.wait_frames(video=5, audio=5))
            # nobody was told that someone left or joined
            for participant in (citizen, advisor):
                kinds = {m["type"] for m in participant.messages}
                assert not kinds & {"participant-joined", "participant-left"}, participant.messages
        finally:
            for participant in (citizen, advisor):
                await participant.close()


async def test_a_chat_that_could_not_be_read_is_not_overwritten(client, room_links, services, monkeypatch):
    """The store failing the first read of the chat so far (as during failover) leaves the room with only
    what is said here since: that must not replace the stored chat. Read again before writing; while
    reading still fails, each new message is appended to the stored record."""
    history = services.hub.history
    room_id = room_links["room_id"]
    expires = time.time() + 3600
    await history.append(room_id, expires, {"message_id": "m-old", "text": "Vor dem Umzug", "name": "A"})
    failures = {"left": 2}
    read = history.messages

    async def failing_read(room: str) -> list:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("store away")
        return await read(room)

    monkeypatch.setattr(history, "messages", failing_read)
    advisor, _, first = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    assert first == []  # not known here yet
    await say(advisor, "Nach dem Umzug")  # the second read fails too: appended to the stored record
    for _ in range(100):
        record = await services.store.get(HISTORY_KIND, room_id)
        if len(record["messages"]) == 2:
            break
        await asyncio.sleep(0.02)
    assert [m["text"] for m in record["messages"]] == ["Vor dem Umzug", "Nach dem Umzug"]
    await say(advisor, "Wieder da")  # now the read succeeds: merged, and kept as a whole again
    room = services.hub.rooms[room_id]
    for _ in range(100):
        if room.chat_known:
            break
        await asyncio.sleep(0.02)
    await history.flush()
    record = await services.store.get(HISTORY_KIND, room_id)
    assert [m["text"] for m in record["messages"]] == ["Vor dem Umzug", "Nach dem Umzug", "Wieder da"]
    await say(advisor, "Und weiter")
    await history.flush()
    record = await services.store.get(HISTORY_KIND, room_id)
    assert [m["text"] for m in record["messages"]][-1] == "Und weiter" and len(record["messages"]) == 4
    await advisor.close()


async def test_a_malformed_roster_entry_is_skipped(client, room_links, services):
    """One bad entry in the stored roster must not keep the room from starting."""
    hub = services.hub
    store = services.store
    hub.bus, hub._roster = store, WriteBehind(store)  # as with several nodes
    room_id = room_links["room_id"]
    good = {"participant_id": "p-1", "role": "citizen", "name": "Frau A", "resume_digest": "ab"}
    await store.put(ROSTER_KIND, room_id, {"participants": [{"resume_digest": "x"}, "junk", good]}, ttl=60)
    room = hub.room(Admission(room_id, "citizen", time.time() + 3600))
    await hub.prepare(room)
    assert list(room.participants) == ["p-1"]
    await hub.remove(room, room.participants["p-1"], "timeout")
    hub.bus = None
    hub._roster = None


async def test_concurrent_checks_of_one_node_share_one_probe(tmp_path, aiohttp_server):
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    asked = []

    async def health(request: web.Request) -> web.Response:
        asked.append(clock.now)
        await asyncio.sleep(0.1)
        return web.json_response({"status": "ok"})

    healthz = web.Application()
    healthz.router.add_get("/healthz", health)
    alive = await aiohttp_server(healthz)
    here = NodeRegistry(store, "a", "http://a.example", lambda: (5, 10), clock=clock)
    there = NodeRegistry(
        store, "b", "http://b.example", lambda: (0, 0), address=f"127.0.0.1:{alive.port}", clock=clock
    )
    try:
        await there.beat()
        node = await here.find("b")
        assert node is not None
        answers = await asyncio.gather(*(here.check(node, fresh=True) for _ in range(50)))
        assert answers == [True] * 50
        assert len(asked) == 1
    finally:
        await here.close()
        await store.close()


async def test_a_heartbeat_is_judged_by_this_nodes_clock_and_loopback_only_on_one_host(tmp_path):
    """Another node's heartbeat time is its clock: a node whose clock runs 10 s behind is alive while its
    heartbeat changes; a refused loopback port of a node on another host proves nothing."""
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.sqlite3", clock=clock)
    here = NodeRegistry(store, "a", "http://a.example", lambda: (5, 10), clock=clock)
    behind = Clock()
    behind.now = clock.now - 10.0
    there = NodeRegistry(store, "b", "http://b.example", lambda: (0, 0), clock=behind)
    try:
        for _ in range(3):
            await there.beat()
            node = await here.find("b")
            assert node is not None and await here.check(node, fresh=True)
            clock.now += 2.0
            behind.now += 2.0
        # b stops beating: gone once its heartbeat has not changed for STALE_SECONDS here
        clock.now += 3.0
        node = await here.find("b")
        assert node is not None and not await here.check(node, fresh=True)

        # another host's node on a loopback address that refuses: its heartbeat decides
        there.address = f"127.0.0.1:{closed_port()}"
        there.host = "elsewhere"
        await there.beat()
        node = await here.find("b")
        assert node is not None and node.host == "elsewhere"
        clock.now += 1.0
        assert await here.check(node, fresh=True)
        there.host = here.host  # the same host: the refusal is proof
        await there.beat()
        clock.now += 1.0
        node = await here.find("b")
        assert not await here.check(node, fresh=True)
    finally:
        await here.close()
        await store.close()


async def test_shutdown_stores_chat_and_roster_before_signing_off(aiohttp_client, config, monkeypatch):
    """A node shutting down writes what is pending first: once it has signed off, another node may take
    its rooms and read the store."""
    from sprechstunde.web.core.app import create_app
    from sprechstunde.web.core.services import SERVICES

    app = create_app(config)
    client = await aiohttp_client(app)
    services = app[SERVICES]
    order: list[str] = []
    hub = services.hub

    async def flush() -> None:
        order.append("flush")

    class Nodes:
        async def start(self) -> None: ...

        async def close(self) -> None:
            order.append("sign off")

    monkeypatch.setattr(hub, "flush", flush)
    hub.nodes = Nodes()  # type: ignore[assignment]
    await client.close()
    hub.nodes = None
    assert order[:2] == ["flush", "sign off"], order
