"""GET /api/openapi.json: one OpenAPI 3.1 document for the public JSON APIs, assembled from fragments.

Each API area contributes a `Fragment` (paths and component schemas) to `FRAGMENTS`; the document is
their union. To describe a new area (e.g. POST /api/chatbot/messages), define a Fragment next to its
routes and add it to FRAGMENTS below — nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sprechstunde.web.core.services import SERVICES, Services

routes = web.RouteTableDef()
JSON = "application/json"


@dataclass(frozen=True)
class Fragment:
    paths: dict[str, Any]
    schemas: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def request(schema: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body."""
    return {"required": True, "content": {JSON: {"schema": schema}}}


def body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


# Dates in query parameters (web/booking_api.py accepts 1970-01-01…9998-12-31: the calendar code adds days
# and time-zone offsets to them, which must stay inside Python's years 1…9999).
_YEAR = "(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
DATE = {"type": "string", "format": "date", "pattern": f"^{_YEAR}-", "examples": ["2027-01-12"]}
MONTH = {"type": "string", "pattern": f"^{_YEAR}-(0[1-9]|1[0-2])$", "examples": ["2027-01"]}


def errors(*statuses: int) -> dict[str, Any]:
    """The error responses of an operation, all `{"error": {"code", "message"}}`."""
    text = {
        400: "invalid input (the code names the problem)",
        401: "not signed in",
        403: "forbidden: forged token, missing CSRF header, another office",
        404: "unknown office, service, booking or entry",
        409: "conflict, e.g. slot_taken (with fresh `slots`) or not_booked",
        410: "the link has expired",
        413: "body too large",
        415: "not a JSON body (Content-Type: application/json)",
        422: "idempotency key reused for a different request",
        429: "rate limited",
        503: "the store (Redis) cannot be reached right now; try again",
    }
    return {str(s): body(ref("Error"), text.get(s, "error")) for s in statuses}


COMMON = Fragment(
    paths={},
    schemas={
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    "additionalProperties": True,
                }
            },
        }
    },
)

# The waiting room's public routes (web/queue_api.py).
QUEUE = Fragment(
    tags=[{"name": "waiting-room", "description": "Join the video queue of an office"}],
    paths={
        "/api/queue": {
            "post": {
                "tags": ["waiting-room"],
                "summary": "Join an office's queue; returns the waiting-room link",
                "requestBody": request(
                    {
                        "type": "object",
                        "required": ["language", "topic"],
                        "properties": {
                            "office": {"type": "string", "description": "office id; none: any"},
                            "language": {"type": "string", "examples": ["de"]},
                            "topic": {"type": "string", "maxLength": 200},
                            "note": {"type": "string", "maxLength": 500},
                            "transcript": {
                                "type": "array",
                                "maxItems": 200,
                                "items": {
                                    "type": "object",
                                    "required": ["role", "text"],
                                    "properties": {
                                        "role": {"enum": ["citizen", "bot"]},
                                        "text": {"type": "string"},
                                    },
                                },
                            },
                        },
                    }
                ),
                "responses": {
                    "201": body(
                        {
                            "type": "object",
                            "properties": {
                                "entry_id": {"type": "string"},
                                "waiting_url": {"type": "string", "format": "uri"},
                                "waiting_token": {"type": "string"},
                                "office": {"type": "object"},
                                "status": {"type": "object"},
                            },
                        },
                        "queued",
                    ),
                    **errors(400, 404, 409, 413, 415, 429),
                },
            }
        },
        "/api/offices": {
            "get": {
                "tags": ["waiting-room"],
                "summary": "Offices with service hours, open now, next opening, languages",
                "responses": {"200": body({"type": "object", "properties": {"offices": {"type": "array"}}})},
            }
        },
        "/api/questions": {
            "post": {
                "tags": ["waiting-room"],
                "summary": "Leave a question in writing (e.g. outside service hours); opens a ticket",
                "requestBody": request(
                    {
                        "type": "object",
                        "required": ["office", "language", "topic", "question", "contact"],
                        "properties": {
                            "office": {"type": "string"},
                            "language": {"type": "string", "examples": ["de"]},
                            "topic": {"type": "string", "maxLength": 200},
                            "question": {"type": "string", "maxLength": 2000},
                            "contact": {
                                "type": "string",
                                "maxLength": 200,
                                "description": "e-mail address or phone number for the answer",
                            },
                        },
                    }
                ),
                "responses": {
                    "201": body(
                        {
                            "type": "object",
                            "properties": {
                                "reference": {"type": "string", "examples": ["SP-2026-000123"]},
                                "office": {"type": "object"},
                            },
                        },
                        "the ticket's reference",
                    ),
                    **errors(400, 413, 415, 429),
                },
            }
        },
        "/api/best-times": {
            "get": {
                "tags": ["waiting-room"],
                "summary": "Arrival hours with the shortest median wait in the last 4 weeks (real data only)",
                "parameters": [{"name": "office", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": body(
                        {
                            "type": "object",
                            "properties": {
                                "office": {"type": ["string", "null"]},
                                "days": {"type": "integer"},
                                "hours": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "hour": {"type": "integer"},
                                            "median_wait_seconds": {"type": "integer"},
                                            "samples": {"type": "integer"},
                                        },
                                    },
                                },
                            },
                        }
                    ),
                    **errors(400),
                },
            }
        },
    },
)

# Liveness and readiness for load balancers (web/api.py, web/observability.py).
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
    """Every area's fragment. Add yours here (chatbot: POST /api/chatbot/messages)."""
    from sprechstunde.web.booking import api as booking_api
    from sprechstunde.web.chatbot import api as chatbot_api

    return [
        COMMON,
        QUEUE,
        HEALTH,
        booking_api.OPENAPI,
        chatbot_api.OPENAPI,
    ]


def document(server_url: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: list[dict[str, str]] = []
    for fragment in fragments():
        for path, operations in fragment.paths.items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(fragment.schemas)
        tags += fragment.tags
    for operations in paths.values():
        for operation in operations.values():
            if "requestBody" in operation:
                # What web/api.py read_json answers for any JSON body: malformed, too large, not JSON.
                for status, response in errors(400, 413, 415).items():
                    operation["responses"].setdefault(status, response)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sprechstunde API",
            "version": "1",
            "description": "Public JSON APIs of Sprechstunde: waiting room and appointment booking. "
            'Errors are {"error": {"code", "message"}}. Staff routes need the session cookie '
            "(POST /api/login) and, when they change something, the X-CSRF-Token header.",
        },
        "servers": [{"url": server_url}],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sprechstunde_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            },
        },
    }


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    return web.json_response(document(services.config.public_url))
