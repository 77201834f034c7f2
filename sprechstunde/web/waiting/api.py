"""The waiting room over HTTP and WebSocket: join the queue, the office list, the waiting page, and the
two sockets `/ws/queue` (citizen) and `/ws/console` (advisor). Protocol: docs/protocol.md."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.queue import Enqueued, QueueEntry
from sprechstunde.rooms.routing import may_serve
from sprechstunde.rooms.service import RoomService
from sprechstunde.signaling.waiting import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    HARD_FRAME_LIMIT,
    ConsoleConnection,
    JoinLinks,
    WaitingConnection,
    entry_json,
    hours_text,
    office_hours,
    office_json,
)
from sprechstunde.web.core.api import read_json
from sprechstunde.web.core.security import json_error
from sprechstunde.web.core.services import SERVICES, Services, own_origins

routes = web.RouteTableDef()
PREFERRED_OFFICE = "buergertelefon"
ERROR_KEYS = {403: "error.invalid_token", 410: "error.expired"}


def room_links(rooms: RoomService) -> JoinLinks:
    """room_id → (the citizen's join token, the advisor's join path), None for a gone room."""

    async def links(room_id: str) -> tuple[str, str] | None:
        room = await rooms.get(room_id)
        if room is None:
            return None
        made = rooms.links(room, "")
        return unquote(made.citizen_url.rsplit("/join/", 1)[1]), made.advisor_url

    return links


def queue_error(exc: QueueError) -> web.Response:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, **exc.detail}
    return web.json_response({"error": body}, status=exc.status)


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


@routes.post("/api/queue")
async def api_enqueue(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    if not await services.queue_throttle.allow("queue", request.remote or "?"):
        return json_error(429, "rate_limited", "too many requests from your address; wait a minute")
    data = await read_json(request)
    try:
        office = data.get("office")
        if office is None:
            office = _pick_office(services, data.get("language"))
        elif not isinstance(office, str) or office not in services.waiting.offices:
            raise QueueError("unknown_office", f"there is no office {str(office)[:40]!r}", 400)
        enqueued = await services.queue.enqueue(
            office,
            data.get("language"),
            data.get("topic"),
            note=data.get("note"),
            transcript=data.get("transcript"),
        )
    except QueueError as exc:
        if exc.code == "closed":
            exc.detail["office"] = office  # the start page offers to leave a question there
        return queue_error(exc)
    return await joined(request, services, enqueued)


async def joined(request: web.Request, services: Services, enqueued: Enqueued) -> web.Response:
    """Tell the consoles, and answer the citizen with the waiting room (201); shared with
    POST /api/chatbot/escalate."""
    await services.waiting.events.notify()
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


@routes.get("/api/offices")
async def api_offices(request: web.Request) -> web.Response:
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


async def waiting_entry(request: web.Request, token: str) -> QueueEntry | web.Response:
    """The entry a waiting-room token stands for, or the error page to answer (403/410/404)."""
    services: Services = request.app[SERVICES]
    try:
        return await services.queue.entry_for_token(token)
    except QueueError as exc:
        strings = services.pages.catalog.strings(services.pages.lang(request))
        key = ERROR_KEYS.get(exc.status)
        if key is None:
            key = "wait.error.unknown_entry" if "wait.error.unknown_entry" in strings else "error.not_found"
        return services.pages.error(request, exc.status, key)


@routes.get("/wait/{token}")
async def waiting_page(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    token = request.match_info["token"]
    entry = await waiting_entry(request, token)
    if isinstance(entry, web.Response):
        return entry
    lang = services.pages.lang(request)
    strings = services.pages.catalog.strings(lang)
    office = services.waiting.offices.get(entry.office)
    response = services.pages.render(
        request,
        "waiting.html",
        waiting_token=token,
        strings={k: v for k, v in strings.items() if k.startswith(("wait.", "call."))},
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
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=20.0)
    await ws.prepare(request)
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
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=20.0)
    await ws.prepare(request)

    async def refuse(code: str, message: str, close_code: int) -> web.WebSocketResponse:
        await ws.send_json({"type": "error", "code": code, "message": message})
        await ws.close(code=close_code, message=code.encode())
        return ws

    if not same_origin(request, services.config.public_url):
        return await refuse(
            "forbidden_origin", "this console may only be opened from this server", CLOSE_FORBIDDEN
        )
    member = await services.current_staff(request)
    if member is None:
        return await refuse("not_authenticated", "sign in as staff first", CLOSE_UNAUTHENTICATED)
    if not may_serve(member):
        return await refuse("forbidden_role", "this account does not serve citizens", CLOSE_FORBIDDEN)

    async def lookup():
        return await services.current_staff(request)

    connection = ConsoleConnection(services.waiting, ws, member, lookup)
    await connection.start()
    await connection.run()
    return ws
