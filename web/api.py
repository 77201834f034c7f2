"""JSON API: health, staff sign-in, room creation. Errors are `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rooms.service import RoomError, parse_duration
from web.security import ApiError, json_error
from web.services import SERVICES, Services

routes = web.RouteTableDef()
MAX_JSON_BYTES = 16 * 1024


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; a clear 4xx for anything else."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send a JSON body (application/json)")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"the body is limited to {MAX_JSON_BYTES} bytes")
    body = await request.content.read(MAX_JSON_BYTES + 1)
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"the body is limited to {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError:
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
    data = await read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return json_error(400, "bad_request", "username and password are required")
    if not services.throttle.allow(username.lower(), request.remote or "?"):
        return json_error(429, "rate_limited", "too many sign-in attempts; wait a minute")
    member = await services.staff.authenticate(username.lower(), password)
    if member is None:
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
    data = await read_json(request)
    office = data.get("office", member.offices[0] if member.offices else None)
    if not isinstance(office, str):
        return json_error(400, "invalid_office", "office is required")
    if member.role != "admin" and office not in member.offices:
        return json_error(403, "forbidden_office", f"you are not staff of office {office!r}")
    try:
        ttl = parse_duration(str(data.get("ttl", "2h")))
        room = await services.rooms.create(office, ttl, created_by=member.username)
    except RoomError as exc:
        return json_error(exc.status, exc.code, exc.message)
    links = services.rooms.links(room, services.config.public_url)
    return web.json_response(links.as_json(), status=201)
