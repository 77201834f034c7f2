"""Which files we accept, decided by their bytes (never by name or by the Content-Type a client sends).

PDF, PNG, JPEG, HEIC/HEIF, WebP and plain UTF-8 text by their leading bytes; DOCX, XLSX and ODT are ZIP
containers, so for them the ZIP's entries are checked too: DOCX/XLSX by `[Content_Types].xml` plus a
`word/` or `xl/` part in the central directory (read from the stream's tail), ODT by its uncompressed
first entry `mimetype` = `application/vnd.oasis.opendocument.text`. Anything else is refused.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
from dataclasses import dataclass

HEAD_BYTES = 4096
TAIL_BYTES = 256 * 1024  # the ZIP central directory of a document up to the size limit fits easily
_TEXT_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
ODT_MIME = b"application/vnd.oasis.opendocument.text"


@dataclass(frozen=True)
class FileType:
    code: str
    mime: str
    extensions: tuple[str, ...]


TYPES = {
    t.code: t
    for t in (
        FileType("pdf", "application/pdf", (".pdf",)),
        FileType("png", "image/png", (".png",)),
        FileType("jpeg", "image/jpeg", (".jpg", ".jpeg")),
        FileType("heic", "image/heic", (".heic", ".heif")),
        FileType("webp", "image/webp", (".webp",)),
        FileType("text", "text/plain; charset=utf-8", (".txt",)),
        FileType(
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            (".docx",),
        ),
        FileType("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",)),
        FileType("odt", "application/vnd.oasis.opendocument.text", (".odt",)),
    )
}
# What the file picker offers (a hint only; the server decides by content).
ACCEPT = ",".join(
    [ext for t in TYPES.values() for ext in t.extensions]
    + ["application/pdf", "image/png", "image/jpeg", "image/heic", "image/heif", "image/webp", "text/plain"]
)


class UnsupportedType(Exception):
    """The content is not one of the allowed types."""


def _head_type(head: bytes) -> str | None:
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heic"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head and not _TEXT_CONTROL.search(head):
        return "text"
    return None


def _odt(head: bytes) -> bool:
    # Local file header: signature, version, flags, method (0 = stored) … name length at 26, extra at 28.
    if len(head) < 30:
        return False
    (method,) = struct.unpack_from("<H", head, 8)
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    name = head[30 : 30 + name_len]
    start = 30 + name_len + extra_len
    return method == 0 and name == b"mimetype" and head[start : start + len(ODT_MIME)] == ODT_MIME


def zip_names(tail: bytes, total_size: int) -> list[str] | None:
    """Entry names from the central directory at the end of a ZIP; None when it cannot be read."""
    eocd = tail.rfind(b"PK\x05\x06")
    if eocd < 0 or len(tail) - eocd < 22:
        return None
    entries, cd_size, cd_offset = struct.unpack_from("<HII", tail, eocd + 10)
    start = len(tail) - (total_size - cd_offset)
    if start < 0 or start + cd_size > eocd or entries == 0xFFFF:
        return None
    names, pos = [], start
    for _ in range(entries):
        if tail[pos : pos + 4] != b"PK\x01\x02":
            return None
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", tail, pos + 28)
        names.append(tail[pos + 46 : pos + 46 + name_len].decode("utf-8", "replace"))
        pos += 46 + name_len + extra_len + comment_len
    return names


class Sniffer:
    """Fed the plaintext stream piece by piece; `result()` names the type or raises UnsupportedType.

    Refuses as early as the leading bytes allow (an .exe renamed .pdf is refused after its first bytes).
    """

    def __init__(self) -> None:
        self._head = b""
        self._early = b""  # everything fed before the type was decided (at most HEAD_BYTES + one piece)
        self._kind: str | None = None
        self._tail = bytearray()
        self._size = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        if self._kind is None:
            self._early += data
            if len(self._early) < HEAD_BYTES:
                return
            data = self._decide()
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        if self._kind == "text":
            self._check_text(data)
        elif self._kind == "zip":
            self._tail += data
            if len(self._tail) > TAIL_BYTES:
                del self._tail[: len(self._tail) - TAIL_BYTES]

    def _decide(self) -> bytes:
        self._head = self._early[:HEAD_BYTES]
        kind = _head_type(self._head)
        if kind is None:
            raise UnsupportedType("this file type is not allowed")
        self._kind = kind
        early, self._early = self._early, b""
        return early

    def _check_text(self, data: bytes) -> None:
        if _TEXT_CONTROL.search(data):
            raise UnsupportedType("this file type is not allowed")
        try:
            self._utf8.decode(data)
        except UnicodeDecodeError:
            raise UnsupportedType("text files must be UTF-8") from None

    def result(self) -> FileType:
        if self._kind is None:
            if not self._early:
                raise UnsupportedType("the file is empty")
            self._consume(self._decide())
        if self._kind == "text":
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                raise UnsupportedType("text files must be UTF-8") from None
            return TYPES["text"]
        if self._kind != "zip":
            return TYPES[self._kind]
        if _odt(self._head):
            return TYPES["odt"]
        names = zip_names(bytes(self._tail), self._size)
        if names and "[Content_Types].xml" in names:
            if any(n.startswith("word/") for n in names):
                return TYPES["docx"]
            if any(n.startswith("xl/") for n in names):
                return TYPES["xlsx"]
        raise UnsupportedType("only DOCX, XLSX and ODT are accepted among ZIP-based files")


_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


def display_name(name: str | None, file_type: FileType, max_chars: int = 120) -> str:
    """A safe label for a client-supplied file name: no path, no control or bidi characters, bounded,
    with an extension that matches the content (never used for storage paths)."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(" " if unicodedata.category(c) in _INVISIBLE else c for c in name)
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ("." + ext.lower()) if ext else ""
    if ext not in file_type.extensions:
        stem, ext = name, file_type.extensions[0]
    stem = stem.strip()[: max_chars - len(ext)].rstrip() or "Dokument"
    return stem + ext
