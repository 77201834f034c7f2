"""Citizen booking pages, server-rendered and usable without JavaScript (mobile first, de/en):
office → service → video or in person → a month calendar of days with free slots → slot → details
form → confirmation (the manage page). Also the manage page itself (cancel, reschedule, .ics), the
join link (countdown, waiting room, over) and the privacy notice.

Citizens have no session, so the booking form carries a signed nonce instead of a CSRF token: it is
the booking's idempotency key, so a double submit (or a reload of the POST) books once. Every page
only reads or follows links until the final POST; the manage token in the URL is the capability for
cancel and reschedule.
"""

from __future__ import annotations

import calendar
import secrets
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from sprechstunde.l10n import day_text, language_name, language_names, locale_for, month_text, time_text
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import Office
from sprechstunde.rooms.tokens import TokenError
from sprechstunde.scheduling.catalog import Service
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.mail import JOIN_PATH, MANAGE_PATH
from sprechstunde.scheduling.records import HORIZON_DAYS, JOIN_PURPOSE, Booking
from sprechstunde.web.booking.api import ics_response
from sprechstunde.web.core.api import read_form
from sprechstunde.web.core.errors import page_errors
from sprechstunde.web.core.services import SERVICES, SESSION_COOKIE, Services
from sprechstunde.web.core.staff_display import office_labels

fixed_routes = web.RouteTableDef()
office_routes = web.RouteTableDef()  # after the fixed ones: /termin/verwalten/… is no office
FORM_PURPOSE = "booking-form"
FORM_TTL = 2 * 3600
ERROR_STATUS_KEYS = {403: "error.invalid_token", 410: "error.expired", 404: "booking.error.unknown_booking"}
# how the pages behind a manage or join link word a refused request (web/core/errors.py)
link_errors = page_errors("error.not_found", ERROR_STATUS_KEYS)


class Page:
    """Per-request helpers: language, strings, links that keep ?lang=."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.services: Services = request.app[SERVICES]
        self.lang = self.services.pages.lang(request)
        self.t = self.services.pages.catalog.strings(self.lang)
        # the page language and the consultation language travel along every link
        self.keep = {k: request.query[k] for k in ("lang", "sprache") if k in request.query}

    def url(self, path: str, **query: Any) -> str:
        params = {k: v for k, v in query.items() if v is not None} | self.keep
        return f"{path}?{urlencode(params)}" if params else path

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        response = self.services.pages.render(
            self.request,
            template,
            status,
            url=self.url,
            day_text=day_text,
            time_text=time_text,
            services_mail=self.services.booking_mailer.configured,
            keep=self.keep,
            **context,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def office_service(self, office_id: str, service_id: str | None = None) -> tuple[Office, Service | None]:
        scheduling = self.services.scheduling
        office = scheduling.offices.get(office_id)
        if office is None or not scheduling.catalog.for_office(office.id):
            raise web.HTTPNotFound()
        if service_id is None:
            return office, None
        return scheduling.service(office.id, service_id)  # unknown: a 404 page (web/core/errors.py)


def _month(value: str | None, today: date) -> date:
    try:
        month = date.fromisoformat(value + "-01") if value else today.replace(day=1)
    except ValueError:
        month = today.replace(day=1)
    last = (today + timedelta(days=HORIZON_DAYS)).replace(day=1)
    return min(max(month, today.replace(day=1)), last)


def _language_in(code: str, lang: str) -> str:
    """A language's name in the page's language, for running text ("auf Englisch", "in German");
    its own name ("Kurdî (kurmancî)") where the page's language has none for it."""
    return locale_for(lang).languages.get(code) or language_name(code)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _add_month(month: date, delta: int) -> date:
    index = month.year * 12 + month.month - 1 + delta
    return date(index // 12, index % 12 + 1, 1)


@fixed_routes.get("/termin")
async def start(request: web.Request) -> web.Response:
    page = Page(request)
    scheduling = page.services.scheduling
    offices = [o for o in scheduling.offices if scheduling.catalog.for_office(o.id)]
    return page.render("booking_start.html", offices=offices, step=1)


@fixed_routes.get("/termin/datenschutz")
async def privacy(request: web.Request) -> web.Response:
    return Page(request).render("booking_privacy.html", step=None)


@office_routes.get("/termin/{office}")
async def choose_service(request: web.Request) -> web.Response:
    page = Page(request)
    office, _ = page.office_service(request.match_info["office"])
    offered = page.services.scheduling.catalog.for_office(office.id)
    return page.render("booking_services.html", office=office, offered=offered, step=2)


@office_routes.get("/termin/{office}/{service}")
async def choose_channel(request: web.Request) -> web.Response:
    page = Page(request)
    office, service = page.office_service(request.match_info["office"], request.match_info["service"])
    assert service is not None
    if len(service.channels) == 1:
        raise web.HTTPSeeOther(page.url(f"/termin/{office.id}/{service.id}/{service.channels[0]}"))
    return page.render("booking_channel.html", office=office, service=service, step=3)


async def _calendar_context(
    page: Page,
    office: Office,
    service: Service,
    channel: str,
    language: str,
    query: Any = None,
    *,
    base: str,
) -> dict[str, Any]:
    """Month grid, the chosen day's slots and the chosen slot from ?monat=&tag=&zeit=. Without a month
    or day the calendar opens on the first month with a free slot; `outlook` says when there is none
    (issue 17, item 12)."""
    scheduling = page.services.scheduling
    today = datetime.fromtimestamp(scheduling.clock(), office.timezone).date()
    query = page.request.query if query is None else query
    chosen_day = _day(query.get("tag"))
    outlook = await scheduling.outlook(office.id, service.id, channel=channel, language=language)
    wanted = query.get("monat") or (chosen_day or outlook.first_free or today).strftime("%Y-%m")
    month = _month(wanted, today)
    days = {
        d["date"]: d
        for d in await scheduling.days(office.id, service.id, month, channel=channel, language=language)
    }
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month)
    slots = []
    if chosen_day is not None:
        slots = await scheduling.slots(office.id, service.id, chosen_day, channel=channel, language=language)
    chosen_slot = None
    if "zeit" in query and chosen_day is not None:
        chosen_slot = next((s for s in slots if s.starts_at.isoformat() == query["zeit"]), None)
    first = today.replace(day=1)
    last = (today + timedelta(days=HORIZON_DAYS)).replace(day=1)
    return {
        "month": month,
        "month_label": month_text(month, page.lang),
        "previous_month": _add_month(month, -1) if month > first else None,
        "next_month": _add_month(month, 1) if month < last else None,
        "weeks": weeks,
        "days": days,
        "today": today,
        "chosen_day": chosen_day,
        "slots": slots,
        "chosen_slot": chosen_slot,
        "stale_slot": "zeit" in query and chosen_slot is None,
        "base": base,
        "outlook": outlook,
        "horizon": HORIZON_DAYS,
        # the page in another consultation language (Page.url would keep the present ?sprache=)
        "language_links": {
            code: f"{base}?{urlencode(page.keep | {'sprache': code})}" for code in outlook.languages
        },
        "language_in": lambda code: _language_in(code, page.lang),
    }


def _language(page: Page, office: Office, value: str | None = None) -> str:
    """The consultation language (?sprache=, or the form's), German when the office does not offer it."""
    value = value if value is not None else page.request.query.get("sprache", "de")
    return value if value in office.languages else "de"


def _form_nonce(services: Services) -> str:
    return services.signer.sign(
        FORM_PURPOSE, {"n": secrets.token_urlsafe(16), "exp": int(services.scheduling.clock() + FORM_TTL)}
    )


def _office_service_channel(page: Page) -> tuple[Office, Service, str]:
    """The office, service and channel of a calendar URL (a 404 page for any that does not exist)."""
    match = page.request.match_info
    office, service = page.office_service(match["office"], match["service"])
    assert service is not None
    if match["channel"] not in service.channels:
        raise web.HTTPNotFound()
    return office, service, match["channel"]


async def _booking_calendar(
    page: Page,
    office: Office,
    service: Service,
    channel: str,
    language: str,
    query: Any = None,
    *,
    status: int = 200,
    nonce: str | None = None,
    form: dict[str, Any] | None = None,
    error: Exception | None = None,
    **extra: Any,
) -> web.Response:
    """The booking calendar page (steps 4 and 5) as a GET shows it, or again after a refused POST."""
    base = f"/termin/{office.id}/{service.id}/{channel}"
    context = await _calendar_context(page, office, service, channel, language, query, base=base)
    return page.render(
        "booking_calendar.html",
        status=status,
        office=office,
        service=service,
        channel=channel,
        nonce=nonce or _form_nonce(page.services),
        form=form or {},
        error=error,
        language=language,
        language_names=language_names(office.languages),
        step=4 if context["chosen_slot"] is None else 5,
        **context,
        **extra,
    )


@office_routes.get("/termin/{office}/{service}/{channel}")
async def choose_slot(request: web.Request) -> web.Response:
    page = Page(request)
    office, service, channel = _office_service_channel(page)
    return await _booking_calendar(page, office, service, channel, _language(page, office))


@office_routes.post("/termin/{office}/{service}/{channel}/frage")
async def ask_question(request: web.Request) -> web.Response:
    """A written question instead of an appointment, offered when nothing can be booked in the chosen
    language (issue 17, item 12): a ticket of the office, as the start page's question form makes."""
    page = Page(request)
    office, service, channel = _office_service_channel(page)
    form = await read_form(request)
    values = {k: str(form.get(k, ""))[:2100] for k in ("question", "contact")}
    language = _language(page, office, str(form.get("language", "de")))
    try:
        if not await page.services.queue_throttle.allow("question", request.remote or "?"):
            raise QueueError("rate_limited", "too many requests", 429)
        ticket = await page.services.queue.ask(
            office.id, language, service.name("de"), values["question"], values["contact"]
        )
    except QueueError as exc:
        return await _booking_calendar(
            page, office, service, channel, language, status=exc.status, question=values, question_error=exc
        )
    return await _booking_calendar(page, office, service, channel, language, question_sent=ticket.reference)


@office_routes.post("/termin/{office}/{service}/{channel}")
async def submit_booking(request: web.Request) -> web.Response:
    page = Page(request)
    services = page.services
    office, service, channel = _office_service_channel(page)
    form = await read_form(request)
    values = {k: str(form.get(k, ""))[:300] for k in ("name", "email", "phone", "starts_at", "nonce")}
    language = _language(page, office, str(form.get("language", "de")))
    error: BookingError | None = None
    try:
        if not await services.booking_throttle.allow("booking", request.remote or "?"):
            raise BookingError("rate_limited", "too many requests", 429)
        try:
            nonce = services.signer.verify(FORM_PURPOSE, values["nonce"])["n"]
        except TokenError:
            raise BookingError("form_expired", "the form has expired; send it again", 400) from None
        booked = await services.scheduling.book(
            office.id,
            service.id,
            channel,
            values["starts_at"],
            name=values["name"],
            email=values["email"] or None,
            phone=values["phone"] or None,
            consent=form.get("consent") == "yes",
            language=language,
            idempotency_key=f"form:{nonce}",
        )
    except BookingError as exc:
        error = exc
    if error is None:
        raise web.HTTPSeeOther(page.url(f"{MANAGE_PATH}{booked.manage_token}", neu="1"))
    # Back to the form (or, when the slot went, to the day's fresh slots) with the reason.
    starts = None
    try:
        starts = datetime.fromisoformat(values["starts_at"]).astimezone(office.timezone)
    except ValueError:
        pass
    request_query = dict(request.query)
    if starts is not None:
        request_query |= {"tag": starts.date().isoformat()}
        if error.code not in ("slot_taken", "past_slot"):
            request_query |= {"zeit": starts.isoformat()}
    return await _booking_calendar(
        page,
        office,
        service,
        channel,
        language,
        request_query,
        status=error.status,
        nonce=values["nonce"] if error.code != "form_expired" else None,
        form=values | {"consent": form.get("consent") == "yes"},
        error=error,
    )


async def _managed(page: Page) -> Booking:
    """The booking of the manage link; a bad or expired link shows the error page (`link_errors`)."""
    return await page.services.scheduling.for_token(page.request.match_info["token"])


def _booking_view(page: Page, booking: Booking) -> dict[str, Any]:
    services = page.services
    office, service = services.scheduling.service(booking.office, booking.service)
    booked = services.scheduling.booked(booking)
    start, end = booking.local_start(office), booking.local_end(office)
    return {
        "booking": booking,
        "office": office,
        "service": service,
        "start": start,
        "end": end,
        "join_path": f"{JOIN_PATH}{booked.join_token}" if booked.join_token else None,
        "join_url": f"{services.config.public_url}{JOIN_PATH}{booked.join_token}"
        if booked.join_token
        else None,
        "manage_path": f"{MANAGE_PATH}{booked.manage_token}",
        "manage_url": f"{services.config.public_url}{MANAGE_PATH}{booked.manage_token}",
        "address": services.scheduling.catalog.address(office.id),
        "mail_configured": services.booking_mailer.configured,
        "changeable": booking.status == "booked" and services.scheduling.clock() < booking.starts_at,
    }


@fixed_routes.get("/termin/verwalten/{token}")
@link_errors
async def manage(request: web.Request) -> web.Response:
    page = Page(request)
    booking = await _managed(page)
    if booking.rescheduled_to:  # moved before issue 17, when a move made a new booking
        newer = await page.services.scheduling.get(booking.rescheduled_to)
        if newer is not None:
            raise web.HTTPSeeOther(
                page.url(MANAGE_PATH + page.services.scheduling.manage_token(newer), verschoben="1")
            )
    return page.render(
        "booking_manage.html",
        new=request.query.get("neu") == "1",
        moved=request.query.get("verschoben") == "1",
        step=6 if request.query.get("neu") == "1" else None,
        error=None,
        **_booking_view(page, booking),
    )


@fixed_routes.get("/termin/verwalten/{token}/termin.ics")
@link_errors
async def manage_ics(request: web.Request) -> web.Response:
    page = Page(request)
    booking = await _managed(page)
    return ics_response(page.services, booking, page.lang)


@fixed_routes.post("/termin/verwalten/{token}/absagen")
@link_errors
async def cancel(request: web.Request) -> web.Response:
    page = Page(request)
    booking = await _managed(page)
    try:
        await page.services.scheduling.cancel(booking)
    except BookingError as exc:
        if exc.code != "not_booked":  # a repeated click: the page shows it is cancelled
            return page.render(
                "booking_manage.html", status=exc.status, new=False, moved=False, step=None, error=exc,
                **_booking_view(page, booking),
            )  # fmt: skip
    raise web.HTTPSeeOther(page.url(f"{MANAGE_PATH}{request.match_info['token']}"))


@fixed_routes.get("/termin/verwalten/{token}/verschieben")
@link_errors
async def reschedule_page(request: web.Request) -> web.Response:
    page = Page(request)
    booking = await _managed(page)
    view = _booking_view(page, booking)
    if not view["changeable"]:
        raise web.HTTPSeeOther(page.url(view["manage_path"]))
    base = f"{view['manage_path']}/verschieben"
    context = await _calendar_context(
        page, view["office"], view["service"], booking.channel, booking.language, base=base
    )
    return page.render(
        "booking_calendar.html",
        channel=booking.channel,
        nonce="",
        form={},
        error=None,
        step=None,
        rescheduling=view,
        **context,
        **{k: view[k] for k in ("office", "service")},
    )


@fixed_routes.post("/termin/verwalten/{token}/verschieben")
@link_errors
async def reschedule_submit(request: web.Request) -> web.Response:
    page = Page(request)
    booking = await _managed(page)
    form = await read_form(request)
    starts_at = str(form.get("starts_at", ""))[:60]
    scheduling = page.services.scheduling
    if booking.rescheduled_to:  # a double submit: the first one moved it already
        newer = await scheduling.get(booking.rescheduled_to)
        if newer is not None:
            raise web.HTTPSeeOther(page.url(MANAGE_PATH + scheduling.manage_token(newer), verschoben="1"))
    try:
        booked = await scheduling.reschedule(booking, starts_at)
    except BookingError as exc:
        if exc.code == "same_slot" and booking.sequence:  # a double submit: the first one moved it
            raise web.HTTPSeeOther(
                page.url(MANAGE_PATH + scheduling.manage_token(booking), verschoben="1")
            ) from None
        view = _booking_view(page, booking)
        query = dict(request.query)
        try:
            query["tag"] = (
                datetime.fromisoformat(starts_at).astimezone(view["office"].timezone).date().isoformat()
            )
        except ValueError:
            pass
        base = f"{view['manage_path']}/verschieben"
        context = await _calendar_context(
            page, view["office"], view["service"], booking.channel, booking.language, query, base=base
        )
        return page.render(
            "booking_calendar.html",
            status=exc.status,
            channel=booking.channel,
            nonce="",
            form={},
            error=exc,
            step=None,
            rescheduling=view,
            **context,
            **{k: view[k] for k in ("office", "service")},
        )
    raise web.HTTPSeeOther(page.url(MANAGE_PATH + booked.manage_token, verschoben="1"))


@fixed_routes.get("/termin/beitreten/{token}")
@link_errors
async def join(request: web.Request) -> web.Response:
    """The video join link: a countdown until 10 minutes before the start, then the waiting room
    (the same place in line on every click), afterwards "the appointment has passed"."""
    page = Page(request)
    scheduling = page.services.scheduling
    booking = await scheduling.for_token(request.match_info["token"], JOIN_PURPOSE)
    state = await scheduling.join(booking)
    if state.state == "open":
        raise web.HTTPSeeOther(page.url(f"/wait/{state.wait_token}"))
    view = _booking_view(page, booking)
    opens = datetime.fromtimestamp(state.opens_at, view["office"].timezone)
    response = page.render(
        "booking_join.html",
        state=state.state,
        opens=opens,
        opens_in=max(0, round(state.opens_at - scheduling.clock())),
        step=None,
        **view,
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@fixed_routes.get("/console/appointments")
async def appointments_page(request: web.Request) -> web.Response:
    """The advisor's appointments (linked from the console); the list itself comes from the JSON API."""
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise web.HTTPSeeOther("/login")
    strings = services.pages.catalog.strings(services.pages.lang(request))
    return services.pages.render(
        request,
        "appointments.html",
        member=member,
        csrf=services.csrf_token(request.cookies[SESSION_COOKIE]),
        page_strings={k: v for k, v in strings.items() if k.startswith("appointments.")},
        office_labels=office_labels(services.scheduling.offices, services.pages.lang(request)),
    )


routes = [*fixed_routes, *office_routes]
