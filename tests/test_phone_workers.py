"""`serve --workers 2 --sip-listen 127.0.0.1:P` (issue 20: 4 calls per pjsua2 process, so several SIP
processes behind the PBX's trunk group): the first process answers SIP on P, the worker on P+1. A real
caller (baresip, 1 kHz) dials the worker's port; the advisor claims it on the first process's console
socket and joins through the first process's public port: the room is pinned to the worker that holds the
SIP call, the advisor is relayed there and hears the caller. A second caller on P reaches the menu."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys

import aiohttp
import pytest

from bench.phone import OFFICES  # open every hour of every day, no holidays
from bench.server import ROOT, ServerProcess, free_udp_and_tcp_port
from sprechstunde.rooms.entries import QueueEntry
from sprechstunde.rooms.queue import ENTRY_KIND
from sprechstunde.signaling.nodes import NODE_KIND, PIN_KIND
from sprechstunde.store import RedisStore
from sprechstunde.store.port import from_record
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.workers import SipPorts, Workers
from tests.phone_support import tone_wav
from tests.test_phone import NUMBER, caller, until  # noqa: F401 (fixture)
from tests.test_phone_bridge import ADVISOR_RATE, ListeningAdvisor, ToneTrack, best_window
from tests.test_store import REDIS_URL, redis_namespace

needs_baresip = pytest.mark.skipif(
    not (shutil.which("baresip") and shutil.which("espeak-ng")), reason="baresip and espeak-ng (./run test)"
)
PASSWORD = "richtig-langes-passwort"


def test_each_worker_gets_its_own_sip_port():
    config = Config(sip_listen="127.0.0.1:5060", workers=5)
    sip = SipPorts.of(config)
    argv = ["serve", "--sip-listen", "127.0.0.1:5060", "--sip-allow", "10.0.0.0/8"]
    plan = Workers.plan(argv, 5, "stadt", "http://127.0.0.1:8080", sip)
    # after argv's own --sip-listen (and the environment's): the last flag wins
    expected = [["--sip-listen", f"127.0.0.1:{port}"] for port in range(5061, 5065)]
    assert [w.command[-2:] for w in plan.workers] == expected
    assert [w.node_id for w in plan.workers] == ["stadt-w1", "stadt-w2", "stadt-w3", "stadt-w4"]
    summary = "SIP: 5 processes on 127.0.0.1:5060-5064 — put all in the PBX's trunk group"
    assert sip.summary().startswith(summary)
    # SIP over TLS: after all the UDP/TCP ports (one process alone: the port after --sip-listen's, as before)
    tls = SipPorts.of(Config(sip_listen="5060", workers=3, sip_tls_cert=ROOT, sip_tls_key=ROOT))
    assert (tls.listen(2), tls.tls_port(0), tls.tls_port(2)) == ("0.0.0.0:5062", 5063, 5065)
    assert SipPorts.of(Config(sip_listen="5060", sip_tls_cert=ROOT, sip_tls_key=ROOT)).tls_port(0) == 5061
    assert SipPorts.of(Config()) is None


def test_sip_ports_beyond_65535_stop_start_up(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "serve", "--workers", "3", "--redis", REDIS_URL,
         "--data-dir", str(tmp_path), "--sip-listen", "127.0.0.1:65534", "--sip-allow", "127.0.0.1/32"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "error: --sip-listen 127.0.0.1:65534 with --workers 3 needs the ports 65534-65536" in result.stderr


def _free_sip_pair() -> int:
    """P with P and P+1 free for UDP and TCP."""
    while True:
        port = free_udp_and_tcp_port()
        if port >= 65535:
            continue
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def _add_advisor(data_dir, prefix: str) -> None:
    command = [sys.executable, "-m", "sprechstunde", "user", "add", "anna", "--office", "vhs",
               "--language", "de", "--password-stdin", "--data-dir", str(data_dir),
               "--redis", REDIS_URL, "--redis-prefix", prefix]  # fmt: skip
    made = subprocess.run(
        command, cwd=ROOT, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr


async def _claim(base: str) -> dict:
    """Sign in as anna and take "Nächste Person" on the console socket; the `claimed` message."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/api/login", json={"username": "anna", "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
        console = await http.ws_connect(base + "/ws/console", headers={"Origin": base})
        try:
            for attempt in range(40):
                await console.send_json({"type": "next", "id": f"n{attempt}"})
                while (message := await console.receive_json(timeout=10)).get("id") != f"n{attempt}":
                    pass
                if message["type"] == "claimed":
                    return message
                await asyncio.sleep(0.5)  # queue_empty: the caller is still choosing
            raise AssertionError("anna found nobody to claim")
        finally:
            await console.close()


@needs_baresip
async def test_a_call_on_the_second_sip_port_is_bridged_on_that_worker(tmp_path, caller):  # noqa: F811
    async with redis_namespace() as prefix:
        data_dir = tmp_path / "data"
        offices = tmp_path / "offices.toml"
        offices.write_text(OFFICES)
        _add_advisor(data_dir, prefix)
        sip_port = _free_sip_pair()
        store = RedisStore(REDIS_URL, prefix=prefix)
        args = ("--redis", REDIS_URL, "--redis-prefix", prefix, "--workers", "2", "--node-id", "stadt",
                "--offices", str(offices), "--sip-listen", f"127.0.0.1:{sip_port}",
                "--sip-allow", "127.0.0.0/8", "--sip-calls-per-minute", "40")  # fmt: skip
        try:
            with ServerProcess(data_dir, *args, log_path=tmp_path / "serve.log") as server:
                server.wait_healthy()

                async def both_nodes() -> bool:  # the worker announces itself after its SIP port is up
                    return sorted(key for key, _ in await store.scan(NODE_KIND)) == ["stadt", "stadt-w1"]

                await until(both_nodes, timeout=30, what="both processes in the registry")
                ports = f"SIP: 2 processes on 127.0.0.1:{sip_port}-{sip_port + 1} — put all in the PBX's"
                assert ports in server.log(), server.log()

                phone = caller(user=NUMBER, source=tone_wav(tmp_path / "voice.wav", 1000, 120))
                await phone.dial(f"sip:beratung@127.0.0.1:{sip_port + 1}")  # the worker's port
                await phone.established(timeout=20)
                await phone.press("1")  # Deutsch
                await asyncio.sleep(1.0)
                await phone.press("1")  # Volkshochschule
                claimed = await _claim(server.url)  # through the first process
                assert claimed["entry"]["channel"] == "phone", claimed
                room_id = claimed["room_id"]

                async def pinned():
                    return await store.get(PIN_KIND, room_id)

                # the worker holding the call pins the room the moment it sees the entry claimed (the
                # advisor's browser takes longer than this test to get there)
                pin = await until(pinned, timeout=10, what="the room pinned")
                assert pin["node"] == "stadt-w1", pin

                url = f"ws://127.0.0.1:{server.port}/ws"
                token = claimed["advisor_url"].rsplit("/join/", 1)[1]
                async with aiohttp.ClientSession() as session:
                    advisor = ListeningAdvisor(session, url, token, "Anna", tracks=[ToneTrack(600)])
                    try:
                        await advisor.join()
                        assert advisor.ws_url == url + "?node=stadt-w1"  # relayed by the first process
                        enough = 4 * ADVISOR_RATE

                        async def heard_enough():
                            return len(advisor.heard) >= enough

                        await until(heard_enough, timeout=30, what="4 s of audio at the advisor")
                        heard = advisor.heard[-3 * ADVISOR_RATE :]
                        at_1k = best_window(heard, ADVISOR_RATE, 1000)
                        assert at_1k > 0.5, f"the caller's 1 kHz tone at the advisor: {at_1k:.2f}"
                        assert best_window(heard, ADVISOR_RATE, 600) < 0.1  # not the advisor's own tone
                    finally:
                        await advisor.close()
                assert (await store.get(PIN_KIND, room_id))["node"] == "stadt-w1"
                # the worker holds both the call and the room: the caller's media joined its session
                # directly, not over a peer connection to itself (media/local.py)
                assert "bridged into the room of" in server.log() and "(in this process)" in server.log()

                # the first process's own SIP port answers too, and its menu puts a caller in the queue
                second = caller(user="4921519876")
                await second.dial(f"sip:beratung@127.0.0.1:{sip_port}")
                await second.established(timeout=20)
                await second.press("1")
                await asyncio.sleep(1.0)
                await second.press("1")

                async def second_waiting():
                    entries = [from_record(QueueEntry, r) for _, r in await store.scan(ENTRY_KIND)]
                    return [e for e in entries if e.channel == "phone" and e.state == "waiting"]

                await until(second_waiting, what="the second caller in the queue")
                second.hangup()
                phone.hangup()
        finally:
            await store.close()
