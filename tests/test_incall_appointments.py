"""Issue 17, items 11 and 12 (appointments).

11: moving an appointment keeps the booking — its reference, its manage and join links and the calendar
UID; it changes the times, raises the iCalendar SEQUENCE and mails an updated invitation (METHOD:REQUEST),
never a cancellation; the old slot is free at once. The citizen's manage page and the staff move alike.
12: the calendar opens on the first month with a free slot; when nobody of the office takes appointments
in the chosen language (or nothing is free within the horizon), the page and the API say so and offer
the languages that have slots and a written question.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import icalendar
import pytest

from sprechstunde.l10n import month_text
from sprechstunde.rooms import hours
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.availability import parse_availability
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import HORIZON_DAYS, MANAGE_PURPOSE, SEATS_KIND
from sprechstunde.web.core.services import SERVICES
from tests.scheduling_support import FULL, SECRET, build_world
from tests.scheduling_support import at as berlin
from tests.test_booking_api import TUESDAY, advisor, at, request, sign_in
from tests.test_booking_mail import attachment_ics, mailer_for, smtp  # noqa: F401 (fixture)

MONDAY_NOON = at("12:00", TUESDAY - timedelta(days=1))


@pytest.fixture
def services(client):
    services = client.app[SERVICES]
    services.waiting.clock.set(MONDAY_NOON)
    return services


async def _ics(client, token: str) -> icalendar.Calendar:
    response = await client.get(f"/api/bookings/{token}/ics")
    assert response.status == 200
    return icalendar.Calendar.from_ical(await response.read())


def _event(calendar: icalendar.Calendar) -> icalendar.Event:
    return next(iter(calendar.walk("VEVENT")))


async def _free_starts(client, day: date = TUESDAY) -> list[str]:
    url = f"/api/booking/offices/vhs/services/weiterbildung/slots?date={day}"
    return [s["starts_at"] for s in (await (await client.get(url)).json())["slots"]]


# --- item 11: a move keeps the booking ----------------------------------------------------------------


async def test_a_citizen_move_keeps_reference_links_and_uid_and_frees_the_old_slot(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    token = booked["manage_token"]
    first = _event(await _ics(client, token))
    assert int(first["SEQUENCE"]) == 0
    assert at("08:00").isoformat() not in await _free_starts(client)

    response = await client.post(
        f"/api/bookings/{token}/reschedule", json={"starts_at": at("09:20").isoformat()}
    )
    assert response.status == 201
    moved = await response.json()
    for kept in ("booking_id", "reference", "manage_token", "manage_url", "join_url", "ics_url"):
        assert moved[kept] == booked[kept], kept
    assert moved["status"] == "booked" and moved["starts_at"] == at("09:20").isoformat()

    # the first .ics link now gives the new time: same UID, higher SEQUENCE, not a cancellation
    calendar = await _ics(client, token)
    event = _event(calendar)
    assert str(event["UID"]) == str(first["UID"]) and int(event["SEQUENCE"]) == 1
    assert str(calendar["METHOD"]) == "PUBLISH" and str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("DTSTART") == at("09:20")
    # the old slot is free again, the new one taken; one seat interval in all
    free = await _free_starts(client)
    assert at("08:00").isoformat() in free and at("09:20").isoformat() not in free
    seats = [b for _, record in await services.store.scan(SEATS_KIND) for b in record["busy"]]
    assert [b[2] for b in seats] == [booked["booking_id"]]
    # the join link of the first confirmation still works and knows the new time
    join_token = booked["join_url"].rsplit("/", 1)[1]
    joined = await (await client.get(f"/api/bookings/join/{join_token}")).json()
    assert joined["state"] == "early" and joined["starts_at"] == at("09:20").isoformat()
    # the manage page of the first link shows the same reference at the new time
    page = await (await client.get(f"/termin/verwalten/{token}")).text()
    assert booked["reference"] in page and "09:20" in page and "abgesagt" not in page


async def test_a_staff_move_keeps_the_booking_too(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    csrf = await sign_in(client)
    response = await client.post(
        f"/api/staff/appointments/{booked['booking_id']}/reschedule",
        json={"starts_at": at("10:00").isoformat()},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 201
    moved = await response.json()
    assert (moved["booking_id"], moved["reference"]) == (booked["booking_id"], booked["reference"])
    assert moved["starts_at"] == at("10:00").isoformat()
    listed = await (await client.get(f"/api/staff/appointments?from={TUESDAY}&days=1")).json()
    assert [(a["reference"], a["starts_at"]) for a in listed["appointments"]] == [
        (booked["reference"], at("10:00").isoformat())
    ]
    citizen = await (await client.get(f"/api/bookings/{booked['manage_token']}")).json()
    assert citizen["starts_at"] == at("10:00").isoformat() and citizen["status"] == "booked"


@pytest.fixture
async def world(tmp_path):
    world = build_world(tmp_path)
    world.clock.set(berlin("2027-01-04 12:00"))
    # tokens expire by the same (test) clock as the bookings
    world.scheduling._signer = TokenSigner(SECRET, world.clock)
    yield world
    await world.store.close()


async def test_the_moved_mail_is_an_updated_invitation_not_a_cancellation(world, smtp):  # noqa: F811
    inbox, port = smtp
    await world.advisor("anna")
    mailer = mailer_for(world, port)
    booked = await world.scheduling.book(
        "vhs", "beratung", "video", berlin("2027-01-12 10:00").isoformat(),
        name="Erika Mustermann", email="erika@example.org", consent=True,
    )  # fmt: skip
    reference = booked.booking.reference
    assert await mailer.run_once() == [(reference, "confirmation")]
    world.clock.set(berlin("2027-01-05 09:00"))
    await world.scheduling.reschedule(booked.booking, berlin("2027-01-14 11:20").isoformat())
    assert await mailer.run_once() == [(reference, "moved")]
    assert await mailer.run_once() == []
    message = inbox.messages[1]
    assert "verschoben" in message["Subject"] and reference in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "abgesagt" not in text and "14.01.2027, 11:20" in text
    assert f"/termin/beitreten/{booked.join_token}" in text  # the link of the first mail
    calendar = attachment_ics(message)
    event = _event(calendar)
    assert str(calendar["METHOD"]) == "REQUEST" and str(event["STATUS"]) == "CONFIRMED"
    assert str(event["UID"]) == f"{booked.booking.booking_id}@video.stadt.example"
    assert int(event["SEQUENCE"]) == 1 and event.decoded("DTSTART") == berlin("2027-01-14 11:20")
    assert str(event["ORGANIZER"]) == "mailto:termine@stadt.example"
    assert str(event["ATTENDEE"]) == "mailto:erika@example.org"
    # moved again: another invitation with SEQUENCE 2; the reminder is for the new time
    now = await world.scheduling.get(booked.booking.booking_id)
    await world.scheduling.reschedule(now, berlin("2027-01-15 09:20").isoformat())
    assert await mailer.run_once() == [(reference, "moved")]
    assert int(_event(attachment_ics(inbox.messages[2]))["SEQUENCE"]) == 2
    world.clock.set(berlin("2027-01-13 11:30"))
    assert await mailer.run_once() == []  # the old time's reminder is not due
    world.clock.set(berlin("2027-01-14 09:30"))
    assert await mailer.run_once() == [(reference, "reminder")]
    # cancelled: the cancellation supersedes the last invitation
    await world.scheduling.cancel(await world.scheduling.get(booked.booking.booking_id))
    assert await mailer.run_once() == [(reference, "cancelled")]
    cancel = attachment_ics(inbox.messages[4])
    assert str(cancel["METHOD"]) == "CANCEL" and int(_event(cancel)["SEQUENCE"]) == 3
    assert [m["Subject"].split(":")[0].strip() for m in inbox.messages] == [
        "Terminbestätigung",
        "Ihr Termin wurde verschoben",
        "Ihr Termin wurde verschoben",
        "Erinnerung an Ihren Termin morgen",
        "Ihr Termin wurde abgesagt",
    ]


async def test_links_of_an_appointment_moved_later_live_until_after_its_new_time(world):
    """The links carry the first expiry (60 days after the first time); a move to a later time keeps
    the same links, so they must live on until 60 days after the new time — and not longer."""
    await world.advisor("anna")
    booked = await world.scheduling.book(
        "vhs", "beratung", "video", berlin("2027-01-12 10:00").isoformat(), name="Erika", consent=True
    )
    far = berlin("2027-01-04 12:00") + timedelta(days=HORIZON_DAYS - 2)
    far = far.replace(hour=10, minute=0) - timedelta(days=far.weekday() - 1)  # a Tuesday 10:00
    moved = await world.scheduling.reschedule(booked.booking, far.isoformat())
    assert (moved.manage_token, moved.join_token) == (booked.manage_token, booked.join_token)
    world.clock.set(berlin("2027-01-12 10:00") + timedelta(days=61))  # the first expiry has passed
    assert (await world.scheduling.for_token(booked.manage_token)).starts_at == far.timestamp()
    assert (
        await world.scheduling.for_token(booked.join_token, "booking-join")
    ).reference == moved.booking.reference
    forged = world.scheduling._signer.sign(MANAGE_PURPOSE, {"b": booked.booking.booking_id, "exp": 1})
    with pytest.raises(BookingError) as caught:
        await world.scheduling.for_token(forged)
    assert caught.value.status == 410
    world.clock.set(far + timedelta(days=61))
    with pytest.raises(BookingError) as caught:
        await world.scheduling.for_token(booked.manage_token)
    assert caught.value.code == "expired"


async def test_a_double_submit_of_the_move_form_lands_on_the_moved_appointment(client, services):
    await advisor(services)
    booked = await (await client.post("/api/bookings", json=request())).json()
    manage = f"/termin/verwalten/{booked['manage_token']}"
    for _ in range(2):
        response = await client.post(
            f"{manage}/verschieben", data={"starts_at": at("09:20").isoformat()}, allow_redirects=False
        )
        assert response.status == 303 and response.headers["Location"] == f"{manage}?verschoben=1"
    page = await (await client.get(f"{manage}?verschoben=1")).text()
    assert "Ihr Termin wurde verschoben" in page and booked["reference"] in page


# --- item 12: the calendar's first month, and no advisor in the language ---------------------------------


def _first_open_day(services, after: date) -> date:
    vhs = services.scheduling.offices.require("vhs")
    day = after + timedelta(days=1)
    while not hours.opening_intervals(vhs, day):
        day += timedelta(days=1)
    return day


async def test_the_calendar_opens_on_the_first_month_with_a_free_slot(client, services):
    # the advisor is away until the end of next month: nothing free before
    today = TUESDAY - timedelta(days=1)
    back = (today.replace(day=28) + timedelta(days=40)).replace(day=1) - timedelta(days=1)
    await advisor(services)
    await services.scheduling.availability.set(
        parse_availability(
            "anna", {"weekly": FULL, "absences": [{"from": today.isoformat(), "to": back.isoformat()}]}
        )
    )
    first = _first_open_day(services, back)
    url = "/api/booking/offices/vhs/services/weiterbildung/outlook?channel=video&language=de"
    outlook = await (await client.get(url)).json()
    assert outlook == {
        "language": "de",
        "first_free_day": first.isoformat(),
        "first_month": first.strftime("%Y-%m"),
        "reason": None,
        "languages": [],
        "question_url": None,
    }
    page = await (await client.get("/termin/vhs/weiterbildung/video")).text()
    assert f'<h2 id="month-label">{month_text(first.replace(day=1), "de")}</h2>' in page
    assert f'href="/termin/vhs/weiterbildung/video?tag={first.isoformat()}#slots"' in page
    # an explicit month is still shown as asked, and the way back is there
    asked = await (await client.get(f"/termin/vhs/weiterbildung/video?monat={today:%Y-%m}")).text()
    assert f'<h2 id="month-label">{month_text(today.replace(day=1), "de")}</h2>' in asked


async def test_no_advisor_in_the_language_is_said_plainly_with_the_alternatives(client, services):
    await advisor(services)  # German only
    url = "/api/booking/offices/vhs/services/weiterbildung/outlook?channel=video&language=en"
    outlook = await (await client.get(url)).json()
    assert outlook["reason"] == "no_advisor" and outlook["first_free_day"] is None
    assert outlook["languages"] == ["de"] and outlook["question_url"] == "/api/questions"

    page = await (await client.get("/termin/vhs/weiterbildung/video?sprache=en")).text()
    assert "Kein Termin in dieser Sprache" in page
    assert "Zu „Beratung Weiterbildung“ (Volkshochschule) berät zurzeit niemand auf Englisch." in page
    assert 'href="/termin/vhs/weiterbildung/video?sprache=de"' in page and "Termin auf Deutsch buchen" in page
    assert 'id="calendar"' not in page  # no calendar of empty months
    # the written question goes to the office as a ticket
    asked = await client.post(
        "/termin/vhs/weiterbildung/video/frage?sprache=en",
        data={"language": "en", "question": "Gibt es Kurse auf Englisch?", "contact": "erika@example.org"},
    )
    assert asked.status == 200
    text = await asked.text()
    reference = re.search(r"Ihre Vorgangsnummer: (\S+)</p>", text)
    assert reference is not None
    ticket = await services.queue.tickets.get(reference.group(1))
    assert ticket is not None and ticket.office == "vhs" and ticket.language == "en"
    # in English, too
    english = await (await client.get("/termin/vhs/weiterbildung/video?sprache=en&lang=en")).text()
    assert "No appointment in this language" in english
    assert 'href="/termin/vhs/weiterbildung/video?lang=en&amp;sprache=de"' in english


async def test_no_free_slot_within_the_horizon_is_said_too(client, services):
    today = TUESDAY - timedelta(days=1)
    await advisor(services, "ben", languages=("en",))
    away = {"from": today.isoformat(), "to": (today + timedelta(days=HORIZON_DAYS + 5)).isoformat()}
    await services.scheduling.availability.set(
        parse_availability("ben", {"weekly": FULL, "absences": [away]})
    )
    await advisor(services)
    url = "/api/booking/offices/vhs/services/weiterbildung/outlook?language=en"
    outlook = await (await client.get(url)).json()
    assert (outlook["reason"], outlook["languages"]) == ("no_slots", ["de"])
    page = await (await client.get("/termin/vhs/weiterbildung/video?sprache=en")).text()
    assert f"in den nächsten {HORIZON_DAYS} Tagen kein Termin frei" in page


async def test_bad_input_is_a_4xx_with_a_json_error(client, services):
    await advisor(services)
    base = "/api/booking/offices"
    for url, status, code in [
        (f"{base}/nirgends/services/weiterbildung/outlook", 404, "unknown_office"),
        (f"{base}/vhs/services/nichts/outlook", 404, None),
        (f"{base}/vhs/services/weiterbildung/outlook?language=xx", 400, None),
        (f"{base}/vhs/services/weiterbildung/outlook?channel=brief", 400, "invalid_channel"),
    ]:
        response = await client.get(url)
        assert response.status == status, url
        error = (await response.json())["error"]
        assert code is None or error["code"] == code
    booked = await (await client.post("/api/bookings", json=request())).json()
    move = f"/api/bookings/{booked['manage_token']}/reschedule"
    for body, status, code in [
        ({"starts_at": "morgen"}, 400, None),
        ({"starts_at": at("08:00").isoformat()}, 400, "same_slot"),
        ({"starts_at": at("08:05").isoformat()}, 400, "outside_hours"),
        ({}, 400, None),
    ]:
        response = await client.post(move, json=body)
        assert response.status == status, body
        assert code is None or (await response.json())["error"]["code"] == code
    # nothing changed by any of them
    now = await (await client.get(f"/api/bookings/{booked['manage_token']}")).json()
    assert now["starts_at"] == booked["starts_at"] and now["status"] == "booked"
    await client.post(f"/api/bookings/{booked['manage_token']}/cancel")
    late = await client.post(move, json={"starts_at": at("09:20").isoformat()})
    assert late.status == 409 and (await late.json())["error"]["code"] == "not_booked"
    csrf = await sign_in(client)
    unknown = await client.post(
        "/api/staff/appointments/nichts/reschedule",
        json={"starts_at": at("09:20").isoformat()},
        headers={"X-CSRF-Token": csrf},
    )
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "unknown_booking"
    # an empty written question: the page says what is missing, no ticket
    empty = await client.post(
        "/termin/vhs/weiterbildung/video/frage?sprache=en",
        data={"language": "en", "question": " ", "contact": ""},
    )
    text = await empty.text()
    assert empty.status == 400 and "Bitte schreiben Sie Ihre Frage." in text and "question-sent" not in text


async def test_moving_while_in_the_waiting_room_gives_up_that_place(world):
    """Joined 10 minutes early, then moved to tomorrow: the place in line for today is given up (no
    advisor waits for them now), and the same join link counts down to the new time."""
    await world.advisor("anna")
    booked = await world.scheduling.book(
        "vhs", "beratung", "video", berlin("2027-01-12 10:00").isoformat(), name="Erika", consent=True
    )
    world.clock.set(berlin("2027-01-12 09:55"))
    joined = await world.scheduling.join(booked.booking)
    assert joined.state == "open"
    entry_id = (await world.scheduling.get(booked.booking.booking_id)).entry_id
    now = await world.scheduling.get(booked.booking.booking_id)
    await world.scheduling.reschedule(now, berlin("2027-01-13 10:00").isoformat())
    assert (await world.queue.get(entry_id)).state == "abandoned"
    again = await world.scheduling.for_token(booked.join_token, "booking-join")
    assert (await world.scheduling.join(again)).state == "early"
