"""`sprechstunde serve --workers 2`: one command, two processes on one Redis; consultations are divided
between them and every participant reaches the right one through the public port (web/core/relay.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from redis import Redis

from bench.server import ROOT, ServerProcess
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.signaling.nodes import NODE_KIND
from sprechstunde.store import RedisStore
from sprechstunde.web.core.config import prepare_data_dir
from tests.browser_support import DESKTOP, MOBILE, assert_media_flows, join_call, open_page
from tests.rtc_client import RtcParticipant
from tests.test_store import REDIS_URL, redis_namespace


def test_workers_need_redis(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--workers needs --redis" in result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "serve", "--workers", "zwei"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "neither a number" in bad.stderr


async def test_two_workers_share_the_consultations_behind_one_port(tmp_path):
    async with redis_namespace() as prefix:
        data_dir = tmp_path / "data"
        signer = TokenSigner(prepare_data_dir(data_dir))
        store = RedisStore(REDIS_URL, prefix=prefix)
        args = ("--redis", REDIS_URL, "--redis-prefix", prefix, "--workers", "2", "--node-id", "stadt")
        with ServerProcess(data_dir, *args, log_path=tmp_path / "serve.log") as server:
            server.wait_healthy()

            async def both_nodes() -> list[str]:
                return sorted(key for key, _ in await store.scan(NODE_KIND))

            for _ in range(100):  # the worker starts a moment after the first process
                if await both_nodes() == ["stadt", "stadt-w1"]:
                    break
                await asyncio.sleep(0.2)
            assert await both_nodes() == ["stadt", "stadt-w1"], server.log()

            rooms = RoomService(store, signer)
            url = server.url.replace("http://", "ws://") + "/ws"
            people: list[RtcParticipant] = []
            async with aiohttp.ClientSession() as session:
                try:
                    for _ in range(2):  # two consultations, everyone through the public port
                        links = rooms.links(await rooms.create("vhs", 3600), "")
                        for link, name in ((links.citizen_url, "Bürgerin"), (links.advisor_url, "Berater")):
                            person = RtcParticipant(session, url, link.rsplit("/join/", 1)[1], name)
                            await person.join()
                            people.append(person)
                    await asyncio.gather(*(p.wait_frames(video=15, audio=15) for p in people))
                    # the second consultation went to the other (then less loaded) process, reached
                    # through the first one's relay
                    assert people[0].ws_url == url and people[2].ws_url == url + "?node=stadt-w1"
                    await asyncio.sleep(2.5)  # a heartbeat later the registry shows the split
                    load = {key: record["participants"] for key, record in await store.scan(NODE_KIND)}
                    assert load == {"stadt": 2, "stadt-w1": 2}, load
                finally:
                    for person in people:
                        await person.close()
        await store.close()


@pytest.mark.browser
def test_browser_follows_the_redirect_to_the_other_worker(browser, tmp_path):
    """Real Chromium under the real CSP: its room runs on the second worker, so its first hello gets
    `wrong_node`, it reconnects with ?node= through the same origin, and both pages decode video."""
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        redis.ping()
    except OSError as exc:  # pragma: no cover - ./run test starts Redis
        pytest.fail(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"sprechstunde-test:workers-{tmp_path.name}:"
    data_dir = tmp_path / "data"
    args = ("--redis", REDIS_URL, "--redis-prefix", prefix, "--workers", "2", "--node-id", "stadt")
    try:
        with ServerProcess(data_dir, *args, log_path=tmp_path / "serve.log") as server:
            server.wait_healthy()

            def create_room() -> dict:
                command = [sys.executable, "-m", "sprechstunde", "room", "create", "--office", "vhs",
                           "--data-dir", str(data_dir), "--base-url", server.url, *args[:4]]  # fmt: skip
                made = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
                assert made.returncode == 0, made.stderr
                return json.loads(made.stdout)

            busy_room, room = create_room(), create_room()
            busy_tokens = [busy_room[f"{role}_url"].rsplit("/join/", 1)[1] for role in ("citizen", "advisor")]
            deadline = time.monotonic() + 20  # the worker announces itself a moment after the first
            while sorted(redis.zrange(f"{prefix}i:{NODE_KIND}", 0, -1)) != ["stadt", "stadt-w1"]:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            # Another consultation keeps the first process busy (two signaling-only participants).
            errors: list[str] = []
            busy = open_page(browser, room["citizen_url"], DESKTOP, errors)
            busy.evaluate(
                """(tokens) => { window.busy = tokens.map((token) => {
                     const ws = new WebSocket(`ws://${location.host}/ws`);
                     const hello = {type: "hello", id: 1, v: 1, token, name: "X"};
                     ws.onopen = () => ws.send(JSON.stringify(hello));
                     return ws; }); }""",
                busy_tokens,
            )
            busy.wait_for_function(
                "() => window.busy.every((ws) => ws.readyState === WebSocket.OPEN)", timeout=10000
            )
            busy.wait_for_timeout(500)
            citizen = open_page(browser, room["citizen_url"], MOBILE, errors)
            advisor = open_page(browser, room["advisor_url"], DESKTOP, errors)
            join_call(citizen, advisor)
            assert_media_flows({"citizen": citizen, "advisor": advisor})
            pin = json.loads(redis.get(f"{prefix}r:room-node:{room['room_id']}"))["v"]
            assert pin["node"] == "stadt-w1"
            assert not errors, errors
            for page in (citizen, advisor, busy):
                page.context.close()
    finally:
        keys = list(redis.scan_iter(match=prefix + "*", count=1000))
        if keys:
            redis.delete(*keys)
        redis.close()
