"""Two server processes on one Redis (signaling/nodes.py): a consultation is served by one node whichever
node the participants reach; the queue and the consoles work across nodes; a killed node's consultation
resumes on the other within 10 s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from bench.server import ServerProcess
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.store import RedisStore
from sprechstunde.web.core.config import prepare_data_dir
from tests.rtc_client import RtcParticipant
from tests.test_store import REDIS_URL, redis_namespace

OFFICES = Path(__file__).with_name("waiting_offices.toml")  # open around the clock
PASSWORD = "ein-langes-test-passwort-9"


@pytest.fixture
async def cluster(tmp_path):
    """Two nodes sharing one data directory (server secret, document keys) and one Redis prefix."""
    async with redis_namespace() as prefix:
        data_dir = tmp_path / "data"
        secret = prepare_data_dir(data_dir)
        nodes = []
        try:
            for name in ("n1", "n2"):
                node = ServerProcess(
                    data_dir,
                    "--redis", REDIS_URL, "--redis-prefix", prefix, "--node-id", name,
                    "--offices", str(OFFICES),
                    log_path=tmp_path / f"{name}.log",
                )  # fmt: skip
                nodes.append(node)
            for node in nodes:
                node.wait_healthy()
            store = RedisStore(REDIS_URL, prefix=prefix)
            yield {"nodes": nodes, "store": store, "signer": TokenSigner(secret)}
            await store.close()
        finally:
            for node in nodes:
                node.stop()


def ws_url(node: ServerProcess) -> str:
    return node.url.replace("http://", "ws://") + "/ws"


async def test_participants_on_different_nodes_meet_on_one_and_resume_after_a_kill(cluster):
    n1, n2 = cluster["nodes"]
    rooms = RoomService(cluster["store"], cluster["signer"])
    room = await rooms.create("buergertelefon", 3600)
    links = rooms.links(room, "")
    async with aiohttp.ClientSession() as session:
        citizen = RtcParticipant(session, ws_url(n1), links.citizen_url.rsplit("/join/", 1)[1], "Frau A")
        advisor = RtcParticipant(session, ws_url(n2), links.advisor_url.rsplit("/join/", 1)[1], "Herr B")
        try:
            await citizen.join()
            await advisor.join()
            # Whoever came second was sent to the node hosting the room: both are on one node.
            host = n1 if citizen.ws_url.startswith(ws_url(n1)) else n2
            survivor = n2 if host is n1 else n1
            assert advisor.ws_url.startswith(ws_url(host))
            await asyncio.gather(
                citizen.wait_frames(video=20, audio=20), advisor.wait_frames(video=20, audio=20)
            )

            # kill -9 the hosting node mid-call: both reconnect (as the browser does, through the proxy,
            # which offers the other node) and are back in a call with media within 10 s.
            os.kill(host.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            urls = [ws_url(host), ws_url(survivor)]
            for participant in (citizen, advisor):
                await participant.drop()
                # The other node never saw them: they join afresh, with fresh aiortc tracks (an aiortc
                # test track that fed a closed connection does not publish again on a fresh join).
                for track in participant.tracks:
                    track.stop()
                participant.tracks = [AudioStreamTrack(), VideoStreamTrack()]

            async def rejoin(participant: RtcParticipant) -> None:
                while True:
                    try:
                        await participant.join(resume=participant.resume, urls=urls)
                        return
                    except (TimeoutError, RuntimeError, aiohttp.ClientError):
                        await asyncio.sleep(0.5)  # the browser's backoff

            await asyncio.wait_for(asyncio.gather(rejoin(citizen), rejoin(advisor)), 10)
            await asyncio.gather(citizen.wait_frames(video=5, audio=5), advisor.wait_frames(video=5, audio=5))
            resumed_after = time.monotonic() - killed_at
            assert citizen.ws_url.startswith(ws_url(survivor))
            assert resumed_after < 10, resumed_after
            print(f"consultation resumed on the other node {resumed_after:.1f} s after kill -9")
        finally:
            for participant in (citizen, advisor):
                await participant.close()


async def _console(session: aiohttp.ClientSession, node: ServerProcess, name: str):
    response = await session.post(node.url + "/api/login", json={"username": name, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return await session.ws_connect(
        node.url.replace("http", "ws") + "/ws/console", headers={"Origin": node.url}
    )


async def _next_message(ws, kind: str) -> dict:
    while True:
        frame = await ws.receive(timeout=10)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        message = json.loads(frame.data)
        if message["type"] == kind:
            return message


async def test_queue_and_consoles_across_nodes_assign_each_citizen_once(cluster):
    n1, n2 = cluster["nodes"]
    staff = StaffDirectory(cluster["store"])
    for name in ("anna", "bernd"):
        await staff.add(name, PASSWORD, "advisor", ["buergertelefon"], ["de"])
    async with aiohttp.ClientSession() as public:
        entries = []
        for i in range(20):
            body = {"office": "buergertelefon", "language": "de", "topic": f"Anliegen {i}"}
            response = await public.post((n1 if i % 2 else n2).url + "/api/queue", json=body)
            assert response.status == 201, await response.text()
            entries.append(await response.json())
        # The last citizen waits on node 2 — their page must hear about claims made on node 1.
        last = entries[-1]
        waiting = await public.ws_connect(n2.url.replace("http", "ws") + "/ws/queue")
        await waiting.send_json({"type": "wait", "id": 1, "token": last["waiting_token"]})
        assert (await _next_message(waiting, "queue-status"))["position"] == 20

        jars = [aiohttp.CookieJar(unsafe=True) for _ in range(2)]  # cookies for 127.0.0.1
        async with (
            aiohttp.ClientSession(cookie_jar=jars[0]) as one,
            aiohttp.ClientSession(cookie_jar=jars[1]) as two,
        ):
            consoles = [await _console(one, n1, "anna"), await _console(two, n2, "bernd")]
            for ws in consoles:
                await _next_message(ws, "queue")

            async def claim_all(ws) -> list[str]:
                mine = []
                for request in range(40):
                    await ws.send_json({"type": "next", "id": request})
                    while True:
                        message = json.loads((await ws.receive(timeout=10)).data)
                        if message.get("id") == request:
                            break
                    if message["type"] == "error":
                        assert message["code"] == "queue_empty"
                        return mine
                    mine.append(message["entry"]["entry_id"])
                return mine

            claimed = await asyncio.gather(*(claim_all(ws) for ws in consoles))
            everyone = [e for part in claimed for e in part]
            assert sorted(everyone) == sorted(e["entry_id"] for e in entries)  # each exactly once
            assert all(claimed), claimed  # both nodes' advisors got citizens
            admitted = await _next_message(waiting, "admitted")
            assert admitted["room_id"]
            for ws in (*consoles, waiting):
                await ws.close()
