"""POST /api/chatbot/messages and POST /api/chatbot/escalate through the real app (docs/chatbot.md):
the contract's fields, JSON errors for bad input, escalation offers, and the escalation into the waiting
room with the transcript the advisor's console shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.test_waiting_api import OPEN, SUNDAY, console_socket, receive, sign_in, token_from

FIXTURES = Path(__file__).parent / "data" / "chatbot_kb"


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(
        data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False, chatbot_knowledge=FIXTURES
    )


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(OPEN)
    return services


async def say(client, text: str, **extra) -> dict:
    response = await client.post("/api/chatbot/messages", json={"text": text} | extra)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_answer_follows_the_contract(client, services):
    body = await say(client, "Wie beantrage ich einen neuen Personalausweis?")
    assert set(body) >= {"conversation_id", "reply", "topic", "confidence", "language", "escalation"}
    assert body["topic"] == "personalausweis" and body["language"] == "de" and body["escalation"] is None
    assert 0.5 <= body["confidence"] <= 1 and "Bürgerbüro" in body["reply"]
    follow = await say(client, "Und was kostet das?", conversation_id=body["conversation_id"])
    assert follow["conversation_id"] == body["conversation_id"]
    assert follow["topic"] == "personalausweis" and "46 €" in follow["reply"]
    english = await say(client, "How do I apply for an ID card?", language="en")
    assert english["language"] == "en" and english["conversation_id"] != body["conversation_id"]


async def test_out_of_scope_gets_no_topic(client, services):
    body = await say(client, "Wie wird das Wetter morgen?")
    assert body["topic"] is None and body["escalation"] is None and "nicht zuständig" in body["reply"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({}, 400, "invalid_text"),
        ({"text": "   "}, 400, "invalid_text"),
        ({"text": 42}, 400, "invalid_text"),
        ({"text": "x" * 1001}, 400, "text_too_long"),
        ({"text": "Hallo", "language": "xx"}, 400, "unknown_language"),
        ({"text": "Hallo", "conversation_id": "../../etc"}, 400, "invalid_conversation_id"),
    ],
)
async def test_bad_messages_get_json_errors(client, services, payload, status, code):
    response = await client.post("/api/chatbot/messages", json=payload)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_non_json_is_refused(client, services):
    response = await client.post("/api/chatbot/messages", data="text=hallo")
    assert response.status == 415 and (await response.json())["error"]["code"] == "unsupported_media_type"
    response = await client.post(
        "/api/chatbot/messages", data="{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400 and (await response.json())["error"]["code"] == "bad_json"


async def test_messages_are_rate_limited_per_address(client, services):
    for _ in range(60):
        assert await services.chatbot_throttle.allow("chatbot", "127.0.0.1")
    response = await client.post("/api/chatbot/messages", json={"text": "Hallo"})
    assert response.status == 429 and (await response.json())["error"]["code"] == "rate_limited"


async def test_person_request_offers_video_appointment_and_question(client, services):
    closed = await say(client, "Ich möchte mit einem Menschen sprechen")
    offers = {offer["type"]: offer for offer in closed["escalation"]["offers"]}
    assert closed["escalation"]["reason"] == "person_requested"
    assert offers["video"]["available"] is False  # open, but nobody online yet
    assert offers["appointment"]["url"] in ("/termin", "/termin/buergertelefon")
    assert "question" in offers

    await sign_in(client, services, offices=("buergertelefon",), languages=("de", "tr"))
    console = await console_socket(client)
    await receive(console, "queue")
    body = await say(client, "Kimlik kartı için nasıl başvurabilirim? Bir danışmanla konuşabilir miyim?")
    video = next(o for o in body["escalation"]["offers"] if o["type"] == "video")
    assert video == video | {"office": "buergertelefon", "language": "tr", "available": True}
    assert video["open_now"] is True

    services.waiting.clock.set(SUNDAY)
    body = await say(client, "Mitarbeiter bitte")
    video = next(o for o in body["escalation"]["offers"] if o["type"] == "video")
    assert video["available"] is False and video["open_now"] is False and video["next_opening"]
    await console.close()


async def test_topics_of_unconfigured_offices_fall_back_to_the_buergertelefon(client, services):
    first = await say(client, "Wie hoch ist die Hundesteuer?")  # office "steuern": not in the demo offices
    body = await say(client, "Kann ich mit einem Berater sprechen?", conversation_id=first["conversation_id"])
    video = next(o for o in body["escalation"]["offers"] if o["type"] == "video")
    assert video["office"] == "buergertelefon"


async def test_escalation_joins_the_queue_with_the_transcript(client, services):
    first = await say(client, "Wie beantrage ich einen Personalausweis?")
    conversation = first["conversation_id"]
    await say(client, "Das hilft mir nicht, ich will mit einer Person sprechen", conversation_id=conversation)
    response = await client.post(
        "/api/chatbot/escalate", json={"conversation_id": conversation, "offer": "video"}
    )
    assert response.status == 201, await response.text()
    joined = await response.json()
    assert joined["waiting_url"].startswith(services.config.public_url + "/wait/")
    assert joined["office"]["id"] == "buergertelefon" and joined["status"]["state"] == "waiting"
    assert (await client.get(f"/wait/{token_from(joined['waiting_url'])}")).status == 200

    await sign_in(client, services, offices=("buergertelefon",))
    console = await console_socket(client)
    entry = (await receive(console, "queue"))["entries"][0]
    assert entry["entry_id"] == joined["entry_id"]
    assert entry["topic"] == "Personalausweis beantragen (Chatbot)" and entry["language"] == "de"
    transcript = entry["transcript"]
    assert [m["role"] for m in transcript] == ["citizen", "bot", "citizen", "bot"]
    assert transcript[0]["text"] == "Wie beantrage ich einen Personalausweis?"
    await console.close()


async def test_escalation_errors(client, services):
    response = await client.post("/api/chatbot/escalate", json={"conversation_id": "x"})
    assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_conversation_id"
    response = await client.post("/api/chatbot/escalate", json={"conversation_id": "A" * 24})
    assert response.status == 404 and (await response.json())["error"]["code"] == "unknown_conversation"
    body = await say(client, "Hallo, ich brauche einen Personalausweis")
    response = await client.post(
        "/api/chatbot/escalate", json={"conversation_id": body["conversation_id"], "offer": "appointment"}
    )
    assert response.status == 400 and (await response.json())["error"]["code"] == "unsupported_offer"
    services.waiting.clock.set(SUNDAY)
    response = await client.post("/api/chatbot/escalate", json={"conversation_id": body["conversation_id"]})
    error = (await response.json())["error"]
    assert response.status == 409 and error["code"] == "closed" and error["office"] == "buergertelefon"


async def test_openapi_describes_the_chatbot(client, services):
    document = await (await client.get("/api/openapi.json")).json()
    message = document["paths"]["/api/chatbot/messages"]["post"]
    schema = message["requestBody"]["content"]["application/json"]["schema"]  # a $ref to its model
    schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert schema["required"] == ["text"]
    assert set(document["components"]["schemas"]["ChatReply"]["required"]) == {
        "conversation_id", "reply", "topic", "confidence", "language", "escalation"
    }  # fmt: skip
    assert "/api/chatbot/escalate" in document["paths"]
