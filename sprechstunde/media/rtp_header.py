"""Reading and writing RTP headers on the forwarding path, byte for byte as aiortc does, in fewer steps.

Every forwarded packet is parsed once and written once per subscriber. aiortc parses each header
extension into a list and then into a dataclass, and writes extensions the same way round (a profile of
bench/media_relay.py at N = 8 put a tenth of the server's CPU there). A forwarding server sees few
extension layouts: a subscriber's header differs from packet to packet only in its numbers and in the
send time, so it is written from a template; an incoming header is read with the extension ids looked up
once. Anything unusual (CSRCs, padding, two-byte extensions, an extension aiortc would decode with an
unexpected length) goes to aiortc's own code, so the results stay aiortc's. The VP8 payload
descriptor in front of each video payload is skipped the same way (`vp8_depayload`).

This is the one place that packs, parses or rewrites RTP headers for the media server: a subscriber's
sender numbers and stamps the forwarded packets here (`OutgoingStream`) and keeps their header fields for
NACKs (`SentPackets`).
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Any

from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap, RtpPacket
from aiortc.utils import random32

FIXED = struct.Struct("!BBHLL")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
FIXED_SIZE = FIXED.size
ONE_BYTE_PROFILE = 0xBEDE
_IDS = "_HeaderExtensionsMap__ids"  # aiortc's negotiated extension ids (a HeaderExtensions of ints)

MIRRORS = {  # checked at start-up with the fork's (media/aiortc_fork/check.py)
    "aiortc.rtp:RtpPacket": "parse and serialize mirrored (parse, HeaderWriter)",
    "aiortc.rtp:HeaderExtensionsMap": "its negotiated ids are read; get and set mirrored",
    "aiortc.rtp:HeaderExtensions": "the extension values parse fills in",
    "aiortc.codecs.vpx:vp8_depayload": "mirrored by vp8_depayload",
    "aiortc.codecs.vpx:VpxPayloadDescriptor": "its parse mirrored by vp8_depayload",
    "aiortc.rtcrtpsender:random_sequence_number": "OutgoingStream's first sequence number, as aiortc's",
    "aiortc.utils:random32": "OutgoingStream's timestamp origin, as aiortc's",
}


def extension_ids(extensions_map: HeaderExtensionsMap) -> HeaderExtensions:
    """The ids the negotiation gave each extension aiortc knows (None: not negotiated)."""
    return getattr(extensions_map, _IDS)


def check() -> None:
    if not isinstance(extension_ids(HeaderExtensionsMap()), HeaderExtensions):
        raise RuntimeError("aiortc internals changed: HeaderExtensionsMap keeps no HeaderExtensions of ids")


def parse(data: bytes, extensions_map: HeaderExtensionsMap) -> RtpPacket:
    """`RtpPacket.parse(data, extensions_map)`, the same packet (or the same ValueError)."""
    if len(data) < FIXED_SIZE:
        return RtpPacket.parse(data, extensions_map)
    first, marker_type, sequence_number, timestamp, ssrc = FIXED.unpack_from(data)
    if first & 0xEF != 0x80:  # not version 2 without padding and CSRCs (the extension bit aside)
        return RtpPacket.parse(data, extensions_map)
    packet = RtpPacket(
        payload_type=marker_type & 0x7F,
        marker=marker_type >> 7,
        sequence_number=sequence_number,
        timestamp=timestamp,
        ssrc=ssrc,
    )
    if not first & 0x10:
        packet.payload = data[FIXED_SIZE:]
        return packet
    if len(data) < FIXED_SIZE + 4:
        return RtpPacket.parse(data, extensions_map)
    profile = (data[12] << 8) | data[13]
    end = FIXED_SIZE + 4 + ((data[14] << 8) | data[15]) * 4
    if (
        profile != ONE_BYTE_PROFILE
        or len(data) < end
        or not _read_one_byte(data, end, extension_ids(extensions_map), packet.extensions)
    ):
        return RtpPacket.parse(data, extensions_map)
    packet.payload = data[end:]
    return packet


def _read_one_byte(data: bytes, end: int, ids: HeaderExtensions, values: HeaderExtensions) -> bool:
    """Fill `values` from one-byte header extensions; False when aiortc's reading is needed instead."""
    mid, send_time, level = ids.mid, ids.abs_send_time, ids.audio_level
    transport = ids.transport_sequence_number
    others = (ids.repaired_rtp_stream_id, ids.rtp_stream_id, ids.transmission_offset)
    pos = FIXED_SIZE + 4
    while pos < end:
        byte = data[pos]
        if byte == 0:  # padding
            pos += 1
            continue
        x_id, length = byte >> 4, (byte & 0x0F) + 1
        pos += 1
        if pos + length > end:
            return False  # truncated: aiortc raises its ValueError
        if x_id == mid:
            values.mid = data[pos : pos + length].decode("utf8")
        elif x_id == send_time:
            if length != 3:
                return False
            values.abs_send_time = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
        elif x_id == level:
            if length != 1:
                return False
            values.audio_level = (data[pos] & 0x80 == 0x80, data[pos] & 0x7F)
        elif x_id == transport:
            if length != 2:
                return False
            values.transport_sequence_number = (data[pos] << 8) | data[pos + 1]
        elif x_id in others:
            return False
        pos += length
    return True


class HeaderWriter:
    """Writes a sender's packets as `RtpPacket.serialize` does when the extensions carry only the mid
    and the send time (what forwarding sets): the extension block is built once per mid and layout,
    and only the 3-byte send time changes from packet to packet. `layout(mid)` before the packets of
    each frame: it notices a renegotiated extension map or a new mid, once per frame, not per packet."""

    def __init__(self, extensions_map: HeaderExtensionsMap) -> None:
        self._map = extensions_map
        self._key: tuple[Any, ...] | None = None
        self._first = 0x80
        self._head = self._tail = b""
        self._has_time = False

    def layout(self, mid: str | None) -> None:
        ids = extension_ids(self._map)
        key = (mid, ids.mid, ids.abs_send_time)
        if key == self._key:
            return
        early = HeaderExtensions(mid=mid, abs_send_time=0)
        late = HeaderExtensions(mid=mid, abs_send_time=0xFFFFFF)
        profile, value = self._map.set(early)
        moved = self._map.set(late)[1]  # the same length: only the send time's 3 bytes differ
        changed = [i for i, (a, b) in enumerate(zip(value, moved, strict=True)) if a != b]
        at = changed[0] if changed else len(value)
        self._has_time = bool(changed)
        block = struct.pack("!HH", profile, len(value) >> 2) + value if value else b""
        at += 4 if value else 0
        self._head, self._tail = block[:at], block[at + 3 :] if changed else b""
        self._first = 0x90 if value else 0x80
        self._key = key

    def write(
        self, payload_type: int, marker: int, sequence_number: int, timestamp: int, ssrc: int,
        abs_send_time: int, payload: bytes,
    ) -> bytes:  # fmt: skip
        """One packet, with the mid of the last `layout` call."""
        fixed = FIXED.pack(self._first, (marker << 7) | payload_type, sequence_number, timestamp, ssrc)
        if not self._has_time:
            return b"".join((fixed, self._head, payload))
        return b"".join((fixed, self._head, abs_send_time.to_bytes(3, "big"), self._tail, payload))


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


class OutgoingStream:
    """The header rewrite of one subscriber's stream, as aiortc's sender loop (`_run_rtp`) does it: the
    sender's own sequence numbers from a random start, the frame timestamps moved by a random origin,
    its payload type, SSRC, mid and send time; each packet kept (as its fields) for NACKs. `timestamp`
    is the RTP timestamp of the frame being sent (for the sender's reports)."""

    def __init__(self, extensions_map: HeaderExtensionsMap, payload_type: int) -> None:
        self._map = extensions_map
        self._writer = HeaderWriter(extensions_map)
        self._payload_type = payload_type
        self._sequence = random_sequence_number()
        self._origin = random32()
        self.timestamp = 0

    def packets(
        self, history: dict, timestamp: int, ssrc: int, mid: str | None, ntp_time: int,
        payloads: list[bytes], audio_level: int | None = None,
    ) -> Generator[tuple[bytes, int], None, None]:  # fmt: skip
        """Number and write each packet of a frame (one send time from `ntp_time` for all), keeping its
        fields in `history`: its bytes and payload size."""
        self.timestamp = timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        payload_type = self._payload_type
        send_time = (ntp_time >> 14) & 0x00FFFFFF
        last = len(payloads) - 1
        write = self._writer.write
        self._writer.layout(mid)
        for index, payload in enumerate(payloads):
            sequence = self._sequence
            marker = 1 if index == last else 0
            kept = (payload_type, marker, sequence, timestamp, ssrc, payload, send_time, mid, audio_level)
            history[sequence % RTP_HISTORY_SIZE] = kept  # for aiortc's answer to a NACK
            self._sequence = (sequence + 1) & 0xFFFF
            if audio_level is None:
                yield write(payload_type, marker, sequence, timestamp, ssrc, send_time, payload), len(payload)
            else:  # an audio level (decoded audio, re-encoded): aiortc writes that extension
                yield SentPackets.packet(kept).serialize(self._map), len(payload)


def vp8_depayload(payload: bytes) -> bytes:
    """aiortc's `vp8_depayload`: the payload after its VP8 payload descriptor (RFC 7741 §4.2), or the
    same ValueError, without building the descriptor object aiortc reads and throws away."""
    size = len(payload)
    if size < 1:
        raise ValueError("VPX descriptor is too short")
    if not payload[0] & 0x80:  # no extended control bits
        return payload[1:]
    if size < 2:
        raise ValueError("VPX descriptor has truncated extended bits")
    extended = payload[1]
    pos = 2
    if extended & 0x80:  # I: picture id, one or two bytes
        if size < 3:
            raise ValueError("VPX descriptor has truncated PictureID")
        if payload[2] & 0x80:
            if size < 4:
                raise ValueError("VPX descriptor has truncated long PictureID")
            pos = 4
        else:
            pos = 3
    if extended & 0x40:  # L: TL0PICIDX
        if size < pos + 1:
            raise ValueError("VPX descriptor has truncated TL0PICIDX")
        pos += 1
    if extended & 0x30:  # T or K: one byte for both
        if size < pos + 1:
            raise ValueError("VPX descriptor has truncated T/K")
        pos += 1
    return payload[pos:]
