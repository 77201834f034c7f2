"""Encryption at rest: chunked AES-256-GCM blobs and the master-key ring that wraps per-document keys.

Blob format (all integers big-endian):

    header  = b"SPDOC1" | chunk_size (u32) | nonce_prefix (7 random bytes)          17 bytes
    chunk i = AES-256-GCM(key, nonce = prefix | i (u32) | final (u8),
                          aad = header | i (u32) | final (u8), plaintext[i])       ≤ chunk_size + 16

Every chunk but the last holds exactly `chunk_size` plaintext bytes and has final = 0; the last one has
final = 1 (it is empty only for an empty document). Reordered or swapped chunks fail (index in nonce and
AAD), a truncation fails (the last remaining chunk was sealed with final = 0), appended data fails (a chunk
after the one sealed with final = 1). This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and
Vizár with a fresh key per document.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"SPDOC1"
HEADER = struct.Struct(">6sI7s")
TAG_BYTES = 16
DEFAULT_CHUNK = 64 * 1024
KEY_FILE = "document-keys"
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


class IntegrityError(Exception):
    """A blob that does not decrypt: tampered, truncated, extended, or the wrong key."""

    def __init__(self, message: str, chunk: int | None = None) -> None:
        super().__init__(message)
        self.chunk = chunk


class KeyRingError(Exception):
    """The master key ring is unusable (bad configuration, unknown key id)."""


def new_document_key() -> bytes:
    return secrets.token_bytes(32)


def ciphertext_size(plain_size: int, chunk_size: int) -> int:
    chunks = max(1, -(-plain_size // chunk_size))
    return HEADER.size + plain_size + chunks * TAG_BYTES


class ChunkSealer:
    """Encrypts a stream written in pieces of any size; call `write()` repeatedly, then `finish()`.

    Returns ciphertext pieces (lists of bytes) ready for `os.writev`; holds at most one chunk of plaintext.
    """

    def __init__(self, key: bytes, chunk_size: int = DEFAULT_CHUNK) -> None:
        self._aead = AESGCM(key)
        self._chunk = chunk_size
        self._prefix = secrets.token_bytes(7)
        self.header = HEADER.pack(MAGIC, chunk_size, self._prefix)
        self._index = 0
        self._pending = b""

    def _seal(self, plain: bytes | memoryview, final: bool) -> bytes:
        tail = struct.pack(">IB", self._index, final)
        self._index += 1
        return self._aead.encrypt(self._prefix + tail, plain, self.header + tail)

    def write(self, data: bytes) -> list[bytes]:
        if self._pending:
            data = self._pending + data
        size, chunk, out = len(data), self._chunk, []
        view = memoryview(data)
        offset = 0
        # Keep the last (possibly full) chunk back: only finish() knows whether it is the final one.
        while size - offset > chunk:
            out.append(self._seal(view[offset : offset + chunk], False))
            offset += chunk
        self._pending = bytes(view[offset:]) if offset else data
        return out

    def finish(self) -> bytes:
        sealed = self._seal(self._pending, True)
        self._pending = b""
        return sealed


class ChunkOpener:
    """Decrypts a blob chunk by chunk; `blob_size` (the file's size) tells which chunk is the final one."""

    def __init__(self, key: bytes, header: bytes, blob_size: int) -> None:
        if len(header) != HEADER.size:
            raise IntegrityError("the document is truncated (no header)")
        magic, chunk_size, prefix = HEADER.unpack(header)
        if magic != MAGIC or not 1024 <= chunk_size <= 16 * 1024 * 1024:
            raise IntegrityError("the document header is damaged")
        self._aead = AESGCM(key)
        self.header = header
        self.chunk_size = chunk_size
        self._prefix = prefix
        body = blob_size - HEADER.size
        sealed = chunk_size + TAG_BYTES
        self.chunks = max(1, -(-body // sealed))
        last = body - (self.chunks - 1) * sealed
        if body < TAG_BYTES or last < TAG_BYTES:
            raise IntegrityError("the document is truncated", self.chunks - 1)
        self.plain_size = body - self.chunks * TAG_BYTES

    def sealed_size(self, index: int) -> int:
        if index < self.chunks - 1:
            return self.chunk_size + TAG_BYTES
        return self.plain_size - (self.chunks - 1) * self.chunk_size + TAG_BYTES

    def open(self, index: int, sealed: bytes) -> bytes:
        final = index == self.chunks - 1
        tail = struct.pack(">IB", index, final)
        try:
            return self._aead.decrypt(self._prefix + tail, sealed, self.header + tail)
        except InvalidTag:
            raise IntegrityError(f"chunk {index} failed authentication", index) from None


def read_blob(path: Path, key: bytes, batch_bytes: int = 1 << 20) -> Iterator[list[bytes]]:
    """Decrypt a blob file in batches of plaintext pieces; IntegrityError on any damage."""
    with path.open("rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        opener = ChunkOpener(key, fh.read(HEADER.size), size)
        index = 0
        while index < opener.chunks:
            batch: list[bytes] = []
            budget = batch_bytes
            while index < opener.chunks and budget > 0:
                want = opener.sealed_size(index)
                sealed = fh.read(want)
                if len(sealed) != want:
                    raise IntegrityError("the document is truncated", index)
                batch.append(opener.open(index, sealed))
                budget -= want
                index += 1
            yield batch


# ---------------------------------------------------------------------------------------------- key ring


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def parse_configured_keys(text: str | None) -> dict[str, bytes]:
    """`kid:base64key[,kid:base64key…]` (the first is the active one) → ordered {kid: key}."""
    keys: dict[str, bytes] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        kid, sep, encoded = item.partition(":")
        if not sep or not KEY_ID.match(kid):
            raise KeyRingError("document keys look like 'kid:base64key' (kid: 1-40 of A-Z a-z 0-9 . _ -)")
        try:
            key = _unb64(encoded.strip())
        except ValueError:
            raise KeyRingError(f"document key {kid!r} is not valid base64") from None
        if len(key) != 32:
            raise KeyRingError(f"document key {kid!r} must be 32 bytes (256 bit)")
        keys[kid] = key
    return keys


def new_key_id(clock: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d", time.gmtime(clock if clock is not None else time.time()))
    return f"k{stamp}-{secrets.token_hex(3)}"


class KeyRing:
    """Master keys by key id; wraps and unwraps per-document keys.

    Keys come from configuration (`SPRECHSTUNDE_DOCUMENT_KEYS`, first one active) and/or the file
    `document-keys` (mode 0600) in the data directory, created on first use when nothing is configured.
    The file is re-read when it changes, so a running server picks up `sprechstunde keys rotate`.
    Key material never appears in repr() or logs.
    """

    def __init__(self, data_dir: Path, configured: str | None = None) -> None:
        self.path = data_dir / KEY_FILE
        self._configured = parse_configured_keys(configured)
        self._file_keys: dict[str, bytes] = {}
        self._file_active: str | None = None
        self._stamp: tuple[int, int] | None = None
        if not self._configured:
            self._create_file()
        self._reload()

    def __repr__(self) -> str:
        return f"KeyRing(active={self.active_id!r}, ids={sorted(self.ids())!r})"

    @property
    def configured(self) -> bool:
        return bool(self._configured)

    def _create_file(self) -> None:
        if self.path.exists():
            return
        kid = new_key_id()
        content = json.dumps({"active": kid, "keys": {kid: _b64(secrets.token_bytes(32))}})
        draft = self.path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(content + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(draft, self.path)  # a second process starting at once keeps the first one's file
        except FileExistsError:
            pass
        finally:
            draft.unlink()

    def _reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._file_keys, self._file_active, self._stamp = {}, None, None
            return
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return
        if st.st_mode & 0o077:
            raise KeyRingError(f"{self.path} must be readable by its owner only (chmod 600)")
        try:
            data = json.loads(self.path.read_text())
            keys = {kid: _unb64(value) for kid, value in data["keys"].items()}
            active = data["active"]
        except (ValueError, KeyError, TypeError):
            raise KeyRingError(f"{self.path} is not a valid key file") from None
        if active not in keys or any(len(k) != 32 or not KEY_ID.match(i) for i, k in keys.items()):
            raise KeyRingError(f"{self.path} is not a valid key file")
        self._file_keys, self._file_active, self._stamp = keys, active, stamp

    def ids(self) -> set[str]:
        return set(self._configured) | set(self._file_keys)

    @property
    def active_id(self) -> str:
        if self._configured:
            return next(iter(self._configured))
        self._reload()
        if self._file_active is None:
            raise KeyRingError("no document master key (the key file is missing)")
        return self._file_active

    def _key(self, kid: str) -> bytes:
        key = self._configured.get(kid) or self._file_keys.get(kid)
        if key is None:
            self._reload()
            key = self._file_keys.get(kid)
        if key is None:
            raise KeyRingError(f"document master key {kid!r} is not available")
        return key

    @staticmethod
    def _aad(document_id: str, kid: str) -> bytes:
        return f"sprechstunde/document-key/v1/{document_id}/{kid}".encode()

    def wrap(self, document_id: str, document_key: bytes, kid: str | None = None) -> dict[str, str]:
        kid = kid or self.active_id
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._key(kid)).encrypt(nonce, document_key, self._aad(document_id, kid))
        return {"kid": kid, "wrapped": _b64(nonce + sealed)}

    def unwrap(self, document_id: str, wrapped: dict[str, str]) -> bytes:
        kid = wrapped["kid"]
        raw = _unb64(wrapped["wrapped"])
        try:
            return AESGCM(self._key(kid)).decrypt(raw[:12], raw[12:], self._aad(document_id, kid))
        except InvalidTag:
            raise IntegrityError("the document key does not unwrap (wrong master key or tampered)") from None

    # ------------------------------------------------------------------ rotation (file keys only)

    def _write_file(self, active: str, keys: dict[str, bytes]) -> None:
        content = json.dumps({"active": active, "keys": {kid: _b64(k) for kid, k in keys.items()}})
        draft = self.path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(content + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(draft, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._stamp = None
        self._reload()

    def add_file_key(self) -> str:
        """Generate a new master key in the key file and make it the active one."""
        if self._configured:
            raise KeyRingError("the master keys come from configuration; put a new key first there instead")
        self._reload()
        kid = new_key_id()
        self._write_file(kid, {**self._file_keys, kid: secrets.token_bytes(32)})
        return kid

    def drop_file_keys(self, kids: set[str]) -> None:
        self._reload()
        kids = {kid for kid in kids if kid in self._file_keys and kid != self._file_active}
        if kids and self._file_active is not None:
            keep = {k: v for k, v in self._file_keys.items() if k not in kids}
            self._write_file(self._file_active, keep)
