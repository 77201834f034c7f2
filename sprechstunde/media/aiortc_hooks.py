"""Every private aiortc detail the forwarder relies on, in one place.

aiortc decodes every received track and encodes every sent one. An SFU must do neither, so we tap the
receiver's queue of reassembled encoded frames and feed pre-encoded packets to the sender. These hooks are
checked against the aiortc versions pinned in pyproject.toml; `check()` fails loudly at start-up if an
upgrade moved them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import queue
import time
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import aioice.ice
import aiortc
import pylibsrtp
from aiortc import clock
from aiortc.codecs import depayload, get_encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rate import (
    BURST_DELTA_THRESHOLD_MS,
    DELTA_COUNTER_MAX,
    MIN_FRAME_PERIOD_HISTORY_LENGTH,
    TIMESTAMP_TO_MS,
    AimdRateControl,
    BandwidthUsage,
    InterArrival,
    InterArrivalDelta,
    OveruseEstimator,
    RateBucket,
    RateCounter,
    RemoteBitrateEstimator,
    TimestampGroup,
)
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter, State
from aiortc.rtcicetransport import RTCIceGatherer
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender, random_sequence_number
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from aiortc.utils import random32

from sprechstunde.media import rtp_header

log = logging.getLogger(__name__)

TESTED_AIORTC = ("1.16.",)
RATE_WINDOW_MS, RATE_SCALE = 1000, 8000  # RemoteBitrateEstimator's incoming_bitrate = RateCounter(1000, 8000)
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"  # REMB towards the publisher (video only)
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
_ACTIVE_SSRC = "_RTCRtpReceiver__active_ssrc"  # source → last seen, for getSynchronizationSources
_CODECS = "_RTCRtpReceiver__codecs"
_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"  # per-source statistics for receiver reports
_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
_SENDER_HISTORY = "_RTCRtpSender__rtp_history"  # per-sender packets kept for NACKs (answered by aiortc)
_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"  # the receiver's loss bookkeeping (video only)
_DTLS_RX_BYTES = "_RTCDtlsTransport__rx_bytes"  # the transport's counters for getStats
_DTLS_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"

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
    for name in (
        _DECODER_QUEUE, _RTX_SSRC, _DECODER_THREAD, _ESTIMATOR, _RTCP_SSRC, _JITTER_BUFFER, _NACK_GENERATOR,
        _ACTIVE_SSRC, _CODECS, _REMOTE_STREAMS, _TIMESTAMP_MAPPER, "_enabled",
    ):  # fmt: skip
        if name not in probe:
            raise RuntimeError(f"aiortc internals changed: RTCRtpReceiver lacks {name}")
    for method in ("_send_rtcp_pli", "_send_rtcp", "_send_rtcp_nack", "_handle_rtp_packet"):
        if not hasattr(RTCRtpReceiver, method):
            raise RuntimeError(f"aiortc internals changed: RTCRtpReceiver lacks {method}")
    estimator_fields = {
        "estimator", "incoming_bitrate", "inter_arrival", "detector", "rate_control", "last_update_ms",
        "ssrcs", "incoming_bitrate_initialized",
    }  # fmt: skip
    if not {"_offset", "_num_of_deltas"} <= set(OveruseEstimator.__init__.__code__.co_names):
        raise RuntimeError("aiortc internals changed: OveruseEstimator is not as expected")
    if not {"current_group", "previous_group", "group_length", "timestamp_to_ms"} <= set(
        InterArrival.__init__.__code__.co_names
    ):
        raise RuntimeError("aiortc internals changed: InterArrival is not as expected")
    if not {"rtt", "last_change_ms", "current_bitrate", "current_bitrate_initialized"} <= set(
        AimdRateControl.__init__.__code__.co_names
    ):
        raise RuntimeError("aiortc internals changed: AimdRateControl is not as expected")
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
    dtls_names = RTCDtlsTransport.__init__.__code__.co_names + RTCDtlsTransport._recv_next.__code__.co_names
    for name in (
        _DTLS_RX_BYTES, _DTLS_RX_PACKETS, _DTLS_TX_BYTES, _DTLS_TX_PACKETS, "_rx_srtp", "_tx_srtp", "_state",
        "_handle_rtp_data", "_rtp_header_extensions_map", "_rtp_router",
    ):  # fmt: skip
        if name not in dtls_names:
            raise RuntimeError(f"aiortc internals changed: RTCDtlsTransport lacks {name}")
    if not {"ssrc_table", "payload_type_table"} <= set(RtpRouter.__init__.__code__.co_names):
        raise RuntimeError("aiortc internals changed: RtpRouter")
    if "_queue" not in aioice.ice.Connection.data_received.__code__.co_names:
        raise RuntimeError("aioice internals changed: Connection.data_received does not queue")
    if not {"_nominated", "protocol", "remote_addr"} <= set(aioice.ice.Connection.sendto.__code__.co_names):
        raise RuntimeError("aioice internals changed: Connection.sendto")
    if "receiver" not in aioice.ice.StunProtocol.datagram_received.__code__.co_names:
        raise RuntimeError("aioice internals changed: StunProtocol.datagram_received")
    # guard_remote_addresses: incoming checks reach the connection by `request_received` (aioice's own
    # handler, which `speed_up_transport` keeps for STUN)
    if "request_received" not in _stun_datagram_received.__code__.co_names:
        raise RuntimeError("aioice internals changed: StunProtocol.datagram_received")
    # guard_remote_addresses: a signalled address, mDNS-resolved or not, passes `_add_remote_candidate`
    if "_add_remote_candidate" not in aioice.ice.Connection.add_remote_candidate.__code__.co_names:
        raise RuntimeError("aioice internals changed: Connection.add_remote_candidate")
    if "_connection" not in RTCIceGatherer.__init__.__code__.co_names:
        raise RuntimeError("aiortc internals changed: RTCIceGatherer lacks _connection")
    for name in ("max_seq", "missing"):
        if name not in NackGenerator.__init__.__code__.co_names:
            raise RuntimeError(f"aiortc internals changed: NackGenerator lacks {name}")
    check_sender()
    rtp_header.check()


class PayloadFrame(JitterFrame):
    """An encoded picture (or Opus packet) as aiortc's jitter buffer makes it, which also keeps the RTP
    payloads it arrived in: forwarded unchanged, they spare each subscriber's sender a re-packetisation."""

    def __init__(self, data: bytes, timestamp: int, payloads: list[bytes] | None) -> None:
        self.data = data  # JitterFrame's two fields, set here without its keyword call
        self.timestamp = timestamp
        self.payloads = payloads


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
        return False, PayloadFrame(
            packet._data, packet.timestamp, [packet.payload] if packet.payload else None
        )

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
        # padding-only packets (bandwidth probes) carry no payload: forwarded they would be invalid VP8
        payloads = [p.payload for p in packets if p.payload] or None
        return PayloadFrame(b"".join([p._data for p in packets]), timestamp, payloads)


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink, prompt: bool = False) -> None:
    """Divert encoded frames to `sink`. Must run before `receiver.receive()` starts the decoder.

    `prompt=True` (forwarding) replaces the jitter buffer by a `PromptJitterBuffer` and the per-packet
    handler by `forwarding_handler`'s.
    """
    if getattr(receiver, _DECODER_THREAD) is not None:
        raise RuntimeError("receiver already started; tap it from the peer connection's track event")
    setattr(receiver, _DECODER_QUEUE, FrameTap(sink))
    if prompt:
        buffer = getattr(receiver, _JITTER_BUFFER)
        setattr(receiver, _JITTER_BUFFER, PromptJitterBuffer(buffer.capacity, buffer._is_video))
        handle = forwarding_handler(receiver)
        receiver._handle_packet_now = handle  # type: ignore[attr-defined]  # see _receive_srtp

        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


def forwarding_handler(receiver: RTCRtpReceiver) -> Callable[[RtpPacket, int], None]:
    """`RTCRtpReceiver._handle_rtp_packet` for a receiver whose frames are forwarded, not decoded: the
    same steps (REMB estimate, source and RTCP statistics, RTX unwrapping, NACKs, depayloading, the
    jitter buffer), as a plain function instead of a coroutine per packet, and without the decoder's
    picture-loss flag (nothing decodes). Its RTCP (REMB, NACK, PLI) goes out as aiortc's does."""
    fields = receiver.__dict__
    kinds: dict[int, tuple[Any, bool, Callable[[Any, bytes], bytes]]] = {}  # payload type → its codec's

    def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not receiver._enabled:
            return
        estimator = fields[_ESTIMATOR]
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(  # positional: the same order for aiortc's and _CappedEstimator
                arrival_time_ms,
                packet.extensions.abs_send_time,
                len(packet.payload) + packet.padding_size,
                packet.ssrc,
            )
            rtcp_ssrc = fields[_RTCP_SSRC]
            if rtcp_ssrc is not None and remb is not None:
                run_now(receiver._send_rtcp(_remb(rtcp_ssrc, *remb)))
        fields[_ACTIVE_SSRC][packet.ssrc] = clock.current_datetime()
        codecs = fields[_CODECS]
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = fields[_REMOTE_STREAMS]
        statistics = streams.get(packet.ssrc)
        if statistics is None:
            statistics = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        statistics.add(packet)
        known = kinds.get(packet.payload_type)
        if known is None or known[0] is not codec:
            known = kinds[packet.payload_type] = (codec, *_codec_kind(codec))
        _, is_rtx, unpack = known
        if is_rtx:
            original_ssrc = fields[_RTX_SSRC].get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if (
                original_ssrc is None
                or len(packet.payload) < 2
                or not isinstance(apt, int)
                or apt not in codecs
            ):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
            unpack = _codec_kind(codec)[1]
        nacks = fields[_NACK_GENERATOR]
        if nacks is not None and nacks.add(packet):
            run_now(receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))
        try:
            packet._data = unpack(codec, packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
        except ValueError:
            return
        lost_picture, frame = fields[_JITTER_BUFFER].add(packet)
        if lost_picture:
            run_now(receiver._send_rtcp_pli(packet.ssrc))
        if frame is not None and fields[_DECODER_THREAD]:
            frame.timestamp = fields[_TIMESTAMP_MAPPER].map(frame.timestamp)
            fields[_DECODER_QUEUE].put((codec, frame))

    return handle


def _codec_kind(codec: Any) -> tuple[bool, Callable[[Any, bytes], bytes]]:
    """Whether a codec is RTX (aiortc's `is_rtx`), and what takes its payload apart (`depayload`'s
    choice, looked up once per payload type instead of per packet)."""
    if codec.name == "VP8":
        return False, lambda _codec, payload: rtp_header.vp8_depayload(payload)
    return codec.name.lower() == "rtx", depayload


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

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        remb = self._estimator.add(arrival_time_ms, abs_send_time, payload_size, ssrc)
        if remb is None:
            return None
        bitrate, ssrcs = remb
        self.last = bitrate
        cap = self._cap()
        if cap is not None:
            bitrate = min(bitrate, cap)
        if (
            self._sent is not None
            and arrival_time_ms - self._sent_at < REMB_INTERVAL_MS
            and bitrate >= self._sent * REMB_DROP
        ):
            return None
        self._sent, self._sent_at = bitrate, arrival_time_ms
        return bitrate, ssrcs


class _FastOveruseEstimator(OveruseEstimator):
    """aiortc's Kalman filter with the same results, its smallest-frame-period search done by one
    built-in `min` instead of sixty Python calls per packet (a third of the estimator's time), and its
    2×2 matrix algebra written out on floats instead of building seven small lists per update."""

    def update(
        self,
        time_delta_ms: int,
        timestamp_delta_ms: float,
        size_delta: int,
        current_hypothesis: BandwidthUsage,
        now_ms: int,
    ) -> None:
        # aiortc's OveruseEstimator.update, term for term (h = [size_delta, 1.0]), so every float matches
        min_frame_period = self.update_min_frame_period(timestamp_delta_ms)
        t_ts_delta = time_delta_ms - timestamp_delta_ms
        h0 = size_delta
        self._num_of_deltas = min(self._num_of_deltas + 1, DELTA_COUNTER_MAX)
        E = self.E
        noise0, noise1 = self.process_noise
        e00 = E[0][0] + noise0
        e01 = E[0][1]
        e10 = E[1][0]
        e11 = E[1][1] + noise1
        offset = self._offset
        if (current_hypothesis is BandwidthUsage.OVERUSING and offset < self.previous_offset) or (
            current_hypothesis is BandwidthUsage.UNDERUSING and offset > self.previous_offset
        ):
            e11 += 10 * noise1
        eh0 = e00 * h0 + e01 * 1.0
        eh1 = e10 * h0 + e11 * 1.0
        residual = t_ts_delta - self.slope * h0 - offset
        if current_hypothesis is BandwidthUsage.NORMAL:
            max_residual = 3.0 * math.sqrt(self.var_noise)
            if abs(residual) < max_residual:
                self.update_noise_estimate(residual, min_frame_period)
            else:
                self.update_noise_estimate(-max_residual if residual < 0 else max_residual, min_frame_period)
        denom = self.var_noise + h0 * eh0 + 1.0 * eh1
        k0 = eh0 / denom
        k1 = eh1 / denom
        ikh00, ikh01 = 1.0 - k0 * h0, -k0 * 1.0
        ikh10, ikh11 = -k1 * h0, 1.0 - k1 * 1.0
        E[0][0] = e00 * ikh00 + e10 * ikh01
        E[0][1] = e01 * ikh00 + e11 * ikh01
        E[1][0] = e00 * ikh10 + e10 * ikh11
        E[1][1] = e01 * ikh10 + e11 * ikh11
        self.previous_offset = offset
        self.slope += k0 * residual
        self._offset = offset + k1 * residual

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

    def active(self, now_ms: int) -> bool:
        """`rate(now_ms) is not None`, without working out the rate."""
        if self._origin_ms is None:
            return False
        self._erase_old(now_ms)
        return self._total.count > 0 and now_ms > self._origin_ms

    def _erase_old(self, now_ms: int) -> None:
        new_origin_ms = now_ms - self._window_size + 1
        if self._origin_ms is not None and self._origin_ms < new_origin_ms:
            entries, total = self._entries, self._total
            while entries and entries[0][0] < new_origin_ms:
                total.count -= 1
                total.value -= entries.popleft()[1]
            self._origin_ms = new_origin_ms


class _FastInterArrival(InterArrival):
    """aiortc's grouping of packets into send-time bursts, with the same results, its four helper
    calls and modular comparisons inlined (it runs for every video packet)."""

    def compute_deltas(self, timestamp: int, arrival_time: int, packet_size: int) -> InterArrivalDelta | None:
        current = self.current_group
        deltas = None
        if current is None:
            current = self.current_group = TimestampGroup(timestamp)
        else:
            since_first = (timestamp - current.first_timestamp) & 0xFFFFFFFF
            if since_first >= 0x80000000:
                return None  # out of order
            since_last = (timestamp - current.last_timestamp) & 0xFFFFFFFF
            since_last_ms = round(self.timestamp_to_ms * since_last)
            arrival_delta = arrival_time - current.arrival_time
            burst = since_last_ms == 0 or (
                arrival_delta - since_last_ms < 0 and arrival_delta <= BURST_DELTA_THRESHOLD_MS
            )
            if not burst and since_first > self.group_length:
                previous = self.previous_group
                if previous is not None:
                    deltas = InterArrivalDelta(
                        timestamp=(current.last_timestamp - previous.last_timestamp) & 0xFFFFFFFF,
                        arrival_time=current.arrival_time - previous.arrival_time,
                        size=current.size - previous.size,
                    )
                self.previous_group = current
                current = self.current_group = TimestampGroup(timestamp=timestamp)
            elif 0 < since_last < 0x80000000:
                current.last_timestamp = timestamp
        current.size += packet_size
        current.arrival_time = arrival_time
        return deltas


class _FastRemoteBitrateEstimator(RemoteBitrateEstimator):
    """aiortc's `RemoteBitrateEstimator.add` with the same results and fewer calls per packet.

    With `paced_decrease`, it also lowers its estimate during overuse as libwebrtc does (its
    `TimeToReduceFurther`): at most once per round trip (10–200 ms), sooner only when the incoming rate
    fell below half the estimate. aiortc recomputes it on every packet while the detector reports
    overuse, which on a busy server is most packets, and each recomputation also pulls its average of
    the link's peak towards the current rate.
    """

    paced_decrease = False

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        self.ssrcs[ssrc] = arrival_time_ms
        incoming = self.incoming_bitrate
        if incoming.active(arrival_time_ms):
            self.incoming_bitrate_initialized = True
        elif self.incoming_bitrate_initialized:
            incoming.reset()
            self.incoming_bitrate_initialized = False
        incoming.add(payload_size, arrival_time_ms)
        detector = self.detector
        deltas = self.inter_arrival.compute_deltas(abs_send_time << 8, arrival_time_ms, payload_size)
        if deltas is not None:
            timestamp_delta_ms = deltas.timestamp * TIMESTAMP_TO_MS
            estimator = self.estimator
            estimator.update(
                deltas.arrival_time, timestamp_delta_ms, deltas.size, detector.hypothesis, arrival_time_ms
            )
            detector.detect(estimator._offset, timestamp_delta_ms, estimator._num_of_deltas, arrival_time_ms)
        last = self.last_update_ms
        if (
            last is None
            or arrival_time_ms - last > self.rate_control.feedback_interval()
            or (
                detector.hypothesis is BandwidthUsage.OVERUSING
                and (not self.paced_decrease or self._time_to_reduce_further(arrival_time_ms))
            )
        ):
            rate = incoming.rate(arrival_time_ms)
            target = self.rate_control.update(detector.hypothesis, rate, arrival_time_ms)
            if target is not None:
                self.last_update_ms = arrival_time_ms
                return target, list(self.ssrcs.keys())
        return None

    def _time_to_reduce_further(self, now_ms: int) -> bool:
        rate = self.incoming_bitrate.rate(now_ms)
        if rate is None:
            return False
        control = self.rate_control
        interval = min(max(control.rtt, 10), 200)  # the round trip, within 10–200 ms
        if control.last_change_ms is None or now_ms - control.last_change_ms >= interval:
            return True
        return control.current_bitrate_initialized and rate < 0.5 * control.current_bitrate


def speed_up_estimator(estimator: RemoteBitrateEstimator, paced_decrease: bool = False) -> None:
    """Swap the slow parts of a fresh (not yet fed) estimator for equivalent faster ones; with
    `paced_decrease`, decreases follow libwebrtc's pace (see `_FastRemoteBitrateEstimator`)."""
    if isinstance(estimator.estimator, _FastOveruseEstimator):
        return
    estimator.__class__ = _FastRemoteBitrateEstimator
    estimator.paced_decrease = paced_decrease
    estimator.inter_arrival.__class__ = _FastInterArrival
    estimator.estimator = _FastOveruseEstimator()
    estimator.incoming_bitrate = _FastRateCounter(RATE_WINDOW_MS, RATE_SCALE)


def cap_publisher_estimate(receiver: RTCRtpReceiver, cap: Callable[[], int | None]) -> None:
    """Make the REMB this receiver sends to its publisher at most `cap()` bits per second."""
    estimator = getattr(receiver, _ESTIMATOR)
    if estimator is not None and not isinstance(estimator, _CappedEstimator):
        speed_up_estimator(estimator, paced_decrease=True)
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
    await receiver._send_rtcp(_remb(rtcp_ssrc, int(bitrate), [ssrc]))
    return True


def _remb(rtcp_ssrc: int, bitrate: int, ssrcs: list[int]) -> RtcpPsfbPacket:
    """A receiver estimated maximum bitrate (REMB) feedback packet, as aiortc's receiver builds it."""
    return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))


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


# --- Which remote addresses ICE may contact (issue 15, finding 9; the policy: media/ice_policy.py) ----


def ice_connections(pc: Any) -> list[aioice.ice.Connection]:
    """The aioice connections under a peer connection's transports (one, with max-bundle)."""
    connections: list[aioice.ice.Connection] = []
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        if dtls is not None and dtls.transport._connection not in connections:
            connections.append(dtls.transport._connection)
    return connections


def guard_remote_addresses(connection: aioice.ice.Connection, permits: Callable[[str], bool]) -> None:
    """Let ICE contact only addresses `permits` accepts, however aioice learnt them: a signalled candidate
    once its address is known (`_add_remote_candidate` receives an mDNS name's resolved address too), and
    a peer-reflexive one learnt from an incoming check (`request_received`: a check from a refused address
    is neither answered nor paired). Installed once per connection, before any candidate arrives."""
    if getattr(connection, "_address_guard", None) is not None:
        return
    add_remote_candidate = connection._add_remote_candidate
    request_received = connection.request_received

    def guarded_add(candidate: Any, network_host: str) -> None:
        if not permits(network_host):
            log.debug("ICE: remote candidate %s refused by the address policy", network_host)
            return
        add_remote_candidate(candidate, network_host)

    def guarded_request(message: Any, addr: tuple[str, int], protocol: Any) -> None:
        if not permits(addr[0]):
            log.debug("ICE: check from %s ignored by the address policy", addr[0])
            return
        request_received(message, addr, protocol)

    connection._address_guard = permits  # type: ignore[attr-defined]
    connection._add_remote_candidate = guarded_add  # type: ignore[method-assign]
    connection.request_received = guarded_request  # type: ignore[method-assign]


# --- The transport's per-packet path ------------------------------------------------------------------
# Profiled at N = 8 (bench/media_relay.py --profile), about half of the forwarding CPU is spent before a
# packet reaches the receiver: aioice tries to parse every datagram as STUN, queues it, and a task per
# connection wakes to take it off the queue again. The fast paths below keep aiortc's own handlers and
# only remove that detour; each gives the same results as the code it replaces.

NTP_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
STUN_MAX_FIRST_BYTE = 0x3F  # RFC 7983: a STUN message's first byte is 0–3, DTLS 20–63, RTP/RTCP 128–191


def _current_ms() -> int:
    """aiortc's `clock.current_ms` (milliseconds since 1900) without building datetime objects."""
    return int((time.time() + NTP_OFFSET) * 1000)


def _current_ntp_time() -> int:
    """aiortc's `clock.current_ntp_time` (64-bit NTP timestamp) without building datetime objects."""
    now = time.time()
    seconds = int(now)
    return ((seconds + NTP_OFFSET) << 32) | int((now - seconds) * 4_294_967_296)


DATETIME_STEP = 0.01  # s: how stale `_current_datetime` may be


class _CoarseDatetime:
    """aiortc's `clock.current_datetime`, to within 10 ms: the receiver stamps every packet with it (the
    source's last-seen time, for `getSynchronizationSources` and its 10 s cut-off), and a timezone-aware
    datetime per packet was a measurable share of the forwarding CPU."""

    def __init__(self) -> None:
        self._at = 0.0
        self._value = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        now = time.time()
        if now - self._at >= DATETIME_STEP or now < self._at:
            self._at = now
            self._value = datetime.datetime.fromtimestamp(now, datetime.UTC)
        return self._value


_current_datetime = _CoarseDatetime()
_stun_datagram_received = aioice.ice.StunProtocol.datagram_received


def _datagram_received(self: aioice.ice.StunProtocol, data: bytes, addr: tuple[Any, ...]) -> None:
    """aioice's datagram handler, which parses every datagram as STUN and catches the error for media;
    a first byte above 63 cannot start a STUN message, so media goes straight on."""
    if data and data[0] > STUN_MAX_FIRST_BYTE:
        self.receiver.data_received(data, self.local_candidate.component)
    else:
        _stun_datagram_received(self, data, addr)


def speed_up_transport() -> None:
    """Process-wide, at start-up: the cheaper clock for aiortc and media past aioice's STUN parser."""
    clock.current_ms = _current_ms  # type: ignore[assignment]
    clock.current_ntp_time = _current_ntp_time  # type: ignore[assignment]
    clock.current_datetime = _current_datetime  # type: ignore[assignment]
    aioice.ice.StunProtocol.datagram_received = _datagram_received  # type: ignore[method-assign]


@types.coroutine
def _carry_on(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Resume a coroutine that `run_now` started and that suspended on `waiting_on`."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # noqa: BLE001 — cancellation and errors go into the coroutine
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(value)
            except StopIteration as stop:
                return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    try:
        await _carry_on(coro, waiting_on)
    except ConnectionError:
        pass  # the connection is closing; aiortc's own loop would stop here too
    except Exception:
        log.exception("handling an incoming packet failed")


def run_now(coro: Coroutine[Any, Any, Any]) -> None:
    """Run a coroutine in the caller up to its first real suspension (aiortc's packet handlers are
    coroutines that almost never wait); only if it does wait, a task carries on with it."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    except ConnectionError:
        return
    except Exception:
        log.exception("handling an incoming packet failed")
        return
    asyncio.ensure_future(_finish(coro, waiting_on))


def _receive_srtp(dtls: RTCDtlsTransport, data: bytes) -> None:
    """What `RTCDtlsTransport._recv_next` does with an SRTP/SRTCP datagram, done on arrival."""
    arrival_time_ms = _current_ms()
    counters = dtls.__dict__
    counters[_DTLS_RX_BYTES] += len(data)
    counters[_DTLS_RX_PACKETS] += 1
    try:
        if is_rtcp(data):
            run_now(dtls._handle_rtcp_data(dtls._rx_srtp.unprotect_rtcp(data)))
            return
        data = dtls._rx_srtp.unprotect(data)
    except pylibsrtp.Error:
        return  # as aiortc: a packet that does not authenticate is dropped
    # `RTCDtlsTransport._handle_rtp_data`, with the faster header reading
    try:
        packet = rtp_header.parse(data, dtls._rtp_header_extensions_map)
    except ValueError:
        return
    router = dtls._rtp_router
    receiver = router.ssrc_table.get(packet.ssrc)  # `route_rtp`'s usual case, without its empty set
    if receiver is None or receiver not in router.payload_type_table.get(packet.payload_type, ()):
        receiver = router.route_rtp(packet)
    if receiver is not None:
        handle = receiver.__dict__.get("_handle_packet_now")  # a forwarding receiver's (tap_receiver)
        if handle is not None:
            handle(packet, arrival_time_ms)
        else:
            run_now(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms))


def shortcut_transport(dtls: RTCDtlsTransport) -> None:
    """Take this transport's media past aioice's plumbing, both ways.

    In: SRTP datagrams go to aiortc's handlers as they arrive, not through aioice's queue and the
    transport's reading task (a task switch per packet); DTLS, and anything before the handshake, still
    take the queue. Out: a protected packet goes to the selected pair's socket without three layers of
    coroutines (`Connection.send` → `sendto` → `send_data`) around one `sendto`.
    """
    if getattr(dtls, "_shortcut", False):
        return
    connection = dtls.transport._connection
    queued = connection.data_received
    counters = dtls.__dict__

    def data_received(data: bytes, component: int) -> None:
        if data and 127 < data[0] < 192 and dtls._state is State.CONNECTED and dtls._rx_srtp is not None:
            _receive_srtp(dtls, data)
        else:
            queued(data, component)

    def direct_pair() -> Any:
        """The selected candidate pair, when the transport is up and the pair sends straight to a
        socket (not through a TURN relay, whose sending has to be awaited); else None."""
        pair = connection._nominated.get(1)
        if (
            dtls._state is State.CONNECTED
            and pair is not None
            and type(pair.protocol) is aioice.ice.StunProtocol
        ):
            return pair
        return None

    def protect(data: bytes) -> bytes:
        srtp = dtls._tx_srtp
        return srtp.protect_rtcp(data) if is_rtcp(data) else srtp.protect(data)

    def count(data: bytes) -> None:
        counters[_DTLS_TX_BYTES] += len(data)
        counters[_DTLS_TX_PACKETS] += 1

    def send_direct(data: bytes, protocol: Any, address: Any) -> None:
        """Protect and send on the protocol and to the address of a pair `direct_pair()` returned
        (nothing awaited in between)."""
        data = protect(data)
        protocol.transport.sendto(data, address)
        count(data)

    async def send_rtp(data: bytes) -> None:
        if dtls._state is not State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        if type(pair.protocol) is aioice.ice.StunProtocol:
            send_direct(data, pair.protocol, pair.remote_addr)
            return
        data = protect(data)
        await pair.protocol.send_data(data, pair.remote_addr)  # a relayed (TURN) pair wraps it itself
        count(data)

    connection.data_received = data_received  # type: ignore[method-assign]
    dtls._send_rtp = send_rtp  # type: ignore[method-assign]
    dtls._direct_pair = direct_pair  # type: ignore[attr-defined]
    dtls._send_direct = send_direct  # type: ignore[attr-defined]
    dtls._shortcut = True  # type: ignore[attr-defined]


NACK_TRIM_EVERY = 64  # packets between trims of gaps that fell out of the history while none was sent


class _FastNackGenerator(NackGenerator):
    """aiortc's NACK bookkeeping with the same NACKs sent, the sequence-number comparisons inlined.

    aiortc trims gaps older than the retransmission history after every packet, a pass over all
    remembered gaps each time; here they are trimmed before a NACK goes out (so it lists exactly what
    aiortc's would) and every NACK_TRIM_EVERY packets otherwise (so the set stays small). A stale gap
    left in between is never asked for, and a late packet for it removes it just as it would be anyway.
    """

    _until_trim = NACK_TRIM_EVERY

    def add(self, packet: Any) -> bool:
        seq = packet.sequence_number
        highest = self.max_seq
        if highest is None:
            self.max_seq = seq
            return False
        ahead = (seq - highest) & 0xFFFF
        if not 0 < ahead < 0x8000:  # a late or repeated packet: no longer missing
            self.missing.discard(seq)
            return False
        self.max_seq = seq
        if ahead > 1:
            self.missing.update((highest + step) & 0xFFFF for step in range(1, ahead))
            self.truncate()
            return True
        if self.missing:
            self._until_trim -= 1
            if not self._until_trim:
                self.truncate()
        return False

    def truncate(self) -> None:
        self._until_trim = NACK_TRIM_EVERY
        if self.max_seq is None or not self.missing:
            return
        oldest = (self.max_seq - RTP_HISTORY_SIZE) & 0xFFFF
        stale = [seq for seq in self.missing if 0 < (oldest - seq) & 0xFFFF < 0x8000]
        self.missing.difference_update(stale)


def speed_up_receiver(receiver: RTCRtpReceiver) -> None:
    """Swap the receiver's NACK bookkeeping for the equivalent faster one (before media arrives)."""
    if type(getattr(receiver, _NACK_GENERATOR)) is NackGenerator:
        setattr(receiver, _NACK_GENERATOR, _FastNackGenerator())


# --- Sending forwarded frames as they arrive ------------------------------------------------------------
# aiortc's sender pulls: a task per sender wakes for every frame (`await track.recv()`), a task switch per
# frame and subscriber. A forwarded frame is ready the moment the publisher's last packet arrives, so the
# publication pushes it and it is sent right there; the pulling task stays for what has to wait (a
# backlog behind a send that could not finish at once, and decoded frames in the no-shared-codec fallback).

_SENDER_TRACK = "_RTCRtpSender__track"
_SENDER_ENCODER = "_RTCRtpSender__encoder"
_SENDER_MID = "_RTCRtpSender__mid"
_SENDER_EXTENSIONS = "_RTCRtpSender__rtp_header_extensions_map"
_SENDER_RTP_STARTED = "_RTCRtpSender__rtp_started"
_SENDER_RTP_EXITED = "_RTCRtpSender__rtp_exited"
_SENDER_REPORT = (  # what the sender's RTCP sender reports (SR) are made of
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)
_NTP_TIMESTAMP, _RTP_TIMESTAMP, _OCTET_COUNT, _PACKET_COUNT = _SENDER_REPORT


def check_sender() -> None:
    names = set(RTCRtpSender.__init__.__code__.co_names) | set(RTCRtpSender._run_rtp.__code__.co_names)
    for name in (
        _SENDER_TRACK, _SENDER_ENCODER, _SENDER_MID, _SENDER_EXTENSIONS, _SENDER_RTP_STARTED,
        _SENDER_RTP_EXITED, *_SENDER_REPORT, "_next_encoded_frame",
    ):  # fmt: skip
        if name not in names:
            raise RuntimeError(f"aiortc internals changed: RTCRtpSender lacks {name}")


class PassThrough:
    """A forwarding sender's encoder: a frame that still has the RTP payloads the publisher sent
    (`payloads`, for VP8 and Opus) goes out in them unchanged, VP8's picture ids included; anything
    else (H.264 access units, decoded frames of the no-shared-codec fallback) goes to aiortc's encoder.
    One per sender, and every frame the sender sends goes through it."""

    def __init__(self, encoder: Any) -> None:
        self.__dict__["_encoder"] = encoder

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        payloads = getattr(packet, "payloads", None)
        if payloads is not None:
            return payloads, packet.pts  # pts counts in the codec's clock already
        return self._encoder.pack(packet)

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        return self._encoder.encode(frame, force_keyframe)

    def __getattr__(self, name: str) -> Any:  # target_bitrate, for aiortc's REMB handling
        return getattr(self._encoder, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._encoder, name, value)


PacketFields = tuple[int, int, int, int, int, bytes, int, "str | None", "int | None"]


class SentPackets(dict):
    """A sender's retransmission history (aiortc's `__rtp_history`, which only its `_retransmit` reads,
    with `get`) holding each sent packet's fields: the `RtpPacket` aiortc serialises is built only for
    the few packets a NACK asks for again, not for every packet sent."""

    @staticmethod
    def packet(fields: PacketFields) -> RtpPacket:
        payload_type, marker, sequence, timestamp, ssrc, payload, send_time, mid, audio_level = fields
        packet = RtpPacket(payload_type, marker, sequence, timestamp, ssrc, payload)
        packet.extensions.abs_send_time = send_time
        packet.extensions.mid = mid
        if audio_level is not None:
            packet.extensions.audio_level = (False, -audio_level)
        return packet

    def __getitem__(self, key: int) -> RtpPacket:
        return self.packet(super().__getitem__(key))

    def get(self, key: int, default: Any = None) -> Any:
        fields = super().get(key)
        return default if fields is None else self.packet(fields)


class PacketOutput:
    """The body of aiortc's `RTCRtpSender._run_rtp` (packetise, number, stamp, keep for NACKs, send,
    count for sender reports), callable both from the publisher's delivery and from the sender's task.

    `busy` counts sends that are waiting on the transport: while one is, newer frames must queue
    behind it (the track's bounded queue) instead of overtaking it.
    """

    def __init__(self, sender: RTCRtpSender, codec: Any) -> None:
        self._sender = sender
        self._codec = codec
        self._fields = sender.__dict__
        self._sequence = random_sequence_number()
        self._origin = random32()
        self._writer = rtp_header.HeaderWriter(self._fields[_SENDER_EXTENSIONS])
        if type(self._fields[_SENDER_HISTORY]) is dict:
            self._fields[_SENDER_HISTORY] = SentPackets()
        self._timestamp = self._ntp_time = 0  # of the frame being sent, for the sender reports
        self.busy = 0
        self.pushed = 0  # frames sent from the publisher's delivery, without waking the sender's task
        self.pulled = 0  # frames the sender's task took from the track (backlog, decoded frames)
        self.failed = 0  # frames a failing transport did not take (send_now)

    @property
    def idle(self) -> bool:
        """Nothing waiting on the transport and the sender enabled (aiortc drops frames of a
        disabled sender; they then take the pulling path, which does)."""
        return not self.busy and self._sender._enabled

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        """The RTP payloads of a pre-encoded frame, by the sender's own encoder (see `PassThrough`)."""
        encoder = self._fields[_SENDER_ENCODER]
        if encoder is None:
            encoder = self._fields[_SENDER_ENCODER] = PassThrough(get_encoder(self._codec))
        return encoder.pack(packet)

    def send_now(self, payloads: list[bytes], timestamp: int) -> bool:
        """Send a frame before returning, when nothing is waiting on the transport and its pair is
        direct (see `shortcut_transport`); False, and nothing sent, otherwise."""
        if self.busy:
            return False
        transport = self._sender.transport
        direct_pair = getattr(transport, "_direct_pair", None)
        pair = direct_pair() if direct_pair is not None else None
        if pair is None:
            return False
        send, protocol, address = transport._send_direct, pair.protocol, pair.remote_addr
        try:
            for data, size in self._packets(payloads, timestamp):
                send(data, protocol, address)
                self._sent(size)
        except Exception:  # this runs in the publisher's packet handler: only this subscriber may miss out
            self.failed += 1
            if self.failed == 1:  # once per subscriber's stream, not 30 times a second
                log.exception("forwarding to a subscriber failed; its frames are dropped while it fails")
        return True

    async def send(self, payloads: list[bytes], timestamp: int, audio_level: int | None = None) -> None:
        self.busy += 1
        try:
            for data, size in self._packets(payloads, timestamp, audio_level):
                await self._sender.transport._send_rtp(data)
                self._sent(size)
        finally:
            self.busy -= 1

    def _packets(
        self, payloads: list[bytes], timestamp: int, audio_level: int | None = None
    ) -> Generator[tuple[bytes, int], None, None]:
        """Number, stamp and keep (for NACKs) each packet of a frame: its bytes and payload size."""
        fields = self._fields
        payload_type = self._codec.payloadType
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        history = fields[_SENDER_HISTORY]
        mid = fields[_SENDER_MID]
        ssrc = self._sender._ssrc
        write = self._writer.write
        self._timestamp = timestamp
        # one clock reading per frame, not per packet as aiortc: its packets leave within microseconds
        self._ntp_time = now = _current_ntp_time()
        send_time = (now >> 14) & 0x00FFFFFF
        last = len(payloads) - 1
        self._writer.layout(mid)
        for index, payload in enumerate(payloads):
            sequence = self._sequence
            marker = 1 if index == last else 0
            kept = (payload_type, marker, sequence, timestamp, ssrc, payload, send_time, mid, audio_level)
            history[sequence % RTP_HISTORY_SIZE] = kept  # for aiortc's answer to a NACK
            self._sequence = (sequence + 1) & 0xFFFF
            if audio_level is None:
                yield write(payload_type, marker, sequence, timestamp, ssrc, send_time, payload), len(payload)
            else:
                yield SentPackets.packet(kept).serialize(fields[_SENDER_EXTENSIONS]), len(payload)

    def _sent(self, size: int) -> None:
        """Count a sent packet for the sender's RTCP sender reports, as aiortc does."""
        fields = self._fields
        fields[_NTP_TIMESTAMP] = self._ntp_time
        fields[_RTP_TIMESTAMP] = self._timestamp
        fields[_OCTET_COUNT] += size
        fields[_PACKET_COUNT] += 1


def push_frames(sender: RTCRtpSender) -> None:
    """Replace the sender's RTP loop (before `send()` starts it) by one that offers its track a
    `PacketOutput` (`track.attach_output`) and sends whatever the track still hands out by `recv()`."""

    async def run_rtp(codec: Any) -> None:
        fields = sender.__dict__
        fields[_SENDER_RTP_STARTED].set()
        output = PacketOutput(sender, codec)
        fields[_SENDER_ENCODER] = PassThrough(get_encoder(codec))  # before aiortc's pulling makes its own
        track = fields[_SENDER_TRACK]
        attach = getattr(track, "attach_output", None)
        if attach is not None:
            attach(output)
        try:
            while True:
                if not fields[_SENDER_TRACK]:  # as aiortc: a sender without a track idles
                    await asyncio.sleep(0.02)
                    continue
                frame = await sender._next_encoded_frame(codec)
                if frame is not None:
                    output.pulled += 1
                    await output.send(frame.payloads, frame.timestamp, frame.audio_level)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            log.exception("forwarding to a subscriber failed")
        finally:
            if attach is not None:
                track.attach_output(None)
            if fields[_SENDER_TRACK]:
                fields[_SENDER_TRACK].stop()
                fields[_SENDER_TRACK] = None
            fields[_SENDER_ENCODER] = None
            fields[_SENDER_RTP_EXITED].set()

    sender._run_rtp = run_rtp  # type: ignore[method-assign]
