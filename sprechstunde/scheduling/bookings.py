"""Bookings (over 500 lines: every write of a booking — book, cancel, move, no-show, forget — stays in one
file, so the invariant between seats and bookings is read in one place): booking, cancelling and
rescheduling without ever giving one advisor two citizens at the same time (the free slots come from the
slot calendar, slots.py; the records from records.py).

Seats: each advisor has one record per local day listing their booked intervals (appointment plus
buffer). Booking adds an interval with compare-and-set, so of any number of concurrent requests for an
advisor's last free interval exactly one succeeds; the others try the next free advisor and, when none
is left, get `slot_taken` with fresh slots. Cancelling removes the interval.

Seat and booking change in one atomic write (`Store.compare_and_set_many`, issue 15 finding 8): the
seat interval, the booking record, the year's reference counter and the idempotency claim when booking;
the status and the freed interval when cancelling; the booking and both seats when moving it. A
process killed at any moment (kill -9 during a burst of bookings) therefore leaves either all of it or
none — never a seat held for a booking that does not exist, which would lower a slot's capacity for
good. `release_orphan_seats` repairs data written by older versions, at the first start-up of this one.

Tokens: a booking has a manage token (cancel/reschedule, valid until 60 days after the appointment)
and, for video, a join token; both are signed by the server secret and carry only the booking id. A
move keeps the booking, so its reference, both links and the calendar UID stay (issue 17, item 11).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import Office, OfficeDirectory
from sprechstunde.rooms.queue import Appointment, QueueService
from sprechstunde.rooms.routing import may_serve
from sprechstunde.rooms.staff import StaffDirectory, StaffMember
from sprechstunde.rooms.tokens import TokenError, TokenSigner
from sprechstunde.scheduling.catalog import VIDEO, Service, ServiceCatalog
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import (
    BOOKED,
    BOOKING_KIND,
    CANCELLED,
    FORGOTTEN,
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KIND,
    IDEMPOTENCY_STALE,
    IDEMPOTENCY_TTL,
    JOIN_LEAD,
    JOIN_LOCK_KIND,
    JOIN_PURPOSE,
    MANAGE_PURPOSE,
    NO_SHOW,
    ORPHAN_SEATS_REPAIRED,
    REFERENCE_KIND,
    REPAIR_KIND,
    RESCHEDULED,
    SEATS_KIND,
    TOKEN_DAYS_AFTER,
    Booked,
    Booking,
    JoinState,
    Person,
    check_person,
)
from sprechstunde.scheduling.slots import SlotCalendar, overlaps, seat_key, within
from sprechstunde.store.port import Change, Record, Store, from_record, update


class SchedulingService(SlotCalendar):
    """Slots, bookings, tokens and the hand-over into the waiting room."""

    def __init__(
        self,
        store: Store,
        offices: OfficeDirectory,
        catalog: ServiceCatalog,
        staff: StaffDirectory,
        signer: TokenSigner,
        queue: QueueService,
        clock: Callable[[], float],
        *,
        join_lead: float = JOIN_LEAD,
    ) -> None:
        super().__init__(store, offices, catalog, staff, clock)
        self._signer = signer
        self._queue = queue
        self.join_lead = join_lead
        # Called after every booking change (the mailer wakes up); set by the app.
        self.on_change: Callable[[Booking], None] | None = None

    # --- booking -------------------------------------------------------------------------------

    async def book(
        self,
        office_id: Any,
        service_id: Any,
        channel: Any,
        starts_at: Any,
        *,
        name: Any,
        email: Any = None,
        phone: Any = None,
        consent: Any = False,
        language: Any = "de",
        idempotency_key: Any = None,
    ) -> Booked:
        """Book a slot, assigning one free advisor. Validates everything before writing; with an
        `idempotency_key` a repeat of the same request returns the first booking (`replayed`)."""
        office, service = self.service(office_id, service_id, channel if channel is not None else "")
        language = self.check_language(office, language)
        person = check_person(name, email, phone, consent)
        start, end = self.check_slot(office, service, starts_at)
        if idempotency_key is None:
            return await self._book(office, service, channel, language, start, end, person)
        if not isinstance(idempotency_key, str) or not IDEMPOTENCY_KEY.match(idempotency_key):
            raise BookingError("invalid_idempotency_key", "idempotency key: 8–100 of A-Z a-z 0-9 _ . : -")
        fingerprint = hashlib.sha256(
            json.dumps(
                [office.id, service.id, channel, language, start.timestamp(), asdict(person)], sort_keys=True
            ).encode()
        ).hexdigest()
        claim: Record = {"fingerprint": fingerprint, "booking_id": None, "at": self.clock()}
        if not await self._store.create(IDEMPOTENCY_KIND, idempotency_key, claim, ttl=IDEMPOTENCY_TTL):
            replayed = await self._replay(idempotency_key, fingerprint, claim)
            if replayed is not None:
                return replayed
        try:
            # The claim gets its booking id in the same atomic write as the booking itself.
            return await self._book(
                office, service, channel, language, start, end, person, claim=(idempotency_key, claim)
            )
        except BaseException:
            if await self._store.get(IDEMPOTENCY_KIND, idempotency_key) == claim:
                await self._store.delete(IDEMPOTENCY_KIND, idempotency_key)  # a retry may try again
            raise

    async def _replay(self, key: str, fingerprint: str, claim: Record) -> Booked | None:
        """The earlier request with this key: its booking, once it exists (it may still be in flight).
        None when `claim` now holds the key instead: the earlier attempt failed and was undone, or its
        process died before booking and left a claim older than IDEMPOTENCY_STALE."""
        for _ in range(100):
            record = await self._store.get(IDEMPOTENCY_KIND, key)
            if record is None:
                # The first attempt failed and was undone: this one tries.
                if await self._store.create(IDEMPOTENCY_KIND, key, claim, ttl=IDEMPOTENCY_TTL):
                    return None
                continue
            if record["fingerprint"] != fingerprint:
                raise BookingError(
                    "idempotency_mismatch", "this idempotency key was used for a different booking", 422
                )
            if record["booking_id"]:
                booking = await self.get(record["booking_id"])
                if booking is not None:
                    return replace(self.booked(booking), replayed=True)
            elif record.get("at", 0) < self.clock() - IDEMPOTENCY_STALE:
                if await self._store.compare_and_set(
                    IDEMPOTENCY_KIND, key, record, claim, ttl=IDEMPOTENCY_TTL
                ):
                    return None
                continue
            await asyncio.sleep(0.05)
        raise BookingError("in_progress", "the same booking request is still being processed; reload", 409)

    async def _book(
        self,
        office: Office,
        service: Service,
        channel: str,
        language: str,
        start: datetime,
        end: datetime,
        person: Person,
        *,
        claim: tuple[str, Record] | None = None,
    ) -> Booked:
        """Book the slot with the least busy free advisor; with `claim` (idempotency key, claim record),
        the claim learns the booking id in the same write as the booking."""
        busy_until = end.timestamp() + service.buffer * 60
        draft = Booking(
            booking_id=secrets.token_urlsafe(12),
            reference="",
            office=office.id,
            service=service.id,
            channel=channel,
            language=language,
            starts_at=start.timestamp(),
            ends_at=end.timestamp(),
            busy_until=busy_until,
            advisor="",
            name=person.name,
            email=person.email,
            phone=person.phone,
            created_at=0.0,
        )
        for name in await self._free_advisors(office, language, start, end, busy_until):
            booking = await self._write_booking(replace(draft, advisor=name), office, claim)
            if booking is not None:
                self._changed(booking)
                return self.booked(booking)
        raise await self._slot_taken(office, service, start, language)

    async def _free_advisors(
        self,
        office: Office,
        language: str,
        start: datetime,
        end: datetime,
        busy_until: float,
        keep: Booking | None = None,
    ) -> list[str]:
        """The advisors who could take [start, busy_until), least busy that day first so appointments
        spread over the team; when moving `keep`, its own seat counts as free and its advisor comes
        first (the citizen keeps their advisor where possible)."""
        day = start.date()
        ignore = keep.booking_id if keep is not None else None
        candidates = []
        for name, pattern in (await self._advisors(office, language)).items():
            if not within(pattern.intervals(day), start, end):
                continue
            seats = await self._seats(name, day)
            if not overlaps(seats, start.timestamp(), busy_until, ignore):
                candidates.append((keep is None or name != keep.advisor, len(seats), name))
        return [name for *_, name in sorted(candidates)]

    async def _slot_taken(
        self, office: Office, service: Service, start: datetime, language: str, ignore: str | None = None
    ) -> BookingError:
        """`slot_taken` (409) with the day's fresh slots, for the form to offer instead."""
        fresh = await self._day_slots(office, service, start.date(), language, ignore=ignore)
        return BookingError(
            "slot_taken", "Dieser Termin ist gerade vergeben", 409, slots=[s.as_json() for s in fresh]
        )

    async def _write_booking(
        self, draft: Booking, office: Office, claim: tuple[str, Record] | None
    ) -> Booking | None:
        """Write `draft` with its seat in one atomic change (see the module docstring); None when the
        advisor's seat is taken. Each attempt reads everything it changes afresh, so a lost race with
        any other change (another booking, the year's counter) is retried on the current state and
        decided there."""
        seats_at = seat_key(draft.advisor, draft.local_start(office).date())
        year = draft.local_start(office).year
        while True:
            seats = await self._store.get(SEATS_KIND, seats_at)
            busy = seats["busy"] if seats else []
            if overlaps(busy, draft.starts_at, draft.busy_until):
                return None
            busy = [*busy, [draft.starts_at, draft.busy_until, draft.booking_id]]
            counter = await self._store.get(REFERENCE_KIND, str(year))
            number = (counter or {}).get("n", 0) + 1
            booking = replace(draft, reference=f"T-{year}-{number:06d}", created_at=self.clock())
            changes = [
                Change(SEATS_KIND, seats_at, seats, {"busy": sorted(busy)}),
                Change(REFERENCE_KIND, str(year), counter, {"n": number}),
                Change(BOOKING_KIND, booking.booking_id, None, asdict(booking)),
            ]
            if claim is not None:
                key, expected = claim
                done = expected | {"booking_id": booking.booking_id}
                changes.append(Change(IDEMPOTENCY_KIND, key, expected, done, ttl=IDEMPOTENCY_TTL))
            if await self._store.compare_and_set_many(changes):
                return booking
            # Lost a race: retried on fresh reads above — unless what failed cannot change by retrying.
            if await self._store.get(BOOKING_KIND, draft.booking_id) is not None:
                raise BookingError("conflict", "booking id collision; try again", 409)
            if claim is not None and await self._store.get(IDEMPOTENCY_KIND, claim[0]) != claim[1]:
                raise BookingError("conflict", "this request was taken over by a retry", 409)

    async def _booking_record(self, booking_id: str) -> Record:
        """The stored record of a booking that can still be changed (`not_booked` otherwise)."""
        record = await self._store.get(BOOKING_KIND, booking_id)
        if record is None:
            raise BookingError("unknown_booking", "this appointment does not exist (any more)", 404)
        if record["status"] != BOOKED:
            raise BookingError(
                "not_booked", f"this appointment is {record['status']}", 409, current=record["status"]
            )
        return record

    async def _seat_release(self, key: str, booking_id: str) -> list[Change]:
        """The change that frees `booking_id`'s interval in seat record `key` (none if it holds none)."""
        record = await self._store.get(SEATS_KIND, key)
        if record is None or not any(b[2] == booking_id for b in record["busy"]):
            return []
        return [Change(SEATS_KIND, key, record, {"busy": [b for b in record["busy"] if b[2] != booking_id]})]

    async def release_orphan_seats(self) -> int:
        """Free every seat interval whose booking is gone or no longer booked, and return how many.

        Versions before issue 15 (finding 8) wrote seat and booking in separate steps; a process killed
        in between left such orphans, each lowering a slot's capacity for good. Since seat and booking
        change in one atomic write, any interval seen without a holding booking is an orphan, so this is
        safe while bookings go on (each record is changed by compare-and-set) and idempotent. Run at
        start-up; it reads every seat record and the bookings they name, so it does that once per store
        (a marker record says it is done): this version's writes leave no orphans to find later."""
        if await self._store.get(REPAIR_KIND, ORPHAN_SEATS_REPAIRED) is not None:
            return 0
        released = 0

        async def keep_held(record: Record | None) -> Record | None:
            if record is None:
                return None
            keep = []
            for interval in record["busy"]:
                booking = await self.get(interval[2])
                if booking is not None and booking.status in (BOOKED, NO_SHOW):
                    keep.append(interval)
            return record if len(keep) == len(record["busy"]) else {"busy": keep}

        for key, _ in await self._store.scan(SEATS_KIND):
            seats = await update(self._store, SEATS_KIND, key, keep_held)
            if seats.written and seats.before is not None and seats.after is not None:
                released += len(seats.before["busy"]) - len(seats.after["busy"])
        await self._store.put(REPAIR_KIND, ORPHAN_SEATS_REPAIRED, {"at": self.clock(), "released": released})
        return released

    def booked(self, booking: Booking) -> Booked:
        return Booked(booking, self.manage_token(booking), self.join_token(booking))

    def manage_token(self, booking: Booking) -> str:
        return self._signer.sign(MANAGE_PURPOSE, {"b": booking.booking_id, "exp": self._token_exp(booking)})

    def join_token(self, booking: Booking) -> str | None:
        if booking.channel != VIDEO:
            return None
        return self._signer.sign(JOIN_PURPOSE, {"b": booking.booking_id, "exp": self._token_exp(booking)})

    @staticmethod
    def _token_exp(booking: Booking) -> int:
        """The expiry in the booking's tokens: fixed at its first time, so a move keeps its links."""
        return booking.token_exp or int(booking.ends_at + TOKEN_DAYS_AFTER * 86400)

    async def get(self, booking_id: Any) -> Booking | None:
        if not isinstance(booking_id, str) or len(booking_id) > 64:
            return None
        record = await self._store.get(BOOKING_KIND, booking_id)
        return None if record is None else from_record(Booking, record)

    async def for_token(self, token: Any, purpose: str = MANAGE_PURPOSE) -> Booking:
        """The booking a manage (or join) token stands for: `invalid_token` (403) for a forged or
        foreign token, `expired` (410), `unknown_booking` (404)."""
        try:
            claims = self._signer.verify(purpose, token)
        except TokenError as exc:
            if exc.reason != "expired":
                raise BookingError("invalid_token", "this appointment link is not valid", 403) from None
            claims = self._signer.claims(purpose, token)
            moved = await self.get(claims.get("b"))
            # An appointment moved later keeps its links, signed with the first expiry: they live on
            # until TOKEN_DAYS_AFTER its present end.
            if (
                moved is None
                or claims["exp"] != self._token_exp(moved)
                or self.clock() >= moved.ends_at + TOKEN_DAYS_AFTER * 86400
            ):
                raise BookingError("expired", "this appointment link has expired", 410) from None
        booking = await self.get(claims.get("b"))
        if booking is None:
            raise BookingError("unknown_booking", "this appointment does not exist (any more)", 404)
        return booking

    # --- changes -------------------------------------------------------------------------------

    async def cancel(self, booking: Booking, *, by: str | None = None) -> Booking:
        """Cancel a booked appointment that has not started; its seat is free again at once (in the same
        atomic write as the status, so no kill in between can keep the seat taken)."""
        self._check_changeable(booking)
        office = self.offices.require(booking.office)
        while True:
            record = await self._booking_record(booking.booking_id)
            current = from_record(Booking, record)
            updated = replace(current, status=CANCELLED, changed_at=self.clock(), changed_by=by)
            seats_at = seat_key(current.advisor, current.local_start(office).date())
            changes = [
                Change(BOOKING_KIND, current.booking_id, record, asdict(updated)),
                *await self._seat_release(seats_at, current.booking_id),
            ]
            if await self._store.compare_and_set_many(changes):
                break
        self._changed(updated)
        return updated

    async def reschedule(self, booking: Booking, starts_at: Any, *, by: str | None = None) -> Booked:
        """Move an appointment to another slot. It stays the same booking (issue 17, item 11): reference,
        manage and join links and calendar UID are kept; times and perhaps the advisor change and the
        SEQUENCE goes up, so the mail job sends an updated invitation instead of a cancellation. The new
        seat is taken and the old one freed in the same atomic write as the booking: a kill at any
        moment leaves the appointment at the old time or at the new one, each with its one seat. If the
        new slot cannot be had, or the booking changed meanwhile, nothing changes."""
        self._check_changeable(booking)
        office, service = self.service(booking.office, booking.service, booking.channel)
        start, end = self.check_slot(office, service, starts_at)
        if start.timestamp() == booking.starts_at:
            raise BookingError("same_slot", "this is already the time of the appointment", 400)
        busy_until = end.timestamp() + service.buffer * 60
        for name in await self._free_advisors(office, booking.language, start, end, busy_until, booking):
            written = await self._write_move(booking.booking_id, office, start, end, busy_until, name, by)
            if written is not None:
                moved, before = written
                if before.entry_id:  # waiting for the old time: that place in line is given up
                    await self._queue.leave(before.entry_id)
                self._changed(moved)
                return self.booked(moved)
        raise await self._slot_taken(office, service, start, booking.language, booking.booking_id)

    async def _write_move(
        self,
        booking_id: str,
        office: Office,
        start: datetime,
        end: datetime,
        busy_until: float,
        advisor: str,
        by: str | None,
    ) -> tuple[Booking, Booking] | None:
        """Booking and seats of a move in one atomic change: the booking after and before it, or None
        when `advisor`'s seat is taken. Retried on fresh reads after a lost race (a cancellation
        meanwhile ends it with `not_booked`)."""
        new_key = seat_key(advisor, start.date())
        while True:
            record = await self._booking_record(booking_id)
            current = from_record(Booking, record)
            self._check_changeable(current)
            seats = await self._store.get(SEATS_KIND, new_key)
            busy = [b for b in (seats["busy"] if seats else []) if b[2] != booking_id]
            if overlaps(busy, start.timestamp(), busy_until):
                return None
            moved = replace(
                current,
                starts_at=start.timestamp(),
                ends_at=end.timestamp(),
                busy_until=busy_until,
                advisor=advisor,
                sequence=current.sequence + 1,
                token_exp=self._token_exp(current),  # the links stay as they are
                changed_at=self.clock(),
                changed_by=by,
                entry_id=None,
                wait_token=None,
            )
            taken = {"busy": sorted([*busy, [start.timestamp(), busy_until, booking_id]])}
            changes = [
                Change(BOOKING_KIND, booking_id, record, asdict(moved)),
                Change(SEATS_KIND, new_key, seats, taken),
            ]
            old_key = seat_key(current.advisor, current.local_start(office).date())
            if old_key != new_key:
                changes += await self._seat_release(old_key, booking_id)
            if await self._store.compare_and_set_many(changes):
                return moved, current

    async def mark_no_show(self, booking: Booking, *, by: str) -> Booking:
        """The citizen did not come: only once the appointment has begun."""
        if booking.status != BOOKED:
            raise BookingError("not_booked", f"this appointment is {booking.status}", 409)
        if self.clock() < booking.starts_at:
            raise BookingError("not_started", "the appointment has not begun yet", 409)
        return await self._update(
            booking.booking_id,
            lambda b: (
                replace(b, status=NO_SHOW, changed_at=self.clock(), changed_by=by)
                if b.status == BOOKED
                else None
            ),
        )

    def _check_changeable(self, booking: Booking) -> None:
        if booking.status != BOOKED:
            raise BookingError(
                "not_booked", f"this appointment is {booking.status}", 409, current=booking.status
            )
        if self.clock() >= booking.starts_at:
            raise BookingError("already_started", "this appointment has already begun", 409)

    async def record_mail(self, booking_id: str, kind: str, sent_at: float) -> Booking:
        return await self._update(booking_id, lambda b: replace(b, mails=b.mails | {kind: sent_at}))

    async def _update(self, booking_id: str, change: Callable[[Booking], Booking | None]) -> Booking:
        """`change` applied to the stored booking (store.port.update); None from it means "not now"."""

        def change_record(record: Record | None) -> Record:
            if record is None:
                raise BookingError("unknown_booking", "this appointment does not exist (any more)", 404)
            current = from_record(Booking, record)
            updated = change(current)
            if updated is None:
                raise BookingError("not_booked", f"this appointment is {current.status}", 409)
            return asdict(updated)

        written = await update(self._store, BOOKING_KIND, booking_id, change_record)
        return from_record(Booking, written.after)

    async def forget_people(self, ended_before: float) -> int:
        """Data minimisation: appointments that ended before `ended_before` keep their reference, times
        and status (for statistics) but lose the citizen's name, e-mail, phone and waiting-room token."""
        count = 0
        for booking in await self.all():
            if booking.ends_at < ended_before and (
                booking.email or booking.phone or booking.name != FORGOTTEN
            ):
                await self._update(
                    booking.booking_id,
                    lambda b: replace(b, name=FORGOTTEN, email=None, phone=None, wait_token=None),
                )
                count += 1
        return count

    def _changed(self, booking: Booking) -> None:
        if self.on_change is not None:
            self.on_change(booking)

    # --- listing -------------------------------------------------------------------------------

    async def all(self) -> list[Booking]:
        return [from_record(Booking, record) for _, record in await self._store.scan(BOOKING_KIND)]

    async def for_member(self, member: StaffMember, start: float, end: float) -> list[Booking]:
        """Appointments of the member's offices beginning in [start, end), by start time: their own
        and their colleagues' (an advisor may take over a colleague's citizen)."""
        found = [
            b
            for b in await self.all()
            if b.office in member.offices and start <= b.starts_at < end and b.status != RESCHEDULED
        ]
        return sorted(found, key=lambda b: (b.starts_at, b.advisor != member.username, b.reference))

    def check_member(self, member: StaffMember, booking: Booking) -> None:
        if member.disabled or booking.office not in member.offices or not may_serve(member):
            raise BookingError("forbidden_office", "this appointment belongs to another office", 403)

    # --- joining the waiting room -----------------------------------------------------------------

    async def join(self, booking: Booking) -> JoinState:
        """What the join link does now. In the window from `join_lead` before the start to the end, the
        citizen is put into the office's queue as an appointment (once: a second click, or a reload,
        returns the same place in line)."""
        opens_at = booking.starts_at - self.join_lead
        if booking.status in (CANCELLED, RESCHEDULED):
            return JoinState("cancelled", booking, opens_at)
        now = self.clock()
        if now < opens_at:
            return JoinState("early", booking, opens_at)
        if now > booking.ends_at or booking.status == NO_SHOW:
            return JoinState("over", booking, opens_at)
        for _ in range(100):
            token = await self._live_wait_token(booking)
            if token is not None:
                return JoinState("open", booking, opens_at, token)
            if await self._store.create(JOIN_LOCK_KIND, booking.booking_id, {"at": now}, ttl=30):
                try:
                    return JoinState("open", booking, opens_at, await self._enqueue(booking))
                finally:
                    await self._store.delete(JOIN_LOCK_KIND, booking.booking_id)
            await asyncio.sleep(0.05)
            booking = await self.get(booking.booking_id) or booking
        raise BookingError("busy", "the waiting room is being opened; try again", 503)

    async def _live_wait_token(self, booking: Booking) -> str | None:
        current = await self.get(booking.booking_id)
        if current is None or not current.entry_id or not current.wait_token:
            return None
        entry = await self._queue.get(current.entry_id)
        if entry is None or entry.state == "abandoned":
            return None  # left the waiting room: a new click queues again
        return current.wait_token

    async def _enqueue(self, booking: Booking) -> str:
        office, service = self.service(booking.office, booking.service)
        try:
            enqueued = await self._queue.enqueue(
                office.id,
                booking.language,
                f"{service.name('de')} ({booking.reference})",
                appointment=Appointment(
                    datetime.fromtimestamp(booking.starts_at, UTC), booking.booking_id, booking.advisor
                ),
            )
        except QueueError as exc:
            raise BookingError(exc.code, exc.message, exc.status) from None
        await self._update(
            booking.booking_id,
            lambda b: replace(b, entry_id=enqueued.entry.entry_id, wait_token=enqueued.token),
        )
        return enqueued.token
