"""`serve --log-format json`: one JSON object per line with request and room ids, and never a name, chat
text, file name, question or join token — checked on the real process's output after a run that uses
all of them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from urllib.parse import quote, urlsplit

import aiohttp

from bench.server import ServerProcess
from sprechstunde.web.core.observability import (
    ContextFilter,
    JsonFormatter,
    loggable_path,
    request_id,
    room_id,
)
from tests.test_documents import PDF

CITIZEN = "Zeynep Kılıç-Schmitz"
ADVISOR = "Erika Mustermann-Beratung"
CHAT = "Meine Steuernummer ist 12/345/67890"
FILE_NAME = "Kontoauszug Privat Januar.pdf"
QUESTION = "Wie beantrage ich Wohngeld für meine Tochter Lina?"
CONTACT = "lina.mutter@example.org"
SECRETS = (CITIZEN, ADVISOR, CHAT, FILE_NAME, "Kontoauszug", QUESTION, "Wohngeld", CONTACT)


def test_json_formatter_line_has_the_fields_and_context():
    record = logging.LogRecord("web.x", logging.WARNING, __file__, 1, "room %s full", ("r1",), None)
    token_r, token_o = request_id.set("abc123def4567890"), room_id.set("r-42")
    try:
        ContextFilter().filter(record)
    finally:
        request_id.reset(token_r)
        room_id.reset(token_o)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["logger"] == "web.x" and line["message"] == "room r1 full"
    assert line["request_id"] == "abc123def4567890" and line["room_id"] == "r-42"
    assert line["time"].endswith("+00:00")


def test_tokens_are_cut_from_logged_paths():
    assert loggable_path("/join/eyJhIjoxfQ.c2ln") == "/join/…"
    assert loggable_path("/wait/abc.def") == "/wait/…"
    assert loggable_path("/api/download/abc.def") == "/api/download/…"
    assert loggable_path("/api/rooms/r1/documents") == "/api/rooms/r1/documents"


async def test_json_logs_carry_ids_and_no_personal_data(tmp_path):
    data = tmp_path / "data"
    added = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "user", "add", "berater", "--office", "vhs",
         "--data-dir", str(data), "--password-stdin"],
        input="richtig-langes-passwort\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    created = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "room", "create", "--office", "vhs", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    room = json.loads(created.stdout)
    tokens = {role: room[f"{role}_url"].rsplit("/join/", 1)[1] for role in ("citizen", "advisor")}
    log_path = tmp_path / "server.log"
    with ServerProcess(data, "--log-format", "json", "--log-level", "debug", log_path=log_path) as server:
        server.wait_healthy(timeout=20)
        async with aiohttp.ClientSession() as http:
            base = server.url
            assert (await http.get(base + urlsplit(room["citizen_url"]).path)).status == 200
            login = await http.post(
                base + "/api/login", json={"username": "berater", "password": "richtig-langes-passwort"}
            )
            assert login.status == 200
            sockets = {}
            for role, name in (("citizen", CITIZEN), ("advisor", ADVISOR)):
                ws = await http.ws_connect(base.replace("http", "ws") + "/ws")
                await ws.send_json({"type": "hello", "id": 1, "v": 1, "token": tokens[role], "name": name})
                while (await ws.receive_json(timeout=10))["type"] != "welcome":
                    pass
                sockets[role] = ws
            await sockets["citizen"].send_json({"type": "chat", "id": 2, "text": CHAT})
            while (await sockets["advisor"].receive_json(timeout=10))["type"] != "chat":
                pass
            await sockets["citizen"].send_json({"type": "chat", "id": 3, "text": 5})  # an error, logged?
            uploaded = await http.post(
                f"{base}/api/rooms/{room['room_id']}/documents",
                data=PDF,
                headers={"X-Join-Token": tokens["citizen"], "X-File-Name": quote(FILE_NAME),
                         "Content-Type": "application/octet-stream"},
            )  # fmt: skip
            assert uploaded.status == 201, await uploaded.text()
            refused = await http.post(
                f"{base}/api/rooms/{room['room_id']}/documents",
                data=b"MZ\x90\x00 not a document",
                headers={"X-Join-Token": tokens["citizen"], "X-File-Name": quote("Privat " + FILE_NAME),
                         "Content-Type": "application/octet-stream"},
            )  # fmt: skip
            assert refused.status == 415
            asked = await http.post(
                base + "/api/questions",
                json={"office": "vhs", "language": "de", "topic": "Wohngeld", "question": QUESTION,
                      "contact": CONTACT},
            )  # fmt: skip
            assert asked.status in (201, 400, 409), await asked.text()
            for ws in sockets.values():
                await ws.close()
            rid = (await http.get(base + "/readyz", headers={"X-Request-Id": "probe-request-0001"})).headers
            assert rid["X-Request-Id"] == "probe-request-0001"
    text = log_path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert len(lines) > 5
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "message", "request_id", "room_id"} <= entry.keys()
    assert any(e["request_id"] == "probe-request-0001" and e.get("path") == "/readyz" for e in entries)
    assert any(e["room_id"] == room["room_id"] for e in entries), "no line names the room of the call"
    for secret in (*SECRETS, quote(FILE_NAME), *tokens.values()):
        assert secret not in text, f"{secret!r} appears in the log"
