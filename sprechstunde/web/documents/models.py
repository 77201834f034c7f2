"""Bodies and answers of a room's documents and links (web/documents/api.py).

A shared link is judged by the documents domain's own `validate_link`, called from here; an upload is a
stream (raw body or a multipart form), not a JSON body, and is checked by the service as it arrives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, model_validator

from sprechstunde.documents.records import MAX_URL_CHARS, validate_link
from sprechstunde.web.core.models import Answer, Body, apply


class LinkIn(Body):
    """A link to share in the room (http or https)."""

    url: Annotated[
        Any,
        WithJsonSchema({"type": "string", "maxLength": MAX_URL_CHARS, "examples": ["https://example.org/"]}),
    ]
    title: Annotated[
        Any, WithJsonSchema({"type": ["string", "null"], "description": "at most 200 characters"})
    ] = None

    @model_validator(mode="after")
    def _valid(self) -> LinkIn:
        apply(validate_link, self.url, self.title)  # `invalid_url` / `invalid_title`
        return self


class DocumentItem(Answer):
    """A file or link of the room; files have name/size/mime, links url/host/title."""

    id: str
    type: Literal["file", "link"]
    created_at: datetime
    uploader_role: str
    owner_tag: str
    name: str | None = None
    size: int | None = None
    mime: str | None = None
    url: str | None = None
    host: str | None = None
    title: str | None = None


class Limits(Answer):
    max_file_bytes: int
    max_room_bytes: int
    accept: str = Field(description="for <input type=file accept=…>")
    used_bytes: int


class DocumentsOut(Answer):
    items: list[DocumentItem]
    you: str = Field(description="the caller's owner tag: their own items carry it")
    limits: Limits


class DownloadLinkOut(Answer):
    """A signed download URL for this caller and document, valid for a minute."""

    url: str
    expires_at: datetime


UPLOAD_CONTENT = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        }
    },
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}
