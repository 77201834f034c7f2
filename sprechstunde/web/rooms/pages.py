"""Server-rendered pages: home, join link, staff sign-in and the minimal console."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from sprechstunde.media.ice import client_ice_servers
from sprechstunde.rooms.service import parse_duration
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.tickets import MAX_TICKET_SEARCH, TICKET_STATES, TICKET_STATUSES, ticket_filter
from sprechstunde.rooms.views import entry_json
from sprechstunde.web.consultations.ending import end_token_for_room
from sprechstunde.web.core.api import read_form
from sprechstunde.web.core.errors import page_errors
from sprechstunde.web.core.services import SERVICES, SESSION_COOKIE, Services, cross_site
from sprechstunde.web.core.staff_display import language_name, office_labels, office_moment, office_name

routes = web.RouteTableDef()
MAX_CONSOLE_TICKETS = 50
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
@page_errors("error.invalid_token", ERROR_KEYS)
async def join(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    grant, room = await services.rooms.admit(request.match_info["token"])
    lang = services.pages.lang(request)
    strings = services.pages.catalog.strings(lang)
    consultation = await _consultation(request, services, room.room_id) if grant.role == "advisor" else None
    prefixes = ("call.", "consult.") if consultation else ("call.",)
    return services.pages.render(
        request,
        "join.html",
        token=request.match_info["token"],
        role=grant.role,
        room_id=room.room_id,
        office=room.office,
        call_strings={k: v for k, v in strings.items() if k.startswith(prefixes)},
        consultation=consultation,
        # reloaded after the advisor closed the consultation: the citizen's end screen (endscreen.js)
        end_token=await end_token_for_room(services, room.room_id) if grant.role == "citizen" else "",
        # for the pre-join network check (static/prejoin.js); the TURN credentials are the same
        # time-limited kind as in `welcome`, and the page is not cached (no-store)
        ice_servers=client_ice_servers(services.config.ice, f"prejoin-{room.room_id[:8]}"),
        csrf=services.csrf_token(request.cookies[SESSION_COOKIE]) if consultation else "",
        transfer_offices=[
            {"id": o.id, "name": o.name(lang), "languages": o.languages}
            for o in services.waiting.offices
            if consultation and o.id != consultation["office"]
        ],
    )


async def _consultation(request: web.Request, services: Services, room_id: str) -> dict | None:
    """The queue entry that the signed-in advisor admitted into this room, if any."""
    member = await services.current_staff(request)
    if member is None:
        return None
    lang = services.pages.lang(request)
    for entry in await services.queue.serving(member):
        if entry.room_id == room_id:
            view = entry_json(entry, services.waiting.offices, services.waiting.clock(), staff=True)
            # the panel names the office and the language, in the page's language (never the ids)
            view["office_name"] = office_name(services.waiting.offices, entry.office, lang)
            view["language_name"] = language_name(entry.language)
            return view
    return None


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return request.app[SERVICES].pages.render(request, "login.html", error_key=None, username="")


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    if cross_site(request, services.config.public_url):  # login CSRF: see web/core/services.py
        return services.pages.error(request, 403, "login.cross_site")
    form = await read_form(request)  # a malformed body is a 400, not an error deep in aiohttp
    username = str(form.get("username", "")).strip().lower()[:40]
    password = str(form.get("password", ""))[:200]
    member = await services.sign_in(request, username, password)
    if member == "rate_limited":
        return services.pages.render(
            request, "login.html", status=429, error_key="login.rate_limited", username=username
        )
    if not isinstance(member, StaffMember):
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
    now = services.waiting.clock()
    serving = []
    for entry in await services.queue.serving(member):
        room = await services.rooms.get(entry.room_id) if entry.room_id else None
        if room is not None:
            view = entry_json(entry, services.waiting.offices, now, transcript=False, staff=True)
            serving.append(view | {"advisor_url": services.rooms.link(room, "advisor", "")})
    offices = [o.id for o in services.waiting.offices] if member.role == "admin" else member.offices
    # the tickets filter (GET ?state=&q=): still to do by default, finished ones when asked for
    state = request.query.get("state", "open")
    state = state if state in TICKET_STATES else "open"
    search = request.query.get("q", "")[:MAX_TICKET_SEARCH]
    wanted = ticket_filter(state, search)
    tickets = [t for office in offices for t in await services.queue.tickets.for_office(office) if wanted(t)]
    tickets.sort(key=lambda t: (t.created_at, t.reference), reverse=True)
    lang = services.pages.lang(request)
    directory = services.waiting.offices
    return services.pages.render(
        request,
        "console.html",
        member=member,
        csrf=csrf,
        links=links,
        page_strings=strings,
        serving=serving,
        tickets=tickets[:MAX_CONSOLE_TICKETS],
        more_tickets=max(0, len(tickets) - MAX_CONSOLE_TICKETS),
        ticket_statuses=TICKET_STATUSES,
        ticket_states=TICKET_STATES,
        ticket_state=state,
        ticket_search=search,
        statistics=member.role in ("lead", "admin"),
        opened=lambda ticket: office_moment(directory, ticket.office, ticket.created_at, lang),
        office_name=lambda office_id: office_name(directory, office_id, lang),
        language_name=language_name,
        office_labels=office_labels(directory, lang),
    )


@routes.get("/console")
async def console(request: web.Request) -> web.Response:
    return await _console(request)


async def _staff_form(request: web.Request) -> tuple[Services, StaffMember, MultiDictProxy]:
    """A console form post: the signed-in member and the form, whose CSRF field must match the session."""
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise web.HTTPSeeOther("/login")
    form = await read_form(request)
    if not services.check_csrf(request.cookies[SESSION_COOKIE], form.get("csrf")):
        raise web.HTTPForbidden()
    return services, member, form


@routes.post("/console/rooms")
async def console_create_room(request: web.Request) -> web.Response:
    services, member, form = await _staff_form(request)
    office = str(form.get("office", ""))
    if member.role != "admin" and office not in member.offices:
        raise web.HTTPForbidden()
    room = await services.rooms.create(office, parse_duration("2h"), created_by=member.username)
    links = services.rooms.links(room, services.config.public_url).as_json()
    lang = services.pages.lang(request)
    links["expires_text"] = office_moment(services.waiting.offices, office, room.expires_at, lang)
    return await _console(request, links)


@routes.post("/console/tickets/{reference}")
@page_errors("console.tickets.failed")
async def console_update_ticket(request: web.Request) -> web.Response:
    """The console's ticket form (no script needed): change the status."""
    services, member, form = await _staff_form(request)
    status = str(form.get("status", ""))
    await services.queue.tickets.update(member, request.match_info["reference"], status=status)
    # back to the list as it was filtered (a ticket just closed from a search stays in view)
    shown = {k: str(form.get(k, ""))[:MAX_TICKET_SEARCH] for k in ("state", "q") if form.get(k)}
    raise web.HTTPSeeOther("/console" + (f"?{urlencode(shown)}" if shown else "") + "#tickets")


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    services: Services = request.app[SERVICES]
    session_id = request.cookies.get(SESSION_COOKIE)
    form = await read_form(request)
    if session_id and services.check_csrf(session_id, form.get("csrf")):
        await services.staff.close_session(session_id)
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
