"""Forwarding encoded media from one publisher to many subscribers, without decoding.

A `Publication` receives the publisher's reassembled encoded frames (VP8 or H.264 pictures, Opus packets)
straight from aiortc's jitter buffer and hands them to one `ForwardedTrack` per subscriber. The
subscriber's RTCRtpSender sends VP8 and Opus in the RTP payloads they arrived in (the publisher's VP8
payload descriptors, picture ids included) and re-packetises H.264 (`encoder.pack`), but never encodes.
Only when publisher and subscriber share no video codec (an H.264-only Safari and a VP8-only client) does
that one subscriber's track decode, so its sender re-encodes; the server logs when that happens. Keep
every forwarding decision in this module.

Why frames and not a plain stream of RTP packets: the frame is the unit the forwarding decisions need — a
newcomer or a subscriber that fell behind starts at a keyframe, timestamps run on across a publisher's
reconnect, a stalled subscriber's queue is bounded in pictures — while the packets within a frame pass
through with only the header rewritten. aiortc's receiver stays in the path for the RTCP a weak uplink
needs (receiver reports, NACKs, the REMB estimate). Measured on this machine (bench/media_relay.py, the
note shared/notes/aiortc-forwarding.md), raw RTP forwarding that kept the receiver saved about a tenth
over re-packetised frames (passing the payloads through recovers most of that); the cheaper variant
dropped the receiver, and with it the loss repair and bandwidth feedback a weak link needs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc.codecs import get_decoder
from aiortc.contrib.media import MediaRelay
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from sprechstunde.media.aiortc_fork import estimator as fork_estimator
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork.coroutines import run_now
from sprechstunde.media.aiortc_fork.sender import PacketOutput

log = logging.getLogger(__name__)

CLOCK_RATE = {"audio": 48000, "video": 90000}
FRAME_STEP = {"audio": 960, "video": 3000}  # one 20 ms Opus packet, one 30 fps picture
QUEUE_BOUND = {"audio": 50, "video": 60}  # about one to two seconds of media
KEYFRAME_INTERVAL = 0.5  # at most one upstream keyframe request per publisher per 500 ms
MIN_BITRATE = 100_000  # never ask a publisher for less video than this: below it the picture is useless


H264_KEY_NALS = (5, 7)  # an IDR slice, or a sequence parameter set (which precedes the IDR)


def is_keyframe(kind: str, data: bytes, mime: str = "video/vp8") -> bool:
    """Whether a decoder can start at this encoded picture (audio: every packet)."""
    if kind != "video":
        return True
    if mime == "video/h264":
        # Annex B as aiortc's depayloader writes it: NAL units after 00 00 01 start codes.
        start = data.find(b"\x00\x00\x01")
        while start != -1 and start + 3 < len(data):
            if data[start + 3] & 0x1F in H264_KEY_NALS:
                return True
            start = data.find(b"\x00\x00\x01", start + 3)
        return False
    # VP8 payload header (RFC 6386 §9.1): bit 0 of the first byte is 0 for a key frame.
    return bool(data) and not data[0] & 0x01


class ForwardingStats:
    """Totals of encoded frames and bytes handed to subscribers' senders, by source (audio, video — the
    camera — and screen), for the whole process; a plain object (no metrics library here) that
    web/core/observability.py reads at each scrape. `decoded` counts the frames decoded for a
    subscriber without a shared codec (re-encoded by its sender): zero while everything is forwarded."""

    def __init__(self) -> None:
        self.frames = {"audio": 0, "video": 0, "screen": 0}
        self.bytes = {"audio": 0, "video": 0, "screen": 0}
        self.decoded = 0


class Publication:
    """One published track (a participant's microphone, camera or screen), fanned out to subscribers.

    It outlives the publisher's peer connection: after a reconnect the new receiver is attached and the
    subscribers' tracks carry on with continuous timestamps. `kind` is the media kind ("audio", "video");
    `source` tells a screen from a camera (both "video") in the statistics.
    """

    def __init__(self, kind: str, stats: ForwardingStats | None = None, source: str | None = None) -> None:
        self.kind = kind
        self.source = source or kind
        self.stats = stats
        self._subscribers: set[ForwardedTrack | FrameListener] = set()
        self._receiver: RTCRtpReceiver | None = None
        self._epoch: object = object()  # one token per publisher connection, unique across publications
        self._last_request = 0.0
        self._pending_request: asyncio.Task | None = None
        self._pending_estimate: asyncio.Task | None = None
        self._announced_cap: int | None = None
        # The cap of the publisher's whole connection, when camera and screen share one estimate there
        # (session.py): a REMB caps everything a browser sends, not the one stream it names.
        self.link_cap: Callable[[], int | None] | None = None
        self.codec: Any = None  # aiortc's RTCRtpCodecParameters of the frames arriving
        self.mime: str | None = None  # e.g. "video/vp8"; from the negotiation, then from the frames
        self.frames_in = 0
        self.frames_out = 0

    def attach(self, receiver: RTCRtpReceiver, mime: str | None = None) -> None:
        """Take encoded frames from this (not yet started) receiver from now on; `mime` is the codec
        the negotiation settled on, which the first frame confirms."""
        self._receiver = receiver
        self._epoch = epoch = object()
        if mime is not None:
            self.mime = mime.lower()
        fork_receiver.tap_receiver(
            receiver, lambda codec, frame: self._deliver(epoch, codec, frame), prompt=True
        )
        if self.kind == "video":
            fork_estimator.cap_publisher_estimate(receiver, self.publisher_cap)
            self._announced_cap = None
        if self._subscribers:
            # Subscribers are waiting (the publisher reconnected); without subscribers a request now
            # would only use up the rate limit that a newcomer's request needs moments later.
            self.request_keyframe()

    def attach_local(self, mime: str) -> Callable[[Any, Any], None]:
        """Take encoded frames from a publisher inside this process (the phone bridge's caller) from
        now on: returns the function it hands each frame to (`codec`, and a frame with `data` and
        `timestamp` in the codec's clock), as a receiver's tap would. A publisher with no receiver
        gets no keyframe requests and no bitrate estimate (audio needs neither)."""
        self._receiver = None
        self._epoch = epoch = object()
        self.mime = mime.lower()
        return lambda codec, frame: self._deliver(epoch, codec, frame)

    def detach(self, receiver: RTCRtpReceiver | None = None) -> None:
        if receiver is None or receiver is self._receiver:
            self._receiver = None

    def subscribe(self) -> ForwardedTrack:
        track = ForwardedTrack(self)
        self.add_subscriber(track)
        return track

    def listen(self, hear: Callable[[bytes], None]) -> FrameListener:
        """A subscriber inside this process: `hear` gets each encoded frame's bytes as it arrives."""
        listener = FrameListener(self, hear)
        self.add_subscriber(listener)
        return listener

    def add_subscriber(self, track: ForwardedTrack | FrameListener) -> None:
        self._subscribers.add(track)
        if self._receiver is not None:
            # Ask now, not when the newcomer's connection is up: the keyframe arrives while ICE and
            # DTLS complete and waits in the track's queue, so the first picture follows at once.
            self.request_keyframe()

    def unsubscribe(self, track: ForwardedTrack | FrameListener) -> None:
        self._subscribers.discard(track)

    def count_out(self, size: int) -> None:
        """One frame of `size` bytes handed to a subscriber (its sender, or a listener in this process)."""
        self.frames_out += 1
        if self.stats is not None:
            self.stats.frames[self.source] += 1
            self.stats.bytes[self.source] += size

    def bitrate_cap(self) -> int | None:
        """The most the publisher should send: what the weakest subscriber's link takes (REMB)."""
        estimates = [t.estimate for t in self._subscribers if t.estimate is not None]
        return max(MIN_BITRATE, min(estimates)) if estimates else None

    def publisher_cap(self) -> int | None:
        """What the REMB to the publisher may say: this stream's cap, or its connection's (link_cap)."""
        return self.link_cap() if self.link_cap is not None else self.bitrate_cap()

    def receiver_estimate_changed(self) -> None:
        """A subscriber reported its estimate; tell the publisher at once when the cap fell.

        Rises reach the publisher with aiortc's own periodic REMB, which is capped by `publisher_cap`.
        """
        cap = self.publisher_cap()
        if cap is None or self._pending_estimate is not None:
            return
        if self._announced_cap is not None and cap >= self._announced_cap * 0.95:
            self._announced_cap = max(self._announced_cap, cap)  # rises travel with aiortc's REMB
            return
        self._announced_cap = cap
        self._pending_estimate = asyncio.get_running_loop().create_task(self._send_estimate(cap))

    async def _send_estimate(self, cap: int) -> None:
        try:
            receiver = self._receiver
            if receiver is not None:
                await fork_estimator.send_publisher_estimate(receiver, cap)
        except ConnectionError:
            pass
        finally:
            self._pending_estimate = None

    def close(self) -> None:
        """The publisher left: its subscribers' tracks wait, parked, for their media line's reuse."""
        for track in list(self._subscribers):
            track.park()
        self._subscribers.clear()
        self._receiver = None
        for task in (self._pending_request, self._pending_estimate):
            if task is not None:
                task.cancel()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, coalescing requests within KEYFRAME_INTERVAL."""
        if self.kind != "video" or self._pending_request is not None:
            return
        delay = max(0.0, self._last_request + KEYFRAME_INTERVAL - time.monotonic())
        self._pending_request = asyncio.get_running_loop().create_task(self._send_pli(delay))

    async def _send_pli(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            # Right after attach no packet has arrived yet, so the SSRC is unknown: retry briefly.
            for _ in range(20):
                receiver = self._receiver
                if receiver is not None and await fork_receiver.request_keyframe(receiver):
                    break
                await asyncio.sleep(0.05)
            self._last_request = time.monotonic()
        except ConnectionError:
            pass
        finally:
            self._pending_request = None

    def _deliver(self, epoch: object, codec: Any, frame: Any) -> None:
        if epoch != self._epoch:
            return  # a late frame from a receiver that has been replaced
        if codec is not self.codec:
            self.codec = codec
            self.mime = codec.mimeType.lower()
        self.frames_in += 1
        key = is_keyframe(self.kind, frame.data, self.mime)
        payloads = getattr(frame, "payloads", None)  # as the publisher packetised them
        for track in self._subscribers:
            track.push(epoch, frame.timestamp, frame.data, key, payloads)


class FrameListener:
    """A subscriber inside this process (the phone bridge, media/local.py): each encoded frame of the
    publication handed to a function as it arrives, with no sender, RTP or queue between. Counted as
    forwarded, as a subscriber's sender would count it. Parked (the publisher left, or the listener
    unsubscribed), it hears nothing more."""

    estimate: int | None = None  # no link to estimate: it never caps the publisher

    def __init__(self, publication: Publication, hear: Callable[[bytes], None]) -> None:
        self._publication: Publication | None = publication
        self._hear = hear

    def push(
        self, epoch: object, timestamp: int, data: bytes, key: bool, payloads: list[bytes] | None = None
    ) -> None:
        publication = self._publication
        if publication is None:
            return
        publication.count_out(len(data))
        self._hear(data)

    def park(self) -> None:
        if self._publication is not None:
            self._publication.unsubscribe(self)
        self._publication = None


LIGHT_PACKETS = ("video/vp8", "audio/opus")  # the codecs whose packetiser takes an EncodedPacket


class EncodedPacket:
    """A pre-encoded frame as aiortc's VP8 and Opus packetisers read it (`bytes()`, `pts`, `time_base`):
    an `av.Packet` would copy the data and build a new Fraction at every `time_base` read. H.264's
    packetiser insists on a real `av.Packet`. With `payloads` (the publisher's RTP payloads) the
    sender passes those on instead of packetising (aiortc_fork.sender.PassThrough)."""

    __slots__ = ("data", "pts", "time_base", "payloads")

    def __init__(
        self, data: bytes, pts: int, time_base: Fraction, payloads: list[bytes] | None = None
    ) -> None:
        self.data = data
        self.pts = pts
        self.time_base = time_base
        self.payloads = payloads

    def __bytes__(self) -> bytes:
        return self.data


class ForwardedTrack(MediaStreamTrack):
    """What one subscriber's RTCRtpSender reads: pre-encoded packets from one publication.

    Bounded: a subscriber that cannot keep up loses its backlog and, for video, waits for the next
    keyframe instead of stalling the publisher or the other subscribers.

    It outlives a publication: when its publisher leaves it is parked, and when the subscriber's
    media line is reused for someone else it switches to that publication, its timestamps carrying on.
    (aiortc's sender stops for good when its track ends, so the track must not end.)
    """

    def __init__(self, publication: Publication) -> None:
        super().__init__()
        self.kind = publication.kind
        self._publication: Publication | None = publication
        self._time_base = Fraction(1, CLOCK_RATE[self.kind])
        self._step = FRAME_STEP[self.kind]
        self._bound = QUEUE_BOUND[self.kind]
        self._queue: deque[tuple[object, int, bytes, list[bytes] | None]] = deque()
        self._ready = asyncio.Event()
        self._need_keyframe = self.kind == "video"
        self._started = False
        self._epoch: object | None = None
        self._offset = 0
        self._last_pts: int | None = None
        self.dropped = 0
        self.estimate: int | None = None  # the subscriber's latest REMB for this stream, bits/s
        self.output_mime: str | None = None  # the codec the subscriber's sender negotiated
        self._decoder: Any = None  # only when publisher and subscriber share no codec
        self._decoded: deque[Any] = deque()
        self._output: PacketOutput | None = None  # the sender, when it takes pushed frames

    def attach_output(self, output: PacketOutput | None) -> None:
        """The subscriber's sender offers to send frames the moment they arrive (see push)."""
        self._output = output

    def set_output_codec(self, mime: str | None) -> None:
        """What the subscriber's sender sends (known once the subscriber answered)."""
        self.output_mime = mime.lower() if mime else None

    def park(self) -> None:
        """Stop carrying the current publication; the sender keeps waiting on this track."""
        if self._publication is not None:
            self._publication.unsubscribe(self)
        self._publication = None
        self._queue.clear()
        self._decoded.clear()
        self._decoder = None
        self._need_keyframe = self.kind == "video"
        self.estimate = None

    def switch(self, publication: Publication) -> None:
        """Carry another participant's publication from now on, starting at its next keyframe."""
        self.park()
        self._publication = publication
        publication.add_subscriber(self)

    @property
    def encodes_here(self) -> bool:
        """True when this subscriber cannot take the publisher's codec: frames are decoded here and
        the sender re-encodes them."""
        source = self._publication.mime if self._publication is not None else None
        return (
            self.kind == "video"
            and self.output_mime is not None
            and source is not None
            and source != self.output_mime
        )

    def push(
        self, epoch: object, timestamp: int, data: bytes, key: bool, payloads: list[bytes] | None = None
    ) -> None:
        """A frame from the publication: `data` as aiortc's depayloader joins it, `payloads` the RTP
        payloads it came in (when the sender may pass them on unchanged)."""
        if self.readyState != "live":
            return
        if self._need_keyframe:
            if not key:
                return
            self._need_keyframe = False
        if len(self._queue) >= self._bound:
            self.dropped += len(self._queue)
            self._queue.clear()
            if self.kind == "video":
                self._need_keyframe = not key
                if not key:
                    self._publication.request_keyframe()
                    return
        output = self._output
        if output is not None and output.idle and not self._queue and self._started and not self.encodes_here:
            # the sender is idle and nothing is queued: send now, without waking its task
            payloads, pts = output.pack(self._packet(epoch, timestamp, data, payloads))
            output.pushed += 1
            if not output.send_now(payloads, pts):
                run_now(output.send(payloads, pts))
            return
        self._queue.append((epoch, timestamp, data, payloads))
        self._ready.set()

    def request_keyframe(self) -> None:
        """The subscriber reported picture loss (PLI/FIR). When this track decodes, the sender's own
        encoder makes the keyframe instead (see aiortc_fork.sender.on_keyframe_request)."""
        if self._publication is not None:
            self._publication.request_keyframe()

    def receiver_estimate(self, bitrate: int) -> None:
        """The subscriber's REMB: how much of this stream its link takes."""
        self.estimate = bitrate
        if self._publication is not None:
            self._publication.receiver_estimate_changed()

    async def recv(self) -> Any:
        if not self._started:
            self._started = True
            if self._need_keyframe:  # the keyframe asked for at subscription has not come (yet)
                self.request_keyframe()
        while True:
            if self._decoded:
                epoch, frame = self._decoded.popleft()
                frame.pts = self._continuous(epoch, frame.pts)
                frame.time_base = self._time_base
                self._count(0)  # bytes: only the encoder knows
                return frame
            epoch, timestamp, data, payloads = await self._next()
            if not self.encodes_here:
                return self._packet(epoch, timestamp, data, payloads)
            await self._decode(epoch, timestamp, data)

    async def _decode(self, epoch: object, timestamp: int, data: bytes) -> None:
        """The fallback when the subscriber cannot take the publisher's codec: decode, and let the
        subscriber's sender encode (as aiortc does for any decoded track)."""
        publication = self._publication
        assert publication is not None  # encodes_here holds
        if self._decoder is None:
            self._decoder = get_decoder(publication.codec)
            log.warning(
                "no shared video codec: decoding %s and re-encoding it as %s for one subscriber",
                publication.mime,
                self.output_mime,
            )
        decoder = self._decoder
        try:
            frames = await asyncio.get_running_loop().run_in_executor(
                None, decoder.decode, JitterFrame(data, timestamp)
            )
        except av.error.FFmpegError:
            self.request_keyframe()
            return
        if self._decoder is decoder:  # not switched to another publication meanwhile
            self._decoded.extend((epoch, frame) for frame in frames)
            if publication.stats is not None:
                publication.stats.decoded += len(frames)

    async def _next(self) -> tuple[object, int, bytes, list[bytes] | None]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        return self._queue.popleft()

    def _packet(
        self, epoch: object, timestamp: int, data: bytes, payloads: list[bytes] | None = None
    ) -> EncodedPacket | av.Packet:
        pts = self._continuous(epoch, timestamp)
        self._count(len(data))
        if self.output_mime in LIGHT_PACKETS:
            return EncodedPacket(data, pts, self._time_base, payloads)
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        return packet

    def _count(self, size: int) -> None:
        if self._publication is not None:
            self._publication.count_out(size)

    def _continuous(self, epoch: object, timestamp: int) -> int:
        """Keep timestamps rising when the publisher reconnects and its clock restarts at zero."""
        if epoch != self._epoch:
            if self._last_pts is not None:
                self._offset = self._last_pts + self._step - timestamp
            self._epoch = epoch
        pts = timestamp + self._offset
        self._last_pts = pts
        return pts

    def stop(self) -> None:
        super().stop()
        if self._publication is not None:
            self._publication.unsubscribe(self)
        self._ready.set()


class TranscodingPublication(Publication):
    """The baseline an SFU must beat: aiortc decodes the publisher's track and every subscriber's
    sender re-encodes it (aiortc's `MediaRelay`). Selected with `--media-mode transcode`; kept for
    the benchmark. (Participants who share no codec are served by `ForwardedTrack` decoding for the one
    subscriber who needs it, `encodes_here`, not by this class.)
    """

    def __init__(self, kind: str, stats: ForwardingStats | None = None, source: str | None = None) -> None:
        super().__init__(kind, stats, source)
        self._relay = MediaRelay()
        self._source: MediaStreamTrack | None = None
        self._source_changed = asyncio.Event()
        self._drain: asyncio.Task | None = None

    def attach(self, receiver: RTCRtpReceiver, mime: str | None = None) -> None:
        self._receiver = receiver
        self.mime = mime.lower() if mime else None
        self._source = receiver.track
        self._start_drain(receiver.track)
        self.wake()

    def _start_drain(self, source: MediaStreamTrack | None) -> None:
        """Keep reading the decoded source even while nobody subscribes: aiortc's decoder fills the
        track's unbounded queue otherwise (some 14 MB a second of 640×480 pictures while an advisor waits
        alone), and the first subscriber's relay would then work through the whole backlog at once."""
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if source is not None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_frames(source))

    async def _drain_frames(self, source: MediaStreamTrack) -> None:
        view = self.relay(source)
        try:
            while True:
                await view.recv()
        except MediaStreamError:
            pass
        finally:
            view.stop()

    def wake(self) -> None:
        """Wake the subscribers waiting for a source, to look again."""
        self._source_changed.set()
        self._source_changed = asyncio.Event()

    def subscribe(self) -> MediaStreamTrack:
        return RelayedTrack(self)

    async def next_source(
        self, current: MediaStreamTrack | None, live: Callable[[], bool]
    ) -> MediaStreamTrack:
        """The publisher's decoded track once it is not `current`; MediaStreamError once `live()` is
        false (the subscriber's track was stopped), even if a new source came in the same instant."""
        while True:
            if not live():
                raise MediaStreamError
            if self._source is not None and self._source is not current:
                return self._source
            await self._source_changed.wait()

    def relay(self, source: MediaStreamTrack) -> MediaStreamTrack:
        return self._relay.subscribe(source, buffered=False)

    def close(self) -> None:
        """The publisher left: its subscribers' tracks wait, on a fresh event, until `unsubscribe` stops
        them. The event must not stay set: `next_source` looped on its `wait()`, which returns at once
        without yielding, for the ended source it had just been given — the whole server froze."""
        super().close()
        self._source = None
        self._start_drain(None)
        self.wake()


class RelayedTrack(MediaStreamTrack):
    """A subscriber's decoded-frame view of a `TranscodingPublication`, surviving publisher reconnects."""

    def __init__(self, publication: TranscodingPublication) -> None:
        super().__init__()
        self.kind = publication.kind
        self._publication = publication
        self._source: MediaStreamTrack | None = None
        self._view: MediaStreamTrack | None = None

    async def recv(self) -> Any:
        while self.readyState == "live":
            if self._view is None:
                self._source = await self._publication.next_source(self._source, self._live)
                self._view = self._publication.relay(self._source)
            try:
                frame = await self._view.recv()
            except MediaStreamError:
                self._view = None
                continue
            self._publication.frames_out += 1
            return frame
        raise MediaStreamError

    def _live(self) -> bool:
        return self.readyState == "live"

    def stop(self) -> None:
        """Also end the relay's view (else its proxy stays in the relay until the source ends) and wake a
        recv waiting for a source, so that it ends too. A recv waiting inside the view stays parked
        until its sender is stopped with the peer connection (transcode mode does not reuse the line)."""
        super().stop()
        if self._view is not None:
            self._view.stop()
            self._view = None
        self._publication.wake()
