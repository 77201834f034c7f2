"""The RTCRtpReceiver of a published track: aiortc's receiver, its frames forwarded instead of decoded.

aiortc reassembles a received track's packets into encoded frames and queues them for a decoder thread.
An SFU must not decode, so the receiver's decoder queue is replaced by a tap (`FrameTap`) that hands each
frame to the forwarding; for forwarding its jitter buffer hands frames on as soon as they are complete
(`PromptJitterBuffer`) and its per-packet coroutine is replaced by a plain function with the same steps
(`forwarding_handler`). Its NACK bookkeeping is swapped for an equivalent faster one. All per instance.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from aiortc.codecs import depayload
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import NackGenerator, RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_APP, RTP_HISTORY_SIZE, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from sprechstunde.media import rtp_header
from sprechstunde.media.aiortc_fork.clock import _current_datetime
from sprechstunde.media.aiortc_fork.coroutines import run_now

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
_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"  # the receiver's loss bookkeeping (video only)
NACK_TRIM_EVERY = 64  # packets between trims of gaps that fell out of the history while none was sent

MIRRORS = {
    "aiortc.rtcrtpreceiver:RTCRtpReceiver.__init__": "its private fields are read and replaced",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver.receive": "starts the decoder thread; tap_receiver runs before",
    # ends the decoder thread with the None that FrameTap passes on
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._RTCRtpReceiver__stop_decoder": "FrameTap passes None on",
    "aiortc.rtcrtpreceiver:decoder_worker": "the decoder thread, which FrameTap.get keeps waiting",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._handle_rtp_packet": "replaced per instance by forwarding_handler",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._send_rtcp": "called for REMB",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._send_rtcp_nack": "called for NACKs",
    "aiortc.rtcrtpreceiver:RTCRtpReceiver._send_rtcp_pli": "called for keyframe requests",
    "aiortc.rtcrtpreceiver:NackGenerator": "subclassed by _FastNackGenerator (same NACKs)",
    "aiortc.jitterbuffer:JitterBuffer": "subclassed by PromptJitterBuffer (its frame assembly mirrored)",
    "aiortc.jitterbuffer:JitterFrame": "PayloadFrame sets its fields itself",
    "aiortc.codecs:depayload": "_codec_kind looks its choice up once per payload type",
    "aiortc.codecs:is_rtx": "mirrored in _codec_kind",
}

FrameSink = Callable[[Any, Any], None]


class FrameTap:
    """Stands in for the receiver's decoder queue: encoded frames go to `sink`, not to a decoder.

    A frame without data (padding only: a sender's bandwidth probe) is not handed on: there is nothing
    to forward, and a decoder given an empty packet takes it for the end of the stream (libopus then
    decodes nothing more).

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
            if frame.data:
                self._sink(codec, frame)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._sentinel.get(*args, **kwargs)


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


def transceiver_of(pc: Any, track: Any) -> RTCRtpTransceiver | None:
    """The transceiver whose receiver carries `track`, a remote track the peer connection's "track"
    event announced (the place to tap its receiver: it has not started yet); None if it has none."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver
    return None


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
        receiver._handle_packet_now = handle  # type: ignore[attr-defined]  # see transport._receive_srtp

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
            remb = estimator.add(  # positional: the same order for aiortc's and the capped estimator
                arrival_time_ms,
                packet.extensions.abs_send_time,
                len(packet.payload) + packet.padding_size,
                packet.ssrc,
            )
            rtcp_ssrc = fields[_RTCP_SSRC]
            if rtcp_ssrc is not None and remb is not None:
                run_now(receiver._send_rtcp(_remb(rtcp_ssrc, *remb)))
        fields[_ACTIVE_SSRC][packet.ssrc] = _current_datetime()
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


def _remb(rtcp_ssrc: int, bitrate: int, ssrcs: list[int]) -> RtcpPsfbPacket:
    """A receiver estimated maximum bitrate (REMB) feedback packet, as aiortc's receiver builds it."""
    return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))


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
