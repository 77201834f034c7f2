"""The five pages every city publishes, linked from every page's footer (templates/_city_footer.html):
/barrierefreiheit (with the feedback form), /leichte-sprache, /gebaerdensprache, /datenschutz, /impressum.

The feedback form works without JavaScript. Its message becomes a ticket of the office the city file names
(`accessibility.feedback_office`), source "accessibility", in the office's console and GET /api/tickets;
the citizen reads the ticket's reference on the page. Like the booking form (web/booking/pages.py) it
carries a signed nonce instead of a CSRF token — citizens have no session — which also makes a reload of
the POST show the same reference instead of opening a second ticket; a POST from another site is refused
as the sign-in refuses it (web/core/services.py cross_site). It counts against the same per-network
budget as written questions (POST /api/questions). A refused message shows the form again, filled in, with
the reason (400, 403, 429).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from sprechstunde.l10n import day_text
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.intake import MAX_CONTACT, MAX_QUESTION, check_contact
from sprechstunde.rooms.queue_records import ENTRY_TTL
from sprechstunde.rooms.staff import SESSION_TTL
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.rooms.tickets import check_notes
from sprechstunde.rooms.tokens import TokenError
from sprechstunde.web.city.settings import CityPages, Shown, load_city_pages
from sprechstunde.web.core.api import read_form
from sprechstunde.web.core.security import CSP
from sprechstunde.web.core.services import SERVICES, Services, cross_site

routes = web.RouteTableDef()
CITY = web.AppKey("city_pages", CityPages)
# Ticket.source of the form's tickets; the console names it (console.tickets.source.accessibility)
FEEDBACK_SOURCE = "accessibility"
FEEDBACK_PURPOSE = "city-feedback"
FEEDBACK_KIND = "city-feedback"  # nonce → the ticket it opened, so a reload shows the same reference
FEEDBACK_TTL = 2 * 3600
MAX_WHERE = 300
TOPIC = "Barrierefreiheit"
# the footer's links, in its order: (path, catalog key of the link text)
FOOTER = (
    ("/barrierefreiheit", "legal.footer.accessibility"),
    ("/leichte-sprache", "legal.footer.easy"),
    ("/gebaerdensprache", "legal.footer.sign"),
    ("/datenschutz", "legal.footer.privacy"),
    ("/impressum", "legal.footer.imprint"),
)


def _days(value: float) -> str:
    return f"{value:g}"


def city_values(services: Services) -> dict[str, str]:
    """The {placeholders} of the city texts: the retention times this server runs with."""
    config = services.config
    return {
        "retention_days": _days(config.retention_days),
        "metadata_days": _days(config.metadata_days),
        "ticket_retention_days": _days(config.ticket_retention_days),
        "booking_retention_days": _days(services.booking_mailer.retention_days),
        "waiting_hours": _days(ENTRY_TTL / 3600),
        "chat_days": _days(config.chat_retention_days),
        "chat_hours": _days(config.chat_retention_days * 24),  # city files written before chat_days
        "session_hours": _days(SESSION_TTL / 3600),
    }


def load_for(services: Services) -> CityPages:
    """The city file of `services.config`, checked against its offices (start-up: CityConfigError)."""
    return load_city_pages(
        services.config.city_path,
        data_dir=services.config.data_dir,
        offices=[office.id for office in services.waiting.offices],
        values=city_values(services),
    )


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    services: Services = request.app[SERVICES]
    city = request.app[CITY]
    lang = services.pages.lang(request)
    response = services.pages.render(
        request,
        template,
        status,
        city=city,
        # a city text shown in German on a page in another language: the page says so once, at the top
        german_note=any(shown.lang != lang for shown in _shown(context.values())),
        **context,
    )
    response.headers["Cache-Control"] = "no-store" if request.method == "POST" else "no-cache"
    return response


def _shown(values: Iterable[Any]) -> Iterator[Shown]:
    """Every city text among a page's context values (also inside lists of texts or of sections)."""
    for value in values:
        if isinstance(value, Shown):
            yield value
        elif isinstance(value, list | tuple):
            yield from _shown(value)


# --- the accessibility statement and its feedback form --------------------------------------------------


def _nonce(services: Services) -> str:
    expires = int(time.time() + FEEDBACK_TTL)  # the signer checks "exp" against time.time
    return services.signer.sign(FEEDBACK_PURPOSE, {"n": secrets.token_urlsafe(16), "exp": expires})


async def _statement(
    request: web.Request,
    status: int = 200,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
    reference: str | None = None,
) -> web.Response:
    services: Services = request.app[SERVICES]
    city = request.app[CITY]
    lang = services.pages.lang(request)
    statement = city.file.accessibility
    office = services.waiting.offices.require(statement.feedback_office)
    return _render(
        request,
        "city_accessibility.html",
        status,
        statement=statement,
        prepared=day_text(statement.prepared, lang),
        reviewed=day_text(statement.reviewed, lang),
        scope=city.text(statement.scope, lang),
        method_note=city.text(statement.method_note, lang),
        gaps=[city.text(gap, lang) for gap in statement.gaps],
        alternatives=city.text(statement.alternatives, lang),
        contact=city.text(statement.contact, lang),
        conciliation=statement.conciliation,
        conciliation_name=city.text(statement.conciliation.name, lang),
        conciliation_address=city.text(statement.conciliation.address, lang),
        enforcement=city.text(statement.enforcement or city.defaults.enforcement, lang),
        public_url=services.config.public_url,
        office_name=office.name(lang),
        nonce=_nonce(services),
        form=form or {},
        error=error,
        reference=reference,
        max_message=MAX_QUESTION,
        max_contact=MAX_CONTACT,
        max_where=MAX_WHERE,
    )


@routes.get("/barrierefreiheit")
async def accessibility(request: web.Request) -> web.Response:
    return await _statement(request)


@routes.post("/barrierefreiheit")
async def feedback(request: web.Request) -> web.Response:
    """A barrier reported through the form: a ticket of the feedback office, its reference shown."""
    services: Services = request.app[SERVICES]
    city = request.app[CITY]
    statement = city.file.accessibility
    form = await read_form(request)
    values = {key: str(form.get(key, ""))[: MAX_QUESTION + 100] for key in ("message", "where", "contact")}
    try:
        if cross_site(request, services.config.public_url):
            raise QueueError("cross_site", "the form was sent from another site", 403)
        if not await services.queue_throttle.allow("question", request.remote or "?"):
            raise QueueError("rate_limited", "too many requests", 429)
        try:
            nonce = services.signer.verify(FEEDBACK_PURPOSE, str(form.get("nonce", "")))["n"]
        except TokenError:
            raise QueueError("form_expired", "the form has expired; send it again") from None
        done = await services.store.get(FEEDBACK_KIND, nonce)
        if done is not None and done.get("reference"):
            return await _statement(request, reference=done["reference"])
        message, contact, where = _checked(values, statement.contact_required)
        if not await services.store.create(FEEDBACK_KIND, nonce, {"reference": None}, ttl=FEEDBACK_TTL):
            raise QueueError("form_used", "this form was sent already")
        ticket = await _open_ticket(services, request, statement.feedback_office, message, where, contact)
        await services.store.put(FEEDBACK_KIND, nonce, {"reference": ticket.reference}, ttl=FEEDBACK_TTL)
    except QueueError as exc:
        return await _statement(request, exc.status, form=values, error=exc.code)
    return await _statement(request, reference=ticket.reference)


def _checked(values: dict[str, str], contact_required: bool) -> tuple[str, str | None, str]:
    """The message, the contact (None when left out and not required) and the page it is about — by the
    rules the written questions follow (rooms/intake.py, rooms/tickets.py)."""
    message = strip_bidi(values["message"]).strip()
    if not message:
        raise QueueError("empty_message", "describe the barrier")
    message = check_notes(message, MAX_QUESTION)
    where = strip_bidi(values["where"]).strip()
    if len(where) > MAX_WHERE:
        raise QueueError("where_too_long", f"at most {MAX_WHERE} characters")
    contact = None
    if values["contact"].strip() or contact_required:
        contact = check_contact(values["contact"])
    return message, contact, where


async def _open_ticket(
    services: Services, request: web.Request, office_id: str, message: str, where: str, contact: str | None
) -> Any:
    office = services.waiting.offices.require(office_id)
    lang = services.pages.lang(request)
    notes = message if not where else f"{message}\n\nSeite: {where}"
    return await services.queue.tickets.open(
        office.id,
        check_notes(notes, MAX_QUESTION + MAX_WHERE + 10),
        language=lang if lang in office.languages else "de",
        topic=TOPIC,
        source=FEEDBACK_SOURCE,
        contact=contact,
    )


# --- Leichte Sprache, sign language, privacy notice, imprint ---------------------------------------------


@routes.get("/leichte-sprache")
async def easy_language(request: web.Request) -> web.Response:
    city = request.app[CITY]
    easy = city.file.easy_language
    sections = city.sections(easy.sections, city.defaults.easy_language, "de", easy.separator)
    return _render(request, "city_easy.html", sections=sections)


@routes.get("/gebaerdensprache")
async def sign_language(request: web.Request) -> web.Response:
    city = request.app[CITY]
    lang = request.app[SERVICES].pages.lang(request)
    sign = city.file.sign_language
    response = _render(
        request,
        "city_sign.html",
        video=city.video,
        captions=city.captions,
        transcript=city.text(sign.transcript, lang),
        contact=city.text(sign.contact, lang),
    )
    origins = {source.origin for source in (city.video, city.captions) if source and source.origin}
    if origins:
        # the city's own video host, for this page only (every other page keeps media-src 'self')
        extra = " ".join(sorted(origins))
        response.headers["Content-Security-Policy"] = CSP.replace(
            "media-src 'self' blob:", f"media-src 'self' blob: {extra}"
        )
    return response


async def _media_file(request: web.Request, which: str) -> web.StreamResponse:
    source = getattr(request.app[CITY], which)
    if source is None or source.path is None:
        raise web.HTTPNotFound()
    path: Path = source.path
    if not path.is_file():  # removed after start-up
        raise web.HTTPNotFound()
    return web.FileResponse(
        path, headers={"Content-Type": source.media_type, "Cache-Control": "max-age=3600"}
    )


@routes.get("/gebaerdensprache/video")
async def sign_video(request: web.Request) -> web.StreamResponse:
    return await _media_file(request, "video")


@routes.get("/gebaerdensprache/untertitel.vtt")
async def sign_captions(request: web.Request) -> web.StreamResponse:
    return await _media_file(request, "captions")


@routes.get("/datenschutz")
async def privacy(request: web.Request) -> web.Response:
    city = request.app[CITY]
    lang = request.app[SERVICES].pages.lang(request)
    notice = city.file.privacy
    return _render(
        request,
        "city_privacy.html",
        controller=city.text(notice.controller, lang),
        officer=city.text(notice.officer, lang),
        authority=city.text(notice.authority, lang),
        sections=city.sections(notice.sections, city.defaults.privacy, lang),
    )


@routes.get("/impressum")
async def imprint(request: web.Request) -> web.Response:
    city = request.app[CITY]
    lang = request.app[SERVICES].pages.lang(request)
    return _render(request, "city_imprint.html", sections=city.sections(city.file.imprint.sections, [], lang))
