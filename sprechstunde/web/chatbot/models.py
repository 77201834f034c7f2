"""The chatbot's JSON bodies and answers (POST /api/chatbot/messages, POST /api/chatbot/escalate,
POST /api/chatbot/download — whose answer, the conversation as a file, is plain text).
Contract: docs/chatbot.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from sprechstunde.chatbot.engine import MAX_TEXT  # the engine reads no more than this either
from sprechstunde.chatbot.service import CONVERSATION_ID, valid_conversation_id
from sprechstunde.chatbot.text import LANGUAGES
from sprechstunde.web.core.models import Answer, Body, Fails, checked, refuse


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise refuse("invalid_text", '"text" must be a non-empty string')
    if len(value) > MAX_TEXT:
        raise refuse("text_too_long", f'"text" may have at most {MAX_TEXT} characters')
    return value


def _language(value: Any) -> str | None:
    if value is not None and value not in LANGUAGES:
        raise refuse("unknown_language", f'"language" must be one of {", ".join(LANGUAGES)}')
    return value


def _conversation(value: Any) -> str:
    if not valid_conversation_id(value):
        raise refuse("invalid_conversation_id", '"conversation_id" must be an id this API returned')
    return value


def _new_or_conversation(value: Any) -> str | None:
    return None if value is None else _conversation(value)


ConversationId = Annotated[
    str, Field(pattern=CONVERSATION_ID.pattern, description="as this API returned it"), checked(_conversation)
]


class ChatMessageIn(Body):
    """A citizen's message; without `conversation_id` a new conversation begins."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), checked(_text)]
    language: Annotated[Literal[LANGUAGES] | None, checked(_language)] = None  # type: ignore[valid-type]
    conversation_id: Annotated[ConversationId | None, checked(_new_or_conversation)] = None


class ChatEscalateIn(Body):
    """Hand the conversation over to a person: join the waiting room with it as transcript."""

    conversation_id: ConversationId
    offer: Annotated[
        Literal["video"],
        Fails("unsupported_offer", 'only "video" joins a queue; appointments and questions have their URL'),
    ] = "video"
    language: Annotated[str, Fails("unknown_language", '"language" must be a language code')] = Field(
        default=None, description="default: the conversation's language"
    )


class ChatDownloadIn(Body):
    """The conversation to download. The id goes in the body, never in a URL: a browser keeps the URLs it
    downloaded from, and on a shared computer the next user must not find the capability there."""

    conversation_id: ConversationId


class ChatOffer(Answer):
    """What the citizen can do instead of chatting: video now, an appointment, a written question."""

    type: Literal["video", "appointment", "question"]
    office: str | None = None
    office_name: str | None = None
    language: str | None = None
    available: bool | None = Field(default=None, description="open now and someone online serves it")
    open_now: bool | None = None
    advisors_online: int | None = None
    languages_online: list[str] | None = None
    conversation_language: str | None = Field(default=None, description="the language the citizen writes")
    language_online: bool | None = Field(
        default=None, description="someone online for this office advises in the conversation's language"
    )
    next_opening: datetime | None = None
    url: str | None = None


class Escalation(Answer):
    reason: Literal["person_requested", "low_confidence", "unhelpful_answers", "german_only"]
    offers: list[ChatOffer]


class ChatChecked(Answer):
    """When a person last checked the answer's text (in the language it is shown in)."""

    date: str = Field(description="ISO date, e.g. 2026-12-05")
    text: str = Field(description="the date as the page's language writes it (CLDR), e.g. 5. Dezember 2026")


class ChatOfficeRef(Answer):
    """The office responsible for the answer's topic (the city's; the Bürgertelefon when it has none)."""

    id: str
    name: str = Field(description="in the citizen's language where the city names it so, else German")


class ChatReply(Answer):
    """The chatbot's answer to one message."""

    conversation_id: str
    reply: str = Field(description="plain text; paragraphs separated by a blank line")
    topic: str | None = Field(description="topic id of chatbot/knowledge")
    confidence: float = Field(ge=0, le=1)
    language: Literal[LANGUAGES]  # type: ignore[valid-type]
    escalation: Escalation | None
    # additions to the contract: what kind of reply, clickable suggestions, links to show as anchors
    kind: str = "answer"
    suggestions: list[dict[str, str]] = Field(default_factory=list, description="[{topic, title}]")
    links: list[dict[str, str]] = Field(default_factory=list, description="[{title, url}]")
    # an answer's provenance (topic replies only)
    checked: ChatChecked | None = None
    office: ChatOfficeRef | None = None
    german_parts: list[str] = Field(
        default_factory=list,
        description='parts shown in German although the citizen writes another language ("answer": all)',
    )
