"""Typed edges: one pydantic declaration per JSON body gives both its validation and its OpenAPI schema.

`read_model(request, Model)` is the one way a handler reads a typed body: the bounded body of
`read_json` (413 `too_large`, 415 `unsupported_media_type`, 400 `bad_json` as before), then the model.
The first problem found — in the order the fields are declared — becomes a `DomainError` with the
field's stable code, so clients and tests keep matching on the same `code` and `status`:

- a validator that knows the precise problem raises `refuse(code, message, status, **detail)` (a
  `PydanticCustomError` carrying the DomainError);
- a rule the domain already has is not written again: `checked(domain_check)` calls it and carries
  its DomainError (QueueError, BookingError, …: each area's subclass) out unchanged;
- any other pydantic error (wrong type, missing field) takes the field's `Fails(code, message)` from
  its annotation, else the model's `invalid`.

Rules that need data (does this office exist, does it advise in this language, is this slot free) stay in
the domain, after the body's shape and its data-free rules have passed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from aiohttp import web
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sprechstunde.errors import DomainError
from sprechstunde.rooms.service import parse_duration

Model = TypeVar("Model", bound=BaseModel)
T = TypeVar("T")
# the key under which a refusal carries its DomainError through pydantic (never a `{name}` in a message)
_CARRIED = "sprechstunde_domain_error"


@dataclass(frozen=True)
class Fails:
    """The stable error of a field (as `Annotated` metadata) or of a model (`Body.invalid`) for pydantic's
    own errors: wrong type, missing, too long."""

    code: str
    message: str
    status: int = 400

    def error(self) -> DomainError:
        return DomainError(self.code, self.message, self.status)


def refuse(code: str, message: str, status: int = 400, **detail: Any) -> PydanticCustomError:
    """What a validator raises for a precise problem: pydantic's error, carrying the DomainError."""
    return carry(DomainError(code, message, status, **detail))


def carry(error: DomainError) -> PydanticCustomError:
    return PydanticCustomError(error.code, error.message, {_CARRIED: error})


def checked(check: Callable[[Any], T]) -> BeforeValidator:
    """A field validated by the domain's own rule (`check(value)` returns the clean value or raises the
    domain's error): one rule in one place, reported with the domain's code and message."""

    return BeforeValidator(lambda value: apply(check, value))


def apply(check: Callable[..., T], *args: Any) -> T:
    """`check(*args)` inside a validator: the domain's DomainError travels as pydantic's error."""
    try:
        return check(*args)
    except DomainError as exc:
        raise carry(exc) from None


class Body(BaseModel):
    """Base of the request bodies: unknown keys are ignored (as before), and a required field that is
    missing reaches its validators as null, so that it fails with the field's own code, as when it is
    sent as null."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    invalid: ClassVar[Fails] = Fails("bad_request", "the body does not have the expected fields")

    @model_validator(mode="before")
    @classmethod
    def _missing_is_null(cls, data: Any) -> Any:
        if isinstance(data, dict):
            missing = [n for n, f in cls.model_fields.items() if f.is_required() and n not in data]
            if missing:
                data = {**data, **dict.fromkeys(missing)}
        return data


class Answer(BaseModel):
    """Base of the JSON answers: fields the model does not list may be there too (additive contract)."""

    model_config = ConfigDict(extra="allow")


def validate(model: type[Model], data: Any) -> Model:
    """`data` as `model`, or the DomainError of its first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise first_error(model, exc) from None


def first_error(model: type[BaseModel], exc: ValidationError) -> DomainError:
    """The first problem of a failed validation as the DomainError clients match on."""
    error = exc.errors()[0]
    carried = (error.get("ctx") or {}).get(_CARRIED)
    if isinstance(carried, DomainError):
        return carried
    field = model.model_fields.get(str(error["loc"][0])) if error["loc"] else None
    for meta in field.metadata if field is not None else ():
        if isinstance(meta, Fails):
            return meta.error()
    fails = getattr(model, "invalid", None)
    return fails.error() if isinstance(fails, Fails) else Body.invalid.error()


async def read_model(request: web.Request, model: type[Model], *, form: bool = False) -> Model:
    """The request's body as `model`: a JSON object (or, with `form`, an HTML form's text fields), bounded
    and validated; DomainError (400, 413, 415 …) with a stable code otherwise."""
    from sprechstunde.web.core.api import read_form, read_json  # web.core.api reads its bodies with this

    data: Any = dict(await read_form(request)) if form else await read_json(request)
    return validate(model, data)


# --- the error body and the core area (sign-in, rooms) ----------------------------------------------


class ErrorDetail(Answer):
    """`code` is stable (match on it); `message` is English for developers; extras such as
    `next_opening`, `office`, `languages`, `field` or `slots` depend on the code."""

    code: str
    message: str


class ErrorOut(Answer):
    """Every error of the JSON API."""

    error: ErrorDetail


class LoginIn(Body):
    """Staff sign-in (POST /api/login)."""

    invalid: ClassVar[Fails] = Fails("bad_request", "username and password are required")
    username: str = Field(examples=["berater"])
    password: str


class LoginOut(Answer):
    """Signed in: the session cookie is set; send `csrf` as X-CSRF-Token with every change."""

    username: str
    role: str
    offices: list[str]
    csrf: str


def _ttl(value: Any) -> float:
    return parse_duration(str(value))  # as before: any JSON value is read as its text ("7200", "2h")


NO_OFFICE = Fails("invalid_office", "office is required")


class RoomIn(Body):
    """A consultation room of one office for `ttl` (POST /api/rooms)."""

    office: Annotated[str, NO_OFFICE] = Field(
        default=None, description="office id; without it the first office of the signed-in member"
    )
    ttl: Annotated[
        float,
        checked(_ttl),
        WithJsonSchema(
            {
                "type": ["string", "number"],
                "default": "2h",
                "description": "90m, 2h, 1d, 45s or seconds; 1 minute to 7 days",
                "examples": ["2h"],
            }
        ),
    ] = Field(default="2h", validate_default=True)


class RoomOut(Answer):
    """The room's two links: the advisor's and the citizen's (both carry their signed token)."""

    room_id: str
    advisor_url: str
    citizen_url: str
    expires_at: datetime
