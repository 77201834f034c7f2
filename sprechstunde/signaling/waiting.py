"""The waiting room's two WebSockets and their change fan-out (docs/protocol.md, "Waiting room").

`/ws/queue` is the citizen's waiting page: position, estimate and availability pushed after every change,
`admitted` with a join token when an advisor claims the entry. `/ws/console` is the advisor's live list of
citizens they may serve, with "next" and "claim". Both recompute from the store whenever `QueueEvents`
says something changed; the queue itself calls `QueueEvents.notify` after every stored change (it is the
queue's listener, rooms/queue.py), and with several nodes the change travels over the store's channel.
What the sockets send is built by the domain's views (rooms/views.py); this module only carries it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sprechstunde.clock import Now
from sprechstunde.rooms import views
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.offices import OfficeDirectory
from sprechstunde.rooms.queue import QueueService
from sprechstunde.rooms.service import RoomError
from sprechstunde.rooms.staff import StaffMember
from sprechstunde.signaling.protocol import (
    CONSOLE,
    WAITING,
    Claim,
    Leave,
    Message,
    Next,
    Note,
    ProtocolError,
    Wait,
    error_message,
)
from sprechstunde.signaling.socket import CLOSE_GOING_AWAY, CLOSE_NORMAL, JsonSocket
from sprechstunde.store.port import Store, Subscription
from sprechstunde.tasks import BackgroundTasks, stop

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0
QUEUE_CHANNEL = "queue-changes"
PRESENCE_INTERVAL = 30.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class QueueEvents:
    """Change notifier: a version counter that waiters watch. The queue calls `notify` after every
    stored change (enqueue, claim, leave, note, abandonment, advisor online/offline: QueueService's
    listener); each open socket then recomputes what it shows. With a `bus` (several nodes on Redis) a
    change is also announced on the store's channel, and changes announced by other nodes wake this
    node's sockets too."""

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


# --- the shared state of this process ---------------------------------------------------------------

JoinLinks = Callable[[str], Awaitable[tuple[str, str] | None]]
"""room_id → (citizen join token, advisor join URL path) or None when the room is gone
(`RoomService.admission_links`)."""


class WaitingRoom:
    """Everything the two sockets share: the queue, the notifier, which entries and advisors have a
    socket open in this process, and the background sweep."""

    def __init__(
        self,
        queue: QueueService,
        offices: OfficeDirectory,
        links: JoinLinks,
        clock: Now = time.time,
        events: QueueEvents | None = None,
    ) -> None:
        self.queue = queue
        self.offices = offices
        self.links = links
        self.clock = clock
        self.events = events or QueueEvents()
        queue.listen(self.events.notify)  # every stored change of the queue reaches the sockets
        self.entries: Counter[str] = Counter()
        self.advisors: Counter[str] = Counter()
        self.sockets: set[web.WebSocketResponse] = set()
        self._sweeper: asyncio.Task | None = None
        self._tasks = BackgroundTasks("waiting-room")

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
        """Abandon citizens whose grace ran out and notice advisors who came or went (QueueService.sweep,
        which announces either); returns the abandoned entries."""
        return await self.queue.sweep()

    async def close(self) -> None:
        await stop(self._sweeper)
        self._sweeper = None
        await self.events.close()
        for ws in list(self.sockets):
            await ws.close(code=CLOSE_GOING_AWAY, message=b"server shutting down")
        await self._tasks.wait(timeout=5.0)


# --- connections --------------------------------------------------------------------------------------


class _Socket(JsonSocket):
    """A waiting-room socket: the JSON socket plus pushes after every change, serialised sends, and
    tasks of its own that end with it."""

    name = "waiting-room"

    def __init__(self, room: WaitingRoom, ws: web.WebSocketResponse) -> None:
        super().__init__(ws)
        self.room = room
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

    async def reply(self, message: dict[str, Any]) -> None:
        await self.send(message)

    def domain_error(self, exc: Exception, request_id: Any) -> dict[str, Any] | None:
        if isinstance(exc, QueueError):
            return error_message(exc.code, exc.message, request_id)
        return None

    async def finish(
        self, message: dict[str, Any] | None = None, code: int = CLOSE_NORMAL, reason: bytes = b""
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
        self.room.sockets.add(self.ws)
        await super().run()

    def after_close(self, handler: asyncio.Task | None) -> asyncio.Future:
        self.room.sockets.discard(self.ws)
        return self.room.spawn(self._cleanup(handler))

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

    messages = WAITING

    def __init__(self, room: WaitingRoom, ws: web.WebSocketResponse, lang: str = "de") -> None:
        super().__init__(room, ws)
        self.lang = lang
        self.entry_id: str | None = None
        self.left = False

    async def dispatch(self, message: Message) -> None:
        request_id = message.id
        if isinstance(message, Wait):
            if self.entry_id is not None:
                raise ProtocolError("already_waiting", "this connection already waits", request_id=request_id)
            entry = await self.room.queue.entry_for_token(message.token)
            self.entry_id = entry.entry_id
            self.room.entries[entry.entry_id] += 1
            if entry.state == "waiting":
                await self.room.queue.mark_connected(entry.entry_id)
            self.spawn(self._watch(self.push))
            return
        if self.entry_id is None:
            raise ProtocolError(
                "not_waiting", "send 'wait' with your waiting-room token first", request_id=request_id
            )
        if isinstance(message, Note):
            await self.room.queue.set_note(self.entry_id, message.text)
        elif isinstance(message, Leave):
            # Said before leaving: the push the queue's change notice wakes must read "left".
            self.left = True
            try:
                left = await self.room.queue.leave(self.entry_id)
            except BaseException:
                self.left = False
                raise
            if not left:
                self.left = False
                raise QueueError("not_waiting", "you are no longer waiting")
            await self.finish(views.removed("left"), reason=b"left")

    async def push(self) -> None:
        if self.entry_id is None or self.done:
            return
        queue = self.room.queue
        entry = await queue.get(self.entry_id)
        if entry is None:
            await self.finish(views.removed("abandoned"))
            return
        status = await queue.status(self.entry_id)
        if status.state == "called":
            entry = await queue.get(self.entry_id) or entry
            if entry.room_id is None:
                return  # claimed this instant; the room follows with the next change
            links = await self.room.links(entry.room_id)
            if links is None:
                await self.finish(views.removed("done"))
                return
            token, _ = links
            await self.finish(views.admitted(entry.room_id, token), reason=b"admitted")
            return
        if status.state != "waiting":
            reason = "left" if self.left else ("done" if status.state == "done" else "abandoned")
            await self.finish(views.removed(reason))
            return
        office = self.room.offices.get(entry.office)
        await self.send(views.queue_status(status, entry, office, self.room.clock(), self.lang))

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

    messages = CONSOLE

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
        self.spawn(self._heartbeat())
        self.spawn(self._watch(self.push))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.presence_interval)
            if await self._current() is None:
                return
            await self.room.queue.advisor_heartbeat(self.member)

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
        online = await self.room.queue.advisors_online(self.member)
        await self.send(views.console_queue(self.member, online, entries, self.room.offices, now))

    async def dispatch(self, message: Message) -> None:
        request_id = message.id
        member = await self._current()
        if member is None:
            return
        if isinstance(message, Next):
            consultation = await self.room.queue.claim_next(member)
            if consultation is None:
                raise ProtocolError("queue_empty", "nobody is waiting for you", request_id=request_id)
        else:
            assert isinstance(message, Claim)
            consultation = await self.room.queue.claim(member, message.entry_id)
        links = await self.room.links(consultation.room.room_id)
        if links is None:  # pragma: no cover - the room was created a moment ago
            raise RoomError("unknown_room", "the consultation room vanished", 500)
        _, advisor_url = links
        room_id, offices, now = consultation.room.room_id, self.room.offices, self.room.clock()
        await self.send(views.claimed(request_id, room_id, advisor_url, consultation.entry, offices, now))

    async def closed(self) -> None:
        name = self.member.username
        self.room.advisors[name] -= 1
        if self.room.advisors[name] <= 0:
            del self.room.advisors[name]
            await self.room.queue.advisor_offline(name)
