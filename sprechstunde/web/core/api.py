"""JSON API: health, staff sign-in, room creation. Errors are `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from sprechstunde.rooms.service import RoomError, parse_duration
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.web.core.security import ApiError, json_error
from sprechstunde.web.core.services import CSRF_HEADER, SERVICES, Services, cross_site

routes = web.RouteTableDef()
MAX_JSON_BYTES = 16 * 1024
# What aiohttp's body parsers raise on a malformed body: over-long or too many part headers
# (HttpProcessingError), a bad or missing boundary (ValueError, KeyError for none in Content-Type).
MALFORMED_BODY = (HttpProcessingError, ValueError, KeyError, AssertionError)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, however many TCP segments or chunks it came in, but never more than
    `limit` bytes read: 413 `too_large` beyond. (`request.content.read(n)` alone returns only what has
    arrived so far, which behind a proxy without request buffering is often half a body.)"""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"the body is limited to {limit} bytes")
    pieces: list[bytes] = []
    size = 0
    try:
        while piece := await request.content.read(limit + 1 - size):
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise ApiError(413, "too_large", f"the body is limited to {limit} bytes")
    except HttpProcessingError:  # e.g. a malformed chunk; the client sees at most this 400
        raise ApiError(400, "bad_body", "the request body could not be read") from None
    return b"".join(pieces)


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """A form post's text fields, for the HTML forms. File parts are dropped — no form of ours has one,
    so a CSRF token sent as a file simply is not there — and a malformed body (over-long part headers, a
    missing boundary) is a 400 rather than an error from deep inside aiohttp's parser."""
    try:
        form = await request.post()
    except MALFORMED_BODY:
        raise web.HTTPBadRequest() from None
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; a clear 4xx for anything else."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send a JSON body (application/json)")
    body = await read_body(request, MAX_JSON_BYTES)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.post("/api/login")
async def api_login(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    if cross_site(request, services.config.public_url):  # login CSRF: see web/services.py
        return json_error(403, "cross_site", "sign-in requests from another site are refused")
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return json_error(400, "bad_request", "username and password are required")
    member = await services.sign_in(request, username.lower(), password)
    if member == "rate_limited":
        return json_error(429, "rate_limited", "too many failed sign-ins; wait a few minutes")
    if not isinstance(member, StaffMember):
        return json_error(401, "invalid_credentials", "wrong username or password")
    session_id = await services.staff.open_session(member)
    response = web.json_response(
        {
            "username": member.username,
            "role": member.role,
            "offices": member.offices,
            "csrf": services.csrf_token(session_id),
        }
    )
    services.set_session_cookie(request, response, session_id)
    return response


@routes.post("/api/rooms")
async def api_create_room(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        return json_error(401, "not_authenticated", "sign in as staff first (POST /api/login)")
    # The cookie alone is what a cross-site form sends too: a change needs the token from the login.
    if not services.has_csrf_header(request):
        return json_error(403, "csrf", f"send {CSRF_HEADER} (from POST /api/login) with staff requests")
    data = await read_json(request)
    office = data.get("office", member.offices[0] if member.offices else None)
    if not isinstance(office, str):
        return json_error(400, "invalid_office", "office is required")
    if office not in services.waiting.offices:
        return json_error(404, "unknown_office", f"there is no office {office[:40]!r}")
    if member.role != "admin" and office not in member.offices:
        return json_error(403, "forbidden_office", f"you are not staff of office {office!r}")
    try:
        ttl = parse_duration(str(data.get("ttl", "2h")))
        room = await services.rooms.create(office, ttl, created_by=member.username)
    except RoomError as exc:
        return json_error(exc.status, exc.code, exc.message)
    links = services.rooms.links(room, services.config.public_url)
    return web.json_response(links.as_json(), status=201)
