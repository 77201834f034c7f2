"""The load client's participant for the Janus reference: the same clip, the same counting receive path,
spoken over Janus's JSON API (WebSocket transport) to the videoroom plugin instead of our signaling.

Each participant joins its consultation's room as a publisher (one sending peer connection, VP8 and
Opus only, as the clip is encoded) and, once the other participant's feed is announced, subscribes to it
(one receiving peer connection), which is how every videoroom client works.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from bench.clip import Clip
from bench.loadclient import CountingReceiver, LoadParticipant, pin_host_addresses
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import transport as fork_transport

JANUS_PROTOCOL = "janus-protocol"
VIDEOROOM = "janus.plugin.videoroom"
KEEPALIVE = 20.0  # seconds; Janus drops a session after its session_timeout (60 s) of silence
CODECS = {"audio": ("audio/opus",), "video": ("video/VP8", "video/rtx")}

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class JanusError(RuntimeError):
    """Janus (or the videoroom plugin) refused a request."""


class JanusSession:
    """One Janus API session over a WebSocket: requests matched to replies by transaction, events
    without a transaction handed to the handler of the plugin handle they come from."""

    _ids = itertools.count(1)

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session_id: int | None = None
        self.pending: dict[str, asyncio.Future] = {}
        self.later: set[str] = set()  # transactions answered by an event after Janus's ack
        self.handlers: dict[int, EventHandler] = {}
        self.tasks: set[asyncio.Task] = set()
        self._reader: asyncio.Task | None = None
        self._keepalive: asyncio.Task | None = None

    async def open(self) -> None:
        """Connect and create the session."""
        self.ws = await self.http.ws_connect(self.url, protocols=(JANUS_PROTOCOL,))
        self._reader = asyncio.ensure_future(self._read())
        reply = await self._send({"janus": "create"})
        self.session_id = int(reply["data"]["id"])
        self._keepalive = asyncio.ensure_future(self._keep_alive())

    async def attach(self, plugin: str = VIDEOROOM, on_event: EventHandler | None = None) -> int:
        """A new handle on `plugin`; `on_event` gets its asynchronous events (no transaction)."""
        reply = await self._send({"janus": "attach", "plugin": plugin})
        handle = int(reply["data"]["id"])
        if on_event is not None:
            self.handlers[handle] = on_event
        return handle

    async def request(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request (`create`): its plugindata, or JanusError."""
        return _plugin_data(await self._send({"janus": "message", "handle_id": handle, "body": body}))

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        """An asynchronous plugin request (join, publish, start): the event that answers it after the
        ack, as (plugindata, jsep)."""
        message: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        reply = await self._send(message, event=True)
        return _plugin_data(reply), reply.get("jsep")

    async def trickle_done(self, handle: int) -> None:
        """Say that all our candidates were in the SDP (aiortc gathers before it answers)."""
        await self._send({"janus": "trickle", "handle_id": handle, "candidate": {"completed": True}})

    async def _send(self, message: dict[str, Any], event: bool = False) -> dict[str, Any]:
        """Send and wait for the reply: the first one, or with `event` the event after the ack."""
        assert self.ws is not None
        transaction = f"t{next(self._ids)}"
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending[transaction] = future
        if event:
            self.later.add(transaction)
        if self.session_id is not None:
            message["session_id"] = self.session_id
        try:
            await self.ws.send_json({**message, "transaction": transaction})
            reply = await future
        finally:
            self.pending.pop(transaction, None)
            self.later.discard(transaction)
        if reply.get("janus") == "error":
            raise JanusError(f"{reply['error'].get('code')}: {reply['error'].get('reason')}")
        return reply

    async def _read(self) -> None:
        assert self.ws is not None
        error: BaseException = ConnectionError("janus closed the WebSocket")
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                message = msg.json()
                kind, transaction = message.get("janus"), message.get("transaction")
                if transaction in self.pending:
                    if kind == "ack" and transaction in self.later:
                        continue  # an asynchronous request's ack: its answer follows as an event
                    if not self.pending[transaction].done():
                        self.pending[transaction].set_result(message)
                    continue
                handler = self.handlers.get(message.get("sender", 0))
                if handler is not None and kind == "event":
                    task = asyncio.ensure_future(handler(message))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        except Exception as exc:  # handed to every waiting request
            error = exc
        for future in self.pending.values():
            if not future.done():
                future.set_exception(error)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            try:
                await self._send({"janus": "keepalive"})
            except Exception:
                return

    async def close(self) -> None:
        """Destroy the session (Janus hangs up its handles) and close the socket."""
        for task in (self._keepalive, *self.tasks):
            if task is not None:
                task.cancel()
        try:
            if self.ws is not None and not self.ws.closed and self.session_id is not None:
                await asyncio.wait_for(self._send({"janus": "destroy"}), 2)
        except Exception:
            pass
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


def _plugin_data(reply: dict[str, Any]) -> dict[str, Any]:
    """The videoroom's answer in a reply; JanusError if the plugin refused the request."""
    data = reply.get("plugindata", {}).get("data", {})
    if "error" in data:
        raise JanusError(f"{data.get('error_code')}: {data['error']}")
    return data


def _prefer(transceiver: Any, kind: str) -> None:
    """Offer only the clip's codec (and RTX): the clip is sent as it was encoded, never re-encoded."""
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType in CODECS[kind]]
    transceiver.setCodecPreferences(codecs)


class JanusParticipant(LoadParticipant):
    """A citizen or advisor in a videoroom: publishes the clip on one peer connection, receives the
    other participant's feed on a second one, counted by the same CountingReceiver."""

    def __init__(self, spec: dict[str, Any], clip: Clip, ws_url: str) -> None:
        super().__init__(spec, clip, ws_url)
        self.janus: JanusSession | None = None
        self.sub_pc: RTCPeerConnection | None = None
        self.feed: int | None = None  # our publisher id in the room
        self.private_id: int | None = None
        self.subscribing: asyncio.Task | None = None

    async def join(self, session: aiohttp.ClientSession) -> None:
        """Join the room as a publisher and publish; the subscription follows when the other's feed is
        announced (in the join reply when it published first, else in a later event)."""
        self.hello_at = time.monotonic()
        self.janus = JanusSession(session, self.ws_url)
        await self.janus.open()
        handle = await self.janus.attach(on_event=self._on_publisher_event)
        joined, _ = await self.janus.message(
            handle,
            {
                "request": "join",
                "ptype": "publisher",
                "room": self.spec["room"],
                "display": self.spec["name"],
            },
        )
        if joined.get("videoroom") != "joined":
            raise RuntimeError(f"unexpected join reply {joined}")
        self.welcome_at = time.monotonic()
        self.feed, self.private_id = joined["id"], joined.get("private_id")
        self._consider(joined.get("publishers", []))
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("connectionstatechange", self._on_state)
        for kind, track in self.tracks.items():
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            _prefer(transceiver, kind)
            transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[attr-defined]
            self.senders[kind] = transceiver.sender
        offer = await self.pc.createOffer()
        pin_host_addresses(self.pc)
        await self.pc.setLocalDescription(offer)
        offer = {"type": "offer", "sdp": _sha256_only(self.pc.localDescription.sdp)}
        configured, answer = await self.janus.message(handle, {"request": "publish"}, offer)
        if answer is None:
            raise RuntimeError(f"publish without an answer: {configured}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        fork_transport.shortcut_transports(self.pc)  # the clients' own cost, as loadclient's
        await self.janus.trickle_done(handle)

    async def _on_publisher_event(self, message: dict[str, Any]) -> None:
        data = message.get("plugindata", {}).get("data", {})
        self._consider(data.get("publishers", []))

    def _consider(self, publishers: list[dict[str, Any]]) -> None:
        """Subscribe to the first other publisher that has a video stream (a room holds one pair)."""
        if self.subscribing is not None:
            return
        for publisher in publishers:
            streams = publisher.get("streams", [])
            if publisher.get("id") != self.feed and any(s.get("type") == "video" for s in streams):
                self.subscribing = asyncio.ensure_future(self._subscribe(int(publisher["id"])))
                return

    async def _subscribe(self, feed: int) -> None:
        assert self.janus is not None
        try:
            handle = await self.janus.attach()
            body: dict[str, Any] = {"request": "join", "ptype": "subscriber", "room": self.spec["room"]}
            body["streams"] = [{"feed": feed}]
            if self.private_id is not None:
                body["private_id"] = self.private_id
            attached, offer = await self.janus.message(handle, body)
            if offer is None:
                raise RuntimeError(f"subscription without an offer: {attached}")
            self.subscribed_at = time.monotonic()
            self.sub_pc = RTCPeerConnection(
                RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
            )
            self.sub_pc.on("track", self._on_track)
            await self.sub_pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            answer = await self.sub_pc.createAnswer()
            pin_host_addresses(self.sub_pc)
            await self.sub_pc.setLocalDescription(answer)
            fork_transport.shortcut_transports(self.sub_pc)
            answer = {"type": "answer", "sdp": _sha256_only(self.sub_pc.localDescription.sdp)}
            await self.janus.message(handle, {"request": "start"}, answer)
            await self.janus.trickle_done(handle)
        except Exception as exc:  # recorded with the participant's figures
            self.error = self.error or f"subscribe: {exc!r}"

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.sub_pc is not None
        transceiver = fork_receiver.transceiver_of(self.sub_pc, track)
        if transceiver is not None:
            self.receivers[track.kind] = transceiver.receiver
            CountingReceiver(self, transceiver.receiver, track.kind).install()

    async def close(self) -> None:
        try:
            if self.subscribing is not None:
                self.subscribing.cancel()
            if self.janus is not None:
                await self.janus.close()
            for pc in (self.pc, self.sub_pc):
                if pc is not None:
                    await pc.close()
        except Exception:
            pass
        for track in self.tracks.values():
            track.stop()


def _sha256_only(sdp: str) -> str:
    """The SDP without aiortc's sha-384/sha-512 fingerprints, which Janus ignores with a warning per
    m-line (it checks the sha-256 one, which stays)."""
    lines = sdp.split("\r\n")
    return "\r\n".join(
        line for line in lines if not line.startswith(("a=fingerprint:sha-384", "a=fingerprint:sha-512"))
    )
