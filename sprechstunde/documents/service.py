"""Documents and links shared in a consultation room: encrypted blobs, metadata, audit and retention.
(Over 500 lines: upload, download, delete and retention share the room locks, the quota reservations
and the blob paths of one class; its records are in records.py, the sealed bytes on disk in blobs.py.)

Blobs are files under `<data dir>/documents/blobs/`, named by a random document id (never by anything a
client sent). Everything else — metadata, audit entries, retention jobs — is small JSON records in the
storage port, so the Redis adapter covers them too:

    doc        <document id>        one file or link (its display name / URL encrypted with its own key)
    doc-audit  <µs timestamp>-<rnd> upload, link, download, delete, purge, integrity_failure, forget
    doc-job    purge.<room id>      delete the room's contents `retention_days` after the consultation ends
    doc-job    forget.<room id>     delete the room's metadata `metadata_days` after the consultation ends

An upload is written to `documents/tmp/`, fsynced and renamed into place; the metadata record is written
last, so a crash at any point leaves either a complete document or nothing (start-up removes stray temp
files and blobs without a record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sprechstunde.documents.blobs import BlobFile, fsync_dir, open_meta, seal_meta
from sprechstunde.documents.crypto import (
    DEFAULT_CHUNK,
    IntegrityError,
    KeyRing,
    ciphertext_size,
    new_document_key,
    read_blob,
)
from sprechstunde.documents.formats import ACCEPT, TYPES, UnsupportedType, display_name
from sprechstunde.documents.records import (
    MB,
    SYSTEM,
    Actor,
    DocumentError,
    Download,
    Limits,
    RoomRef,
    validate_link,
)
from sprechstunde.store.lease import lease
from sprechstunde.store.port import Store
from sprechstunde.tasks import Periodic

log = logging.getLogger(__name__)

DOC_KIND = "doc"
AUDIT_KIND = "doc-audit"
JOB_KIND = "doc-job"
DAY = 86400.0
# several nodes on one data directory: an upload untouched this long is debris, not another node's work
STALE_SECONDS = 600.0
# longer than one retention run; a node that dies holding it delays the job by at most this
RETENTION_LEASE_SECONDS = 300.0
BATCH_BYTES = 1 * MB  # plaintext handed to the crypto thread at once
RESERVE_STEP = 4 * MB  # room quota reserved at a time while an upload of unknown size streams in

Notify = Callable[[str, dict[str, Any]], Awaitable[Any]]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _removed(document_id: str, reason: str) -> dict[str, Any]:
    return {"type": "document-removed", "document_id": document_id, "reason": reason}


class DocumentService:
    """Upload, list, download and delete a room's documents and links; retention and audit."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        keys: KeyRing,
        *,
        limits: Limits | None = None,
        retention_days: float = 7,
        metadata_days: float = 90,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        workers: int = 2,
        node: str | None = None,
    ) -> None:
        self._store = store
        # None: this process alone uses the data directory. A node name: several nodes share it (on
        # Redis), so start-up removes only this node's unfinished uploads and whatever is stale.
        self.node = node
        self._prefix = re.sub(r"[^A-Za-z0-9_-]", "_", node or "local") + "."
        self.keys = keys
        self.limits = limits or Limits()
        self.retention = retention_days * DAY
        self.metadata_retention = metadata_days * DAY
        self._clock = clock
        self.notify = notify
        self._chunk = chunk_size
        self.root = data_dir / "documents"
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        for path in (self.root, self.blobs, self.tmp):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="documents")
        self._inflight: dict[str, int] = {}
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._rounds: Periodic | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self, interval: float | None = 600.0) -> None:
        """Clean up after a crash, run due retention jobs, then keep running them every `interval` s."""
        await self.recover()
        await self.run_due()
        if interval and self._rounds is None:
            self._rounds = Periodic("document retention run", self.run_due, interval)
            self._rounds.start(run_first=False)

    async def close(self) -> None:
        if self._rounds is not None:
            await self._rounds.close()
            self._rounds = None
        self._executor.shutdown(wait=True)

    async def recover(self) -> dict[str, int]:
        """Remove half-written uploads and blobs whose metadata record was never written. With several
        nodes on one data directory another node may be uploading right now: then only this node's own
        leftovers and files untouched for STALE_SECONDS count as debris."""
        stale_before = time.time() - STALE_SECONDS

        def debris(path: Path, own: bool) -> bool:
            return self.node is None or own or path.stat().st_mtime < stale_before

        stray = 0
        for path in self.tmp.iterdir():
            if debris(path, path.name.startswith(self._prefix)):
                path.unlink(missing_ok=True)
                stray += 1
        live = {key for key, record in await self._store.scan(DOC_KIND) if record.get("state") == "active"}
        orphans = 0
        for bucket in self.blobs.iterdir():
            for path in bucket.iterdir():
                if path.name not in live and debris(path, own=False):
                    path.unlink(missing_ok=True)
                    orphans += 1
        if stray or orphans:
            log.warning("documents: removed %d unfinished upload(s) and %d orphan blob(s)", stray, orphans)
        return {"temp_files": stray, "orphan_blobs": orphans}

    # ------------------------------------------------------------------ helpers

    def _blob_path(self, document_id: str) -> Path:
        return self.blobs / document_id[:2] / document_id

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _lock(self, room_id: str) -> asyncio.Lock:
        return self._room_locks.setdefault(room_id, asyncio.Lock())

    async def audit(self, action: str, actor: Actor, room_id: str, document_id: str | None) -> None:
        """Who did what to which document id, when — never a name, URL or content."""
        now = self._clock()
        entry = {
            "at": _iso(now),
            "ts": now,
            "action": action,
            "room_id": room_id,
            "document_id": document_id,
            "actor": actor.as_json(),
        }
        key = f"{int(now * 1e6):017d}-{secrets.token_hex(4)}"
        await self._store.put(AUDIT_KIND, key, entry)

    async def audit_log(self) -> list[dict[str, Any]]:
        return [record for _, record in await self._store.scan(AUDIT_KIND)]

    async def _records(self, room_id: str) -> list[dict[str, Any]]:
        return [r for _, r in await self._store.scan(DOC_KIND) if r.get("room_id") == room_id]

    async def used_bytes(self, room_id: str) -> int:
        records = await self._records(room_id)
        return sum(r.get("size", 0) for r in records if r.get("state") == "active" and r["type"] == "file")

    async def _schedule(self, room: RoomRef) -> None:
        for action, delay in (("purge", self.retention), ("forget", self.metadata_retention)):
            job = {"action": action, "room_id": room.room_id, "due_at": room.ends_at + delay}
            await self._store.create(JOB_KIND, f"{action}.{room.room_id}", job)

    def _public(self, record: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        item = {
            "id": record["id"],
            "type": record["type"],
            "created_at": _iso(record["created_at"]),
            "uploader_role": record["owner_role"],
            "owner_tag": record["owner_tag"],
        }
        if record["type"] == "file":
            item |= {"name": meta["name"], "size": record["size"], "mime": TYPES[record["file_type"]].mime}
        else:
            item |= {"url": meta["url"], "host": meta["host"], "title": meta["title"]}
        return item

    async def _publish(self, room_id: str, message: dict[str, Any]) -> None:
        if self.notify is None:
            return
        try:
            await self.notify(room_id, message)
        except Exception:
            log.exception("documents: could not notify room %s", room_id)

    # ------------------------------------------------------------------ reading

    async def list(self, room_id: str) -> list[dict[str, Any]]:
        items = []
        records = sorted(await self._records(room_id), key=lambda r: (r["created_at"], r["id"]))
        for record in records:
            if record.get("state") != "active":
                continue
            try:
                key = self.keys.unwrap(record["id"], record["key"])
                items.append(self._public(record, open_meta(key, record["id"], record["meta"])))
            except Exception:
                log.error("documents: metadata of %s cannot be decrypted; left out of the list", record["id"])
        return items

    def info(self) -> dict[str, Any]:
        return {
            "max_file_bytes": self.limits.max_file_bytes,
            "max_room_bytes": self.limits.max_room_bytes,
            "accept": ACCEPT,
        }

    async def _active(self, room_id: str, document_id: str) -> dict[str, Any]:
        record = await self._store.get(DOC_KIND, document_id) if len(document_id) <= 64 else None
        if record is None or record.get("room_id") != room_id:
            raise DocumentError("not_found", "this document does not exist", 404)
        if record.get("state") != "active":
            raise DocumentError("gone", "this document has been deleted", 410)
        return record

    async def check_file(self, room_id: str, document_id: str) -> None:
        """DocumentError unless `document_id` is a live file of this room."""
        record = await self._active(room_id, document_id)
        if record["type"] != "file":
            raise DocumentError("not_a_file", "links are opened, not downloaded", 400)

    async def download(self, room_id: str, document_id: str, actor: Actor) -> Download:
        """Verify the whole blob, then stream it; IntegrityError-based DocumentError if it is damaged."""
        record = await self._active(room_id, document_id)
        if record["type"] != "file":
            raise DocumentError("not_a_file", "links are not downloaded", 400)
        path = self._blob_path(document_id)
        try:
            key = self.keys.unwrap(document_id, record["key"])
            name = open_meta(key, document_id, record["meta"])["name"]
            expected = ciphertext_size(record["size"], record["chunk_size"])
            actual = path.stat().st_size
            if actual != expected:
                raise IntegrityError(f"blob has {actual} bytes, expected {expected} (truncated or extended)")
            await self._run(self._verify, path, key)
        except (IntegrityError, FileNotFoundError) as exc:
            await self._damaged(record, actor, exc)
        await self.audit("download", actor, room_id, document_id)
        return Download(
            document_id=document_id,
            name=name,
            mime=TYPES[record["file_type"]].mime,
            size=record["size"],
            chunks=self._stream(record, path, key, actor),
        )

    @staticmethod
    def _verify(path: Path, key: bytes) -> None:
        for _ in read_blob(path, key):
            pass

    async def _damaged(self, record: dict[str, Any], actor: Actor, exc: Exception) -> None:
        reason = "blob missing" if isinstance(exc, FileNotFoundError) else str(exc)
        log.error("documents: integrity check failed for document %s: %s", record["id"], reason)
        await self.audit("integrity_failure", actor, record["room_id"], record["id"])
        raise DocumentError(
            "document_damaged",
            "the stored document is damaged or incomplete and cannot be delivered",
            500,
        ) from None

    async def _stream(
        self, record: dict[str, Any], path: Path, key: bytes, actor: Actor
    ) -> AsyncIterator[bytes]:
        batches = read_blob(path, key)
        done = object()
        while True:
            try:
                batch = await self._run(next, batches, done)
            except IntegrityError as exc:  # changed between verification and streaming
                await self._damaged(record, actor, exc)
            if batch is done:
                return
            for piece in batch:
                yield piece

    # ------------------------------------------------------------------ writing

    async def upload(
        self,
        room: RoomRef,
        actor: Actor,
        filename: str | None,
        chunks: AsyncIterable[bytes],
        declared_size: int | None = None,
    ) -> dict[str, Any]:
        """Encrypt and store a stream; never holds more than ~2 batches of it in memory."""
        max_file = self.limits.max_file_bytes
        if declared_size is not None and declared_size > max_file:
            raise DocumentError("file_too_large", f"a file may be at most {max_file // MB} MB", 413)
        room_id = room.room_id
        async with self._lock(room_id):
            room_free = self.limits.max_room_bytes - await self.used_bytes(room_id)
            room_free -= self._inflight.get(room_id, 0)
            if declared_size is not None and declared_size > room_free:
                raise self._room_full()
            self._inflight[room_id] = self._inflight.get(room_id, 0) + (declared_size or 0)
        reserved = declared_size or 0
        document_id = secrets.token_hex(16)
        document_key = new_document_key()
        blob = BlobFile(self.tmp / f"{self._prefix}{document_id}.part", document_key, self._chunk)
        committed = False
        pending: asyncio.Future | None = None
        try:
            total = 0
            parts: list[bytes] = []
            buffered = 0
            async for data in chunks:
                if not data:
                    continue
                total += len(data)
                if total > max_file:
                    raise DocumentError("file_too_large", f"a file may be at most {max_file // MB} MB", 413)
                if total > reserved:
                    # No (or a wrong) Content-Length: reserve room quota in steps as the bytes arrive.
                    step = min(max(total, reserved + RESERVE_STEP), max_file)
                    async with self._lock(room_id):
                        free = self.limits.max_room_bytes - await self.used_bytes(room_id)
                        if self._inflight.get(room_id, 0) - reserved + total > free:
                            raise self._room_full()
                        step = min(step, free - self._inflight.get(room_id, 0) + reserved)
                        self._inflight[room_id] = self._inflight.get(room_id, 0) + step - reserved
                        reserved = step
                parts.append(data)
                buffered += len(data)
                if buffered >= BATCH_BYTES:
                    if pending is not None:
                        await pending
                    # The previous batch is encrypted in the thread while the next one is read.
                    pending = asyncio.ensure_future(self._run(blob.write, b"".join(parts)))
                    parts, buffered = [], 0
            if pending is not None:
                await pending
                pending = None
            if parts:
                await self._run(blob.write, b"".join(parts))
            if declared_size is not None and total != declared_size:
                # A stream that ended early is a cut-off upload, not a smaller file (issue 15, finding 14).
                raise DocumentError("incomplete_upload", "the upload ended early; send it again", 400)
            file_type = await self._run(blob.finish)
            meta = {"name": display_name(filename, TYPES[file_type])}
            final = self._blob_path(document_id)
            await self._run(self._place, blob.path, final)
            record = {
                "id": document_id,
                "room_id": room_id,
                "office": room.office,
                "type": "file",
                "state": "active",
                "created_at": self._clock(),
                "ends_at": room.ends_at,
                "owner": actor.owner,
                "owner_role": actor.role,
                "owner_tag": actor.tag,
                "size": total,
                "file_type": file_type,
                "chunk_size": self._chunk,
                "key": self.keys.wrap(document_id, document_key),
                "meta": seal_meta(document_key, document_id, meta),
            }
            await self._store.put(DOC_KIND, document_id, record)  # the commit point
            committed = True
        except UnsupportedType as exc:
            raise DocumentError(
                "unsupported_type", f"{exc}; allowed: PDF, PNG, JPEG, HEIC, WebP, text, DOCX, XLSX, ODT", 415
            ) from None
        finally:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
            if not committed:
                blob.discard()
                with contextlib.suppress(FileNotFoundError):
                    self._blob_path(document_id).unlink()
            self._inflight[room_id] = self._inflight.get(room_id, 0) - reserved
        await self._schedule(room)
        await self.audit("upload", actor, room_id, document_id)
        log.info("documents: %s uploaded %s (%d bytes) to room %s", actor.role, document_id, total, room_id)
        item = self._public(record, meta)
        await self._publish(room_id, {"type": "document-added", "document": item})
        return item

    def _room_full(self) -> DocumentError:
        limit = self.limits.max_room_bytes // MB
        message = f"the documents of a room may total at most {limit} MB"
        return DocumentError("room_quota_exceeded", message, 413)

    @staticmethod
    def _place(temp: Path, final: Path) -> None:
        final.parent.mkdir(exist_ok=True, mode=0o700)
        os.rename(temp, final)
        fsync_dir(final.parent)

    async def add_link(self, room: RoomRef, actor: Actor, url: Any, title: Any) -> dict[str, Any]:
        url, host, title = validate_link(url, title)
        document_id = secrets.token_hex(16)
        key = new_document_key()
        meta = {"url": url, "host": host, "title": title}
        record = {
            "id": document_id,
            "room_id": room.room_id,
            "office": room.office,
            "type": "link",
            "state": "active",
            "created_at": self._clock(),
            "ends_at": room.ends_at,
            "owner": actor.owner,
            "owner_role": actor.role,
            "owner_tag": actor.tag,
            "key": self.keys.wrap(document_id, key),
            "meta": seal_meta(key, document_id, meta),
        }
        await self._store.put(DOC_KIND, document_id, record)
        await self._schedule(room)
        await self.audit("link", actor, room.room_id, document_id)
        item = self._public(record, meta)
        await self._publish(room.room_id, {"type": "document-added", "document": item})
        return item

    async def delete(self, room_id: str, document_id: str, actor: Actor) -> None:
        record = await self._active(room_id, document_id)
        if record["owner"] != actor.owner:
            raise DocumentError("not_owner", "only the person who shared a document can delete it", 403)
        await self._shred(record, "deleted")
        await self.audit("delete", actor, room_id, document_id)
        await self._publish(room_id, _removed(document_id, "deleted"))

    async def _shred(self, record: dict[str, Any], state: str) -> None:
        """Remove the blob and the wrapped key and encrypted name/URL; keep the bare record for audit."""
        if record["type"] == "file":
            await self._run(lambda: self._blob_path(record["id"]).unlink(missing_ok=True))
        record = {k: v for k, v in record.items() if k not in ("key", "meta")}
        record |= {"state": state, f"{state}_at": self._clock()}
        await self._store.put(DOC_KIND, record["id"], record)

    # ------------------------------------------------------------------ retention

    async def run_due(self) -> dict[str, int]:
        """Run every due retention job; idempotent, so a crash mid-run is repaired by the next run. With
        several nodes only one runs it at a time (the others find the lease taken and skip)."""
        counts = {"purged": 0, "forgotten": 0, "audit_expired": 0}
        async with lease(self._store, "document-retention", self._prefix, RETENTION_LEASE_SECONDS) as held:
            if held:
                await self._run_due(counts)
        return counts

    async def _run_due(self, counts: dict[str, int]) -> None:
        now = self._clock()
        for key, job in await self._store.scan(JOB_KIND):
            if job.get("due_at", 0) > now:
                continue
            room_id = job["room_id"]
            if job["action"] == "purge":
                for record in await self._records(room_id):
                    if record.get("state") == "active":
                        await self._shred(record, "purged")
                        await self.audit("purge", SYSTEM, room_id, record["id"])
                        await self._publish(room_id, _removed(record["id"], "purged"))
                        counts["purged"] += 1
            elif job["action"] == "forget":
                for record in await self._records(room_id):
                    if record.get("state") == "active" and record["type"] == "file":
                        await self._run(lambda r=record: self._blob_path(r["id"]).unlink(missing_ok=True))
                    await self._store.delete(DOC_KIND, record["id"])
                    counts["forgotten"] += 1
            await self._store.delete(JOB_KIND, key)
        horizon = now - self.metadata_retention
        for key, entry in await self._store.scan(AUDIT_KIND):
            if entry.get("ts", 0) >= horizon:
                break  # keys are ordered by time
            await self._store.delete(AUDIT_KIND, key)
            counts["audit_expired"] += 1
        if any(counts.values()):
            log.info("documents retention: %s", counts)

    # ------------------------------------------------------------------ key rotation

    async def rewrap(self) -> dict[str, Any]:
        """Re-wrap every document key under the active master key (contents are not re-encrypted)."""
        active = self.keys.active_id
        rewrapped = 0
        for document_id, record in await self._store.scan(DOC_KIND):
            wrapped = record.get("key")
            if not wrapped or wrapped["kid"] == active:
                continue
            key = self.keys.unwrap(document_id, wrapped)
            current = await self._store.get(DOC_KIND, document_id)  # re-read: it may have changed
            if current is None or current.get("key") != wrapped:
                continue
            current["key"] = self.keys.wrap(document_id, key, active)
            await self._store.put(DOC_KIND, document_id, current)
            rewrapped += 1
        in_use = {r["key"]["kid"] for _, r in await self._store.scan(DOC_KIND) if r.get("key")}
        return {"active": active, "rewrapped": rewrapped, "in_use": sorted(in_use)}
