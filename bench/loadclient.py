# Over 500 lines: the load client is one process image (signaling, media, counters) started per core.
"""Load-client process: several simulated participants in one asyncio loop, cheap enough to share a core.

Each participant speaks our signaling protocol, publishes the pre-encoded clip (no encoder) and counts
what it receives at the RTP level (no jitter buffer, no decoder; see `CountingReceiver`): a picture
counts as delivered when all its packets arrived, which is what a browser would hand to its decoder.
The late joiner alone decodes, to time its first picture.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci

from bench.clip import AUDIO_SAMPLES, FPS, SAMPLE_RATE, Clip
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import transport as fork_transport

KINDS = ("audio", "video")
JOIN_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0
CATCH_UP_LIMIT = 0.1  # seconds a publisher may fall behind before it re-times instead of bursting
MAX_REDIRECTS = 3  # `wrong_node` replies a participant follows before it gives up, as tests/rtc_client.py
FIRST_NODE = "first"  # the node of a participant welcomed on the public URL itself (no ?node=)
_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"  # private to aiortc 1.16, like media/aiortc_fork/
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"


class ClipTrack(MediaStreamTrack):
    """Replays the clip's encoded packets in real time; aiortc's sender only packetises them.

    A keyframe request (PLI/FIR reaching the sender) makes the next packet the clip's next keyframe,
    as a live encoder would, so a new subscriber does not wait for the loop to come round.
    """

    def __init__(self, kind: str, clip: Clip) -> None:
        super().__init__()
        self.kind = kind
        if kind == "video":
            self._packets, self._keyframes = clip.video, clip.keyframes
            self._interval, self._step, self._time_base = 1 / FPS, 90000 // FPS, Fraction(1, 90000)
        else:
            self._packets, self._keyframes = clip.audio, []
            self._interval = AUDIO_SAMPLES / SAMPLE_RATE
            self._step, self._time_base = AUDIO_SAMPLES, Fraction(1, SAMPLE_RATE)
        self._position = 0
        self._count = 0
        self._start: float | None = None
        self._keyframe_wanted = False
        self.keyframe_requests = 0
        self.max_lag = 0.0  # how late the loop delivered a packet: > a few ms means the client core is busy

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._keyframe_wanted = True

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * self._interval
        if due > now:
            await asyncio.sleep(due - now)
        else:
            self.max_lag = max(self.max_lag, now - due)
            if now - due > CATCH_UP_LIMIT:
                # a camera that fell behind does not send the missed pictures in a burst: the
                # stream goes on from now (otherwise subscribers would count more than 30 fps)
                self._start = now - self._count * self._interval
        if self._keyframe_wanted:
            self._keyframe_wanted = False
            if self._position not in self._keyframes:
                ahead = [k for k in self._keyframes if k > self._position]
                self._position = ahead[0] if ahead else self._keyframes[0]
        packet = av.Packet(self._packets[self._position])
        packet.pts = self._count * self._step
        packet.time_base = self._time_base
        self._position = (self._position + 1) % len(self._packets)
        self._count += 1
        return packet


def _is_vp8_keyframe(data: bytes) -> bool:
    return bool(data) and not data[0] & 0x01


def _receiver_counters(receiver: RTCRtpReceiver) -> tuple[int, int]:
    """(packets lost, packets expected) of the media SSRCs, RTX streams left out.

    getStats() files every SSRC of a receiver under one id, so an RTX stream can hide the media stream;
    reading the statistics objects directly avoids that.
    """
    streams = getattr(receiver, _REMOTE_STREAMS)
    rtx = getattr(receiver, _RTX_SSRC)
    lost = expected = 0
    for ssrc, stream in streams.items():
        if ssrc in rtx:
            continue
        lost += stream.packets_lost
        expected += stream.packets_received + stream.packets_lost
    return lost, expected


@dataclass
class Snapshot:
    down: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind → (lost, expected)
    up: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind → (lost per server RR, sent)


class CountingReceiver:
    """A receive path for load clients that counts what a browser would decode, at the RTP level.

    aiortc's full receive path (jitter buffer, depayloading, delay-based estimator) costs the client
    core about as much as the server spends forwarding, so 16 participants pairs would saturate it.
    Here a picture counts as delivered when its last packet (marker bit) arrives with no packet of it
    missing; an Opus packet when it arrives. The loss statistics behind aiortc's receiver reports are
    kept (the server gets RRs), and a REMB is sent once a second as browsers do (estimate: link
    clearly sufficient), so the server's feedback handling runs at a realistic rate.
    """

    REMB_BITRATE = 2_000_000
    REMB_INTERVAL = 1.0

    def __init__(self, participant: LoadParticipant, receiver: RTCRtpReceiver, kind: str) -> None:
        self.participant = participant
        self.receiver = receiver
        self.kind = kind
        self.arrivals = participant.arrivals[kind]
        self.streams = getattr(receiver, _REMOTE_STREAMS)
        self.rtx = getattr(receiver, _RTX_SSRC)
        self.clock_rate = 90000 if kind == "video" else 48000
        self.expected: int | None = None
        self.complete = True
        self.picture_start = True
        self.remb_at = 0.0

    def install(self) -> None:
        self.receiver._handle_rtp_packet = self.handle  # type: ignore[method-assign]

    async def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.ssrc in self.rtx:
            return  # no NACKs are sent, so nothing is retransmitted to us
        stream = self.streams.get(packet.ssrc)
        if stream is None:
            stream = self.streams[packet.ssrc] = StreamStatistics(self.clock_rate)
        stream.add(packet)
        now = time.monotonic()
        if self.kind == "audio":
            self.arrivals.append(now)
            return
        if self.expected is not None and packet.sequence_number != self.expected:
            self.complete = False
        self.expected = (packet.sequence_number + 1) & 0xFFFF
        if self.picture_start and self.participant.first_video_key is None and packet.payload:
            _, data = VpxPayloadDescriptor.parse(packet.payload)
            self.participant.first_video_key = _is_vp8_keyframe(data)
        self.picture_start = bool(packet.marker)
        if packet.marker:
            if self.complete:
                self.arrivals.append(now)
            self.complete = True
        if now - self.remb_at >= self.REMB_INTERVAL:
            self.remb_at = now
            await self._remb(packet.ssrc)

    async def _remb(self, ssrc: int) -> None:
        rtcp_ssrc = getattr(self.receiver, _RTCP_SSRC)
        if rtcp_ssrc is not None:
            fci = pack_remb_fci(self.REMB_BITRATE, [ssrc])
            await self.receiver._send_rtcp(
                RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
            )


class LoadParticipant:
    """One citizen or advisor: joins, publishes the clip, records arrival times of remote frames."""

    def __init__(self, spec: dict[str, Any], clip: Clip, ws_url: str) -> None:
        self.spec = spec
        self.ws_url = ws_url
        self.tracks = {kind: ClipTrack(kind, clip) for kind in KINDS}
        self.senders: dict[str, RTCRtpSender] = {}
        self.receivers: dict[str, RTCRtpReceiver] = {}
        self.arrivals: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.first_video_key: bool | None = None
        self.hello_at: float | None = None
        self.welcome_at: float | None = None
        self.subscribed_at: float | None = None  # the offer that first announced the remote video
        self.connected_at: float | None = None  # ICE + DTLS done
        self.error: str | None = None
        self.node: str | None = None  # which server process welcomed it (`?node=` of its URL, or "first")
        self.redirects = 0
        self.pc: RTCPeerConnection | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._published = False

    async def join(self, session: aiohttp.ClientSession) -> None:
        """Hello on the public URL; a `wrong_node` reply (`serve --workers N`: the room runs on another
        process) sends it to the URL given there, as the browser does. The peer connection is made
        once: no offer comes before the welcome, so it is still unused after a redirect."""
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self.hello_at = time.monotonic()  # join and connect times include any redirects
        url = self.ws_url
        while True:
            reply = await self._hello(session, url)
            if reply["type"] == "welcome":
                self.ws_url = url
                self.node = parse_qs(urlsplit(url).query).get("node", [FIRST_NODE])[0]
                return
            if reply.get("code") != "wrong_node" or not reply.get("url") or self.redirects >= MAX_REDIRECTS:
                self.error = f"{reply.get('code')}: {reply.get('message')}"
                raise RuntimeError(self.error)
            self.redirects += 1
            await self._hang_up()
            url = reply["url"]

    async def _hello(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        """Connect, say hello, and return the reply to it: the welcome or an error."""
        self.ws = await session.ws_connect(url)
        replied: asyncio.Future = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read(replied))
        await self.ws.send_json(
            {"type": "hello", "id": "h", "v": 1, "token": self.spec["token"], "name": self.spec["name"]}
        )
        return await replied

    async def _hang_up(self) -> None:
        """Close the socket of a refused hello (its reader ends with it)."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def _on_state(self) -> None:
        assert self.pc is not None
        if self.pc.connectionState == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.pc is not None
        transceiver = fork_receiver.transceiver_of(self.pc, track)
        if transceiver is not None:
            self.receivers[track.kind] = transceiver.receiver
            CountingReceiver(self, transceiver.receiver, track.kind).install()

    async def _read(self, replied: asyncio.Future) -> None:
        """Handle the server's messages; `replied` gets the reply to hello (welcome or error)."""
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                message = json.loads(msg.data)
                kind = message["type"]
                if kind == "welcome":
                    self.welcome_at = time.monotonic()
                    if not replied.done():
                        replied.set_result(message)
                elif kind == "offer":
                    if self.subscribed_at is None and any(
                        s.get("kind") == "video" for s in message.get("streams", {}).values()
                    ):
                        self.subscribed_at = time.monotonic()
                    await self._answer(message["sdp"])
                elif kind == "error":
                    if not replied.done():
                        replied.set_result(message)  # join() decides: follow a redirect or fail
                    else:
                        self.error = f"{message.get('code')}: {message.get('message')}"
        except Exception as exc:  # the benchmark records it and carries on with the others
            self.error = self.error or f"signaling: {exc!r}"
        if not replied.done():
            replied.set_exception(RuntimeError(self.error or "socket closed before welcome"))

    async def _answer(self, sdp: str) -> None:
        assert self.pc is not None and self.ws is not None
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if not self._published:
            self._published = True
            for kind, track in self.tracks.items():
                sender = self.pc.addTrack(track)
                sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
                self.senders[kind] = sender
        answer = await self.pc.createAnswer()
        pin_host_addresses(self.pc)
        await self.pc.setLocalDescription(answer)
        fork_transport.shortcut_transports(self.pc)  # the clients' own cost, cut as the server's is
        await self.ws.send_json({"type": "answer", "sdp": self.pc.localDescription.sdp})

    async def snapshot(self) -> Snapshot:
        snap = Snapshot()
        for kind, receiver in self.receivers.items():
            snap.down[kind] = _receiver_counters(receiver)
        for kind, sender in self.senders.items():
            lost = sent = 0
            for stats in (await sender.getStats()).values():
                if stats.type == "remote-inbound-rtp":
                    lost = stats.packetsLost
                elif stats.type == "outbound-rtp":
                    sent = stats.packetsSent
            snap.up[kind] = (lost, sent)
        return snap

    def reset_lag(self) -> None:
        for track in self.tracks.values():
            track.max_lag = 0.0

    def summary(self, t0: float, t1: float, before: Snapshot, after: Snapshot) -> dict[str, Any]:
        """Per-second counts and gaps inside the measurement window [t0, t1)."""
        bins = max(1, int(t1 - t0))
        result: dict[str, Any] = {
            "name": self.spec["name"],
            "consultation": self.spec["consultation"],
            "role": self.spec["role"],
            "error": self.error,
            "joined": self.welcome_at is not None,
            "pid": os.getpid(),
            "node": self.node,
            "redirects": self.redirects,
        }
        for kind in KINDS:
            times = self.arrivals[kind]
            inside = [t for t in times if t0 <= t < t1]
            per_second = [0] * bins
            for t in inside:
                index = int(t - t0)
                if index < bins:
                    per_second[index] += 1
            earlier = [t for t in times if t < t0]
            points = [earlier[-1] if earlier else t0, *inside, t1]
            gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
            worst = max(range(len(gaps)), key=gaps.__getitem__)
            result[kind] = {
                "count": len(inside),
                "per_second": per_second,
                "max_gap_ms": round(gaps[worst] * 1000, 1),
                "max_gap_at_s": round(points[worst] - t0, 2),  # where in the window it began
                "first_ms": (
                    round((times[0] - self.subscribed_at) * 1000, 1)
                    if times and self.subscribed_at is not None
                    else None
                ),
                "down": [after.down.get(kind, (0, 0))[i] - before.down.get(kind, (0, 0))[i] for i in (0, 1)],
                "up": [after.up.get(kind, (0, 0))[i] - before.up.get(kind, (0, 0))[i] for i in (0, 1)],
                "max_send_lag_ms": round(self.tracks[kind].max_lag * 1000, 1),
            }
        result["first_video_key"] = self.first_video_key
        result["keyframe_requests"] = self.tracks["video"].keyframe_requests
        result["connect_ms"] = (
            round((self.connected_at - self.hello_at) * 1000, 1)
            if self.connected_at and self.hello_at
            else None
        )
        result["join_ms"] = (
            round((self.welcome_at - self.hello_at) * 1000, 1) if self.welcome_at and self.hello_at else None
        )
        return result

    async def close(self) -> None:
        try:
            if self.ws is not None and not self.ws.closed:
                await self.ws.send_json({"type": "leave", "id": "bye"})
                await self.ws.close()
            if self._reader is not None:
                self._reader.cancel()
            if self.pc is not None:
                await self.pc.close()
        except Exception:
            pass
        for track in self.tracks.values():
            track.stop()


class LateJoiner(LoadParticipant):
    """A third person (guest link) joining a running consultation, publishing nothing: it decodes each
    remote video with libvpx and records when the first picture came out, after the offer that
    subscribed it. That is the delay a newcomer sees, keyframe request included."""

    def __init__(self, spec: dict[str, Any], clip: Clip, ws_url: str) -> None:
        super().__init__(spec, clip, ws_url)
        self.tracks = {}
        self.first_decoded: list[float] = []  # one entry per remote video, when it first decoded
        self.first_keyframe: list[bool] = []  # whether the first frame that arrived was a keyframe

    def _on_track(self, track: MediaStreamTrack) -> None:
        assert self.pc is not None
        transceiver = fork_receiver.transceiver_of(self.pc, track)
        if track.kind != "video" or transceiver is None:
            return
        decoder = av.CodecContext.create("libvpx", "r")
        state = {"done": False, "seen": False}

        def sink(codec: Any, frame: Any, decoder: Any = decoder, state: dict = state) -> None:
            if state["done"]:
                return
            if not state["seen"]:
                state["seen"] = True
                self.first_keyframe.append(_is_vp8_keyframe(frame.data))
            try:
                pictures = decoder.decode(av.Packet(frame.data))
            except av.error.FFmpegError:
                return  # a delta frame without its keyframe: wait for one
            if pictures:
                state["done"] = True
                self.first_decoded.append(time.monotonic())

        fork_receiver.tap_receiver(transceiver.receiver, sink)

    def late_summary(self, expected: int) -> dict[str, Any]:
        times = (
            [round((t - self.subscribed_at) * 1000, 1) for t in self.first_decoded]
            if (self.subscribed_at is not None)
            else []
        )
        return {
            "joined": self.welcome_at is not None,
            "error": self.error,
            "node": self.node,
            "videos": expected,
            "first_decoded_ms": sorted(times),
            "connected_ms": (
                round((self.connected_at - self.subscribed_at) * 1000, 1)
                if self.connected_at is not None and self.subscribed_at is not None
                else None
            ),
            "first_frame_keyframe": self.first_keyframe,
        }


async def _late_join(schedule: dict[str, Any], clip: Clip, session: aiohttp.ClientSession) -> dict[str, Any]:
    spec = {"name": "late-joiner", "consultation": 0, "role": "guest", "token": schedule["late"]["token"]}
    joiner = LateJoiner(spec, clip, schedule["ws_url"])
    await _sleep_until(schedule["late"]["at"])
    try:
        await asyncio.wait_for(joiner.join(session), JOIN_TIMEOUT)
    except Exception as exc:
        joiner.error = joiner.error or f"join: {exc!r}"
    await _sleep_until(schedule["t_close"])
    result = joiner.late_summary(expected=2)
    try:
        await asyncio.wait_for(joiner.close(), CLOSE_TIMEOUT)
    except Exception:
        pass  # the figures are taken; a server that stopped answering must not hold them back
    return result


# The addresses the load clients announce as host candidates (loopback: the server's ICE policy and the
# benchmark's network); pinned per connection, as the server does, so aiortc itself stays stock.
HOST_ADDRESSES: list[str] = ["127.0.0.1"]


def pin_host_addresses(pc: Any) -> None:
    """Before a peer connection gathers (setLocalDescription): announce only HOST_ADDRESSES."""
    for connection in fork_transport.ice_connections(pc):
        fork_transport.pin_host_addresses(connection, HOST_ADDRESSES)


async def _sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def _run(
    participants: list[dict[str, Any]],
    clip: Clip,
    schedule: dict[str, Any],
    factory: type[LoadParticipant] = LoadParticipant,
) -> dict[str, Any]:
    HOST_ADDRESSES[:] = schedule.get("addresses", ["127.0.0.1"])
    t0, t1 = schedule["t0"], schedule["t1"]
    async with aiohttp.ClientSession() as session:
        peers = [factory(spec, clip, schedule["ws_url"]) for spec in participants]

        async def join(peer: LoadParticipant) -> None:
            await _sleep_until(peer.spec["join_at"])
            try:
                await asyncio.wait_for(peer.join(session), JOIN_TIMEOUT)
            except Exception as exc:
                peer.error = peer.error or f"join: {exc!r}"

        joins = [asyncio.ensure_future(join(peer)) for peer in peers]
        late = asyncio.ensure_future(_late_join(schedule, clip, session)) if schedule.get("late") else None
        await _sleep_until(t0)
        before = [await peer.snapshot() for peer in peers]
        for peer in peers:
            peer.reset_lag()
        await _sleep_until(t1)
        after = [await peer.snapshot() for peer in peers]
        results = [peer.summary(t0, t1, b, a) for peer, b, a in zip(peers, before, after, strict=True)]
        # the consultations go on while the late joiner (after the window) gets its pictures
        await _sleep_until(schedule.get("t_close", t1))
        late_result = None
        if late is not None:
            try:
                late_result = await late
            except Exception as exc:
                late_result = {"joined": False, "error": repr(exc), "first_decoded_ms": [], "videos": 2}
        for task in joins:
            task.cancel()
        await asyncio.gather(
            *(asyncio.wait_for(peer.close(), CLOSE_TIMEOUT) for peer in peers), return_exceptions=True
        )
    return {"participants": results, "late": late_result}


def client_main(
    conn: Connection,
    participants: list[dict[str, Any]],
    clip: Clip,
    cpu: int | Collection[int] | None,
    factory: type[LoadParticipant] = LoadParticipant,
) -> None:
    """Entry point of one load-client process: report ready, take the schedule, run, send results.
    `cpu`: the core (or cores) it may run on, away from the server's; `factory`: the participant class,
    which speaks the server's signaling (bench/janus_client.py's for the Janus reference)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu} if isinstance(cpu, int) else set(cpu))
    conn.send(("ready", os.getpid()))
    schedule = conn.recv()
    for spec, join_at in zip(participants, schedule["join_at"], strict=True):
        spec["join_at"] = join_at
    try:
        results = asyncio.run(_run(participants, clip, schedule, factory))
        conn.send(("results", results))
    except Exception as exc:
        conn.send(("failed", repr(exc)))
    finally:
        conn.close()


# --- the benchmark's side of the load-client processes (bench/media_relay.py and bench/janus.py) ---


def start_clients(
    groups: list[list[dict[str, Any]]],
    clip: Clip,
    cpu: int | Collection[int] | None,
    factory: type[LoadParticipant] = LoadParticipant,
) -> tuple[list[multiprocessing.Process], list[Connection], list[int]]:
    """One spawned process per group of participants; returns the processes, the parent ends of their
    pipes and their pids once every one has reported ready (RuntimeError after 60 s without)."""
    context = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    for group in groups:
        parent, child = context.Pipe()
        proc = context.Process(target=client_main, args=(child, group, clip, cpu, factory), daemon=True)
        proc.start()
        child.close()
        procs.append(proc)
        pipes.append(parent)
    pids = []
    for pipe in pipes:
        if not pipe.poll(60):
            raise RuntimeError("a load client did not start")
        pids.append(pipe.recv()[1])
    return procs, pipes, pids


def collect_results(pipes: list[Connection]) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """Every client process's participants, the late joiner's figures (if one was scheduled) and the
    failures, one line each."""
    participants: list[dict[str, Any]] = []
    late_joiner = None
    failures = []
    for pipe in pipes:
        if not pipe.poll(60):
            failures.append("a load client sent no results")
            continue
        status, payload = pipe.recv()
        if status == "results":
            participants.extend(payload["participants"])
            late_joiner = late_joiner or payload["late"]
        else:
            failures.append(payload)
    return participants, late_joiner, failures


def stop_clients(procs: list[multiprocessing.Process]) -> None:
    """Wait for the client processes to end; terminate one that hangs."""
    for proc in procs:
        proc.join(timeout=15)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
