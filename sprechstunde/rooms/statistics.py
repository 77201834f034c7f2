"""Office statistics from the consultation log: what an office lead reads every morning, and the
"Beste Zeiten" hint on the citizen start page.

Definitions (also shown on the statistics page):
- consultations: citizens an advisor admitted (outcome resolved, ticket or no_show);
- resolved at first contact: resolved ÷ (resolved + ticket) — a no-show is not a consultation held;
- abandoned: citizens who left the queue before being admitted; % of everyone who queued;
- wait p50/p90: of admitted citizens, from arrival (appointments: from their start) to admission;
- handling p50: of held consultations (resolved + ticket);
- load per hour: citizens who queued, by local arrival hour;
- satisfaction: the anonymous end-screen survey (rooms/feedback.py), 1–5, by the day the consultation ended;
- by channel: the same counts for citizens on the waiting page (video) and callers (phone), with the median
  and the mean wait, so an office sees whether callers wait longer or give up more often than video users.
Percentiles use the nearest-rank method, so every figure is one that really occurred.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sprechstunde.l10n import decimal_symbol
from sprechstunde.rooms.consultations import ABANDONED, CHANNELS, PHONE, ConsultationRecord
from sprechstunde.rooms.feedback import SCORES, FeedbackAnswer

ADMITTED = ("resolved", "ticket", "no_show")
HELD = ("resolved", "ticket")
# "Beste Zeiten": an hour needs this many citizens who queued in it before it can be recommended.
BEST_HOURS_MIN_SAMPLES = 3
BEST_HOURS_DAYS = 28


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class _Rates:
    """Resolved at first contact and abandoned, as shares: the same for a day's and a channel's figures."""

    resolved: int
    tickets: int
    abandoned: int
    queued: int

    @property
    def resolved_rate(self) -> float | None:
        held = self.resolved + self.tickets
        return self.resolved / held if held else None

    @property
    def abandoned_rate(self) -> float | None:
        return self.abandoned / self.queued if self.queued else None


@dataclass(frozen=True)
class ChannelStats(_Rates):
    """One channel's share of an office's figures (rows of the page's "by channel" table, CSV columns)."""

    office: str
    channel: str  # "video" | "phone"
    queued: int
    consultations: int
    resolved: int
    tickets: int
    abandoned: int
    wait_p50: float | None
    wait_average: float | None


def channel_summary(office: str, channel: str, records: Iterable[ConsultationRecord]) -> ChannelStats:
    """The figures of one channel's records (records of other channels are left out here)."""
    mine = [r for r in records if r.channel == channel]
    outcomes = Counter(r.outcome for r in mine)
    waits = [r.wait_seconds for r in mine if r.outcome in ADMITTED]
    return ChannelStats(
        office=office,
        channel=channel,
        queued=len(mine),
        consultations=sum(outcomes[o] for o in ADMITTED),
        resolved=outcomes["resolved"],
        tickets=outcomes["ticket"],
        abandoned=outcomes[ABANDONED],
        wait_p50=percentile(waits, 50),
        wait_average=statistics.fmean(waits) if waits else None,
    )


def by_channel(records: Iterable[ConsultationRecord]) -> list[ChannelStats]:
    """Per office (sorted by id), one row per channel in CHANNELS order (video, phone), zeros included,
    so the offices' rows line up; empty without records."""
    offices: dict[str, list[ConsultationRecord]] = defaultdict(list)
    for record in records:
        offices[record.office].append(record)
    return [channel_summary(office, ch, offices[office]) for office in sorted(offices) for ch in CHANNELS]


def has_phone(records: Iterable[ConsultationRecord]) -> bool:
    """Whether any caller is among the records: without one the split says nothing and is not shown."""
    return any(r.channel == PHONE for r in records)


@dataclass(frozen=True)
class DayStats(_Rates):
    day: str
    office: str
    queued: int
    consultations: int
    resolved: int
    tickets: int
    no_shows: int
    abandoned: int
    wait_p50: float | None
    wait_p90: float | None
    handling_p50: float | None
    load_per_hour: dict[int, int] = field(default_factory=dict)
    feedback: dict[int, int] = field(default_factory=dict)  # survey score 1–5 → answers
    channels: dict[str, ChannelStats] = field(default_factory=dict)  # "video" / "phone" → its figures

    @property
    def feedback_count(self) -> int:
        return sum(self.feedback.values())

    @property
    def feedback_average(self) -> float | None:
        count = self.feedback_count
        return sum(score * n for score, n in self.feedback.items()) / count if count else None


def summarize(
    day: str, office: str, records: Iterable[ConsultationRecord], feedback: Iterable[FeedbackAnswer] = ()
) -> DayStats:
    records = list(records)
    scores = Counter(answer.score for answer in feedback)
    outcomes = Counter(r.outcome for r in records)
    waits = [r.wait_seconds for r in records if r.outcome in ADMITTED]
    handling = [r.handling_seconds for r in records if r.outcome in HELD and r.handling_seconds is not None]
    return DayStats(
        day=day,
        office=office,
        queued=len(records),
        consultations=sum(outcomes[o] for o in ADMITTED),
        resolved=outcomes["resolved"],
        tickets=outcomes["ticket"],
        no_shows=outcomes["no_show"],
        abandoned=outcomes[ABANDONED],
        wait_p50=percentile(waits, 50),
        wait_p90=percentile(waits, 90),
        handling_p50=percentile(handling, 50),
        load_per_hour=dict(sorted(Counter(r.hour for r in records).items())),
        feedback={score: scores[score] for score in SCORES if scores[score]},
        channels={channel: channel_summary(office, channel, records) for channel in CHANNELS},
    )


def daily(records: Iterable[ConsultationRecord], feedback: Iterable[FeedbackAnswer] = ()) -> list[DayStats]:
    """One row per (day, office), oldest day first (a day with survey answers only has a row too)."""
    groups: dict[tuple[str, str], list[ConsultationRecord]] = defaultdict(list)
    answers: dict[tuple[str, str], list[FeedbackAnswer]] = defaultdict(list)
    for record in records:
        groups[(record.day, record.office)].append(record)
    for answer in feedback:
        answers[(answer.day, answer.office)].append(answer)
    keys = sorted(set(groups) | set(answers))
    return [summarize(day, office, groups[(day, office)], answers[(day, office)]) for day, office in keys]


def load_per_hour(rows: Iterable[DayStats]) -> dict[int, int]:
    """Citizens who queued per local hour of day, summed over the rows."""
    total: Counter[int] = Counter()
    for row in rows:
        total.update(row.load_per_hour)
    return dict(sorted(total.items()))


@dataclass(frozen=True)
class BestHour:
    hour: int
    median_wait: float
    samples: int


def best_hours(records: Iterable[ConsultationRecord], limit: int = 3) -> list[BestHour]:
    """The arrival hours with the shortest median wait. A citizen who gave up counts with the wait they
    endured (a lower bound), so an hour where people abandon does not look good. Hours with fewer than
    BEST_HOURS_MIN_SAMPLES citizens are left out: no hint rather than an invented one."""
    waits: dict[int, list[float]] = defaultdict(list)
    for record in records:
        if record.outcome in ADMITTED or record.outcome == ABANDONED:
            waits[record.hour].append(record.wait_seconds)
    ranked = [
        BestHour(hour, float(statistics.median(values)), len(values))
        for hour, values in waits.items()
        if len(values) >= BEST_HOURS_MIN_SAMPLES
    ]
    ranked.sort(key=lambda b: (b.median_wait, b.hour))
    return sorted(ranked[:limit], key=lambda b: b.hour)


# per channel (video_…, phone_…): the columns of ChannelStats in the CSV
CHANNEL_CSV_FIGURES = (
    "queued",
    "consultations",
    "resolved",
    "tickets",
    "abandoned",
    "resolved_first_contact_pct",
    "abandoned_pct",
    "wait_p50_s",
    "wait_avg_s",
)

CSV_COLUMNS = (
    "day",
    "office",
    "queued",
    "consultations",
    "resolved",
    "tickets",
    "no_shows",
    "abandoned",
    "resolved_first_contact_pct",
    "abandoned_pct",
    "wait_p50_s",
    "wait_p90_s",
    "handling_p50_s",
    *(f"queued_{hour:02d}h" for hour in range(24)),
    "feedback_count",
    "feedback_avg",
    *(f"feedback_{score}" for score in SCORES),
    # appended after the older columns, so a sheet that reads them by position keeps working
    *(f"{channel}_{name}" for channel in CHANNELS for name in CHANNEL_CSV_FIGURES),
)


def _decimal(value: float | None, digits: int, lang: str) -> str:
    """A CSV figure: no thousands separator, the language's decimal separator ("33,3" in German)."""
    return "" if value is None else f"{value:.{digits}f}".replace(".", decimal_symbol(lang))


def _pct(value: float | None, lang: str = "en") -> str:
    return _decimal(None if value is None else 100 * value, 1, lang)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _channel_cells(row: DayStats, channel: str, lang: str) -> list[object]:
    """The CHANNEL_CSV_FIGURES of one channel; a row without records of it has zeros and empty cells."""
    figures = row.channels.get(channel) or channel_summary(row.office, channel, ())
    return [
        figures.queued,
        figures.consultations,
        figures.resolved,
        figures.tickets,
        figures.abandoned,
        _pct(figures.resolved_rate, lang),
        _pct(figures.abandoned_rate, lang),
        _seconds(figures.wait_p50),
        _seconds(figures.wait_average),
    ]


def to_csv(rows: Iterable[DayStats], lang: str = "en") -> str:
    """The rows as CSV: a header line, empty cells where a figure is undefined. In a language with a
    decimal comma (German) the figures have one and the columns are separated by ";", as German Excel
    reads a CSV; otherwise (the machine variant) "," and "."."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if decimal_symbol(lang) == "," else ",", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.day,
                row.office,
                row.queued,
                row.consultations,
                row.resolved,
                row.tickets,
                row.no_shows,
                row.abandoned,
                _pct(row.resolved_rate, lang),
                _pct(row.abandoned_rate, lang),
                _seconds(row.wait_p50),
                _seconds(row.wait_p90),
                _seconds(row.handling_p50),
                *(row.load_per_hour.get(hour, 0) for hour in range(24)),
                row.feedback_count,
                _decimal(row.feedback_average, 2, lang),
                *(row.feedback.get(score, 0) for score in SCORES),
                *(cell for channel in CHANNELS for cell in _channel_cells(row, channel, lang)),
            ]
        )
    return out.getvalue()


def day_range(last: date, days: int) -> tuple[date, date]:
    """The `days` calendar days ending with `last`."""
    return last - timedelta(days=days - 1), last
