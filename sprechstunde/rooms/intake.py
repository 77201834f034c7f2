"""What a citizen hands the queue — topic, note, chatbot transcript, contact address — checked before
anything is stored: text-direction overrides removed (issue 15, finding 13), lengths bounded, a contact
that is an e-mail address or a phone number. Each check raises QueueError with a stable code."""

from __future__ import annotations

from typing import Any

from sprechstunde.contact import valid_email, valid_phone
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.text import has_bidi, strip_bidi

MAX_TOPIC = 200
MAX_NOTE = 500
MAX_QUESTION = 2000
MAX_CONTACT = 200
MAX_TRANSCRIPT_CHARS = 20_000
MAX_TRANSCRIPT_MESSAGES = 200
TRANSCRIPT_ROLES = ("citizen", "bot")


def check_topic(topic: Any) -> str:
    topic = strip_bidi(topic).strip() if isinstance(topic, str) else ""  # finding 13: no direction overrides
    if not topic:
        raise QueueError("invalid_topic", "a topic is required")
    if len(topic) > MAX_TOPIC:
        raise QueueError("invalid_topic", f"the topic may have at most {MAX_TOPIC} characters")
    return topic


def check_note(note: Any) -> str:
    note = strip_bidi(note).strip() if isinstance(note, str) else ""  # finding 13: no direction overrides
    if not note:
        raise QueueError("empty_note", "the note is empty")
    if len(note) > MAX_NOTE:
        raise QueueError("note_too_long", f"the note may have at most {MAX_NOTE} characters")
    return note


def check_transcript(transcript: Any) -> list[dict[str, str]]:
    """A chatbot transcript: a list of {"role": "citizen"|"bot", "text": str}, bounded in size."""
    if transcript is None:
        return []
    if not isinstance(transcript, list) or len(transcript) > MAX_TRANSCRIPT_MESSAGES:
        raise QueueError(
            "invalid_transcript",
            f"the transcript must be a list of at most {MAX_TRANSCRIPT_MESSAGES} messages",
        )
    clean, total = [], 0
    for message in transcript:
        if (
            not isinstance(message, dict)
            or message.get("role") not in TRANSCRIPT_ROLES
            or not isinstance(message.get("text"), str)
        ):
            raise QueueError("invalid_transcript", 'each message needs "role" (citizen or bot) and "text"')
        total += len(message["text"])
        clean.append({"role": message["role"], "text": strip_bidi(message["text"])})
    if total > MAX_TRANSCRIPT_CHARS:
        raise QueueError(
            "transcript_too_long", f"the transcript may have at most {MAX_TRANSCRIPT_CHARS} characters"
        )
    return clean


def check_contact(contact: Any) -> str:
    """An e-mail address or a phone number, so the office can answer a question."""
    if not isinstance(contact, str) or not contact.strip():
        raise QueueError("missing_contact", "give an e-mail address or phone number for the answer")
    contact = contact.strip()
    if has_bidi(contact):  # issue 15, finding 13: an address is taken as given, not cleaned
        raise QueueError("invalid_contact", "the address holds invisible text-direction characters")
    if len(contact) > MAX_CONTACT:
        raise QueueError("invalid_contact", "this is neither an e-mail address nor a phone number")
    email = valid_email(contact)
    if email is None and valid_phone(contact) is None:
        raise QueueError("invalid_contact", "this is neither an e-mail address nor a phone number")
    return email or contact  # a phone number as the citizen wrote it
