"""/healthz, /readyz and a Redis outage: 503 `store_unavailable` instead of a crash, open calls go on, the
service comes back by itself, and with AOF nothing a citizen submitted is lost across a Redis restart.

Each test starts its own throwaway `redis-server` (Debian's package, installed by ./run test) on a free port
and stops it mid-test, so the shared server on 6379 is never touched."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from bench.server import free_port
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.conftest import token_of
from tests.test_waiting_api import OPEN, PASSWORD


class RedisServer:
    """A redis-server process of this test on a fixed port, restartable with the same files."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing; ./run test installs Debian's redis-server package")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.directory / "redis.log").read_text(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"redis-server did not answer on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


def redis_config(tmp_path: Path, server: RedisServer) -> Config:
    return Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, redis_url=server.url,
        redis_prefix="test:",
    )  # fmt: skip


async def eventually(check, timeout: float = 10.0) -> None:
    """Until `await check()` is true: the client reconnects on its next command, not at a fixed moment."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.1)


async def test_healthz_and_readyz_on_sqlite(client):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["status"] == "ok" and body["store_ms"] >= 0
    assert len(ready.headers["X-Request-Id"]) == 16


async def test_request_id_is_taken_from_the_proxy_or_made_up(client):
    given = await client.get("/healthz", headers={"X-Request-Id": "nginx-0123456789abcdef"})
    assert given.headers["X-Request-Id"] == "nginx-0123456789abcdef"
    forged = await client.get("/healthz", headers={"X-Request-Id": "x\u00e4<script>"})
    assert forged.headers["X-Request-Id"] != "x\u00e4<script>" and len(forged.headers["X-Request-Id"]) == 16
    assert (await client.get("/static/signaling.js")).headers.get("X-Request-Id")


async def test_redis_outage_gives_503_keeps_the_call_and_recovers(aiohttp_client, tmp_path, redis_server):
    client = await aiohttp_client(create_app(redis_config(tmp_path, redis_server)))
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    room = await services.rooms.create("vhs", 3600)
    links = services.rooms.links(room, "").as_json()
    # a citizen is in the call (signaling only) before Redis goes away
    ws = await client.ws_connect("/ws")
    hello = {"type": "hello", "id": 1, "v": 1, "token": token_of(links["citizen_url"]), "name": "A"}
    await ws.send_json(hello)
    while (welcome := await ws.receive_json(timeout=10))["type"] != "welcome":
        pass
    assert (await client.get("/readyz")).status == 200

    redis_server.stop(signal.SIGKILL)  # a crash, not a clean shutdown

    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["error"]["code"] == "store_unavailable"
    assert (await client.get("/healthz")).status == 200  # the process itself is fine
    queued = await client.post("/api/queue", json={"office": "vhs", "language": "de", "topic": "Kurs"})
    assert queued.status == 503 and queued.headers["Retry-After"] == "5"
    error = (await queued.json())["error"]
    assert error["code"] == "store_unavailable" and error["message"]
    login = await client.post("/api/login", json={"username": "berater", "password": "y"})
    assert login.status == 503 and (await login.json())["error"]["code"] == "store_unavailable"
    page = await client.get("/join/" + token_of(links["advisor_url"]))
    assert page.status == 503 and "text/html" in page.headers["Content-Type"]
    # the open call does not need the store: the participant's socket still works
    await ws.send_json({"type": "chat", "id": 2, "text": "noch da?"})
    while (echo := await ws.receive_json(timeout=10))["type"] != "chat":
        pass
    assert echo["text"] == "noch da?" and echo["from"] == welcome["participant_id"]
    assert not ws.closed
    # joining needs the store (the link's room): a clear error, not an "internal" one
    late = await client.ws_connect("/ws")
    await late.send_json(hello | {"token": token_of(links["advisor_url"])})
    refused = await late.receive_json(timeout=10)
    assert refused["type"] == "error" and refused["code"] == "store_unavailable" and refused["id"] == 1
    await late.close()
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and "sprechstunde_store_up 0.0" in await metrics.text()

    redis_server.start()  # same port; the client reconnects on its own

    async def ready_again() -> bool:
        return (await client.get("/readyz")).status == 200

    await eventually(ready_again)
    queued = await client.post("/api/queue", json={"office": "vhs", "language": "de", "topic": "Kurs"})
    assert queued.status == 201, await queued.text()
    assert (await client.get("/join/" + token_of(links["advisor_url"]))).status == 200
    await ws.send_json({"type": "ping", "id": 3})
    while (await ws.receive_json(timeout=10))["type"] != "pong":
        pass
    await ws.close()


async def test_queue_entry_ticket_and_session_survive_a_redis_restart_with_aof(
    aiohttp_client, tmp_path, redis_server
):
    client = await aiohttp_client(create_app(redis_config(tmp_path, redis_server)))
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    await services.staff.add("berater", PASSWORD, "advisor", ["vhs"], ["de"])
    assert (await client.post("/api/login", json={"username": "berater", "password": PASSWORD})).status == 200
    queued = await client.post(
        "/api/queue", json={"office": "vhs", "language": "de", "topic": "Bildungsurlaub", "note": "abends"}
    )
    assert queued.status == 201, await queued.text()
    entry = await queued.json()
    asked = await client.post(
        "/api/questions",
        json={"office": "vhs", "language": "de", "topic": "Kursgebühr", "question": "Gibt es Ermäßigung?",
              "contact": "+49 221 123456"},
    )  # fmt: skip
    assert asked.status == 201, await asked.text()
    reference = (await asked.json())["reference"]
    # an appointment next week with the advisor (whose availability is a Redis record too)
    weekly = {day: "08:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")}
    await services.scheduling.availability.set(parse_availability("berater", {"weekly": weekly}))
    slot = (await services.scheduling.slots("vhs", "weiterbildung", (OPEN + timedelta(days=7)).date()))[0]
    booked = await client.post(
        "/api/bookings",
        json={"office": "vhs", "service": "weiterbildung", "channel": "video", "language": "de",
              "starts_at": slot.starts_at.isoformat(), "name": "Frau Y", "consent": True},
    )  # fmt: skip
    assert booked.status == 201, await booked.text()
    booking = await booked.json()

    redis_server.stop(signal.SIGTERM)
    assert (await client.get("/readyz")).status == 503
    redis_server.start()  # reads its append-only file back

    async def ready_again() -> bool:
        return (await client.get("/readyz")).status == 200

    await eventually(ready_again)
    # the staff session (a Redis record) is still valid: no new sign-in needed
    tickets = await client.get("/api/tickets")
    assert tickets.status == 200, await tickets.text()
    assert reference in [t["reference"] for t in (await tickets.json())["tickets"]]
    # the citizen's place in line and their note are still there
    wait = await client.ws_connect("/ws/queue")
    await wait.send_json({"type": "wait", "id": 1, "token": entry["waiting_url"].rsplit("/wait/", 1)[1]})
    while (status := json.loads((await wait.receive(timeout=10)).data))["type"] != "queue-status":
        pass
    assert status["entry_id"] == entry["entry_id"] and status["position"] == 1 and status["note"] == "abends"
    await wait.close()
    # the appointment is still booked, its manage link still works
    manage = await client.get(f"/api/bookings/{booking['manage_token']}")
    assert manage.status == 200, await manage.text()
    assert (await manage.json())["reference"] == booking["reference"]
    assert any(redis_server.directory.glob("appendonly*"))  # the data came back from the AOF


async def test_readyz_times_out_on_a_frozen_redis(aiohttp_client, tmp_path, redis_server):
    """A Redis that accepts connections but never answers (SIGSTOP) fails /readyz within the timeout."""
    client = await aiohttp_client(create_app(redis_config(tmp_path, redis_server)))
    assert (await client.get("/readyz")).status == 200
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            async with http.get(str(client.make_url("/readyz")), timeout=aiohttp.ClientTimeout(10)) as ready:
                assert ready.status == 503
                assert "did not answer" in (await ready.json())["error"]["message"]
        assert time.monotonic() - started < 3
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def test_only_real_outages_of_sqlite_become_503():
    from sprechstunde.web.core.observability import store_outage

    assert store_outage(sqlite3.OperationalError("database is locked"))
    assert store_outage(sqlite3.OperationalError("disk I/O error"))
    assert not store_outage(sqlite3.OperationalError("no such column: nam"))  # a bug: 500, logged
