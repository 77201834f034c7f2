"""A real SIP caller for the phone tests: Debian's baresip, driven through its UDP console (module cons),
sending a WAV file as the caller's voice (module aufile) and recording what it hears (module sndfile)."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import struct
import subprocess
import wave
from pathlib import Path

from bench.server import free_udp_and_tcp_port


def tone_wav(path: Path, frequency: float, seconds: float, rate: int = 8000, amplitude: int = 8000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (
            int(amplitude * math.sin(2 * math.pi * frequency * i / rate)) for i in range(int(rate * seconds))
        )
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def goertzel(samples: list[int] | tuple[int, ...], rate: int, frequency: float) -> float:
    """Power at `frequency` relative to the total power (0..1): 'is this a tone of that pitch'."""
    if not samples:
        return 0.0
    k = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    total = sum(x * x for x in samples) * len(samples) / 2
    return power / total if total else 0.0


def read_wav(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path), "rb") as w:
        data = w.readframes(w.getnframes())
        return list(struct.unpack(f"<{len(data) // 2}h", data)), w.getframerate()


class Baresip:
    """One baresip process as a caller with the number `user`."""

    def __init__(
        self, workdir: Path, user: str = "4921511234", source: Path | None = None, password: str | None = None
    ):
        if shutil.which("baresip") is None:
            raise RuntimeError("baresip is not installed (./run test installs it)")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.records = self.dir / "rec"
        self.records.mkdir(exist_ok=True)
        self.console = free_udp_and_tcp_port()  # module cons listens on UDP and TCP
        # aufile ends the call at the end of the file: two minutes of silence unless a voice is given
        source = source or tone_wav(self.dir / "silence.wav", 0, 120, amplitude=0)
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{free_udp_and_tcp_port()}",
                    "net_interface 127.0.0.1",
                    f"audio_source aufile,{source}",
                    f"audio_alert aufile,{source}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module sndfile.so",
                    "module cons.so",
                    "module_app account.so",
                    "module_app menu.so",
                    f"snd_path {self.records}",
                    f"cons_listen 127.0.0.1:{self.console}",
                    "audio_buffer 20-160",
                    "rtp_ports 30000-39999",
                    "",
                ]
            )
        )
        auth = f";auth_user={user};auth_pass={password}" if password else ""
        (self.dir / "accounts").write_text(f"<sip:{user}@127.0.0.1>;regint=0{auth};audio_codecs=PCMA,PCMU\n")
        self.log = (self.dir / "baresip.log").open("wb")
        self.process = subprocess.Popen(
            ["baresip", "-f", str(self.dir)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def keys(self, text: str) -> None:
        self._socket.sendto(text.encode(), ("127.0.0.1", self.console))

    async def ready(self, timeout: float = 10.0) -> None:
        for _ in range(int(timeout * 20)):
            if b"baresip is ready" in (self.dir / "baresip.log").read_bytes():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("baresip did not start")

    async def dial(self, uri: str) -> None:
        await self.ready()
        self.keys(f"/dial {uri}\n")

    async def established(self, timeout: float = 10.0) -> None:
        for _ in range(int(timeout * 20)):
            if b"Call established" in (self.dir / "baresip.log").read_bytes():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the call was not established:\n" + self.text())

    async def press(self, digits: str, gap: float = 0.4) -> None:
        for digit in digits:
            self.keys(digit)
            await asyncio.sleep(gap)

    def hangup(self) -> None:
        self.keys("b")

    def text(self) -> str:
        return (self.dir / "baresip.log").read_text(errors="replace")

    def heard(self) -> Path | None:
        """The WAV of what the caller heard (sndfile's decode dump)."""
        found = sorted(self.records.glob("*-dec.wav"))
        return found[-1] if found else None

    def close(self) -> None:
        if self.process.poll() is None:
            self.keys("q")
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(3)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        self.log.close()
        self._socket.close()
