"""Bodies and answers of the citizen's end screen and satisfaction survey (web/consultations/ending.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from sprechstunde.rooms.consultations import OUTCOMES
from sprechstunde.rooms.feedback import MAX_COMMENT, check_comment, check_score
from sprechstunde.web.core.models import Answer, Body, Fails, checked
from sprechstunde.web.waiting.models import OfficeRef


class FeedbackIn(Body):
    """One anonymous answer to the end screen's question; once per consultation."""

    token: Annotated[
        str, Field(max_length=2048), Fails("invalid_token", "token must be the end screen's token")
    ]
    score: Annotated[
        Any,
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 5}),
        checked(check_score),
    ]
    comment: Annotated[
        Annotated[str, Field(max_length=MAX_COMMENT)] | None,
        Fails("comment_too_long", f"the comment may have at most {MAX_COMMENT} characters"),
        checked(check_comment),
    ] = None


class FeedbackOut(Answer):
    thanks: bool


class EndTokenOut(Answer):
    token: str = Field(description="the end screen's token (GET /api/endings/{token}, POST /api/feedback)")


class EndDocument(Answer):
    id: str
    type: Literal["file", "link"]
    name: str | None = None
    size: int | None = None
    url: str = Field(description="files: a download link valid until kept_until; links: the shared URL")
    title: str | None = None
    host: str | None = None


class EndingOut(Answer):
    """What the citizen's end screen shows (never the advisor's name or notes)."""

    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    office: OfficeRef
    ticket: str | None
    ended_at: datetime
    kept_until: datetime = Field(description="the shared documents are deleted then")
    documents: list[EndDocument]
    booking_url: str
    survey_answered: bool
