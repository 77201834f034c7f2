"""One JSON WebSocket, as every socket of the server speaks it: the call (/ws, signaling/connection.py)
and the waiting room's two (/ws/queue, /ws/console, signaling/waiting.py).

The base reads frames until the client leaves: a frame beyond HARD_FRAME_LIMIT is not even read (aiohttp
closes with 1009), more than FLOOD_RATE messages a second sustained (FLOOD_BURST at once) closes with
1008, every other frame is parsed and validated against the socket's `messages` (signaling/protocol.py),
`ping` is answered with `pong`, and the rest goes to `dispatch`. Bad input never escapes: a
ProtocolError becomes an `error` with its code, the store being away `store_unavailable`, anything else
`internal` (logged with its stack); the connection stays usable. aiohttp cancels the handler when the
client vanishes, so the cleanup (`after_close`) runs as a task of its own that the cancellation cannot
cut short.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web

from sprechstunde.signaling.protocol import Message, Messages, Ping, ProtocolError, error_message
from sprechstunde.signaling.ratelimit import TokenBucket
from sprechstunde.store.outage import store_outage

log = logging.getLogger(__name__)

FLOOD_RATE = 50.0  # messages per second, sustained
FLOOD_BURST = 100.0
HARD_FRAME_LIMIT = 1024 * 1024  # frames beyond this are not even read (close 1009)
HEARTBEAT = 20.0  # seconds between aiohttp's WebSocket pings
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # flooding
STORE_UNAVAILABLE = "store_unavailable"
UNAVAILABLE_TEXT = "the service is briefly unavailable; try again in a moment"


async def open_socket(request: web.Request) -> web.WebSocketResponse:
    """Accept the upgrade with the limits every socket shares."""
    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT, heartbeat=HEARTBEAT)
    await ws.prepare(request)
    return ws


async def refuse(ws: web.WebSocketResponse, code: str, message: str, close_code: int) -> None:
    """Turn a socket away before it starts: one `error`, then close with `close_code` (reason: `code`)."""
    await ws.send_json(error_message(code, message))
    await ws.close(code=close_code, message=code.encode())


class JsonSocket:
    """The receive loop of one socket; subclasses say what they accept and what each message does."""

    messages: Messages
    name = "socket"  # in the log lines: "closing a flooding <name> connection"
    internal_error_id = True  # whether an `internal` error echoes the request's id

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.done = False  # set to stop reading (left, removed, admitted)

    async def reply(self, message: dict[str, Any]) -> None:
        """Send one message to this client."""
        raise NotImplementedError

    async def dispatch(self, message: Message) -> None:
        """Act on one valid message (never a `ping`); raise ProtocolError to answer with an error."""
        raise NotImplementedError

    def after_close(self, handler: asyncio.Task | None) -> asyncio.Future:
        """Start the cleanup once reading ended, as a task the app waits for at shutdown."""
        raise NotImplementedError

    def received(self, message: Message) -> None:
        """Called with every valid message before it is handled (counters)."""

    def refused(self, code: str) -> None:
        """Called with the code of every `error` answered (counters)."""

    def domain_error(self, exc: Exception, request_id: Any) -> dict[str, Any] | None:
        """The `error` for a refusal of the domain behind this socket, None when `exc` is not one."""
        return None

    async def run(self) -> None:
        bucket = TokenBucket(FLOOD_RATE, FLOOD_BURST)
        try:
            async for frame in self.ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                if not bucket.allow():
                    log.warning("closing a flooding %s connection", self.name)
                    await self.ws.close(code=CLOSE_POLICY, message=b"too many messages")
                    break
                await self.receive(frame.data)
                if self.done:
                    break
        finally:
            # aiohttp cancels the handler when the client vanishes; the cleanup must still finish.
            await asyncio.shield(self.after_close(asyncio.current_task()))

    async def receive(self, frame: str | bytes) -> None:
        """One frame: parse, validate, handle; every failure is answered, none escapes."""
        request_id = None
        try:
            message = self.messages.parse(frame)
            request_id = message.id
            self.received(message)
            if isinstance(message, Ping):
                await self.reply({"type": "pong", "id": request_id})
            else:
                await self.dispatch(message)
        except ProtocolError as exc:
            self.refused(exc.code)
            await self.reply(error_message(exc.code, exc.message, exc.request_id, **exc.detail))
        except Exception as exc:
            refusal = self.domain_error(exc, request_id)
            if refusal is not None:
                await self.reply(refusal)
            elif store_outage(exc):  # Redis away: say so; open calls go on without it
                self.refused(STORE_UNAVAILABLE)
                log.warning("store unavailable on a %s socket: %s", self.name, type(exc).__name__)
                await self.reply(error_message(STORE_UNAVAILABLE, UNAVAILABLE_TEXT, request_id))
            else:
                self.refused("internal")
                # A bug or an aiortc surprise must not end the connection: report it, keep reading.
                log.exception("%s message failed", self.name)
                reply_id = request_id if self.internal_error_id else None
                await self.reply(error_message("internal", "the server could not process this", reply_id))
