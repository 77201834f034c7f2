"""One error model (issue 16): every domain raises a DomainError, one middleware renders it.

- each DomainError subclass comes out of /api/ as the same `{"error": {"code", "message", **detail}}`;
- a page shows the localised error page, worded by the page (`page_errors`);
- a socket whose response went out is closed with the error instead;
- and no handler in web/ translates errors by hand any more (a structural guard).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web

import sprechstunde.documents.service
import sprechstunde.rooms.errors
import sprechstunde.rooms.service
import sprechstunde.rooms.staff
import sprechstunde.scheduling.errors
import sprechstunde.signaling.hub
import sprechstunde.signaling.protocol  # noqa: F401  (the imports register the subclasses)
from sprechstunde.errors import DomainError
from sprechstunde.web.core.errors import error_middleware, page_errors
from sprechstunde.web.core.security import response_prepared

WEB = Path(__file__).parent.parent / "sprechstunde" / "web"
AREAS = {
    "RoomError",
    "QueueError",
    "BookingError",
    "DocumentError",
    "StaffError",
    "AdmissionError",
    "ProtocolError",
}


def domain_errors() -> list[type[DomainError]]:
    found, todo = [], [DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def error_app(pages: list[tuple[str, int, str]]) -> web.Application:
    """A bare app with the real middleware: /api/<class> and /page/<class> raise that DomainError; the
    error page is recorded as (path, status, message key)."""

    def render_page(request: web.Request, status: int, key: str) -> web.Response:
        pages.append((request.path, status, key))
        return web.Response(text=key, status=status, content_type="text/html")

    classes = {cls.__name__: cls for cls in domain_errors()}

    async def raising(request: web.Request) -> web.Response:
        raise classes[request.match_info["name"]]("some_code", "what went wrong", 409, field="name")

    @page_errors("page.default", {409: "page.conflict"})
    async def worded(request: web.Request) -> web.Response:
        raise classes[request.match_info["name"]]("some_code", "what went wrong", 409)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        raise DomainError("room_full", "a room holds at most 4 people", 409)

    app = web.Application(middlewares=[error_middleware(render_page)])
    app.on_response_prepare.append(response_prepared)
    app.router.add_get("/api/{name}", raising)
    app.router.add_get("/page/{name}", raising)
    app.router.add_get("/worded/{name}", worded)
    app.router.add_get("/ws", socket)
    return app


async def test_every_domain_error_renders_the_same_json(aiohttp_client):
    assert AREAS <= {cls.__name__ for cls in domain_errors()}
    client = await aiohttp_client(error_app([]))
    for cls in domain_errors():
        response = await client.get(f"/api/{cls.__name__}")
        assert response.status == 409, cls
        assert await response.json() == {
            "error": {"code": "some_code", "message": "what went wrong", "field": "name"}
        }, cls


async def test_a_page_shows_its_own_wording_or_the_generic_one(aiohttp_client):
    pages: list[tuple[str, int, str]] = []
    client = await aiohttp_client(error_app(pages))
    for cls in domain_errors():
        assert (await client.get(f"/worded/{cls.__name__}")).status == 409
        assert (await client.get(f"/page/{cls.__name__}")).status == 409
    assert set(pages) == {
        *((f"/worded/{cls.__name__}", 409, "page.conflict") for cls in domain_errors()),
        *((f"/page/{cls.__name__}", 409, "error.internal") for cls in domain_errors()),
    }


@pytest.mark.parametrize(
    ("path", "lang", "status", "key"),
    [
        ("/join/not-a-token", "en", 403, "error.invalid_token"),
        ("/join/not-a-token", "de", 403, "error.invalid_token"),
        ("/wait/not-a-token", "de", 403, "error.invalid_token"),
        ("/termin/verwalten/not-a-token", "en", 403, "error.invalid_token"),
        ("/termin/vhs/no-such-service", "de", 404, "error.not_found"),
    ],
)
async def test_a_page_route_renders_the_localised_page(client, services, path, lang, status, key):
    response = await client.get(path, headers={"Accept-Language": lang})
    assert response.status == status
    assert response.content_type == "text/html"
    html = await response.text()
    assert services.pages.catalog.get(lang, key) in html
    assert services.pages.catalog.get(lang, "error.title") in html


async def test_an_error_after_the_socket_opened_closes_it(aiohttp_client):
    client = await aiohttp_client(error_app([]))
    ws = await client.ws_connect("/ws")
    message = await ws.receive_json()
    assert message == {"type": "error", "code": "room_full", "message": "a room holds at most 4 people"}
    closed = await ws.receive()
    assert closed.type == WSMsgType.CLOSE and closed.data == 1008 and closed.extra == "room_full"


def _name(node: ast.AST | None) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def test_no_handler_translates_errors_by_hand():
    """Structural guard: in web/, no `except SomeDomainError: return <an error response>`, no function
    that turns a domain error into a response, and no `X | web.Response` return (raise instead)."""
    caught = {cls.__name__ for cls in domain_errors()}
    found = []
    for path in sorted(WEB.rglob("*.py")):
        if path == WEB / "core" / "errors.py":
            continue  # the one place that renders them
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(WEB.parent.parent)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                returns = ast.unparse(node.returns) if node.returns else ""
                if "|" in returns and "web.Response" in returns:
                    found.append(f"{where}:{node.lineno} {node.name} returns {returns}")
                takes = {_name(a.annotation) for a in node.args.args if a.annotation is not None}
                if takes & caught and "Response" in returns:
                    found.append(f"{where}:{node.lineno} {node.name} translates {takes & caught}")
            if isinstance(node, ast.ExceptHandler):
                types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                if not {_name(t) for t in types} & caught:
                    continue
                for inner in (n for statement in node.body for n in ast.walk(statement)):
                    if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Call):
                        called = _name(inner.value.func)
                        if called in ("json_response", "json_error", "error") or called.endswith("_error"):
                            found.append(f"{where}:{inner.lineno} returns {called}(…) for a domain error")
    assert found == []
