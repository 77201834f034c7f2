"""The chat of a consultation so far, kept in the shared store so that whoever joins later (an interpreter,
a colleague) or reconnects (a reload, a new network, the room moving to another node) reads what was
written before (issue 17, item 6).

One record per room (`chat-history`/<room id>) holds the last messages, oldest first: at most
`MAX_MESSAGES`, and at most `MAX_TEXT_CHARS` characters of text in all (the oldest are dropped first),
so a long consultation cannot grow the record without bound. The record expires with the room (its TTL
is the room's remaining lifetime) and is deleted when the live room expires, so the chat is gone when
the consultation's room is. Each message carries a server-given `message_id`: a page that receives the
history again (after a reconnect) and the live `chat` for the same message shows it once.

Only a participant admitted to the room receives it (signaling/connection.py puts it in `welcome`).

The node hosting the room keeps the list in memory (signaling/hub.py, `LiveRoom.chat`, read from the store
when the room starts on that node) and hands every change to `keep`, which stores the newest list shortly
after (signaling/persist.py): a chat message waits for no store round trip, and a burst of messages costs
at most one write per room instead of a read, compare and write of the whole record each (issue 21).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sprechstunde.clock import Now
from sprechstunde.signaling.persist import WriteBehind
from sprechstunde.store.port import Record, Store, update

log = logging.getLogger(__name__)

HISTORY_KIND = "chat-history"
MAX_MESSAGES = 200
MAX_TEXT_CHARS = 100_000
# Fields of a stored message, as the `chat` message carries them (docs/protocol.md).
FIELDS = ("message_id", "from", "name", "role", "text", "sent_at")


def new_message_id() -> str:
    """A message's id: unique within its room, never reused, opaque to clients."""
    return "m-" + secrets.token_hex(6)


def sent_at() -> str:
    """When a message is sent, as it carries it (`sent_at`: ISO 8601, UTC, to the second). Formatted once
    per second: a burst of 500 messages asks for it 500 times within the same one."""
    return _second(int(time.time()))


@functools.lru_cache(maxsize=1)
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")


def client_message_id(room_id: str, client_id: str) -> str:
    """The id of a message whose page gave it `client_id` (`chat.client_message_id`): the same each time
    the page sends it again (after a reconnect, unsure whether it was kept), so it is kept and shown once."""
    return "m-" + hashlib.sha256(f"{room_id}\n{client_id}".encode()).hexdigest()[:12]


def stored(message: dict[str, Any]) -> dict[str, Any]:
    """What the history keeps of a `chat` message (its FIELDS)."""
    return {name: message[name] for name in FIELDS if name in message}


def bounded(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest messages that fit `MAX_MESSAGES` and `MAX_TEXT_CHARS`, oldest first."""
    kept: list[dict[str, Any]] = []
    chars = 0
    for message in reversed(messages[-MAX_MESSAGES:]):
        chars += len(message.get("text", ""))
        if chars > MAX_TEXT_CHARS:
            break
        kept.append(message)
    kept.reverse()
    return kept


class ChatHistory:
    """Appends, reads and drops the chat of rooms; every node sharing the store sees the same."""

    def __init__(self, store: Store, clock: Now = time.time) -> None:
        self._store = store
        self._clock = clock
        self._writes = WriteBehind(store, clock=clock)

    def keep(self, room_id: str, expires_at: float, messages: list[dict[str, Any]]) -> None:
        """`messages` (already `bounded`) are the room's chat now: stored shortly, until the room expires."""
        self._writes.set(HISTORY_KIND, room_id, {"messages": messages}, expires_at)

    def settled(self, room_id: str) -> asyncio.Future[bool]:
        """Resolves once the room's chat as last given to `keep` is stored (True) or could not be (False)."""
        return self._writes.settled(HISTORY_KIND, room_id)

    async def flush(self) -> None:
        """Store what `keep` was given and not yet written (shutdown; tests that read the store)."""
        await self._writes.flush()

    async def append(self, room_id: str, expires_at: float, message: dict[str, Any]) -> None:
        """Keep `message` (its FIELDS) as the newest of the room, until the room expires, written to the
        store at once (read, compare and write of the record; the live room uses `keep` instead).

        Best effort: when the store fails, the message still goes out live to everyone connected (only
        a later joiner misses it), so a store hiccup never swallows what someone wrote."""
        ttl = expires_at - self._clock()
        if ttl <= 0:
            return  # the room is over: nothing of it is kept
        entry = stored(message)

        def add(current: Record | None) -> Record:
            messages = (current or {}).get("messages", [])
            if any(m.get("message_id") == entry.get("message_id") for m in messages):
                return {"messages": messages}  # sent again (its page was not sure): kept once
            return {"messages": bounded([*messages, entry])}

        try:
            await update(self._store, HISTORY_KIND, room_id, add, ttl=ttl)
        except Exception as exc:
            log.warning("chat message of room %s not kept for later joiners: %s", room_id, exc)

    async def messages(self, room_id: str) -> list[dict[str, Any]]:
        """The room's messages so far, oldest first (empty when none or the room is gone)."""
        pending = self._writes.pending(HISTORY_KIND, room_id)
        if pending is not None:
            value, expires_at = pending
            return [] if value is None or expires_at <= self._clock() else list(value["messages"])
        record = await self._store.get(HISTORY_KIND, room_id)
        return list((record or {}).get("messages", []))

    async def drop(self, room_id: str) -> None:
        """Forget the room's chat (its room expired), a write still pending included."""
        self._writes.set(HISTORY_KIND, room_id, None, 0.0)
        await self._writes.flush()
