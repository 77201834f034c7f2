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

import aiohttp
import pytest
from aiohttp import web
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from bench.failover import check, one_run, redis_server
from sprechstunde.rooms.service import RoomService
from sprechstunde.signaling.hub import ROSTER_KIND
from sprechstunde.signaling.nodes import NODE_KIND, PIN_KIND, NodeRegistry
from sprechstunde.store import SQLiteStore
from tests import test_multinode
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant
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


@pytest.mark.browser
@pytest.mark.parametrize("proxy", ["workers", "nginx"])
def test_both_pages_see_each_other_again_within_3_s_after_kill_9(browser, tmp_path, proxy):
    """The shipped page on Redis (a throwaway redis-server when none runs), behind `serve --workers 2`
    (its first process relays to the second, which is killed) or behind deploy/nginx.conf in front of
    two `serve` processes (the one hosting the room is killed)."""
    with redis_server() as redis_url:
        run = one_run(browser, redis_url, tmp_path, proxy=proxy)
    print(
        f"behind {proxy}: both pages decode video again {run['seconds']} s after kill -9 ({run['per_page']})"
    )
    assert check(run) == [], run
    assert not run["page_errors"], run["page_errors"]
    assert run["seconds"] < 3.0, run
