"""E-mails about appointments: the confirmation right after booking, a reminder 24 hours before, a
notice when it was moved (an updated invitation: same UID, higher SEQUENCE, METHOD:REQUEST) and a
cancellation notice; each with the .ics attached and the join/manage links.

Driven by the store, not by the request: a background job looks at the bookings every minute (and at
once after a change) and sends what is due, recording each sent mail on the booking. Only one process
sends at a time: it holds a short lease created atomically in the store. SMTP is stdlib `smtplib` in a
worker thread (one message at a time, no extra dependency). Without SMTP settings nothing is sent, and
the pages say so.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import urlsplit

from sprechstunde.l10n import datetime_text
from sprechstunde.scheduling.bookings import SchedulingService
from sprechstunde.scheduling.catalog import VIDEO
from sprechstunde.scheduling.ics import booking_ics
from sprechstunde.scheduling.records import BOOKED, CANCELLED, Booking
from sprechstunde.store.lease import lease
from sprechstunde.store.port import Store
from sprechstunde.strings import DEFAULT_LANGUAGE, catalog
from sprechstunde.tasks import Periodic

log = logging.getLogger(__name__)

REMINDER_BEFORE = 24 * 3600
MAX_FAILURES = 5
SECURITY = ("starttls", "tls", "none")
MANAGE_PATH = "/termin/verwalten/"
JOIN_PATH = "/termin/beitreten/"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    sender: str
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "starttls"
    timeout: float = 20.0


class SmtpMailer:
    """Sends one message over SMTP in a worker thread."""

    def __init__(self, settings: SmtpSettings) -> None:
        if settings.security not in SECURITY:
            raise ValueError(f"smtp security must be one of {', '.join(SECURITY)}")
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        context = ssl.create_default_context()
        if s.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        with client:
            if s.security == "starttls":
                client.starttls(context=context)
            if s.username:
                client.login(s.username, s.password or "")
            client.send_message(message)


@dataclass(frozen=True)
class BookingLinks:
    """The citizen's links of a booking under the server's public URL."""

    public_url: str

    def manage(self, token: str) -> str:
        return f"{self.public_url}{MANAGE_PATH}{token}"

    def ics(self, token: str) -> str:
        return f"{self.public_url}{MANAGE_PATH}{token}/termin.ics"

    def join(self, token: str | None) -> str | None:
        return f"{self.public_url}{JOIN_PATH}{token}" if token else None

    @property
    def domain(self) -> str:
        return urlsplit(self.public_url).hostname or "sprechstunde.invalid"


def mail_language(booking: Booking) -> str:
    """The consultation's language when the catalog has it (its mails, calendar entry), else German."""
    return booking.language if booking.language in catalog().languages else DEFAULT_LANGUAGE


def compose(
    scheduling: SchedulingService, links: BookingLinks, booking: Booking, kind: str, sender: str
) -> EmailMessage:
    """The message for `kind` ("confirmation", "reminder", "moved", "cancelled"), in the language of the
    consultation (texts: sprechstunde/locales/<language>/mail.toml)."""
    lang = mail_language(booking)
    texts = catalog().strings(lang)

    def t(key: str) -> str:
        return texts[f"mail.{key}"]

    office, service = scheduling.service(booking.office, booking.service)
    booked = scheduling.booked(booking)
    join_url = links.join(booked.join_token)
    manage_url = links.manage(booked.manage_token)
    address = scheduling.catalog.address(office.id)
    start = booking.local_start(office)
    when = datetime_text(start, lang)  # "12.01.2027, 10:00" / "2027-01-12 10:00"
    body = [
        t("hello").format(name=booking.name),
        "",
        t(f"intro.{kind}"),
        "",
        t("when").format(when=when),
        t("what").format(service=service.name(lang), office=office.name(lang)),
        t("reference").format(reference=booking.reference),
    ]
    if kind != "cancelled":
        body.append("")
        if booking.channel == VIDEO:
            body.append(t("video").format(url=join_url))
        else:
            body.append(t("in_person").format(address=address or office.name(lang)))
        body += ["", t("manage").format(url=manage_url)]
    body += ["", t("ics"), "", t("bye")]
    message = EmailMessage()
    message["Subject"] = f"{t(kind)}: {service.name(lang)} ({booking.reference})"
    message["From"] = sender
    message["To"] = booking.email or ""
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=links.domain)
    message.set_content("\n".join(body))
    ics = booking_ics(
        booking,
        office,
        service,
        join_url=join_url,
        manage_url=manage_url,
        address=address,
        domain=links.domain,
        language=lang,
        # the move is an updated invitation, so calendars replace the old time (same UID)
        organizer=(parseaddr(sender)[1] or sender) if kind == "moved" else None,
    )
    method = {"cancelled": "CANCEL", "moved": "REQUEST"}.get(kind, "PUBLISH")
    message.add_attachment(
        ics, maintype="text", subtype="calendar", filename="termin.ics", params={"method": method}
    )
    return message


def due_mails(booking: Booking, now: float) -> list[str]:
    """Which mails this booking should get now."""
    if not booking.email:
        return []
    due = []
    sent = booking.mails
    failed = {
        kind: sent.get(f"{kind}:failures", 0) for kind in ("confirmation", "reminder", "moved", "cancelled")
    }
    # a moved booking's last move: mails sent before it were about the old time
    moved_at = (booking.changed_at or 0.0) if booking.sequence else 0.0
    if booking.status == BOOKED and now < booking.ends_at:
        if "confirmation" not in sent and failed["confirmation"] < MAX_FAILURES:
            due.append("confirmation")
        elif sent.get("confirmation", 0) < moved_at and sent.get("moved", 0) < moved_at:
            if failed["moved"] < MAX_FAILURES:
                due.append("moved")
        # a reminder only when the booking was made (or moved) well before the day (else the confirmation
        # is enough), and again for the new time after a move
        reminder_at = booking.starts_at - REMINDER_BEFORE
        if (
            sent.get("reminder", 0) <= moved_at
            and failed["reminder"] < MAX_FAILURES
            and max(booking.created_at, moved_at) < reminder_at <= now < booking.starts_at
        ):
            due.append("reminder")
    if booking.status == CANCELLED and "confirmation" in sent and "cancelled" not in sent:
        if failed["cancelled"] < MAX_FAILURES and now < booking.ends_at:
            due.append("cancelled")
    return due


class BookingMailer:
    """The background job that sends due mails and, once an appointment is `retention_days` past,
    removes the citizen's name and contact details from it; one process at a time (store lease)."""

    def __init__(
        self,
        scheduling: SchedulingService,
        store: Store,
        links: BookingLinks,
        mailer: SmtpMailer | None,
        clock: Callable[[], float],
        *,
        interval: float = 60.0,
        lease_ttl: float = 120.0,
        retention_days: float = 30.0,
    ) -> None:
        self._scheduling = scheduling
        self._store = store
        self._links = links
        self.mailer = mailer
        self._clock = clock
        self.interval = interval
        self.lease_ttl = lease_ttl
        self.retention_days = retention_days
        self._node = secrets.token_hex(6)
        self._rounds = Periodic("the appointment mail job", self.run_once, interval)

    @property
    def configured(self) -> bool:
        return self.mailer is not None

    def wake(self, _booking: Booking | None = None) -> None:
        self._rounds.wake()

    async def run_once(self) -> list[tuple[str, str]]:
        """Send every due mail; returns (reference, kind) of those sent. Does nothing without SMTP
        settings or while another process holds the lease."""
        async with lease(self._store, "booking-mail", self._node, self.lease_ttl) as held:
            if not held:
                return []
            return await self._send_due()

    async def _send_due(self) -> list[tuple[str, str]]:
        sent: list[tuple[str, str]] = []
        now = self._clock()
        await self._scheduling.forget_people(now - self.retention_days * 86400)
        if self.mailer is None:
            return []
        for booking in await self._scheduling.all():
            for kind in due_mails(booking, now):
                try:
                    message = compose(
                        self._scheduling, self._links, booking, kind, self.mailer.settings.sender
                    )
                    await self.mailer.send(message)
                except (OSError, smtplib.SMTPException) as exc:
                    # ids only in the log, never names or addresses
                    log.warning(
                        "mail %s for booking %s failed: %s", kind, booking.booking_id, type(exc).__name__
                    )
                    failures = booking.mails.get(f"{kind}:failures", 0) + 1
                    booking = await self._scheduling.record_mail(
                        booking.booking_id, f"{kind}:failures", failures
                    )
                    continue
                booking = await self._scheduling.record_mail(booking.booking_id, kind, self._clock())
                sent.append((booking.reference, kind))
        return sent

    def start(self) -> None:
        self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()
