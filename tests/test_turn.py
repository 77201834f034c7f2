"""A relay-only client reaches the server through a real coturn with the credentials from `welcome`."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from bench.server import free_udp_and_tcp_port
from sprechstunde.media.ice import IceConfig, client_ice_servers, turn_credentials
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.services import SERVICES
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant

TURN_SECRET = "test-static-auth-secret"


def test_turn_rest_credentials_are_time_limited_hmac():
    username, password = turn_credentials("secret", "p-1", ttl=3600, now=1_700_000_000)
    assert username == "1700003600:p-1"
    # HMAC-SHA1("secret", username) in base64 (checked with openssl dgst -sha1 -hmac), as coturn computes it.
    assert password == "fuUGK5vVHdQwBP4U6ec3JSWhwgo="
    servers = client_ice_servers(
        IceConfig(stun_urls=["stun:s:3478"], turn_urls=["turn:t:3478"], turn_secret="x"), "p-2"
    )
    assert servers[0] == {"urls": ["stun:s:3478"]}
    assert servers[1]["username"].endswith(":p-2") and servers[1]["credential"]


def wait_for_stun(port: int, process: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    """Until coturn answers a STUN binding request: on a busy machine it takes a moment to listen."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text() if log.exists() else "coturn exited"
            sock.sendto(request, ("127.0.0.1", port))
            try:
                if sock.recv(1024)[:2] == b"\x01\x01":  # binding success response
                    return
            except OSError:
                pass
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    pytest.fail(f"coturn did not answer on port {port} within {timeout} s:\n{text[-3000:]}")


@pytest.fixture
def coturn(tmp_path):
    binary = shutil.which("turnserver")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("coturn (turnserver) is missing; ./run test installs it")
        pytest.skip("coturn not installed; run ./run test")
    port = free_udp_and_tcp_port()
    process = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--min-port=49160",
            "--max-port=49260",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=sprechstunde.test",
            "--no-tls",
            "--no-dtls",
            "--no-tcp",  # the test's client relays over UDP: no TCP listener to bind
            "--no-rfc5780",  # nor the alternative port (listening port + 1)
            "--no-cli",
            "--no-multicast-peers",
            "--allow-loopback-peers",
            "--fingerprint",
            f"--pidfile={tmp_path / 'turn.pid'}",
            f"--log-file={tmp_path / 'turn.log'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_stun(port, process, tmp_path / "turn.log")
    yield f"turn:127.0.0.1:{port}?transport=udp"
    process.terminate()
    process.wait(timeout=10)


async def test_call_through_coturn_relay(aiohttp_client, config, coturn):
    config.turn_urls = [coturn]
    config.turn_secret = TURN_SECRET
    client = await aiohttp_client(create_app(config))
    services = client.app[SERVICES]
    room = await services.rooms.create("vhs", 3600)
    links = services.rooms.links(room, "").as_json()
    url = str(client.make_url("/ws"))
    citizen = RtcParticipant(client.session, url, token_of(links["citizen_url"]), "C", relay_only=True)
    advisor = RtcParticipant(client.session, url, token_of(links["advisor_url"]), "A", relay_only=True)
    try:
        await citizen.join()
        await advisor.join()
        assert citizen.welcome["ice_servers"][0]["urls"] == [coturn]
        await citizen.wait_frames(video=10, audio=20, timeout=20)
        await advisor.wait_frames(video=10, audio=20, timeout=20)
        pair = citizen.pc.getTransceivers()[0].receiver.transport.transport._connection._nominated
        assert any(c.local_candidate.type == "relay" for c in pair.values())
    finally:
        await citizen.close()
        await advisor.close()
