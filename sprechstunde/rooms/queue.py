"""The waiting room's queue: citizens line up per office and language, advisors claim them atomically,
and every place in line ends as a consultation outcome or as abandoned.

Order of service: appointments that are due (from `appointment_lead` seconds before their start) go
first, by start time; then walk-ins by arrival (at the very same instant: by entry id). The store's
`claim_first` picks the head of the advisor's lanes in one atomic step, so advisors pressing "Nächste
Person" at the same moment each get a different citizen and nobody is skipped.

Position and estimate follow the claiming order itself (rooms/estimate.py replays `claim_next` for the
advisors online and those in a consultation, with the offices' median handling times from
rooms.consultations): position = 1 + the citizens claimed before this one by advisors who could serve
it, the estimate = when its turn comes, "at once" when an idle advisor takes it. With nobody online
(or in a consultation) who can serve the entry there is no estimate, and `availability` says which
languages the office can serve now.

Abandonment: a citizen whose waiting page is disconnected longer than `grace` seconds (default 60), or
who never opens it within `connect_grace` seconds of joining, leaves the queue at the next `sweep` and
is recorded as abandoned with their wait. Reconnecting within the grace keeps the place.

Change notification: every change that others must see (a citizen joins, writes a note, leaves or is
abandoned, is claimed, released, transferred or finished; an advisor comes or goes) calls the registered
listeners (`listen`) once it is stored. The waiting room's sockets recompute what they show from there
(signaling/waiting.py), so no caller has to remember to announce a change.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from sprechstunde.rooms import hours
from sprechstunde.rooms.consultations import ABANDONED, CHANNELS, OUTCOMES, VIDEO
from sprechstunde.rooms.entries import (
    Appointment,
    Consultation,
    Enqueued,
    Outcome,
    QueueEntry,
    WaitStatus,
)
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.estimate import Desk, Place, Turn, busy_until, lane_parts, turn

# The intake checks, also under the names other modules import them by (web/waiting/models.py).
from sprechstunde.rooms.intake import (  # noqa: F401
    MAX_NOTE,
    MAX_QUESTION,
    MAX_TOPIC,
    MAX_TRANSCRIPT_MESSAGES,
    check_contact,
)
from sprechstunde.rooms.intake import check_note as _check_note
from sprechstunde.rooms.intake import check_topic as _check_topic
from sprechstunde.rooms.intake import check_transcript as _check_transcript
from sprechstunde.rooms.offices import DEFAULT_HANDLING_MINUTES

# The queue's record names, also under the names other modules import them by.
from sprechstunde.rooms.queue_records import (  # noqa: F401
    DEADLINE_KIND,
    ENTRY_KIND,
    ENTRY_TTL,
    QUEUE,
    WAIT_TOKEN_PURPOSE,
    Listener,
    QueueRecords,
)
from sprechstunde.rooms.routing import APPOINTMENT, WALK_IN, Availability, advisor_lanes, can_serve
from sprechstunde.rooms.staff import StaffDirectory, StaffMember
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.rooms.tickets import Ticket, check_notes
from sprechstunde.rooms.tokens import TokenError
from sprechstunde.store.port import QueueItem, from_record


class QueueService(QueueRecords):
    """The waiting room's domain core; the web layer calls it and pushes the results to browsers."""

    # --- citizens --------------------------------------------------------------------------------

    async def enqueue(
        self,
        office: str,
        language: str,
        topic: str,
        note: str | None = None,
        transcript: list[dict[str, str]] | None = None,
        appointment: Appointment | None = None,
        channel: str = VIDEO,
    ) -> Enqueued:
        """Join the queue. Walk-ins are refused outside service hours (`closed`, 409, with
        `detail["next_opening"]`); appointments are accepted whenever they are booked. `channel` "phone":
        a caller held on the line (sprechstunde/phone), who has no waiting page to connect: their call
        is the connection, and hanging up leaves the queue (`leave`)."""
        if channel not in CHANNELS:
            raise QueueError("invalid_channel", f"channel must be one of {', '.join(CHANNELS)}")
        the_office = self._offices.require(office)
        language = self._check_language(the_office, language)
        topic = _check_topic(topic)
        note = _check_note(note) if note is not None else None
        transcript = _check_transcript(transcript)
        now = self._clock()
        appointment_at = None
        if appointment is not None:
            at = appointment.starts_at
            if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
                raise QueueError("invalid_appointment", "an appointment needs a time-zone-aware start time")
            appointment_at = at.timestamp()
        else:
            moment = datetime.fromtimestamp(now, UTC)
            if not hours.is_open(the_office, moment):
                opening = hours.next_opening(the_office, moment)
                raise QueueError(
                    "closed",
                    f"{the_office.name('de')} is closed now"
                    + (f"; it opens again {opening.isoformat()}" if opening else ""),
                    409,
                    next_opening=opening.isoformat() if opening else None,
                )
        entry = QueueEntry(
            entry_id=secrets.token_urlsafe(12),
            office=office,
            language=language,
            topic=topic,
            enqueued_at=now,
            note=note,
            transcript=transcript,
            appointment_at=appointment_at,
            booking_id=appointment.booking_id if appointment else None,
            advisor=appointment.advisor if appointment else None,
            channel=channel,
        )
        # Record first, then the place in line: a crash in between leaves an orphan record that
        # expires, never a place in line without data.
        if not await self._store.create(ENTRY_KIND, entry.entry_id, asdict(entry), ttl=ENTRY_TTL):
            raise QueueError("conflict", "entry id collision; try again", 409)
        if channel == VIDEO:
            await self._store.put(
                DEADLINE_KIND,
                entry.entry_id,
                {"deadline": now + self.connect_grace, "since": now},
                ttl=ENTRY_TTL,
            )
        await self._store.enqueue(QUEUE, entry.entry_id, lane=entry.lane, score=self._score(entry))
        token = self._signer.sign(WAIT_TOKEN_PURPOSE, {"e": entry.entry_id, "exp": int(now + ENTRY_TTL)})
        status = await self.status(entry.entry_id)
        await self._changed()
        return Enqueued(entry=entry, token=token, status=status)

    async def entry_for_token(self, token: str) -> QueueEntry:
        """The entry a waiting-room token stands for; `invalid_token` (403), `expired` (410) or
        `unknown_entry` (404) otherwise."""
        try:
            claims = self._signer.verify(WAIT_TOKEN_PURPOSE, token)
        except TokenError as exc:
            if exc.reason == "expired":
                raise QueueError("expired", "this waiting-room link has expired", 410) from None
            raise QueueError("invalid_token", "this waiting-room link is not valid", 403) from None
        entry = await self.get(claims.get("e")) if isinstance(claims.get("e"), str) else None
        if entry is None:
            raise QueueError("unknown_entry", "this place in the queue no longer exists", 404)
        return entry

    async def set_note(self, entry_id: str, note: str) -> QueueEntry:
        """The citizen's short note about their concern, while they wait."""
        note = _check_note(note)
        entry = await self._update(
            entry_id, lambda e: replace(e, note=note) if e.state == "waiting" else None
        )
        await self._changed()
        return entry

    async def status(self, entry_id: str) -> WaitStatus:
        """Where the entry stands now: position, estimate, availability of its language."""
        entry = await self._require(entry_id)
        self._offices.require(entry.office)
        availability = await self.presence.availability(entry.office, entry.language)
        item = await self._store.queue_item(QUEUE, entry.entry_id)
        if item is None or item.claimed_by is not None or entry.state != "waiting":
            # A claimed item is "called" even in the instant before the record says so.
            state = "called" if item is not None and item.claimed_by is not None else entry.state
            return WaitStatus(entry.entry_id, state, None, None, availability, room_id=entry.room_id)
        now = self._clock()
        forecast, busy = await self._forecast(item, now)
        return WaitStatus(
            entry.entry_id,
            "waiting",
            forecast.position,
            None if forecast.starts_at is None else max(0.0, forecast.starts_at - now),
            availability,
            due=item.score <= now,
            advisor_free=forecast.advisor_free,
            advisors_busy=busy,
        )

    async def _forecast(self, target: QueueItem, now: float) -> tuple[Turn, int]:
        """`target`'s turn (rooms/estimate.py) from the store as it is: who waits, which advisors can
        claim (online, or in a consultation they claimed within the room's lifetime: they come back),
        and how busy they are. Also how many of those who could serve `target` are in a consultation."""
        items = await self._store.queued(QUEUE, claimed=None)
        places = [await self._place(i) for i in items if i.claimed_by is None]
        running: dict[str, QueueItem] = {}  # each advisor's latest consultation
        for i in items:
            if i.claimed_by and i.claimed_at is not None and now - i.claimed_at < self.room_ttl:
                latest = running.get(i.claimed_by)
                if latest is None or i.claimed_at > (latest.claimed_at or 0.0):
                    running[i.claimed_by] = i
        offices = {p.office for p in places} | {lane_parts(i.lane)[0] for i in running.values()}
        handling = {}
        for office_id in offices:
            office = self._offices.get(office_id)  # (an office removed from the configuration: the default)
            median = await self.log.median_handling(office) if office else DEFAULT_HANDLING_MINUTES * 60
            handling[office_id] = median
        members = {
            a.username: StaffMember(a.username, "advisor", list(a.offices), languages=list(a.languages))
            for a in await self.presence.advisors()
        }
        directory = StaffDirectory(self._store, self._clock)
        for name in running.keys() - members.keys():
            member = await directory.get(name)
            if member is not None:
                members[name] = member
        desks = []
        for name, member in members.items():
            lanes = advisor_lanes(member, self._offices, APPOINTMENT) + advisor_lanes(member, self._offices)
            if lanes:
                claim = running.get(name)
                free_at = now
                if claim is not None and claim.claimed_at is not None:
                    free_at = busy_until(claim.claimed_at, handling[lane_parts(claim.lane)[0]], now)
                desks.append(Desk(name, frozenset(lanes), free_at))
        place = next(p for p in places if p.key == target.key)
        busy = sum(1 for d in desks if d.free_at > now and place.lane in d.lanes)
        return turn(place, places, desks, handling, now), busy

    async def _place(self, item: QueueItem) -> Place:
        """A waiting item as the forecast sees it (an appointment's booked advisor from its entry)."""
        office, _, kind = lane_parts(item.lane)
        booked_with = None
        if kind == APPOINTMENT:
            entry = await self.get(item.key)
            booked_with = entry.advisor if entry else None
        return Place(item.key, item.lane, item.score, office, kind, booked_with)

    async def leave(self, entry_id: str) -> bool:
        """The citizen leaves the queue on purpose; recorded as abandoned. False if not waiting."""
        left = await self._abandon(entry_id, self._clock())
        if left:
            await self._changed()
        return left

    async def mark_disconnected(self, entry_id: str) -> None:
        """The waiting page's connection dropped: the place is kept for `grace` seconds."""
        entry = await self.get(entry_id)
        if entry is None or entry.state != "waiting":
            return
        now = self._clock()
        await self._store.put(
            DEADLINE_KIND, entry_id, {"deadline": now + self.grace, "since": now}, ttl=ENTRY_TTL
        )

    async def mark_connected(self, entry_id: str) -> None:
        """The waiting page is (again) connected: no deadline until it drops."""
        await self._store.delete(DEADLINE_KIND, entry_id)

    async def sweep(self, now: float | None = None) -> list[str]:
        """Remove entries whose grace has run out and record them as abandoned; returns their ids.
        The app calls this every few seconds; the marker delete decides a race with a reconnect.

        It also notices advisors who came or went without a socket of this process seeing it (presence
        expired, or a console on another process): either way the listeners hear of the change, so the
        waiting citizens and consoles get fresh figures. The first sweep only takes note."""
        now = self._clock() if now is None else now
        gone = []
        for entry_id, marker in await self._store.scan(DEADLINE_KIND):
            if marker["deadline"] > now:
                continue
            if not await self._store.delete(DEADLINE_KIND, entry_id):
                continue  # reconnected (or swept by another process) meanwhile
            if await self._abandon(entry_id, marker["since"]):
                gone.append(entry_id)
        online = frozenset((a.username, a.offices, a.languages) for a in await self.presence.advisors())
        presence_changed = self._online is not None and online != self._online
        self._online = online
        if gone or presence_changed:
            await self._changed()
        return gone

    # --- advisors ------------------------------------------------------------------------------

    async def waiting_for(self, member: StaffMember) -> list[QueueEntry]:
        """The console's list: waiting entries `member` may serve, in the order they will be served
        (due appointments, then walk-ins, then appointments not yet due)."""
        now = self._clock()
        appointments = await self._store.queued(QUEUE, advisor_lanes(member, self._offices, APPOINTMENT))
        walk_ins = await self._store.queued(QUEUE, advisor_lanes(member, self._offices, WALK_IN))
        due = [i for i in appointments if i.score <= now]
        later = [i for i in appointments if i.score > now]
        entries = []
        for item in [*due, *walk_ins, *later]:
            entry = await self.get(item.key)
            if entry is not None:
                entries.append(entry)
        # scheduling: due appointments booked with this advisor come first
        mine = [e for e in entries if e.advisor == member.username and self._score(e) <= now]
        return mine + [e for e in entries if e not in mine]

    async def claim_next(self, member: StaffMember) -> Consultation | None:
        """Take the next citizen this advisor can serve (a due appointment before any walk-in) and
        open a room for the consultation; None when nobody is waiting for them."""
        self._check_member(member)
        item = (
            await self._claim_booked_with(member)
            or await self._store.claim_first(
                QUEUE,
                advisor_lanes(member, self._offices, APPOINTMENT),
                member.username,
                max_score=self._clock(),
            )
            or await self._store.claim_first(
                QUEUE, advisor_lanes(member, self._offices, WALK_IN), member.username
            )
        )
        return None if item is None else await self._open_consultation(member, item)

    async def _claim_booked_with(self, member: StaffMember) -> QueueItem | None:
        """scheduling: a due appointment booked with `member` goes to them before anyone else's."""
        now = self._clock()
        for item in await self._store.queued(QUEUE, advisor_lanes(member, self._offices, APPOINTMENT)):
            if item.score > now:
                break
            entry = await self.get(item.key)
            if entry is not None and entry.advisor == member.username:
                claimed = await self._store.claim_item(QUEUE, item.key, member.username, lanes=[item.lane])
                if claimed is not None:
                    return claimed
        return None

    async def claim(self, member: StaffMember, entry_id: str) -> Consultation:
        """Take one particular waiting citizen (picked from the console list)."""
        self._check_member(member)
        entry = await self._require(entry_id)
        if entry.office not in member.offices:
            raise QueueError("forbidden_office", "this citizen waits for another office", 403)
        if not can_serve(member, entry):
            raise QueueError("language_not_served", "you do not serve this citizen's language", 403)
        item = await self._store.claim_item(QUEUE, entry.entry_id, member.username, lanes=[entry.lane])
        if item is None:
            raise QueueError("not_waiting", "this citizen is no longer waiting", 409)
        return await self._open_consultation(member, item)

    async def release(self, member: StaffMember, entry_id: str) -> QueueEntry:
        """Put a claimed citizen back in line at their old place (e.g. the advisor's call failed)."""
        entry = await self._held_by(member, entry_id)
        await self._store.enqueue(
            QUEUE, entry.entry_id, lane=entry.lane, score=self._score(entry), replace=True
        )
        released = await self._update(
            entry_id, lambda e: replace(e, state="waiting", claimed_by=None, claimed_at=None, room_id=None)
        )
        await self._changed()
        return released

    async def transfer(
        self,
        member: StaffMember,
        entry_id: str,
        office: str,
        note: str | None = None,
        language: str | None = None,
    ) -> QueueEntry:
        """Send a claimed citizen into another office's queue with a note for the colleagues there,
        keeping their arrival time (they do not start again at the back), their waiting-room link and
        their own note: the hand-over note is stored apart (`handover_note`, staff only)."""
        entry = await self._held_by(member, entry_id)
        target = self._offices.require(office)
        language = self._check_language(target, language or entry.language)
        handover_note = _check_note(note) if note is not None else entry.handover_note
        if entry.kind == WALK_IN and not hours.is_open(target, datetime.fromtimestamp(self._clock(), UTC)):
            opening = hours.next_opening(target, datetime.fromtimestamp(self._clock(), UTC))
            raise QueueError(
                "closed",
                f"{target.name('de')} is closed now",
                409,
                next_opening=opening.isoformat() if opening else None,
            )
        moved = replace(
            entry,
            office=office,
            language=language,
            handover_note=handover_note,
            state="waiting",
            claimed_by=None,
            claimed_at=None,
            room_id=None,
            transferred_from=[*entry.transferred_from, entry.office],
        )
        updated = await self._update(entry_id, lambda e: replace(moved, transcript=e.transcript, note=e.note))
        # The citizen's page leaves the call and reconnects to the waiting room; if it never does,
        # the usual grace applies and the place is given up as abandoned. A caller stays on the line.
        now = self._clock()
        if entry.channel == VIDEO:
            await self._store.put(
                DEADLINE_KIND, entry_id, {"deadline": now + self.grace, "since": now}, ttl=ENTRY_TTL
            )
        await self._store.enqueue(QUEUE, entry_id, lane=moved.lane, score=self._score(moved), replace=True)
        await self._changed()
        return updated

    async def finish(
        self, member: StaffMember, entry_id: str, outcome: str, notes: str | None = None
    ) -> Outcome:
        """End a consultation as resolved, ticket (a follow-up ticket is opened) or no_show."""
        if outcome not in OUTCOMES:
            raise QueueError("invalid_outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
        notes = check_notes(notes)
        entry = await self._held_by(member, entry_id)
        if not await self._store.dequeue(QUEUE, entry_id, claimant=member.username):
            raise QueueError("not_claimed", "you are not serving this citizen", 409)
        now = self._clock()
        office = self._offices.require(entry.office)
        ticket = None
        if outcome == "ticket":
            ticket = await self.tickets.open(
                entry.office,
                notes,
                created_by=member.username,
                entry_id=entry.entry_id,
                language=entry.language,
                topic=entry.topic,
            )
        wait = (entry.claimed_at or now) - self._wait_start(entry)
        handling = now - (entry.claimed_at or now)
        await self.log.add(
            self.log.new_record(
                office,
                entry_id=entry.entry_id,
                language=entry.language,
                outcome=outcome,
                arrived_at=entry.enqueued_at,
                wait_seconds=wait,
                handling_seconds=handling,
                appointment=entry.appointment_at is not None,
                ticket=ticket.reference if ticket else None,
                channel=entry.channel,
            )
        )
        await self._store.delete(DEADLINE_KIND, entry_id)
        done = await self._update(
            entry_id, lambda e: replace(e, state="done", outcome=outcome, ticket=ticket and ticket.reference)
        )
        await self._changed()
        return Outcome(done, outcome, wait, handling, ticket)

    async def serving(self, member: StaffMember) -> list[QueueEntry]:
        """The citizens this advisor admitted and has not yet closed with an outcome, newest first: the
        console offers to return to their calls, the call page shows their outcome controls."""
        entries = [from_record(QueueEntry, record) for _, record in await self._store.scan(ENTRY_KIND)]
        mine = [e for e in entries if e.state == "called" and e.claimed_by == member.username]
        return sorted(mine, key=lambda e: (e.claimed_at or 0.0, e.entry_id), reverse=True)

    async def ask(self, office: str, language: Any, topic: Any, question: Any, contact: Any) -> Ticket:
        """A question left in writing (outside service hours, or instead of waiting): a ticket the
        office answers by e-mail or phone. Nothing is stored unless every field is valid."""
        the_office = self._offices.require(office)
        language = self._check_language(the_office, language)
        topic = _check_topic(topic)
        if not isinstance(question, str) or not strip_bidi(question).strip():
            raise QueueError("empty_question", "write your question")
        question = check_notes(question, MAX_QUESTION)
        return await self.tickets.open(
            office,
            question,
            language=language,
            topic=topic,
            source="question",
            contact=check_contact(contact),
        )

    async def advisor_online(self, member: StaffMember) -> None:
        """An advisor opened a console: online now (keep it with `advisor_heartbeat`)."""
        await self.presence.online(member)
        await self._changed()

    async def advisor_heartbeat(self, member: StaffMember) -> None:
        """Heartbeat from an open console (at least every 30 s); no change to announce."""
        await self.presence.online(member)

    async def advisor_offline(self, username: str) -> None:
        """An advisor's last console closed."""
        await self.presence.offline(username)
        await self._changed()

    async def advisors_online(self, member: StaffMember) -> int:
        """How many advisors are online for any of `member`'s offices (the console shows it)."""
        return sum(1 for a in await self.presence.advisors() if set(a.offices) & set(member.offices))

    async def availability(self, office: str, language: str) -> Availability:
        """Before joining: can anyone online serve this office and language right now?"""
        the_office = self._offices.require(office)
        return await self.presence.availability(the_office.id, self._check_language(the_office, language))

    # --- internals -----------------------------------------------------------------------------

    async def _open_consultation(self, member: StaffMember, item: QueueItem) -> Consultation:
        try:
            entry = await self._require(item.key)
            room = await self._rooms.create(entry.office, self.room_ttl, created_by=member.username)
        except BaseException:
            # Give the place back rather than lose the citizen.
            await self._store.enqueue(QUEUE, item.key, lane=item.lane, score=item.score, replace=True)
            raise
        entry = await self._update(
            item.key,
            lambda e: replace(
                e,
                state="called",
                claimed_by=member.username,
                claimed_at=item.claimed_at,
                room_id=room.room_id,
            ),
        )
        await self._changed()
        return Consultation(entry=entry, room=room)

    async def _abandon(self, entry_id: str, left_at: float) -> bool:
        entry = await self.get(entry_id)
        if entry is None or not await self._store.dequeue(QUEUE, entry_id, only_unclaimed=True):
            return False
        await self._store.delete(DEADLINE_KIND, entry_id)
        office = self._offices.get(entry.office)
        if office is not None:
            await self.log.add(
                self.log.new_record(
                    office,
                    entry_id=entry.entry_id,
                    language=entry.language,
                    outcome=ABANDONED,
                    arrived_at=entry.enqueued_at,
                    wait_seconds=left_at - self._wait_start(entry),
                    handling_seconds=None,
                    appointment=entry.appointment_at is not None,
                    channel=entry.channel,
                )
            )
        await self._update(entry_id, lambda e: replace(e, state=ABANDONED, outcome=ABANDONED))
        return True
