"""Message schema of protocol version 1: validation at the edge, stable error codes.

Every message a client may send has a pydantic model; the models of one socket form a union
discriminated on `type` (`CALL` for /ws, `WAITING` for /ws/queue, `CONSOLE` for /ws/console). `parse`
bounds the frame, reads the JSON, checks `id` and `type`, and validates the rest with the socket's
union. Whatever is wrong becomes a ProtocolError with the stable code and message clients match on
(docs/protocol.md): `too_large`, `bad_json`, `unknown_type`, `bad_message` ("field 'x' is missing",
"… has the wrong type", "… exceeds N characters"). The first problem found, in the order the fields are
declared, is the one reported. Fields are strict (no "1" for 1, no true for 1); unknown fields are
ignored.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from sprechstunde.errors import DomainError

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
MAX_CHAT_CHARS = 2000
MAX_NAME_CHARS = 60
MAX_SDP_CHARS = 60000
MAX_ID_CHARS = 64
# control characters, zero-width ones and every direction control of rooms.text.BIDI_CONTROLS (U+061C too)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class ProtocolError(DomainError):
    """Answered with an `error` message; the connection stays usable. `request_id` is the `id` of the
    message it answers; `detail` carries machine-readable extras, e.g. where to go for `wrong_node`."""

    def __init__(
        self, code: str, message: str, status: int = 400, *, request_id: Any = None, **detail: Any
    ) -> None:
        super().__init__(code, message, status, **detail)
        self.request_id = request_id


def error_message(code: str, message: str, request_id: Any = None, **detail: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "code": code, "message": message, **detail}
    if request_id is not None:
        reply["id"] = request_id
    return reply


Token = Annotated[str, Field(max_length=2048)]
Sdp = Annotated[str, Field(max_length=MAX_SDP_CHARS)]
ChatText = Annotated[str, Field(max_length=MAX_CHAT_CHARS)]
NoteText = Annotated[str, Field(max_length=2000)]
EntryId = Annotated[str, Field(max_length=MAX_ID_CHARS)]


class Message(BaseModel):
    """What every client message has: its `type` and an optional `id` echoed in the reply."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    type: str
    id: str | int | None = None  # checked by `parse` before the model (its own error message)


# --- the call: GET /ws ------------------------------------------------------------------------------


class Hello(Message):
    type: Literal["hello"]
    v: int
    token: Token
    name: Annotated[str, Field(max_length=200)] | None = None
    resume: Annotated[str, Field(max_length=100)] | None = None
    # false: signaling only (chat, documents, a bot): the server sets up no peer connection and sends no
    # offer (issue 21); true, as before, when absent
    media: bool = True
    # the node id of a `wrong_node` redirect this client could not reach just now (issue 21): the server
    # checks that node itself before moving the room, never on the client's word alone
    unreachable: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None


class Offer(Message):
    type: Literal["offer"]
    sdp: Sdp


class Answer(Message):
    type: Literal["answer"]
    sdp: Sdp


class Candidate(Message):
    """A trickled ICE candidate as the browser sends it (kept as a dict for the media layer); None ends
    the candidates."""

    type: Literal["candidate"]
    candidate: dict | None

    @field_validator("candidate")
    @classmethod
    def _check(cls, candidate: dict | None) -> dict | None:
        if candidate is None:
            return None
        text, mid = candidate.get("candidate"), candidate.get("sdpMid")
        index = candidate.get("sdpMLineIndex")
        if not isinstance(text, str) or len(text) > 1024:
            raise PydanticCustomError("bad_message", "candidate.candidate must be a string")
        if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
            raise PydanticCustomError("bad_message", "candidate.sdpMid must be a short string")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise PydanticCustomError("bad_message", "candidate.sdpMLineIndex must be an integer")
        return candidate


ClientMessageId = Annotated[str, Field(min_length=8, max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9_-]+$")]


class Chat(Message):
    """`client_message_id`: the page's own random id of the message, the same when it sends the message
    again (it was not acknowledged before a reconnect); the server keeps and shows such a message once."""

    type: Literal["chat"]
    text: ChatText
    client_message_id: ClientMessageId | None = None


class Ping(Message):
    """Answered with `pong` (and the same `id`) by every socket."""

    type: Literal["ping"]


class Leave(Message):
    type: Literal["leave"]


class MediaState(Message):
    """Whether the sender's microphone and camera are on (issue 17): the others show a muted mark or the
    name instead of a black picture. Both fields are required booleans (strict: no 0/1, no "true")."""

    type: Literal["media-state"]
    audio: bool
    video: bool


class ScreenShare(Message):
    """Start (`on`: true) or stop sharing the screen on the sender's third m-line (mid 2); answered
    with a `screen` broadcast, or `screen_busy` while someone else shares (docs/protocol.md)."""

    type: Literal["screen"]
    on: bool


# --- the waiting room: GET /ws/queue (citizen) and GET /ws/console (advisor) --------------------------


class Wait(Message):
    type: Literal["wait"]
    token: Token


class Note(Message):
    type: Literal["note"]
    text: NoteText


class Next(Message):
    type: Literal["next"]


class Claim(Message):
    type: Literal["claim"]
    entry_id: EntryId


class Messages:
    """The messages one socket accepts: a union of models discriminated on `type`."""

    def __init__(self, *models: type[Message]) -> None:
        self.types = frozenset(model.model_fields["type"].annotation.__args__[0] for model in models)
        self._adapter: TypeAdapter[Message] = TypeAdapter(
            Annotated[_union(models), Field(discriminator="type")]
        )

    def parse(self, frame: str | bytes) -> Message:
        """A validated message, or ProtocolError with the stable code to report."""
        if len(frame) > MAX_FRAME_BYTES:
            raise ProtocolError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
        try:
            data = json.loads(frame)
        except (ValueError, UnicodeDecodeError):
            raise ProtocolError("bad_json", "the frame is not valid JSON") from None
        if not isinstance(data, dict):
            raise ProtocolError("bad_json", "a message must be a JSON object")
        request_id = data.get("id")
        if request_id is not None and (
            isinstance(request_id, bool)
            or not isinstance(request_id, (str, int))
            or len(str(request_id)) > MAX_ID_CHARS
        ):
            raise ProtocolError("bad_message", "'id' must be a string or integer of ≤ 64 characters")
        kind = data.get("type")
        if not isinstance(kind, str) or kind not in self.types:
            raise ProtocolError(
                "unknown_type", f"unknown message type {str(kind)[:40]!r}", request_id=request_id
            )
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            raise _refusal(exc, request_id) from None


def _union(models: tuple[type[Message], ...]) -> Any:
    union: Any = models[0]
    for model in models[1:]:
        union = union | model
    return union


def _refusal(exc: ValidationError, request_id: Any) -> ProtocolError:
    """pydantic's first error as the protocol's `bad_message`."""
    error = exc.errors(include_url=False)[0]
    field = error["loc"][1] if len(error["loc"]) > 1 else error["loc"][0]
    if error["type"] == "bad_message":
        message = error["msg"]
    elif error["type"] == "missing":
        message = f"field {field!r} is missing"
    elif error["type"] == "string_too_long":
        message = f"field {field!r} exceeds {error['ctx']['max_length']} characters"
    elif error["type"] in ("string_pattern_mismatch", "string_too_short"):
        message = f"field {field!r} is not in the expected form"
    else:
        message = f"field {field!r} has the wrong type"
    return ProtocolError("bad_message", message, request_id=request_id)


CALL = Messages(Hello, Offer, Answer, Candidate, Chat, Ping, Leave, MediaState, ScreenShare)
WAITING = Messages(Wait, Note, Leave, Ping)
CONSOLE = Messages(Next, Claim, Ping)


def parse(frame: str | bytes, messages: Messages = CALL) -> Message:
    """A validated message of `messages` (default: the call's), or ProtocolError with the stable code."""
    return messages.parse(frame)


def clean_name(name: str | None, fallback: str) -> str:
    """A display name as a label only: no control or direction-override characters, ≤ 60 chars."""
    text = " ".join(_CONTROL.sub("", name or "").split())[:MAX_NAME_CHARS]
    return text or fallback
