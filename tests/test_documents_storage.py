"""Documents at rest: chunk format, key rotation, retention across restarts, crash in mid-upload."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sprechstunde.documents import Actor, DocumentError, DocumentService, KeyRing, RoomRef
from sprechstunde.documents.crypto import HEADER, KEY_FILE, ChunkSealer, IntegrityError, read_blob
from sprechstunde.documents.service import STALE_SECONDS
from sprechstunde.store import SQLiteStore
from sprechstunde.store.lease import lease
from tests.browser_support import create_room, running_server

MB = 1024 * 1024
ADVISOR = Actor("staff", "berater", "advisor")
CITIZEN = Actor("participant", "t-abc", "citizen")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def chunks_of(data: bytes, size: int = 100_000):
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def seal(plain: bytes, key: bytes, chunk: int = 1024) -> bytes:
    sealer = ChunkSealer(key, chunk)
    pieces = [sealer.header]
    for offset in range(0, len(plain), 700):  # writes that do not line up with chunks
        pieces += sealer.write(plain[offset : offset + 700])
    return b"".join(pieces + [sealer.finish()])


def open_all(path: Path, key: bytes) -> bytes:
    return b"".join(piece for batch in read_blob(path, key, batch_bytes=4096) for piece in batch)


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 4096, 10_000])
def test_chunk_format_round_trip_and_damage(tmp_path, size):
    key = os.urandom(32)
    plain = os.urandom(size)
    blob = seal(plain, key)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    assert open_all(path, key) == plain
    sealed = 1024 + 16
    damaged = {"wrong key": (blob, os.urandom(32))}
    if size > 1024:
        damaged["cut at chunk boundary"] = (blob[: HEADER.size + sealed], key)
        h = HEADER.size
        swapped = blob[:h] + blob[h + sealed : h + 2 * sealed] + blob[h : h + sealed] + blob[h + 2 * sealed :]
        damaged["chunks swapped"] = (swapped, key)
    damaged["one byte cut"] = (blob[:-1], key)
    damaged["chunk appended"] = (blob + blob[HEADER.size : HEADER.size + sealed], key)
    for name, (data, use_key) in damaged.items():
        path.write_bytes(data)
        with pytest.raises(IntegrityError):
            open_all(path, use_key)
            pytest.fail(name)


def make_service(data_dir: Path, clock: Clock, store: SQLiteStore | None = None) -> DocumentService:
    store = store or SQLiteStore(data_dir / "sprechstunde.sqlite3", clock=clock)
    return DocumentService(store, data_dir, KeyRing(data_dir), clock=clock)


async def close(service: DocumentService) -> None:
    await service.close()
    await service._store.close()


async def test_retention_purges_after_n_days_and_survives_restarts(tmp_path):
    clock = Clock()
    room = RoomRef("room-1", "vhs", ends_at=clock.now + 3600)
    service = make_service(tmp_path, clock)
    await service.start(interval=None)
    photo = b"\xff\xd8\xff" + os.urandom(50_000)
    item = await service.upload(room, CITIZEN, "Formular.jpg", chunks_of(photo))
    link = await service.add_link(room, ADVISOR, "https://www.stadt-koeln.de/", "Stadt")
    await close(service)  # the server stops before the job is due

    clock.now += 3600 + 6.9 * 86400  # not yet: 7 days after the consultation ended
    service = make_service(tmp_path, clock)
    await service.start(interval=None)
    assert len(await service.list("room-1")) == 2
    await close(service)

    clock.now += 0.2 * 86400  # a fresh process finds the persisted job due at start-up
    service = make_service(tmp_path, clock)
    await service.start(interval=None)
    assert await service.list("room-1") == []
    assert list(service.blobs.rglob("*")) == [] or all(p.is_dir() for p in service.blobs.rglob("*"))
    with pytest.raises(DocumentError) as gone:
        await service.download("room-1", item["id"], ADVISOR)
    assert gone.value.status == 410
    audit = await service.audit_log()
    purged = [e for e in audit if e["action"] == "purge"]
    assert {e["document_id"] for e in purged} == {item["id"], link["id"]}
    assert all(e["actor"]["kind"] == "system" for e in purged)
    # The remaining record has no key and no name/URL any more (crypto-shredded), only ids and times.
    record = await service._store.get("doc", item["id"])
    assert record["state"] == "purged" and "key" not in record and "meta" not in record
    await close(service)

    clock.now += 91 * 86400  # metadata (90 days after the end) and audit entries (90 days old) go
    service = make_service(tmp_path, clock)
    await service.start(interval=None)
    assert await service._store.get("doc", item["id"]) is None
    assert await service.audit_log() == []
    assert await service._store.scan("doc-job") == []
    await close(service)


async def test_periodic_retention_run(tmp_path):
    clock = Clock()
    service = make_service(tmp_path, clock)
    await service.start(interval=0.05)
    room = RoomRef("room-2", "vhs", ends_at=clock.now)
    await service.upload(room, CITIZEN, "a.txt", chunks_of(b"hallo\n"))
    clock.now += 8 * 86400
    for _ in range(100):
        if not await service.list("room-2"):
            break
        await asyncio.sleep(0.02)
    assert await service.list("room-2") == []
    await close(service)


async def test_key_rotation_rewraps_without_reencrypting(tmp_path):
    clock = Clock(time.time())
    service = make_service(tmp_path, clock)
    content = b"%PDF-1.4\n" + os.urandom(200_000)
    item = await service.upload(RoomRef("r", "vhs", clock.now + 60), CITIZEN, "a.pdf", chunks_of(content))
    old_kid = service.keys.active_id
    blob_path = service.blobs / item["id"][:2] / item["id"]
    blob_before = hashlib.sha256(blob_path.read_bytes()).hexdigest()
    await close(service)

    result = subprocess.run(
        [sys.executable, "-m", "sprechstunde", "keys", "rotate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SPRECHSTUNDE_DOCUMENT_KEYS"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["previous"] == old_kid and report["active"] != old_kid
    assert report["rewrapped"] == 1 and report["retired"] == [old_kid]
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(json.loads(key_file.read_text())["keys"]) == [report["active"]]  # the old key is gone
    assert report["active"] not in result.stderr and "keys" not in result.stderr

    service = make_service(tmp_path, clock)
    record = await service._store.get("doc", item["id"])
    assert record["key"]["kid"] == report["active"]
    assert hashlib.sha256(blob_path.read_bytes()).hexdigest() == blob_before  # contents untouched
    download = await service.download("r", item["id"], ADVISOR)
    assert b"".join([piece async for piece in download.chunks]) == content
    assert (await service.list("r"))[0]["name"] == "a.pdf"
    await close(service)


async def test_running_server_picks_up_a_rotated_key(tmp_path):
    clock = Clock(time.time())
    service = make_service(tmp_path, clock)
    room = RoomRef("r", "vhs", clock.now + 60)
    first = await service.upload(room, CITIZEN, "a.txt", chunks_of(b"eins\n"))
    # Another process (the CLI) rotates while this one keeps running.
    other = DocumentService(SQLiteStore(tmp_path / "sprechstunde.sqlite3"), tmp_path, KeyRing(tmp_path))
    new_kid = other.keys.add_file_key()
    await other.rewrap()
    other.keys.drop_file_keys(other.keys.ids() - {new_kid})
    await close(other)
    clock.now += 1
    second = await service.upload(room, CITIZEN, "b.txt", chunks_of(b"zwei\n"))
    assert (await service._store.get("doc", second["id"]))["key"]["kid"] == new_kid
    assert [i["name"] for i in await service.list("r")] == ["a.txt", "b.txt"]
    download = await service.download("r", first["id"], ADVISOR)
    assert b"".join([piece async for piece in download.chunks]) == b"eins\n"
    await close(service)


async def test_restart_after_crash_between_rename_and_metadata(tmp_path):
    clock = Clock(time.time())
    service = make_service(tmp_path, clock)
    orphan = service.blobs / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir()
    orphan.write_bytes(b"ciphertext without a record")
    (service.tmp / "cd.part").write_bytes(b"half")
    assert await service.recover() == {"temp_files": 1, "orphan_blobs": 1}
    assert not orphan.exists() and list(service.tmp.iterdir()) == []
    await close(service)


async def test_nodes_sharing_the_data_directory_leave_each_others_uploads_alone(tmp_path):
    clock = Clock(time.time())
    first = make_service(tmp_path, clock)
    await close(first)
    service = DocumentService(SQLiteStore(tmp_path / "sprechstunde.sqlite3"), tmp_path, KeyRing(tmp_path),
                              clock=clock, node="n1")  # fmt: skip
    mine = service.tmp / "n1.ab.part"  # this node's upload when it crashed
    theirs = service.tmp / "n2.cd.part"  # node 2 is uploading right now
    forgotten = service.tmp / "n3.ef.part"  # node 3 died long ago
    fresh_blob = service.blobs / "ab" / ("ab" + "1" * 30)  # node 2 renamed it a moment ago
    old_blob = service.blobs / "ab" / ("ab" + "2" * 30)
    fresh_blob.parent.mkdir()
    for path in (mine, theirs, forgotten, fresh_blob, old_blob):
        path.write_bytes(b"x")
    long_ago = time.time() - STALE_SECONDS - 60
    for path in (forgotten, old_blob):
        os.utime(path, (long_ago, long_ago))
    assert await service.recover() == {"temp_files": 2, "orphan_blobs": 1}
    assert sorted(p.name for p in service.tmp.iterdir()) == ["n2.cd.part"] and fresh_blob.exists()
    await close(service)


async def test_only_one_node_runs_the_retention_jobs_at_a_time(tmp_path):
    clock = Clock()
    service = make_service(tmp_path, clock)
    room = RoomRef("room-1", "vhs", ends_at=clock.now + 3600)
    await service.upload(room, CITIZEN, "Formular.txt", chunks_of(b"Hallo\n"))
    clock.now += 3600 + 8 * 86400
    async with lease(service._store, "document-retention", "other-node", 60) as held:
        assert held
        assert (await service.run_due())["purged"] == 0  # the other node holds the lease
    assert (await service.run_due())["purged"] == 1
    await close(service)


def _slow_upload(port: int, room: dict, size: int) -> socket.socket:
    token = room["citizen_url"].rsplit("/join/", 1)[1]
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /api/rooms/{room['room_id']}/documents HTTP/1.1\r\nHost: x\r\nX-Join-Token: {token}\r\n"
        f"X-File-Name: gross.pdf\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"%PDF-1.4\n" + os.urandom(3 * MB))
    return sock


def test_server_killed_in_mid_upload_leaves_nothing_behind(tmp_path):
    with running_server(tmp_path) as server:
        room = create_room(server)
        sock = _slow_upload(server["port"], room, 20 * MB)
        tmp_dir = tmp_path / "documents" / "tmp"
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size > 0 for p in tmp_dir.iterdir()):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
        os.kill(server["process"].pid, signal.SIGKILL)  # no clean-up code runs
        server["process"].wait(timeout=10)
        sock.close()
        assert [p.suffix for p in tmp_dir.iterdir()] == [".part"]  # half-written, only as a temp file
    with running_server(tmp_path) as server:  # restart on the same data directory
        assert list(tmp_dir.iterdir()) == []
        assert [p for p in (tmp_path / "documents" / "blobs").rglob("*") if p.is_file()] == []
        assert "unfinished upload" in Path(server["log"]).read_text()


def test_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.documents", "--sizes", "1", "--repeat", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert all(run[kind]["mbps"] > 0 for kind in ("raw", "disk", "service", "http"))
