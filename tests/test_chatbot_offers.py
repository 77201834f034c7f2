"""The chatbot's offers as domain rules (sprechstunde/chatbot/offers.py), without HTTP: which office and
language a hand-over goes to, when video counts as available, where to book."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sprechstunde.chatbot.offers import (
    appointment_url,
    consultation_language,
    escalation_offers,
    office_for,
    queue_topic,
)
from sprechstunde.rooms.offices import load_offices
from sprechstunde.rooms.routing import Availability
from sprechstunde.scheduling.catalog import load_services

BERLIN = ZoneInfo("Europe/Berlin")
OFFICES = load_offices()
OPEN = datetime(2026, 3, 10, 10, 0, tzinfo=BERLIN)  # a Tuesday morning: every demo office is open
NIGHT = datetime(2026, 3, 10, 22, 0, tzinfo=BERLIN)


def online(count: int):
    async def availability(office: str, language: str) -> Availability:
        return Availability(office, language, count, ("de",) if count else ())

    return availability


def test_a_topic_goes_to_its_office_else_the_hotline_and_in_a_language_it_speaks():
    assert office_for(OFFICES, "standesamt").id == "standesamt"
    assert office_for(OFFICES, "gibtsnicht").id == "buergertelefon"
    assert office_for(OFFICES, None).id == "buergertelefon"
    standesamt = OFFICES.require("standesamt")
    assert consultation_language(standesamt, "en") == "en"
    assert consultation_language(standesamt, "tr") == "de"  # the registry office advises in de/en only
    assert queue_topic("Reisepass") == "Reisepass (Chatbot)" and queue_topic(None) == "Chatbot"


def test_appointments_link_the_offices_booking_pages_when_it_has_services():
    catalog = load_services(OFFICES)
    bookable = next(office.id for office in OFFICES if catalog.for_office(office.id))
    assert appointment_url(catalog, bookable) == f"/termin/{bookable}"
    assert (
        appointment_url(catalog, "gibtsnicht") == "/termin" and appointment_url(None, bookable) == "/termin"
    )


async def test_video_is_available_only_while_open_and_someone_is_online():
    offers = await escalation_offers(
        OFFICES, "vhs", "tr", now=OPEN, availability=online(1), catalog=None, names_in="en"
    )
    assert [offer["type"] for offer in offers] == ["video", "appointment", "question"]
    video = offers[0]
    assert video["available"] is True and video["open_now"] is True and "next_opening" not in video
    assert video["language"] == "tr" and video["office_name"] == "Adult Education Centre"
    nobody = await escalation_offers(
        OFFICES, "vhs", "de", now=OPEN, availability=online(0), catalog=None, names_in="de"
    )
    assert nobody[0]["available"] is False and nobody[0]["open_now"] is True
    closed = await escalation_offers(
        OFFICES, "vhs", "de", now=NIGHT, availability=online(1), catalog=None, names_in="de"
    )
    assert closed[0]["available"] is False and closed[0]["next_opening"].startswith("2026-03-11T")
