"""Issue 15, finding 3: one join link holds at most one live seat of its room.

A new connection with the same link replaces the old one (the old socket hears `replaced` and is closed
with 4001, the others see it leave at once instead of a ghost in its grace period); the advisor's seat is
never taken by a citizen or guest link; a `resume` is the same participant, not a replacement.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import token_of
from tests.rtc_client import RtcParticipant


async def receive(ws, kind: str, timeout: float = 5.0) -> dict:
    """The next message of `kind`, skipping others."""
    while True:
        frame = await ws.receive(timeout=timeout)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        message = json.loads(frame.data)
        if message["type"] == kind:
            return message


async def hello(client, token: str, name: str = "Test", resume: str | None = None):
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "id": "h", "v": 1, "token": token, "name": name, "resume": resume})
    while True:
        frame = await ws.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        message = json.loads(frame.data)
        if message["type"] in ("welcome", "error"):
            return ws, message


async def replaced(ws) -> dict:
    """The `replaced` error an old socket gets, then its close frame (4001); returns the error."""
    told = await receive(ws, "error")
    frame = await ws.receive(timeout=5)
    while frame.type == aiohttp.WSMsgType.TEXT:
        frame = await ws.receive(timeout=5)
    # the code of the close frame is what a browser's close event reports (aiohttp's client may note
    # 1006 afterwards, when its own close reply finds the connection already gone)
    assert frame.type == aiohttp.WSMsgType.CLOSE and frame.data == 4001, frame
    return told


def live(services, room_id: str) -> list[str]:
    return sorted(p.role for p in services.hub.rooms[room_id].participants.values())


async def test_four_sockets_of_one_citizen_link_hold_one_seat_and_the_advisor_gets_in(
    client, services, room_links
):
    citizen = token_of(room_links["citizen_url"])
    sockets = []
    for i in range(4):
        ws, welcome = await hello(client, citizen, f"Tab {i}")
        assert welcome["type"] == "welcome", welcome
        if sockets:
            told = await replaced(sockets[-1])
            assert told["code"] == "replaced" and told["message"]
        sockets.append(ws)
    room_id = welcome["room_id"]
    assert live(services, room_id) == ["citizen"]
    advisor, welcome = await hello(client, token_of(room_links["advisor_url"]), "Beratung")
    assert welcome["type"] == "welcome", welcome
    assert [p["name"] for p in welcome["participants"]] == ["Tab 3"]
    assert live(services, room_id) == ["advisor", "citizen"]
    for ws in [*sockets, advisor]:
        await ws.close()


async def test_a_reload_without_resume_leaves_no_ghost(client, services, room_links):
    services.hub.grace_seconds = 30.0
    advisor, _ = await hello(client, token_of(room_links["advisor_url"]), "Beratung")
    first, old = await hello(client, token_of(room_links["citizen_url"]), "Frau A")
    await receive(advisor, "participant-joined")
    await first.close()  # the page unloads; its socket is gone, the grace period starts
    await asyncio.sleep(0.1)
    second, new = await hello(client, token_of(room_links["citizen_url"]), "Frau A")
    assert new["type"] == "welcome" and new["resumed"] is False
    assert old["participant_id"] not in [p["participant_id"] for p in new["participants"]]
    left = await receive(advisor, "participant-left", timeout=2.0)  # at once, not after 30 s
    assert left == {"type": "participant-left", "participant_id": old["participant_id"], "reason": "replaced"}
    joined = await receive(advisor, "participant-joined")
    assert joined["participant"]["participant_id"] == new["participant_id"]
    assert live(services, new["room_id"]) == ["advisor", "citizen"]
    await second.close()
    await advisor.close()


async def test_a_second_tab_replaces_the_first_and_the_others_see_one_citizen(client, services, room_links):
    advisor, _ = await hello(client, token_of(room_links["advisor_url"]), "Beratung")
    first, old = await hello(client, token_of(room_links["citizen_url"]), "Frau A")
    await receive(advisor, "participant-joined")
    second, new = await hello(client, token_of(room_links["citizen_url"]), "Frau A")
    told = await replaced(first)
    assert told["code"] == "replaced"
    left = await receive(advisor, "participant-left")
    assert left["participant_id"] == old["participant_id"] and left["reason"] == "replaced"
    # the new tab works; the old one's participant is gone from the room
    await second.send_json({"type": "chat", "id": "c-1", "text": "Hallo"})
    assert (await receive(advisor, "chat"))["from"] == new["participant_id"]
    assert live(services, new["room_id"]) == ["advisor", "citizen"]
    await second.close()
    await advisor.close()


async def test_another_citizen_link_of_the_same_room_is_the_same_seat(client, services, room_links):
    """The waiting room signs a fresh citizen link on every admission (a reloaded waiting page gets a new
    one): every citizen link of a room is the one citizen, so minting more does not buy more seats."""
    first, old = await hello(client, token_of(room_links["citizen_url"]), "Frau A")
    room = await services.rooms.get(old["room_id"])
    fresh = token_of(services.rooms.link(room, "citizen", "http://test"))
    assert fresh != token_of(room_links["citizen_url"])
    second, new = await hello(client, fresh, "Frau A")
    assert new["type"] == "welcome"
    assert (await replaced(first))["code"] == "replaced"
    assert live(services, new["room_id"]) == ["citizen"]
    await second.close()


async def test_no_citizen_or_guest_link_takes_the_advisors_seat(client, services, room_links):
    citizen = token_of(room_links["citizen_url"])
    sockets = []
    ws, welcome = await hello(client, citizen)
    sockets.append(ws)
    room_id = welcome["room_id"]
    room = await services.rooms.get(room_id)
    guests = [token_of(services.rooms.link(room, "guest", "http://test")) for _ in range(3)]
    for token in guests[:2]:
        ws, welcome = await hello(client, token)
        assert welcome["type"] == "welcome", welcome
        sockets.append(ws)
    # three people besides the advisor: the fourth place is the advisor's
    ws, refused = await hello(client, guests[2])
    assert refused["type"] == "error" and refused["code"] == "room_full"
    sockets.append(ws)
    advisor, welcome = await hello(client, token_of(room_links["advisor_url"]))
    assert welcome["type"] == "welcome", welcome
    # the citizen link, opened again and again, only ever replaces the citizen
    for _ in range(3):
        ws, again = await hello(client, citizen)
        assert again["type"] == "welcome"
        sockets.append(ws)
    assert live(services, room_id) == ["advisor", "citizen", "guest", "guest"]
    assert not advisor.closed
    await advisor.send_json({"type": "ping", "id": "alive"})
    assert (await receive(advisor, "pong"))["id"] == "alive"
    for ws in [*sockets, advisor]:
        await ws.close()


async def test_one_seat_per_guest_link(client, services, room_links):
    advisor, welcome = await hello(client, token_of(room_links["advisor_url"]))
    room = await services.rooms.get(welcome["room_id"])
    interpreter = token_of(services.rooms.link(room, "guest", "http://test"))
    colleague = token_of(services.rooms.link(room, "guest", "http://test"))
    a, _ = await hello(client, interpreter, "Dolmetscherin")
    b, _ = await hello(client, interpreter, "Dolmetscherin")
    assert (await replaced(a))["code"] == "replaced"
    c, welcome_c = await hello(client, colleague, "Kollege")
    assert welcome_c["type"] == "welcome"
    assert live(services, welcome["room_id"]) == ["advisor", "guest", "guest"]
    # a guest's resume secret does not carry over to another guest link
    d, welcome_d = await hello(client, interpreter, "Dolmetscherin", resume=welcome_c["resume"])
    assert welcome_d["resumed"] is False and welcome_d["participant_id"] != welcome_c["participant_id"]
    assert not c.closed
    for ws in (a, b, c, d, advisor):
        await ws.close()


async def test_resume_is_the_same_participant_not_a_replacement(client, services, room_links):
    advisor, _ = await hello(client, token_of(room_links["advisor_url"]))
    first, old = await hello(client, token_of(room_links["citizen_url"]), "Frau A")
    await receive(advisor, "participant-joined")
    second, new = await hello(client, token_of(room_links["citizen_url"]), "Frau A", resume=old["resume"])
    assert new["resumed"] is True and new["participant_id"] == old["participant_id"]
    assert (await replaced(first))["code"] == "replaced"
    await advisor.send_json({"type": "ping", "id": "p"})
    await receive(advisor, "pong")
    await asyncio.sleep(0.2)
    await advisor.send_json({"type": "ping", "id": "q"})
    while True:  # nothing but the pong: no participant-left, no participant-joined
        frame = json.loads((await advisor.receive(timeout=5)).data)
        assert frame["type"] not in ("participant-left", "participant-joined"), frame
        if frame["type"] == "pong":
            break
    await second.close()
    await advisor.close()


async def test_the_advisor_decodes_the_reloaded_citizens_video_again(client, services, room_links):
    """A reload (new connection, no resume): the new publisher is a fresh join for the advisor, whose
    picture of the citizen comes back within a few seconds."""
    url = str(client.make_url("/ws"))
    citizen = RtcParticipant(client.session, url, token_of(room_links["citizen_url"]), "Bürgerin")
    advisor = RtcParticipant(client.session, url, token_of(room_links["advisor_url"]), "Berater")
    reloaded = RtcParticipant(client.session, url, token_of(room_links["citizen_url"]), "Bürgerin")
    try:
        await citizen.join()
        await advisor.join()
        await asyncio.gather(citizen.wait_frames(video=10, audio=10), advisor.wait_frames(video=10, audio=10))
        await citizen.drop()
        before = advisor.frames["video"]
        await reloaded.join()
        left = await advisor.wait_for("participant-left", timeout=3.0)
        assert left["participant_id"] == citizen.welcome["participant_id"] and left["reason"] == "replaced"

        async def picture() -> None:
            while advisor.frames["video"] < before + 15:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(picture(), timeout=8.0)
        await reloaded.wait_frames(video=10, audio=10)
        assert live(services, reloaded.welcome["room_id"]) == ["advisor", "citizen"]
    finally:
        for person in (citizen, advisor, reloaded):
            await person.close()
