"""Sealed bytes on disk: a document's ciphertext written chunk by chunk into a temp file (BlobFile, used
from the crypto thread only), the directory fsync that makes a rename durable, and the display name or URL
sealed with the document's own key (bound to its id, so a record cannot be swapped onto another)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sprechstunde.documents.crypto import ChunkSealer
from sprechstunde.documents.formats import Sniffer


def seal_meta(key: bytes, document_id: str, meta: dict[str, Any]) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(meta).encode(), f"meta/{document_id}".encode())
    return base64.b64encode(nonce + sealed).decode()


def open_meta(key: bytes, document_id: str, blob: str) -> dict[str, Any]:
    raw = base64.b64decode(blob)
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], f"meta/{document_id}".encode()))


class BlobFile:
    """A temp file being filled with one document's ciphertext (used from the crypto thread only)."""

    def __init__(self, path: Path, key: bytes, chunk_size: int) -> None:
        self.path = path
        self.sealer = ChunkSealer(key, chunk_size)
        self.sniffer = Sniffer()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        os.write(self.fd, self.sealer.header)

    def write(self, data: bytes) -> None:
        self.sniffer.feed(data)
        pieces = self.sealer.write(data)
        if pieces:
            os.writev(self.fd, pieces)

    def finish(self) -> str:
        file_type = self.sniffer.result()
        os.write(self.fd, self.sealer.finish())
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        return file_type.code

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
