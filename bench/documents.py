"""Document upload throughput and memory: upload + encrypt + store, next to raw AES-GCM in the same run.

For each file size (default 1, 25 and 200 MB) it measures, each in a fresh process:

- raw      cryptography's AES-256-GCM over the same 64 KiB chunks, in memory, one thread (the ceiling)
- disk     writing the same number of bytes to a file in the data directory plus fsync (the storage floor
           under any upload, since we fsync before a document counts as stored)
- service  DocumentService.upload() from an async stream: sniffing, chunked encryption in the crypto
           thread, temp file, fsync, rename, metadata record
- http     the same through `sprechstunde serve` over loopback: POST /api/rooms/{id}/documents with the
           body streamed from this process; peak RSS (VmHWM) of the server process before and after

    .venv/bin/python -m bench.documents [--sizes 1,25,200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
PIECE = 256 * 1024
CHUNK = 64 * 1024


def vm_hwm(pid: int | str = "self") -> float:
    """Peak resident set size of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _piece() -> bytes:
    return b"%PDF-1.7\n" + os.urandom(PIECE - 9)


async def _stream(size: int, piece: bytes):
    sent = 0
    while sent < size:
        n = min(PIECE, size - sent)
        yield piece[:n] if n < PIECE else piece
        sent += n


def raw_aesgcm(size: int) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(os.urandom(32))
    data = os.urandom(CHUNK)
    nonce, aad = os.urandom(12), b"x" * 22
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(size // CHUNK):
            aead.encrypt(nonce, data, aad)
        best = max(best, size / MB / (time.perf_counter() - start))
    return best


def disk(size: int, directory: Path) -> float:
    piece = os.urandom(PIECE)
    path = directory / "disk-baseline"
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    while written < size:
        written += os.write(fd, piece[: min(PIECE, size - written)])
    os.fsync(fd)
    os.close(fd)
    elapsed = time.perf_counter() - start
    path.unlink()
    return size / MB / elapsed


async def service_upload(size: int, directory: Path) -> dict:
    from sprechstunde.documents import Actor, DocumentService, KeyRing, RoomRef
    from sprechstunde.documents.records import Limits
    from sprechstunde.store import SQLiteStore

    store = SQLiteStore(directory / "bench.sqlite3")
    service = DocumentService(store, directory, KeyRing(directory), limits=Limits(1 << 40, 1 << 40))
    piece = _piece()
    before = vm_hwm()
    start = time.perf_counter()
    await service.upload(
        RoomRef("bench", "vhs", time.time() + 3600), Actor("system", "b", "b"), "b.pdf", _stream(size, piece)
    )
    elapsed = time.perf_counter() - start
    peak = vm_hwm()
    await service.close()
    await store.close()
    return {"mbps": size / MB / elapsed, "rss_before": before, "rss_peak": peak}


async def http_upload(size: int, directory: Path) -> dict:
    import aiohttp

    limit = str(max(256, size // MB + 1))
    server = ServerProcess(
        directory, "--max-file-mb", limit, "--max-room-mb", limit, "--log-level", "warning",
        log_path=directory / "server.log",
    )  # fmt: skip
    base = server.url
    try:
        server.wait_healthy(timeout=20)
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "sprechstunde",
                "room",
                "create",
                "--office",
                "vhs",
                "--data-dir",
                str(directory),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        room = json.loads(created.stdout)
        token = room["citizen_url"].rsplit("/join/", 1)[1]
        before = vm_hwm(server.pid)
        piece = _piece()
        headers = {
            "X-Join-Token": token,
            "X-File-Name": "b.pdf",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        async with aiohttp.ClientSession() as session:
            start = time.perf_counter()
            async with session.post(
                f"{base}/api/rooms/{room['room_id']}/documents", headers=headers, data=_stream(size, piece)
            ) as response:
                body = await response.json()
            elapsed = time.perf_counter() - start
        if response.status != 201:
            raise RuntimeError(f"upload failed: {response.status} {body}")
        peak = vm_hwm(server.pid)
        return {"mbps": size / MB / elapsed, "rss_before": before, "rss_peak": peak}
    finally:
        server.stop()


def child(kind: str, size_mb: int) -> None:
    size = size_mb * MB
    with tempfile.TemporaryDirectory(prefix="bench-documents-", dir=os.environ.get("BENCH_TMP")) as tmp:
        directory = Path(tmp)
        if kind == "raw":
            result = {"mbps": raw_aesgcm(size)}
        elif kind == "disk":
            result = {"mbps": disk(size, directory)}
        elif kind == "service":
            result = asyncio.run(service_upload(size, directory))
        else:
            result = asyncio.run(http_upload(size, directory))
    print(json.dumps(result))


def measure(kind: str, size_mb: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.documents", "--child", kind, str(size_mb)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} {size_mb} MB failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,25,200", help="file sizes in MB [1,25,200]")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is shown [3]")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "MB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    rows = []
    header = (
        f"{'size':>6} {'raw AES-GCM':>12} {'disk+fsync':>11} {'service':>9} {'%raw':>5} "
        f"{'http':>8} {'%raw':>5} {'%disk':>6} {'service RSS':>14} {'server RSS':>14}"
    )
    print(header)
    print(
        " " * 7 + f"{'MB/s':>12} {'MB/s':>11} {'MB/s':>9} {'':>5} {'MB/s':>8} {'':>5} {'':>6} "
        f"{'before→peak MB':>14} {'before→peak MB':>14}"
    )
    for size_mb in (int(s) for s in args.sizes.split(",")):
        figures = {}
        for kind in ("raw", "disk", "service", "http"):
            runs = [measure(kind, size_mb) for _ in range(args.repeat)]
            figures[kind] = max(runs, key=lambda r: r["mbps"]) | {"all_mbps": [r["mbps"] for r in runs]}
            if "rss_peak" in runs[0]:
                figures[kind]["rss_peak_max"] = max(r["rss_peak"] for r in runs)
        raw, dsk, svc, http = (figures[k] for k in ("raw", "disk", "service", "http"))
        share = (
            100 * svc["mbps"] / raw["mbps"],
            100 * http["mbps"] / raw["mbps"],
            100 * http["mbps"] / dsk["mbps"],
        )
        rss = (svc["rss_before"], svc["rss_peak_max"], http["rss_before"], http["rss_peak_max"])
        print(
            f"{size_mb:>4}MB {raw['mbps']:>12.0f} {dsk['mbps']:>11.0f} {svc['mbps']:>9.0f} {share[0]:>4.0f}% "
            f"{http['mbps']:>8.0f} {share[1]:>4.0f}% {share[2]:>5.0f}% "
            f"{rss[0]:>6.0f}→{rss[1]:<7.0f} {rss[2]:>6.0f}→{rss[3]:<7.0f}",
            flush=True,
        )
        rows.append({"size_mb": size_mb, **figures})
    if args.json:
        args.json.write_text(json.dumps({"runs": rows}, indent=2))


if __name__ == "__main__":
    main()
