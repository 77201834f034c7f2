"""`sprechstunde serve --workers N`: use every core of one machine with one command.

One asyncio process uses about one core. With `--workers N` (and `--redis`, which the processes share)
this process serves the public port as node `<id>` and starts N-1 more `serve` processes on loopback ports
as nodes `<id>-w1` … They divide the consultations among themselves (signaling/nodes.py: a room goes to
the least-loaded node); a browser whose room runs on another worker is redirected to `/ws?node=…`, which
this process relays to that worker (web/core/relay.py), while media flows between browser and worker directly.
A worker that exits is started again; stopping this process stops them all.

With `--sip-listen H:P` every process has a phone line of its own (the pjsua2 wheel holds 4 calls per
process): process k (0 is this one) listens on H:P+k, with TLS on T+k (T: --sip-tls-port, default P+N);
the PBX puts all of them in its trunk (hunt) group. Each process bridges its callers over its own /ws and
pins their rooms to itself (web/core/phone.py, signaling/nodes.py `pin_here`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sprechstunde.phone.sip import parse_listen

if TYPE_CHECKING:
    from sprechstunde.web.core.config import Config

log = logging.getLogger(__name__)

RESTART_PAUSE = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class SipPorts:
    """The SIP ports of `serve --workers N --sip-listen H:P`: process k (0: the first) listens on P+k
    (UDP and TCP) and, with a TLS certificate, on tls+k."""

    host: str
    port: int
    count: int
    tls: int | None = None  # the first process's TLS port; None: no SIP over TLS

    @classmethod
    def of(cls, config: Config) -> SipPorts | None:
        """From the settings (None without --sip-listen); ValueError when a port would not exist or
        the TLS ports would overlap the others."""
        if not config.sip_listen:
            return None
        host, port = parse_listen(config.sip_listen)
        count = config.workers
        if port + count - 1 > 65535:
            raise ValueError(
                f"--sip-listen {config.sip_listen} with --workers {count} needs the ports {port}-"
                f"{port + count - 1}, beyond 65535: choose a lower port"
            )
        tls = None
        if config.sip_tls_cert and config.sip_tls_key:
            tls = config.sip_tls_port or port + count
            if tls + count - 1 > 65535:
                raise ValueError(f"SIP over TLS with --workers {count} needs the ports {tls}-"
                                 f"{tls + count - 1}, beyond 65535: set a lower --sip-tls-port")  # fmt: skip
            if tls < port + count and port < tls + count:
                raise ValueError(
                    f"--sip-tls-port {tls}: the TLS ports {tls}-{tls + count - 1} overlap the SIP "
                    f"ports {port}-{port + count - 1}"
                )
        return cls(host, port, count, tls)

    def listen(self, k: int) -> str:
        """The `--sip-listen` value of process k."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port + k}"

    def tls_port(self, k: int) -> int | None:
        return None if self.tls is None else self.tls + k

    def summary(self) -> str:
        """One line for the operator: the ports the PBX's trunk group must hold."""
        host = self.listen(0).rsplit(":", 1)[0]
        ports = str(self.port) if self.count == 1 else f"{self.port}-{self.port + self.count - 1}"
        line = f"SIP: {self.count} process{'es' if self.count > 1 else ''} on {host}:{ports}"
        if self.tls is not None:
            tls = str(self.tls) if self.count == 1 else f"{self.tls}-{self.tls + self.count - 1}"
            line += f" (TLS {tls})"
        if self.count > 1:
            line += " — put all in the PBX's trunk group"
        return line


@dataclass
class Worker:
    node_id: str
    port: int
    command: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0


@dataclass
class Workers:
    """The extra worker processes of `serve --workers N` (this process is the first)."""

    workers: list[Worker] = field(default_factory=list)
    sip: SipPorts | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    @classmethod
    def plan(
        cls, argv: list[str], count: int, node_id: str, public_url: str, sip: SipPorts | None = None
    ) -> Workers:
        """N-1 worker commands: this command line, with a loopback port, a node id and the public URL
        (so redirects point through this process) of their own, and no demo account; with a phone
        line, its own SIP port (and TLS port). Flags given last win over argv's and the environment's."""
        made = cls(sip=sip)
        for k in range(1, count):
            port = free_port()
            worker_id = f"{node_id}-w{k}"
            command = [
                sys.executable, "-m", "sprechstunde", *argv,
                "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
                "--node-id", worker_id, "--base-url", public_url, "--no-demo",
            ]  # fmt: skip
            if sip is not None:
                command += ["--sip-listen", sip.listen(k)]
                tls = sip.tls_port(k)
                if tls is not None:
                    command += ["--sip-tls-port", str(tls)]
            made.workers.append(Worker(worker_id, port, command))
        return made

    def start(self) -> None:
        if self.sip is not None and self.sip.count > 1:
            log.info("%s", self.sip.summary())
        if not self.workers:
            return  # --workers 1: this process alone
        for worker in self.workers:
            self._spawn(worker)
        self._watcher = threading.Thread(target=self._watch, name="workers", daemon=True)
        self._watcher.start()

    def _spawn(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(worker.command, preexec_fn=_die_with_parent)
        pid = worker.process.pid
        log.info("worker %s started on 127.0.0.1:%d (pid %d)", worker.node_id, worker.port, pid)

    def _watch(self) -> None:
        while not self._stopping.wait(RESTART_PAUSE):
            for worker in self.workers:
                process = worker.process
                if process is not None and process.poll() is not None and not self._stopping.is_set():
                    worker.restarts += 1
                    code = process.returncode
                    log.warning("worker %s exited with %s; starting it again", worker.node_id, code)
                    self._spawn(worker)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT to every worker (a clean shutdown: they sign off, their rooms move), then wait."""
        self._stopping.set()
        running = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers if w.process is not None]


def worker_count(value: str) -> int:
    """`--workers` as given: a number ≥ 1, or `auto` (one per core)."""
    if value == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number of processes ≥ 1 nor 'auto'")
    return count


def _die_with_parent() -> None:
    """In the worker, before it runs: end with SIGTERM when this process dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
