"""Live rooms of this process: participants, their connections, grace periods and fan-out."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sprechstunde.errors import DomainError
from sprechstunde.media.forwarding import ForwardingStats
from sprechstunde.media.ice import IceConfig
from sprechstunde.media.local import Listener, LocalPeer
from sprechstunde.media.session import MediaSession
from sprechstunde.signaling.chat_history import ChatHistory, bounded
from sprechstunde.signaling.nodes import NodeRegistry
from sprechstunde.signaling.persist import WriteBehind
from sprechstunde.store.port import Store, Subscription
from sprechstunde.tasks import BackgroundTasks

log = logging.getLogger(__name__)

MAX_PARTICIPANTS = 4
ROOM_EVENTS = "room-events"
GRACE_SECONDS = 30.0
ADVISOR = "advisor"
CLOSE_REPLACED = 4001  # the same seat connected again elsewhere (another tab, a reload, a new network)
REPLACED = "replaced"
REPLACED_TEXT = "this link was opened in another window or on another device"
EVICT_TIMEOUT = 2.0  # how long telling an old socket that it was replaced may take
# Several nodes: who is in a live room (ids, names, roles, seats, a digest of each resume secret, media
# state), kept in the store so that the node a room moves to after its node died seats everyone again
# under the same id (`resumed`), and the pages keep their tiles and names (issue 21).
ROSTER_KIND = "room-roster"


def resume_digest(resume: str) -> str:
    """What the store keeps of a resume secret: enough to check one, useless to present as one."""
    return hashlib.sha256(resume.encode()).hexdigest()


class AdmissionError(DomainError):
    """A hello that cannot be honoured; `code` is the signaling error code (answered as an `error`
    message by signaling/connection.py)."""


@dataclass(frozen=True)
class Admission:
    """What a verified join token grants."""

    room_id: str
    role: str
    expires_at: float
    # The seat of the room this link holds (rooms.service.RoomService.seat); empty: the role's seat.
    seat: str = ""


Admit = Callable[[str], Awaitable[Admission]]


@dataclass
class Participant:
    participant_id: str
    role: str
    name: str
    resume: str
    ws: web.WebSocketResponse | None = None
    seat: str = ""
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    grace: asyncio.TimerHandle | None = None
    # microphone / camera on, as the client last said (`media-state`); kept across a resume, shown to
    # everyone who joins later in `welcome` and `participant-joined`
    audio: bool = True
    video: bool = True
    # whether this connection asked for media (`hello` `media`): no peer connection is set up otherwise
    media: bool = True
    resume_digest: str = ""  # of `resume`; alone (resume "") for a participant seated from the roster

    def __post_init__(self) -> None:
        if self.resume and not self.resume_digest:
            self.resume_digest = resume_digest(self.resume)

    def stored(self) -> dict[str, Any]:
        """This participant as the room's roster in the store keeps it (never the resume secret)."""
        return {
            "participant_id": self.participant_id,
            "role": self.role,
            "name": self.name,
            "seat": self.seat,
            "resume_digest": self.resume_digest,
            "audio": self.audio,
            "video": self.video,
        }

    def public(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "role": self.role,
            "name": self.name,
            "media": {"audio": self.audio, "video": self.video},
        }

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        """Send one message already encoded (a broadcast encodes once for everyone)."""
        ws = self.ws
        if ws is None or ws.closed:
            return
        async with self.send_lock:
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                pass  # the reader notices the closed socket and starts the grace period


class LiveRoom:
    def __init__(self, room_id: str, expires_at: float, hub: SignalingHub) -> None:
        self.room_id = room_id
        self.expires_at = expires_at
        self.participants: dict[str, Participant] = {}
        self.media = MediaSession(hub.ice, hub.media_mode, hub.forwarding)
        self.lock = asyncio.Lock()
        # the chat so far (signaling/chat_history.py), read from the store once by `SignalingHub.prepare`
        self.chat: list[dict[str, Any]] = []
        self.chat_chars = 0  # characters of text in `chat`
        # False while the chat so far could not be read (the store failing, as it may during failover):
        # `chat` then holds only what was said here since, and writing it as the room's chat would wipe
        # the stored one (`SignalingHub.keep_chat` reads it again first, or appends message by message)
        self.chat_known = True
        self.chat_appended: set[str] = set()  # message ids appended to the store while not known
        self.chat_repair: asyncio.Task | None = None
        self.prepared: asyncio.Future | None = None

    async def broadcast(self, message: dict[str, Any], exclude: str | None = None) -> str:
        """To everyone connected but `exclude`: encoded once (returned, for the sender's own copy), and
        without a task per recipient when there is only one (the other person of a consultation: the
        common case, and what a burst of chat messages costs)."""
        text = json.dumps(message)
        targets = [p for pid, p in self.participants.items() if pid != exclude and p.ws is not None]
        if len(targets) == 1:
            await targets[0].send_text(text)
        elif targets:
            await asyncio.gather(*(p.send_text(text) for p in targets))
        return text


class SignalingHub:
    """Owns every live room in this process; everything hangs off the app, nothing is global."""

    def __init__(
        self,
        admit: Admit,
        ice: IceConfig,
        media_mode: str = "forward",
        grace_seconds: float = GRACE_SECONDS,
        *,
        bus: Store | None = None,
    ) -> None:
        self.admit = admit
        # several nodes: the store carrying room events between them, and (set by the app) the registry
        # that says which node hosts a room; both None for a single process
        self.bus = bus
        self.nodes: NodeRegistry | None = None
        # the chat so far of every room, in the store (set by the app; None: not kept)
        self.history: ChatHistory | None = None
        # several nodes: each live room's participants, kept in the store for the node it may move to
        self._roster = WriteBehind(bus) if bus is not None else None
        self._listener: asyncio.Task | None = None
        self.ice = ice
        self.media_mode = media_mode
        self.grace_seconds = grace_seconds
        self.rooms: dict[str, LiveRoom] = {}
        self._tasks = BackgroundTasks("signaling")
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        # plain counters for /metrics (web/core/observability.py): messages by type, errors by code, media
        self.messages: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.forwarding = ForwardingStats()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        """Run background work that the hub cancels on shutdown, so no task outlives the app."""
        return self._tasks.spawn(coro)

    def room(self, admission: Admission) -> LiveRoom:
        room = self.rooms.get(admission.room_id)
        if room is None:
            room = LiveRoom(admission.room_id, admission.expires_at, self)
            self.rooms[admission.room_id] = room
            delay = max(0.0, admission.expires_at - time.time())
            self._expiry[room.room_id] = asyncio.get_running_loop().call_later(
                delay, lambda: self.spawn(self.expire(room))
            )
        return room

    async def publish(self, room_id: str, message: dict[str, Any]) -> int:
        """Push a server event (e.g. a shared document) to everyone connected to a live room.

        A room hosted by another node gets it over the store's channel. Returns how many participants
        of this process it reached (0 when the room lives elsewhere or nobody is connected).
        """
        room = self.rooms.get(room_id)
        if room is None:
            if self.bus is not None:
                await self.bus.publish(ROOM_EVENTS, {"room_id": room_id, "message": message})
            return 0
        return await self._deliver(room, message)

    async def _deliver(self, room: LiveRoom, message: dict[str, Any]) -> int:
        connected = [p for p in room.participants.values() if p.ws is not None]
        await asyncio.gather(*(p.send(message) for p in connected))
        return len(connected)

    async def start(self) -> None:
        """With several nodes: listen for events of the rooms this node hosts."""
        if self.bus is not None and self._listener is None:
            subscription = await self.bus.subscribe(ROOM_EVENTS)
            self._listener = self.spawn(self._listen(subscription))

    async def _listen(self, subscription: Subscription) -> None:
        try:
            while True:
                event = await subscription.next()
                room = self.rooms.get(event.get("room_id", ""))
                if room is not None and isinstance(event.get("message"), dict):
                    await self._deliver(room, event["message"])
        finally:
            await subscription.close()

    async def prepare(self, room: LiveRoom) -> None:
        """Before the first participant is seated here: read what the store knows of the room once (its
        chat so far; with several nodes the roster its last node left), shared by concurrent hellos."""
        if room.prepared is None:
            room.prepared = asyncio.ensure_future(self._restore(room))
        await asyncio.shield(room.prepared)

    async def _restore(self, room: LiveRoom) -> None:
        """Best effort: a store that does not answer leaves the room starting empty, not refusing."""
        if self.history is not None:
            try:
                room.chat = await self.history.messages(room.room_id)
                room.chat_chars = sum(len(m.get("text", "")) for m in room.chat)
            except Exception as exc:
                room.chat_known = False
                log.warning("room %s: chat so far not read: %s", room.room_id, exc)
        if self.bus is None or self._roster is None:
            return
        try:
            pending = self._roster.pending(ROSTER_KIND, room.room_id)
            record = pending[0] if pending is not None else await self.bus.get(ROSTER_KIND, room.room_id)
        except Exception as exc:
            log.warning("room %s: roster not read: %s", room.room_id, exc)
            return
        async with room.lock:
            for entry in (record or {}).get("participants", []):
                try:
                    if entry.get("participant_id") in room.participants or not entry.get("resume_digest"):
                        continue
                    participant = Participant(
                        participant_id=str(entry["participant_id"]),
                        role=str(entry.get("role", "guest")),
                        name=str(entry.get("name", "")),
                        resume="",
                        seat=str(entry.get("seat", "")),
                        audio=bool(entry.get("audio", True)),
                        video=bool(entry.get("video", True)),
                        resume_digest=str(entry["resume_digest"]),
                    )
                except (AttributeError, KeyError, TypeError) as exc:
                    # one bad entry must not keep the room from starting (prepare would fail forever)
                    log.warning("room %s: roster entry skipped: %r", room.room_id, exc)
                    continue
                # as if its connection had just dropped here: its place waits for the grace period
                participant.grace = asyncio.get_running_loop().call_later(
                    self.grace_seconds,
                    lambda p=participant: self.spawn(self.remove(room, p, "timeout")),
                )
                room.participants[participant.participant_id] = participant
            if room.participants:
                log.info("room %s: %d seated from the roster", room.room_id, len(room.participants))

    def keep_chat(self, room: LiveRoom) -> None:
        """Store the room's chat (`room.chat`, its newest message last) shortly after. While the chat
        so far is not known (`_restore` could not read it), `room.chat` is not the whole chat: it is read
        again first and merged, or, while reading still fails, each new message appended to the stored
        record (read, compare and write), so what was said before is never overwritten."""
        if self.history is None:
            return
        if room.chat_known:
            self.history.keep(room.room_id, room.expires_at, room.chat)
        elif room.chat_repair is None or room.chat_repair.done():
            room.chat_repair = self.spawn(self._repair_chat(room))

    def chat_kept(self, room: LiveRoom) -> asyncio.Future[bool]:
        """Resolves once the room's chat as it is now is in the store (True), or when it could not be
        written (False: the store away, or not answering for 5 s; the chat goes on live, a later reader
        misses what was said meanwhile). Shared by every message of the room waiting for the same write."""
        if self.history is not None and room.chat_known:
            return self.history.settled(room.room_id)
        done = asyncio.get_running_loop().create_future()
        # no chat kept for later: nothing to wait for; while the store fails (`_repair_chat`): nothing to know
        done.set_result(self.history is None)
        return done

    async def _repair_chat(self, room: LiveRoom) -> None:
        assert self.history is not None
        while not room.chat_known:
            try:
                earlier = await self.history.messages(room.room_id)
            except Exception as exc:
                log.warning("room %s: chat so far still not read: %s", room.room_id, exc)
                new = [m for m in room.chat if m.get("message_id") not in room.chat_appended]
                if not new:
                    return
                for message in new:
                    await self.history.append(room.room_id, room.expires_at, message)  # never raises
                    room.chat_appended.add(str(message.get("message_id")))
                continue  # messages sent meanwhile: read again, else append them too
            # what was stored (messages appended meanwhile included), then what was said here since
            ids = {m.get("message_id") for m in earlier}
            room.chat = bounded([*earlier, *(m for m in room.chat if m.get("message_id") not in ids)])
            room.chat_chars = sum(len(m.get("text", "")) for m in room.chat)
            room.chat_known = True
            room.chat_appended.clear()
            self.history.keep(room.room_id, room.expires_at, room.chat)

    def keep_roster(self, room: LiveRoom) -> None:
        """With several nodes: store who is in the room now (shortly, behind the conversation)."""
        if self._roster is not None:
            entries = [p.stored() for p in room.participants.values()]
            record = {"participants": entries} if entries else None
            self._roster.set(ROSTER_KIND, room.room_id, record, room.expires_at)

    def load(self) -> tuple[int, int]:
        """(live rooms, connected participants): what the node registry announces."""
        return len(self.rooms), sum(len(room.participants) for room in self.rooms.values())

    async def join(
        self,
        room: LiveRoom,
        role: str,
        name: str,
        resume: str | None,
        ws: web.WebSocketResponse,
        seat: str = "",
    ) -> tuple[Participant, bool]:
        """Seat a connection in the room: its old place when `resume` matches, else a new one.

        A seat (one per link, see rooms.service.RoomService.seat) has one live connection: a new one
        without a valid `resume` replaces whoever holds the seat, connected or in their grace period,
        at once (so a reloading page leaves no ghost, and one link cannot fill the room). The others see
        the old participant leave (`replaced`) and the new one join, and receive its media as from any
        newcomer. The advisor's place is kept free: without an advisor, others fill at most all but one.
        """
        seat = seat or role
        async with room.lock:
            if resume:
                digest = resume_digest(resume)
                for participant in room.participants.values():
                    if (
                        secrets.compare_digest(participant.resume_digest, digest)
                        and participant.role == role
                        and participant.seat == seat
                    ):
                        participant.resume = participant.resume or resume  # seated from the roster
                        await self._takeover(participant, ws)
                        return participant, True
            holder = next((p for p in room.participants.values() if p.seat == seat), None)
            if holder is not None:
                await self._remove_locked(room, holder, REPLACED)
            taken = len(room.participants)
            if role != ADVISOR and not any(p.role == ADVISOR for p in room.participants.values()):
                taken += 1  # the advisor's place
            if taken >= MAX_PARTICIPANTS:
                raise AdmissionError("room_full", f"a room holds at most {MAX_PARTICIPANTS} people")
            participant = Participant(
                participant_id="p-" + secrets.token_hex(4),
                role=role,
                name=name,
                resume=secrets.token_urlsafe(18),
                ws=ws,
                seat=seat,
            )
            room.participants[participant.participant_id] = participant
            self.keep_roster(room)
            log.info("room %s: %s joined as %s", room.room_id, participant.participant_id, role)
            return participant, False

    async def _takeover(self, participant: Participant, ws: web.WebSocketResponse) -> None:
        if participant.grace is not None:
            participant.grace.cancel()
            participant.grace = None
        async with participant.send_lock:  # no message for the old socket is half-way out
            old, participant.ws = participant.ws, ws
        if old is not None and not old.closed:
            # The same person opened the call again (another tab, a new network): the newest wins.
            self.spawn(self._evict(old))

    async def _evict(self, ws: web.WebSocketResponse) -> None:
        """Tell a replaced connection why it ends (`error` `replaced`), then close it with 4001."""
        try:
            await asyncio.wait_for(
                ws.send_json({"type": "error", "code": REPLACED, "message": REPLACED_TEXT}), EVICT_TIMEOUT
            )
        except (ConnectionError, RuntimeError, TimeoutError):
            pass  # gone already; closing is all that is left
        if not ws.closed:
            # Closed from outside the socket's handler, aiohttp drops the connection right after the
            # close frame: the client sees 4001 in that frame (a browser's close event reports it).
            await ws.close(code=CLOSE_REPLACED, message=REPLACED.encode())

    async def start_media(self, room: LiveRoom, participant: Participant) -> None:
        if participant.media:
            await room.media.connect(participant.participant_id, participant.send)

    async def start_local_media(
        self, room_id: str, participant_id: str, listener: Listener
    ) -> LocalPeer | None:
        """The media of a participant seated here without a peer connection (`hello` `media: false`)
        that lives in this process: the phone bridge's caller (media/local.py). None when this process
        holds no such participant (the bridge was sent to another node, or has left meanwhile), or
        when the media is transcoded (`--media-mode transcode`, the benchmark's baseline, decodes
        every publisher's stream from its receiver: there is none here)."""
        room = self.rooms.get(room_id)
        if room is None or self.media_mode != "forward":
            return None
        async with room.lock:  # checked under the lock: not removed or disconnected meanwhile
            participant = room.participants.get(participant_id)
            if participant is None or participant.media or participant.ws is None:
                return None
            return await room.media.connect_local(participant_id, listener)

    async def disconnected(self, room: LiveRoom, participant: Participant, ws: web.WebSocketResponse) -> None:
        """The socket closed without `leave`: keep the place for the grace period."""
        async with room.lock:
            if (
                participant.ws is not ws
                or room.participants.get(participant.participant_id) is not participant
            ):
                return  # already replaced by a newer connection, or gone
            participant.ws = None
            await room.media.suspend(participant.participant_id)
            participant.grace = asyncio.get_running_loop().call_later(
                self.grace_seconds,
                lambda: self.spawn(self.remove(room, participant, "timeout")),
            )
            log.info("room %s: %s disconnected, grace period", room.room_id, participant.participant_id)

    async def remove(self, room: LiveRoom, participant: Participant, reason: str) -> None:
        async with room.lock:
            if room.participants.get(participant.participant_id) is not participant:
                return
            await self._remove_locked(room, participant, reason)
            if not room.participants:
                await self._drop(room)

    async def _remove_locked(self, room: LiveRoom, participant: Participant, reason: str) -> None:
        """Take a participant out of the room (the caller holds `room.lock`) and tell the others; a
        replaced participant's connection is told why and closed."""
        del room.participants[participant.participant_id]
        if participant.grace is not None:
            participant.grace.cancel()
            participant.grace = None
        if reason == REPLACED:
            async with participant.send_lock:
                old, participant.ws = participant.ws, None
            if old is not None and not old.closed:
                self.spawn(self._evict(old))
        self.keep_roster(room)
        await room.broadcast(
            {"type": "participant-left", "participant_id": participant.participant_id, "reason": reason}
        )
        await room.media.remove(participant.participant_id)
        log.info("room %s: %s left (%s)", room.room_id, participant.participant_id, reason)

    async def _drop(self, room: LiveRoom) -> None:
        if self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
        handle = self._expiry.pop(room.room_id, None)
        if handle is not None:
            handle.cancel()
        await room.media.close()

    async def expire(self, room: LiveRoom) -> None:
        async with room.lock:
            for participant in list(room.participants.values()):
                if participant.grace is not None:
                    participant.grace.cancel()
                await participant.send(
                    {
                        "type": "participant-left",
                        "participant_id": participant.participant_id,
                        "reason": "expired",
                    }
                )
                if participant.ws is not None:
                    await participant.ws.close(code=4002, message=b"room expired")
            room.participants.clear()
            await self._drop(room)
        if self._roster is not None:
            self._roster.set(ROSTER_KIND, room.room_id, None, 0.0)
            await self._roster.flush()
        if self.history is not None:
            await self.history.drop(room.room_id)  # the room is over: so is its chat

    async def flush(self) -> None:
        """Store the chat and roster changes not written yet: at the start of shutdown, before this node
        signs off, so that a node a room moves to reads them and not an older copy (which it would later
        write back over them)."""
        for writes in (self.history, self._roster):
            if writes is not None:
                try:
                    await writes.flush()
                except Exception:
                    log.warning("chat or roster not stored at shutdown", exc_info=True)

    async def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        for room in list(self.rooms.values()):
            for participant in room.participants.values():
                if participant.grace is not None:
                    participant.grace.cancel()
                if participant.ws is not None and not participant.ws.closed:
                    await participant.ws.close(code=1001, message=b"server shutting down")
            await room.media.close()
        self.rooms.clear()
        await self._tasks.cancel()
        # what changed since `flush` at the start of shutdown (usually nothing): written now
        await self.flush()
