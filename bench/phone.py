# Over 500 lines: one benchmark driver (server, callers, advisors, CPU windows, report) read top to bottom.
"""Phone benchmark (issue 20): N simultaneous SIP callers bridged into consultation rooms, the server's CPU
per call beside one video consultation's, and the longest audio gap each advisor hears.

`sprechstunde serve --sip-listen 127.0.0.1:P` answers the calls. The pjsua2-python wheel holds 4 calls per
process (PJSUA_MAX_CALLS), so with W = --workers (default: callers ÷ 4, rounded up) above 1 it is
`serve --workers W --redis … --sip-listen 127.0.0.1:P` on a fresh Redis prefix (removed afterwards):
process k answers SIP on P+k, and caller i dials P + (i mod W), as a PBX's trunk group spreads its calls.
With W = 1 the server is one process without Redis, as in the earlier 4-caller figures.

N baresip callers (Debian) each send a 1 kHz tone, choose Deutsch / Volkshochschule by DTMF and wait; N
advisors sign in, take "Nächste Person" on the first process's console socket and join the room through
the first process's /ws (a room held by a worker answers `wrong_node`, and the advisor follows it to
`?node=…`, which the first process relays), each an aiortc client sending 600 Hz (so the bridge decodes,
mixes and re-encodes in both directions). Over a fixed window the advisors record every received audio
frame's arrival time and whether it carries the caller's tone: a gap is the longest stretch without a
frame that carries the tone (no frame at all, or a silent one).

The advisors are kept light, so that the figures are the server's and not this process's: 20 advisors
encoding and decoding every frame took ~12 % of a core each, and their starved event loop let ICE
consent checks fail. What an advisor does instead:
* Sending: 1 s of the 600 Hz tone is encoded once per run (libopus, 48 kHz mono, 32 kbit/s, 20 ms
  frames); each advisor's track hands aiortc those packets in a loop, paced by the wall clock, with pts
  rising at 1/48000. aiortc only packs them (no encoder, no executor thread); the bridge still decodes
  and mixes them on the server.
* Receiving: aiortc's receive path (SRTP, RTP statistics, RTCP) on the shortcuts the server's own
  connections use (media/aiortc_fork: the transport past aioice's queue, the receiver tapped for encoded
  frames, as the phone bridge's leg): per Opus packet the advisor notes its arrival time — the
  kernel's stamp on the datagram at its socket (SO_TIMESTAMPNS; `--arrival loop`: when this process's
  event loop read it) — and its payload size; nothing is handed to a decoder thread. A frame carries the tone
  when its Opus payload has at least TONE_MIN_BYTES = 16 (the bridge's 24 kbit/s narrowband encoder
  spends 6–8 bytes on a silent frame and 17–47 on the tone, measured).
  Every 10th frame is also decoded with libopus (after the 3 frames before it, for the decoder's state)
  and checked: RMS ≥ SILENT_RMS and more power at 1 kHz than at 600 Hz. The share of checked frames on
  which size and decoding agree is printed; below 95 % the run fails (exit status 1).
* This process's event loop is watched (a 20 ms ticker notes how late it wakes); a window in which it
  was over 100 ms late is flagged: a starved load generator's gaps are its own, not the server's (with
  the kernel's arrival stamps they no longer count, but its sending of the advisors' audio still lags).
* `--generator-nice` sets the load generator's and its phones' niceness against the server's 0: equal
  by default, negative ahead of the server, positive behind it (the scheduler then favours the server
  whenever both want a core; still not a server with its cores alone).

CPU over the window, from /proc: the server's is utime + stime of the first process and of each worker
process (every thread, PJSIP's too), minus their idle rate measured the same way before the calls. Beside
it, what the load generator costs on the same cores: this process (the N aiortc advisors) and the
baresip processes, and the machine's busy share from /proc/stat. After the callers hang up, one video
consultation (two participants replaying bench/clip.py's 640×480 VP8 + Opus through bench/loadclient.py)
joins through the first process over a window of the same length: the baseline the per-call figure is
printed against (its CPU summed over the same processes, wherever the room lands).

    .venv/bin/python -m bench.phone                          # 20 callers on 5 processes, 20 s windows
    .venv/bin/python -m bench.phone --callers 4 --workers 1  # one process, as the first figures
    .venv/bin/python -m bench.phone --callers 2 --workers 2 --seconds 5

Without a Redis server at --redis (default redis://127.0.0.1:6379/0), Debian's `redis-server` is started
on a free port for the run (bench/failover.py). A caller that cannot start or whose call is refused (486
Busy Here: more than 4 callers on one process) ends the run with one line per caller, exit status 1.

Results: a table on stdout and bench/results/phone.json (the server's log, every process's, next to it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import fractions
import gc
import json
import math
import operator
import os
import re
import secrets
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench import loadclient
from bench.clip import build_clip
from bench.failover import DEFAULT_REDIS, redis_server
from bench.media_relay import CLK_TCK, NODE_ID, _children, create_rooms, delete_prefix, wait_workers
from bench.server import ServerProcess, bindable, free_udp_and_tcp_port, machine_speed
from sprechstunde.media.aiortc_fork import receiver as fork_receiver
from sprechstunde.media.aiortc_fork import transport as fork_transport
from tests.phone_support import Baresip, goertzel, tone_wav
from tests.rtc_client import RtcParticipant

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "richtig-langes-passwort"
CALLER_TONE = 1000.0
ADVISOR_TONE = 600.0
SETTLE_AFTER_COLLECTION = 1.0  # seconds between the load generator's last collection and the window
CALLS_PER_PROCESS = 4  # the pjsua2-python wheel's PJSUA_MAX_CALLS
GAP_LIMIT_MS = 100.0  # the acceptance criterion: no gap over this at the advisor
SILENT_RMS = 1000.0  # a frame below this carries no tone (the tone arrives at RMS ≈ 5000)
# an Opus payload this long carries the tone. The bridge's encoder (CallerTrack: 8 kHz mono, 24 kbit/s),
# measured: silence 6–8 bytes, the tone 37–47 (17–30 for ~20 frames after a silence), the first silent
# frame after the tone 13–28 (its decoded tail is as often loud as not)
TONE_MIN_BYTES = 16
SAMPLE_EVERY = 10  # every 10th received frame is decoded to check the size classification …
WARM_UP_FRAMES = 3  # … after decoding the 3 frames before it
MIN_AGREEMENT = 0.95  # below this share of agreeing sampled frames the run fails
OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
TONE_BITRATE = 32_000  # the advisor's tone, as a browser sends voice
TONE_AMPLITUDE = 8000
LAG_TICK = 0.02  # the event-loop lag ticker's period (s)
LAG_LIMIT_MS = 100.0  # a load generator's loop later than this: the figures are not the server's
CALL_ENDED = ("session closed:", "terminated")  # baresip's lines for a refused or ended call
SETTLE_SECONDS = 60.0  # at most this long for the start-up's prompt rendering to calm down
# every day open (the benchmark must not depend on the hour it runs at), no holidays
OFFICES = """timezone = "Europe/Berlin"
holiday_state = ""
languages = ["de", "en"]

[offices.vhs]
name_de = "Volkshochschule"
name_en = "Adult Education Centre"
[offices.vhs.hours]
mon = "00:00-23:59"
tue = "00:00-23:59"
wed = "00:00-23:59"
thu = "00:00-23:59"
fri = "00:00-23:59"
sat = "00:00-23:59"
sun = "00:00-23:59"
"""


# --- the advisors' audio, kept light: a pre-encoded tone out, frames sized (and a tenth decoded) in ---


def encode_tone(frequency: float, seconds: float = 1.0) -> list[bytes]:
    """`seconds` of a steady tone as 20 ms Opus packets (PyAV's libopus, 48 kHz mono, TONE_BITRATE),
    encoded once per run: the second half of twice that, so the encoder has settled and the last packet
    leads into the first as seamlessly as any two (a whole number of periods per 20 ms frame)."""
    if not (frequency * OPUS_FRAME / OPUS_RATE).is_integer():
        raise ValueError(f"{frequency} Hz is no whole number of periods per 20 ms: the loop would click")
    encoder = av.CodecContext.create("libopus", "w")
    encoder.bit_rate = TONE_BITRATE
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.sample_rate = OPUS_RATE
    encoder.time_base = OPUS_TIME_BASE
    encoder.options = {"application": "voip"}
    step = 2 * math.pi * frequency / OPUS_RATE
    pcm = array("h", (int(TONE_AMPLITUDE * math.sin(step * i)) for i in range(OPUS_FRAME))).tobytes()
    count = round(seconds * OPUS_RATE / OPUS_FRAME)
    packets: list[bytes] = []
    for n in range(2 * count):
        frame = av.AudioFrame(format="s16", layout="mono", samples=OPUS_FRAME)
        frame.planes[0].update(pcm)
        frame.sample_rate = OPUS_RATE
        frame.pts = n * OPUS_FRAME
        frame.time_base = OPUS_TIME_BASE
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    return packets[-count:]


class OpusToneTrack(MediaStreamTrack):
    """The advisor's microphone: `encode_tone`'s packets in a loop, one per 20 ms of the wall clock
    (as CallerTrack and aiortc's own tracks pace), pts rising by 960 at 1/48000. aiortc's sender only
    packs an av.Packet: nothing is encoded in this process, and no executor thread is used."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self._packets = packets
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += OPUS_FRAME
            wait = self._start + self._pts / OPUS_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        packet = av.Packet(self._packets[self._pts // OPUS_FRAME % len(self._packets)])
        packet.pts = self._pts
        packet.time_base = OPUS_TIME_BASE
        return packet


@dataclass(slots=True)
class Heard:
    """What an advisor's receiver hands its track for one Opus frame, in place of decoded audio."""

    size: int  # bytes of the Opus payload
    tone: bool | None  # the decoded frame carries the caller's tone (every 10th frame, else None)


def carries_tone(frame: av.AudioFrame) -> bool:
    """A decoded frame carries the caller's tone when its RMS reaches SILENT_RMS and it has more power at
    CALLER_TONE than at ADVISOR_TONE (Goertzel on the first channel, taken down to 8 kHz: the bridge's
    Opus is narrowband)."""
    channels = len(frame.layout.channels)
    stride = channels * max(1, frame.sample_rate // 8000)
    samples = array("h", bytes(frame.planes[0])[: frame.samples * 2 * channels])[::stride]
    if not samples:
        return False
    rms = math.sqrt(sum(map(operator.mul, samples, samples)) / len(samples))
    rate, pcm = frame.sample_rate * channels // stride, samples.tolist()
    return rms >= SILENT_RMS and goertzel(pcm, rate, CALLER_TONE) > goertzel(pcm, rate, ADVISOR_TONE)


class SampledOpusDecoder:
    """What an advisor makes of each Opus packet it receives (`GapAdvisor`): one `Heard` with its
    payload size. Every SAMPLE_EVERY-th frame is decoded by its own
    libopus decoder (48 kHz mono) and checked with `carries_tone`, after decoding the WARM_UP_FRAMES
    frames before it: the decoder skips the others, and a frame decoded right after such a skip comes
    out far too quiet (SILK's gains and prediction carry over from frame to frame). So 4 of 10 frames
    are decoded, 1 of 10 analysed, on the event loop as the packets arrive."""

    def __init__(self) -> None:
        self._decoder = av.CodecContext.create("libopus", "r")
        self._decoder.format = "s16"
        self._decoder.layout = "mono"
        self._recent: collections.deque[bytes] = collections.deque(maxlen=WARM_UP_FRAMES)
        self._count = 0

    def decode(self, encoded_frame: Any) -> list[Heard]:
        data = encoded_frame.data
        self._count += 1
        tone = self._check([*self._recent, data]) if self._count % SAMPLE_EVERY == 0 else None
        self._recent.append(data)
        return [Heard(len(data), tone)]

    def _check(self, payloads: list[bytes]) -> bool:
        frames: list[av.AudioFrame] = []
        try:
            for data in payloads:
                frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            return False  # counts against the size classification
        return bool(frames) and carries_tone(frames[-1])


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: the kernel stamps each datagram's arrival
TIMESPEC = struct.Struct("@qq")  # struct timespec: seconds, nanoseconds


class KernelArrivals:
    """When each datagram reached a peer connection's UDP sockets, as the kernel stamped it
    (SO_TIMESTAMPNS), instead of when this process's event loop got round to reading it. The advisors
    of a real consultation run on other machines; here they share the server's two cores, and a
    moment in which this process waits for a core would otherwise count as the server's gap. The
    sockets are read here (recvmsg, the kernel's stamp beside each datagram) and each datagram handed
    to aioice's protocol as asyncio's transport would; `now` is the arrival of the one being handled,
    on time.monotonic()'s clock, for the receiver's tap to read synchronously. (The kernel turns its
    stamping on a moment after the first socket asks; a datagram before that is stamped when read.
    The advisors' sockets ask at their answer, seconds before the window.)"""

    def __init__(self) -> None:
        self.now: float | None = None
        self.stamped = 0
        self._offset: float | None = None  # wall clock minus monotonic clock

    @staticmethod
    def clock_offset(samples: int = 5) -> float:
        """time.time() - time.monotonic(), from the tightest of a few readings: two separate calls
        taken apart by a moment's wait for a core (this machine is busy) would shift every stamp."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            before = time.monotonic()
            wall = time.time()
            after = time.monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, wall - (before + after) / 2)
        assert best is not None
        return best[1]

    def install(self, pc: Any) -> None:
        """Every UDP socket of the peer connection's ICE (after gathering: once its description is set)."""
        for connection in fork_transport.ice_connections(pc):
            for protocol in connection._protocols:
                self.watch(getattr(protocol, "transport", None), protocol)

    def watch(self, transport: Any, protocol: Any) -> None:
        """Read an asyncio datagram transport's socket here, handing `protocol` what it would get."""
        sock = getattr(transport, "_sock", None)
        if sock is None or sock.type != socket.SOCK_DGRAM or transport.is_closing():
            return
        if self._offset is None:
            self._offset = self.clock_offset()
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # asyncio's public add_reader refuses a socket its transport reads: the private pair swaps the
        # reader and leaves the transport (sending, closing) as it is
        loop = asyncio.get_running_loop()
        loop._remove_reader(sock.fileno())  # type: ignore[attr-defined]
        loop._add_reader(sock.fileno(), self._read, sock, protocol)  # type: ignore[attr-defined]

    def _read(self, sock: socket.socket, protocol: Any) -> None:
        for _ in range(64):  # what is waiting, without starving the rest of the loop
            try:
                data, ancillary, _flags, address = sock.recvmsg(65536, socket.CMSG_SPACE(TIMESPEC.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            self.now = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
                    seconds, nanoseconds = TIMESPEC.unpack_from(value)
                    # the stamp is wall-clock time: moved onto the monotonic clock the windows use
                    self.now = seconds + nanoseconds / 1e9 - (self._offset or 0.0)
                    self.stamped += 1
            try:
                protocol.datagram_received(data, address)
            finally:
                self.now = None


class GapAdvisor(RtcParticipant):
    """An advisor sending OpusToneTrack's 600 Hz that notes, for every audio frame it receives, when
    it arrived — by default the kernel's stamp on the datagram at its socket (`KernelArrivals`), else
    (`--arrival loop`) time.monotonic() when this process's event loop read it, so that a busy loop
    shows as a gap — the Opus payload's size and, for every SAMPLE_EVERY-th frame, whether the decoded
    frame carries the caller's tone. A frame carries the tone when its payload has at least
    TONE_MIN_BYTES: the bridge's 24 kbit/s narrowband encoder spends 6–8 bytes on silence and 17–47 on
    the tone. Its audio receivers are tapped (no decoder thread, the packets taken as they arrive) and
    its transport takes the server's shortcuts, so that 20 advisors beside the server cost it as little
    CPU as they can. `join` (RtcParticipant's) follows a `wrong_node` reply to the worker holding the
    call."""

    def __init__(self, *args: Any, kernel_arrivals: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audio: list[tuple[float, int, bool | None]] = []  # arrival, payload bytes, decoded tone
        # per stamped frame: the kernel's stamp, and how much later this process's loop read it
        self.read_late: list[tuple[float, float]] = []
        self.arrivals = KernelArrivals() if kernel_arrivals else None

    @property
    def node(self) -> str:
        """The server process it talks to: `?node=` of the URL that welcomed it, else the first."""
        return parse_qs(urlsplit(self.ws_url).query).get("node", [NODE_ID])[0]

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = fork_receiver.transceiver_of(self.pc, track) if self.pc is not None else None
        if track.kind != "audio" or transceiver is None:
            super()._on_track(track)
            return
        decoder = SampledOpusDecoder()

        def heard(_codec: Any, frame: Any) -> None:
            read = time.monotonic()
            stamped = self.arrivals.now if self.arrivals is not None else None
            if stamped is not None:
                self.read_late.append((stamped, read - stamped))
            for packet in decoder.decode(frame):
                self.frames["audio"] += 1
                self.audio.append((read if stamped is None else stamped, packet.size, packet.tone))

        fork_receiver.tap_receiver(transceiver.receiver, heard, prompt=True)

    async def _send_answer(self, sdp: str) -> None:
        assert self.pc is not None
        fork_transport.shortcut_transports(self.pc)
        if self.arrivals is not None:
            self.arrivals.install(self.pc)
        await super()._send_answer(sdp)

    def loud_frames(self) -> int:
        return sum(1 for _, size, _ in self.audio if size >= TONE_MIN_BYTES)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Frames, silent frames and the longest stretch without a frame carrying the tone inside
        [t0, t1]; the sampled frames and how many of them the size classification got right."""
        inside = [(t, size, tone) for t, size, tone in self.audio if t0 <= t <= t1]
        loud = [t for t, size, _ in inside if size >= TONE_MIN_BYTES]
        points = [t0, *loud, t1]
        gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        checked = [(size, tone) for _, size, tone in inside if tone is not None]
        late = [seconds for at, seconds in self.read_late if t0 <= at <= t1]
        return {
            "node": self.node,
            "kernel_stamped": len(late),
            "read_late_max_ms": round(max(late, default=0.0) * 1000, 1),
            "frames": len(inside),
            "silent_frames": len(inside) - len(loud),
            "max_gap_ms": round(gaps[worst] * 1000, 1),
            "max_gap_at_s": round(points[worst] - t0, 2),
            "gaps_over_limit": sum(1 for g in gaps if g * 1000 > GAP_LIMIT_MS),
            "checked": len(checked),
            "agreed": sum(1 for size, tone in checked if (size >= TONE_MIN_BYTES) == tone),
            "checked_sizes": {
                kind: dict(sorted(collections.Counter(s for s, t in checked if t == is_tone).items()))
                for kind, is_tone in (("tone", True), ("silent", False))
            },
        }


class LoopLag:
    """How late this process's event loop runs: a task asks to wake every LAG_TICK seconds and notes how
    much later than asked it woke. A starved load generator reads frames late (false gaps), lets ICE
    consent checks time out, and its figures are then its own, not the server's."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (woke at, seconds late)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            now = time.monotonic()
            self.samples.append((now, now - due))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def worst_ms(self, t0: float, t1: float) -> float:
        """The latest wake-up (ms) of the ticks that woke inside [t0, t1]."""
        return round(max((late for at, late in self.samples if t0 <= at <= t1), default=0.0) * 1000, 1)


# --- CPU over a window: named processes from /proc/<pid>/stat, the machine from /proc/stat ---


@dataclass
class Sample:
    at: float
    names: dict[str, int]  # the processes measured by name: their pids
    seconds: dict[int, tuple[str, float]]  # every process: its name (comm) and CPU seconds so far
    jiffies: list[int]  # all CPUs since boot: user nice system idle iowait irq softirq steal


def _every_process() -> dict[int, tuple[str, float]]:
    """utime + stime (all threads) of every process on the machine, with its command name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            head, _, rest = text.rpartition(")")
            fields = rest.split()
            found[int(entry.name)] = (head.partition("(")[2], (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return found


def sample(processes: dict[str, int]) -> Sample:
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return Sample(time.monotonic(), processes, _every_process(), [int(v) for v in first[1:9]])


def machine_cpus() -> int:
    return sum(1 for line in Path("/proc/stat").read_text().splitlines() if re.match(r"cpu\d", line))


def _command(pid: int, comm: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return comm
    text = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv) if a)
    return (text or comm)[:60]


def rates(before: Sample, after: Sample) -> dict[str, Any]:
    """Cores each named process used between two samples (None: it ended meanwhile); the machine's busy
    share (user, system and interrupt time of all CPUs; steal apart); the other processes that used
    more than 1 % of a core."""
    wall = after.at - before.at

    def used(pid: int) -> float | None:
        if pid not in before.seconds or pid not in after.seconds:
            return None
        return (after.seconds[pid][1] - before.seconds[pid][1]) / wall

    cores = {name: used(pid) for name, pid in before.names.items()}
    named = set(before.names.values())
    others = [(used(pid), pid, comm) for pid, (comm, _) in after.seconds.items() if pid not in named]
    busiest = sorted((c, pid, comm) for c, pid, comm in others if c is not None and c >= 0.01)[::-1]
    user, nice, system, idle, iowait, irq, softirq, steal = (
        b - a for a, b in zip(before.jiffies, after.jiffies, strict=True)
    )
    jiffies = max(1, user + nice + system + idle + iowait + irq + softirq + steal)
    return {
        "t0": before.at,
        "t1": after.at,
        "cores": cores,
        "machine_busy_share": (user + nice + system + irq + softirq) / jiffies,
        "machine_steal_share": steal / jiffies,
        "other_processes": {f"{_command(pid, comm)} ({pid})": c for c, pid, comm in busiest},
    }


async def measure(processes: dict[str, int], seconds: float) -> dict[str, Any]:
    before = sample(processes)
    await asyncio.sleep(seconds)
    return rates(before, sample(processes))


def machine(window: dict[str, Any]) -> dict[str, Any]:
    """What a window's record keeps of the machine."""
    keys = ("machine_busy_share", "machine_steal_share", "other_processes")
    return {key.removeprefix("machine_"): window[key] for key in keys}


def group(window: dict[str, Any], prefix: str) -> dict[str, float | None]:
    """The cores of the processes named `prefix:…`, by the rest of their name."""
    return {name.split(":", 1)[1]: v for name, v in window["cores"].items() if name.startswith(prefix + ":")}


def total(values: dict[str, float | None]) -> float:
    return sum(v for v in values.values() if v is not None)


def server_processes(nodes: list[tuple[str, int]]) -> dict[str, int]:
    """The processes whose CPU is the server's: the first and every worker, as `server:<node id>`."""
    return {f"server:{node}": pid for node, pid in nodes}


async def settle(processes: dict[str, int], workers: int) -> float:
    """Wait (at most SETTLE_SECONDS) until the server processes use little CPU: at start-up every
    process renders the fixed prompts with espeak-ng. Returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < SETTLE_SECONDS:
        if total(group(await measure(processes, 1.0), "server")) < 0.05 * workers:
            break
    return time.monotonic() - start


# --- the callers, the advisors ---


def add_advisors(data_dir: Path, count: int, store_args: list[str]) -> list[str]:
    names = [f"berater{i}" for i in range(count)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sprechstunde",
                "user",
                "add",
                name,
                "--office",
                "vhs",
                "--language",
                "de",
                "--role",
                "advisor",
                "--password-stdin",
                "--data-dir",
                str(data_dir),
                *store_args,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in names
    ]
    for proc in procs:
        _, err = proc.communicate(PASSWORD + "\n", timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"user add failed: {err}")
    return names


def free_sip_ports(count: int) -> int:
    """P with P … P+count-1 free for UDP and TCP on 127.0.0.1."""
    for _ in range(200):
        port = free_udp_and_tcp_port()
        if port + count - 1 > 65535:
            continue
        others = range(port + 1, port + count)
        if all(bindable(other, socket.SOCK_DGRAM, socket.SOCK_STREAM) for other in others):
            return port
    raise RuntimeError(f"no {count} consecutive free SIP ports found")


def node_of(k: int) -> str:
    """The node id of process k of `serve --workers`."""
    return NODE_ID if k == 0 else f"{NODE_ID}-w{k}"


def tail(phone: Baresip, lines: int = 4) -> str:
    return " | ".join(line.strip() for line in phone.text().splitlines()[-lines:])


def call_ended(text: str) -> str | None:
    """baresip's line saying the call was refused or ended, if there is one in `text`."""
    return next((line.strip() for line in text.splitlines() if any(m in line for m in CALL_ENDED)), None)


def ended_after_answer(phone: Baresip) -> str | None:
    """Why an answered call has ended since (None: still on), from baresip's log."""
    text = phone.text()
    answered = text.find("Call established")
    if phone.process.poll() is not None:
        return f"baresip exited with {phone.process.returncode}"
    return call_ended(text[answered:]) if answered >= 0 else "never answered"


async def start_caller(i: int, work: Path, voice: Path, started: list[Baresip]) -> Baresip:
    """A ready baresip for caller i; its TLS transport takes a port next to its SIP port, which may be
    taken: then a fresh one, three tries."""
    for attempt in range(3):
        phone = Baresip(work / f"caller{i}-{attempt}", user=f"49215100{i:04d}", source=voice)
        started.append(phone)
        deadline = time.monotonic() + 15
        while "baresip is ready" not in phone.text():
            if phone.process.poll() is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        else:
            return phone
        if "already in use" not in phone.text() or attempt == 2:
            raise RuntimeError(f"baresip did not start: {tail(phone)}")
        await asyncio.to_thread(phone.close)
    raise AssertionError("unreachable")


async def established(phone: Baresip, timeout: float) -> None:
    """Until baresip says the call is answered; RuntimeError at once when it is refused (486 …)."""
    deadline = time.monotonic() + timeout
    while "Call established" not in (text := phone.text()):
        if (ended := call_ended(text)) is not None:
            raise RuntimeError(f"refused: {ended}")
        if phone.process.poll() is not None:
            raise RuntimeError(f"baresip exited with {phone.process.returncode}: {tail(phone)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not answered within {timeout:.0f} s: {tail(phone)}")
        await asyncio.sleep(0.05)


async def claim(base: str, username: str) -> str:
    """Sign in as `username`, take "Nächste Person" on the console socket; the advisor's join token."""
    # unsafe: the jar keeps cookies of an IP address (the server on 127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base + "/api/login", json={"username": username, "password": PASSWORD}) as r:
            if r.status != 200:
                raise RuntimeError(f"login {username}: {r.status} {await r.text()}")
        console = await http.ws_connect(base + "/ws/console", headers={"Origin": base})
        try:
            for attempt in range(60):
                await console.send_json({"type": "next", "id": f"n{attempt}"})
                while True:
                    message = await console.receive_json(timeout=10)
                    if message.get("id") == f"n{attempt}":
                        break
                if message["type"] == "claimed":
                    return message["advisor_url"].rsplit("/join/", 1)[1]
                await asyncio.sleep(0.5)  # queue_empty: the callers are still choosing
            raise RuntimeError(f"{username} found nobody to claim within 30 s")
        finally:
            await console.close()


def bridged_ways(log: str) -> dict[str, int]:
    """How the server's log says each call's media entered its room (phone/bridge.py): in the process
    that holds the call, or over WebRTC to another node."""
    return {way: log.count(f"({way})") for way in ("in this process", "over WebRTC")}


async def phone_case(
    server: ServerProcess,
    nodes: list[tuple[str, int]],
    data_dir: Path,
    args: argparse.Namespace,
    work: Path,
    lag: LoopLag,
) -> dict:
    names = add_advisors(data_dir, args.callers, args.store_args)
    tone = encode_tone(ADVISOR_TONE)  # once for every advisor
    voice = tone_wav(work / "voice.wav", CALLER_TONE, args.seconds * 3 + 120)
    started: list[Baresip] = []  # every baresip process, also a failed start's
    phones: dict[int, Baresip] = {}  # caller i's
    advisors: list[GapAdvisor] = []
    http = aiohttp.ClientSession()

    def where(i: int) -> str:
        k = i % args.workers
        return f"caller {i} (127.0.0.1:{args.sip_port + k}, {node_of(k)})"

    try:

        async def call(i: int) -> None:
            await asyncio.sleep(0.5 * i)
            phones[i] = phone = await start_caller(i, work, voice, started)
            await phone.dial(f"sip:beratung@127.0.0.1:{args.sip_port + i % args.workers}")
            await established(phone, timeout=20)
            await phone.press("1")  # Deutsch
            await asyncio.sleep(1.0)
            await phone.press("1")  # Volkshochschule

        outcomes = await asyncio.gather(*(call(i) for i in range(args.callers)), return_exceptions=True)
        failed = [f"{where(i)}: {o}" for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
        if failed:
            raise RuntimeError(f"{len(failed)} of {args.callers} callers failed:\n  " + "\n  ".join(failed))
        await asyncio.sleep(2.0)
        gone = [f"{where(i)}: {why}" for i, p in phones.items() if (why := ended_after_answer(p))]
        if gone:
            raise RuntimeError("calls ended before an advisor took them:\n  " + "\n  ".join(gone))
        tokens = [await claim(server.url, name) for name in names]
        ws_url = f"ws://127.0.0.1:{server.port}/ws"  # the first process's, for every advisor
        for i, token in enumerate(tokens):
            advisor = GapAdvisor(
                http, ws_url, token, f"Berater {i}", tracks=[OpusToneTrack(tone)],
                kernel_arrivals=args.arrival == "kernel",
            )  # fmt: skip
            advisors.append(advisor)
            try:
                await advisor.join()
            except (RuntimeError, TimeoutError, aiohttp.ClientError) as exc:
                raise RuntimeError(f"advisor {i} could not join through {ws_url}: {exc!r}") from exc
        deadline = time.monotonic() + 30
        while any(a.loud_frames() < 100 for a in advisors):  # 2 s of the caller's tone everywhere
            if time.monotonic() > deadline:
                heard = [f"{i} ({a.node}): {a.loud_frames()}" for i, a in enumerate(advisors)]
                raise RuntimeError(f"no caller tone at some advisor (loud frames): {', '.join(heard)}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        processes = server_processes(nodes) | {"bench": os.getpid()}
        processes |= {f"baresip:{i}": phone.process.pid for i, phone in phones.items()}
        # this process holds 20 aiortc clients: a full collection of its heap stalls every advisor at
        # once for 0.5–1 s (seen: the ticker 600 ms late, gaps of ~1 s at all 20 advisors in the same
        # instant), which would count as the server's gaps; the load generator collects before and after,
        # and the window starts once the packets that waited during that collection are read
        with paused_collections():
            await asyncio.sleep(SETTLE_AFTER_COLLECTION)
            window = await measure(processes, args.seconds)
        children = _children(server.pid)
        restarted = [node for node, pid in nodes[1:] if pid not in children]
        await asyncio.sleep(0.2)  # frames the kernel stamped before the window's end, still to be read
        windows = [advisor.window(window["t0"], window["t1"]) for advisor in advisors]
        lost = [where(i) + f": {why}" for i, p in phones.items() if (why := ended_after_answer(p))]
        sizes: dict[str, collections.Counter[int]] = {"tone": collections.Counter()}
        sizes["silent"] = collections.Counter()
        for w in windows:
            for kind, counts in w.pop("checked_sizes").items():
                sizes[kind].update(counts)
        checked, agreed = sum(w["checked"] for w in windows), sum(w["agreed"] for w in windows)
        return {
            "callers": args.callers,
            "cores": total(group(window, "server")),
            "processes": group(window, "server"),
            "calls_per_process": {n: sum(w["node"] == n for w in windows) for n, _ in nodes},
            "workers_restarted": restarted,
            "bridged": bridged_ways(server.log()),
            "advisors": windows,
            "callers_ended_early": lost,
            "tone_check": {
                "min_bytes": TONE_MIN_BYTES,
                "checked": checked,
                "agreed": agreed,
                "share": agreed / checked if checked else 0.0,
                "sizes": {kind: dict(sorted(counts.items())) for kind, counts in sizes.items()},
            },
            "load": {"bench_process": window["cores"]["bench"], "baresip": group(window, "baresip")},
            "loop_lag_ms": lag.worst_ms(window["t0"], window["t1"]),
            "machine": machine(window),
        }
    finally:
        for advisor in advisors:
            await advisor.close()
        await http.close()
        for phone in phones.values():
            with contextlib.suppress(OSError):
                phone.hangup()
        await asyncio.sleep(1.0)
        for phone in started:
            await asyncio.to_thread(phone.close)


async def video_case(
    server: ServerProcess,
    nodes: list[tuple[str, int]],
    data_dir: Path,
    args: argparse.Namespace,
    lag: LoopLag,
) -> dict:
    """One 1:1 video consultation (the media benchmark's load participants, replaying the clip), joined
    through the first process."""
    clip = build_clip()
    tokens = create_rooms(data_dir, server.url, 1, args.store_args)[0]
    now = time.monotonic()
    participants = [
        {"token": tokens[role], "name": role, "role": role, "consultation": 0, "join_at": now + i * 0.2}
        for i, role in enumerate(("citizen", "advisor"))
    ]
    t0 = now + 6.0
    schedule = {"t0": t0, "t1": t0 + args.seconds, "ws_url": f"ws://127.0.0.1:{server.port}/ws"}
    run = asyncio.ensure_future(loadclient._run(participants, clip, schedule))
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))
    window = await measure(server_processes(nodes) | {"bench": os.getpid()}, args.seconds)
    result = await run
    people = result["participants"]
    received = {p["role"]: {kind: p[kind]["count"] for kind in ("audio", "video")} for p in people}
    hosts = sorted({NODE_ID if p["node"] in (None, loadclient.FIRST_NODE) else p["node"] for p in people})
    return {
        "cores": total(group(window, "server")),
        "processes": group(window, "server"),
        "hosted_on": hosts,
        "received": received,
        "errors": [p["error"] for p in people],
        "load": {"bench_process": window["cores"]["bench"]},
        "loop_lag_ms": lag.worst_ms(window["t0"], window["t1"]),
        "machine": machine(window),
    }


async def main_async(args: argparse.Namespace) -> dict:
    RESULTS.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        args.store_args, extra = [], []
        if args.workers > 1:
            redis_url = stack.enter_context(redis_server(args.redis))
            prefix = f"sprechstunde-bench-phone-{secrets.token_hex(4)}:"
            stack.callback(delete_prefix, redis_url, prefix)  # after the server has stopped (LIFO)
            args.store_args = ["--redis", redis_url, "--redis-prefix", prefix]
            extra = ["--workers", str(args.workers), "--node-id", NODE_ID, *args.store_args]
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-phone-")))
        data_dir = work / "data"
        offices = work / "offices.toml"
        offices.write_text(OFFICES)
        args.sip_port = free_sip_ports(args.workers)
        extra = ["--offices", str(offices), "--sip-listen", f"127.0.0.1:{args.sip_port}",
                 "--sip-allow", "127.0.0.1/32", "--sip-calls-per-minute", "100", *extra]  # fmt: skip
        log_path = RESULTS / "phone-server.log"
        launched = time.monotonic()
        server = stack.enter_context(ServerProcess(data_dir, *extra, log_path=log_path))
        server.wait_healthy()
        nodes = [(NODE_ID, server.pid)]
        if args.workers > 1:  # each worker registers once its SIP port is up
            nodes = await asyncio.to_thread(wait_workers, server, redis_url, prefix, args.workers)
        started = time.monotonic() - launched
        args.generator_priority = raise_priority(args.generator_nice)
        await asyncio.sleep(8.0)  # the start-up renders the fixed prompts (espeak-ng) in the background
        settled = await settle(server_processes(nodes), args.workers)
        lag = LoopLag()  # from the idle window on: how late this process's event loop runs
        lag.start()
        try:
            idle_window = await measure(server_processes(nodes), 5.0)
            phone = await phone_case(server, nodes, data_dir, args, work, lag)
            await asyncio.sleep(3.0)
            video = await video_case(server, nodes, data_dir, args, lag)
        finally:
            await lag.stop()
    idle = total(group(idle_window, "server"))
    phone["per_call_cores"] = max(0.0, phone["cores"] - idle) / args.callers
    video["consultation_cores"] = max(0.0, video["cores"] - idle)
    return {
        "workers": args.workers,
        "sip_ports": [args.sip_port, args.sip_port + args.workers - 1],
        "cpus": machine_cpus(),
        "idle_cores": idle,
        "idle_processes": group(idle_window, "server"),
        "idle_machine": machine(idle_window),
        "idle_loop_lag_ms": lag.worst_ms(idle_window["t0"], idle_window["t1"]),
        "generator_nice": args.generator_priority,
        "arrival": args.arrival,
        "start_seconds": round(started, 1),  # until every process answered (workers: registered)
        "settle_seconds": round(settled, 1),
        "seconds": args.seconds,
        "phone": phone,
        "video": video,
    }


def _pct(cores: float | None) -> str:
    return "gone" if cores is None else f"{cores * 100:.1f}"


def _machine(record: dict[str, Any], cpus: int, accounted: float) -> str:
    """The machine's busy share of a window, what other processes took, and what no process's time
    shows (interrupts, processes that came and went), after `accounted` cores of ours."""
    busy = record["busy_share"] * cpus
    others = record["other_processes"]
    line = f"machine busy {busy * 100:.0f} % of {cpus * 100} %"
    if record["steal_share"] >= 0.01:
        line += f" (hypervisor steal {record['steal_share'] * cpus * 100:.0f} % more)"
    if others:
        top = ", ".join(f"{name} {c * 100:.0f}" for name, c in list(others.items())[:3])
        line += f"; other processes {total(others) * 100:.0f} % ({top})"
    return line + f"; in no process's time {(busy - accounted - total(others)) * 100:.0f} %"


def _span(sizes: dict[int, int]) -> str:
    """'lo–hi' of the sizes that occurred (JSON keys may be strings), '–' when none did."""
    found = sorted(int(size) for size in sizes)
    return f"{found[0]}–{found[-1]}" if found else "–"


def _lag(worst_ms: float) -> None:
    """The load generator's event-loop lag in a window, and what it means for the figures."""
    print(f"  load generator's event loop: at most {worst_ms:.0f} ms late ({LAG_TICK * 1000:.0f} ms ticker)")
    if worst_ms > LAG_LIMIT_MS:
        print(f"  WARNING: this process's event loop lagged over {LAG_LIMIT_MS:.0f} ms: the load generator "
              "was starved; this window's gaps and frame counts are its own, not the server's")  # fmt: skip


def report(result: dict) -> None:
    phone, video, cpus = result["phone"], result["video"], result["cpus"]
    idle, per_call, per_video = result["idle_cores"], phone["per_call_cores"], video["consultation_cores"]
    gaps = [w["max_gap_ms"] for w in phone["advisors"]]
    workers, (first, last) = result["workers"], result["sip_ports"]
    each = ", ".join(f"{node} {_pct(c)}" for node, c in result["idle_processes"].items())
    print(f"server idle: {idle * 100:.1f} % of a core ({each})")
    print(f"  {_machine(result['idle_machine'], cpus, idle)}")
    _lag(result["idle_loop_lag_ms"])
    ports = f"127.0.0.1:{first}" + (f"-{last}" if last != first else "")
    print(f"\n{phone['callers']} simultaneous callers on {workers} process{'es' * (workers > 1)} "
          f"(SIP {ports}), {result['seconds']:.0f} s window:")  # fmt: skip
    frames = sum(w["frames"] for w in phone["advisors"])
    stamped = sum(w.get("kernel_stamped", 0) for w in phone["advisors"])
    if result.get("arrival") == "kernel":
        late = max((w.get("read_late_max_ms", 0.0) for w in phone["advisors"]), default=0.0)
        print(f"  arrival: the kernel's stamp at the advisor's socket ({stamped} of {frames} frames; the "
              f"advisors' loop read them up to {late:.0f} ms later)")  # fmt: skip
        if stamped < frames:
            print("  WARNING: frames without the kernel's stamp count when the loop read them")
    else:
        print("  arrival: when the advisor's event loop read the frame (--arrival loop)")
    print("  advisor  node         frames  silent  longest gap (ms)  gaps > 100 ms")
    for i, w in enumerate(phone["advisors"]):
        row = f"{w['frames']:>6}  {w['silent_frames']:>6}  {w['max_gap_ms']:>16.1f}"
        print(f"  {i:>7}  {w['node']:<11}  {row}  {w['gaps_over_limit']:>13}")
    verdict = "within" if max(gaps) <= GAP_LIMIT_MS else "OVER"
    over = sum(1 for g in gaps if g > GAP_LIMIT_MS)
    median = statistics.median(gaps)
    print(f"  longest gap at any advisor: {max(gaps):.1f} ms ({verdict} 100 ms), median {median:.1f} ms; "
          f"{over} of {len(gaps)} advisors had a gap > 100 ms")  # fmt: skip
    if phone["callers_ended_early"] or phone["workers_restarted"]:
        print(f"  WARNING: calls ended during the window: {phone['callers_ended_early']}; "
              f"workers started again: {phone['workers_restarted']}")  # fmt: skip
    each = ", ".join(f"{n} {_pct(c)} ({phone['calls_per_process'].get(n, 0)} calls)"
                     for n, c in phone["processes"].items())  # fmt: skip
    print(f"  server: {phone['cores'] * 100:.1f} % of a core in all, {per_call * 100:.1f} % per call above "
          f"idle; per process: {each}")  # fmt: skip
    ways = phone.get("bridged", {})
    print(f"  calls bridged: {ways.get('in this process', 0)} in their server process's media session, "
          f"{ways.get('over WebRTC', 0)} over WebRTC to another node")  # fmt: skip
    check = phone["tone_check"]
    sizes = check["sizes"]
    print(f"  tone by payload size (≥ {check['min_bytes']} bytes) vs. decoded (every {SAMPLE_EVERY}th frame) "
          f"{check['agreed']} of {check['checked']} agree ({check['share'] * 100:.1f} %); decoded sizes: "
          f"tone {_span(sizes['tone'])}, silent {_span(sizes['silent'])} bytes")  # fmt: skip
    bench, baresip = phone["load"]["bench_process"] or 0.0, total(phone["load"]["baresip"])
    print(f"  load generator (niceness {result.get('generator_nice', 0)}, the server 0): "
          f"this process (the {len(gaps)} aiortc advisors) {bench * 100:.1f} % of a core "
          f"({bench / len(gaps) * 100:.1f} % per advisor), {len(phone['load']['baresip'])} baresip "
          f"{baresip * 100:.1f} % in all")  # fmt: skip
    _lag(phone["loop_lag_ms"])
    print(f"  {_machine(phone['machine'], cpus, phone['cores'] + bench + baresip)}")
    hosts = ", ".join(video["hosted_on"])
    print(f"\nvideo consultation (2 × 640×480 VP8 + Opus, on {hosts}): {per_video * 100:.1f} % of a core "
          f"above idle ({video['cores'] * 100:.1f} % in all)")  # fmt: skip
    bench = video["load"]["bench_process"] or 0.0
    print(f"  received frames: {video['received']}; load generator (this process) {bench * 100:.1f} %")
    _lag(video["loop_lag_ms"])
    print(f"  {_machine(video['machine'], cpus, video['cores'] + bench)}")
    if any(video["errors"]):
        print(f"  errors: {video['errors']}")
    if per_video > 0:
        print(f"\nper phone call ÷ per video consultation: {per_call / per_video:.2f}")
    if per_call > 0 and phone["callers"] < 20:
        processes = math.ceil(20 / CALLS_PER_PROCESS)
        print(f"20 callers extrapolated: {20 * per_call:.2f} cores ({processes} processes of 4 calls)")


@contextlib.contextmanager
def paused_collections() -> Iterator[None]:
    """No garbage collection in this process (the load generator) while the block runs: collected
    and frozen before, collected after."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def raise_priority(nice: int) -> int:
    """Run the load generator (this process's threads and the baresip phones it starts from now on) at
    `nice`: ahead of the server (0) when negative, behind it when positive. By default they share the
    CPU equally (0): since the generator got light (1.4–1.8 % of a core per advisor) its loop mostly
    keeps up at equal priority (10–33 ms late in 6 of 7 20-caller runs, 106 ms once; a lag over
    LAG_LIMIT_MS is printed as a warning), while raised to −10 the generator's and the 20 phones'
    bursts took both cores from all five server processes at once (their loops 50–185 ms late while
    using 4–12 ms of CPU: waiting for a core, not working), gaps that were the benchmark's own.
    Returns the niceness in effect (0 when a raise is not allowed: not root)."""
    if nice == 0:
        return 0
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)  # Linux: this thread; threads and children inherit it
    except PermissionError:
        print(
            "note: not allowed to raise the load generator's priority; it shares the CPU equally",
            file=sys.stderr,
        )
        return 0
    return nice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=20, help="simultaneous callers [20]")
    parser.add_argument(
        "--workers", type=int, help="server processes, 4 calls each [callers ÷ 4, rounded up]; > 1: Redis"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window (each case)")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help=f"Redis for --workers > 1 [{DEFAULT_REDIS}]")
    parser.add_argument(
        "--generator-nice", type=int, default=0,
        help="niceness of the load generator (advisors, phones), the server at 0; negative: above it, "
        "positive: below it [0]",
    )  # fmt: skip
    parser.add_argument(
        "--arrival", choices=("kernel", "loop"), default="kernel",
        help="when a frame arrived at an advisor: the kernel's stamp at its socket, or when this "
        "process's event loop read it [kernel]",
    )  # fmt: skip
    args = parser.parse_args()
    if args.callers < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--callers and --workers must be at least 1")
    args.workers = args.workers or math.ceil(args.callers / CALLS_PER_PROCESS)
    if args.callers > CALLS_PER_PROCESS * args.workers:
        print(f"note: {args.callers} callers on {args.workers} process(es) of {CALLS_PER_PROCESS} calls: "
              "the calls beyond will be refused (486 Busy Here)", file=sys.stderr)  # fmt: skip
    speed = machine_speed()
    try:
        result = asyncio.run(main_async(args)) | {"machine_speed_seconds": speed}
    except RuntimeError as exc:
        sys.exit(f"phone benchmark failed: {exc}\n(server log: {RESULTS / 'phone-server.log'})")
    (RESULTS / "phone.json").write_text(json.dumps(result, indent=2))
    report(result)
    check = result["phone"]["tone_check"]
    if check["share"] < MIN_AGREEMENT:
        sys.exit(f"phone benchmark failed: the payload-size classification (≥ {TONE_MIN_BYTES} bytes: tone) "
                 f"agreed with the decoded frames in only {check['agreed']} of {check['checked']} sampled "
                 f"frames (< {MIN_AGREEMENT:.0%}): the gap figures above do not hold")  # fmt: skip


if __name__ == "__main__":
    main()
