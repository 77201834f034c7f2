"""Pre-encoded media for the load clients: a looped VP8 clip and an Opus stream, encoded once.

Encoding live in every simulated participant would cost the client core far more than the server
spends forwarding, so the clients replay packets that were encoded at start-up. The clip is built so
that jumping to any of its keyframes (on a keyframe request) or wrapping from its end to its start
leaves a stream a decoder accepts: every keyframe resets all VP8 references and no alt-ref frames
are produced (`lag-in-frames` 0).
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass
from fractions import Fraction

import av

WIDTH, HEIGHT, FPS = 640, 480, 30
VIDEO_BITRATE = 825_000  # what the earlier probe (shared/notes/aiortc-forwarding.md) sent
AUDIO_BITRATE = 56_000
SAMPLE_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
_CHROMA = bytes([128]) * (WIDTH * HEIGHT // 4)


@dataclass(frozen=True)
class Clip:
    """Encoded VP8 pictures (with keyframe flags) and 20 ms Opus packets, ready to loop."""

    video: list[bytes]
    keyframes: list[int]
    audio: list[bytes]

    @property
    def video_bitrate(self) -> float:
        return sum(len(p) for p in self.video) * 8 * FPS / len(self.video)

    @property
    def audio_bitrate(self) -> float:
        return sum(len(p) for p in self.audio) * 8 * SAMPLE_RATE / AUDIO_SAMPLES / len(self.audio)


def _texture(width: int, height: int, block: int, rng: random.Random) -> list[bytes]:
    """Rows of blocky noise: detailed enough that the encoder has to spend its whole bitrate."""
    rows = []
    for _ in range(height // block):
        values = bytes(rng.randrange(16, 236) for _ in range(width // block))
        row = b"".join(bytes([v]) * block for v in values)
        rows.extend([row] * block)
    return rows


def _picture(texture: list[bytes], index: int) -> av.VideoFrame:
    """A window panning diagonally over the texture, plus a bright bar sweeping across."""
    dx = (index * 3) % (len(texture[0]) - WIDTH)
    dy = (index * 2) % (len(texture) - HEIGHT)
    bar = (index * 11) % WIDTH
    rows = []
    for y in range(HEIGHT):
        row = texture[dy + y][dx : dx + WIDTH]
        rows.append(row[:bar] + b"\xeb" * min(24, WIDTH - bar) + row[bar + 24 :])
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    frame.planes[0].update(b"".join(rows))
    frame.planes[1].update(_CHROMA)
    frame.planes[2].update(_CHROMA)
    frame.pts = index
    frame.time_base = Fraction(1, FPS)
    return frame


def encode_video(seconds: float, keyframe_interval: float, seed: int = 1) -> tuple[list[bytes], list[int]]:
    """VP8 at VIDEO_BITRATE (CBR, realtime settings as aiortc's own encoder uses)."""
    rng = random.Random(seed)
    texture = _texture(WIDTH + 384, HEIGHT + 256, 4, rng)
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = WIDTH, HEIGHT
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.framerate = Fraction(FPS, 1)
    codec.bit_rate = VIDEO_BITRATE
    codec.gop_size = round(keyframe_interval * FPS)
    codec.qmin, codec.qmax = 2, 56
    codec.options = {
        "bufsize": str(VIDEO_BITRATE),
        "minrate": str(VIDEO_BITRATE),
        "maxrate": str(VIDEO_BITRATE),
        "deadline": "realtime",
        "cpu-used": "4",
        "lag-in-frames": "0",
        "auto-alt-ref": "0",
        "undershoot-pct": "100",
        "overshoot-pct": "15",
    }
    count = round(seconds * FPS)
    packets: list[bytes] = []
    keyframes: list[int] = []
    for index in range(count):
        for packet in codec.encode(_picture(texture, index)):
            if packet.is_keyframe:
                keyframes.append(len(packets))
            packets.append(bytes(packet))
    for packet in codec.encode(None):
        if packet.is_keyframe:
            keyframes.append(len(packets))
        packets.append(bytes(packet))
    if not keyframes or keyframes[0] != 0:
        raise RuntimeError("the VP8 clip must start with a keyframe")
    return packets, keyframes


def encode_audio(seconds: float) -> list[bytes]:
    """Opus, 20 ms packets of a warbling tone with a little noise (so it is not coded as silence)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = SAMPLE_RATE
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = AUDIO_BITRATE
    codec.time_base = Fraction(1, SAMPLE_RATE)
    codec.options = {"application": "voip"}
    rng = random.Random(2)
    packets: list[bytes] = []
    count = round(seconds * SAMPLE_RATE / AUDIO_SAMPLES)
    for index in range(count):
        samples = []
        for n in range(AUDIO_SAMPLES):
            t = (index * AUDIO_SAMPLES + n) / SAMPLE_RATE
            freq = 440 + 120 * math.sin(2 * math.pi * 0.5 * t)
            value = int(8000 * math.sin(2 * math.pi * freq * t) + rng.randint(-600, 600))
            samples.append(value)
            samples.append(value)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_SAMPLES)
        frame.planes[0].update(struct.pack(f"<{len(samples)}h", *samples))
        frame.sample_rate = SAMPLE_RATE
        frame.pts = index * AUDIO_SAMPLES
        frame.time_base = Fraction(1, SAMPLE_RATE)
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return [p for p in packets if p]


def build_clip(seconds: float = 4.0, keyframe_interval: float = 2.0) -> Clip:
    """Encode the clip every load client replays (takes a few seconds; done once per benchmark)."""
    video, keyframes = encode_video(seconds, keyframe_interval)
    return Clip(video=video, keyframes=keyframes, audio=encode_audio(seconds))


def check_decodable(clip: Clip) -> int:
    """Decode the clip twice in a row (covering the wrap-around); returns pictures decoded."""
    codec = av.CodecContext.create("libvpx", "r")
    decoded = 0
    for data in clip.video + clip.video:
        decoded += len(codec.decode(av.Packet(data)))
    return decoded
