"""One participant's WebSocket: read frames, validate, dispatch, never let bad input escape."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from sprechstunde.media.ice import client_ice_servers
from sprechstunde.media.session import NegotiationError
from sprechstunde.rooms.text import strip_bidi
from sprechstunde.signaling.hub import AdmissionError, LiveRoom, Participant, SignalingHub
from sprechstunde.signaling.protocol import (
    MAX_CHAT_CHARS,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    clean_name,
    error_message,
    parse,
)
from sprechstunde.signaling.ratelimit import TokenBucket
from sprechstunde.store.outage import store_outage

log = logging.getLogger(__name__)

FLOOD_RATE = 50.0  # messages per second, sustained
FLOOD_BURST = 100.0
HARD_FRAME_LIMIT = 1024 * 1024  # frames beyond this are not even read (close 1009)
STORE_UNAVAILABLE = "store_unavailable"
UNAVAILABLE_TEXT = "the service is briefly unavailable; try again in a moment"
DEFAULT_NAMES = {"advisor": "Beratung", "citizen": "Gast", "guest": "Gast"}


class Connection:
    def __init__(self, hub: SignalingHub, ws: web.WebSocketResponse) -> None:
        self.hub = hub
        self.ws = ws
        self.room: LiveRoom | None = None
        self.participant: Participant | None = None
        self.left = False

    async def reply(self, message: dict[str, Any]) -> None:
        if self.participant is not None and self.participant.ws is self.ws:
            await self.participant.send(message)
        elif not self.ws.closed:
            await self.ws.send_json(message)

    async def run(self) -> None:
        bucket = TokenBucket(FLOOD_RATE, FLOOD_BURST)
        try:
            async for frame in self.ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                if not bucket.allow():
                    log.warning("closing a flooding connection")
                    await self.ws.close(code=1008, message=b"too many messages")
                    break
                try:
                    message = parse(frame.data)
                    self.hub.messages[message["type"]] += 1  # plain counters, read by /metrics
                    await self.dispatch(message)
                except ProtocolError as exc:
                    self.hub.errors[exc.code] += 1
                    await self.reply(error_message(exc.code, exc.message, exc.request_id, **exc.detail))
                except Exception as exc:
                    if store_outage(exc):  # Redis away: say so; open calls go on without it
                        self.hub.errors[STORE_UNAVAILABLE] += 1
                        log.warning("store unavailable: %s", type(exc).__name__)
                        reply = error_message(STORE_UNAVAILABLE, UNAVAILABLE_TEXT, message.get("id"))
                        await self.reply(reply)
                        continue
                    self.hub.errors["internal"] += 1
                    # A bug or an aiortc surprise must not end the call: report it, keep reading.
                    log.exception("signaling message failed")
                    await self.reply(error_message("internal", "the server could not process this"))
                if self.left:
                    break
        finally:
            # aiohttp cancels the handler when the client vanishes; the cleanup must still finish.
            await asyncio.shield(self.hub.spawn(self.closed()))

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        request_id = message.get("id")
        if kind == "ping":
            await self.reply({"type": "pong", "id": request_id})
            return
        if kind == "hello":
            await self.hello(message)
            return
        if self.participant is None or self.room is None:
            raise ProtocolError("not_joined", "send 'hello' first", request_id)
        media = self.room.media
        try:
            if kind == "answer":
                await media.peer(self.participant.participant_id).apply_answer(message["sdp"])
            elif kind == "offer":
                answer = await media.peer(self.participant.participant_id).apply_offer(message["sdp"])
                await self.reply({"type": "answer", "id": request_id, **answer})
            elif kind == "candidate":
                await media.peer(self.participant.participant_id).add_candidate(message["candidate"])
            elif kind == "chat":
                await self.chat(message)
            elif kind == "leave":
                self.left = True
                await self.hub.remove(self.room, self.participant, "left")
                await self.ws.close(code=1000, message=b"left")
        except NegotiationError as exc:
            raise ProtocolError(exc.code, exc.message, request_id) from None

    async def hello(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        if self.participant is not None:
            raise ProtocolError("already_joined", "this connection has already joined", request_id)
        if message["v"] != PROTOCOL_VERSION:
            raise ProtocolError(
                "unsupported_version",
                f"protocol version {PROTOCOL_VERSION} is required",
                request_id,
            )
        try:
            admission = await self.hub.admit(message["token"])
        except AdmissionError as exc:
            raise ProtocolError(exc.code, exc.message, request_id) from None
        if self.hub.nodes is not None:
            home = await self.hub.nodes.home(admission.room_id, admission.expires_at)
            if home.node_id != self.hub.nodes.node_id:
                raise ProtocolError(
                    "wrong_node",
                    "this consultation runs on another server; reconnect there",
                    request_id,
                    node=home.node_id,
                    url=home.ws_url,
                )
        room = self.hub.room(admission)
        name = clean_name(message.get("name"), DEFAULT_NAMES[admission.role])
        try:
            participant, resumed = await self.hub.join(
                room, admission.role, name, message.get("resume"), self.ws, seat=admission.seat
            )
        except AdmissionError as exc:
            raise ProtocolError(exc.code, exc.message, request_id) from None
        self.room, self.participant = room, participant
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
            }
        )
        if not resumed:
            await room.broadcast(
                {"type": "participant-joined", "participant": participant.public()},
                exclude=participant.participant_id,
            )
        await self.hub.start_media(room, participant)

    async def chat(self, message: dict[str, Any]) -> None:
        assert self.room is not None and self.participant is not None
        text = strip_bidi(message["text"])  # issue 15, finding 13: no direction overrides in chat
        if not text.strip():
            raise ProtocolError("bad_message", "an empty message is not sent", message.get("id"))
        sender = self.participant
        base = {
            "type": "chat",
            "from": sender.participant_id,
            "name": sender.name,
            "role": sender.role,
            "text": text,
            "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        await self.room.broadcast(base, exclude=sender.participant_id)
        await sender.send(base | {"id": message.get("id")})

    async def closed(self) -> None:
        if self.room is not None and self.participant is not None and not self.left:
            await self.hub.disconnected(self.room, self.participant, self.ws)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    """GET /ws — see docs/protocol.md."""
    hub: SignalingHub = request.app[HUB_KEY]
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=20.0)
    await ws.prepare(request)
    await Connection(hub, ws).run()
    return ws


HUB_KEY = web.AppKey("signaling_hub", SignalingHub)
