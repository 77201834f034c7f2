"""The app on the Redis adapter: rooms made by the API or the CLI open on a server sharing the same Redis.

Uses the real server on 127.0.0.1:6379 (skipped without one outside CI, like the contract suite)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import aiohttp
import pytest
from redis.asyncio import Redis

from sprechstunde.store import RedisStore
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import SECRET_FILE, Config
from sprechstunde.web.core.services import SERVICES
from tests.browser_support import running_server
from tests.test_store import REDIS_URL, redis_namespace

PASSWORD = "richtig-langes-passwort"


@pytest.fixture
async def prefix():
    async with redis_namespace() as prefix:
        yield prefix


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sprechstunde", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


async def redis_keys(prefix: str) -> list[str]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return sorted([key async for key in client.scan_iter(match=prefix + "*")])
    finally:
        await client.aclose()


async def test_app_on_redis_creates_a_room_over_the_api_and_opens_its_join_page(
    aiohttp_client, tmp_path, prefix
):
    config = Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, redis_url=REDIS_URL,
        redis_prefix=prefix,
    )  # fmt: skip
    client = await aiohttp_client(create_app(config))
    services = client.app[SERVICES]
    assert isinstance(services.store, RedisStore)
    await services.staff.add("berater", PASSWORD, "advisor", ["vhs"])
    login = await client.post("/api/login", json={"username": "berater", "password": PASSWORD})
    assert login.status == 200
    csrf = {"X-CSRF-Token": (await login.json())["csrf"]}
    created = await client.post("/api/rooms", json={"office": "vhs"}, headers=csrf)
    assert created.status == 201
    room = await created.json()
    page = await client.get(room["citizen_url"].split("127.0.0.1:8080", 1)[1])
    assert page.status == 200 and "Beitreten" in await page.text()
    keys = await redis_keys(prefix)
    assert f"{prefix}r:room:{room['room_id']}" in keys and f"{prefix}r:staff:berater" in keys
    assert not (tmp_path / "data" / "sprechstunde.sqlite3").exists()


async def test_cli_and_a_server_process_share_state_through_redis(tmp_path, prefix):
    """`user add` and `room create` write to Redis; a server with another data directory (only the
    server secret copied, no SQLite file) knows the user and the room."""
    cli_dir, server_dir = tmp_path / "cli", tmp_path / "server"
    redis = ("--redis", REDIS_URL, "--redis-prefix", prefix)
    added = cli("user", "add", "berater", "--office", "vhs", "--data-dir", str(cli_dir), *redis,
                "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    created = cli("room", "create", "--office", "vhs", "--data-dir", str(cli_dir), *redis)
    assert created.returncode == 0, created.stderr
    room = json.loads(created.stdout)
    server_dir.mkdir(mode=0o700)
    shutil.copy2(cli_dir / SECRET_FILE, server_dir / SECRET_FILE)
    with running_server(server_dir, *redis) as server:
        base = server["base_url"]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(base + urlsplit(room["citizen_url"]).path) as page:
                assert page.status == 200 and "Beitreten" in await page.text()
            async with http.post(
                base + "/api/login", json={"username": "berater", "password": PASSWORD}
            ) as r:
                assert r.status == 200
                csrf = {"X-CSRF-Token": (await r.json())["csrf"]}
            async with http.post(base + "/api/rooms", json={"office": "vhs"}, headers=csrf) as r:
                assert r.status == 201
                made = await r.json()
            async with http.get(base + urlsplit(made["citizen_url"]).path) as page:
                assert page.status == 200
    assert not (server_dir / "sprechstunde.sqlite3").exists()
    assert not (cli_dir / "sprechstunde.sqlite3").exists()
    listed = cli("user", "list", "--data-dir", str(cli_dir), *redis)
    assert listed.returncode == 0 and listed.stdout.startswith("berater\tadvisor\tvhs")


@pytest.mark.parametrize(
    "command",
    [
        ("room", "create", "--office", "vhs"),
        ("user", "list"),
        ("keys", "rotate"),
        ("serve", "--no-demo", "--port", "0"),
    ],
)
def test_unreachable_redis_is_one_clear_line(tmp_path, command):
    result = cli(*command, "--data-dir", str(tmp_path), "--redis", "redis://user:geheim@127.0.0.1:1/0")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot reach Redis at redis://user:***@127.0.0.1:1/0: ")
    assert (
        result.stderr.count("\n") == 1 and "geheim" not in result.stderr and "Traceback" not in result.stderr
    )


def test_invalid_redis_url_is_one_clear_line(tmp_path):
    result = cli("user", "list", "--data-dir", str(tmp_path), "--redis", "http://127.0.0.1:6379")
    assert result.returncode == 2 and result.stderr.startswith("error: invalid Redis URL: ")
    assert "Traceback" not in result.stderr
