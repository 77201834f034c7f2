"""Booking e-mails against a real SMTP server (aiosmtpd, started by the test): confirmation with the
.ics and links, reminder 24 h before, cancellation; one sender at a time; nothing without SMTP."""

from __future__ import annotations

import asyncio
import email
from datetime import timedelta
from email import policy

import icalendar
import pytest
from aiosmtpd.controller import Controller

from bench.server import free_port
from sprechstunde.scheduling.mail import BookingLinks, BookingMailer, SmtpMailer, SmtpSettings
from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.scheduling_support import at, build_world
from tests.test_booking_api import TUESDAY, advisor
from tests.test_booking_api import at as berlin


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture
async def world(tmp_path):
    world = build_world(tmp_path)
    world.clock.set(at("2027-01-04 12:00"))
    yield world
    await world.store.close()


def mailer_for(world, port: int) -> BookingMailer:
    settings = SmtpSettings(
        host="127.0.0.1", port=port, sender="Stadt <termine@stadt.example>", security="none"
    )
    return BookingMailer(
        world.scheduling,
        world.store,
        BookingLinks("https://video.stadt.example"),
        SmtpMailer(settings),
        world.clock,
    )


def attachment_ics(message) -> icalendar.Calendar:
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1 and parts[0].get_filename() == "termin.ics"
    return icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))


async def test_confirmation_reminder_and_cancellation(world, smtp):
    inbox, port = smtp
    await world.advisor("anna")
    mailer = mailer_for(world, port)
    booked = await world.scheduling.book(
        "vhs", "beratung", "video", at("2027-01-12 10:00").isoformat(),
        name="Erika Mustermann", email="erika@example.org", consent=True,
    )  # fmt: skip
    assert await mailer.run_once() == [(booked.booking.reference, "confirmation")]
    assert await mailer.run_once() == []  # sent once
    message = inbox.messages[0]
    assert inbox.envelopes[0] == ("termine@stadt.example", ["erika@example.org"])
    assert message["To"] == "erika@example.org" and booked.booking.reference in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    join_url = f"https://video.stadt.example/termin/beitreten/{booked.join_token}"
    manage_url = f"https://video.stadt.example/termin/verwalten/{booked.manage_token}"
    assert join_url in text and manage_url in text and "12.01.2027, 10:00" in text
    calendar = attachment_ics(message)
    event = next(iter(calendar.walk("VEVENT")))
    assert event.decoded("DTSTART") == at("2027-01-12 10:00") and event.decoded("DTEND") == at(
        "2027-01-12 10:30"
    )
    assert str(event["URL"]) == join_url and str(calendar["METHOD"]) == "PUBLISH"
    assert str(event["UID"]) == f"{booked.booking.booking_id}@video.stadt.example"

    world.clock.set(at("2027-01-11 09:59"))
    assert await mailer.run_once() == []  # more than 24 h before
    world.clock.set(at("2027-01-11 10:01"))
    assert await mailer.run_once() == [(booked.booking.reference, "reminder")]
    assert "Erinnerung" in inbox.messages[1]["Subject"]
    assert await mailer.run_once() == []

    await world.scheduling.cancel(await world.scheduling.get(booked.booking.booking_id))
    assert await mailer.run_once() == [(booked.booking.reference, "cancelled")]
    cancel = attachment_ics(inbox.messages[2])
    assert str(cancel["METHOD"]) == "CANCEL"
    assert str(next(iter(cancel.walk("VEVENT")))["STATUS"]) == "CANCELLED"
    assert len(inbox.messages) == 3


async def test_no_reminder_for_a_booking_made_within_a_day_and_none_without_email(world, smtp):
    inbox, port = smtp
    await world.advisor("anna")
    mailer = mailer_for(world, port)
    world.clock.set(at("2027-01-11 12:00"))
    await world.scheduling.book(
        "vhs",
        "beratung",
        "in_person",
        at("2027-01-12 10:00").isoformat(),
        name="A",
        email="a@example.org",
        consent=True,
    )
    await world.scheduling.book(
        "vhs", "beratung", "video", at("2027-01-12 10:40").isoformat(), name="B", consent=True
    )
    sent = await mailer.run_once()
    assert [kind for _, kind in sent] == ["confirmation"]
    text = inbox.messages[0].get_body(("plain",)).get_content()
    assert "Am Markt 1" in text and "/termin/beitreten/" not in text
    world.clock.set(at("2027-01-12 09:00"))
    assert await mailer.run_once() == []


async def test_only_one_process_sends(world, smtp):
    inbox, port = smtp
    await world.advisor("anna")
    for i, hhmm in enumerate(["08:00", "08:40", "09:20"]):
        await world.scheduling.book(
            "vhs", "beratung", "video", at(f"2027-01-12 {hhmm}").isoformat(),
            name=f"P{i}", email=f"p{i}@example.org", consent=True,
        )  # fmt: skip
    first, second = mailer_for(world, port), mailer_for(world, port)
    results = await asyncio.gather(first.run_once(), second.run_once())
    assert sorted(len(r) for r in results) == [0, 3]
    assert len(inbox.messages) == 3
    assert await first.run_once() == [] and await second.run_once() == []


async def test_unreachable_smtp_is_retried_then_given_up(world):
    await world.advisor("anna")
    mailer = mailer_for(world, free_port())  # nobody listens there
    booked = await world.scheduling.book(
        "vhs",
        "beratung",
        "video",
        at("2027-01-12 08:00").isoformat(),
        name="A",
        email="a@example.org",
        consent=True,
    )
    for _ in range(6):
        assert await mailer.run_once() == []
    assert (await world.scheduling.get(booked.booking.booking_id)).mails == {"confirmation:failures": 5}


async def test_the_app_mails_on_booking_and_the_page_says_so(tmp_path, aiohttp_client, smtp):
    inbox, port = smtp
    config = Config(
        data_dir=tmp_path / "data",
        media_addresses=["127.0.0.1"],
        demo=False,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_sender="termine@stadt.example",
    )
    client = await aiohttp_client(create_app(config))
    services = client.app[SERVICES]
    services.waiting.clock.set(berlin("12:00", TUESDAY - timedelta(days=1)))
    await advisor(services)
    response = await client.post(
        "/api/bookings",
        json={
            "office": "vhs", "service": "weiterbildung", "channel": "video",
            "starts_at": berlin("08:00").isoformat(), "name": "Erika", "email": "erika@example.org",
            "consent": True,
        },
    )  # fmt: skip
    booked = await response.json()
    assert booked["mail"] == {"configured": True}
    for _ in range(100):
        if inbox.messages:
            break
        await asyncio.sleep(0.05)
    assert len(inbox.messages) == 1 and booked["reference"] in inbox.messages[0]["Subject"]
    page = await client.get(booked["manage_url"].replace(services.config.public_url, ""))
    assert "Eine Bestätigung geht an erika@example.org" in await page.text()


async def test_personal_data_is_removed_after_the_retention_period(world):
    await world.advisor("anna")
    booked = await world.scheduling.book(
        "vhs", "beratung", "video", at("2027-01-12 08:00").isoformat(),
        name="Erika", email="e@example.org", phone="0211 1234567", consent=True,
    )  # fmt: skip
    job = BookingMailer(world.scheduling, world.store, BookingLinks("https://x.example"), None, world.clock)
    world.clock.set(at("2027-02-10 12:00"))  # 29 days after
    await job.run_once()
    assert (await world.scheduling.get(booked.booking.booking_id)).email == "e@example.org"
    world.clock.set(at("2027-02-12 12:00"))
    await job.run_once()
    kept = await world.scheduling.get(booked.booking.booking_id)
    assert (kept.name, kept.email, kept.phone) == ("–", None, None)
    assert kept.reference == booked.booking.reference and kept.status == "booked"
