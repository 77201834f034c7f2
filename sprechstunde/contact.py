"""The one e-mail check and the one phone check, for every form that asks how to reach a citizen.

Both judge with a maintained library instead of a home-made pattern: `email_validator` knows the
address syntax (RFC 5321/5322, internationalised domains, unsafe characters such as text-direction
overrides), `phonenumbers` (Google's libphonenumber metadata) knows which digits make a number in which
country. Two regexes did this before and disagreed ("a@b.c", "max.mustermann@köln.de", "123456").

Nothing is looked up on the network: whether a mailbox exists is not ours to decide at a form.
This module imports nothing of the project, so every package may use it.
"""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

DEFAULT_REGION = "DE"
# What a phone field may hold besides digits. phonenumbers.parse() would otherwise fish a number out of
# a sentence ("ruf mich an: 0221 …") or skip a doubled "+"; a contact field holds the number alone.
_PHONE_TEXT = re.compile(r"\+?[0-9 ()/.\-]+")


def valid_email(text: str) -> str | None:
    """The normalised address (domain in canonical form) when `text` is a usable e-mail address, else
    None. Surrounding spaces are ignored; deliverability (DNS) is not checked."""
    if not isinstance(text, str):
        return None
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def valid_phone(text: str, region: str = DEFAULT_REGION) -> str | None:
    """The number in E.164 ("+492211234567") when `text` is a valid phone number — international, or
    national in `region` — else None. Callers that show the number keep the citizen's own spelling."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not _PHONE_TEXT.fullmatch(text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
