"""JSON API: health, staff sign-in, room creation. Errors are `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from sprechstunde.errors import DomainError
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.web.core.models import NO_OFFICE, LoginIn, LoginOut, RoomIn, RoomOut, read_model
from sprechstunde.web.core.openapi import api_route
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
        raise DomainError("too_large", f"the body is limited to {limit} bytes", 413)
    pieces: list[bytes] = []
    size = 0
    try:
        while piece := await request.content.read(limit + 1 - size):
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise DomainError("too_large", f"the body is limited to {limit} bytes", 413)
    except HttpProcessingError:  # e.g. a malformed chunk; the client sees at most this 400
        raise DomainError("bad_body", "the request body could not be read", 400) from None
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
        raise DomainError("unsupported_media_type", "send a JSON body (application/json)", 415)
    body = await read_body(request, MAX_JSON_BYTES)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise DomainError("bad_json", "the body is not valid JSON", 400) from None
    if not isinstance(data, dict):
        raise DomainError("bad_json", "the body must be a JSON object", 400)
    return data


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@api_route(
    routes.post, "/api/login", tag="staff", body=LoginIn, answers={200: LoginOut}, errors=(401, 403, 429)
)
async def api_login(request: web.Request) -> web.Response:
    """Sign in as staff: sets the session cookie and returns the CSRF token for changes"""
    services: Services = request.app[SERVICES]
    if cross_site(request, services.config.public_url):  # login CSRF: see web/core/services.py
        raise DomainError("cross_site", "sign-in requests from another site are refused", 403)
    login = await read_model(request, LoginIn)
    member = await services.sign_in(request, login.username.lower(), login.password)
    if member == "rate_limited":
        raise DomainError("rate_limited", "too many failed sign-ins; wait a few minutes", 429)
    if not isinstance(member, StaffMember):
        raise DomainError("invalid_credentials", "wrong username or password", 401)
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


@api_route(
    routes.post,
    "/api/rooms",
    tag="staff",
    auth="staff_change",
    body=RoomIn,
    answers={201: RoomOut},
    errors=(400, 404, 409),
)
async def api_create_room(request: web.Request) -> web.Response:
    """Create a consultation room of an office; returns the advisor's and the citizen's link"""
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise DomainError("not_authenticated", "sign in as staff first (POST /api/login)", 401)
    # The cookie alone is what a cross-site form sends too: a change needs the token from the login.
    if not services.has_csrf_header(request):
        raise DomainError("csrf", f"send {CSRF_HEADER} (from POST /api/login) with staff requests", 403)
    wanted = await read_model(request, RoomIn)
    office = wanted.office if wanted.office is not None else next(iter(member.offices), None)
    if office is None:
        raise NO_OFFICE.error()
    if office not in services.waiting.offices:
        raise DomainError("unknown_office", f"there is no office {office[:40]!r}", 404)
    if member.role != "admin" and office not in member.offices:
        raise DomainError("forbidden_office", f"you are not staff of office {office!r}", 403)
    room = await services.rooms.create(office, wanted.ttl, created_by=member.username)
    links = services.rooms.links(room, services.config.public_url)
    return web.json_response(links.as_json(), status=201)
