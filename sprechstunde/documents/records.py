"""The records of the documents area: who acts (Actor), the room a document belongs to, the limits, a
download being streamed, the area's error, and the check of a shared link."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sprechstunde.errors import DomainError
from sprechstunde.rooms.text import has_bidi, strip_bidi

MB = 1024 * 1024
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 200


class DocumentError(DomainError):
    """A request about documents that cannot be honoured. Its own class because a download that fails
    after its headers went out is cut off, not answered (web/documents/api.py)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a room participant (pseudonymous id derived from the join link), staff, or the system."""

    kind: str  # "participant" | "staff" | "system"
    id: str
    role: str

    @property
    def owner(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def tag(self) -> str:
        """An opaque label a client may see to recognise its own uploads."""
        return hashlib.sha256(b"owner-tag:" + self.owner.encode()).hexdigest()[:16]

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "role": self.role}

    @classmethod
    def participant(cls, join_token: str, role: str) -> Actor:
        return cls("participant", "t-" + hashlib.sha256(join_token.encode()).hexdigest()[:16], role)


SYSTEM = Actor("system", "retention", "system")


@dataclass(frozen=True)
class RoomRef:
    room_id: str
    office: str
    ends_at: float  # when the consultation ends: retention counts from here


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 25 * MB
    max_room_bytes: int = 100 * MB


@dataclass
class Download:
    document_id: str
    name: str
    mime: str
    size: int
    chunks: AsyncIterator[bytes]


def validate_link(url: Any, title: Any) -> tuple[str, str, str]:
    """(url, host, title) of an http(s) link a participant shares; DocumentError 400 otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise DocumentError("invalid_url", "a URL is required", 400)
    url = url.strip()
    if len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise DocumentError("invalid_url", "the URL is too long or has spaces or control characters", 400)
    if has_bidi(url):  # issue 15, finding 13: it would display as another address
        raise DocumentError("invalid_url", "the URL holds invisible text-direction characters", 400)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        raise DocumentError("invalid_url", "the URL is not valid", 400) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise DocumentError("invalid_url", "only http and https links can be shared", 400)
    if not host or not port_ok:
        raise DocumentError("invalid_url", "the URL has no valid host", 400)
    if parts.username is not None or parts.password is not None:
        raise DocumentError("invalid_url", "links with a user name or password are not allowed", 400)
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise DocumentError("invalid_url", "the URL has no valid host", 400) from None
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise DocumentError("invalid_title", "the title must be text", 400)
    title = " ".join("".join(c if c.isprintable() else " " for c in strip_bidi(title)).split())
    if len(title) > MAX_TITLE_CHARS:
        raise DocumentError("invalid_title", f"the title is limited to {MAX_TITLE_CHARS} characters", 400)
    return url, ascii_host, title
