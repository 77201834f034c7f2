"""The one e-mail check and the one phone check (sprechstunde/contact.py).

Before, the booking form and the written question each had their own pair of regexes, and they disagreed
("a@b.c" was a question's contact but no booking's address) or erred alike ("123456" was a phone number,
"x@y.test" an address).
"""

from __future__ import annotations

import pytest

from sprechstunde.contact import valid_email, valid_phone
from sprechstunde.rooms.errors import QueueError
from sprechstunde.rooms.queue import check_contact
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import check_person


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("erika@example.org", "erika@example.org"),
        ("  erika@example.org ", "erika@example.org"),
        ("Erika@Example.ORG", "Erika@example.org"),  # the domain is case-insensitive, the mailbox is not
        ("a@b.c", "a@b.c"),  # the old booking regex wanted a two-letter TLD, the queue's did not
        ("max.mustermann@köln.de", "max.mustermann@köln.de"),  # an internationalised domain
        ("x@@y.de", None),
        ("kein@mail", None),  # no dot after the @
        ("erika@", None),
        ("a b@c.de", None),
        ("a@b.de;c@d.de", None),
        ("<a@b.de>", None),
        ("erika\u202e@example.org", None),  # a text-direction override
        ("x@y.test", None),  # a reserved name that cannot receive mail
        ("", None),
    ],
)
def test_valid_email(text, expected):
    assert valid_email(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+49 221 12345678", "+4922112345678"),
        ("+49 221 123456", "+49221123456"),
        ("0221 1234567", "+492211234567"),  # national, in the default region
        ("(0221) 123-456", "+49221123456"),
        ("0221/1234567", "+492211234567"),
        ("0049 221 1234567", "+492211234567"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0171-1234567", "+491711234567"),
        ("123456", None),  # six digits are no number (the old regex took any six)
        ("110", None),
        ("++49 221 1234567", None),
        ("call me 0221 1234567", None),  # no number fished out of a sentence
        ("0221 1234567 ext 5", None),
        ("+", None),
        ("", None),
    ],
)
def test_valid_phone(text, expected):
    assert valid_phone(text) == expected


def test_a_national_number_is_read_in_the_region_given():
    assert valid_phone("020 7946 0958", region="GB") == "+442079460958"


def test_the_question_contact_and_the_booking_use_the_same_checks():
    """Where the two forms used to disagree, they now agree; a phone number stays as written."""
    assert check_contact("a@b.c") == "a@b.c"
    assert check_person("Erika", "a@b.c", None, True).email == "a@b.c"
    assert check_contact(" +49 221 123456 ") == "+49 221 123456"
    assert check_person("Erika", None, "0221 1234567", True).phone == "0221 1234567"
    with pytest.raises(BookingError, match="e-mail"):
        check_person("Erika", "x@@y.de", None, True)
    with pytest.raises(BookingError, match="phone"):
        check_person("Erika", None, "123456", True)
    for contact in ("123456", "x@@y.de"):
        with pytest.raises(QueueError) as refused:
            check_contact(contact)
        assert refused.value.code == "invalid_contact"
