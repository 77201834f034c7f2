"""What the caller hears of the room (phone/bridge.py Speaker, RoomMix): another participant's Opus
packets, as a browser sends them (48 kHz, mono or stereo), become 8 kHz frames of 20 ms that carry the
same tone; a packet libopus cannot read costs a gap, not the bridge; two speakers are mixed."""

from __future__ import annotations

import fractions
import math
from array import array

import av

from sprechstunde.phone.bridge import PRIME_FRAMES, RoomMix, Speaker
from sprechstunde.phone.sip import FRAME_BYTES, RATE
from tests.phone_support import goertzel

BROWSER_RATE = 48000


def opus_tone(frequency: float, seconds: float, layout: str = "mono") -> list[bytes]:
    """Opus packets of a steady tone, 20 ms each, as a browser's encoder sends them."""
    channels = 2 if layout == "stereo" else 1
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = BROWSER_RATE
    encoder.layout = layout
    encoder.format = "s16"
    encoder.bit_rate = 32000
    encoder.time_base = fractions.Fraction(1, BROWSER_RATE)
    step = 2 * math.pi * frequency / BROWSER_RATE
    samples = BROWSER_RATE // 50
    packets: list[bytes] = []
    for n in range(int(seconds * 50)):
        pcm = array("h", (int(8000 * math.sin(step * (n * samples + i))) for i in range(samples)))
        frame = av.AudioFrame(format="s16", layout=layout, samples=samples)
        frame.planes[0].update(array("h", (s for s in pcm for _ in range(channels))).tobytes())
        frame.sample_rate = BROWSER_RATE
        frame.pts = n * samples
        packets += [bytes(p) for p in encoder.encode(frame)]
    return packets


def heard(speaker: Speaker) -> list[int]:
    return list(array("h", b"".join(speaker.frames)))


def test_a_browsers_opus_becomes_the_callers_8_khz_frames_with_the_same_tone():
    for layout in ("mono", "stereo"):
        speaker = Speaker()
        completed = sum(speaker.hear(packet) for packet in opus_tone(600, 0.2, layout))
        assert completed >= 9, (layout, completed)  # 10 packets of 20 ms (less the decoder's delay)
        assert all(len(frame) == FRAME_BYTES for frame in speaker.frames)
        samples = heard(speaker)[-5 * RATE // 50 :]  # the last 100 ms, past the decoder's start
        assert goertzel(samples, RATE, 600) > 0.5, layout
        assert goertzel(samples, RATE, 1000) < 0.1, layout


def test_a_packet_libopus_cannot_read_or_an_empty_one_is_skipped():
    speaker = Speaker()
    packets = opus_tone(600, 0.2)
    assert sum(speaker.hear(p) for p in packets[:2]) >= 1
    before = len(speaker.frames)
    assert speaker.hear(b"\xff" * 3) == 0  # not an Opus packet (a code-3 frame count of 63, truncated)
    assert speaker.hear(b"") == 0  # a padding-only packet's payload (FFmpeg would take it for the end)
    assert len(speaker.frames) == before
    assert sum(speaker.hear(p) for p in packets[2:]) >= 7  # and the next packets play on


def test_two_speakers_are_mixed_once_each_is_primed():
    mix = RoomMix(None)
    advisor, interpreter = Speaker(), Speaker()
    mix._speakers = (advisor, interpreter)  # as `listen` adds them
    for packet in opus_tone(600, 0.2):
        advisor.hear(packet)
    assert len(advisor.frames) >= PRIME_FRAMES
    alone = mix.feed()
    assert alone is not None and goertzel(list(array("h", alone)), RATE, 600) > 0.3
    for packet in opus_tone(1000, 0.2):
        interpreter.hear(packet)
    mixed = list(array("h", b"".join(mix.feed() or b"" for _ in range(5))))
    assert len(mixed) == 5 * FRAME_BYTES // 2
    assert goertzel(mixed, RATE, 600) > 0.2 and goertzel(mixed, RATE, 1000) > 0.2
