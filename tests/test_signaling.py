"""Every kind of bad input on the signaling socket gets an `error` and leaves the connection usable."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from sprechstunde.signaling.protocol import MAX_FRAME_BYTES, ProtocolError, clean_name, parse
from tests.conftest import token_of


async def request(ws, message) -> dict:
    await (ws.send_str(message) if isinstance(message, str) else ws.send_json(message))
    reply = await ws.receive(timeout=5)
    assert reply.type == aiohttp.WSMsgType.TEXT, reply
    return json.loads(reply.data)


async def assert_usable(ws) -> None:
    assert await request(ws, {"type": "ping", "id": "alive"}) == {"type": "pong", "id": "alive"}


async def next_of(ws, kind: str) -> dict:
    while True:
        message = json.loads((await ws.receive(timeout=5)).data)
        if message["type"] == kind:
            return message


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"id": 1}', "unknown_type"),
        ('{"type": "teleport", "id": 2}', "unknown_type"),
        ('{"type": "chat", "id": 3, "text": "hi"}', "not_joined"),
        ('{"type": "offer", "id": 4}', "bad_message"),
        ('{"type": "hello", "v": 1}', "bad_message"),
        ('{"type": "hello", "v": 1, "token": 42}', "bad_message"),
        ('{"type": "hello", "v": 2, "token": "x.y"}', "unsupported_version"),
        ('{"type": "hello", "v": 1, "token": "forged.token"}', "invalid_token"),
        ('{"type": "ping", "id": {"nested": true}}', "bad_message"),
        (json.dumps({"type": "chat", "text": "x" * (MAX_FRAME_BYTES + 1)}), "too_large"),
    ],
)
async def test_bad_frames_get_error_and_connection_stays_usable(client, frame, code):
    ws = await client.ws_connect("/ws")
    reply = await request(ws, frame)
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["message"]
    await assert_usable(ws)
    await ws.close()


async def test_request_id_is_echoed_in_errors(client):
    ws = await client.ws_connect("/ws")
    reply = await request(ws, {"type": "answer", "id": "r-7", "sdp": "v=0"})
    assert reply == {"type": "error", "id": "r-7", "code": "not_joined", "message": "send 'hello' first"}
    await ws.close()


async def hello(ws, token: str, name: str = "Test") -> dict:
    return await request(ws, {"type": "hello", "id": "h", "v": 1, "token": token, "name": name})


async def test_second_hello_is_refused(client, room_links):
    ws = await client.ws_connect("/ws")
    welcome = await hello(ws, token_of(room_links["citizen_url"]))
    assert welcome["type"] == "welcome" and welcome["id"] == "h"
    reply = await request(ws, {"type": "hello", "id": "again", "v": 1, "token": "x.y"})
    while reply["type"] == "offer":  # the server's first offer may come in between
        reply = json.loads((await ws.receive(timeout=5)).data)
    assert reply["code"] == "already_joined"
    await assert_usable(ws)
    await ws.close()


async def test_expired_and_unknown_rooms_are_refused(client, services):
    signer = services.signer
    expired = signer.join_token("whatever", "citizen", 1)
    unknown = signer.join_token("no-such-room", "citizen", 4_000_000_000)
    ws = await client.ws_connect("/ws")
    assert (await hello(ws, expired))["code"] == "expired"
    assert (await hello(ws, unknown))["code"] == "unknown_room"
    await assert_usable(ws)
    await ws.close()


async def test_fifth_participant_is_refused(client, room_links, services):
    # four seats: the advisor, the citizen and two guest links (one link holds one seat: issue 15, 3)
    room = await services.rooms.get(room_links["room_id"])
    guests = [token_of(services.rooms.link(room, "guest", "http://test")) for _ in range(3)]
    tokens = [token_of(room_links["advisor_url"]), token_of(room_links["citizen_url"]), *guests[:2]]
    sockets = []
    for token in tokens:
        ws = await client.ws_connect("/ws")
        assert (await hello(ws, token))["type"] == "welcome"
        sockets.append(ws)
    extra = await client.ws_connect("/ws")
    assert (await hello(extra, guests[2]))["code"] == "room_full"
    for ws in [*sockets, extra]:
        await ws.close()


async def test_chat_reaches_everyone_as_plain_text_and_rejects_oversize(client, room_links):
    a = await client.ws_connect("/ws")
    b = await client.ws_connect("/ws")
    await hello(a, token_of(room_links["advisor_url"]), "Herr Schulz")
    await hello(b, token_of(room_links["citizen_url"]), "Frau\u202e Yılmaz\x07")
    joined = await next_of(a, "participant-joined")
    assert joined["participant"]["name"] == "Frau Yılmaz"  # control characters removed
    await a.send_json({"type": "chat", "id": "c1", "text": "<b>Formular</b> anbei"})
    got = await next_of(b, "chat")
    assert got["text"] == "<b>Formular</b> anbei"
    assert got["name"] == "Herr Schulz" and got["role"] == "advisor"
    assert "id" not in got
    echo = await next_of(a, "chat")
    assert echo["id"] == "c1"
    too_long = await request(b, {"type": "chat", "id": "c2", "text": "x" * 2001})
    while too_long["type"] != "error":
        too_long = json.loads((await b.receive(timeout=5)).data)
    assert too_long["code"] == "bad_message"
    await a.close()
    await b.close()


async def test_leave_tells_the_others(client, room_links):
    a = await client.ws_connect("/ws")
    b = await client.ws_connect("/ws")
    await hello(a, token_of(room_links["advisor_url"]))
    welcome_b = await hello(b, token_of(room_links["citizen_url"]))
    await b.send_json({"type": "leave", "id": "bye"})
    left = await next_of(a, "participant-left")
    assert left == {
        "type": "participant-left",
        "participant_id": welcome_b["participant_id"],
        "reason": "left",
    }
    closing = await b.receive(timeout=5)
    while closing.type == aiohttp.WSMsgType.TEXT:
        closing = await b.receive(timeout=5)
    assert b.close_code == 1000
    await a.close()


async def test_dropped_connection_leaves_after_grace_period(client, room_links, services):
    services.hub.grace_seconds = 0.3
    a = await client.ws_connect("/ws")
    b = await client.ws_connect("/ws")
    await hello(a, token_of(room_links["advisor_url"]))
    await hello(b, token_of(room_links["citizen_url"]))
    await b.close()
    left = await next_of(a, "participant-left")
    assert left["reason"] == "timeout"
    await a.close()


async def test_message_flood_closes_with_1008(client):
    ws = await client.ws_connect("/ws")
    for i in range(400):
        await ws.send_json({"type": "ping", "id": i})
    close = None
    for _ in range(500):
        close = await ws.receive(timeout=5)
        if close.type != aiohttp.WSMsgType.TEXT:
            break
    assert close is not None and close.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 1008


async def test_server_survives_garbage_and_leaks_no_task(client, room_links):
    before_tasks = set(asyncio.all_tasks())
    before = len(before_tasks)
    for frame in ["{", '{"type": "candidate", "candidate": {"candidate": "nonsense"}}', "\x00" * 10]:
        ws = await client.ws_connect("/ws")
        await hello(ws, token_of(room_links["citizen_url"]))
        await ws.send_str(frame)
        await ws.close()
    await asyncio.sleep(0.2)
    assert (await client.get("/healthz")).status == 200
    # Closed participants wait out their grace period as timer handles, not as tasks.
    leaked = [task for task in asyncio.all_tasks() if task not in before_tasks]
    assert len(asyncio.all_tasks()) <= before + 1, leaked


def test_parse_rejects_booleans_posing_as_numbers():
    with pytest.raises(ProtocolError) as info:
        parse('{"type": "hello", "v": true, "token": "a.b"}')
    assert info.value.code == "bad_message"


def test_clean_name_keeps_letters_and_drops_controls():
    assert clean_name("  Ömer\u202e\x00  Çelik ", "Gast") == "Ömer Çelik"
    assert clean_name("\u200b", "Gast") == "Gast"
    assert len(clean_name("x" * 500, "Gast")) == 60


async def test_server_events_reach_everyone_in_the_room(client, room_links, services):
    a = await client.ws_connect("/ws")
    b = await client.ws_connect("/ws")
    welcome = await hello(a, token_of(room_links["advisor_url"]))
    await hello(b, token_of(room_links["citizen_url"]))
    sent = await services.hub.publish(
        welcome["room_id"], {"type": "document-added", "document": {"id": "d1"}}
    )
    assert sent == 2
    for ws in (a, b):
        assert (await next_of(ws, "document-added"))["document"] == {"id": "d1"}
    assert await services.hub.publish("no-such-room", {"type": "x"}) == 0
    await a.close()
    await b.close()
