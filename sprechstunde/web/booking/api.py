"""Appointment booking over JSON, for the citizen pages' script, the chatbot and city portals.

Citizens have no account: a booking is changed with its manage token (in the URL), which the server
signed and which names only the booking. Staff routes need the session and, when they change
something, the `X-CSRF-Token` header (as the console's other routes). Errors are
`{"error": {"code", "message", ...detail}}`; a request that fails creates or changes nothing. Bodies
and answers are the models of web/booking/models.py; each route declares its OpenAPI operation with
`api_route` (served at /api/openapi.json, web/core/openapi.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from aiohttp import web

from sprechstunde.errors import DomainError
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.scheduling.catalog import CHANNELS, Service
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.ics import booking_ics
from sprechstunde.scheduling.mail import BookingLinks
from sprechstunde.scheduling.records import JOIN_PURPOSE, Booked, Booking
from sprechstunde.web.booking.models import (
    AvailabilityIn,
    AvailabilityOut,
    BookingOfficesOut,
    BookingRequest,
    BookingView,
    DaysOut,
    JoinOut,
    OutlookOut,
    RescheduleIn,
    SlotsOut,
    StaffAppointment,
    StaffAppointmentsOut,
)
from sprechstunde.web.consultations.api import staff_member
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import DATE, MONTH, Raw, api_route, header, query
from sprechstunde.web.core.services import SERVICES, Services

routes = web.RouteTableDef()
citizen_route = partial(api_route, tag="booking")  # each declares its OpenAPI operation
staff_route = partial(api_route, tag="booking-staff")
MAX_STAFF_DAYS = 62
# Dates the query parameters accept: far wider than any booking horizon, far from date's own limits.
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)


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
        raise DomainError(f"invalid_{name}", f"{name} must be {form}", 400) from None
    if not EARLIEST <= day <= LATEST:
        raise DomainError(
            f"invalid_{name}", f"{name} must be {form} between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}", 400
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


OFFICE_SERVICE = (
    query("channel", {"enum": list(CHANNELS)}),
    query("language", {"type": "string", "default": "de"}),
)


@citizen_route(routes.get, "/api/booking/offices", answers={200: BookingOfficesOut})
async def api_booking_offices(request: web.Request) -> web.Response:
    """Offices that take appointments, with their services"""
    services: Services = request.app[SERVICES]
    return web.json_response({"offices": offices_json(services)})


@citizen_route(
    routes.get,
    "/api/booking/offices/{office}/services/{service}/days",
    answers={200: DaysOut},
    errors=(400, 404),
    params=(*OFFICE_SERVICE, query("month", MONTH, required=True)),
)
async def api_days(request: web.Request) -> web.Response:
    """Days of a month with their number of free slots (for a calendar)"""
    services: Services = request.app[SERVICES]
    month = _query_date(request.query.get("month"), "month", month=True)
    days = await services.scheduling.days(
        request.match_info["office"],
        request.match_info["service"],
        month,
        channel=request.query.get("channel"),
        language=request.query.get("language", "de"),
    )
    return web.json_response({"month": month.strftime("%Y-%m"), "days": days})


@citizen_route(
    routes.get,
    "/api/booking/offices/{office}/services/{service}/outlook",
    answers={200: OutlookOut},
    errors=(400, 404),
    params=OFFICE_SERVICE,
)
async def api_outlook(request: web.Request) -> web.Response:
    """The first day with a free slot, or why there is none and which languages have one"""
    services: Services = request.app[SERVICES]
    outlook = await services.scheduling.outlook(
        request.match_info["office"],
        request.match_info["service"],
        channel=request.query.get("channel"),
        language=request.query.get("language", "de"),
    )
    first = outlook.first_free
    return web.json_response(
        {
            "language": outlook.language,
            "first_free_day": first.isoformat() if first else None,
            "first_month": first.strftime("%Y-%m") if first else None,
            "reason": outlook.reason,
            "languages": list(outlook.languages),
            "question_url": "/api/questions" if first is None else None,
        }
    )


@citizen_route(
    routes.get,
    "/api/booking/offices/{office}/services/{service}/slots",
    answers={200: SlotsOut},
    errors=(400, 404),
    params=(*OFFICE_SERVICE, query("date", DATE, required=True)),
)
async def api_slots(request: web.Request) -> web.Response:
    """Free slots of one day"""
    services: Services = request.app[SERVICES]
    day = _query_date(request.query.get("date"), "date")
    slots = await services.scheduling.slots(
        request.match_info["office"],
        request.match_info["service"],
        day,
        channel=request.query.get("channel"),
        language=request.query.get("language", "de"),
    )
    return web.json_response({"date": day.isoformat(), "slots": [s.as_json() for s in slots]})


async def _throttle(request: web.Request) -> None:
    services: Services = request.app[SERVICES]
    if not await services.booking_throttle.allow("booking", request.remote or "?"):
        raise DomainError("rate_limited", "too many booking requests from your address; wait a minute", 429)


@citizen_route(
    routes.post,
    "/api/bookings",
    body=BookingRequest,
    answers={201: BookingView, 200: BookingView},
    errors=(400, 404, 409, 422),
    params=(header("Idempotency-Key", {"type": "string"}, "a repeat gets the first booking (200)"),),
    throttled=True,
)
async def api_book(request: web.Request) -> web.Response:
    """Book a slot; one advisor is assigned (200: a repeat with the same idempotency key)"""
    services: Services = request.app[SERVICES]
    await _throttle(request)
    wanted = await read_model(request, BookingRequest)
    key = request.headers.get("Idempotency-Key", wanted.idempotency_key)
    booked = await services.scheduling.book(
        wanted.office,
        wanted.service,
        wanted.channel,
        wanted.starts_at,
        name=wanted.name,
        email=wanted.email,
        phone=wanted.phone,
        consent=wanted.consent,
        language=wanted.language,
        idempotency_key=key,
    )
    lang = services.pages.lang(request)
    return web.json_response(booking_json(services, booked, lang), status=200 if booked.replayed else 201)


async def _by_token(request: web.Request) -> Booking:
    services: Services = request.app[SERVICES]
    return await services.scheduling.for_token(request.match_info["token"])


TOKEN_ERRORS = (403, 404, 410)  # a forged, unknown or expired manage token


@citizen_route(routes.get, "/api/bookings/{token}", answers={200: BookingView}, errors=TOKEN_ERRORS)
async def api_booking(request: web.Request) -> web.Response:
    """The booking of a manage token"""
    services: Services = request.app[SERVICES]
    booking = await _by_token(request)
    return web.json_response(
        booking_json(services, services.scheduling.booked(booking), services.pages.lang(request))
    )


@citizen_route(
    routes.post,
    "/api/bookings/{token}/cancel",
    answers={200: BookingView},
    errors=(*TOKEN_ERRORS, 409),
)
async def api_cancel(request: web.Request) -> web.Response:
    """Cancel; the slot is free again at once"""
    services: Services = request.app[SERVICES]
    booking = await services.scheduling.cancel(await _by_token(request))
    return web.json_response(
        booking_json(services, services.scheduling.booked(booking), services.pages.lang(request))
    )


@citizen_route(
    routes.post,
    "/api/bookings/{token}/reschedule",
    body=RescheduleIn,
    answers={201: BookingView},
    errors=(*TOKEN_ERRORS, 400, 409),
    throttled=True,
)
async def api_reschedule(request: web.Request) -> web.Response:
    """Move to another slot: the new one is booked first, then the old one freed"""
    services: Services = request.app[SERVICES]
    await _throttle(request)
    moved = await read_model(request, RescheduleIn)
    booked = await services.scheduling.reschedule(await _by_token(request), moved.starts_at)
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


ICS = Raw("the appointment (RFC 5545)", {"text/calendar": {"schema": {"type": "string"}}})


@citizen_route(routes.get, "/api/bookings/{token}/ics", answers={200: ICS}, errors=TOKEN_ERRORS)
async def api_ics(request: web.Request) -> web.Response:
    """The appointment as an iCalendar file"""
    services: Services = request.app[SERVICES]
    booking = await _by_token(request)
    return ics_response(services, booking, services.pages.lang(request))


@citizen_route(routes.get, "/api/bookings/join/{token}", answers={200: JoinOut}, errors=TOKEN_ERRORS)
async def api_join(request: web.Request) -> web.Response:
    """Where the join link stands now: early (with opens_at), open (with waiting_url), over, cancelled"""
    services: Services = request.app[SERVICES]
    booking = await services.scheduling.for_token(request.match_info["token"], JOIN_PURPOSE)
    state = await services.scheduling.join(booking)
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


@staff_route(
    routes.get,
    "/api/staff/appointments",
    auth="staff",
    answers={200: StaffAppointmentsOut},
    errors=(400,),
    params=(
        query("from", DATE, description="default: today"),
        query("days", {"type": "integer", "minimum": 1, "maximum": MAX_STAFF_DAYS, "default": 14}),
    ),
)
async def api_staff_appointments(request: web.Request) -> web.Response:
    """Appointments of the advisor's offices (own first at equal times)"""
    services, member = await staff_member(request, change=False)
    office_tz = next(iter(services.scheduling.offices)).timezone
    today = datetime.fromtimestamp(services.scheduling.clock(), office_tz).date()
    first = _query_date(request.query["from"], "from") if "from" in request.query else today
    try:
        days = int(request.query.get("days", "14"))
    except ValueError:
        days = -1
    if not 1 <= days <= MAX_STAFF_DAYS:
        raise DomainError("invalid_days", f"days must be a whole number from 1 to {MAX_STAFF_DAYS}", 400)
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


@staff_route(
    routes.post,
    "/api/staff/appointments/{booking_id}/no-show",
    auth="staff_change",
    answers={200: StaffAppointment},
    errors=(404, 409),
)
async def api_staff_no_show(request: web.Request) -> web.Response:
    """Mark a begun appointment as no-show"""
    services, member = await staff_member(request, change=True)
    booking = await _staff_booking(request, services, member)
    marked = await services.scheduling.mark_no_show(booking, by=member.username)
    return web.json_response(staff_booking_json(services, marked, member.username))


@staff_route(
    routes.post,
    "/api/staff/appointments/{booking_id}/reschedule",
    auth="staff_change",
    body=RescheduleIn,
    answers={201: StaffAppointment},
    errors=(400, 404, 409),
)
async def api_staff_reschedule(request: web.Request) -> web.Response:
    """Move an appointment"""
    services, member = await staff_member(request, change=True)
    moved = await read_model(request, RescheduleIn)
    booking = await _staff_booking(request, services, member)
    booked = await services.scheduling.reschedule(booking, moved.starts_at, by=member.username)
    return web.json_response(staff_booking_json(services, booked.booking, member.username), status=201)


@staff_route(
    routes.get,
    "/api/staff/appointments/{booking_id}/slots",
    auth="staff",
    answers={200: SlotsOut},
    errors=(400, 403, 404),
    params=(query("date", DATE, required=True),),
)
async def api_staff_slots(request: web.Request) -> web.Response:
    """Free slots of a day for moving an appointment (its own seat counts as free)"""
    services, member = await staff_member(request, change=False)
    day = _query_date(request.query.get("date"), "date")
    booking = await _staff_booking(request, services, member)
    slots = await services.scheduling.slots(
        booking.office, booking.service, day, channel=booking.channel, language=booking.language
    )
    return web.json_response({"date": day.isoformat(), "slots": [s.as_json() for s in slots]})


async def _availability_user(request: web.Request, services: Services, member: Any) -> str:
    """Advisors manage their own availability; an office lead that of their offices' staff, an admin
    anyone's."""
    username = request.query.get("username", member.username)
    if username == member.username or member.role == "admin":
        return username
    other = await services.staff.get(username) if member.role == "lead" else None
    if other is None or not set(other.offices) & set(member.offices):
        raise DomainError("forbidden", "you may only change your own availability or your office's", 403)
    return username


USERNAME = (query("username", {"type": "string"}, description="default: yourself (leads: their staff)"),)


@staff_route(
    routes.get,
    "/api/staff/availability",
    auth="staff",
    answers={200: AvailabilityOut},
    errors=(403,),
    params=USERNAME,
)
async def api_get_availability(request: web.Request) -> web.Response:
    """Weekly pattern and absences"""
    services, member = await staff_member(request, change=False)
    username = await _availability_user(request, services, member)
    found = await services.scheduling.availability.get(username)
    body = found.as_json() if found else {"username": username, "weekly": {}, "absences": []}
    return web.json_response(body)


@staff_route(
    routes.put,
    "/api/staff/availability",
    auth="staff_change",
    body=AvailabilityIn,
    answers={200: AvailabilityOut},
    errors=(400, 403, 404),
    params=USERNAME,
)
async def api_put_availability(request: web.Request) -> web.Response:
    """Replace the weekly pattern and absences"""
    services, member = await staff_member(request, change=True)
    username = await _availability_user(request, services, member)
    if await services.staff.get(username) is None:
        raise DomainError("unknown_user", f"there is no user {username!r}", 404)
    wanted = await read_model(request, AvailabilityIn)
    saved = await services.scheduling.availability.set(parse_availability(username, wanted.as_json()))
    return web.json_response(saved.as_json())
