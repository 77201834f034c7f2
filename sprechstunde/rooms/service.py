"""Creating and looking up consultation rooms in the shared store."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from hashlib import sha256
from urllib.parse import quote

from sprechstunde.clock import Now
from sprechstunde.errors import DomainError
from sprechstunde.rooms.tokens import JoinGrant, TokenError, TokenSigner
from sprechstunde.store.port import Store, from_record

ROOM_KIND = "room"
MAX_TTL_SECONDS = 7 * 24 * 3600
OFFICE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class RoomError(DomainError):
    """A request about rooms that cannot be honoured (and QueueError's base: `except RoomError` in the
    join paths takes both)."""


@dataclass(frozen=True)
class Room:
    room_id: str
    office: str
    created_at: float
    expires_at: float
    created_by: str | None = None


@dataclass(frozen=True)
class RoomLinks:
    room: Room
    advisor_url: str
    citizen_url: str

    def as_json(self) -> dict:
        """The stable contract of `sprechstunde room create` and `POST /api/rooms`."""
        return {
            "room_id": self.room.room_id,
            "advisor_url": self.advisor_url,
            "citizen_url": self.citizen_url,
            "expires_at": datetime.fromtimestamp(self.room.expires_at, UTC).isoformat(),
        }


def parse_duration(text: str) -> float:
    """'90m', '2h', '1d', '45s' or plain seconds → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m:
        raise RoomError("invalid_ttl", f"invalid duration {text!r}; use e.g. 90m, 2h, 1d")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not 60 <= value <= MAX_TTL_SECONDS:
        raise RoomError("invalid_ttl", "duration must be between 1 minute and 7 days")
    return value


class RoomService:
    def __init__(self, store: Store, signer: TokenSigner, clock: Now = time.time) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock

    async def create(self, office: str, ttl: float, created_by: str | None = None) -> Room:
        if not isinstance(office, str) or not OFFICE_ID.match(office):
            raise RoomError("invalid_office", "office must be a short lowercase id such as 'vhs'")
        now = self._clock()
        room = Room(
            room_id=secrets.token_urlsafe(12),
            office=office,
            created_at=now,
            expires_at=now + ttl,
            created_by=created_by,
        )
        # Keep the record a day beyond expiry so an expired link can be told apart from an unknown one.
        if not await self._store.create(ROOM_KIND, room.room_id, asdict(room), ttl=ttl + 86400):
            raise RoomError("conflict", "room id collision; try again", 409)
        return room

    async def get(self, room_id: str) -> Room | None:
        record = await self._store.get(ROOM_KIND, room_id)
        return None if record is None else from_record(Room, record)

    def link(self, room: Room, role: str, base_url: str) -> str:
        """A join link for one role; valid until the room expires."""
        token = self._signer.join_token(room.room_id, role, room.expires_at)
        return f"{base_url.rstrip('/')}/join/{quote(token)}"

    async def admission_links(self, room_id: str) -> tuple[str, str] | None:
        """What the waiting room hands out when an advisor calls a citizen into `room_id`: the citizen's
        join token and the advisor's join path (relative to this server); None when the room is gone."""
        room = await self.get(room_id)
        if room is None:
            return None
        citizen = self._signer.join_token(room.room_id, "citizen", room.expires_at)
        return citizen, self.link(room, "advisor", "")

    def links(self, room: Room, base_url: str) -> RoomLinks:
        return RoomLinks(
            room=room,
            advisor_url=self.link(room, "advisor", base_url),
            citizen_url=self.link(room, "citizen", base_url),
        )

    @staticmethod
    def seat(grant: JoinGrant, token: str) -> str:
        """Which seat of its room a verified join link holds; a seat has at most one live connection.

        One advisor and one citizen per room, whatever link they came with: the waiting room signs a
        fresh citizen link at every admission (a reloaded waiting page gets another one) and the console
        a fresh advisor link whenever it lists the consultation, yet it is the same person each time. A
        guest link is one seat of its own (an interpreter and a colleague each get one). The guest seat
        is named by the signed claims (with their nonce), which no re-spelling of the token changes.
        """
        if grant.role != "guest":
            return grant.role
        claims = token.split(".", 1)[0]
        return "guest:" + sha256(claims.encode()).hexdigest()[:16]

    async def admit(self, token: str) -> tuple[JoinGrant, Room]:
        """Resolve a join token to its grant and live room; RoomError with 403/404/410 otherwise."""
        try:
            grant = self._signer.verify_join(token)
        except TokenError as exc:
            if exc.reason == "expired":
                raise RoomError("expired", "this link has expired", 410) from None
            raise RoomError("invalid_token", "this link is not valid", 403) from None
        room = await self.get(grant.room_id)
        if room is None:
            raise RoomError("unknown_room", "this consultation room does not exist", 404)
        if room.expires_at <= self._clock():
            raise RoomError("expired", "this consultation has ended", 410)
        return grant, room
