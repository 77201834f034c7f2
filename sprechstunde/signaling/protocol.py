"""Message schema of protocol version 1: validation at the edge, stable error codes."""

from __future__ import annotations

import json
import re
from typing import Any

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_CHAT_CHARS = 2000
MAX_NAME_CHARS = 60
MAX_SDP_CHARS = 60000
MAX_ID_CHARS = 64
# control characters, zero-width ones and every direction control of rooms.text.BIDI_CONTROLS (U+061C too)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069]")

# type → {field: (python types, required, max length or None)}
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool, int | None]]] = {
    "hello": {
        "v": ((int,), True, None),
        "token": ((str,), True, 2048),
        "name": ((str, type(None)), False, 200),
        "resume": ((str, type(None)), False, 100),
    },
    "offer": {"sdp": ((str,), True, MAX_SDP_CHARS)},
    "answer": {"sdp": ((str,), True, MAX_SDP_CHARS)},
    "candidate": {"candidate": ((dict, type(None)), True, None)},
    "chat": {"text": ((str,), True, MAX_CHAT_CHARS)},
    "ping": {},
    "leave": {},
}
MESSAGE_TYPES = frozenset(_SCHEMA)


class ProtocolError(Exception):
    """Answered with an `error` message; the connection stays usable."""

    def __init__(self, code: str, message: str, request_id: Any = None, **detail: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.detail = detail  # machine-readable extras, e.g. where to go for `wrong_node`


def error_message(code: str, message: str, request_id: Any = None, **detail: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "code": code, "message": message, **detail}
    if request_id is not None:
        reply["id"] = request_id
    return reply


Schema = dict[str, dict[str, tuple[tuple[type, ...], bool, int | None]]]


def parse(frame: str | bytes, schema: Schema | None = None) -> dict[str, Any]:
    """A validated message (of `schema`, default: the call signaling's), or ProtocolError with the
    stable code to report."""
    schema = _SCHEMA if schema is None else schema
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_json", "a message must be a JSON object")
    request_id = message.get("id")
    if request_id is not None and (
        isinstance(request_id, bool)
        or not isinstance(request_id, (str, int))
        or len(str(request_id)) > MAX_ID_CHARS
    ):
        raise ProtocolError("bad_message", "'id' must be a string or integer of ≤ 64 characters")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in schema:
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:40]!r}", request_id)
    for field, (types, required, limit) in schema[kind].items():
        if field not in message:
            if required:
                raise ProtocolError("bad_message", f"field {field!r} is missing", request_id)
            continue
        value = message[field]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ProtocolError("bad_message", f"field {field!r} has the wrong type", request_id)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            raise ProtocolError("bad_message", f"field {field!r} exceeds {limit} characters", request_id)
    if kind == "candidate" and message["candidate"] is not None:
        _check_candidate(message["candidate"], request_id)
    return message


def _check_candidate(candidate: dict, request_id: Any) -> None:
    text = candidate.get("candidate")
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    if not isinstance(text, str) or len(text) > 1024:
        raise ProtocolError("bad_message", "candidate.candidate must be a string", request_id)
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise ProtocolError("bad_message", "candidate.sdpMid must be a short string", request_id)
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise ProtocolError("bad_message", "candidate.sdpMLineIndex must be an integer", request_id)


def clean_name(name: str | None, fallback: str) -> str:
    """A display name as a label only: no control or direction-override characters, ≤ 60 chars."""
    text = " ".join(_CONTROL.sub("", name or "").split())[:MAX_NAME_CHARS]
    return text or fallback
