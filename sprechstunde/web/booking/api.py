"""Appointment booking over JSON, for the citizen pages' script, the chatbot and city portals.

Citizens have no account: a booking is changed with its manage token (in the URL), which the server
signed and which names only the booking. Staff routes need the session and, when they change
something, the `X-CSRF-Token` header (as the console's other routes). Errors are
`{"error": {"code", "message", ...detail}}`; a request that fails creates or changes nothing. The
OpenAPI description of these routes is `OPENAPI_PATHS` (served at /api/openapi.json, web/openapi.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from sprechstunde.rooms.offices import OfficeDirectory
from sprechstunde.rooms.queue import QueueService
from sprechstunde.rooms.staff import StaffDirectory
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.scheduling.bookings import JOIN_PURPOSE, Booked, Booking, SchedulingService
from sprechstunde.scheduling.catalog import Service, load_services
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.ics import booking_ics
from sprechstunde.scheduling.mail import BookingLinks, BookingMailer, SmtpMailer, SmtpSettings
from sprechstunde.store.port import Store
from sprechstunde.web.consultations.api import staff_member
from sprechstunde.web.core.api import read_json
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.openapi import DATE, MONTH, Fragment, body, errors, ref, request
from sprechstunde.web.core.security import ApiError
from sprechstunde.web.core.services import SERVICES, Services

routes = web.RouteTableDef()
MAX_STAFF_DAYS = 62
# Dates the query parameters accept: far wider than any booking horizon, far from date's own limits.
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)


def build_scheduling(
    config: Config,
    store: Store,
    offices: OfficeDirectory,
    signer: TokenSigner,
    queue: QueueService,
    clock: Any,
) -> tuple[SchedulingService, BookingMailer]:
    """The scheduling service and its mail job, from the services file and the SMTP settings."""
    catalog = load_services(offices, config.services_path)
    scheduling = SchedulingService(store, offices, catalog, StaffDirectory(store), signer, queue, clock)
    mailer = None
    if config.smtp_host:
        mailer = SmtpMailer(
            SmtpSettings(
                host=config.smtp_host,
                port=config.smtp_port,
                username=config.smtp_username,
                password=config.smtp_password,
                sender=config.smtp_sender,
                security=config.smtp_security,
            )
        )
    job = BookingMailer(scheduling, store, BookingLinks(config.public_url), mailer, clock)
    scheduling.on_change = job.wake
    return scheduling, job


def booking_error(exc: BookingError) -> web.Response:
    return web.json_response(
        {"error": {"code": exc.code, "message": exc.message, **exc.detail}}, status=exc.status
    )


def links(services: Services) -> BookingLinks:
    return BookingLinks(services.config.public_url)


def service_json(service: Service, lang: str | None = None) -> dict[str, Any]:
    names = {"name": service.name(lang)} if lang else {"names": dict(service.names)}
    return {
        "id": service.id,
        **names,
        "minutes": service.minutes,
        "buffer_minutes": service.buffer,
        "channels": list(service.channels),
    }


def booking_json(services: Services, booked: Booked, lang: str = "de") -> dict[str, Any]:
    """What the citizen (or the portal acting for them) sees of a booking, with its links."""
    booking = booked.booking
    office, service = services.scheduling.service(booking.office, booking.service)
    made = links(services)
    return {
        "booking_id": booking.booking_id,
        "reference": booking.reference,
        "status": booking.status,
        "office": {"id": office.id, "name": office.name(lang)},
        "service": service_json(service, lang),
        "channel": booking.channel,
        "language": booking.language,
        "starts_at": booking.local_start(office).isoformat(),
        "ends_at": booking.local_end(office).isoformat(),
        "name": booking.name,
        "email": booking.email,
        "phone": booking.phone,
        "address": services.scheduling.catalog.address(office.id) if booking.channel != "video" else None,
        "join_url": made.join(booked.join_token),
        "join_opens_at": datetime.fromtimestamp(
            booking.starts_at - services.scheduling.join_lead, office.timezone
        ).isoformat(),
        "manage_token": booked.manage_token,
        "manage_url": made.manage(booked.manage_token),
        "ics_url": made.ics(booked.manage_token),
        "rescheduled_to": booking.rescheduled_to,
        "mail": {"configured": services.booking_mailer.configured and bool(booking.email)},
    }


def staff_booking_json(services: Services, booking: Booking, me: str) -> dict[str, Any]:
    """An appointment on the advisor's list."""
    office, service = services.scheduling.service(booking.office, booking.service)
    return {
        "booking_id": booking.booking_id,
        "reference": booking.reference,
        "status": booking.status,
        "office": {"id": office.id, "name": office.name("de")},
        "service": service_json(service, "de"),
        "channel": booking.channel,
        "language": booking.language,
        "starts_at": booking.local_start(office).isoformat(),
        "ends_at": booking.local_end(office).isoformat(),
        "advisor": booking.advisor,
        "mine": booking.advisor == me,
        "name": booking.name,
        "email": booking.email,
        "phone": booking.phone,
        "waiting": booking.entry_id is not None,
    }


def _query_date(value: str | None, name: str, *, month: bool = False) -> date:
    """A date (or a month's first day) from the query, within EARLIEST…LATEST: the calendar code adds
    days and time-zone offsets to it, which beyond year 9999 raised OverflowError (issue 15, finding 10)."""
    form = "YYYY-MM" if month else "YYYY-MM-DD"
    try:
        if value is None:
            raise ValueError
        day = date.fromisoformat(value + "-01" if month else value)
    except ValueError:
        raise ApiError(400, f"invalid_{name}", f"{name} must be {form}") from None
    if not EARLIEST <= day <= LATEST:
        raise ApiError(
            400, f"invalid_{name}", f"{name} must be {form} between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
        )
    return day


def offices_json(services: Services, lang: str | None = None) -> list[dict[str, Any]]:
    result = []
    for office in services.scheduling.offices:
        offered = services.scheduling.catalog.for_office(office.id)
        if not offered:
            continue
        names = {"name": office.name(lang)} if lang else {"names": dict(office.names)}
        result.append(
            {
                "id": office.id,
                **names,
                "address": services.scheduling.catalog.address(office.id),
                "languages": list(office.languages),
                "services": [service_json(s, lang) for s in offered],
            }
        )
    return result


@routes.get("/api/booking/offices")
async def api_booking_offices(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    return web.json_response({"offices": offices_json(services)})


@routes.get("/api/booking/offices/{office}/services/{service}/days")
async def api_days(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    month = _query_date(request.query.get("month"), "month", month=True)
    try:
        days = await services.scheduling.days(
            request.match_info["office"],
            request.match_info["service"],
            month,
            channel=request.query.get("channel"),
            language=request.query.get("language", "de"),
        )
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response({"month": month.strftime("%Y-%m"), "days": days})


@routes.get("/api/booking/offices/{office}/services/{service}/slots")
async def api_slots(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    day = _query_date(request.query.get("date"), "date")
    try:
        slots = await services.scheduling.slots(
            request.match_info["office"],
            request.match_info["service"],
            day,
            channel=request.query.get("channel"),
            language=request.query.get("language", "de"),
        )
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response({"date": day.isoformat(), "slots": [s.as_json() for s in slots]})


async def _throttle(request: web.Request) -> None:
    services: Services = request.app[SERVICES]
    if not await services.booking_throttle.allow("booking", request.remote or "?"):
        raise ApiError(429, "rate_limited", "too many booking requests from your address; wait a minute")


@routes.post("/api/bookings")
async def api_book(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    await _throttle(request)
    data = await read_json(request)
    key = request.headers.get("Idempotency-Key", data.get("idempotency_key"))
    try:
        booked = await services.scheduling.book(
            data.get("office"),
            data.get("service"),
            data.get("channel"),
            data.get("starts_at"),
            name=data.get("name"),
            email=data.get("email"),
            phone=data.get("phone"),
            consent=data.get("consent"),
            language=data.get("language", "de"),
            idempotency_key=key,
        )
    except BookingError as exc:
        return booking_error(exc)
    lang = services.pages.lang(request)
    return web.json_response(booking_json(services, booked, lang), status=200 if booked.replayed else 201)


async def _by_token(request: web.Request) -> Booking:
    services: Services = request.app[SERVICES]
    return await services.scheduling.for_token(request.match_info["token"])


@routes.get("/api/bookings/{token}")
async def api_booking(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    try:
        booking = await _by_token(request)
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response(
        booking_json(services, services.scheduling.booked(booking), services.pages.lang(request))
    )


@routes.post("/api/bookings/{token}/cancel")
async def api_cancel(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    try:
        booking = await services.scheduling.cancel(await _by_token(request))
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response(
        booking_json(services, services.scheduling.booked(booking), services.pages.lang(request))
    )


@routes.post("/api/bookings/{token}/reschedule")
async def api_reschedule(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    await _throttle(request)
    data = await read_json(request)
    try:
        booked = await services.scheduling.reschedule(await _by_token(request), data.get("starts_at"))
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response(booking_json(services, booked, services.pages.lang(request)), status=201)


def ics_response(services: Services, booking: Booking, lang: str) -> web.Response:
    office, service = services.scheduling.service(booking.office, booking.service)
    booked = services.scheduling.booked(booking)
    made = links(services)
    body = booking_ics(
        booking,
        office,
        service,
        join_url=made.join(booked.join_token),
        manage_url=made.manage(booked.manage_token),
        address=services.scheduling.catalog.address(office.id),
        domain=made.domain,
        language=lang,
    )
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="termin-{booking.reference}.ics"'},
    )


@routes.get("/api/bookings/{token}/ics")
async def api_ics(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    try:
        booking = await _by_token(request)
    except BookingError as exc:
        return booking_error(exc)
    return ics_response(services, booking, services.pages.lang(request))


@routes.get("/api/bookings/join/{token}")
async def api_join(request: web.Request) -> web.Response:
    """Where the join link stands now: early (with opens_at), open (with waiting_url), over, cancelled."""
    services: Services = request.app[SERVICES]
    try:
        booking = await services.scheduling.for_token(request.match_info["token"], JOIN_PURPOSE)
        state = await services.scheduling.join(booking)
    except BookingError as exc:
        return booking_error(exc)
    if state.state == "open":
        await services.waiting.events.notify()
    office = services.scheduling.offices.require(booking.office)
    return web.json_response(
        {
            "state": state.state,
            "opens_at": datetime.fromtimestamp(state.opens_at, office.timezone).isoformat(),
            "starts_at": booking.local_start(office).isoformat(),
            "ends_at": booking.local_end(office).isoformat(),
            "waiting_url": f"{services.config.public_url}/wait/{state.wait_token}"
            if state.wait_token
            else None,
        }
    )


# --- staff -----------------------------------------------------------------------------------------


async def _staff_booking(request: web.Request, services: Services, member: Any) -> Booking:
    booking = await services.scheduling.get(request.match_info["booking_id"])
    if booking is None:
        raise BookingError("unknown_booking", "there is no such appointment", 404)
    services.scheduling.check_member(member, booking)
    return booking


@routes.get("/api/staff/appointments")
async def api_staff_appointments(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=False)
    office_tz = next(iter(services.scheduling.offices)).timezone
    today = datetime.fromtimestamp(services.scheduling.clock(), office_tz).date()
    first = _query_date(request.query["from"], "from") if "from" in request.query else today
    try:
        days = int(request.query.get("days", "14"))
    except ValueError:
        days = -1
    if not 1 <= days <= MAX_STAFF_DAYS:
        raise ApiError(400, "invalid_days", f"days must be a whole number from 1 to {MAX_STAFF_DAYS}")
    start = datetime.combine(first, datetime.min.time(), office_tz).timestamp()
    end = datetime.combine(first + timedelta(days=days), datetime.min.time(), office_tz).timestamp()
    found = await services.scheduling.for_member(member, start, end)
    return web.json_response(
        {
            "from": first.isoformat(),
            "days": days,
            "now": datetime.fromtimestamp(services.scheduling.clock(), UTC).isoformat(),
            "appointments": [staff_booking_json(services, b, member.username) for b in found],
        }
    )


@routes.post("/api/staff/appointments/{booking_id}/no-show")
async def api_staff_no_show(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=True)
    try:
        booking = await _staff_booking(request, services, member)
        marked = await services.scheduling.mark_no_show(booking, by=member.username)
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response(staff_booking_json(services, marked, member.username))


@routes.post("/api/staff/appointments/{booking_id}/reschedule")
async def api_staff_reschedule(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=True)
    data = await read_json(request)
    try:
        booking = await _staff_booking(request, services, member)
        booked = await services.scheduling.reschedule(booking, data.get("starts_at"), by=member.username)
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response(staff_booking_json(services, booked.booking, member.username), status=201)


@routes.get("/api/staff/appointments/{booking_id}/slots")
async def api_staff_slots(request: web.Request) -> web.Response:
    """Free slots of a day for moving an appointment (its own seat counts as free)."""
    services, member = await staff_member(request, change=False)
    day = _query_date(request.query.get("date"), "date")
    try:
        booking = await _staff_booking(request, services, member)
        slots = await services.scheduling.slots(
            booking.office, booking.service, day, channel=booking.channel, language=booking.language
        )
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response({"date": day.isoformat(), "slots": [s.as_json() for s in slots]})


async def _availability_user(request: web.Request, services: Services, member: Any) -> str:
    """Advisors manage their own availability; an office lead that of their offices' staff, an admin
    anyone's."""
    username = request.query.get("username", member.username)
    if username == member.username or member.role == "admin":
        return username
    other = await services.staff.get(username) if member.role == "lead" else None
    if other is None or not set(other.offices) & set(member.offices):
        raise ApiError(403, "forbidden", "you may only change your own availability or your office's")
    return username


@routes.get("/api/staff/availability")
async def api_get_availability(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=False)
    username = await _availability_user(request, services, member)
    found = await services.scheduling.availability.get(username)
    body = found.as_json() if found else {"username": username, "weekly": {}, "absences": []}
    return web.json_response(body)


@routes.put("/api/staff/availability")
async def api_put_availability(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=True)
    username = await _availability_user(request, services, member)
    if await services.staff.get(username) is None:
        raise ApiError(404, "unknown_user", f"there is no user {username!r}")
    data = await read_json(request)
    try:
        saved = await services.scheduling.availability.set(parse_availability(username, data))
    except BookingError as exc:
        return booking_error(exc)
    return web.json_response(saved.as_json())


# --- OpenAPI (web/openapi.py assembles the document) --------------------------------------------------


def _openapi() -> Fragment:
    tag = ["booking"]
    staff_tag = ["booking-staff"]
    token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
    office_service = [
        {"name": "office", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "service", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "channel", "in": "query", "schema": {"enum": ["video", "in_person"]}},
        {"name": "language", "in": "query", "schema": {"type": "string", "default": "de"}},
    ]
    booking_id = {"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}}
    staff = [{"session": []}]
    staff_change = [{"session": [], "csrf": []}]
    starts_at = {
        "type": "object",
        "required": ["starts_at"],
        "properties": {"starts_at": {"type": "string", "format": "date-time"}},
    }
    slots = body(
        {
            "type": "object",
            "properties": {
                "date": {"type": "string", "format": "date"},
                "slots": {"type": "array", "items": ref("Slot")},
            },
        }
    )
    return Fragment(
        tags=[
            {"name": "booking", "description": "Appointments for citizens (no account; manage token)"},
            {"name": "booking-staff", "description": "Appointments for advisors (session + CSRF)"},
        ],
        schemas={
            "Slot": {
                "type": "object",
                "properties": {
                    "starts_at": {"type": "string", "format": "date-time"},
                    "ends_at": {"type": "string", "format": "date-time"},
                    "free": {"type": "integer", "description": "advisors still free"},
                },
            },
            "BookingRequest": {
                "type": "object",
                "required": ["office", "service", "channel", "starts_at", "name", "consent"],
                "properties": {
                    "office": {"type": "string"},
                    "service": {"type": "string"},
                    "channel": {"enum": ["video", "in_person"]},
                    "starts_at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "from the slot list",
                    },
                    "name": {"type": "string", "maxLength": 100},
                    "email": {"type": "string", "format": "email"},
                    "phone": {"type": "string"},
                    "consent": {"const": True, "description": "agreed to the privacy notice"},
                    "language": {"type": "string", "default": "de"},
                    "idempotency_key": {
                        "type": "string",
                        "description": "or the Idempotency-Key header; a repeat gets the first booking (200)",
                    },
                },
            },
            "Booking": {
                "type": "object",
                "properties": {
                    "booking_id": {"type": "string"},
                    "reference": {"type": "string", "examples": ["T-2027-000042"]},
                    "status": {"enum": ["booked", "cancelled", "rescheduled", "no_show"]},
                    "office": {"type": "object"},
                    "service": {"type": "object"},
                    "channel": {"enum": ["video", "in_person"]},
                    "starts_at": {"type": "string", "format": "date-time"},
                    "ends_at": {"type": "string", "format": "date-time"},
                    "address": {"type": ["string", "null"]},
                    "join_url": {"type": ["string", "null"], "format": "uri"},
                    "join_opens_at": {"type": "string", "format": "date-time"},
                    "manage_token": {"type": "string"},
                    "manage_url": {"type": "string", "format": "uri"},
                    "ics_url": {"type": "string", "format": "uri"},
                    "mail": {"type": "object", "properties": {"configured": {"type": "boolean"}}},
                },
            },
            "Availability": {
                "type": "object",
                "properties": {
                    "weekly": {
                        "type": "object",
                        "description": 'weekday (mon…sun) → ["HH:MM-HH:MM", …], Europe/Berlin wall time',
                    },
                    "absences": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "from": {"type": "string", "format": "date"},
                                "to": {"type": "string", "format": "date"},
                                "reason": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        paths={
            "/api/booking/offices": {
                "get": {
                    "tags": tag,
                    "summary": "Offices that take appointments, with their services",
                    "responses": {
                        "200": body({"type": "object", "properties": {"offices": {"type": "array"}}})
                    },
                }
            },
            "/api/booking/offices/{office}/services/{service}/days": {
                "get": {
                    "tags": tag,
                    "summary": "Days of a month with their number of free slots (for a calendar)",
                    "parameters": [
                        *office_service,
                        {"name": "month", "in": "query", "required": True, "schema": MONTH},
                    ],
                    "responses": {"200": body({"type": "object"}), **errors(400, 404)},
                }
            },
            "/api/booking/offices/{office}/services/{service}/slots": {
                "get": {
                    "tags": tag,
                    "summary": "Free slots of one day",
                    "parameters": [
                        *office_service,
                        {"name": "date", "in": "query", "required": True, "schema": DATE},
                    ],
                    "responses": {"200": slots, **errors(400, 404)},
                }
            },
            "/api/bookings": {
                "post": {
                    "tags": tag,
                    "summary": "Book a slot; one advisor is assigned",
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                    "requestBody": request(ref("BookingRequest")),
                    "responses": {
                        "201": body(ref("Booking"), "booked"),
                        "200": body(
                            ref("Booking"), "repeat of an earlier request with the same idempotency key"
                        ),
                        **errors(400, 404, 409, 413, 415, 422, 429),
                    },
                }
            },
            "/api/bookings/{token}": {
                "get": {
                    "tags": tag,
                    "summary": "The booking of a manage token",
                    "parameters": [token],
                    "responses": {"200": body(ref("Booking")), **errors(403, 404, 410)},
                }
            },
            "/api/bookings/{token}/cancel": {
                "post": {
                    "tags": tag,
                    "summary": "Cancel; the slot is free again at once",
                    "parameters": [token],
                    "responses": {"200": body(ref("Booking")), **errors(403, 404, 409, 410)},
                }
            },
            "/api/bookings/{token}/reschedule": {
                "post": {
                    "tags": tag,
                    "summary": "Move to another slot: the new one is booked first, then the old one freed",
                    "parameters": [token],
                    "requestBody": request(starts_at),
                    "responses": {
                        "201": body(ref("Booking"), "the new booking"),
                        **errors(400, 403, 404, 409, 410, 429),
                    },
                }
            },
            "/api/bookings/{token}/ics": {
                "get": {
                    "tags": tag,
                    "summary": "The appointment as an iCalendar file (RFC 5545)",
                    "parameters": [token],
                    "responses": {
                        "200": {
                            "description": "text/calendar",
                            "content": {"text/calendar": {"schema": {"type": "string"}}},
                        },
                        **errors(403, 404, 410),
                    },
                }
            },
            "/api/bookings/join/{token}": {
                "get": {
                    "tags": tag,
                    "summary": "Join link state: early, open (waiting_url; queues once), over",
                    "parameters": [token],
                    "responses": {"200": body({"type": "object"}), **errors(403, 404, 410)},
                }
            },
            "/api/staff/appointments": {
                "get": {
                    "tags": staff_tag,
                    "security": staff,
                    "summary": "Appointments of the advisor's offices (own first at equal times)",
                    "parameters": [
                        {"name": "from", "in": "query", "schema": DATE},
                        {
                            "name": "days",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_STAFF_DAYS},
                        },
                    ],
                    "responses": {"200": body({"type": "object"}), **errors(400, 401)},
                }
            },
            "/api/staff/appointments/{booking_id}/no-show": {
                "post": {
                    "tags": staff_tag,
                    "security": staff_change,
                    "summary": "Mark a begun appointment as no-show",
                    "parameters": [booking_id],
                    "responses": {"200": body({"type": "object"}), **errors(401, 403, 404, 409)},
                }
            },
            "/api/staff/appointments/{booking_id}/slots": {
                "get": {
                    "tags": staff_tag,
                    "security": staff,
                    "summary": "Free slots of a day to move this appointment to",
                    "parameters": [
                        booking_id,
                        {"name": "date", "in": "query", "required": True, "schema": DATE},
                    ],
                    "responses": {"200": slots, **errors(400, 401, 403, 404)},
                }
            },
            "/api/staff/appointments/{booking_id}/reschedule": {
                "post": {
                    "tags": staff_tag,
                    "security": staff_change,
                    "summary": "Move an appointment",
                    "parameters": [booking_id],
                    "requestBody": request(starts_at),
                    "responses": {"201": body({"type": "object"}), **errors(400, 401, 403, 404, 409)},
                }
            },
            "/api/staff/availability": {
                "get": {
                    "tags": staff_tag,
                    "security": staff,
                    "summary": "Weekly pattern and absences (own; leads: ?username=)",
                    "responses": {"200": body(ref("Availability")), **errors(401, 403)},
                },
                "put": {
                    "tags": staff_tag,
                    "security": staff_change,
                    "summary": "Replace the weekly pattern and absences",
                    "requestBody": request(ref("Availability")),
                    "responses": {"200": body(ref("Availability")), **errors(400, 401, 403, 404)},
                },
            },
        },
    )


OPENAPI = _openapi()
