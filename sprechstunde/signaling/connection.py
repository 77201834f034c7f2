"""One participant's WebSocket in a call (GET /ws, docs/protocol.md): the JSON socket of
signaling/socket.py with the call's messages, each handed to the hub and the room's media."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from sprechstunde.media.ice import client_ice_servers
from sprechstunde.media.session import NegotiationError
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.signaling.chat_history import (
    MAX_MESSAGES,
    MAX_TEXT_CHARS,
    client_message_id,
    new_message_id,
    sent_at,
)
from sprechstunde.signaling.hub import AdmissionError, LiveRoom, Participant, SignalingHub
from sprechstunde.signaling.protocol import (
    CALL,
    MAX_CHAT_CHARS,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Answer,
    Candidate,
    Chat,
    Hello,
    Leave,
    MediaState,
    Message,
    Offer,
    ProtocolError,
    ScreenShare,
    clean_name,
)
from sprechstunde.signaling.socket import HARD_FRAME_LIMIT, JsonSocket, open_socket

__all__ = ["HARD_FRAME_LIMIT", "HUB_KEY", "Connection", "websocket_handler"]  # web/core/relay.py uses them

DEFAULT_NAMES = {"advisor": "Beratung", "citizen": "Gast", "guest": "Gast"}
NOT_STORED = ', "stored": false'  # in an acknowledgement: delivered, but not in the store (yet)


class Connection(JsonSocket):
    messages = CALL
    name = "signaling"
    internal_error_id = False  # (as since protocol version 1: an `internal` error names no request)

    def __init__(self, hub: SignalingHub, ws: web.WebSocketResponse) -> None:
        super().__init__(ws)
        self.hub = hub
        self.room: LiveRoom | None = None
        self.participant: Participant | None = None
        self.left = False

    async def reply(self, message: dict[str, Any]) -> None:
        if self.participant is not None and self.participant.ws is self.ws:
            await self.participant.send(message)
        elif not self.ws.closed:
            await self.ws.send_json(message)

    def received(self, message: Message) -> None:
        self.hub.messages[message.type] += 1  # plain counters, read by /metrics

    def refused(self, code: str) -> None:
        self.hub.errors[code] += 1

    def after_close(self, handler: asyncio.Task | None) -> asyncio.Future:
        return self.hub.spawn(self.closed())

    async def dispatch(self, message: Message) -> None:
        request_id = message.id
        if isinstance(message, Hello):
            await self.hello(message)
            return
        if self.participant is None or self.room is None:
            raise ProtocolError("not_joined", "send 'hello' first", request_id=request_id)
        media = self.room.media
        try:
            if isinstance(message, Answer):
                await media.peer(self.participant.participant_id).apply_answer(message.sdp)
            elif isinstance(message, Offer):
                answer = await media.peer(self.participant.participant_id).apply_offer(message.sdp)
                await self.reply({"type": "answer", "id": request_id, **answer})
            elif isinstance(message, Candidate):
                await media.peer(self.participant.participant_id).add_candidate(message.candidate)
            elif isinstance(message, Chat):
                await self.chat(message)
            elif isinstance(message, MediaState):
                await self.media_state(message)
            elif isinstance(message, ScreenShare):
                await self.screen(message)
            elif isinstance(message, Leave):
                self.left = self.done = True
                await self.hub.remove(self.room, self.participant, "left")
                await self.ws.close(code=1000, message=b"left")
        except NegotiationError as exc:
            raise ProtocolError(exc.code, exc.message, request_id=request_id) from None

    async def hello(self, message: Hello) -> None:
        request_id = message.id
        if self.participant is not None:
            raise ProtocolError("already_joined", "this connection has already joined", request_id=request_id)
        if message.v != PROTOCOL_VERSION:
            raise ProtocolError(
                "unsupported_version",
                f"protocol version {PROTOCOL_VERSION} is required",
                request_id=request_id,
            )
        try:
            admission = await self.hub.admit(message.token)
        except AdmissionError as exc:
            raise ProtocolError(exc.code, exc.message, request_id=request_id) from None
        if self.hub.nodes is not None:
            # `unreachable`: the client could not reach that node just now; checked, never believed
            home = await self.hub.nodes.home(
                admission.room_id, admission.expires_at, suspect=message.unreachable
            )
            if home.node_id != self.hub.nodes.node_id:
                raise ProtocolError(
                    "wrong_node",
                    "this consultation runs on another server; reconnect there",
                    request_id=request_id,
                    node=home.node_id,
                    url=home.ws_url,
                )
        room = self.hub.room(admission)
        await self.hub.prepare(room)  # first here (or moved here): its chat and, moved, its participants
        name = clean_name(message.name, DEFAULT_NAMES[admission.role])
        try:
            participant, resumed = await self.hub.join(
                room, admission.role, name, message.resume, self.ws, seat=admission.seat
            )
        except AdmissionError as exc:
            raise ProtocolError(exc.code, exc.message, request_id=request_id) from None
        self.room, self.participant = room, participant
        participant.media = message.media
        others = [p.public() for pid, p in room.participants.items() if pid != participant.participant_id]
        await participant.send(
            {
                "type": "welcome",
                "id": request_id,
                "v": PROTOCOL_VERSION,
                "participant_id": participant.participant_id,
                "role": participant.role,
                "name": participant.name,
                "room_id": room.room_id,
                "resume": participant.resume,
                "resumed": resumed,
                "ice_servers": client_ice_servers(self.hub.ice, participant.participant_id),
                "participants": others,
                "limits": {"chat_max_chars": MAX_CHAT_CHARS, "frame_max_bytes": MAX_FRAME_BYTES},
                # the chat so far (issue 17): for those who join later, and what a reconnect missed
                "chat_history": self.chat_history(room),
            }
        )
        if not resumed:
            await room.broadcast(
                {"type": "participant-joined", "participant": participant.public()},
                exclude=participant.participant_id,
            )
        await self.hub.start_media(room, participant)

    async def chat(self, message: Chat) -> None:
        """Deliver a chat message to the others at once; acknowledge it to the sender (its own copy, with
        the request's `id`) once it is in the store, so that a page resends what was never acknowledged
        (its node killed in between) and nothing anyone wrote is lost. A message the page marked with
        `client_message_id` gets an id derived from it: sent again, it is recognised, acknowledged, and
        neither kept nor shown twice."""
        assert self.room is not None and self.participant is not None
        text = strip_bidi(message.text)  # issue 15, finding 13: no direction overrides in chat
        if not text.strip():
            raise ProtocolError("bad_message", "an empty message is not sent", request_id=message.id)
        sender = self.participant
        room = self.room
        ack = {"id": message.id}
        if message.client_message_id is not None:
            ack["client_message_id"] = message.client_message_id
            message_id = client_message_id(room.room_id, message.client_message_id)
            earlier = next((m for m in room.chat if m.get("message_id") == message_id), None)
            if earlier is not None and (earlier.get("role"), earlier.get("text")) != (sender.role, text):
                earlier, message_id = None, new_message_id()  # another's id (not a page's random one)
            if earlier is not None:  # sent again after a reconnect: kept already
                await self._acknowledge(room, sender, json.dumps({"type": "chat", **earlier}), ack)
                return
        else:
            message_id = new_message_id()
        entry = {  # as the history keeps it (chat_history.FIELDS)
            "message_id": message_id,
            "from": sender.participant_id,
            "name": sender.name,
            "role": sender.role,
            "text": text,
            "sent_at": sent_at(),
        }
        # in the room's history before it is sent: whoever joins meanwhile gets it in the history or live
        # (or both: the page shows a `message_id` once); the store gets the list shortly after
        chat = [*room.chat, entry]  # a new list: one handed to the store stays as it was
        chars = room.chat_chars + len(text)
        drop = max(0, len(chat) - MAX_MESSAGES)  # the oldest go first, as `bounded` does
        if drop:
            chars -= sum(len(m.get("text", "")) for m in chat[:drop])
        while chars > MAX_TEXT_CHARS and drop < len(chat) - 1:
            chars -= len(chat[drop].get("text", ""))
            drop += 1
        room.chat, room.chat_chars = (chat[drop:] if drop else chat), chars
        self.hub.keep_chat(room)
        text = await room.broadcast({"type": "chat", **entry}, exclude=sender.participant_id)
        # the sender's copy once stored, without holding up this socket's next messages
        await self._acknowledge(room, sender, text, ack)

    async def _acknowledge(self, room: LiveRoom, sender: Participant, text: str, ack: dict[str, Any]) -> None:
        """The sender's copy of a chat message (`text`, encoded once for everyone) with `ack` appended,
        once the room's chat holding it is stored (`SignalingHub.chat_kept`): at once when it is, else
        from the write's completion — no task per message while a burst is delivered. Not stored within
        the limit (the store away): `"stored": false`, and the page offers it again after its next
        welcome."""

        def copy(in_store: bool) -> str:
            extra = json.dumps(ack)[1:-1]  # its fields, appended to the message's own
            return f"{text[:-1]}, {extra}{'' if in_store else NOT_STORED}}}"

        kept = self.hub.chat_kept(room)
        if kept.done():
            await sender.send_text(copy(kept.result()))
        else:
            kept.add_done_callback(lambda done: self.hub.spawn(sender.send_text(copy(done.result()))))

    def chat_history(self, room: LiveRoom) -> list[dict[str, Any]]:
        """The room's chat so far for `welcome`, taken after the participant was seated (a message
        sent meanwhile arrives live too; the page shows each `message_id` once). Only a participant
        admitted to this room gets here."""
        return [] if self.hub.history is None else list(room.chat)

    async def media_state(self, message: MediaState) -> None:
        """Remember whether the sender's microphone and camera are on and tell the others, so their page
        shows a muted mark or the name instead of silence and a black picture (issue 17). Only a change
        is forwarded: a client repeating its state costs the others nothing."""
        assert self.room is not None and self.participant is not None
        sender = self.participant
        if (sender.audio, sender.video) == (message.audio, message.video):
            return
        sender.audio, sender.video = message.audio, message.video
        self.hub.keep_roster(self.room)
        await self.room.broadcast(
            {
                "type": "media-state",
                "participant_id": sender.participant_id,
                "audio": sender.audio,
                "video": sender.video,
            },
            exclude=sender.participant_id,
        )

    async def screen(self, message: ScreenShare) -> None:
        """Start or stop forwarding the sender's screen (issue 17): the others' next offer adds or
        drops a `screen` line, and every page hears `screen` (the sender's copy with its `id`)."""
        assert self.room is not None and self.participant is not None
        sender = self.participant.participant_id
        changed = await self.room.media.share_screen(sender, message.on)
        event = {"type": "screen", "participant_id": sender, "on": message.on}
        if changed:
            await self.room.broadcast(event, exclude=sender)
        await self.participant.send(event | {"id": message.id})

    async def closed(self) -> None:
        if self.room is not None and self.participant is not None and not self.left:
            await self.hub.disconnected(self.room, self.participant, self.ws)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    """GET /ws — see docs/protocol.md."""
    hub: SignalingHub = request.app[HUB_KEY]
    ws = await open_socket(request)
    await Connection(hub, ws).run()
    return ws


HUB_KEY = web.AppKey("signaling_hub", SignalingHub)
