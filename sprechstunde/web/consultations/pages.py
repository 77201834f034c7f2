"""The office lead's statistics page: a table per day, load per hour as a server-rendered SVG chart,
and the CSV export of the same rows (definitions in rooms/statistics.py)."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from sprechstunde.l10n import decimal_text, percent_text, short_day_text
from sprechstunde.rooms import statistics
from sprechstunde.web.consultations.api import STATS_ROLES, statistics_records
from sprechstunde.web.consultations.charts import hourly_bars
from sprechstunde.web.consultations.ending import feedback_answers
from sprechstunde.web.core.errors import page_errors
from sprechstunde.web.core.services import SERVICES, Services
from sprechstunde.web.core.staff_display import office_name

routes = web.RouteTableDef()


def _minutes(seconds: float | None, lang: str) -> str:
    """Minutes with one decimal in the page's language ("4,5" / "4.5"); a dash when undefined."""
    return "–" if seconds is None else decimal_text(seconds / 60, lang, 1)


def _percent(value: float | None, lang: str) -> str:
    """A share as the page's language writes a percentage ("95 %" / "95%"); a dash when undefined."""
    return "–" if value is None else percent_text(value, lang)


@routes.get("/statistics")
@page_errors("stats.bad_query")
async def statistics_page(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    member = await services.current_staff(request)
    if member is None:
        raise web.HTTPSeeOther("/login")
    if member.role not in STATS_ROLES:
        return services.pages.error(request, 403, "stats.forbidden")
    records, query = await statistics_records(request)
    answers = await feedback_answers(services, query)
    rows = statistics.daily(records, answers)
    lang = services.pages.lang(request)
    offices = [o for o in services.waiting.offices if o.id in query["offices"]] if query["offices"] else []
    visible = [o for o in services.waiting.offices if member.role == "admin" or o.id in member.offices]
    return services.pages.render(
        request,
        "statistics.html",
        rows=rows,
        total=statistics.summarize("", "", records, answers),
        chart=hourly_bars(statistics.load_per_hour(rows)),
        # video and phone side by side per office; left out while nobody has called (all would be video)
        channels=statistics.by_channel(records) if statistics.has_phone(records) else [],
        query=query,
        chosen=request.query.get("office", ""),
        offices=[(o.id, o.name(lang)) for o in visible],
        shown=", ".join(o.name(lang) for o in offices),
        minutes=lambda seconds: _minutes(seconds, lang),
        day=lambda iso: short_day_text(date.fromisoformat(iso), lang),  # "Di., 24.11.2026"
        office_name=lambda office_id: office_name(services.waiting.offices, office_id, lang),
        percent=lambda value: _percent(value, lang),
        rating=lambda value: "–" if value is None else decimal_text(value, lang, 1),  # survey mean, 1–5
        scores=statistics.SCORES,
        csv_query=request.query_string,
    )
