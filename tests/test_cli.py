"""The command line as an operator scripts it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import datetime

import pytest

from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.web.core.config import prepare_data_dir


def run(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sprechstunde", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_room_create_prints_one_json_object(tmp_path):
    result = run(
        "room",
        "create",
        "--office",
        "vhs",
        "--data-dir",
        str(tmp_path),
        "--base-url",
        "https://video.example.de/",
        "--ttl",
        "90m",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"room_id", "advisor_url", "citizen_url", "expires_at"}
    assert data["citizen_url"].startswith("https://video.example.de/join/")
    assert datetime.fromisoformat(data["expires_at"]).tzinfo is not None
    secret = tmp_path / "server-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (tmp_path / "sprechstunde.sqlite3").exists()


def test_room_create_rejects_bad_office(tmp_path):
    result = run("room", "create", "--office", "VHS Köln!", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "office" in result.stderr and result.stdout == ""


def test_data_dir_from_environment(tmp_path):
    env = dict(os.environ, SPRECHSTUNDE_DATA_DIR=str(tmp_path / "envdir"))
    result = run("room", "create", "--office", "vhs", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "envdir" / "server-secret").exists()


def test_user_add_with_password_from_stdin(tmp_path):
    result = run(
        "user",
        "add",
        "frau.meier",
        "--role",
        "advisor",
        "--office",
        "vhs",
        "--office",
        "familienbuero",
        "--data-dir",
        str(tmp_path),
        "--password-stdin",
        stdin="ein-sicheres-passwort\n",
    )
    assert result.returncode == 0, result.stderr
    assert "password:" not in result.stdout
    again = run(
        "user",
        "add",
        "frau.meier",
        "--office",
        "vhs",
        "--data-dir",
        str(tmp_path),
        "--password-stdin",
        stdin="ein-sicheres-passwort\n",
    )
    assert again.returncode == 2 and "exists" in again.stderr


def test_user_add_generates_password_without_terminal(tmp_path):
    result = run("user", "add", "herr.schulz", "--office", "vhs", "--data-dir", str(tmp_path), stdin="")
    assert result.returncode == 0, result.stderr
    assert "password: " in result.stdout


@pytest.mark.parametrize(
    "option",
    ["--host", "--port", "--data-dir", "--base-url", "--turn-secret", "--media-address", "SPRECHSTUNDE_"],
)
def test_serve_help_explains_options(option):
    result = run("serve", "--help")
    assert result.returncode == 0
    assert option in result.stdout


def test_concurrent_first_start_shares_one_secret(tmp_path):
    data_dir = tmp_path / "fresh"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sprechstunde",
                "room",
                "create",
                "--office",
                "vhs",
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, [err for _, err in outputs]
    signer = TokenSigner(prepare_data_dir(data_dir))
    for out, _ in outputs:
        token = json.loads(out)["citizen_url"].rsplit("/join/", 1)[1]
        assert signer.verify_join(token).role == "citizen"
    assert sorted(p.name for p in data_dir.iterdir() if p.name.startswith(".")) == []


def test_user_list_disable_passwd(tmp_path):
    data = ["--data-dir", str(tmp_path)]
    add = ["user", "add", "frau.yilmaz", "--office", "vhs", "--language", "de", "--language", "tr"]
    assert run(*add, *data, "--password-stdin", stdin="erstes-passwort-1\n").returncode == 0
    assert run("user", "add", "chef", "--role", "lead", "--office", "vhs", *data, stdin="").returncode == 0
    listed = run("user", "list", *data)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "chef\tlead\tvhs\tde\tactive",
        "frau.yilmaz\tadvisor\tvhs\tde,tr\tactive",
    ]
    assert "passwort" not in listed.stdout and "scrypt" not in listed.stdout
    changed = run("user", "passwd", "frau.yilmaz", *data, "--password-stdin", stdin="zweites-passwort-2\n")
    assert changed.returncode == 0 and "password:" not in changed.stdout
    assert run("user", "passwd", "frau.yilmaz", *data, "--password-stdin", stdin="kurz\n").returncode == 2
    assert run("user", "disable", "frau.yilmaz", *data).returncode == 0
    assert "frau.yilmaz\tadvisor\tvhs\tde,tr\tdisabled" in run("user", "list", *data).stdout
    missing = run("user", "disable", "niemand", *data)
    assert missing.returncode == 2 and "no user" in missing.stderr
    bad = run("user", "add", "x.y", "--office", "vhs", "--language", "Deutsch", *data, stdin="")
    assert bad.returncode == 2 and "language" in bad.stderr


def test_password_change_and_disable_end_sessions_and_enable_unlocks(tmp_path):
    """issue 15, finding 6: `user passwd` and `user disable` end the account's sessions; `user enable`."""
    import asyncio

    from sprechstunde.rooms.staff import StaffDirectory
    from sprechstunde.store import SQLiteStore
    from sprechstunde.web.core.config import DATABASE_FILE

    data = ["--data-dir", str(tmp_path)]
    add = ["user", "add", "anna", "--office", "vhs", *data, "--password-stdin"]
    added = run(*add, stdin="erstes-passwort-1\n")
    assert added.returncode == 0, added.stderr

    async def open_session() -> str:
        store = SQLiteStore(tmp_path / DATABASE_FILE)
        try:
            directory = StaffDirectory(store)
            return await directory.open_session(await directory.authenticate("anna", "erstes-passwort-1"))
        finally:
            await store.close()

    async def session_user(session: str) -> str | None:
        store = SQLiteStore(tmp_path / DATABASE_FILE)
        try:
            member = await StaffDirectory(store).session_member(session)
            return member.username if member else None
        finally:
            await store.close()

    session = asyncio.run(open_session())
    assert asyncio.run(session_user(session)) == "anna"
    changed = run("user", "passwd", "anna", *data, "--password-stdin", stdin="zweites-passwort-2\n")
    assert changed.returncode == 0, changed.stderr
    assert asyncio.run(session_user(session)) is None
    run("user", "passwd", "anna", *data, "--password-stdin", stdin="erstes-passwort-1\n")
    session = asyncio.run(open_session())
    assert run("user", "disable", "anna", *data).returncode == 0
    enabled = run("user", "enable", "anna", *data)
    assert enabled.returncode == 0 and enabled.stdout.strip() == "enabled anna"
    assert "anna\tadvisor\tvhs\tde\tactive" in run("user", "list", *data).stdout
    assert asyncio.run(session_user(session)) is None  # unlocking does not revive old sessions
    missing = run("user", "enable", "niemand", *data)
    assert missing.returncode == 2 and "no user" in missing.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_demo_password_goes_to_the_terminal_not_the_log(tmp_path, log_format):
    """issue 15, finding 1: `serve` prints the demo account's password on stdout; the log (stderr, in
    either format) never carries it."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path / "server.log"
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--log-format", log_format]
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "sprechstunde", *args], stdout=subprocess.PIPE, stderr=log, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            else:
                pytest.fail("serve did not come up: " + log_path.read_text())
        finally:
            server.terminate()
            stdout, _ = server.communicate(timeout=30)
    password = (tmp_path / "data" / "demo-account").read_text().strip()
    assert f"demo / {password}" in stdout
    log_text = log_path.read_text()
    assert "GET /healthz" in log_text or "/healthz" in log_text  # the log was written
    assert password not in log_text
