"""What the chatbot offers a citizen who wants or needs a person: video now, an appointment, a written
question — and where a hand-over goes.

These are the service's rules, not HTTP: a topic is served by its own office, else by the Bürgertelefon,
else by the first office; in the citizen's language when that office advises in it, else in German;
video counts as available only while the office is open and someone online speaks the language; an
appointment is booked on the office's own booking pages when it has bookable services. The HTTP layer
(web/chatbot/api.py) gathers the inputs, calls these functions and returns what they say as JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sprechstunde.rooms import hours
from sprechstunde.rooms.offices import Office, OfficeDirectory
from sprechstunde.rooms.routing import Availability
from sprechstunde.scheduling.catalog import ServiceCatalog

FALLBACK_OFFICE = "buergertelefon"  # topics whose office this city has not configured
ESCALATION_TOPIC = "Chatbot"  # how a hand-over names itself in the advisor's queue
# who is online for (office, language) right now: rooms.queue.QueueService.availability
AvailabilityLookup = Callable[[str, str], Awaitable[Availability]]


def office_for(offices: OfficeDirectory, office_id: str | None) -> Office | None:
    """The topic's office, or the Bürgertelefon (or the first office) when the city has no such office."""
    office = offices.get(office_id) if office_id else None
    if office is None:
        office = offices.get(FALLBACK_OFFICE) or next(iter(offices), None)
    return office


def consultation_language(office: Office, language: str) -> str:
    """The citizen's language when the office offers consultations in it, else German."""
    if language in office.languages:
        return language
    return "de" if "de" in office.languages else office.languages[0]


def appointment_url(catalog: ServiceCatalog | None, office_id: str) -> str:
    """The booking pages of the office when it offers bookable services, else the booking start."""
    bookable = bool(catalog.for_office(office_id)) if catalog is not None else False
    return f"/termin/{quote(office_id)}" if bookable else "/termin"


def queue_topic(title: str | None) -> str:
    """The topic a hand-over shows in the queue: "Reisepass (Chatbot)", or just "Chatbot"."""
    return f"{title} ({ESCALATION_TOPIC})" if title else ESCALATION_TOPIC


async def escalation_offers(
    offices: OfficeDirectory,
    office_id: str | None,
    language: str,
    *,
    now: datetime,
    availability: AvailabilityLookup,
    catalog: ServiceCatalog | None,
    names_in: str,
) -> list[dict[str, Any]]:
    """What the citizen can do instead of chatting, for the topic's office (`office_id`): video now (with
    whether it is possible, whether someone who speaks the conversation's `language` is online for that
    office — the advisor presence the waiting room counts as "Beratung online" — and, when closed, the next
    opening), an appointment, a written question. `names_in` is the language the office's name is shown
    in (the page's)."""
    office = office_for(offices, office_id)
    if office is None:
        return [{"type": "question"}]
    lang = consultation_language(office, language)
    open_now = hours.is_open(office, now)
    online = await availability(office.id, lang)
    # someone online who advises in the citizen's own language (not only in the German stand-in)
    speaks = lang == language and online.advisors_online > 0
    video: dict[str, Any] = {
        "type": "video",
        "office": office.id,
        "office_name": office.name(names_in),
        "language": lang,
        "available": open_now and online.advisors_online > 0,
        "open_now": open_now,
        "advisors_online": online.advisors_online,
        "languages_online": list(online.languages_online),
        "conversation_language": language,
        "language_online": speaks,
    }
    if not open_now:
        opening = hours.next_opening(office, now)
        video["next_opening"] = opening.isoformat() if opening else None
    return [
        video,
        {"type": "appointment", "office": office.id, "url": appointment_url(catalog, office.id)},
        {"type": "question", "office": office.id, "language": lang, "url": "/api/questions"},
    ]
