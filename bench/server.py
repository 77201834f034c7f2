"""`sprechstunde serve` as a subprocess on loopback: one way to start the real server from benchmarks and
the browser tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


class ServerProcess:
    """The server with the demo account off and media announced on 127.0.0.1; optionally pinned to one
    core (`cpu`) so that its CPU time can be measured apart from the load."""

    def __init__(
        self,
        data_dir: Path,
        *extra_args: str,
        log_path: Path,
        port: int | None = None,
        cpu: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable, "-m", "sprechstunde", "serve", "--no-demo", "--host", "127.0.0.1",
            "--port", str(self.port), "--data-dir", str(data_dir), *extra_args,
        ]  # fmt: skip
        taskset = shutil.which("taskset") if cpu is not None else None
        if taskset:
            command = [taskset, "-c", str(cpu), *command]  # taskset execs: the pid stays the server's
        env = dict(os.environ, SPRECHSTUNDE_MEDIA_ADDRESSES="127.0.0.1", PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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
        """SIGINT first, so the server shuts down as an operator's Ctrl-C would."""
        interrupt(self.proc)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
