"""The appointment as an iCalendar file (RFC 5545), for the confirmation page and the e-mails.

DTSTART/DTEND carry TZID=Europe/Berlin (the office's zone) with a VTIMEZONE for the years around the
appointment, so calendars show the right wall time on both sides of a clock change. A cancelled
appointment is sent as METHOD:CANCEL with STATUS:CANCELLED and the same UID, so calendars remove it; a
moved one keeps its UID and has a higher SEQUENCE (one per move), and its mail is an updated invitation
(METHOD:REQUEST), so calendars replace the old time instead of removing the appointment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from icalendar import Calendar, Event, Timezone

from sprechstunde.rooms.offices import Office
from sprechstunde.scheduling.catalog import VIDEO, Service
from sprechstunde.scheduling.records import CANCELLED, RESCHEDULED, Booking
from sprechstunde.strings import catalog

PRODID = "-//Sprechstunde//Terminbuchung//DE"


def booking_ics(
    booking: Booking,
    office: Office,
    service: Service,
    *,
    join_url: str | None,
    manage_url: str,
    address: str,
    domain: str,
    language: str = "de",
    organizer: str | None = None,
) -> bytes:
    """One VEVENT; UID stays the same for the life of the booking (`<booking id>@<domain>`). With
    `organizer` (the sender's address) it is an iTIP invitation, METHOD:REQUEST with ORGANIZER and the
    citizen as ATTENDEE (the moved-appointment mail); otherwise PUBLISH, or CANCEL once cancelled."""
    start = booking.local_start(office)
    end = booking.local_end(office)
    cancelled = booking.status in (CANCELLED, RESCHEDULED)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "CANCEL" if cancelled else "REQUEST" if organizer else "PUBLISH")
    tzid = str(office.timezone.key)
    cal.add_component(
        Timezone.from_tzinfo(
            office.timezone,
            tzid,
            first_date=date(start.year - 1, 1, 1),
            last_date=date(start.year + 1, 12, 31),
        )
    )
    event = Event()
    event.add("uid", f"{booking.booking_id}@{domain}")
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", start)
    event.add("dtend", end)
    # each move raised `sequence`; a cancellation supersedes the last version sent
    event.add("sequence", booking.sequence + (1 if cancelled else 0))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    office_name = office.name(language)
    if organizer and not cancelled:
        event.add("organizer", f"mailto:{organizer}", parameters={"CN": office_name})
        if booking.email:
            event.add("attendee", f"mailto:{booking.email}", parameters={"CN": booking.name, "RSVP": "FALSE"})
    summary = f"{service.name(language)} – {office_name}"
    event.add("summary", summary)
    texts = catalog().strings(language)  # sprechstunde/locales/<language>/mail.toml
    lines = [texts["ics.reference"].format(reference=booking.reference)]
    if booking.channel == VIDEO:
        lines.append(texts["ics.video"].format(url=join_url))
    else:
        lines.append(texts["ics.in_person"].format(address=address))
    lines.append(texts["ics.manage"].format(url=manage_url))
    event.add("description", "\n".join(lines))
    if booking.channel == VIDEO and join_url:
        event.add("location", join_url)
        event.add("url", join_url)
    else:
        event.add("location", address or office_name)
        event.add("url", manage_url)
    cal.add_component(event)
    return cal.to_ical()
