"""The chatbot over HTTP: `POST /api/chatbot/messages` (answer a message) and `POST /api/chatbot/escalate`
(join the waiting room with the conversation as transcript). Contract: docs/chatbot.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from sprechstunde.chatbot.engine import Reply
from sprechstunde.chatbot.service import CONVERSATION_ID, ChatService, valid_conversation_id
from sprechstunde.chatbot.text import LANGUAGES
from sprechstunde.rooms import hours
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import Office
from sprechstunde.web.core.api import read_json
from sprechstunde.web.core.openapi import Fragment, body, errors, ref, request
from sprechstunde.web.core.security import json_error
from sprechstunde.web.core.services import SERVICES, Services
from sprechstunde.web.waiting.api import joined, queue_error

routes = web.RouteTableDef()
FALLBACK_OFFICE = "buergertelefon"  # topics whose office this city has not configured
MAX_TEXT = 1000
ESCALATION_TOPIC = "Chatbot"


def _chatbot(services: Services) -> ChatService:
    if services.chatbot is None:
        raise web.HTTPServiceUnavailable(reason="chatbot not configured")
    return services.chatbot


def office_for(services: Services, office_id: str | None) -> Office | None:
    """The topic's office, or the Bürgertelefon (or the first office) when the city has no such office."""
    offices = services.waiting.offices
    office = offices.get(office_id) if office_id else None
    if office is None:
        office = offices.get(FALLBACK_OFFICE) or next(iter(offices), None)
    return office


def consultation_language(office: Office, language: str) -> str:
    """The citizen's language when the office offers consultations in it, else German."""
    if language in office.languages:
        return language
    return "de" if "de" in office.languages else office.languages[0]


def appointment_url(services: Services, office_id: str) -> str:
    """The booking pages of the office when it offers bookable services, else the booking start."""
    scheduling = getattr(services, "scheduling", None)
    try:
        bookable = bool(scheduling.catalog.for_office(office_id)) if scheduling is not None else False
    except (AttributeError, KeyError):
        bookable = False
    return f"/termin/{quote(office_id)}" if bookable else "/termin"


async def offers(services: Services, request: web.Request, office_id: str | None, language: str) -> list:
    """What the citizen can do instead of chatting: video now, an appointment, a written question."""
    office = office_for(services, office_id)
    if office is None:
        return [{"type": "question"}]
    lang = consultation_language(office, language)
    now = datetime.fromtimestamp(services.waiting.clock(), UTC)
    open_now = hours.is_open(office, now)
    availability = await services.queue.availability(office.id, lang)
    video: dict[str, Any] = {
        "type": "video",
        "office": office.id,
        "office_name": office.name(services.pages.lang(request)),
        "language": lang,
        "available": open_now and availability.advisors_online > 0,
        "open_now": open_now,
        "advisors_online": availability.advisors_online,
        "languages_online": list(availability.languages_online),
    }
    if not open_now:
        opening = hours.next_opening(office, now)
        video["next_opening"] = opening.isoformat() if opening else None
    return [
        video,
        {"type": "appointment", "office": office.id, "url": appointment_url(services, office.id)},
        {"type": "question", "office": office.id, "language": lang, "url": "/api/questions"},
    ]


def _reply_json(conversation_id: str, reply: Reply) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "reply": reply.text,
        "topic": reply.topic,
        "confidence": round(max(0.0, min(1.0, reply.confidence)), 3),
        "language": reply.language,
        "escalation": None,
        # additions to the contract: what kind of reply, clickable suggestions, links to show as anchors
        "kind": reply.kind,
        "suggestions": reply.suggestions,
        "links": reply.links,
    }


@routes.post("/api/chatbot/messages")
async def api_message(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    chatbot = _chatbot(services)
    if not await services.chatbot_throttle.allow("chatbot", request.remote or "?"):
        return json_error(429, "rate_limited", "too many messages from your address; wait a minute")
    data = await read_json(request)
    text, language, conversation_id = data.get("text"), data.get("language"), data.get("conversation_id")
    if not isinstance(text, str) or not text.strip():
        return json_error(400, "invalid_text", '"text" must be a non-empty string')
    if len(text) > MAX_TEXT:
        return json_error(400, "text_too_long", f'"text" may have at most {MAX_TEXT} characters')
    if language is not None and language not in LANGUAGES:
        return json_error(400, "unknown_language", f'"language" must be one of {", ".join(LANGUAGES)}')
    if conversation_id is not None and not valid_conversation_id(conversation_id):
        return json_error(400, "invalid_conversation_id", '"conversation_id" must be an id this API returned')
    conversation_id, reply = await chatbot.message(text, conversation_id, language)
    body = _reply_json(conversation_id, reply)
    if reply.escalation is not None:
        body["escalation"] = {
            "reason": reply.escalation,
            "offers": await offers(services, request, reply.office, reply.language),
        }
    return web.json_response(body)


@routes.post("/api/chatbot/escalate")
async def api_escalate(request: web.Request) -> web.Response:
    """`{"conversation_id", "offer": "video", "language"?}` → the waiting room, like POST /api/queue,
    with the topic, the conversation's language and the transcript for the advisor."""
    services: Services = request.app[SERVICES]
    chatbot = _chatbot(services)
    if not await services.queue_throttle.allow("queue", request.remote or "?"):
        return json_error(429, "rate_limited", "too many requests from your address; wait a minute")
    data = await read_json(request)
    conversation_id, offer = data.get("conversation_id"), data.get("offer", "video")
    if not valid_conversation_id(conversation_id):
        return json_error(400, "invalid_conversation_id", '"conversation_id" must be an id this API returned')
    if offer != "video":
        return json_error(
            400, "unsupported_offer", 'only "video" joins a queue; appointments and questions have their URL'
        )
    state = await chatbot.state(conversation_id)
    transcript = await chatbot.transcript(conversation_id)
    if state is None or transcript is None:
        return json_error(404, "unknown_conversation", "this conversation does not exist or has expired")
    engine = await chatbot.ready()
    topic = engine.base.get(state.last_topic) or engine.base.get(state.candidate)
    office = office_for(services, topic.office if topic else None)
    if office is None:
        return json_error(409, "no_office", "no office is configured for consultations")
    wanted = data.get("language", state.language or "de")
    if not isinstance(wanted, str):
        return json_error(400, "unknown_language", '"language" must be a language code')
    language = consultation_language(office, wanted)
    title = topic.title.get("de") if topic else None
    try:
        enqueued = await services.queue.enqueue(
            office.id,
            language,
            f"{title} ({ESCALATION_TOPIC})" if title else ESCALATION_TOPIC,
            transcript=transcript,
        )
    except QueueError as exc:
        if exc.code == "closed":
            exc.detail["office"] = office.id
        return queue_error(exc)
    return await joined(request, services, enqueued)


# --- OpenAPI (web/openapi.py assembles the document) --------------------------------------------------


def _openapi() -> Fragment:
    text = {"type": "string"}
    languages = {"type": "string", "enum": list(LANGUAGES)}
    conversation = {
        "type": "string",
        "pattern": CONVERSATION_ID.pattern,
        "description": "as this API returned it",
    }
    offer = {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["video", "appointment", "question"]},
            "office": text,
            "office_name": text,
            "language": text,
            "available": {"type": "boolean", "description": "open now and someone online serves it"},
            "open_now": {"type": "boolean"},
            "advisors_online": {"type": "integer"},
            "languages_online": {"type": "array", "items": text},
            "next_opening": {"type": ["string", "null"], "format": "date-time"},
            "url": text,
        },
    }
    reply = {
        "type": "object",
        "required": ["conversation_id", "reply", "topic", "confidence", "language", "escalation"],
        "properties": {
            "conversation_id": text,
            "reply": {"type": "string", "description": "plain text; paragraphs separated by a blank line"},
            "topic": {"type": ["string", "null"], "description": "topic id of chatbot/knowledge"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "language": languages,
            "escalation": {
                "type": ["object", "null"],
                "properties": {
                    "reason": {
                        "type": "string",
                        "enum": ["person_requested", "low_confidence", "unhelpful_answers"],
                    },
                    "offers": {"type": "array", "items": ref("ChatOffer")},
                },
            },
            "kind": {"type": "string"},
            "suggestions": {"type": "array", "items": {"type": "object"}},
            "links": {"type": "array", "items": {"type": "object"}},
        },
    }
    return Fragment(
        tags=[
            {
                "name": "chatbot",
                "description": "Questions answered from the knowledge base; hand-over to a person",
            }
        ],
        schemas={"ChatReply": reply, "ChatOffer": offer},
        paths={
            "/api/chatbot/messages": {
                "post": {
                    "tags": ["chatbot"],
                    "summary": "Answer a citizen's message (docs/chatbot.md)",
                    "requestBody": request(
                        {
                            "type": "object",
                            "required": ["text"],
                            "properties": {
                                "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                                "language": {"enum": [*LANGUAGES, None]},
                                "conversation_id": {**conversation, "type": ["string", "null"]},
                            },
                        }
                    ),
                    "responses": {"200": body(ref("ChatReply"), "the reply")} | errors(400, 413, 415, 429),
                }
            },
            "/api/chatbot/escalate": {
                "post": {
                    "tags": ["chatbot"],
                    "summary": "Join the waiting room with the conversation as transcript",
                    "requestBody": request(
                        {
                            "type": "object",
                            "required": ["conversation_id"],
                            "properties": {
                                "conversation_id": conversation,
                                "offer": {"type": "string", "enum": ["video"]},
                                "language": text,
                            },
                        }
                    ),
                    "responses": {
                        "201": body({"type": "object"}, "as POST /api/queue: waiting_url, entry_id, …")
                    }
                    | errors(400, 404, 409, 413, 415, 429),
                }
            },
        },
    )


OPENAPI = _openapi()
