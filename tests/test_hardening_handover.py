"""Issue 15, finding 17: an advisor's internal hand-over note never reaches the citizen.

Handing a citizen over to another office's queue ("In deren Warteschlange übergeben") stores the note for
colleagues apart from the citizen's own note: staff see both, everything the citizen can fetch or receive
(waiting page, waiting socket, call socket, call page) carries only their own.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import aiohttp

from sprechstunde.rooms.queue import ENTRY_KIND
from sprechstunde.web.core.services import SERVICES
from tests.test_consultations_api import login
from tests.test_waiting_api import OPEN, console_socket, enqueue, receive, token_from, waiting_socket

OWN = "Ich brauche einen Kita-Platz ab März"
INTERNAL = "INTERN: war schon zweimal da, Unterlagen unvollständig"


async def texts(ws, until: str) -> list[str]:
    """Every text frame up to and including the first message of type `until`."""
    seen = []
    while True:
        frame = await ws.receive(timeout=5)
        assert frame.type == aiohttp.WSMsgType.TEXT, frame
        seen.append(frame.data)
        if json.loads(frame.data)["type"] == until:
            return seen


async def test_the_hand_over_note_stays_with_staff_and_the_citizen_keeps_their_own(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    csrf = await login(client, services, offices=("vhs", "familienbuero"), languages=("de",))
    queued = await enqueue(client, note=OWN)
    waiting_token = token_from(queued["waiting_url"])
    member = await services.staff.get("berater")
    consultation = await services.queue.claim(member, queued["entry_id"])
    room = consultation.room
    call = await client.ws_connect("/ws")
    citizen_token = services.rooms.link(room, "citizen", "").rsplit("/join/", 1)[1]
    await call.send_json({"type": "hello", "id": 1, "v": 1, "token": citizen_token, "name": "Frau Y"})
    await receive(call, "welcome")

    moved = await client.post(
        f"/api/consultations/{queued['entry_id']}/transfer",
        json={"office": "familienbuero", "note": INTERNAL},
        headers=csrf,
    )
    assert moved.status == 200, await moved.text()
    entry = (await moved.json())["entry"]
    # staff: both notes, each in its own field
    assert entry["note"] == OWN and entry["handover_note"] == INTERNAL

    # the citizen's call hears where they go, nothing of the note
    assert "INTERN" not in "".join(await texts(call, "transferred"))
    await call.close()

    # the citizen's waiting page (HTML) and waiting socket: their own note, not the colleagues'
    page = await (await client.get(f"/wait/{waiting_token}")).text()
    assert "INTERN" not in page and OWN in page
    waiting = await waiting_socket(client, waiting_token)
    pushed = await texts(waiting, "queue-status")
    assert "INTERN" not in "".join(pushed)
    status = json.loads(pushed[-1])
    assert status["note"] == OWN and status["office"]["id"] == "familienbuero"
    # … also after the citizen edits their note
    await waiting.send_json({"type": "note", "id": 2, "text": "Kita-Platz ab April"})
    while True:
        frame = await waiting.receive(timeout=5)
        assert "INTERN" not in frame.data
        message = json.loads(frame.data)
        if message["type"] == "queue-status" and message["note"] == "Kita-Platz ab April":
            break

    # the colleagues of the new office see both on their console …
    console = await console_socket(client)
    listed = await receive(console, "queue")
    mine = [e for e in listed["entries"] if e["entry_id"] == queued["entry_id"]]
    assert mine and mine[0]["note"] == "Kita-Platz ab April" and mine[0]["handover_note"] == INTERNAL
    # … and once they take the citizen, in their running consultations and on their call page
    await console.send_json({"type": "claim", "id": 3, "entry_id": queued["entry_id"]})
    claimed = await receive(console, "claimed")
    assert claimed["entry"]["handover_note"] == INTERNAL
    running = await (await client.get("/api/consultations")).json()
    assert running["consultations"][0]["handover_note"] == INTERNAL
    advisor_page = await (await client.get(claimed["advisor_url"])).text()
    assert INTERNAL in advisor_page
    # the citizen, admitted again, gets a join link and nothing else
    admitted = await texts(waiting, "admitted")
    assert "INTERN" not in "".join(admitted)
    async with aiohttp.ClientSession() as anonymous:
        fetched = await anonymous.get(client.make_url(json.loads(admitted[-1])["join_url"]))
        assert fetched.status == 200 and "INTERN" not in await fetched.text()
    await waiting.close()
    await console.close()


async def test_entries_stored_before_the_hand_over_note_existed_still_load(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    queued = await enqueue(client, note=OWN)
    stored = asdict(await services.queue.get(queued["entry_id"]))
    stored.pop("handover_note")
    await services.store.put(ENTRY_KIND, queued["entry_id"], stored, ttl=3600)
    entry = await services.queue.get(queued["entry_id"])
    assert entry.note == OWN and entry.handover_note is None
    page = await client.get(f"/wait/{token_from(queued['waiting_url'])}")
    assert page.status == 200 and OWN in await page.text()
