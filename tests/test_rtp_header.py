"""The forwarding path's RTP header reading and writing give aiortc's packets and bytes exactly."""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sprechstunde.media import rtp_header

URIS = {
    "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
    "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "audio_level": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "transport_sequence_number": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "transmission_offset": "urn:ietf:params:rtp-hdrext:toffset",
    "rtp_stream_id": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
}


def extensions_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    parameters = RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=URIS[name]) for name, i in ids.items()]
    )
    result = HeaderExtensionsMap()
    result.configure(parameters)
    return result


def random_packet(rng: random.Random, ids: dict[str, int]) -> bytes:
    """A packet as a browser or aiortc sends it, now and then with something unusual in it."""
    packet = RtpPacket(
        payload_type=rng.choice([96, 97, 111, 127]),
        marker=rng.randint(0, 1),
        sequence_number=rng.randint(0, 65535),
        timestamp=rng.randint(0, 2**32 - 1),
        ssrc=rng.randint(0, 2**32 - 1),
        payload=rng.randbytes(rng.choice([0, 1, 20, 1100])),
    )
    if rng.random() < 0.05:
        packet.csrc = [rng.randint(0, 2**32 - 1)]
    if rng.random() < 0.05:
        packet.padding_size = rng.randint(1, 40)
    values = packet.extensions
    if rng.random() < 0.8:
        values.mid = rng.choice(["0", "1", "12", "audio"])
    if rng.random() < 0.8:
        values.abs_send_time = rng.randint(0, 0xFFFFFF)
    if rng.random() < 0.3:
        values.audio_level = (rng.random() < 0.5, rng.randint(0, 127))
    if rng.random() < 0.3:
        values.transport_sequence_number = rng.randint(0, 65535)
    if rng.random() < 0.1:
        values.transmission_offset = rng.randint(0, 1000)
    if rng.random() < 0.05:
        values.rtp_stream_id = "hi"
    writer = extensions_map(ids if rng.random() < 0.9 else {**ids, "mid": 14, "abs_send_time": 13})
    data = packet.serialize(writer)
    roll = rng.random()
    if roll < 0.03:  # an extension id this side never negotiated
        data = data[:16] + bytes([0xE0, 0x55]) + data[18:] if data[0] & 0x10 and len(data) > 18 else data
    elif roll < 0.06:
        data = data[: rng.randint(0, len(data))]  # cut short
    elif roll < 0.08:
        data = bytes([data[0] & 0x3F]) + data[1:]  # not version 2
    return data


def outcome(parse, data: bytes, extensions: HeaderExtensionsMap) -> object:
    """The packet's fields, or the kind of error reading it raised."""
    try:
        return vars(parse(data, extensions))
    except (ValueError, struct.error) as exc:
        return type(exc)


@pytest.mark.parametrize("seed", range(4))
def test_reading_a_header_gives_aiortcs_packet(seed):
    rng = random.Random(seed)
    ids = {"mid": 1, "abs_send_time": 3, "audio_level": 5, "transport_sequence_number": 7}
    reader = extensions_map(ids)
    kinds = set()
    for _ in range(3000):
        data = random_packet(rng, ids)
        expected = outcome(RtpPacket.parse, data, reader)
        assert outcome(rtp_header.parse, data, reader) == expected, data.hex()
        kinds.add(expected if isinstance(expected, type) else "packet")
    assert {"packet", ValueError, struct.error} <= kinds  # every outcome was exercised


@pytest.mark.parametrize("ids", [{"mid": 1, "abs_send_time": 3}, {"abs_send_time": 2}, {"mid": 4}, {}])
def test_writing_a_header_gives_aiortcs_bytes(ids):
    rng = random.Random(7)
    extensions = extensions_map(ids)
    writer = rtp_header.HeaderWriter(extensions)
    for _ in range(500):
        mid = rng.choice([None, "0", "1", "12", "a-long-mid-value"])
        packet = RtpPacket(
            payload_type=rng.randint(0, 127),
            marker=rng.randint(0, 1),
            sequence_number=rng.randint(0, 65535),
            timestamp=rng.randint(0, 2**32 - 1),
            ssrc=rng.randint(0, 2**32 - 1),
            payload=rng.randbytes(rng.choice([0, 3, 1000])),
        )
        packet.extensions.mid = mid
        packet.extensions.abs_send_time = rng.randint(0, 0xFFFFFF)
        writer.layout(mid)
        got = writer.write(
            packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp,
            packet.ssrc, packet.extensions.abs_send_time, packet.payload,
        )  # fmt: skip
        assert got == packet.serialize(extensions)


def test_skipping_the_vp8_descriptor_gives_aiortcs_payload():
    from aiortc.codecs.vpx import vp8_depayload

    rng = random.Random(3)
    kinds = set()
    for _ in range(20000):
        first = rng.choice([0x10, 0x90, 0x80, 0x00, rng.randint(0, 255)])
        extended = rng.randint(0, 255)
        data = bytes([first, extended]) + rng.randbytes(rng.choice([0, 1, 2, 3, 4, 20]))
        data = data[: rng.randint(0, len(data))] if rng.random() < 0.4 else data
        try:
            expected: object = vp8_depayload(data)
        except ValueError as exc:
            expected = str(exc)
        try:
            result: object = rtp_header.vp8_depayload(data)
        except ValueError as exc:
            result = str(exc)
        assert result == expected, data.hex()
        kinds.add(expected if isinstance(expected, str) else "payload")
    assert len(kinds) == 7, kinds  # a payload and each of aiortc's six errors


def test_a_packet_kept_for_a_nack_is_sent_again_as_it_was_first_sent():
    from aiortc.rtp import RTP_HISTORY_SIZE

    from sprechstunde.media.rtp_header import SentPackets

    extensions = extensions_map({"mid": 1, "abs_send_time": 3, "audio_level": 5})
    writer = rtp_header.HeaderWriter(extensions)
    writer.layout("1")
    history = SentPackets()
    history[1234 % RTP_HISTORY_SIZE] = (96, 1, 1234, 5678, 42, b"picture", 0x123456, "1", None)
    sent = writer.write(96, 1, 1234, 5678, 42, 0x123456, b"picture")
    assert history.get(1234 % RTP_HISTORY_SIZE).serialize(extensions) == sent
    assert history.get(99) is None
    history[7] = (111, 0, 7, 960, 43, b"opus", 0x000100, "0", 30)  # audio keeps its level
    assert history[7].extensions.audio_level == (False, -30)
