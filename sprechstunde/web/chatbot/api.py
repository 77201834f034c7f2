"""The chatbot over HTTP: `POST /api/chatbot/messages` (answer a message), `POST /api/chatbot/escalate`
(join the waiting room with the conversation as transcript) and
`POST /api/chatbot/download` (the conversation as a text file for the citizen). The conversation id is the
capability: whoever has it may continue, hand over or download the conversation — nobody else learns it.
So it travels in JSON bodies only, never in a URL: a browser keeps the URLs it downloaded from in its
history, where the next user of a shared computer (a town hall's) would find it. (It is still masked in
logs under the former `/api/chatbot/conversations/<id>/…` path, should an old page ask for it.)
Contract: docs/chatbot.md."""

from __future__ import annotations

from datetime import UTC, date, datetime
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
from sprechstunde.l10n import date_text
from sprechstunde.rooms.errors import QueueError
from sprechstunde.web.chatbot.models import ChatDownloadIn, ChatEscalateIn, ChatMessageIn, ChatReply
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import Raw, api_route
from sprechstunde.web.core.services import SERVICES, Services
from sprechstunde.web.waiting.api import joined
from sprechstunde.web.waiting.models import EnqueueOut

routes = web.RouteTableDef()
ANSWER_KINDS = ("answer", "followup")  # replies from a topic of the knowledge base: they carry provenance


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


def _checked(reply: Reply, lang: str) -> dict[str, str] | None:
    """When the answer's text was last checked: the ISO date and the date as the page's language writes it."""
    try:
        day = date.fromisoformat(reply.checked) if reply.checked else None
    except ValueError:
        day = None
    return {"date": day.isoformat(), "text": date_text(day, lang)} if day else None


def _office(services: Services, reply: Reply) -> dict[str, str] | None:
    """The office responsible for the reply's topic, named in the citizen's language (German where the
    city gives no name in it); the Bürgertelefon for a topic whose office the city has not configured.
    Only under an answer: an offer to talk to a person names its office itself."""
    if reply.topic is None or reply.kind not in ANSWER_KINDS:
        return None
    office = office_for(services.waiting.offices, reply.office)
    return {"id": office.id, "name": office.name(reply.language)} if office else None


def _reply_json(conversation_id: str, reply: Reply, services: Services, page_lang: str) -> dict[str, Any]:
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
        # where the answer comes from: when it was last checked, which office is responsible, what of it
        # is shown in German
        "checked": _checked(reply, page_lang),
        "office": _office(services, reply),
        "german_parts": reply.german,
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
    body = _reply_json(conversation_id, reply, services, services.pages.lang(request))
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


DOWNLOAD = Raw("the conversation as plain text (UTF-8)", {"text/plain": {"schema": {"type": "string"}}})


@api_route(
    routes.post,
    "/api/chatbot/download",
    tag="chatbot",
    body=ChatDownloadIn,
    answers={200: DOWNLOAD},
    errors=(400, 404),
    summary="The conversation as a text file for the citizen (the conversation id is the capability)",
)
async def api_download(request: web.Request) -> web.Response:
    """The citizen's copy of the conversation: what they wrote and what the bot answered, headed by the
    notice that the bot is an automated assistant, in the conversation's language — no topic ids,
    confidences or other internals. Unknown and expired ids answer 404 alike. A POST with the id in the
    body, not a link: the widget saves the answer through a blob URL, so no URL holding the id ends up in
    the browser's download history."""
    services: Services = request.app[SERVICES]
    chatbot = _chatbot(services)
    conversation_id = (await read_model(request, ChatDownloadIn)).conversation_id
    conversation = await chatbot.stored(conversation_id)
    if conversation is None:
        raise DomainError("unknown_conversation", "this conversation does not exist or has expired", 404)
    catalog = services.pages.catalog
    lang = conversation.state.language
    if lang not in catalog.languages:
        lang = services.pages.lang(request)
    today = datetime.fromtimestamp(services.waiting.clock(), UTC).astimezone(_time_zone(services)).date()
    text = conversation_text(
        conversation.messages, lambda key: catalog.get(lang, key), date_text(today, lang)
    )
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="chatbot-{today.isoformat()}.txt"',
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
        },
    )


def _time_zone(services: Services) -> Any:
    """The city's time zone (its first office's), for the date the file names."""
    first = next(iter(services.waiting.offices), None)
    return first.timezone if first is not None else UTC


def conversation_text(messages: list[dict[str, Any]], t: Any, day: str) -> str:
    """The download's text: a heading, the automated-assistant notice, the date, then each message as
    "<who>:" and its text. Only roles and texts are read from the stored messages."""
    lines = [t("chat.file.title"), t("chat.ai_notice"), t("chat.file.date").format(date=day), ""]
    for message in messages:
        who = t("chat.bot") if message.get("role") == "bot" else t("chat.you")
        lines += [f"{who}:", str(message.get("text", "")).strip(), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
