"""Reading and writing RTP headers on the forwarding path, byte for byte as aiortc does, in fewer steps.

Every forwarded packet is parsed once and written once per subscriber. aiortc parses each header
extension into a list and then into a dataclass, and writes extensions the same way round (a profile of
bench/media_relay.py at N = 8 put a tenth of the server's CPU there). A forwarding server sees few
extension layouts: a subscriber's header differs from packet to packet only in its numbers and in the
send time, so it is written from a template; an incoming header is read with the extension ids looked up
once. Anything unusual (CSRCs, padding, two-byte extensions, an extension aiortc would decode with an
unexpected length) goes to aiortc's own code, so the results stay aiortc's. The VP8 payload
descriptor in front of each video payload is skipped the same way (`vp8_depayload`).
"""

from __future__ import annotations

import struct
from typing import Any

from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

FIXED = struct.Struct("!BBHLL")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
FIXED_SIZE = FIXED.size
ONE_BYTE_PROFILE = 0xBEDE
_IDS = "_HeaderExtensionsMap__ids"  # aiortc's negotiated extension ids (a HeaderExtensions of ints)


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
