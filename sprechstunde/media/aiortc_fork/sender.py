"""The RTCRtpSender of a subscriber's stream: aiortc's sender, sending forwarded frames as they arrive.

aiortc's sender pulls: a task per sender wakes for every frame (`await track.recv()`), encodes it and
packetises it, a task switch per frame and subscriber. A forwarded frame is ready the moment the
publisher's last packet arrives, so the publication pushes it and it is sent right there (`push_frames`,
`PacketOutput`), in the RTP payloads the publisher sent (`PassThrough`); the pulling task stays for what
has to wait (a backlog behind a send that could not finish at once, and decoded frames in the
no-shared-codec fallback). A subscriber's keyframe requests and bandwidth estimates go to the publisher
(`on_keyframe_request`, `on_receiver_estimate`). All per instance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

from sprechstunde.media import rtp_header
from sprechstunde.media.aiortc_fork.clock import _current_ntp_time

log = logging.getLogger(__name__)

_SENDER_HISTORY = "_RTCRtpSender__rtp_history"  # per-sender packets kept for NACKs (answered by aiortc)
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

MIRRORS = {
    "aiortc.rtcrtpsender:RTCRtpSender.__init__": "its private fields are read and replaced",
    "aiortc.rtcrtpsender:RTCRtpSender._run_rtp": "replaced per instance (push_frames, PacketOutput)",
    "aiortc.rtcrtpsender:RTCRtpSender._next_encoded_frame": "called by push_frames' loop",
    "aiortc.rtcrtpsender:RTCRtpSender._run_rtcp": "its sender reports read what PacketOutput counts",
    "aiortc.rtcrtpsender:RTCRtpSender._retransmit": "reads the history (SentPackets) with get",
    "aiortc.rtcrtpsender:RTCRtpSender._send_keyframe": "wrapped per instance by on_keyframe_request",
    "aiortc.rtcrtpsender:RTCRtpSender._handle_rtcp_packet": "wrapped per instance by on_receiver_estimate",
    "aiortc.rtcrtptransceiver:RTCRtpTransceiver.__init__": "its negotiated _codecs are read",
}


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
        self._stream = rtp_header.OutgoingStream(self._fields[_SENDER_EXTENSIONS], codec.payloadType)
        if type(self._fields[_SENDER_HISTORY]) is dict:
            self._fields[_SENDER_HISTORY] = rtp_header.SentPackets()
        self._ntp_time = 0  # of the frame being sent, for the sender reports
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
        direct (see `transport.shortcut_transport`); False, and nothing sent, otherwise."""
        if self.busy:
            return False
        transport = self._sender.transport
        direct_pair = getattr(transport, "_direct_pair", None)
        pair = direct_pair() if direct_pair is not None else None
        if pair is None:
            return False
        send, protocol, address = transport._send_direct, pair.protocol, pair.remote_addr
        fields = self._fields
        try:
            # one clock reading per frame, not per packet as aiortc: its packets leave within microseconds
            now = self._ntp_time = _current_ntp_time()
            packets = self._stream.packets(
                fields[_SENDER_HISTORY], timestamp, self._sender._ssrc, fields[_SENDER_MID], now, payloads
            )
            for data, size in packets:
                send(data, protocol, address)
                self._sent(size)
        except Exception:  # this runs in the publisher's packet handler: only this subscriber may miss out
            self.failed += 1
            if self.failed == 1:  # once per subscriber's stream, not 30 times a second
                log.exception("forwarding to a subscriber failed; its frames are dropped while it fails")
        return True

    async def send(self, payloads: list[bytes], timestamp: int, audio_level: int | None = None) -> None:
        self.busy += 1
        fields = self._fields
        try:
            now = self._ntp_time = _current_ntp_time()  # as in send_now
            packets = self._stream.packets(
                fields[_SENDER_HISTORY], timestamp, self._sender._ssrc, fields[_SENDER_MID], now, payloads,
                audio_level,
            )  # fmt: skip
            for data, size in packets:
                await self._sender.transport._send_rtp(data)
                self._sent(size)
        finally:
            self.busy -= 1

    def _sent(self, size: int) -> None:
        """Count a sent packet for the sender's RTCP sender reports, as aiortc does."""
        fields = self._fields
        fields[_NTP_TIMESTAMP] = self._ntp_time
        fields[_RTP_TIMESTAMP] = self._stream.timestamp
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


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[str]:
    """The mime types ("video/H264") both ends accepted for a transceiver, RTX left out, in the order
    aiortc uses them: by the local preferences, the first is the one it sends with."""
    rtx = f"{transceiver.kind}/rtx"
    return [c.mimeType for c in transceiver._codecs if c.mimeType.lower() != rtx]


def negotiated_codec(transceiver: RTCRtpTransceiver) -> str | None:
    """The codec a transceiver sends with (and, on a receive-only m-line, the one it expects)."""
    codecs = negotiated_codecs(transceiver)
    return codecs[0] if codecs else None
