"""web/core/models.py: how a body model's first problem becomes the DomainError clients match on."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field

from sprechstunde.errors import DomainError
from sprechstunde.rooms.errors import QueueError
from sprechstunde.web.booking.models import BookingRequest
from sprechstunde.web.chatbot.models import ChatMessageIn
from sprechstunde.web.consultations.models import TicketChangeIn
from sprechstunde.web.core.models import Body, Fails, checked, refuse, validate
from sprechstunde.web.waiting.models import EnqueueIn


def _domain_rule(value: Any) -> str:
    if value != "ok":
        raise QueueError("not_ok", "only ok", 409, hint="ok")
    return value


def _precise(value: Any) -> int:
    if value == 13:
        raise refuse("unlucky", "not 13", 422)
    return value


class Sample(Body):
    invalid = Fails("sample_invalid", "the sample is wrong")
    name: Annotated[str, Fails("invalid_name", "a name is required")]
    rule: Annotated[str, checked(_domain_rule)] = "ok"
    number: Annotated[int, Field(ge=0), checked(_precise)] = 0


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        ({}, "invalid_name", 400),  # missing: the field's own code, as when sent as null
        ({"name": None}, "invalid_name", 400),
        ({"name": 5}, "invalid_name", 400),  # wrong type
        ({"name": "a", "rule": "no"}, "not_ok", 409),  # the domain's error, unchanged
        ({"name": "a", "number": 13}, "unlucky", 422),  # a validator's precise refusal
        ({"name": "a", "number": -1}, "sample_invalid", 400),  # pydantic's own: the model's default
        ({"name": 5, "rule": "no"}, "invalid_name", 400),  # the first field in declaration order wins
    ],
)
def test_first_problem_becomes_the_domain_error(data, code, status):
    with pytest.raises(DomainError) as refused:
        validate(Sample, data)
    assert (refused.value.code, refused.value.status) == (code, status)


def test_domain_error_keeps_its_class_and_detail():
    with pytest.raises(QueueError) as refused:
        validate(Sample, {"name": "a", "rule": "no"})
    assert refused.value.body() == {"hint": "ok", "code": "not_ok", "message": "only ok"}


def test_unknown_keys_are_ignored_and_values_cleaned_by_the_domain_rule():
    queued = validate(EnqueueIn, {"language": "de", "topic": "  Wohngeld ", "extra": 1})
    assert queued.topic == "Wohngeld" and queued.office is None and queued.transcript is None


@pytest.mark.parametrize(
    ("model", "data", "code"),
    [
        (ChatMessageIn, {"text": "  "}, "invalid_text"),
        (ChatMessageIn, {"text": "x" * 1001}, "text_too_long"),
        (ChatMessageIn, {"text": "hi", "language": "xx"}, "unknown_language"),
        (EnqueueIn, {"office": 7, "language": "de", "topic": "t"}, "unknown_office"),
        (EnqueueIn, {"language": "de", "topic": "t", "note": " "}, "empty_note"),
        (TicketChangeIn, {}, "nothing_to_change"),
        (TicketChangeIn, {"status": "lost"}, "invalid_status"),
        (
            BookingRequest,
            {"starts_at": "2027-01-12T09:00:00+01:00", "name": "E", "consent": "yes"},
            "consent_required",
        ),
    ],
)
def test_area_models_answer_with_the_stable_codes(model, data, code):
    with pytest.raises(DomainError) as refused:
        validate(model, data)
    assert refused.value.code == code
