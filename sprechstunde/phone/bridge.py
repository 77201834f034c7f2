"""The audio bridge: a claimed caller enters the consultation room as a participant of its own.

When an advisor takes a phone entry ("Nächste Person"), `RoomBridge` joins the room with the citizen's
capability (the join token `RoomService.admission_links` signs, as the waiting room hands it to a video
citizen) over the project's own signaling — a WebSocket to this server's `/ws`, so the hub, seats and
`wrong_node` redirects treat the caller exactly like a browser. Its media takes one of two ways:

* The room is hosted by this process (the usual case: the SIP node pins its caller's room to itself,
  `RoomBridge.pin`): the caller joins without a peer connection (`hello` `media: false`) and its media
  enters the room's media session directly (`SignalingHub.start_local_media`, media/local.py): its Opus
  packets into its publication, the others' microphones handed to the mix as their packets arrive.
* The room lives on another node (the hello was redirected): an aiortc client in this process with a
  peer connection to that node, on the same shortcuts as the server's own connections
  (media/aiortc_fork: its transport past aioice's queue, its receivers tapped for encoded frames).
  Video lines are answered `inactive`: a telephone needs no pictures and the server sends none.

Either way:

* Caller → room: the caller's 20 ms G.711 frames (`PhoneCall.inbound`, already 8 kHz PCM from PJSIP),
  paced by the clock and encoded here to narrowband Opus (`CallerTrack`).
* Room → caller: the Opus packets of every other participant's microphone (advisor, interpreter),
  decoded to mono and resampled to 8 kHz on the event loop as they arrive (`Speaker`), buffered per
  speaker and mixed in `PhoneCall.feed`, which PJSIP's media clock asks for every outbound frame (G.711
  to the caller).

This is the one place the server transcodes audio; each 20 ms frame crossing it, in either direction,
counts in `ForwardingStats.decoded` (`sprechstunde_media_frames_transcoded`).

The bridge ends when the caller hangs up (it leaves the room), when the consultation is closed or handed
over (`consultation-ended`, `transferred`, or the entry no longer `called` into this room), or when the
room's socket closes. The IVR then hangs up (closed), waits again (handed over) or reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import json
import logging
import time
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy

from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import transport as fork_transport
from sprechstunde.media.forwarding import ForwardingStats
from sprechstunde.media.local import Listener, LocalPeer
from sprechstunde.phone.ivr import first_done
from sprechstunde.phone.sip import FRAME_BYTES, FRAME_SAMPLES, RATE, SILENCE, PhoneCall
from sprechstunde.rooms.entries import QueueEntry
from sprechstunde.rooms.queue import QueueService
from sprechstunde.rooms.service import RoomService
from sprechstunde.signaling.protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, RATE)
MAX_LAG_FRAMES = 3  # caller audio older than 60 ms behind the room's clock is dropped (latency stays low)
PRIME_FRAMES = 2  # a speaker's first 40 ms are buffered before playing (network jitter)
MAX_SPEAKER_FRAMES = 15  # at most 300 ms buffered per speaker; older audio is dropped
ENTRY_POLL = 1.0  # seconds between looks at the queue entry (consultation closed / handed over)
JOIN_TIMEOUT = 10.0
MAX_REDIRECTS = 3
OPUS_BITRATE = 24_000  # the caller's voice to the room: 8 kHz telephone audio needs no more
OPUS_STEP = 960  # one 20 ms packet on Opus's 48 kHz RTP clock

# The caller's media inside this process's media session (`SignalingHub.start_local_media`): room id,
# the participant id of the welcome, where the room's audio goes; None when the room is not here.
LocalMedia = Callable[[str, str, Listener], Awaitable[LocalPeer | None]]


def participant_name(call: PhoneCall) -> str:
    """What the room shows for the caller: never the full number (the ticket alone holds it)."""
    return f"Telefon {call.masked}"


class CallerTrack(MediaStreamTrack):
    """The caller's voice as an aiortc audio track: one 20 ms frame of 8 kHz PCM per `recv`, paced by
    the wall clock (aiortc pulls as fast as it is given frames); silence while the caller's frames are
    late, and frames beyond MAX_LAG_FRAMES dropped so the delay never grows.

    It hands its reader (aiortc's sender, or `RoomLeg._speak` in this process's media session) Opus
    packets, encoded here from the 8 kHz mono frames as they are (narrowband voice, OPUS_BITRATE),
    instead of frames for aiortc's own encoder, which resamples every frame to 48 kHz stereo and
    encodes that at 96 kbit/s on a thread of the executor: 250 against 140 µs a frame, plus the
    thread's hand-over (issue 20, bench/phone.py)."""

    kind = "audio"

    def __init__(self, call: PhoneCall, stats: ForwardingStats | None) -> None:
        super().__init__()
        self._call = call
        self._stats = stats
        self._start: float | None = None
        self._pts = 0
        self.frames = 0
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.bit_rate = OPUS_BITRATE
        self._encoder.format = "s16"
        self._encoder.layout = "mono"
        self._encoder.sample_rate = RATE
        self._encoder.time_base = TIME_BASE
        self._encoder.options = {"application": "voip"}

    async def recv(self) -> av.Packet:
        while True:  # the encoder's first frame gives no packet yet (its look-ahead)
            for packet in self._encoder.encode(await self._next_frame()):
                packet.time_base = TIME_BASE
                return packet

    async def _next_frame(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        keep = MAX_LAG_FRAMES  # caller frames that may wait behind this one
        if self._start is None:
            self._start = time.monotonic()
            self._call.inbound.clear()  # what was said to the menu is not for the room
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -MAX_LAG_FRAMES * FRAME_SAMPLES / RATE:
                # the loop stalled: carry on from now instead of sending the missed frames back to back,
                # with no more than the newest frame queued (else the lag would stay for the whole call)
                self._start -= wait
                keep = 1
        inbound = self._call.inbound
        while len(inbound) > keep:
            inbound.popleft()
        data = inbound.popleft() if inbound else SILENCE
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(data)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self.frames += 1
        if self._stats is not None:
            self._stats.decoded += 1
        return frame


class Speaker:
    """One room track's audio at 8 kHz, in 20 ms frames: its Opus packets decoded and resampled on the
    event loop as they arrive (`hear`), read on the media clock's thread (`take`; deque appends and pops
    are atomic)."""

    def __init__(self) -> None:
        self.frames: collections.deque[bytes] = collections.deque(maxlen=MAX_SPEAKER_FRAMES)
        self.primed = False
        # FFmpeg's libopus decodes at 48 kHz; mono output (a stereo stream is mixed down by libopus) takes
        # 34 µs a frame and its resampling 19 µs, against 51 and 25 µs for aiortc's stereo
        self._decoder = av.CodecContext.create("libopus", "r")
        self._decoder.layout = "mono"
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._pending = bytearray()

    def hear(self, payload: bytes) -> int:
        """Decode one Opus packet into the speaker's 8 kHz frames; returns how many 20 ms frames it
        completed. A packet libopus refuses is skipped (the caller hears a gap, not an error); an empty
        one too: handed to FFmpeg it would end the stream, and every packet after it would decode to
        nothing (the receiver's tap hands none on, `FrameTap`; this holds for any other caller)."""
        if not payload:
            return 0
        pending = self._pending
        try:
            for frame in self._decoder.decode(av.Packet(payload)):
                for out in self._resampler.resample(frame):
                    pending += bytes(out.planes[0])[: out.samples * 2]
        except av.error.FFmpegError:
            return 0
        completed = 0
        while len(pending) >= FRAME_BYTES:
            self.frames.append(bytes(pending[:FRAME_BYTES]))
            del pending[:FRAME_BYTES]
            completed += 1
        return completed

    def take(self) -> bytes | None:
        if not self.primed:
            if len(self.frames) < PRIME_FRAMES:
                return None
            self.primed = True
        if not self.frames:
            self.primed = False  # ran dry: buffer again before playing on
            return None
        return self.frames.popleft()


class RoomMix:
    """The room's speakers mixed for the caller; `feed` is `PhoneCall.feed` (PJSIP's media thread)."""

    def __init__(self, stats: ForwardingStats | None) -> None:
        self._stats = stats
        self._speakers: tuple[Speaker, ...] = ()  # replaced, never mutated: read from another thread
        self._by_publisher: dict[str, Speaker] = {}  # in the media session: whose microphone each is
        self.frames_in = 0  # 20 ms frames decoded from the room

    def _add(self) -> tuple[Speaker, Callable[[bytes], None]]:
        """A new speaker in the mix, and the function its Opus packets go to (decoded on the loop)."""
        speaker = Speaker()

        def heard(payload: bytes) -> None:
            completed = speaker.hear(payload)
            self.frames_in += completed
            if self._stats is not None:
                self._stats.decoded += completed

        self._speakers = (*self._speakers, speaker)
        return speaker, heard

    def _remove(self, speaker: Speaker) -> None:
        self._speakers = tuple(s for s in self._speakers if s is not speaker)

    def hear(self, publisher_id: str) -> Callable[[bytes], None]:
        """In the room's media session (`LocalPeer`): one participant's microphone joins the mix."""
        self.forget(publisher_id)
        speaker, heard = self._add()
        self._by_publisher[publisher_id] = speaker
        return heard

    def forget(self, publisher_id: str) -> None:
        speaker = self._by_publisher.pop(publisher_id, None)
        if speaker is not None:
            self._remove(speaker)

    def listen(self, receiver: RTCRtpReceiver, track: MediaStreamTrack) -> asyncio.Task:
        """Over a peer connection: mix one remote audio track (its receiver not started yet) for the
        caller until it ends.

        Its encoded Opus packets are taken from the receiver as they arrive (the forwarding tap of
        media/aiortc_fork/receiver.py, as the server's own receivers) and decoded here, on the loop:
        aiortc's decoder thread, which decodes to 48 kHz stereo and hands each frame back to the loop,
        cost more than the decoding (issue 20, bench/phone.py). The track only tells when it ends."""
        speaker, heard = self._add()
        fork_receiver.tap_receiver(receiver, lambda _codec, frame: heard(frame.data), prompt=True)
        return asyncio.ensure_future(self._until_ended(track, speaker))

    async def _until_ended(self, track: MediaStreamTrack, speaker: Speaker) -> None:
        try:
            while True:
                await track.recv()  # a tapped track yields nothing: it raises once the receiver stops
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            self._remove(speaker)

    def feed(self) -> bytes | None:
        """The next 20 ms for the caller: the sum of every speaker's next frame, None while all are quiet."""
        parts = [data for data in (s.take() for s in self._speakers) if data is not None]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        mixed = array("h", parts[0])
        for data in parts[1:]:
            other = array("h", data)
            for i, sample in enumerate(other):
                mixed[i] = max(-32768, min(32767, mixed[i] + sample))
        return mixed.tobytes()


class BridgeError(Exception):
    """The room did not take the caller (hello refused, no welcome in time)."""


class RoomLeg:
    """The caller's participant in one room: a signaling socket, and its media either inside this
    process's media session (`local`, when the room is hosted here: media/local.py) or over an aiortc
    peer connection (the room lives on another node)."""

    def __init__(
        self,
        call: PhoneCall,
        url: str,
        token: str,
        stats: ForwardingStats | None,
        local: LocalMedia | None = None,
    ) -> None:
        self.call = call
        self.url = url
        self.token = token
        self._local = local
        self.in_process = False  # whether the caller's media is in this process's session (no WebRTC)
        self.track = CallerTrack(call, stats)
        self.mix = RoomMix(stats)
        self.ended = asyncio.Event()  # the room says the consultation is over (or the socket closed)
        self.reason = ""
        self.welcome: dict[str, Any] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pc: RTCPeerConnection | None = None
        self._reader: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._published = False
        self._hello: asyncio.Future[dict[str, Any]] | None = None

    async def join(self) -> dict[str, Any]:
        """Say hello (following `wrong_node` redirects) and return the welcome; BridgeError if refused.

        The first hello goes to this process's own socket: welcomed there, the room is hosted here and
        the caller's media joins its session directly (`hello` `media: false`, no peer connection).
        A redirect means the room lives on another node: the caller joins there over WebRTC."""
        self._session = aiohttp.ClientSession()
        url = self.url
        local = self._local
        for _ in range(MAX_REDIRECTS + 1):
            self.in_process = local is not None
            self._ws = await self._session.ws_connect(url, heartbeat=20.0)
            self._hello = asyncio.get_running_loop().create_future()
            self._reader = asyncio.ensure_future(self._read())
            await self._ws.send_json(
                {
                    "type": "hello",
                    "id": "h",
                    "v": PROTOCOL_VERSION,
                    "token": self.token,
                    "name": participant_name(self.call),
                    "media": not self.in_process,
                }
            )
            try:
                reply = await asyncio.wait_for(asyncio.shield(self._hello), JOIN_TIMEOUT)
            except TimeoutError:
                raise BridgeError("no welcome from the room") from None
            if reply["type"] == "welcome":
                self.welcome = reply
                # a telephone has no camera: the others' pages show the caller's name, not a black picture
                await self._ws.send_json({"type": "media-state", "audio": True, "video": False})
                if local is not None:
                    await self._join_media(local, reply)
                return reply
            await self._ws.close()
            await self._reader
            if reply.get("code") != "wrong_node" or not reply.get("url"):
                raise BridgeError(f"hello refused: {reply.get('code')}")
            # the refused socket's reader marked the leg ended on its way out: the call goes on elsewhere
            self.ended.clear()
            self.reason = ""
            url = reply["url"]
            local = None
        raise BridgeError("too many redirects")

    async def _join_media(self, local: LocalMedia, welcome: dict[str, Any]) -> None:
        """The caller's media in this process's session: the room's audio into the mix, the caller's
        Opus packets straight into its publication, paced by `CallerTrack`."""
        room_id, participant_id = str(welcome.get("room_id")), str(welcome.get("participant_id"))
        # shielded: given up on, it still finishes (another participant's renegotiation may be inside
        # it, and cut off between its offer and sending it would leave that connection waiting); the
        # leg's `leave` then takes the caller out again
        joining = asyncio.ensure_future(local(room_id, participant_id, self.mix))
        try:
            peer = await asyncio.wait_for(asyncio.shield(joining), JOIN_TIMEOUT)
        except TimeoutError:
            joining.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
            raise BridgeError("the room's media session did not take the caller in time") from None
        except Exception as exc:  # e.g. another participant's renegotiation failing on the way
            log.exception("phone bridge of %s: the room's media session failed", self.call.masked)
            raise BridgeError(f"the room's media session failed: {exc!r}") from None
        if peer is None:  # left or moved in the instant since the welcome: the IVR tries again
            raise BridgeError("the room's media is not in this process")
        task = asyncio.ensure_future(self._speak(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _speak(self, peer: LocalPeer) -> None:
        """The caller's voice into the room until the call or the participant ends. Should encoding
        fail, the leg ends (the IVR joins the caller again) rather than leave the room without them."""
        timestamp = 0
        try:
            while not peer.closed:
                packet = await self.track.recv()
                peer.send(bytes(packet), timestamp)
                timestamp = (timestamp + OPUS_STEP) % 2**32
        except MediaStreamError:
            pass  # the call is over (the track stopped)
        except Exception:
            log.exception("phone bridge of %s: the caller's audio to the room failed", self.call.masked)
            self.reason = self.reason or "media failed"
            self.ended.set()

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                message = json.loads(msg.data)
                kind = message.get("type")
                if kind == "welcome":
                    if not self.in_process:
                        self._open(message.get("ice_servers", []))
                    self._settle(message)
                elif kind == "error" and message.get("id") == "h":
                    self._settle(message)
                elif kind == "offer":
                    await self._answer(message["sdp"])
                elif kind in ("consultation-ended", "transferred"):
                    self.reason = kind
                    self.ended.set()
        except (ConnectionError, aiohttp.ClientError):
            pass
        except Exception:
            log.exception("phone bridge of %s: signaling failed", self.call.masked)
        finally:
            if not self.reason:
                self.reason = "socket closed"
            self.ended.set()
            self._settle({"type": "error", "code": "closed"})

    def _settle(self, message: dict[str, Any]) -> None:
        if self._hello is not None and not self._hello.done():
            self._hello.set_result(message)

    def _open(self, ice_servers: list[dict[str, Any]]) -> None:
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in ice_servers
        ]
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self._pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = fork_receiver.transceiver_of(self._pc, track) if self._pc is not None else None
        if track.kind != "audio" or transceiver is None:
            return
        task = self.mix.listen(transceiver.receiver, track)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, sdp: str) -> None:
        assert self._pc is not None and self._ws is not None
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if not self._published:
            self._pc.addTrack(self.track)  # the first audio line (mid 0): what this participant says
            self._published = True
        for transceiver in self._pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.direction = "inactive"  # no camera, no screen, and none of theirs
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        # the server's shortcut past aioice's queue and coroutines, on this end of the loopback too
        fork_transport.shortcut_transports(self._pc)
        await self._ws.send_json({"type": "answer", "sdp": self._pc.localDescription.sdp})

    async def close(self) -> None:
        """Leave the room (`leave`, so nobody waits for a reconnect) and free everything."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.send_json({"type": "leave"})
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.track.stop()
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await self._pc.close()
        if self._session is not None:
            await self._session.close()


class RoomBridge:
    """The IVR's `connect`: bridges a claimed caller into the consultation room until one side ends."""

    def __init__(
        self,
        queue: QueueService,
        rooms: RoomService,
        url: str | Callable[[], str],
        stats: ForwardingStats | None = None,
        *,
        retry_after: float = 2.0,
        pin_here: Callable[[str, float], Awaitable[Any]] | None = None,
        local_media: LocalMedia | None = None,
    ) -> None:
        self.queue = queue
        self.rooms = rooms
        self.url = url  # this server's signaling socket, ws://host:port/ws
        self.stats = stats
        self.retry_after = retry_after
        # several nodes: pins a room to this process unless it is live elsewhere (NodeRegistry.pin_here)
        self.pin_here = pin_here
        # the room's media session in this process (the hub's), for a caller whose room is hosted here;
        # None: always over WebRTC, as to a room on another node
        self.local_media = local_media
        self.legs: dict[str, RoomLeg] = {}  # entry id → the caller's participant (for tests, metrics)

    def signaling_url(self) -> str:
        return self.url() if callable(self.url) else self.url

    async def pin(self, entry: QueueEntry) -> None:
        """The room of a claimed caller onto the node that holds the SIP call, so that the caller's audio
        never crosses nodes ("a call is pinned to a node like a room"); a room already live on another
        node stays there (the bridge follows `wrong_node`). A store error only costs that hop."""
        if self.pin_here is None or not entry.room_id:
            return
        room = await self.rooms.get(entry.room_id)
        if room is None:
            return
        try:
            node = await self.pin_here(room.room_id, room.expires_at)
        except Exception as exc:  # the bridge still joins wherever the room ends up
            log.warning("room of %s not pinned to this node: %s", entry.entry_id, exc)
            return
        log.info("room of %s on node %s", entry.entry_id, node.node_id)

    async def __call__(self, call: PhoneCall, entry: QueueEntry) -> bool:
        """Bridge the call into the entry's room until the call, the leg or the entry's claim ends:
        True once the caller was in the room, False if joining failed (after `retry_after`)."""
        room_id = entry.room_id
        links = await self.rooms.admission_links(room_id) if room_id else None
        if links is None:
            log.info("call %s: room of %s is gone, hanging up", call.masked, entry.entry_id)
            await call.hangup()
            return False
        leg = RoomLeg(call, self.signaling_url(), links[0], self.stats, self.local_media)
        self.legs[entry.entry_id] = leg
        try:
            try:
                await leg.join()
            except (BridgeError, aiohttp.ClientError, OSError) as exc:
                log.warning("call %s: could not join room for %s: %s", call.masked, entry.entry_id, exc)
                await first_done(call.ended.wait(), asyncio.sleep(self.retry_after))  # the IVR tries again
                return False
            call.feed = leg.mix.feed
            log.info(
                "call %s bridged into the room of %s (%s)",
                call.masked,
                entry.entry_id,
                "in this process" if leg.in_process else "over WebRTC",
            )
            await first_done(call.ended.wait(), leg.ended.wait(), self._entry_moved(entry))
            log.info(
                "call %s left the room of %s (%s): %d frames to the room, %d from it",
                call.masked,
                entry.entry_id,
                "caller hung up" if call.ended.is_set() else leg.reason or "consultation closed",
                leg.track.frames,
                leg.mix.frames_in,
            )
        finally:
            call.feed = None
            await leg.close()
            self.legs.pop(entry.entry_id, None)
        if leg.reason == "consultation-ended" and not call.ended.is_set():
            await call.hangup()  # closed by the advisor: nothing more for the caller on this line
        return True

    async def _entry_moved(self, entry: QueueEntry) -> None:
        """Returns once the entry is no longer `called` into this room (closed, handed over, released)."""
        while True:
            current = await self.queue.get(entry.entry_id)
            if current is None or current.state != "called" or current.room_id != entry.room_id:
                return
            await asyncio.sleep(ENTRY_POLL)
