"""The citizen's end screen and the satisfaction survey (issue 17, items 1 and 2; rooms/feedback.py).

When the advisor finishes a consultation (`api_finish` calls `consultation_ended`) the ending is stored and
the room hears `{"type": "consultation-ended", "outcome"}` (docs/protocol.md). The message carries nothing
else: the room also holds guests (an interpreter, a colleague), and the end token — documents until they
are purged, the survey — is the citizen's alone. The citizen's page asks for it with its join link:

    POST /api/rooms/{room_id}/ending              X-Join-Token (citizen) → {"token"}
    GET  /api/endings/{token}                     → what the end screen shows
    GET  /api/endings/{token}/documents/{id}      → 303 to a fresh signed download URL
    POST /api/feedback                            {"token", "score", "comment"} → 201

A reloaded page shows the end screen again without joining: the join page and the waiting page put the end
token into the page when the room's consultation has ended (`end_token_for_room`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sprechstunde.documents import Actor
from sprechstunde.errors import DomainError
from sprechstunde.rooms.entries import Outcome
from sprechstunde.rooms.feedback import FeedbackAnswer, FeedbackService
from sprechstunde.web.consultations.ending_models import (
    EndingOut,
    EndTokenOut,
    FeedbackIn,
    FeedbackOut,
)
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import api_route
from sprechstunde.web.core.services import SERVICES, Services
from sprechstunde.web.documents.api import TOKEN_HEADER, signed_download

routes = web.RouteTableDef()
ENDED_MESSAGE = "consultation-ended"


def feedback_service(services: Services) -> FeedbackService:
    """The endings and survey answers in this app's store (stateless: built where needed)."""
    return FeedbackService(services.store, services.signer, services.waiting.clock)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


async def consultation_ended(services: Services, done: Outcome) -> None:
    """After QueueService.finish: remember the end for the citizen's end screen and tell the room."""
    entry = done.entry
    if not entry.room_id:
        return
    room = await services.rooms.get(entry.room_id)
    if room is None:
        return
    office = services.waiting.offices.require(entry.office)
    # documents/service.py purges a room's documents `retention` after the room's expiry
    kept_until = room.expires_at + services.documents.retention
    await feedback_service(services).record_end(
        office,
        room.room_id,
        language=entry.language,
        outcome=done.outcome,
        ticket=done.ticket.reference if done.ticket else None,
        kept_until=kept_until,
    )
    await services.hub.publish(room.room_id, {"type": ENDED_MESSAGE, "outcome": done.outcome})


async def end_token_for_room(services: Services, room_id: str | None) -> str:
    """The end token of a room whose consultation has ended, else "" (the pages embed it on reload)."""
    if not room_id:
        return ""
    feedback = feedback_service(services)
    ending = await feedback.for_room(room_id)
    return feedback.token(ending) if ending is not None else ""


async def feedback_answers(services: Services, query: dict[str, Any]) -> list[FeedbackAnswer]:
    """The survey answers of a statistics query (`offices`, `from`, `to` as statistics_records made it)."""
    first = datetime.fromisoformat(query["from"]).date()
    last = datetime.fromisoformat(query["to"]).date()
    return await feedback_service(services).answers(first, last, query["offices"])


@api_route(
    routes.post,
    "/api/rooms/{room_id}/ending",
    tag="consultations",
    auth="room",
    answers={200: EndTokenOut},
    errors=(404, 410),
)
async def api_room_ending(request: web.Request) -> web.Response:
    """The citizen's end token once the advisor has closed the consultation (`not_ended`, 404, before)"""
    services: Services = request.app[SERVICES]
    token = request.headers.get(TOKEN_HEADER)
    if not token:
        raise DomainError("not_authenticated", f"send the join link's token in {TOKEN_HEADER}", 401)
    grant, room = await services.rooms.admit(token)
    if room.room_id != request.match_info["room_id"]:
        raise DomainError("wrong_room", "this link belongs to another consultation room", 403)
    if grant.role != "citizen":
        raise DomainError("forbidden_role", "the end screen is the citizen's", 403)
    end_token = await end_token_for_room(services, room.room_id)
    if not end_token:
        raise DomainError("not_ended", "this consultation has not been closed", 404)
    return web.json_response({"token": end_token})


@api_route(
    routes.get,
    "/api/endings/{token}",
    tag="consultations",
    answers={200: EndingOut},
    errors=(403, 404, 410),
)
async def api_ending(request: web.Request) -> web.Response:
    """What the citizen's end screen shows: outcome, ticket, shared documents (until kept_until)"""
    services: Services = request.app[SERVICES]
    token = request.match_info["token"]
    feedback = feedback_service(services)
    ending = await feedback.from_token(token)
    lang = services.pages.lang(request)
    office = services.waiting.offices.get(ending.office)
    documents = []
    for item in await services.documents.list(ending.room_id):
        if item["type"] == "file":
            url = f"/api/endings/{token}/documents/{item['id']}"
            documents.append({"id": item["id"], "type": "file", "name": item["name"], "size": item["size"]})
        else:
            url = item["url"]
            documents.append({"id": item["id"], "type": "link", "title": item["title"], "host": item["host"]})
        documents[-1]["url"] = url
    bookable = services.scheduling.catalog.for_office(ending.office)
    response = web.json_response(
        {
            "outcome": ending.outcome,
            "office": {"id": ending.office, "name": office.name(lang) if office else ending.office},
            "ticket": ending.ticket,
            "ended_at": _iso(ending.ended_at),
            "kept_until": _iso(ending.kept_until),
            "documents": documents,
            "booking_url": f"/termin/{ending.office}" if bookable else "/termin",
            "survey_answered": await feedback.answered(ending),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@api_route(
    routes.get,
    "/api/endings/{token}/documents/{document_id}",
    tag="consultations",
    answers={303: None},
    errors=(400, 403, 404, 410),
)
async def api_ending_document(request: web.Request) -> web.Response:
    """A document shared in the consultation, until it is purged: redirects to a fresh download URL"""
    services: Services = request.app[SERVICES]
    token = request.match_info["token"]
    ending = await feedback_service(services).from_token(token)
    document_id = request.match_info["document_id"]
    await services.documents.check_file(ending.room_id, document_id)
    url, _ = signed_download(services, ending.room_id, document_id, Actor.participant(token, "citizen"))
    raise web.HTTPSeeOther(url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@api_route(
    routes.post,
    "/api/feedback",
    tag="consultations",
    body=FeedbackIn,
    answers={201: FeedbackOut},
    errors=(400, 403, 404, 409, 410),
)
async def api_feedback(request: web.Request) -> web.Response:
    """Answer the end screen's question (1–5, optional comment); anonymous, once per consultation"""
    services: Services = request.app[SERVICES]
    answer = await read_model(request, FeedbackIn)
    await feedback_service(services).answer(answer.token, answer.score, answer.comment)
    return web.json_response({"thanks": True}, status=201)
