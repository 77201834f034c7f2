"""The waiting room over HTTP and WebSocket: join the queue, the office list, the waiting page, and the
two sockets `/ws/queue` (citizen) and `/ws/console` (advisor). Protocol: docs/protocol.md."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sprechstunde.errors import DomainError
from sprechstunde.media.ice import client_ice_servers
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.queue import Enqueued
from sprechstunde.rooms.routing import may_serve
from sprechstunde.rooms.views import entry_json, hours_text, office_hours, office_json
from sprechstunde.signaling.socket import open_socket, refuse
from sprechstunde.signaling.waiting import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    ConsoleConnection,
    WaitingConnection,
)
from sprechstunde.web.consultations.ending import end_token_for_room
from sprechstunde.web.core.errors import page_errors
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import api_route
from sprechstunde.web.core.services import SERVICES, Services, own_origins
from sprechstunde.web.waiting.models import EnqueueIn, EnqueueOut, OfficesOut, no_office

routes = web.RouteTableDef()
PREFERRED_OFFICE = "buergertelefon"
ERROR_KEYS = {403: "error.invalid_token", 410: "error.expired"}


def _pick_office(services: Services, language: Any) -> str:
    """No office given: one that offers `language`, the Bürgertelefon first."""
    offices = list(services.waiting.offices)
    offering = [o for o in offices if isinstance(language, str) and language in o.languages]
    if not offering:
        known = sorted({code for o in offices for code in o.languages})
        raise QueueError(
            "unknown_language",
            f"consultations are offered in {', '.join(known)}",
            400,
            languages=known,
        )
    offering.sort(key=lambda o: o.id != PREFERRED_OFFICE)
    return offering[0].id


@api_route(
    routes.post,
    "/api/queue",
    tag="waiting-room",
    body=EnqueueIn,
    answers={201: EnqueueOut},
    errors=(400, 404, 409),
    throttled=True,
)
async def api_enqueue(request: web.Request) -> web.Response:
    """Join an office's queue; returns the waiting-room link"""
    services: Services = request.app[SERVICES]
    if not await services.queue_throttle.allow("queue", request.remote or "?"):
        raise DomainError("rate_limited", "too many requests from your address; wait a minute", 429)
    wanted = await read_model(request, EnqueueIn)
    try:
        office = wanted.office
        if office is None:
            office = _pick_office(services, wanted.language)
        elif office not in services.waiting.offices:
            raise no_office(office)
        enqueued = await services.queue.enqueue(
            office,
            wanted.language,
            wanted.topic,
            note=wanted.note,
            transcript=wanted.transcript_json(),
        )
    except QueueError as exc:
        if exc.code == "closed":
            exc.detail["office"] = office  # the start page offers to leave a question there
        raise
    return await joined(request, services, enqueued)


async def joined(request: web.Request, services: Services, enqueued: Enqueued) -> web.Response:
    """Answer the citizen with the waiting room (201; the queue told the consoles already); shared
    with POST /api/chatbot/escalate."""
    the_office = services.waiting.offices.require(enqueued.entry.office)
    lang = services.pages.lang(request)
    return web.json_response(
        {
            "entry_id": enqueued.entry.entry_id,
            "waiting_url": f"{services.config.public_url}/wait/{enqueued.token}",
            "waiting_token": enqueued.token,
            "office": {"id": the_office.id, "name": the_office.name(lang)},
            "status": enqueued.status.as_json(),
        },
        status=201,
    )


@api_route(routes.get, "/api/offices", tag="waiting-room", answers={200: OfficesOut})
async def api_offices(request: web.Request) -> web.Response:
    """Offices with service hours, open now, next opening, languages"""
    services: Services = request.app[SERVICES]
    now = services.waiting.clock()
    return web.json_response(
        {
            "offices": [
                office_json(office, now) | {"hours": office_hours(office)}
                for office in services.waiting.offices
            ]
        }
    )


@routes.get("/wait/{token}")
@page_errors("wait.error.unknown_entry", ERROR_KEYS)  # a link that is not valid (403), expired (410), gone
async def waiting_page(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    token = request.match_info["token"]
    entry = await services.queue.entry_for_token(token)
    lang = services.pages.lang(request)
    strings = services.pages.catalog.strings(lang)
    office = services.waiting.offices.get(entry.office)
    response = services.pages.render(
        request,
        "waiting.html",
        waiting_token=token,
        # reloaded after the advisor closed the consultation: the end screen, not the queue (endscreen.js)
        end_token=await end_token_for_room(services, entry.room_id) if entry.state == "done" else "",
        strings={k: v for k, v in strings.items() if k.startswith(("wait.", "call."))},
        # the pre-join network check (static/prejoin.js), time-limited TURN credentials as in `welcome`
        ice_servers=client_ice_servers(services.config.ice, f"prejoin-{entry.entry_id[:8]}"),
        # the entry as the console shows it, plus where it stands now (as in `queue-status`)
        entry=entry_json(entry, services.waiting.offices, services.waiting.clock(), transcript=False)
        | (await services.queue.status(entry.entry_id)).as_json(),
        office={
            "id": entry.office,
            "name": office.name(lang) if office else entry.office,
            "hours": office_hours(office) if office else [],
            "hours_text": hours_text(office, lang) if office else "",
        },
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@routes.get("/ws/queue")
async def waiting_socket(request: web.Request) -> web.WebSocketResponse:
    services: Services = request.app[SERVICES]
    ws = await open_socket(request)
    await WaitingConnection(services.waiting, ws, services.pages.lang(request)).run()
    return ws


def same_origin(request: web.Request, public_url: str) -> bool:
    """The WebSocket's Origin is this server (as addressed, or its configured public URL): a page of
    another site cannot ride on the advisor's session cookie."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    return origin.lower().rstrip("/") in own_origins(request, public_url)


@routes.get("/ws/console")
async def console_socket(request: web.Request) -> web.WebSocketResponse:
    services: Services = request.app[SERVICES]
    ws = await open_socket(request)
    if not same_origin(request, services.config.public_url):
        await refuse(
            ws, "forbidden_origin", "this console may only be opened from this server", CLOSE_FORBIDDEN
        )
        return ws
    member = await services.current_staff(request)
    if member is None:
        await refuse(ws, "not_authenticated", "sign in as staff first", CLOSE_UNAUTHENTICATED)
        return ws
    if not may_serve(member):
        await refuse(ws, "forbidden_role", "this account does not serve citizens", CLOSE_FORBIDDEN)
        return ws

    async def lookup():
        return await services.current_staff(request)

    connection = ConsoleConnection(services.waiting, ws, member, lookup)
    await connection.start()
    await connection.run()
    return ws
