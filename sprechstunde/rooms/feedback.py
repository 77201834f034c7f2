"""The end of a consultation as the citizen sees it, and the one-question satisfaction survey (issue 17).

Ending: when an advisor closes a consultation (QueueService.finish) the web layer records what the
citizen's end screen shows — outcome, ticket reference, office, language, and until when the documents
shared in the room are kept (the documents' purge: room expiry + retention). The end screen reads it with
an *end token*, signed with the server secret (purpose "ended", the room id, valid as long as the documents
are kept): the join link stops working when the room expires two hours after admission, the end screen and
its document links must not.

Survey (seed: Köln asked 400 citizens right after their visit): one question, a score 1–5 and an optional
comment. Anonymous: an answer stores office, office-local day, score and comment — no entry, room, name or
token, and no time of day (which the consultation log could match to one citizen). Once per consultation:
an "answered" marker keyed by a hash of the room id (one room per consultation; a hand-over opens a new
one) is created atomically before the answer is stored, so a second answer finds it (409). A crash between
marker and answer loses that answer rather than allowing two.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from hashlib import sha256
from typing import Any

from sprechstunde.clock import Now
from sprechstunde.errors import DomainError
from sprechstunde.rooms.offices import Office
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.rooms.tokens import TokenError, TokenSigner
from sprechstunde.store.port import Store, from_record

ENDING_KIND = "consultation-end"
ANSWERED_KIND = "feedback-answered"
FEEDBACK_KIND = "feedback"
END_PURPOSE = "ended"
SCORES = (1, 2, 3, 4, 5)
MAX_COMMENT = 1000
DAY = 86400.0


class FeedbackError(DomainError):
    """A refused end-screen or survey request (bad token, bad score, answered already)."""


@dataclass(frozen=True)
class Ending:
    """What the citizen's end screen shows of a closed consultation; never the advisor or their notes."""

    room_id: str
    office: str
    language: str
    outcome: str  # resolved | ticket | no_show
    ticket: str | None
    day: str  # office-local day of the end, YYYY-MM-DD (the survey answer's day)
    ended_at: float
    kept_until: float  # the room's documents are purged then (documents/service.py retention)


@dataclass(frozen=True)
class FeedbackAnswer:
    """One anonymous survey answer."""

    office: str
    day: str
    score: int
    comment: str = ""


def check_score(score: Any) -> int:
    """A score 1..5 (not a bool, not 4.5); FeedbackError `invalid_score` otherwise."""
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES:
        raise FeedbackError("invalid_score", "score must be a whole number from 1 to 5")
    return score


def check_comment(comment: Any) -> str:
    """The optional comment, cleaned like other free text (rooms/text.py): no direction controls, trimmed,
    at most MAX_COMMENT characters; FeedbackError otherwise."""
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise FeedbackError("invalid_comment", "comment must be text")
    comment = strip_bidi(comment).strip()
    if len(comment) > MAX_COMMENT:
        raise FeedbackError("comment_too_long", f"the comment may have at most {MAX_COMMENT} characters")
    return comment


class FeedbackService:
    """Endings of consultations and the anonymous survey answers, in the store port (like ConsultationLog).
    Stateless apart from store, signer and clock, so the web layer may build one per request."""

    def __init__(self, store: Store, signer: TokenSigner, clock: Now = time.time) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock

    # --- the end -----------------------------------------------------------------------------------

    async def record_end(
        self,
        office: Office,
        room_id: str,
        *,
        language: str,
        outcome: str,
        ticket: str | None,
        kept_until: float,
    ) -> Ending:
        """Remember the end of the consultation held in `room_id` (the last one wins: a finish is final)."""
        now = self._clock()
        ending = Ending(
            room_id=room_id,
            office=office.id,
            language=language,
            outcome=outcome,
            ticket=ticket,
            day=datetime.fromtimestamp(now, office.timezone).date().isoformat(),
            ended_at=now,
            kept_until=max(kept_until, now + DAY),
        )
        await self._store.put(ENDING_KIND, room_id, asdict(ending), ttl=ending.kept_until - now + DAY)
        return ending

    async def for_room(self, room_id: str) -> Ending | None:
        record = await self._store.get(ENDING_KIND, room_id)
        return None if record is None else from_record(Ending, record)

    def token(self, ending: Ending) -> str:
        """The end screen's token: the room id, valid until the documents are purged."""
        return self._signer.sign(END_PURPOSE, {"r": ending.room_id, "exp": int(ending.kept_until)})

    async def from_token(self, token: Any) -> Ending:
        """The ending an end token stands for: `invalid_token` (403), `expired` (410), `unknown_end` (404)."""
        try:
            claims = self._signer.verify(END_PURPOSE, token)
        except TokenError as exc:
            if exc.reason == "expired":
                raise FeedbackError("expired", "this link has expired", 410) from None
            raise FeedbackError("invalid_token", "this link is not valid", 403) from None
        room_id = claims.get("r")
        ending = await self.for_room(room_id) if isinstance(room_id, str) else None
        if ending is None:
            raise FeedbackError("unknown_end", "there is no closed consultation for this link", 404)
        return ending

    # --- the survey ----------------------------------------------------------------------------------

    @staticmethod
    def _marker(ending: Ending) -> str:
        return sha256(f"feedback.{ending.room_id}".encode()).hexdigest()[:32]

    async def answered(self, ending: Ending) -> bool:
        return await self._store.get(ANSWERED_KIND, self._marker(ending)) is not None

    async def answer(self, token: Any, score: Any, comment: Any = None) -> FeedbackAnswer:
        """Store one anonymous answer for the consultation of `token`; `answered` (409) the second time."""
        score = check_score(score)
        comment = check_comment(comment)
        ending = await self.from_token(token)
        ttl = max(ending.kept_until - self._clock(), 0.0) + DAY
        if not await self._store.create(ANSWERED_KIND, self._marker(ending), {"answered": True}, ttl=ttl):
            raise FeedbackError("answered", "this consultation has already been rated; thank you", 409)
        answer = FeedbackAnswer(office=ending.office, day=ending.day, score=score, comment=comment)
        # the key orders by day and office (prefix scans like the consultation log); the rest is random
        key = f"{answer.day}/{answer.office}/{secrets.token_hex(8)}"
        await self._store.put(FEEDBACK_KIND, key, asdict(answer))
        return answer

    async def answers(self, first: date, last: date, offices: Iterable[str]) -> list[FeedbackAnswer]:
        """The answers of days first..last (inclusive) of these offices."""
        wanted = list(offices)
        found: list[FeedbackAnswer] = []
        day = first
        while day <= last:
            for office in wanted:
                records = await self._store.scan(FEEDBACK_KIND, f"{day.isoformat()}/{office}/")
                found += [from_record(FeedbackAnswer, r) for _, r in records]
            day += timedelta(days=1)
        return found
