"""Server-rendered pages: home, join link, staff sign-in and the minimal console."""

from __future__ import annotations

from aiohttp import web

from rooms.service import RoomError, parse_duration
from web.services import SERVICES, SESSION_COOKIE, Services

routes = web.RouteTableDef()
ERROR_KEYS = {403: "error.invalid_token", 404: "error.unknown_room", 410: "error.expired"}


def _js_strings(request: web.Request, *prefixes: str) -> dict[str, str]:
    """The UI strings a page's script needs (rendered as JSON into the page, read by strings.js)."""
    pages = request.app[SERVICES].pages
    return {k: v for k, v in pages.catalog.strings(pages.lang(request)).items() if k.startswith(prefixes)}


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    strings = _js_strings(request, "home.", "day.")
    return request.app[SERVICES].pages.render(request, "home.html", page_strings=strings)


@routes.get("/join/{token}")
async def join(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    try:
        grant, room = await services.rooms.admit(request.match_info["token"])
    except RoomError as exc:
        return services.pages.error(request, exc.status, ERROR_KEYS.get(exc.status, "error.invalid_token"))
    strings = services.pages.catalog.strings(services.pages.lang(request))
    return services.pages.render(
        request,
        "join.html",
        token=request.match_info["token"],
        role=grant.role,
        room_id=room.room_id,
        office=room.office,
        call_strings={k: v for k, v in strings.items() if k.startswith("call.")},
    )


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return request.app[SERVICES].pages.render(request, "login.html", error_key=None, username="")


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    form = await request.post()
    username = str(form.get("username", "")).strip().lower()[:40]
    password = str(form.get("password", ""))[:200]
    if not services.throttle.allow(username, request.remote or "?"):
        return services.pages.render(
            request, "login.html", status=429, error_key="login.rate_limited", username=username
        )
    member = await services.staff.authenticate(username, password)
    if member is None:
        return services.pages.render(
            request, "login.html", status=401, error_key="login.failed", username=username
        )
    session_id = await services.staff.open_session(member)
    response = web.HTTPSeeOther("/console")
    services.set_session_cookie(request, response, session_id)
    raise response


async def _console(request: web.Request, links: dict | None = None) -> web.Response:
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise web.HTTPSeeOther("/login")
    csrf = services.csrf_token(request.cookies[SESSION_COOKIE])
    strings = _js_strings(request, "console.")
    return services.pages.render(
        request, "console.html", member=member, csrf=csrf, links=links, page_strings=strings
    )


@routes.get("/console")
async def console(request: web.Request) -> web.Response:
    return await _console(request)


@routes.post("/console/rooms")
async def console_create_room(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise web.HTTPSeeOther("/login")
    form = await request.post()
    if not services.check_csrf(request.cookies[SESSION_COOKIE], form.get("csrf")):
        raise web.HTTPForbidden()
    office = str(form.get("office", ""))
    if member.role != "admin" and office not in member.offices:
        raise web.HTTPForbidden()
    try:
        room = await services.rooms.create(office, parse_duration("2h"), created_by=member.username)
    except RoomError:
        raise web.HTTPBadRequest() from None
    links = services.rooms.links(room, services.config.public_url).as_json()
    return await _console(request, links)


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    session_id = request.cookies.get(SESSION_COOKIE)
    form = await request.post()
    if session_id and services.check_csrf(session_id, form.get("csrf")):
        await services.staff.close_session(session_id)
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
