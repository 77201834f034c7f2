"""GET /api/openapi.json: the OpenAPI 3.1 document of every /api route, made from the same pydantic models
that validate the bodies (web/<area>/models.py) and from one declaration per route.

`api_route(routes.post, "/api/queue", body=EnqueueIn, answers={201: EnqueueOut}, errors=(404, 409), …)`
registers the aiohttp handler and records its operation; the statuses every route of its kind can
answer are added here (400/413/415 for a JSON body, 401/403 for staff, 429 when throttled, 503 while the
store is away). tests/test_openapi_drift.py holds the router, the models and the committed snapshot
tests/data/openapi.json to this document. After an intended change:

    python -m sprechstunde.web.core.openapi > tests/data/openapi.json
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sprechstunde.web.core.models import ErrorOut
from sprechstunde.web.core.services import SERVICES, Services

routes = web.RouteTableDef()
JSON = "application/json"


@dataclass(frozen=True)
class Fragment:
    """A hand-written part of the document, for routes outside /api/ that have no models (health)."""

    paths: dict[str, Any]
    schemas: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


# Dates in query parameters (web/booking/api.py accepts 1970-01-01…9998-12-31: the calendar code adds days
# and time-zone offsets to them, which must stay inside Python's years 1…9999).
_YEAR = "(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
DATE = {"type": "string", "format": "date", "pattern": f"^{_YEAR}-", "examples": ["2027-01-12"]}
MONTH = {"type": "string", "pattern": f"^{_YEAR}-(0[1-9]|1[0-2])$", "examples": ["2027-01"]}


ERROR_TEXT = {
    400: "invalid input (the code names the problem)",
    401: "not signed in",
    403: "forbidden: forged or wrong token, missing CSRF header, another office or role",
    404: "unknown office, service, booking, room, document or entry",
    409: "conflict with the current state, e.g. slot_taken (with fresh `slots`), closed, not_claimed",
    410: "the link or the thing it names has expired or was deleted",
    413: "body too large",
    415: "not a JSON body (Content-Type: application/json) or an unsupported file type",
    422: "idempotency key reused for a different request",
    429: "rate limited",
    500: "the stored document is damaged and cannot be delivered",
    503: "the store (Redis) cannot be reached right now, or the feature is not configured; try again",
}


def errors(*statuses: int) -> dict[str, Any]:
    """The error responses of an operation, all `{"error": {"code", "message"}}`."""
    return {str(s): body(ref("ErrorOut"), ERROR_TEXT.get(s, "error")) for s in statuses}


Auth = Literal["staff", "staff_change", "room", "room_change"] | None
# who may call: the session cookie (staff), with the CSRF header for changes; or a room's join token
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "staff": [{"session": []}],
    "staff_change": [{"session": [], "csrf": []}],
    "room": [{"joinToken": []}, {"session": []}],
    "room_change": [{"joinToken": []}, {"session": [], "csrf": []}],
}
AUTH_ERRORS = {"staff": (401,), "staff_change": (401, 403), "room": (401, 403), "room_change": (401, 403)}
TAGS = {
    "staff": "Staff sign-in and consultation rooms",
    "documents": "Files and links shared in a consultation room (join token or staff session)",
    "waiting-room": "Join the video queue of an office; written questions",
    "consultations": "The advisor's running consultations and the offices' tickets (session + CSRF)",
    "statistics": "Office statistics",
    "booking": "Appointments for citizens (no account; manage token)",
    "booking-staff": "Appointments for advisors (session + CSRF)",
    "chatbot": "Questions answered from the knowledge base; hand-over to a person",
    "operations": "Health checks and this document",
}


@dataclass(frozen=True)
class Raw:
    """An answer (or request body) that is not JSON: its media types and schema."""

    description: str
    content: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """What the document says of one route; recorded by `api_route` next to its handler."""

    method: str
    path: str
    tag: str
    summary: str
    body: type[BaseModel] | Raw | None
    answers: Mapping[int, type[BaseModel] | Raw | None]
    errors: tuple[int, ...]
    auth: Auth
    params: tuple[dict[str, Any], ...]
    throttled: bool
    store: bool

    def statuses(self) -> list[int]:
        """Every error status: the route's own and those of its kind."""
        found = set(self.errors) | set(AUTH_ERRORS.get(self.auth or "", ()))
        if self.body is not None:
            found |= {400, 413, 415}  # read_body/read_json: malformed, too large, not JSON
        if self.throttled:
            found.add(429)
        if self.store:
            found.add(503)  # web/core/observability.py store_middleware
        return sorted(found)


OPERATIONS: dict[tuple[str, str], Operation] = {}
Handler = Callable[[web.Request], Any]


def api_route(
    route: Callable[[str], Callable[[Handler], Handler]],
    path: str,
    *,
    tag: str,
    answers: Mapping[int, type[BaseModel] | Raw | None],
    body: type[BaseModel] | Raw | None = None,
    errors: tuple[int, ...] = (),
    auth: Auth = None,
    params: tuple[dict[str, Any], ...] = (),
    throttled: bool = False,
    store: bool = True,
    summary: str = "",
) -> Callable[[Handler], Handler]:
    """Register the handler with aiohttp (`route` is e.g. `routes.post`) and record its operation.
    `summary` defaults to the handler's docstring's first line."""
    method = route.__name__.upper()

    def register(handler: Handler) -> Handler:
        text = summary or (inspect.getdoc(handler) or "").split("\n", 1)[0]
        OPERATIONS[(method, path)] = Operation(
            method, path, tag, text, body, dict(answers), tuple(errors), auth, tuple(params), throttled, store
        )
        return route(path)(handler)

    return register


def query(name: str, schema: dict[str, Any], *, required: bool = False, description: str = "") -> dict:
    """A query parameter of an operation."""
    parameter = {"name": name, "in": "query", "required": required, "schema": schema}
    return parameter | ({"description": description} if description else {})


def header(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    parameter = {"name": name, "in": "header", "required": False, "schema": schema}
    return parameter | ({"description": description} if description else {})


REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]


def component_schemas() -> tuple[dict[tuple[type[BaseModel], str], dict[str, Any]], dict[str, Any]]:
    """Every model of the recorded operations as components: (model, mode) → its `$ref`, and the
    schemas by name. Bodies are described as pydantic validates them, answers as it serialises them."""
    models: list[tuple[type[BaseModel], Mode]] = [(ErrorOut, "serialization")]
    for operation in OPERATIONS.values():
        if isinstance(operation.body, type):
            models.append((operation.body, "validation"))
        models += [(a, "serialization") for a in operation.answers.values() if isinstance(a, type)]
    unique = list(dict.fromkeys(models))
    refs, defs = models_json_schema(unique, ref_template=REF)
    return refs, defs.get("$defs", {})


def _content(what: type[BaseModel] | Raw, refs: Mapping[Any, Any], mode: str) -> dict[str, Any]:
    if isinstance(what, Raw):
        return dict(what.content)
    return {JSON: {"schema": refs[(what, mode)]}}


def _answer(what: type[BaseModel] | Raw | None, refs: Mapping[Any, Any]) -> dict[str, Any]:
    if what is None:
        return {"description": "no content"}
    if isinstance(what, Raw):
        return {"description": what.description, "content": dict(what.content)}
    text = inspect.cleandoc(what.__doc__).split("\n", 1)[0] if what.__doc__ else what.__name__
    return {"description": text, "content": _content(what, refs, "serialization")}


def path_item(operation: Operation, refs: Mapping[Any, Any]) -> dict[str, Any]:
    """The OpenAPI operation object of one recorded route."""
    own = {p["name"] for p in operation.params}
    names = [part[1:-1] for part in operation.path.split("/") if part.startswith("{") and part.endswith("}")]
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
        if name not in own
    ]
    item: dict[str, Any] = {"tags": [operation.tag], "summary": operation.summary}
    if params or operation.params:
        item["parameters"] = [*params, *operation.params]
    if operation.auth:
        item["security"] = SECURITY[operation.auth]
    if operation.body is not None:
        item["requestBody"] = {"required": True, "content": _content(operation.body, refs, "validation")}
    item["responses"] = {str(s): _answer(a, refs) for s, a in sorted(operation.answers.items())}
    item["responses"] |= errors(*operation.statuses())
    return item


# Liveness and readiness for load balancers (web/core/api.py, web/core/observability.py).
HEALTH = Fragment(
    tags=[{"name": "operations", "description": "Health checks"}],
    paths={
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "summary": "The process is alive",
                "responses": {"200": body({"type": "object", "properties": {"status": {"const": "ok"}}})},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "summary": "The store answers (Redis PING, SQLite query); else 503 store_unavailable",
                "responses": {"200": body({"type": "object"}), **errors(503)},
            }
        },
    },
)


def fragments() -> list[Fragment]:
    """Hand-written parts: the health checks, which are not under /api/ and have no models."""
    return [HEALTH]


def document(server_url: str) -> dict[str, Any]:
    """The whole document: every recorded operation, the health checks, the component schemas."""
    refs, schemas = component_schemas()
    paths: dict[str, Any] = {}
    for operation in OPERATIONS.values():
        paths.setdefault(operation.path, {})[operation.method.lower()] = path_item(operation, refs)
    tags = [{"name": name, "description": text} for name, text in TAGS.items()]
    for fragment in fragments():
        for path, operations in fragment.paths.items():
            paths.setdefault(path, {}).update(operations)
        schemas |= fragment.schemas
        tags += [t for t in fragment.tags if t["name"] not in TAGS]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sprechstunde API",
            "version": "1",
            "description": "JSON APIs of Sprechstunde: waiting room, consultations, documents, appointment "
            'booking, chatbot. Errors are {"error": {"code", "message"}}. Staff routes need the session '
            "cookie (POST /api/login) and, when they change something, the X-CSRF-Token header; a room's "
            "documents also accept its join link's token in X-Join-Token.",
        },
        "servers": [{"url": server_url}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sprechstunde_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "joinToken": {"type": "apiKey", "in": "header", "name": "X-Join-Token"},
            },
        },
    }


OPENAPI_JSON = Raw("this document", {JSON: {"schema": {"type": "object"}}})


@api_route(routes.get, "/api/openapi.json", tag="operations", answers={200: OPENAPI_JSON}, store=False)
async def openapi(request: web.Request) -> web.Response:
    """This OpenAPI 3.1 document"""
    services: Services = request.app[SERVICES]
    return web.json_response(document(services.config.public_url))


def main() -> None:
    """Print the document as tests/data/openapi.json holds it (every area's routes imported)."""
    import json

    from sprechstunde.web.core import app  # noqa: F401  (imports every area, which records its routes)
    from sprechstunde.web.core import openapi as recorded  # this file run as __main__ is another module

    print(json.dumps(recorded.document(SNAPSHOT_SERVER), indent=2, ensure_ascii=False))


SNAPSHOT_SERVER = "http://localhost:8080"

if __name__ == "__main__":
    main()
