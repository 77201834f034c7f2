"""The chatbot over HTTP: `POST /api/chatbot/messages` (answer a message) and `POST /api/chatbot/escalate`
(join the waiting room with the conversation as transcript). Contract: docs/chatbot.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sprechstunde.chatbot.engine import Reply
from sprechstunde.chatbot.offers import (
    consultation_language,
    escalation_offers,
    office_for,
    queue_topic,
)
from sprechstunde.chatbot.service import ChatService
from sprechstunde.errors import DomainError
from sprechstunde.rooms.errors import QueueError
from sprechstunde.web.chatbot.models import ChatEscalateIn, ChatMessageIn, ChatReply
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import api_route
from sprechstunde.web.core.services import SERVICES, Services
from sprechstunde.web.waiting.api import joined
from sprechstunde.web.waiting.models import EnqueueOut

routes = web.RouteTableDef()


def _chatbot(services: Services) -> ChatService:
    if services.chatbot is None:
        raise web.HTTPServiceUnavailable(reason="chatbot not configured")
    return services.chatbot


async def offers(services: Services, request: web.Request, office_id: str | None, language: str) -> list:
    """What the citizen can do instead of chatting (the rules: chatbot/offers.py), with this app's
    offices, clock, queue and booking catalog and the page's language for the office's name."""
    return await escalation_offers(
        services.waiting.offices,
        office_id,
        language,
        now=datetime.fromtimestamp(services.waiting.clock(), UTC),
        availability=services.queue.availability,
        catalog=services.scheduling.catalog,
        names_in=services.pages.lang(request),
    )


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


@api_route(
    routes.post,
    "/api/chatbot/messages",
    tag="chatbot",
    body=ChatMessageIn,
    answers={200: ChatReply},
    throttled=True,
)
async def api_message(request: web.Request) -> web.Response:
    """Answer a citizen's message (docs/chatbot.md)"""
    services: Services = request.app[SERVICES]
    chatbot = _chatbot(services)
    if not await services.chatbot_throttle.allow("chatbot", request.remote or "?"):
        raise DomainError("rate_limited", "too many messages from your address; wait a minute", 429)
    message = await read_model(request, ChatMessageIn)
    conversation_id, reply = await chatbot.message(message.text, message.conversation_id, message.language)
    body = _reply_json(conversation_id, reply)
    if reply.escalation is not None:
        body["escalation"] = {
            "reason": reply.escalation,
            "offers": await offers(services, request, reply.office, reply.language),
        }
    return web.json_response(body)


@api_route(
    routes.post,
    "/api/chatbot/escalate",
    tag="chatbot",
    body=ChatEscalateIn,
    answers={201: EnqueueOut},
    errors=(400, 404, 409),
    throttled=True,
    summary="Join the waiting room with the conversation as transcript (as POST /api/queue)",
)
async def api_escalate(request: web.Request) -> web.Response:
    """`{"conversation_id", "offer": "video", "language"?}` → the waiting room, like POST /api/queue,
    with the topic, the conversation's language and the transcript for the advisor."""
    services: Services = request.app[SERVICES]
    chatbot = _chatbot(services)
    if not await services.queue_throttle.allow("queue", request.remote or "?"):
        raise DomainError("rate_limited", "too many requests from your address; wait a minute", 429)
    wanted = await read_model(request, ChatEscalateIn)
    conversation_id = wanted.conversation_id
    state = await chatbot.state(conversation_id)
    transcript = await chatbot.transcript(conversation_id)
    if state is None or transcript is None:
        raise DomainError("unknown_conversation", "this conversation does not exist or has expired", 404)
    engine = await chatbot.ready()
    topic = engine.base.get(state.last_topic) or engine.base.get(state.candidate)
    office = office_for(services.waiting.offices, topic.office if topic else None)
    if office is None:
        raise DomainError("no_office", "no office is configured for consultations", 409)
    asked = wanted.language if wanted.language is not None else state.language or "de"
    language = consultation_language(office, asked)
    title = topic.title.get("de") if topic else None
    try:
        enqueued = await services.queue.enqueue(
            office.id,
            language,
            queue_topic(title),
            transcript=transcript,
        )
    except QueueError as exc:
        if exc.code == "closed":
            exc.detail["office"] = office.id  # the chat offers to leave a question there
        raise
    return await joined(request, services, enqueued)
