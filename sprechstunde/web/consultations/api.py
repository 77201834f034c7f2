"""After "Nächste Person": the advisor's running consultations (outcome, transfer, guest link), the
office's tickets, citizens' written questions, and office statistics (JSON, CSV, page).

Staff routes need the session cookie and, when they change something, the session's CSRF token in the
`X-CSRF-Token` header (the console and call pages read it from their markup)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from sprechstunde.rooms import statistics
from sprechstunde.rooms.consultations import ConsultationRecord
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import DEFAULT_TIMEZONE
from sprechstunde.rooms.queue import QueueEntry
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.tickets import TICKET_STATUSES, Ticket
from sprechstunde.signaling.waiting import entry_json
from sprechstunde.web.core.api import read_json
from sprechstunde.web.core.security import ApiError
from sprechstunde.web.core.services import CSRF_HEADER, SERVICES, Services
from sprechstunde.web.waiting.api import queue_error

routes = web.RouteTableDef()
STATS_ROLES = ("lead", "admin")
MAX_STATS_DAYS = 366
DEFAULT_STATS_DAYS = 28


async def staff_member(request: web.Request, *, change: bool) -> tuple[Services, StaffMember]:
    """The signed-in staff member; a state-changing request must also carry the CSRF token."""
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise ApiError(401, "not_authenticated", "sign in as staff first")
    if change and not services.has_csrf_header(request):
        raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
    return services, member


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _today(services: Services) -> date:
    """Today in the city's time zone (statistics days are local days)."""
    return datetime.fromtimestamp(services.waiting.clock(), ZoneInfo(DEFAULT_TIMEZONE)).date()


def _ticket_json(ticket: Ticket, services: Services) -> dict[str, Any]:
    office = services.waiting.offices.get(ticket.office)
    return {
        "reference": ticket.reference,
        "office": ticket.office,
        "office_name": office.name("de") if office else ticket.office,
        "status": ticket.status,
        "source": ticket.source,
        "topic": ticket.topic,
        "language": ticket.language,
        "notes": ticket.notes,
        "contact": ticket.contact,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
    }


async def _consultation_json(services: Services, entry: QueueEntry) -> dict[str, Any]:
    view = entry_json(entry, services.waiting.offices, services.waiting.clock(), staff=True)
    room = await services.rooms.get(entry.room_id) if entry.room_id else None
    view["room_id"] = entry.room_id
    view["advisor_url"] = services.rooms.link(room, "advisor", "") if room else None
    return view


# --- running consultations ------------------------------------------------------------------------


@routes.get("/api/consultations")
async def api_consultations(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=False)
    entries = await services.queue.serving(member)
    return web.json_response({"consultations": [await _consultation_json(services, e) for e in entries]})


@routes.post("/api/consultations/{entry_id}/finish")
async def api_finish(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=True)
    data = await read_json(request)
    try:
        done = await services.queue.finish(
            member, request.match_info["entry_id"], data.get("outcome"), notes=data.get("notes")
        )
    except QueueError as exc:
        return queue_error(exc)
    await services.waiting.events.notify()
    return web.json_response(
        {
            "entry_id": done.entry.entry_id,
            "outcome": done.outcome,
            "wait_seconds": round(done.wait_seconds),
            "handling_seconds": round(done.handling_seconds),
            "ticket": _ticket_json(done.ticket, services) if done.ticket else None,
        }
    )


@routes.post("/api/consultations/{entry_id}/transfer")
async def api_transfer(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=True)
    data = await read_json(request)
    office = data.get("office")
    before = await services.queue.get(request.match_info["entry_id"])
    try:
        if not isinstance(office, str) or office not in services.waiting.offices:
            raise QueueError("unknown_office", f"there is no office {str(office)[:40]!r}", 400)
        moved = await services.queue.transfer(
            member,
            request.match_info["entry_id"],
            office,
            note=data.get("note"),
            language=data.get("language"),
        )
    except QueueError as exc:
        return queue_error(exc)
    await services.waiting.events.notify()
    if before is not None and before.room_id:
        # The citizen's call page goes back to the waiting room (docs/protocol.md, "transferred").
        target = services.waiting.offices.require(office)
        await services.hub.publish(
            before.room_id,
            {"type": "transferred", "office": {"id": target.id, "name": target.name(moved.language)}},
        )
    view = entry_json(moved, services.waiting.offices, services.waiting.clock(), staff=True)
    return web.json_response({"entry": view})


@routes.post("/api/consultations/{entry_id}/guest")
async def api_guest(request: web.Request) -> web.Response:
    """A link for an interpreter or a colleague into the running consultation's room."""
    services, member = await staff_member(request, change=True)
    entry = await services.queue.get(request.match_info["entry_id"])
    serving = entry is not None and entry.state == "called" and entry.claimed_by == member.username
    room = await services.rooms.get(entry.room_id) if serving and entry.room_id else None
    if room is None:
        return queue_error(QueueError("not_claimed", "you are not serving this citizen", 409))
    return web.json_response(
        {
            "guest_url": services.rooms.link(room, "guest", services.config.public_url),
            "expires_at": _iso(room.expires_at),
        },
        status=201,
    )


# --- tickets and questions ------------------------------------------------------------------------


@routes.get("/api/tickets")
async def api_tickets(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=False)
    status = request.query.get("status") or None
    if status is not None and status not in TICKET_STATUSES:
        raise ApiError(400, "invalid_status", f"status must be one of {', '.join(TICKET_STATUSES)}")
    offices = _visible_offices(services, member, request.query.get("office"))
    tickets = [t for office in offices for t in await services.queue.tickets.for_office(office, status)]
    tickets.sort(key=lambda t: (t.created_at, t.reference), reverse=True)
    return web.json_response({"tickets": [_ticket_json(t, services) for t in tickets]})


@routes.patch("/api/tickets/{reference}")
async def api_update_ticket(request: web.Request) -> web.Response:
    services, member = await staff_member(request, change=True)
    data = await read_json(request)
    if "status" not in data and "notes" not in data:
        raise ApiError(400, "nothing_to_change", 'send "status" and/or "notes"')
    try:
        ticket = await services.queue.tickets.update(
            member, request.match_info["reference"], status=data.get("status"), notes=data.get("notes")
        )
    except QueueError as exc:
        return queue_error(exc)
    return web.json_response(_ticket_json(ticket, services))


@routes.post("/api/questions")
async def api_question(request: web.Request) -> web.Response:
    """A citizen's question in writing → a ticket reference; used when the office is closed."""
    services: Services = request.app[SERVICES]
    if not await services.queue_throttle.allow("question", request.remote or "?"):
        raise ApiError(429, "rate_limited", "too many requests from your address; wait a minute")
    data = await read_json(request)
    office = data.get("office")
    try:
        if not isinstance(office, str) or office not in services.waiting.offices:
            raise QueueError("unknown_office", f"there is no office {str(office)[:40]!r}", 400)
        ticket = await services.queue.ask(
            office, data.get("language"), data.get("topic"), data.get("question"), data.get("contact")
        )
    except QueueError as exc:
        return queue_error(exc)
    the_office = services.waiting.offices.require(office)
    lang = services.pages.lang(request)
    return web.json_response(
        {"reference": ticket.reference, "office": {"id": office, "name": the_office.name(lang)}}, status=201
    )


# --- statistics -------------------------------------------------------------------------------------


def _visible_offices(services: Services, member: StaffMember, wanted: str | None) -> list[str]:
    """The offices whose tickets/statistics `member` may see (admins: all), narrowed to `wanted`."""
    mine = [o.id for o in services.waiting.offices] if member.role == "admin" else list(member.offices)
    if wanted:
        if wanted not in services.waiting.offices:
            raise ApiError(400, "unknown_office", f"there is no office {wanted[:40]!r}")
        if wanted not in mine:
            raise ApiError(403, "forbidden_office", "you are not staff of this office")
        return [wanted]
    return mine


def _day(value: str | None, default: date, name: str) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_date", f"{name} must be a date like 2026-11-24") from None


async def statistics_records(
    request: web.Request,
) -> tuple[list[ConsultationRecord], dict[str, Any]]:
    """The consultation records an office lead asked for (`office`, `from`, `to` query parameters)."""
    services, member = await staff_member(request, change=False)
    if member.role not in STATS_ROLES:
        raise ApiError(403, "forbidden_role", "statistics are for office leads and admins")
    offices = _visible_offices(services, member, request.query.get("office"))
    last = _day(request.query.get("to"), _today(services), "to")
    first = _day(request.query.get("from"), last - timedelta(days=DEFAULT_STATS_DAYS - 1), "from")
    if first > last or (last - first).days >= MAX_STATS_DAYS:
        raise ApiError(400, "invalid_range", f"from..to must be in order and at most {MAX_STATS_DAYS} days")
    records = [r for office in offices for r in await services.queue.log.records(first, last, office)]
    query = {"offices": offices, "from": first.isoformat(), "to": last.isoformat()}
    return records, query


def _row_json(row: statistics.DayStats) -> dict[str, Any]:
    return {
        "day": row.day,
        "office": row.office,
        "queued": row.queued,
        "consultations": row.consultations,
        "resolved": row.resolved,
        "tickets": row.tickets,
        "no_shows": row.no_shows,
        "abandoned": row.abandoned,
        "resolved_first_contact": row.resolved_rate,
        "abandoned_rate": row.abandoned_rate,
        "wait_p50_seconds": row.wait_p50,
        "wait_p90_seconds": row.wait_p90,
        "handling_p50_seconds": row.handling_p50,
        "load_per_hour": {str(hour): count for hour, count in row.load_per_hour.items()},
    }


@routes.get("/api/statistics")
async def api_statistics(request: web.Request) -> web.Response:
    records, query = await statistics_records(request)
    total = _row_json(statistics.summarize("", "", records))
    del total["day"], total["office"]
    days = [_row_json(r) for r in statistics.daily(records)]
    return web.json_response(query | {"total": total, "days": days})


@routes.get("/statistics.csv")
async def statistics_csv(request: web.Request) -> web.Response:
    records, query = await statistics_records(request)
    rows = statistics.daily(records)
    name = f"sprechstunde-{'-'.join(query['offices']) if len(query['offices']) == 1 else 'alle'}"
    return web.Response(
        text=statistics.to_csv(rows),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{query["from"]}-{query["to"]}.csv"'},
    )


@routes.get("/api/best-times")
async def api_best_times(request: web.Request) -> web.Response:
    """The start page's "Beste Zeiten": arrival hours with the shortest waits over the last 4 weeks."""
    services: Services = request.app[SERVICES]
    office = request.query.get("office") or None
    if office is not None and office not in services.waiting.offices:
        raise ApiError(400, "unknown_office", f"there is no office {office[:40]!r}")
    first, last = statistics.day_range(_today(services), statistics.BEST_HOURS_DAYS)
    records = await services.queue.log.records(first, last, office)
    hours = statistics.best_hours(records)
    return web.json_response(
        {
            "office": office,
            "days": statistics.BEST_HOURS_DAYS,
            "hours": [
                {"hour": b.hour, "median_wait_seconds": round(b.median_wait), "samples": b.samples}
                for b in hours
            ],
        }
    )
