"""Issue 17, item 6: whoever joins a consultation later (an interpreter, a colleague) gets the chat so far.

The history lives in the store (signaling/chat_history.py), bounded, with the room's lifetime; it is sent
in `welcome` (`chat_history`), to participants of that room only; message ids let a page show a
message once however often it arrives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import aiohttp

from sprechstunde.rooms.service import RoomService
from sprechstunde.signaling import chat_history, connection
from sprechstunde.signaling.chat_history import (
    HISTORY_KIND,
    MAX_MESSAGES,
    MAX_TEXT_CHARS,
    ChatHistory,
    client_message_id,
)
from sprechstunde.store.embedded import SQLiteStore
from tests import test_multinode
from tests.conftest import token_of
from tests.rtc_client import RtcParticipant
from tests.test_signaling import next_of


async def joined(client, token: str, name: str, resume: str | None = None) -> tuple:
    """A socket that said hello: (socket, welcome, the chat so far that the welcome carries)."""
    ws = await client.ws_connect("/ws")
    message = {"type": "hello", "id": "h", "v": 1, "token": token, "name": name}
    if resume:
        message["resume"] = resume
    await ws.send_json(message)
    welcome = await next_of(ws, "welcome")
    return ws, welcome, welcome["chat_history"]


async def say(ws, text: str) -> dict:
    """Send a chat message; the sender's own copy (with its `message_id`)."""
    request_id = "c-" + text[:8]
    await ws.send_json({"type": "chat", "id": request_id, "text": text})
    while True:
        message = await next_of(ws, "chat")
        if message.get("id") == request_id:
            return message


async def test_a_guest_joining_later_gets_the_chat_so_far(client, room_links, services):
    advisor, _, first = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    assert first == []  # nothing written yet
    citizen, _, _ = await joined(client, token_of(room_links["citizen_url"]), "Frau Yılmaz")
    one = await say(advisor, "Guten Tag, ich hole eine Dolmetscherin dazu.")
    two = await say(citizen, "Danke, gern.")
    assert one["message_id"] != two["message_id"]

    room = await services.rooms.get(room_links["room_id"])
    guest_token = token_of(services.rooms.link(room, "guest", "http://test"))
    guest, welcome, history = await joined(client, guest_token, "Dolmetscherin Ada")
    assert welcome["role"] == "guest"
    assert [(m["name"], m["role"], m["text"]) for m in history] == [
        ("Herr Schulz", "advisor", "Guten Tag, ich hole eine Dolmetscherin dazu."),
        ("Frau Yılmaz", "citizen", "Danke, gern."),
    ]
    # the same ids and times as the live messages: a page can match them
    assert [m["message_id"] for m in history] == [one["message_id"], two["message_id"]]
    assert [m["sent_at"] for m in history] == [one["sent_at"], two["sent_at"]]
    assert history[0]["from"] == one["from"]
    # live messages go on as before, now with their id
    three = await say(guest, "Ich bin da.")
    seen = await next_of(advisor, "chat")
    while seen["text"] != "Ich bin da.":
        seen = await next_of(advisor, "chat")
    assert seen["message_id"] == three["message_id"] and "id" not in seen
    for ws in (advisor, citizen, guest):
        await ws.close()


async def test_the_live_room_bounds_its_chat_as_the_store_does(client, room_links, services, monkeypatch):
    """The hosting node keeps the room's chat in memory (signaling/connection.py): by count and by
    characters, the newest kept, oldest first, the same as `bounded` keeps in the store."""
    for module in (connection, chat_history):
        monkeypatch.setattr(module, "MAX_MESSAGES", 4)
        monkeypatch.setattr(module, "MAX_TEXT_CHARS", 30)
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    sent = [await say(advisor, text) for text in ("eins", "zwei", "drei", "vier", "fünf")]
    citizen, _, history = await joined(client, token_of(room_links["citizen_url"]), "Frau Yılmaz")
    assert [m["text"] for m in history] == ["zwei", "drei", "vier", "fünf"]  # one more than the count
    assert history == [chat_history.stored(m) for m in chat_history.bounded(sent)]
    # three of 13 characters are over 30: the two newest stay, with nothing older
    sent += [await say(citizen, f"{n}-langer Text") for n in range(3)]
    guest_token = token_of(services.rooms.link(await services.rooms.get(room_links["room_id"]), "guest", "t"))
    guest, _, history = await joined(client, guest_token, "Dolmetscherin Ada")
    assert [m["text"] for m in history] == ["1-langer Text", "2-langer Text"]
    assert history == [chat_history.stored(m) for m in chat_history.bounded(sent)]
    stored = services.hub.history
    await stored.flush()  # the store's copy: the same
    assert await stored.messages(room_links["room_id"]) == history  # (nothing pending: read from the store)
    for ws in (advisor, citizen, guest):
        await ws.close()


async def test_reconnect_gets_each_message_once_including_those_missed(client, room_links, services):
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    citizen_token = token_of(room_links["citizen_url"])
    citizen, welcome, _ = await joined(client, citizen_token, "Frau Yılmaz")
    before = await say(advisor, "Vor der Unterbrechung")
    await next_of(citizen, "chat")
    await citizen.close()  # the network drops; the place is kept for the grace period
    missed = await say(advisor, "Während der Unterbrechung")

    again, rewelcome, history = await joined(client, citizen_token, "Frau Yılmaz", welcome["resume"])
    assert rewelcome["resumed"] is True
    ids = [m["message_id"] for m in history]
    assert ids == [before["message_id"], missed["message_id"]]  # each once, the missed one too
    assert len(set(ids)) == len(ids)
    # stored once each, however often it is sent out (written behind the chat: signaling/persist.py)
    await services.hub.history.flush()
    record = await services.store.get(HISTORY_KIND, room_links["room_id"])
    assert [m["text"] for m in record["messages"]] == ["Vor der Unterbrechung", "Während der Unterbrechung"]
    for ws in (advisor, again):
        await ws.close()


async def test_only_participants_of_the_room_get_its_chat(client, room_links, services):
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    await say(advisor, "Vertraulich: Ihr Aktenzeichen ist 4711.")
    other = await services.rooms.create("vhs", 3600)
    stranger, _, history = await joined(
        client, token_of(services.rooms.link(other, "citizen", "http://test")), "Jemand"
    )
    assert history == []
    # without a valid hello nothing is sent at all
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "id": "h", "v": 1, "token": "forged.token"})
    reply = json.loads((await ws.receive(timeout=5)).data)
    assert reply["code"] == "invalid_token"
    await ws.send_json({"type": "ping", "id": "p"})
    assert json.loads((await ws.receive(timeout=5)).data)["type"] == "pong"
    for socket in (advisor, stranger, ws):
        await socket.close()


async def test_history_is_dropped_when_the_room_expires(client, room_links, services):
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    await say(advisor, "Bis gleich.")
    room_id = room_links["room_id"]
    await services.hub.history.flush()  # written behind the chat (signaling/persist.py)
    assert await services.store.get(HISTORY_KIND, room_id) is not None
    hub = services.hub
    closed = advisor.receive(timeout=5)
    await hub.expire(hub.rooms[room_id])
    assert (await closed).type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.CLOSE)
    assert await services.store.get(HISTORY_KIND, room_id) is None
    await advisor.close()


async def test_history_expires_with_the_room_and_is_bounded(tmp_path):
    now = [1000.0]
    store = SQLiteStore(tmp_path / "s.db", clock=lambda: now[0])
    history = ChatHistory(store, clock=lambda: now[0])
    base = {"from": "p-1", "name": "A", "role": "advisor", "sent_at": "2026-12-05T10:00:00+00:00"}
    for n in range(MAX_MESSAGES + 25):
        await history.append("r1", 1600.0, base | {"message_id": f"m-{n}", "text": f"Nachricht {n}"})
    kept = await history.messages("r1")
    assert len(kept) == MAX_MESSAGES  # the newest, oldest first
    assert kept[0]["message_id"] == "m-25" and kept[-1]["message_id"] == f"m-{MAX_MESSAGES + 24}"
    assert set(kept[0]) == {"message_id", "from", "name", "role", "text", "sent_at"}
    # a size cap too: long messages push out the oldest ones before the count is reached
    long = "x" * 2000
    for n in range(MAX_TEXT_CHARS // 2000 + 3):
        await history.append("r2", 1600.0, base | {"message_id": f"l-{n}", "text": long})
    kept = await history.messages("r2")
    assert sum(len(m["text"]) for m in kept) <= MAX_TEXT_CHARS
    assert kept[-1]["message_id"] == f"l-{MAX_TEXT_CHARS // 2000 + 2}"
    # the record lives as long as the room: gone once the room has expired, and nothing new is kept
    now[0] = 1601.0
    assert await history.messages("r1") == []
    await history.append("r1", 1600.0, base | {"message_id": "late", "text": "zu spät"})
    assert await history.messages("r1") == []
    await store.close()


# Two nodes on one Redis (tests/test_multinode.py's cluster): the history lives in the shared store, so
# it is there on the node a room moves to after its node died.
cluster = test_multinode.cluster


async def test_history_survives_the_room_moving_to_another_node(cluster):
    n1, n2 = cluster["nodes"]
    rooms = RoomService(cluster["store"], cluster["signer"])
    room = await rooms.create("buergertelefon", 3600)
    links = rooms.links(room, "")
    urls = [test_multinode.ws_url(n1), test_multinode.ws_url(n2)]
    async with aiohttp.ClientSession() as session:
        advisor = RtcParticipant(session, urls[0], token_of(links.advisor_url), "Herr Schulz")
        citizen = RtcParticipant(session, urls[1], token_of(links.citizen_url), "Frau Yılmaz")
        try:
            await advisor.join()
            await advisor.send({"type": "chat", "id": "c1", "text": "Vor dem Umzug geschrieben"})
            sent = await advisor.wait_for("chat", id="c1")
            welcome = await citizen.join()  # sent on to the node hosting the room
            assert [m["message_id"] for m in welcome["chat_history"]] == [sent["message_id"]]

            host = n1 if advisor.ws_url.startswith(urls[0]) else n2
            survivor = n2 if host is n1 else n1
            os.kill(host.pid, signal.SIGKILL)
            await citizen.drop()
            order = [test_multinode.ws_url(host), test_multinode.ws_url(survivor)]
            deadline = time.monotonic() + 15
            while True:
                try:
                    welcome = await citizen.join(resume=citizen.resume, urls=order)
                    break
                except (TimeoutError, RuntimeError, aiohttp.ClientError):
                    assert time.monotonic() < deadline, "the room did not move"
                    await asyncio.sleep(0.5)
            assert citizen.ws_url.startswith(test_multinode.ws_url(survivor))
            assert [(m["name"], m["text"]) for m in welcome["chat_history"]] == [
                ("Herr Schulz", "Vor dem Umzug geschrieben")
            ]
        finally:
            for participant in (advisor, citizen):
                await participant.close()


async def test_a_chat_is_acknowledged_once_stored_and_a_resent_one_is_kept_once(client, room_links, services):
    """The sender's copy (the acknowledgement) comes once the message is in the store; the page sends a
    message it got no acknowledgement for again with the same `client_message_id` (after a reconnect):
    acknowledged with the same `message_id`, not delivered, not kept twice."""
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    citizen, _, _ = await joined(client, token_of(room_links["citizen_url"]), "Frau Yılmaz")
    room_id = room_links["room_id"]
    first = {
        "type": "chat",
        "id": "c-1",
        "text": "Bitte bringen Sie den Mietvertrag mit.",
        "client_message_id": "k7Qx2-aa91",
    }
    await advisor.send_json(first)
    ack = await next_of(advisor, "chat")
    assert ack["id"] == "c-1" and ack["client_message_id"] == "k7Qx2-aa91"
    record = await services.store.get(HISTORY_KIND, room_id)
    assert [m["message_id"] for m in record["messages"]] == [ack["message_id"]]  # stored before the ack
    seen = await next_of(citizen, "chat")
    assert seen["message_id"] == ack["message_id"] and "client_message_id" not in seen and "id" not in seen

    await advisor.send_json(first | {"id": "c-1-again"})  # not acknowledged before a reconnect: again
    again = await next_of(advisor, "chat")
    assert again["id"] == "c-1-again" and again["message_id"] == ack["message_id"]
    assert again["sent_at"] == ack["sent_at"] and again["text"] == ack["text"]
    await say(advisor, "Und den Ausweis.")
    assert (await next_of(citizen, "chat"))["text"] == "Und den Ausweis."  # the repeat was not delivered
    record = await services.store.get(HISTORY_KIND, room_id)
    assert [m["text"] for m in record["messages"]] == [
        "Bitte bringen Sie den Mietvertrag mit.",
        "Und den Ausweis.",
    ]
    # the id of a message is the page's only to choose for its own room: another room, another id
    assert client_message_id("another-room", "k7Qx2-aa91") != ack["message_id"]
    for ws in (advisor, citizen):
        await ws.close()


async def test_a_malformed_client_message_id_is_refused(client, room_links):
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    for bad in ("short", "mit leerzeichen drin", "x" * 65, 12345678):
        await advisor.send_json({"type": "chat", "id": "c-bad", "text": "Hallo", "client_message_id": bad})
        error = await next_of(advisor, "error")
        assert error["code"] == "bad_message" and error["id"] == "c-bad", error
        assert "client_message_id" in error["message"]
    await advisor.close()


async def test_a_message_not_yet_stored_when_its_node_is_killed_is_kept_after_the_page_resends_it(cluster):
    """kill -9 of the node hosting the room while the store has not taken a chat message yet (Redis's
    writes held back with CLIENT PAUSE WRITE, so the race is certain): the other person saw it live, the
    sender got no acknowledgement; on the node the room moved to, the stored chat lacks it until the
    sender's page sends it again (same `client_message_id`), after which everyone, a later joiner too,
    has it exactly once."""
    from redis.asyncio import Redis

    n1, n2 = cluster["nodes"]
    rooms = RoomService(cluster["store"], cluster["signer"])
    room = await rooms.create("buergertelefon", 3600)
    links = rooms.links(room, "")
    urls = [test_multinode.ws_url(n1), test_multinode.ws_url(n2)]
    redis = Redis.from_url(test_multinode.REDIS_URL)
    async with aiohttp.ClientSession() as session:
        advisor = RtcParticipant(session, urls[0], token_of(links.advisor_url), "Herr Schulz")
        citizen = RtcParticipant(session, urls[1], token_of(links.citizen_url), "Frau Yılmaz")
        guest = RtcParticipant(session, urls[1], token_of(rooms.link(room, "guest", "")), "Dolmetscherin")
        try:
            await advisor.join()
            await citizen.join()
            await asyncio.sleep(0.3)  # the roster written (so both resume on the next node)
            message = {
                "type": "chat",
                "id": "c1",
                "text": "Gleich geschrieben",
                "client_message_id": "u1-4f0a9c2e",
            }
            await redis.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
            await advisor.send(message)
            live = await citizen.wait_for("chat", text="Gleich geschrieben")
            await asyncio.sleep(0.3)
            assert not [m for m in advisor.messages if m["type"] == "chat"], "acknowledged before stored"

            host = n1 if advisor.ws_url.startswith(urls[0]) else n2
            survivor = n2 if host is n1 else n1
            os.kill(host.pid, signal.SIGKILL)
            await asyncio.sleep(1.5)  # the pause over: what the killed node had sent is gone with it
            order = [test_multinode.ws_url(survivor)]
            for participant in (advisor, citizen):
                await participant.drop()
                welcome = await participant.join(resume=participant.resume, urls=order)
                assert welcome["resumed"] is True
            assert welcome["chat_history"] == []  # not stored: only the page still has it

            await advisor.send(message | {"id": "c1-again"})  # what the page does after the welcome
            ack = await advisor.wait_for("chat", id="c1-again")
            assert ack["message_id"] == live["message_id"]  # the same message: the other page shows it once
            await guest.join(urls=order)
            assert [(m["message_id"], m["text"]) for m in guest.welcome["chat_history"]] == [
                (live["message_id"], "Gleich geschrieben")
            ]
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
            await redis.aclose()
            for participant in (advisor, citizen, guest):
                await participant.close()


async def test_a_client_message_id_of_another_participant_does_not_swallow_a_message(client, room_links):
    """The derived `message_id` depends on the room and the client's id only: a second participant whose
    client happens to use the same `client_message_id` has its message silently dropped and is told it
    was kept, with the first participant's text."""
    advisor, _, _ = await joined(client, token_of(room_links["advisor_url"]), "Herr Schulz")
    citizen, _, _ = await joined(client, token_of(room_links["citizen_url"]), "Frau Yılmaz")
    await advisor.send_json(
        {"type": "chat", "id": "a1", "text": "Vom Berater", "client_message_id": "msg-0001"}
    )
    while json.loads((await citizen.receive(timeout=5)).data).get("type") != "chat":
        pass
    await citizen.send_json(
        {"type": "chat", "id": "b1", "text": "Von der Bürgerin", "client_message_id": "msg-0001"}
    )
    while True:
        reply = json.loads((await citizen.receive(timeout=5)).data)
        if reply.get("id") == "b1":
            break
    # refused, or kept as the citizen's own message: never acknowledged as someone else's text
    assert reply["type"] == "error" or reply["text"] == "Von der Bürgerin", reply
    for ws in (advisor, citizen):
        await ws.close()
