"""`sprechstunde serve` as a subprocess on loopback: one way to start the real server from benchmarks and
the browser tests, and the benchmarks' reference programs (Janus, the bare relay) the same way."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port the kernel has just found free for `kind` (TCP unless told)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def bindable(port: int, *kinds: int) -> bool:
    """Whether `port` can be bound on loopback right now by a socket of each of `kinds`."""
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_udp_and_tcp_port(avoid: tuple[int, ...] = ()) -> int:
    """A loopback port free for UDP and for TCP, for servers that listen on both (SIP, coturn). The kernel
    hands the same numbers to both protocols, and a local client connection may hold the TCP one: coturn
    then retries that bind once a second for a minute, answering nothing on UDP meanwhile."""
    port = free_udp_port()
    while port in avoid or not bindable(port, socket.SOCK_STREAM):
        port = free_udp_port()
    return port


def machine_speed() -> float:
    """Seconds one core of this machine takes for `sum(range(10**8))` right now, printed (and returned for
    the JSON) first by the benchmarks whose figures are absolute times. On the shared 2-core VMs here the
    same code runs up to twice as fast in one hour as in another (1.3 s on 2026-12-07 afternoon, 2.1–3.1 s
    that morning: docs/benchmarks.md, docs/phone.md); compare figures taken at about the same speed."""
    started = time.perf_counter()
    sum(range(10**8))
    seconds = round(time.perf_counter() - started, 2)
    line = f"machine speed: sum(range(10**8)) took {seconds:g} s on one core (compare runs of about the same)"
    print(line, flush=True)
    return seconds


def interrupt(proc: subprocess.Popen) -> None:
    """Stop a server process as an operator's Ctrl-C would (SIGINT), and SIGKILL it if it has not ended
    within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PinnedProcess:
    """A program of a benchmark or test as a subprocess in its own session, its output in `log_path`,
    optionally pinned to one core (`cpu`; its threads inherit the affinity, so its CPU time can be read
    apart from the load's)."""

    url = ""  # http://… of a process that answers GET /healthz (`wait_healthy`)

    def __init__(
        self,
        command: list[str],
        *,
        log_path: Path,
        cpu: int | None = None,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.log_path = log_path
        command = [*prefix, *command]  # e.g. valgrind (bench/signaling_cost.py)
        taskset = shutil.which("taskset") if cpu is not None else None
        if taskset:
            command = [taskset, "-c", str(cpu), *command]  # taskset execs: the pid stays the program's
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if cpu is not None and not taskset:
            os.sched_setaffinity(self.proc.pid, {cpu})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until GET /healthz answers 200; RuntimeError (with the log) if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer /healthz within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGINT first, as an operator's Ctrl-C would stop it (SIGKILL after 10 s)."""
        interrupt(self.proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


class ServerProcess(PinnedProcess):
    """`sprechstunde serve` with the demo account off and media announced on 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        *extra_args: str,
        log_path: Path,
        port: int | None = None,
        cpu: int | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "sprechstunde", "serve", "--no-demo", "--host", "127.0.0.1",
            "--port", str(self.port), "--data-dir", str(data_dir), *extra_args,
        ]  # fmt: skip
        env = dict(os.environ, SPRECHSTUNDE_MEDIA_ADDRESSES="127.0.0.1", PYTHONUNBUFFERED="1")
        super().__init__(command, log_path=log_path, cpu=cpu, env=env, prefix=prefix)
