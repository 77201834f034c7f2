"""Every private aiortc detail the forwarder relies on, in one place.

aiortc decodes every received track and encodes every sent one. An SFU must do neither, so we tap the
receiver's queue of reassembled encoded frames and feed pre-encoded packets to the sender. These hooks are
checked against the aiortc versions pinned in pyproject.toml; `check()` fails loudly at start-up if an
upgrade moved them.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from typing import Any

import aioice.ice
import aiortc
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rate import (
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    OveruseEstimator,
    RateBucket,
    RateCounter,
    RemoteBitrateEstimator,
)
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci, unpack_remb_fci

TESTED_AIORTC = ("1.16.",)
RATE_WINDOW_MS, RATE_SCALE = 1000, 8000  # RemoteBitrateEstimator's incoming_bitrate = RateCounter(1000, 8000)
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"  # REMB towards the publisher (video only)
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_SENDER_HISTORY = "_RTCRtpSender__rtp_history"  # per-sender packets kept for NACKs (answered by aiortc)

FrameSink = Callable[[Any, Any], None]


class FrameTap:
    """Stands in for the receiver's decoder queue: encoded frames go to `sink`, not to a decoder.

    The decoder thread aiortc starts still blocks on `get()`; it receives only the end-of-stream
    sentinel, so it exits when the receiver stops and no thread leaks.
    """

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink
        self._sentinel: queue.Queue = queue.Queue()

    def put(self, item: Any) -> None:
        if item is None:
            self._sentinel.put(None)
        else:
            codec, frame = item
            self._sink(codec, frame)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._sentinel.get(*args, **kwargs)


def check() -> None:
    """Refuse to run on an aiortc whose internals were not verified."""
    if not aiortc.__version__.startswith(TESTED_AIORTC):
        raise RuntimeError(
            f"aiortc {aiortc.__version__} is untested; media/aiortc_hooks.py supports {TESTED_AIORTC}"
        )
    probe = RTCRtpReceiver.__init__.__code__.co_names
    for name in (_DECODER_QUEUE, _RTX_SSRC, _DECODER_THREAD, _ESTIMATOR, _RTCP_SSRC, _JITTER_BUFFER):
        if name not in probe:
            raise RuntimeError(f"aiortc internals changed: RTCRtpReceiver lacks {name}")
    for method in ("_send_rtcp_pli", "_send_rtcp", "_handle_rtp_packet"):
        if not hasattr(RTCRtpReceiver, method):
            raise RuntimeError(f"aiortc internals changed: RTCRtpReceiver lacks {method}")
    estimator_fields = {"estimator", "incoming_bitrate"}
    if not estimator_fields <= set(RemoteBitrateEstimator.__init__.__code__.co_names):
        raise RuntimeError("aiortc internals changed: RemoteBitrateEstimator is not as expected")
    counter_fields = {"_origin_ms", "_origin_index", "_total", "_window_size", "_scale"}
    if not counter_fields <= set(
        RateCounter.__init__.__code__.co_names + RateCounter.reset.__code__.co_names
    ):
        raise RuntimeError("aiortc internals changed: RateCounter is not as expected")
    buffer_fields = {"_is_video", "_origin", "_packets", "_capacity"}
    if not buffer_fields <= set(JitterBuffer.__init__.__code__.co_names) or not hasattr(
        JitterBuffer, "_remove_frame"
    ):
        raise RuntimeError("aiortc internals changed: JitterBuffer is not as media/aiortc_hooks.py expects")
    if _SENDER_HISTORY not in RTCRtpSender.__init__.__code__.co_names:
        raise RuntimeError(f"aiortc internals changed: RTCRtpSender lacks {_SENDER_HISTORY}")
    if "_codecs" not in RTCRtpTransceiver.__init__.__code__.co_names:
        raise RuntimeError("aiortc internals changed: RTCRtpTransceiver lacks _codecs")
    for method in ("_send_keyframe", "_handle_rtcp_packet", "_retransmit"):
        if not hasattr(RTCRtpSender, method):
            raise RuntimeError(f"aiortc internals changed: RTCRtpSender lacks {method}")


class PromptJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, handing frames on as soon as they are complete, for forwarding.

    aiortc holds four Opus packets (80 ms) before it passes one to its decoder, and passes a video
    frame on only when the next frame's first packet arrives (33 ms at 30 fps): smoothing for its own
    playout. Forwarded media is played by the subscriber, whose jitter buffer smooths; here the waits
    only add delay (and put audio 50 ms behind video). Video frames go on at their marker bit (the
    last packet of a picture); an Opus packet goes on at once, a lost one is not waited for (the
    subscriber conceals it) — aiortc would stall the audio until 16 packets had piled up.
    """

    def __init__(self, capacity: int, is_video: bool) -> None:
        super().__init__(capacity=capacity, is_video=is_video)
        self._newest: int | None = None  # audio: highest sequence number passed on

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        if self._is_video:
            return super().add(packet)
        newest = self._newest
        if newest is not None and 0 < (newest - packet.sequence_number) % 65536 < 32768:
            return False, None  # a duplicate or a packet older than one already passed on
        self._newest = packet.sequence_number
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets: list[Any] = []
        timestamp = None
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None  # a gap: wait for the retransmission, as aiortc does
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                return self._take(packets, timestamp, count)  # ended without a marker seen
            packets.append(packet)
            if packet.marker:
                return self._take(packets, timestamp, count + 1)
        return None

    def _take(self, packets: list[Any], timestamp: int, count: int) -> JitterFrame:
        self.remove(count)
        return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink, prompt: bool = False) -> None:
    """Divert encoded frames to `sink`. Must run before `receiver.receive()` starts the decoder.

    `prompt=True` (forwarding) replaces the jitter buffer by a `PromptJitterBuffer`.
    """
    if getattr(receiver, _DECODER_THREAD) is not None:
        raise RuntimeError("receiver already started; tap it from the peer connection's track event")
    setattr(receiver, _DECODER_QUEUE, FrameTap(sink))
    if prompt:
        buffer = getattr(receiver, _JITTER_BUFFER)
        setattr(receiver, _JITTER_BUFFER, PromptJitterBuffer(buffer.capacity, buffer._is_video))


def media_ssrc(receiver: RTCRtpReceiver) -> int | None:
    """The SSRC of the primary media stream (not its RTX retransmission stream)."""
    rtx = getattr(receiver, _RTX_SSRC)
    for source in receiver.getSynchronizationSources():
        if source.source not in rtx:
            return source.source
    return None


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI upstream to the publisher; False while no media has arrived yet."""
    ssrc = media_ssrc(receiver)
    if ssrc is None:
        return False
    await receiver._send_rtcp_pli(ssrc)
    return True


def on_keyframe_request(sender: RTCRtpSender) -> None:
    """Route a subscriber's PLI/FIR (aiortc's `_send_keyframe`) to the track's `request_keyframe`.

    Tracks that carry decoded frames have none; for them the sender's own encoder makes the keyframe.
    """

    def keyframe() -> None:
        request = getattr(sender.track, "request_keyframe", None)
        if request is not None and not getattr(sender.track, "encodes_here", False):
            request()
        else:  # decoded frames (transcoding): the sender's own encoder makes the keyframe
            RTCRtpSender._send_keyframe(sender)

    sender._send_keyframe = keyframe  # type: ignore[method-assign]


def on_receiver_estimate(sender: RTCRtpSender) -> None:
    """Route the subscriber's REMB (receiver estimated maximum bitrate) for this sender's stream to the
    track's `receiver_estimate(bits_per_second)`, whichever track the sender carries at the time.

    aiortc hands REMB only to its own encoder (`target_bitrate`); a forwarded stream has no encoder
    working, so the estimate must go to the publisher instead. NACKs need nothing here: the sender
    answers them itself from its per-sender history of the packets it sent (`_retransmit`), which
    holds the re-packetised pre-encoded frames just like encoded ones.
    """
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            report = getattr(sender.track, "receiver_estimate", None)
            if sender._ssrc in ssrcs and report is not None:
                # one REMB covers every stream it lists (an interpreter receives two videos):
                # each gets an equal share of the link
                report(bitrate // len(ssrcs))
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


REMB_INTERVAL_MS = 200  # as libwebrtc's REMB throttle: at most one per 200 ms …
REMB_DROP = 0.97  # … unless the estimate fell by more than 3 %


class _CappedEstimator:
    """aiortc's remote bitrate estimator, with what it tells the publisher limited by `cap()` and
    throttled.

    aiortc sends a REMB for every packet while its detector sees overuse, which on a busy server is
    most of the time: hundreds of RTCP packets per second, each encrypted and sent, and a large share
    of the forwarding CPU (measured with bench/media_relay.py --profile).
    """

    def __init__(self, estimator: Any, cap: Callable[[], int | None]) -> None:
        self._estimator = estimator
        self._cap = cap
        self.last: int | None = None  # the uncapped estimate of the link from the publisher
        self._sent: int | None = None
        self._sent_at = 0

    def add(self, **kwargs: Any) -> tuple[int, list[int]] | None:
        remb = self._estimator.add(**kwargs)
        if remb is None:
            return None
        bitrate, ssrcs = remb
        self.last = bitrate
        cap = self._cap()
        if cap is not None:
            bitrate = min(bitrate, cap)
        now = kwargs["arrival_time_ms"]
        if (
            self._sent is not None
            and now - self._sent_at < REMB_INTERVAL_MS
            and bitrate >= self._sent * REMB_DROP
        ):
            return None
        self._sent, self._sent_at = bitrate, now
        return bitrate, ssrcs


class _FastOveruseEstimator(OveruseEstimator):
    """aiortc's Kalman filter with the same results, its smallest-frame-period search done by one
    built-in `min` instead of sixty Python calls per packet (a third of the estimator's time)."""

    def update_min_frame_period(self, ts_delta: float) -> float:
        history = self.ts_delta_hist
        if len(history) >= MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        smallest = min(min(history), ts_delta) if history else ts_delta
        history.append(ts_delta)
        return smallest


class _FastRateCounter(RateCounter):
    """aiortc's 1-ms-bucket rate counter with the same sums, kept as a queue of (ms, bytes) per packet:
    moving the window forward then costs a step per expired packet, not one per elapsed millisecond."""

    def reset(self) -> None:
        self._entries: deque[tuple[int, int]] = deque()
        self._origin_index = 0
        self._origin_ms = None
        self._total = RateBucket()

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._total.count += 1
        self._total.value += value

    def _erase_old(self, now_ms: int) -> None:
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms is not None and self._origin_ms < new_origin_ms:
            entries, total = self._entries, self._total
            while entries and entries[0][0] < new_origin_ms:
                total.count -= 1
                total.value -= entries.popleft()[1]
            self._origin_ms = new_origin_ms


def speed_up_estimator(estimator: RemoteBitrateEstimator) -> None:
    """Swap the two slow parts of a fresh (not yet fed) estimator for equivalent faster ones."""
    if isinstance(estimator.estimator, _FastOveruseEstimator):
        return
    estimator.estimator = _FastOveruseEstimator()
    estimator.incoming_bitrate = _FastRateCounter(RATE_WINDOW_MS, RATE_SCALE)


def cap_publisher_estimate(receiver: RTCRtpReceiver, cap: Callable[[], int | None]) -> None:
    """Make the REMB this receiver sends to its publisher at most `cap()` bits per second."""
    estimator = getattr(receiver, _ESTIMATOR)
    if estimator is not None and not isinstance(estimator, _CappedEstimator):
        speed_up_estimator(estimator)
        setattr(receiver, _ESTIMATOR, _CappedEstimator(estimator, cap))


async def send_publisher_estimate(receiver: RTCRtpReceiver, bitrate: int) -> bool:
    """Send a REMB to the publisher now (when a subscriber's estimate fell); False before media flows."""
    rtcp_ssrc = getattr(receiver, _RTCP_SSRC)
    ssrc = media_ssrc(receiver)
    if rtcp_ssrc is None or ssrc is None:
        return False
    estimator = getattr(receiver, _ESTIMATOR)
    if isinstance(estimator, _CappedEstimator) and estimator.last is not None:
        bitrate = min(bitrate, estimator.last)
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(int(bitrate), [ssrc])
    )
    await receiver._send_rtcp(packet)
    return True


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[str]:
    """The mime types ("video/H264") both ends accepted for a transceiver, RTX left out, in the order
    aiortc uses them: by the local preferences, the first is the one it sends with."""
    rtx = f"{transceiver.kind}/rtx"
    return [c.mimeType for c in transceiver._codecs if c.mimeType.lower() != rtx]


def negotiated_codec(transceiver: RTCRtpTransceiver) -> str | None:
    """The codec a transceiver sends with (and, on a receive-only m-line, the one it expects)."""
    codecs = negotiated_codecs(transceiver)
    return codecs[0] if codecs else None


def set_host_addresses(addresses: list[str] | None) -> None:
    """Pin the addresses aiortc announces as host candidates (aioice skips 127.0.0.1 by default).

    Process-wide, because aioice reads it from a module function; set once at start-up.
    """
    if not addresses:
        return
    pinned = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [  # type: ignore[assignment]
        a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)
    ]
