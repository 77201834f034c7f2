"""The store-facing layer of the queue (rooms/queue.py builds on it): the entry records and their
compare-and-set updates, the lookups every operation starts with, and the change listeners that hear of
every stored change. `QueueService` adds what citizens and advisors do."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from sprechstunde.clock import Now
from sprechstunde.rooms.consultations import ConsultationLog
from sprechstunde.rooms.entries import QueueEntry
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import Office, OfficeDirectory
from sprechstunde.rooms.routing import AdvisorPresence, advisor_lanes
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.rooms.tickets import TicketBook
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.store.port import Record, Store, from_record, update

log = logging.getLogger(__name__)

QUEUE = "waiting-room"
ENTRY_KIND = "queue-entry"
DEADLINE_KIND = "queue-deadline"
WAIT_TOKEN_PURPOSE = "wait"
# Entries (and their waiting-room links) live one day: nobody waits overnight in a video queue.
ENTRY_TTL = 24 * 3600

Listener = Callable[[], Awaitable[None]]
"""Called (awaited) after every stored change of the queue (see rooms/queue.py's docstring)."""


class QueueRecords:
    """Entry records, listeners and the checks shared by every queue operation."""

    def __init__(
        self,
        store: Store,
        offices: OfficeDirectory,
        signer: TokenSigner,
        rooms: RoomService,
        *,
        clock: Now = time.time,
        grace: float = 60.0,
        connect_grace: float = 300.0,
        appointment_lead: float = 300.0,
        room_ttl: float = 2 * 3600,
    ) -> None:
        self._store = store
        self._offices = offices
        self._signer = signer
        self._rooms = rooms
        self._clock = clock
        self.grace = grace
        self.connect_grace = connect_grace
        self.appointment_lead = appointment_lead
        self.room_ttl = room_ttl
        self.presence = AdvisorPresence(store, clock)
        self.tickets = TicketBook(store, offices, clock)
        self.log = ConsultationLog(store, clock)
        self._listeners: list[Listener] = []
        self._online: frozenset | None = None  # advisors online at the last sweep

    def listen(self, listener: Listener) -> None:
        """Have `listener` called after every stored change (the waiting room's notifier)."""
        self._listeners.append(listener)

    async def _changed(self) -> None:
        """Tell the listeners; the change is stored already, so a failing listener only logs."""
        for listener in self._listeners:
            try:
                await listener()
            except Exception:
                log.exception("queue change listener failed")

    async def get(self, entry_id: str) -> QueueEntry | None:
        if not isinstance(entry_id, str) or len(entry_id) > 64:
            return None
        record = await self._store.get(ENTRY_KIND, entry_id)
        return None if record is None else from_record(QueueEntry, record)

    async def _require(self, entry_id: str) -> QueueEntry:
        entry = await self.get(entry_id)
        if entry is None:
            raise QueueError("unknown_entry", "there is no such place in the queue", 404)
        return entry

    async def _held_by(self, member: StaffMember, entry_id: str) -> QueueEntry:
        entry = await self._require(entry_id)
        item = await self._store.queue_item(QUEUE, entry.entry_id)
        if item is None or item.claimed_by != member.username:
            raise QueueError("not_claimed", "you are not serving this citizen", 409)
        return entry

    async def _update(self, entry_id: str, change: Callable[[QueueEntry], QueueEntry | None]) -> QueueEntry:
        """`change` applied to the stored entry (store.port.update); None from it means "not allowed now"."""
        changed: list[QueueEntry] = []

        def change_record(record: Record | None) -> Record:
            if record is None:
                raise QueueError("unknown_entry", "there is no such place in the queue", 404)
            updated = change(from_record(QueueEntry, record))
            if updated is None:
                raise QueueError("not_waiting", "this citizen is no longer waiting", 409)
            changed[:] = [updated]
            return asdict(updated)

        await update(self._store, ENTRY_KIND, entry_id, change_record, ttl=ENTRY_TTL)
        return changed[0]

    def _score(self, entry: QueueEntry) -> float:
        if entry.appointment_at is not None:
            return entry.appointment_at - self.appointment_lead
        return entry.enqueued_at

    def _wait_start(self, entry: QueueEntry) -> float:
        """Waiting counts from arrival, for an appointment not before its start."""
        if entry.appointment_at is None:
            return entry.enqueued_at
        return max(entry.enqueued_at, entry.appointment_at)

    def _check_language(self, office: Office, language: Any) -> str:
        return office.check_language(language, QueueError)

    def _check_member(self, member: StaffMember) -> None:
        if member.disabled:
            raise QueueError("forbidden", "this account is disabled", 403)
        if not advisor_lanes(member, self._offices):
            raise QueueError("forbidden_role", "this account does not serve citizens", 403)
