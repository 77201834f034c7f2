"""After "Nächste Person": the advisor's running consultations (outcome, transfer, guest link), the
office's tickets, citizens' written questions, and office statistics (JSON, CSV, page).

Staff routes need the session cookie and, when they change something, the session's CSRF token in the
`X-CSRF-Token` header (the console and call pages read it from their markup)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from sprechstunde.errors import DomainError
from sprechstunde.l10n import decimal_symbol
from sprechstunde.rooms import statistics
from sprechstunde.rooms.consultations import ConsultationRecord
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import DEFAULT_TIMEZONE
from sprechstunde.rooms.queue import QueueEntry
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.tickets import (
    MAX_TICKET_SEARCH,
    TICKET_STATES,
    TICKET_STATUSES,
    Ticket,
    ticket_filter,
)
from sprechstunde.rooms.views import entry_json
from sprechstunde.web.consultations.ending import consultation_ended, feedback_answers
from sprechstunde.web.consultations.models import (
    BestTimesOut,
    ConsultationsOut,
    FinishIn,
    FinishOut,
    GuestOut,
    QuestionIn,
    QuestionOut,
    StatisticsOut,
    TicketChangeIn,
    TicketsOut,
    TicketView,
    TransferIn,
    TransferOut,
)
from sprechstunde.web.core.errors import json_errors
from sprechstunde.web.core.models import read_model
from sprechstunde.web.core.openapi import api_route, query
from sprechstunde.web.core.services import CSRF_HEADER, SERVICES, Services
from sprechstunde.web.waiting.models import no_office

routes = web.RouteTableDef()
STATS_ROLES = ("lead", "admin")
MAX_STATS_DAYS = 366
DEFAULT_STATS_DAYS = 28


async def staff_member(request: web.Request, *, change: bool) -> tuple[Services, StaffMember]:
    """The signed-in staff member; a state-changing request must also carry the CSRF token."""
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise DomainError("not_authenticated", "sign in as staff first", 401)
    if change and not services.has_csrf_header(request):
        raise DomainError("csrf", f"missing or wrong {CSRF_HEADER} header", 403)
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


@api_route(
    routes.get, "/api/consultations", tag="consultations", auth="staff", answers={200: ConsultationsOut}
)
async def api_consultations(request: web.Request) -> web.Response:
    """The advisor's running consultations (admitted, no outcome yet), newest first"""
    services, member = await staff_member(request, change=False)
    entries = await services.queue.serving(member)
    return web.json_response({"consultations": [await _consultation_json(services, e) for e in entries]})


@api_route(
    routes.post,
    "/api/consultations/{entry_id}/finish",
    tag="consultations",
    auth="staff_change",
    body=FinishIn,
    answers={200: FinishOut},
    errors=(400, 404, 409),
)
async def api_finish(request: web.Request) -> web.Response:
    """End a consultation as resolved, ticket (opens a follow-up ticket) or no_show"""
    services, member = await staff_member(request, change=True)
    finish = await read_model(request, FinishIn)
    done = await services.queue.finish(
        member, request.match_info["entry_id"], finish.outcome, notes=finish.notes
    )
    await consultation_ended(services, done)  # the citizen's end screen (web/consultations/ending.py)
    return web.json_response(
        {
            "entry_id": done.entry.entry_id,
            "outcome": done.outcome,
            "wait_seconds": round(done.wait_seconds),
            "handling_seconds": round(done.handling_seconds),
            "ticket": _ticket_json(done.ticket, services) if done.ticket else None,
        }
    )


@api_route(
    routes.post,
    "/api/consultations/{entry_id}/transfer",
    tag="consultations",
    auth="staff_change",
    body=TransferIn,
    answers={200: TransferOut},
    errors=(400, 404, 409),
)
async def api_transfer(request: web.Request) -> web.Response:
    """Send the citizen into another office's queue, with a note for the colleagues there"""
    services, member = await staff_member(request, change=True)
    transfer = await read_model(request, TransferIn)
    office = transfer.office
    before = await services.queue.get(request.match_info["entry_id"])
    if office not in services.waiting.offices:
        raise no_office(office)
    moved = await services.queue.transfer(
        member,
        request.match_info["entry_id"],
        office,
        note=transfer.note,
        language=transfer.language,
    )
    if before is not None and before.room_id:
        # The citizen's call page goes back to the waiting room (docs/protocol.md, "transferred").
        target = services.waiting.offices.require(office)
        await services.hub.publish(
            before.room_id,
            {"type": "transferred", "office": {"id": target.id, "name": target.name(moved.language)}},
        )
    view = entry_json(moved, services.waiting.offices, services.waiting.clock(), staff=True)
    return web.json_response({"entry": view})


@api_route(
    routes.post,
    "/api/consultations/{entry_id}/guest",
    tag="consultations",
    auth="staff_change",
    answers={201: GuestOut},
    errors=(409,),
)
async def api_guest(request: web.Request) -> web.Response:
    """A link for an interpreter or a colleague into the running consultation's room"""
    services, member = await staff_member(request, change=True)
    entry = await services.queue.get(request.match_info["entry_id"])
    serving = entry is not None and entry.state == "called" and entry.claimed_by == member.username
    room = await services.rooms.get(entry.room_id) if serving and entry.room_id else None
    if room is None:
        raise QueueError("not_claimed", "you are not serving this citizen", 409)
    return web.json_response(
        {
            "guest_url": services.rooms.link(room, "guest", services.config.public_url),
            "expires_at": _iso(room.expires_at),
        },
        status=201,
    )


# the ?office= of the staff lists: one of the member's offices, or all of them when left out
YOUR_OFFICES = query("office", {"type": "string"}, description="one office; default: all of yours")


# --- tickets and questions ------------------------------------------------------------------------


@api_route(
    routes.get,
    "/api/tickets",
    tag="consultations",
    auth="staff",
    answers={200: TicketsOut},
    errors=(400, 403),
    params=(
        query("status", {"enum": list(TICKET_STATUSES)}),
        query(
            "state",
            {"enum": list(TICKET_STATES), "default": "all"},
            description="open (open or in progress), closed (done) or all",
        ),
        query(
            "q",
            {"type": "string", "maxLength": MAX_TICKET_SEARCH},
            description="text in the reference, topic, notes or contact (case-insensitive)",
        ),
        YOUR_OFFICES,
    ),
)
async def api_tickets(request: web.Request) -> web.Response:
    """Tickets of the member's offices (admins: all), newest first; closed ones too, to find them again"""
    services, member = await staff_member(request, change=False)
    status = request.query.get("status") or None
    if status is not None and status not in TICKET_STATUSES:
        raise DomainError("invalid_status", f"status must be one of {', '.join(TICKET_STATUSES)}", 400)
    wanted = ticket_filter(request.query.get("state"), request.query.get("q"))
    offices = _visible_offices(services, member, request.query.get("office"))
    tickets = [
        t for office in offices for t in await services.queue.tickets.for_office(office, status) if wanted(t)
    ]
    tickets.sort(key=lambda t: (t.created_at, t.reference), reverse=True)
    return web.json_response({"tickets": [_ticket_json(t, services) for t in tickets]})


@api_route(
    routes.patch,
    "/api/tickets/{reference}",
    tag="consultations",
    auth="staff_change",
    body=TicketChangeIn,
    answers={200: TicketView},
    errors=(400, 404),
)
async def api_update_ticket(request: web.Request) -> web.Response:
    """Change a ticket's status and/or notes"""
    services, member = await staff_member(request, change=True)
    change = await read_model(request, TicketChangeIn)
    ticket = await services.queue.tickets.update(
        member, request.match_info["reference"], status=change.status, notes=change.notes
    )
    return web.json_response(_ticket_json(ticket, services))


@api_route(
    routes.post,
    "/api/questions",
    tag="waiting-room",
    body=QuestionIn,
    answers={201: QuestionOut},
    errors=(400,),
    throttled=True,
)
async def api_question(request: web.Request) -> web.Response:
    """Leave a question in writing (e.g. outside service hours); opens a ticket"""
    services: Services = request.app[SERVICES]
    if not await services.queue_throttle.allow("question", request.remote or "?"):
        raise DomainError("rate_limited", "too many requests from your address; wait a minute", 429)
    question = await read_model(request, QuestionIn)
    office = question.office
    if office not in services.waiting.offices:
        raise no_office(office)
    ticket = await services.queue.ask(
        office, question.language, question.topic, question.question, question.contact
    )
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
            raise DomainError("unknown_office", f"there is no office {wanted[:40]!r}", 400)
        if wanted not in mine:
            raise DomainError("forbidden_office", "you are not staff of this office", 403)
        return [wanted]
    return mine


def _day(value: str | None, default: date, name: str) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise DomainError("invalid_date", f"{name} must be a date like 2026-11-24", 400) from None


async def statistics_records(
    request: web.Request,
) -> tuple[list[ConsultationRecord], dict[str, Any]]:
    """The consultation records an office lead asked for (`office`, `from`, `to` query parameters)."""
    services, member = await staff_member(request, change=False)
    if member.role not in STATS_ROLES:
        raise DomainError("forbidden_role", "statistics are for office leads and admins", 403)
    offices = _visible_offices(services, member, request.query.get("office"))
    last = _day(request.query.get("to"), _today(services), "to")
    first = _day(request.query.get("from"), last - timedelta(days=DEFAULT_STATS_DAYS - 1), "from")
    if first > last or (last - first).days >= MAX_STATS_DAYS:
        raise DomainError(
            "invalid_range", f"from..to must be in order and at most {MAX_STATS_DAYS} days", 400
        )
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
        "feedback_count": row.feedback_count,
        "feedback_average": row.feedback_average,
        "feedback_distribution": {str(score): row.feedback.get(score, 0) for score in statistics.SCORES},
        "channels": {name: _channel_json(figures) for name, figures in row.channels.items()},
    }


def _channel_json(figures: statistics.ChannelStats) -> dict[str, Any]:
    return {
        "queued": figures.queued,
        "consultations": figures.consultations,
        "resolved": figures.resolved,
        "tickets": figures.tickets,
        "abandoned": figures.abandoned,
        "resolved_first_contact": figures.resolved_rate,
        "abandoned_rate": figures.abandoned_rate,
        "wait_p50_seconds": figures.wait_p50,
        "wait_average_seconds": figures.wait_average,
    }


DAY_QUERY = {"type": "string", "format": "date", "examples": ["2026-11-24"]}


@api_route(
    routes.get,
    "/api/statistics",
    tag="statistics",
    auth="staff",
    answers={200: StatisticsOut},
    errors=(400, 403),
    params=(
        YOUR_OFFICES,
        query("from", DAY_QUERY, description=f"default: {DEFAULT_STATS_DAYS} days before `to`"),
        query("to", DAY_QUERY, description="default: today"),
    ),
)
async def api_statistics(request: web.Request) -> web.Response:
    """Daily and total figures of the offices (office leads and admins)"""
    records, query = await statistics_records(request)
    answers = await feedback_answers(request.app[SERVICES], query)
    total = _row_json(statistics.summarize("", "", records, answers))
    del total["day"], total["office"]
    days = [_row_json(r) for r in statistics.daily(records, answers)]
    return web.json_response(query | {"total": total, "days": days})


@routes.get("/statistics.csv")
@json_errors  # a download of the API's rows: its errors are the API's JSON too
async def statistics_csv(request: web.Request) -> web.Response:
    records, query = await statistics_records(request)
    rows = statistics.daily(records, await feedback_answers(request.app[SERVICES], query))
    name = f"sprechstunde-{'-'.join(query['offices']) if len(query['offices']) == 1 else 'alle'}"
    # German (the page's language, or ?lang=de): ";" and decimal commas behind a UTF-8 BOM, which is
    # what German Excel needs to open the file as columns; ?lang=en: the machine variant, "," and "."
    # without a BOM (docs/operations.md, "Statistics export").
    lang = request.app[SERVICES].pages.lang(request)
    text = statistics.to_csv(rows, lang)
    return web.Response(
        text=("\ufeff" + text) if decimal_symbol(lang) == "," else text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-{query["from"]}-{query["to"]}.csv"'},
    )


@api_route(
    routes.get,
    "/api/best-times",
    tag="waiting-room",
    answers={200: BestTimesOut},
    errors=(400,),
    params=(query("office", {"type": "string"}, description="default: all offices"),),
)
async def api_best_times(request: web.Request) -> web.Response:
    """Arrival hours with the shortest median wait in the last 4 weeks (the start page's "Beste Zeiten")"""
    services: Services = request.app[SERVICES]
    office = request.query.get("office") or None
    if office is not None and office not in services.waiting.offices:
        raise DomainError("unknown_office", f"there is no office {office[:40]!r}", 400)
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
