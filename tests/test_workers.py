"""`sprechstunde serve --workers 2`: one command, two processes on one Redis; consultations are divided
between them and every participant reaches the right one through the public port (web/relay.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp

from bench.server import ROOT, ServerProcess
from rooms.service import RoomService
from rooms.tokens import TokenSigner
from signaling.nodes import NODE_KIND
from store import RedisStore
from tests.rtc_client import RtcParticipant
from tests.test_store import REDIS_URL, redis_namespace
from web.config import prepare_data_dir


def test_workers_need_redis(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--workers needs --redis" in result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--workers", "zwei"],
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

