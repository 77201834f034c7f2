"""Issue 15, finding 13: bidi override characters do not survive in free text.

An explicit direction control (U+202A–U+202E, U+2066–U+2069, the marks U+200E/U+200F/U+061C) makes text
display other than it reads ("Rechnung‮fdp.exe" shows as "Rechnungexe.pdf"). Every entry point where a
citizen's or staff member's free text enters strips them (chat, booking name, link title, waiting-room
topic/note/transcript, hand-over note, question, ticket notes, chatbot input); values taken exactly as given
(shared URLs, e-mail addresses, contact addresses) are refused with a clear error. Arabic text, with its
zero-width non-joiner, passes unchanged everywhere.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.text import BIDI_CONTROLS, has_bidi, strip_bidi
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests import test_booking_api, test_waiting_api
from tests.conftest import token_of
from tests.test_documents import auth
from tests.test_signaling import hello, next_of
from tests.test_waiting_api import enqueue, receive, status_where, token_from, waiting_socket

SPOOF = "Rechnung\u202efdp.exe\u202c \u2067x\u2069\u200e\u200f\u061c\u202a\u202b\u202d\u2066\u2068"
SPOOF_CLEAN = "Rechnungfdp.exe x"
ARABIC = "مرحبا، أريد تجديد جواز السفر رقم ١٢٣ من فضلك"  # Arabic letters and digits, no controls
PERSIAN = "می\u200cخواهم"  # zero-width non-joiner: part of the spelling, kept


def test_strip_and_detect():
    assert strip_bidi(SPOOF) == SPOOF_CLEAN
    assert all(not has_bidi(strip_bidi(c)) for c in BIDI_CONTROLS)
    assert {"\u202e", "\u2066", "\u2069", "\u200f", "\u061c"} <= BIDI_CONTROLS
    for text in (ARABIC, PERSIAN, "Grüße, Łódź 👩\u200d💻"):
        assert strip_bidi(text) == text and not has_bidi(text)
    assert has_bidi(SPOOF)


def clean(text: str) -> bool:
    return not has_bidi(text)


async def test_chat_text_is_stripped_and_arabic_passes(client, room_links):
    a = await client.ws_connect("/ws")
    b = await client.ws_connect("/ws")
    await hello(a, token_of(room_links["advisor_url"]), "Herr Schulz")
    await hello(b, token_of(room_links["citizen_url"]), "\u2067Frau\u061c Y\u2069")
    joined = await next_of(a, "participant-joined")
    assert joined["participant"]["name"] == "Frau Y"
    await b.send_json({"type": "chat", "id": "c1", "text": SPOOF})
    assert (await next_of(a, "chat"))["text"] == SPOOF_CLEAN
    await b.send_json({"type": "chat", "id": "c2", "text": ARABIC})
    assert (await next_of(a, "chat"))["text"] == ARABIC
    await b.send_json({"type": "chat", "id": "c3", "text": "\u202e\u202c"})  # nothing left to send
    while (reply := await next_of(b, "error"))["id"] != "c3":
        pass
    assert reply["code"] == "bad_message"
    await a.close()
    await b.close()


async def test_booking_name_is_stripped_and_a_spoofed_email_refused(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(test_booking_api.at("12:00", test_booking_api.TUESDAY) - timedelta(days=1))
    await test_booking_api.advisor(services)
    refused = await client.post(
        "/api/bookings", json=test_booking_api.request(email="erika\u202e@example.org")
    )
    assert refused.status == 400 and (await refused.json())["error"]["code"] == "invalid_email"
    booked = await client.post("/api/bookings", json=test_booking_api.request(name="Erika \u202eznioM"))
    assert booked.status == 201, await booked.text()
    booking = await services.scheduling.get((await booked.json())["booking_id"])
    assert booking.name == "Erika znioM"
    arabic = await client.post(
        "/api/bookings",
        json=test_booking_api.request(name="عائشة الحسن", starts_at=test_booking_api.at("09:20").isoformat()),
    )
    assert arabic.status == 201, await arabic.text()
    assert (await services.scheduling.get((await arabic.json())["booking_id"])).name == "عائشة الحسن"


@pytest.mark.parametrize(
    "url",
    [
        "https://www.stadt-koeln.de/\u202efdp.exe",
        "https://www.stadt-koeln.de/antrag\u2066.pdf",
        "https://www.stadt-koeln.de/a?x=\u200f1",
    ],
)
async def test_spoofed_link_url_is_refused(client, room_links, url):
    response = await client.post(
        f"/api/rooms/{room_links['room_id']}/links", json={"url": url}, headers=auth(room_links)
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_url"


async def test_link_title_is_stripped_and_arabic_passes(client, room_links):
    room = room_links["room_id"]
    for title, shown in [(SPOOF, SPOOF_CLEAN), (ARABIC, ARABIC)]:
        response = await client.post(
            f"/api/rooms/{room}/links",
            json={"url": "https://www.stadt-koeln.de/wohngeld", "title": title},
            headers=auth(room_links, "advisor"),
        )
        assert response.status == 201
        assert (await response.json())["title"] == shown


async def test_waiting_room_topic_note_and_transcript_are_stripped(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(test_waiting_api.OPEN)
    transcript = [{"role": "citizen", "text": SPOOF}, {"role": "bot", "text": "\u202eok"}]
    entry = await enqueue(client, topic="Pass\u202e", note=SPOOF, transcript=transcript)
    stored = await services.queue.get(entry["entry_id"])
    assert stored.topic == "Pass" and stored.note == SPOOF_CLEAN
    assert [m["text"] for m in stored.transcript] == [SPOOF_CLEAN, "ok"]

    ws = await waiting_socket(client, token_from(entry["waiting_url"]))
    await receive(ws, "queue-status")
    await ws.send_json({"type": "note", "id": 2, "text": "\u2067" + ARABIC + "\u2069"})
    await status_where(ws, note=ARABIC)
    await ws.close()
    with pytest.raises(QueueError) as info:
        await services.queue.set_note(entry["entry_id"], "\u202e\u202c ")
    assert info.value.code == "empty_note"

    arabic = await enqueue(client, topic=ARABIC, note=ARABIC)
    stored = await services.queue.get(arabic["entry_id"])
    assert stored.topic == ARABIC and stored.note == ARABIC


async def test_question_and_ticket_notes_are_stripped_and_a_spoofed_contact_refused(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(test_waiting_api.OPEN)
    body = {"office": "vhs", "language": "de", "topic": "Kurs", "question": SPOOF, "contact": "a@b.de"}
    refused = await client.post("/api/questions", json=body | {"contact": "\u202ea@b.de"})
    assert refused.status == 400 and (await refused.json())["error"]["code"] == "invalid_contact"
    asked = await client.post("/api/questions", json=body)
    assert asked.status == 201, await asked.text()
    ticket = await services.queue.tickets.get((await asked.json())["reference"])
    assert ticket.notes == SPOOF_CLEAN and clean(ticket.topic or "")
    arabic = await client.post("/api/questions", json=body | {"question": ARABIC})
    assert (await services.queue.tickets.get((await arabic.json())["reference"])).notes == ARABIC
    opened = await services.queue.tickets.open("vhs", "\u2066intern\u2069 " + ARABIC)
    assert opened.notes == "intern " + ARABIC


@pytest.fixture
def chatbot_config(tmp_path) -> Config:
    from tests.test_chatbot_api import FIXTURES

    return Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, chatbot_knowledge=FIXTURES
    )


async def test_chatbot_input_is_stripped(aiohttp_client, chatbot_config):
    from sprechstunde.web.core.app import create_app

    client = await aiohttp_client(create_app(chatbot_config))
    services = client.app[SERVICES]
    response = await client.post("/api/chatbot/messages", json={"text": "Personal\u202eausweis beantragen"})
    assert response.status == 200, await response.text()
    conversation = (await response.json())["conversation_id"]
    await client.post("/api/chatbot/messages", json={"text": ARABIC, "conversation_id": conversation})
    transcript = await services.chatbot.transcript(conversation)
    citizen = [m["text"] for m in transcript if m["role"] == "citizen"]
    assert citizen == ["Personalausweis beantragen", ARABIC]
