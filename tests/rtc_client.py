"""A scripted participant: aiortc peer connection + our signaling protocol, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy


class RtcParticipant:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        ws_url: str,
        token: str,
        name: str,
        tracks: list[MediaStreamTrack] | None = None,
        relay_only: bool = False,
    ) -> None:
        self.session = session
        self.ws_url = ws_url
        self.token = token
        self.name = name
        self.tracks = tracks if tracks is not None else [AudioStreamTrack(), VideoStreamTrack()]
        self.relay_only = relay_only
        self.pc: RTCPeerConnection | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.welcome: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []
        self.frames: dict[str, int] = {"audio": 0, "video": 0}
        self.resume: str | None = None
        self._reader: asyncio.Task | None = None
        self._consumers: list[asyncio.Task] = []
        self._event = asyncio.Event()

    async def join(self, resume: str | None = None, urls: list[str] | None = None) -> dict[str, Any]:
        """Say hello on the first of `urls` (default: ws_url) that accepts a connection, and follow a
        `wrong_node` redirect to the node hosting the room, as the browser does behind the proxy."""
        candidates = list(urls or [self.ws_url])
        redirects = 0
        while True:
            url = candidates[0]
            try:
                self.ws = await self.session.ws_connect(url)
            except aiohttp.ClientError:
                if len(candidates) == 1:
                    raise
                candidates = candidates[1:]  # that node is down: the next one, as a proxy would
                continue
            self.pc = None
            self._published = False
            self.messages.clear()
            await self.ws.send_json(
                {"type": "hello", "id": "h", "v": 1, "token": self.token, "name": self.name, "resume": resume}
            )
            self._reader = asyncio.ensure_future(self._read())
            reply = await self._hello_reply()
            if reply["type"] == "welcome":
                self.ws_url = url
                self.welcome = reply
                self.resume = reply["resume"]
                return reply
            await self.ws.close()
            await self._reader
            if reply.get("code") != "wrong_node" or redirects >= 3:
                raise RuntimeError(f"hello refused: {reply}")
            redirects += 1
            candidates = [reply["url"], *[u for u in candidates if u != reply["url"]]]

    async def _hello_reply(self, timeout: float = 10.0) -> dict[str, Any]:
        async def find() -> dict[str, Any]:
            while True:
                for message in self.messages:
                    refused = message["type"] == "error" and message.get("id") == "h"
                    if message["type"] == "welcome" or refused:
                        return message
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(find(), timeout)

    def _open_peer_connection(self, ice_servers: list[dict[str, Any]]) -> None:
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in ice_servers
        ]
        # aiortc's default BALANCED policy leaves a second m-line of one kind on a transport it then
        # stops, when both arrive in the first offer; MAX_BUNDLE puts everything on one transport.
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=servers,
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
                iceTransportPolicy=RTCIceTransportPolicy.RELAY
                if self.relay_only
                else RTCIceTransportPolicy.ALL,
            )
        )
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._consumers.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.frames[track.kind] += 1
        except (MediaStreamError, asyncio.CancelledError):
            pass

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(msg.data)
            if message["type"] == "welcome":
                self._open_peer_connection(message["ice_servers"])
            if message["type"] == "offer":
                try:
                    await self._answer(message)
                except ConnectionError:
                    break  # we are closing; the server's offer no longer matters
            self.messages.append(message)
            self._event.set()

    async def _answer(self, offer: dict[str, Any]) -> None:
        assert self.pc is not None and self.ws is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        if not self._published:
            for track in self.tracks:
                self.pc.addTrack(track)
            self._published = True
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send_answer(self.pc.localDescription.sdp)

    async def _send_answer(self, sdp: str) -> None:
        """Send the local answer; a test client that must alter what it signals overrides this."""
        assert self.ws is not None
        await self.ws.send_json({"type": "answer", "sdp": sdp})

    async def wait_for(self, kind: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first message of `kind` (matching the given fields) received so far or within `timeout`."""

        async def find() -> dict[str, Any]:
            while True:
                for message in self.messages:
                    if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                        return message
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(find(), timeout)

    async def wait_frames(self, video: int, audio: int, timeout: float = 15.0) -> None:
        async def poll() -> None:
            while self.frames["video"] < video or self.frames["audio"] < audio:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(poll(), timeout)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def drop(self) -> None:
        """Lose the connection without saying goodbye (network failure)."""
        for task in self._consumers:
            task.cancel()
        self._consumers.clear()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader
        if self.pc is not None:
            await self.pc.close()
        self.frames = {"audio": 0, "video": 0}
        self.messages.clear()

    async def close(self) -> None:
        await self.drop()
        for track in self.tracks:
            track.stop()
