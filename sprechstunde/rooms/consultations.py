"""What happened to each citizen who queued, kept for office statistics, and the rolling handling time
that the wait estimate uses.

A record holds no personal data and no staff name: office, language, outcome, arrival day and hour (in
the office's time zone), wait and handling seconds, whether it was an appointment, the ticket reference.
Keys are `<YYYY-MM-DD>/<office>/<entry id>`, so one day (or one office-day) is a prefix scan.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sprechstunde.clock import Now
from sprechstunde.rooms.offices import Office
from sprechstunde.store.port import Record, Store, from_record, update

CONSULTATION_KIND = "consultation"
HANDLING_KIND = "handling-window"
OUTCOMES = ("resolved", "ticket", "no_show")
ABANDONED = "abandoned"
# how the citizen came: the waiting page (video) or a telephone call (sprechstunde/phone)
VIDEO = "video"
PHONE = "phone"
CHANNELS = (VIDEO, PHONE)
# The median is taken over the last WINDOW consultations of the office, none older than WINDOW_AGE:
# recent enough to follow a change of staff or topic, long enough not to jump with one long call.
WINDOW = 50
WINDOW_AGE = 28 * 86400


@dataclass(frozen=True)
class ConsultationRecord:
    entry_id: str
    office: str
    language: str
    outcome: str  # resolved | ticket | no_show | abandoned
    day: str  # local arrival day, YYYY-MM-DD
    hour: int  # local arrival hour, 0–23
    arrived_at: float
    wait_seconds: float
    handling_seconds: float | None  # None when nobody served them (abandoned)
    appointment: bool = False
    ticket: str | None = None
    channel: str = VIDEO  # records stored before it existed were all video


class ConsultationLog:
    def __init__(self, store: Store, clock: Now = time.time) -> None:
        self._store = store
        self._clock = clock
        # called with every stored record (e.g. the metrics of web/core/observability.py); must not raise
        self.observers: list[Callable[[ConsultationRecord], None]] = []

    def new_record(
        self,
        office: Office,
        *,
        entry_id: str,
        language: str,
        outcome: str,
        arrived_at: float,
        wait_seconds: float,
        handling_seconds: float | None,
        appointment: bool = False,
        ticket: str | None = None,
        channel: str = VIDEO,
    ) -> ConsultationRecord:
        local = datetime.fromtimestamp(arrived_at, office.timezone)
        return ConsultationRecord(
            entry_id=entry_id,
            office=office.id,
            language=language,
            outcome=outcome,
            day=local.date().isoformat(),
            hour=local.hour,
            arrived_at=arrived_at,
            wait_seconds=round(max(wait_seconds, 0.0), 3),
            handling_seconds=None if handling_seconds is None else round(max(handling_seconds, 0.0), 3),
            appointment=appointment,
            ticket=ticket,
            channel=channel,
        )

    async def add(self, record: ConsultationRecord) -> None:
        """Store the record; a resolved or ticketed consultation also feeds the handling-time window
        (a no-show says nothing about how long a consultation takes)."""
        key = f"{record.day}/{record.office}/{record.entry_id}"
        await self._store.put(CONSULTATION_KIND, key, asdict(record))
        for observe in self.observers:
            observe(record)
        if record.outcome in ("resolved", "ticket") and record.handling_seconds is not None:
            await self._remember_handling(record.office, record.handling_seconds)

    async def records(self, first: date, last: date, office: str | None = None) -> list[ConsultationRecord]:
        """Records of arrival days first..last (inclusive), optionally of one office."""
        found = []
        day = first
        while day <= last:
            prefix = f"{day.isoformat()}/" + (f"{office}/" if office else "")
            records = await self._store.scan(CONSULTATION_KIND, prefix)
            found += [from_record(ConsultationRecord, r) for _, r in records]
            day += timedelta(days=1)
        return found

    async def _remember_handling(self, office: str, seconds: float) -> None:
        def add(current: Record | None) -> Record:
            now = self._clock()
            samples = [s for s in (current or {}).get("samples", []) if s[0] > now - WINDOW_AGE]
            return {"samples": [*samples, [now, seconds]][-WINDOW:]}

        await update(self._store, HANDLING_KIND, office, add)

    async def median_handling(self, office: Office) -> float:
        """Median handling seconds of the office's recent consultations; the configured
        `handling_minutes` until there is any."""
        current = await self._store.get(HANDLING_KIND, office.id)
        now = self._clock()
        samples = [s[1] for s in (current or {}).get("samples", []) if s[0] > now - WINDOW_AGE]
        return float(statistics.median(samples)) if samples else office.handling_minutes * 60.0
