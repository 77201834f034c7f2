"""Staff sign-in hardening (issue 15): the rate limiter (finding 4), login timing and the event loop
(finding 5), and cross-site sign-in posts (finding 12)."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from redis.asyncio import Redis

from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.store import SQLiteStore
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.ratelimit import (
    BoundedMemoryStorage,
    LoginThrottle,
    RequestThrottle,
    client_network,
)
from sprechstunde.web.core.services import SERVICES
from tests.test_store import REDIS_URL, redis_namespace

PASSWORD = "ein-langes-passwort"


@pytest.fixture
async def proxied(aiohttp_client, tmp_path):
    """An app behind a trusted proxy on 127.0.0.1, so a test can name the client's address."""
    config = Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, trusted_proxies=["127.0.0.1"]
    )
    client = await aiohttp_client(create_app(config))
    services = client.app[SERVICES]
    await services.staff.add("berater", PASSWORD, "advisor", ["vhs"])
    return client, services


async def login(client, address: str, password: str, username: str = "berater", path: str = "/api/login"):
    headers = {"X-Forwarded-For": address}
    if path == "/api/login":
        return await client.post(path, json={"username": username, "password": password}, headers=headers)
    data = {"username": username, "password": password}
    return await client.post(path, data=data, headers=headers, allow_redirects=False)


# --- finding 4: the rate limiter -------------------------------------------------------------------


def test_clients_are_counted_per_network():
    """issue 15, finding 4: IPv4 per address, IPv6 per /64, IPv4-mapped IPv6 as IPv4."""
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"
    assert (
        client_network("2001:db8:1:2:aaaa::1")
        == client_network("2001:db8:1:2:ffff::9")
        == "2001:db8:1:2::/64"
    )
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network(None) == client_network("garbage") == "unknown"


async def test_attackers_failures_do_not_lock_out_the_real_user(proxied):
    """issue 15, finding 4: before, 5 wrong passwords a minute from anywhere locked the account."""
    client, _ = proxied
    for _ in range(5):
        assert (await login(client, "198.51.100.7", "falsch")).status == 401
    assert (await login(client, "198.51.100.7", "falsch")).status == 429
    assert (await login(client, "198.51.100.7", PASSWORD)).status == 429  # that network is done
    assert (await login(client, "203.0.113.5", PASSWORD)).status == 200  # the real user is not
    form = await login(client, "203.0.113.9", PASSWORD, path="/login")
    assert form.status == 303 and form.headers["Location"] == "/console"


async def test_rotating_ipv6_addresses_share_their_64(proxied):
    """issue 15, finding 4: before, every new address of one /64 had its own allowance."""
    client, services = proxied
    for i in range(30):  # the default: 30 failures per network; a new account each time
        response = await login(client, f"2001:db8:7:7::{i + 1:x}", "falsch", username=f"name{i}")
        assert response.status == 401
    refused = await login(client, "2001:db8:7:7:abcd::1", PASSWORD)
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "rate_limited"
    assert (await login(client, "2001:db8:7:8::1", PASSWORD)).status == 200  # the next /64 is not


async def test_distributed_guessing_spares_known_networks(proxied):
    """issue 15, finding 4: the per-account cap over all networks refuses new networks only."""
    client, services = proxied
    services.throttle = LoginThrottle(per_account=10)
    assert (await login(client, "203.0.113.5", PASSWORD)).status == 200  # the office, known from now on
    for net in range(2):
        for _ in range(5):
            assert (await login(client, f"198.51.100.{net}", "falsch")).status == 401
    assert (await login(client, "192.0.2.200", PASSWORD)).status == 429  # a new network must wait
    assert (await login(client, "203.0.113.5", PASSWORD)).status == 200  # the office signs in


async def test_memory_is_bounded_and_entries_expire():
    """issue 15, finding 4: before, every rejected user name added an entry that was never removed."""
    now = [1_000_000.0]
    storage = BoundedMemoryStorage(max_keys=500, clock=lambda: now[0])
    throttle = LoginThrottle(storage)
    for i in range(30_000):  # one network, a new user name each time, all wrong
        async with throttle.attempt(f"name{i}", "198.51.100.7") as attempt:
            if attempt.allowed:
                await attempt.failed()
    assert len(storage) <= 3 * throttle.network.amount  # the refused ones left nothing behind
    requests = RequestThrottle(per_network=5, storage=storage)
    for i in range(30_000):  # as many networks: the cap holds
        await requests.allow("queue", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(storage) <= 500
    now[0] += 3 * 3600  # every window (at most one hour) and its successor have passed
    await requests.allow("queue", "192.0.2.1")
    assert len(storage) == 1


async def test_limits_are_shared_by_every_node_on_redis():
    """issue 15, finding 4: before, each process counted for itself."""
    from sprechstunde.web.core.ratelimit import close_limit_storage, open_limit_storage

    async with redis_namespace() as prefix:
        nodes = [open_limit_storage(REDIS_URL, prefix) for _ in range(2)]
        try:
            first, second = (LoginThrottle(storage) for storage in nodes)
            for _ in range(5):
                async with first.attempt("berater", "2001:db8::1") as attempt:
                    assert attempt.allowed
                    await attempt.failed()
            async with second.attempt("berater", "2001:db8::2") as attempt:
                assert not attempt.allowed  # the other node, the same /64
            async with second.attempt("berater", "192.0.2.1") as attempt:
                assert attempt.allowed
            queue = [RequestThrottle(per_network=3, storage=storage) for storage in nodes]
            results = [await queue[i % 2].allow("queue", "192.0.2.9") for i in range(4)]
            assert results == [True, True, True, False]
            raw = Redis.from_url(REDIS_URL, decode_responses=True)
            keys = [key async for key in raw.scan_iter(match=prefix + "limits:*")]
            assert keys and all([await raw.ttl(key) > 0 for key in keys])  # Redis expires them
            await raw.aclose()
        finally:
            for storage in nodes:
                await close_limit_storage(storage)


# --- finding 5: timing and the event loop -----------------------------------------------------------


@pytest.fixture
async def directory(tmp_path):
    store = SQLiteStore(tmp_path / "staff.sqlite3")
    directory = StaffDirectory(store)
    await directory.add("anna", PASSWORD, "advisor", ["vhs"])
    await directory.add("gesperrt", PASSWORD, "advisor", ["vhs"])
    await directory.set_disabled("gesperrt")
    yield directory
    await store.close()


async def test_every_login_path_hashes_exactly_once(directory, monkeypatch):
    """issue 15, finding 5: before, an unknown account cost two scrypt runs (48 ms against 25 ms)."""
    calls: list[tuple] = []
    scrypt = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append((kwargs["n"], kwargs["r"], kwargs["p"], kwargs["dklen"]))
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    per_path = {}
    for name, password in (
        ("anna", "falsch-falsch"),
        ("anna", PASSWORD),
        ("niemand", "x"),
        ("gesperrt", "x"),
    ):
        calls.clear()
        await directory.authenticate(name, password)
        per_path[name, password] = list(calls)
    assert all(len(c) == 1 for c in per_path.values()), per_path
    assert len({c[0] for c in per_path.values()}) == 1  # the same parameters on every path


async def test_password_hashing_does_not_stall_the_event_loop(directory):
    """issue 15, finding 5: before, scrypt ran on the loop and stalled every socket for its duration."""
    started = time.perf_counter()
    hashlib.scrypt(b"x", salt=b"s" * 16, n=2**14, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024)
    hash_time = time.perf_counter() - started
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    for name in ("anna", "niemand"):
        await directory.authenticate(name, "falsch-falsch")
    done.set()
    await task
    assert max(gaps) < max(0.010, hash_time / 2), (max(gaps), hash_time)


# --- finding 12: cross-site sign-in posts ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/api/login"])
async def test_cross_site_sign_in_is_refused(proxied, path):
    """issue 15, finding 12: before, a page of any site could post the sign-in form (login CSRF)."""
    client, _ = proxied
    body = {"username": "berater", "password": PASSWORD}
    send = {"json": body} if path == "/api/login" else {"data": body}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        response = await client.post(path, **send, headers=headers, allow_redirects=False)
        assert response.status == 403, headers
        assert "sprechstunde_session" not in response.cookies
        if path == "/api/login":
            assert (await response.json())["error"]["code"] == "cross_site"
    own = f"http://{client.server.host}:{client.server.port}"
    # our pages send Referrer-Policy: no-referrer, so a browser posts Origin: null from our own login page
    same_origin_null = {"Sec-Fetch-Site": "same-origin", "Origin": "null"}
    for headers in ({"Origin": own}, {"Referer": own + "/login"}, {}, same_origin_null):
        response = await client.post(path, **send, headers=headers, allow_redirects=False)
        assert response.status in (200, 303), headers
        assert "sprechstunde_session" in response.cookies


async def test_sign_in_from_the_public_url_behind_a_proxy(aiohttp_client, tmp_path):
    """issue 15, finding 12: the configured public URL (and the proxy's scheme) count as this site."""
    config = Config(
        data_dir=tmp_path / "data",
        media_addresses=["127.0.0.1"],
        demo=False,
        base_url="https://termine.example.de/",
        trusted_proxies=["127.0.0.1"],
    )
    client = await aiohttp_client(create_app(config))
    await client.app[SERVICES].staff.add("berater", PASSWORD, "advisor", ["vhs"])
    body = {"username": "berater", "password": PASSWORD}
    ok = await client.post("/api/login", json=body, headers={"Origin": "https://termine.example.de"})
    assert ok.status == 200
    forwarded = {
        "Origin": "https://intern.example.de",
        "Host": "intern.example.de",
        "X-Forwarded-Proto": "https",
    }
    assert (await client.post("/api/login", json=body, headers=forwarded)).status == 200
    plain = {"Origin": "http://termine.example.de"}  # the same host without TLS is another origin
    assert (await client.post("/api/login", json=body, headers=plain)).status == 403
