"""The waiting room's two WebSockets and their change notifications (docs/protocol.md, "Waiting room").

`/ws/queue` is the citizen's waiting page: position, estimate and availability pushed after every change,
`admitted` with a join token when an advisor claims the entry. `/ws/console` is the advisor's live list of
citizens they may serve, with "next" and "claim". Both recompute from the store whenever `QueueEvents`
says something changed, so a later multi-process notifier (Redis pub/sub) only has to replace that class.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from sprechstunde.rooms import hours
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import WEEKDAYS, Office, OfficeDirectory
from sprechstunde.rooms.queue import QueueEntry, QueueService
from sprechstunde.rooms.service import RoomError
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.signaling.connection import STORE_UNAVAILABLE, UNAVAILABLE_TEXT
from sprechstunde.signaling.protocol import MAX_ID_CHARS, ProtocolError, Schema, error_message, parse
from sprechstunde.signaling.ratelimit import TokenBucket
from sprechstunde.store.outage import store_outage
from sprechstunde.store.port import Store, Subscription
from sprechstunde.tasks import BackgroundTasks, stop

log = logging.getLogger(__name__)

FLOOD_RATE = 50.0
FLOOD_BURST = 100.0
HARD_FRAME_LIMIT = 1024 * 1024
SWEEP_INTERVAL = 5.0
QUEUE_CHANNEL = "queue-changes"
PRESENCE_INTERVAL = 30.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403

WAITING_SCHEMA: Schema = {
    "wait": {"token": ((str,), True, 2048)},
    "note": {"text": ((str,), True, 2000)},
    "leave": {},
    "ping": {},
}
CONSOLE_SCHEMA: Schema = {
    "next": {},
    "claim": {"entry_id": ((str,), True, MAX_ID_CHARS)},
    "ping": {},
}


class Clock:
    """Wall-clock time with an adjustable offset: production runs at offset 0, tests move the queue
    to a known opening hour without touching the system clock."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def set(self, moment: datetime) -> None:
        """From now on the clock reads `moment` (and runs on from there)."""
        self.offset = moment.timestamp() - time.time()


class QueueEvents:
    """Change notifier: a version counter that waiters watch. Every enqueue, claim, leave, note,
    abandonment and advisor online/offline calls `notify`; each open socket then recomputes what it
    shows. With a `bus` (several nodes on Redis) a change is also announced on the store's channel, and
    changes announced by other nodes wake this node's sockets too."""

    def __init__(self, bus: Store | None = None) -> None:
        self.version = 0
        self._event = asyncio.Event()
        self._bus = bus
        self._origin = secrets.token_hex(6)
        self._listener: asyncio.Task | None = None

    async def notify(self) -> None:
        self._bump()
        if self._bus is not None:
            try:
                await self._bus.publish(QUEUE_CHANNEL, {"from": self._origin})
            except Exception as exc:  # the change itself is stored; other nodes catch up at their sweep
                log.warning("queue change not announced to other nodes: %s", exc)

    def _bump(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def start(self) -> None:
        if self._bus is not None and self._listener is None:
            subscription = await self._bus.subscribe(QUEUE_CHANNEL)
            self._listener = asyncio.ensure_future(self._listen(subscription))

    async def _listen(self, subscription: Subscription) -> None:
        try:
            while True:
                message = await subscription.next()
                if message.get("from") != self._origin:
                    self._bump()
        finally:
            await subscription.close()

    async def close(self) -> None:
        await stop(self._listener)
        self._listener = None

    async def wait(self, seen: int) -> int:
        """Return as soon as the version differs from `seen` (at once if it already does)."""
        while self.version == seen:
            await self._event.wait()
        return self.version


# --- JSON views -------------------------------------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _hhmm(interval: tuple) -> str:
    start, end = interval
    return f"{start:%H:%M}–{end:%H:%M}"


def office_hours(office: Office) -> list[dict[str, Any]]:
    return [
        {"day": day, "intervals": [_hhmm(i) for i in intervals]}
        for day, intervals in zip(WEEKDAYS, office.hours, strict=True)
    ]


DAY_NAMES = {
    "de": ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def hours_text(office: Office, lang: str = "de") -> str:
    """One line such as "Mo 08:00–17:00 · … · Fr 08:00–13:00" (closed days left out)."""
    names = DAY_NAMES.get(lang, DAY_NAMES["de"])
    return " · ".join(
        f"{names[i]} {', '.join(_hhmm(x) for x in intervals)}"
        for i, intervals in enumerate(office.hours)
        if intervals
    )


def office_json(office: Office, now: float, lang: str | None = None) -> dict[str, Any]:
    """Open now, next opening, closes at; with `lang` the name in it, else both names."""
    moment = datetime.fromtimestamp(now, UTC)
    open_now = hours.is_open(office, moment)
    opening = None if open_now else hours.next_opening(office, moment)
    closes = hours.closes_at(office, moment) if open_now else None
    view: dict[str, Any] = {"id": office.id}
    if lang is None:
        view["names"] = {"de": office.name("de"), "en": office.name("en")}
        view["languages"] = list(office.languages)
    else:
        view["name"] = office.name(lang)
    view |= {
        "open_now": open_now,
        "next_opening": opening.isoformat() if opening else None,
        "closes_at": closes.astimezone(office.timezone).isoformat() if closes else None,
    }
    return view


def entry_json(
    entry: QueueEntry, offices: OfficeDirectory, now: float, transcript: bool = True, staff: bool = False
) -> dict[str, Any]:
    """What the console (and the waiting page) shows of an entry; never the advisor's name.

    `note` is the citizen's own. Staff-only fields (the colleagues' hand-over note) are added only with
    `staff=True`, so a view made for the citizen cannot carry them by accident.
    """
    office = offices.get(entry.office)
    view: dict[str, Any] = {
        "entry_id": entry.entry_id,
        "office": entry.office,
        "office_name": office.name("de") if office else entry.office,
        "language": entry.language,
        "topic": entry.topic,
        "note": entry.note,
        "enqueued_at": _iso(entry.enqueued_at),
        "waited_seconds": max(0, round(now - entry.enqueued_at)),
        "appointment": None
        if entry.appointment_at is None
        else {"starts_at": _iso(entry.appointment_at), "booking_id": entry.booking_id},
        "transferred_from": list(entry.transferred_from),
    }
    if transcript:
        view["transcript"] = [dict(m) for m in entry.transcript]
    if staff:
        view["handover_note"] = entry.handover_note
    return view


# --- the shared state of this process ---------------------------------------------------------------

JoinLinks = Callable[[str], Awaitable[tuple[str, str] | None]]
"""room_id → (citizen join token, advisor join URL path) or None when the room is gone."""


class WaitingRoom:
    """Everything the two sockets share: the queue, the notifier, which entries and advisors have a
    socket open in this process, and the background sweep."""

    def __init__(
        self,
        queue: QueueService,
        offices: OfficeDirectory,
        links: JoinLinks,
        clock: Callable[[], float] = time.time,
        events: QueueEvents | None = None,
    ) -> None:
        self.queue = queue
        self.offices = offices
        self.links = links
        self.clock = clock
        self.events = events or QueueEvents()
        self.entries: Counter[str] = Counter()
        self.advisors: Counter[str] = Counter()
        self.sockets: set[web.WebSocketResponse] = set()
        self._sweeper: asyncio.Task | None = None
        self._tasks = BackgroundTasks("waiting-room")
        self._online: frozenset | None = None  # advisors online at the last sweep

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        """Background work (a closed socket's cleanup) that `close` waits for, so none outlives the app."""
        return self._tasks.spawn(coro)

    async def start(self, interval: float = SWEEP_INTERVAL) -> None:
        await self.events.start()
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep_forever(interval))

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("queue sweep failed")

    async def sweep(self) -> list[str]:
        """Abandon citizens whose grace ran out, and notice advisors who came or went without this
        process seeing a socket (presence expired, or a console on another process): either way the
        waiting citizens and consoles get fresh figures."""
        gone = await self.queue.sweep()
        online = frozenset((a.username, a.offices, a.languages) for a in await self.queue.presence.advisors())
        changed = self._online is not None and online != self._online
        self._online = online
        if gone or changed:
            await self.events.notify()
        return gone

    async def close(self) -> None:
        await stop(self._sweeper)
        self._sweeper = None
        await self.events.close()
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"server shutting down")
        await self._tasks.wait(timeout=5.0)

    async def advisors_online(self, member: StaffMember) -> int:
        return sum(1 for a in await self.queue.presence.advisors() if set(a.offices) & set(member.offices))


# --- connections --------------------------------------------------------------------------------------


class _Socket:
    schema: Schema

    def __init__(self, room: WaitingRoom, ws: web.WebSocketResponse) -> None:
        self.room = room
        self.ws = ws
        self.done = False
        self._send_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._finisher: asyncio.Task | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            try:
                await self.ws.send_json(message)
            except (ConnectionError, RuntimeError):
                pass

    async def finish(
        self, message: dict[str, Any] | None = None, code: int = 1000, reason: bytes = b""
    ) -> None:
        self.done = True
        self._finisher = asyncio.current_task()
        if message is not None:
            await self.send(message)
        if not self.ws.closed:
            await self.ws.close(code=code, message=reason)

    def spawn(self, coro: Awaitable[Any]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def run(self) -> None:
        bucket = TokenBucket(FLOOD_RATE, FLOOD_BURST)
        self.room.sockets.add(self.ws)
        try:
            async for frame in self.ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                if not bucket.allow():
                    log.warning("closing a flooding waiting-room connection")
                    await self.ws.close(code=1008, message=b"too many messages")
                    break
                request_id = None
                try:
                    message = parse(frame.data, self.schema)
                    request_id = message.get("id")
                    if message["type"] == "ping":
                        await self.send({"type": "pong", "id": request_id})
                    else:
                        await self.dispatch(message)
                except ProtocolError as exc:
                    await self.send(error_message(exc.code, exc.message, exc.request_id))
                except QueueError as exc:
                    await self.send(error_message(exc.code, exc.message, request_id))
                except Exception as exc:
                    if store_outage(exc):
                        log.warning("store unavailable in the waiting room: %s", type(exc).__name__)
                        await self.send(error_message(STORE_UNAVAILABLE, UNAVAILABLE_TEXT, request_id))
                    else:
                        log.exception("waiting-room message failed")
                        await self.send(
                            error_message("internal", "the server could not process this", request_id)
                        )
                if self.done:
                    break
        finally:
            # aiohttp cancels the handler when the client vanishes; the cleanup must still finish.
            self.room.sockets.discard(self.ws)
            await asyncio.shield(self.room.spawn(self._cleanup(asyncio.current_task())))

    async def _cleanup(self, handler: asyncio.Task | None) -> None:
        tasks = [t for t in self._tasks if t is not handler and not t.done()]
        finisher = self._finisher
        if finisher is not None and finisher in tasks:
            # A push is closing the socket right now (admitted/removed): let it finish.
            await asyncio.wait([finisher], timeout=2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.closed()

    async def dispatch(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def closed(self) -> None:
        pass

    async def _watch(self, push: Callable[[], Awaitable[None]]) -> None:
        """Push now and after every change until the socket is done."""
        while not self.done and not self.ws.closed:
            seen = self.room.events.version
            try:
                await push()
            except Exception:
                log.exception("waiting-room push failed")
            await self.room.events.wait(seen)


class WaitingConnection(_Socket):
    """GET /ws/queue — one citizen's waiting page."""

    schema = WAITING_SCHEMA

    def __init__(self, room: WaitingRoom, ws: web.WebSocketResponse, lang: str = "de") -> None:
        super().__init__(room, ws)
        self.lang = lang
        self.entry_id: str | None = None
        self.left = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind, request_id = message["type"], message.get("id")
        if kind == "wait":
            if self.entry_id is not None:
                raise ProtocolError("already_waiting", "this connection already waits", request_id)
            entry = await self.room.queue.entry_for_token(message["token"])
            self.entry_id = entry.entry_id
            self.room.entries[entry.entry_id] += 1
            if entry.state == "waiting":
                await self.room.queue.mark_connected(entry.entry_id)
            self.spawn(self._watch(self.push))
            return
        if self.entry_id is None:
            raise ProtocolError("not_waiting", "send 'wait' with your waiting-room token first", request_id)
        if kind == "note":
            await self.room.queue.set_note(self.entry_id, message["text"])
            await self.room.events.notify()
        elif kind == "leave":
            if not await self.room.queue.leave(self.entry_id):
                raise QueueError("not_waiting", "you are no longer waiting")
            self.left = True
            await self.room.events.notify()
            await self.finish({"type": "removed", "reason": "left"}, reason=b"left")

    async def push(self) -> None:
        if self.entry_id is None or self.done:
            return
        queue = self.room.queue
        entry = await queue.get(self.entry_id)
        if entry is None:
            await self.finish({"type": "removed", "reason": "abandoned"})
            return
        status = await queue.status(self.entry_id)
        if status.state == "called":
            entry = await queue.get(self.entry_id) or entry
            if entry.room_id is None:
                return  # claimed this instant; the room follows with the next change
            links = await self.room.links(entry.room_id)
            if links is None:
                await self.finish({"type": "removed", "reason": "done"})
                return
            token, _ = links
            await self.finish(
                {
                    "type": "admitted",
                    "room_id": entry.room_id,
                    "join_token": token,
                    "join_url": f"/join/{token}",
                },
                reason=b"admitted",
            )
            return
        if status.state != "waiting":
            reason = "left" if self.left else ("done" if status.state == "done" else "abandoned")
            await self.finish({"type": "removed", "reason": reason})
            return
        office = self.room.offices.get(entry.office)
        await self.send(
            {
                "type": "queue-status",
                **status.as_json(),
                "note": entry.note,
                "office": office_json(office, self.room.clock(), self.lang)
                if office
                else {"id": entry.office},
            }
        )

    async def closed(self) -> None:
        if self.entry_id is None:
            return
        self.room.entries[self.entry_id] -= 1
        if self.room.entries[self.entry_id] <= 0:
            del self.room.entries[self.entry_id]
            if not self.left:
                await self.room.queue.mark_disconnected(self.entry_id)


MemberLookup = Callable[[], Awaitable[StaffMember | None]]


class ConsoleConnection(_Socket):
    """GET /ws/console — one advisor's console; the caller checked the session and the Origin."""

    schema = CONSOLE_SCHEMA

    def __init__(
        self,
        room: WaitingRoom,
        ws: web.WebSocketResponse,
        member: StaffMember,
        lookup: MemberLookup,
        presence_interval: float = PRESENCE_INTERVAL,
    ) -> None:
        super().__init__(room, ws)
        self.member = member
        self.lookup = lookup
        self.presence_interval = presence_interval

    async def start(self) -> None:
        self.room.advisors[self.member.username] += 1
        await self.room.queue.advisor_online(self.member)
        await self.room.events.notify()
        self.spawn(self._heartbeat())
        self.spawn(self._watch(self.push))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.presence_interval)
            if await self._current() is None:
                return
            await self.room.queue.advisor_online(self.member)

    async def _current(self) -> StaffMember | None:
        """The member as the store has them now; the session may have ended or the account locked."""
        member = await self.lookup()
        if member is None or member.username != self.member.username:
            await self.finish(
                error_message("not_authenticated", "your session has ended; sign in again"),
                code=CLOSE_UNAUTHENTICATED,
                reason=b"not authenticated",
            )
            return None
        self.member = member
        return member

    async def push(self) -> None:
        now = self.room.clock()
        entries = await self.room.queue.waiting_for(self.member)
        await self.send(
            {
                "type": "queue",
                "advisors_online": await self.room.advisors_online(self.member),
                "you": {
                    "username": self.member.username,
                    "offices": list(self.member.offices),
                    "languages": list(self.member.languages),
                },
                "entries": [entry_json(e, self.room.offices, now, staff=True) for e in entries],
            }
        )

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind, request_id = message["type"], message.get("id")
        member = await self._current()
        if member is None:
            return
        if kind == "next":
            consultation = await self.room.queue.claim_next(member)
            if consultation is None:
                raise ProtocolError("queue_empty", "nobody is waiting for you", request_id)
        else:
            consultation = await self.room.queue.claim(member, message["entry_id"])
        await self.room.events.notify()
        links = await self.room.links(consultation.room.room_id)
        if links is None:  # pragma: no cover - the room was created a moment ago
            raise RoomError("unknown_room", "the consultation room vanished", 500)
        _, advisor_url = links
        await self.send(
            {
                "type": "claimed",
                "id": request_id,
                "room_id": consultation.room.room_id,
                "advisor_url": advisor_url,
                "entry": entry_json(consultation.entry, self.room.offices, self.room.clock(), staff=True),
            }
        )

    async def closed(self) -> None:
        name = self.member.username
        self.room.advisors[name] -= 1
        if self.room.advisors[name] <= 0:
            del self.room.advisors[name]
            await self.room.queue.advisor_offline(name)
            await self.room.events.notify()
