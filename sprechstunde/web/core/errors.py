"""Every error answer of the web layer, rendered in one place (`error_middleware`).

- A `DomainError` (sprechstunde/errors.py), raised by a domain or a handler, is answered
  `{"error": {"code", "message", **detail}}` with its `status` under /api/; on a page it is the localised
  error page, worded by the page's `page_errors` (a message key per status) or, without one, "not found"
  or "something went wrong"; on a connection whose response went out already (a WebSocket, a streamed
  download) the connection is ended instead (security.end_prepared: an `error` message and a close).
- aiohttp's own HTTP errors (404, 405, 413 …) the same way, keeping their protocol headers (`Allow` on
  405, `WWW-Authenticate`, `Retry-After`).
- Anything else is a bug: logged with its stack trace, answered 500 `internal`; the trace never leaves
  the server.

So handlers raise and never translate: no `try/except SomeError: return json_error(...)` per route.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from sprechstunde.errors import DomainError
from sprechstunde.web.core.security import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    PREPARED,
    Handler,
    end_prepared,
    end_socket,
    mask_tokens,
)

log = logging.getLogger(__name__)

ErrorPage = Callable[[web.Request, int, str], web.Response]
_BODY_HEADERS = {"content-type", "content-length", "content-encoding", "transfer-encoding"}


@dataclass(frozen=True)
class PageErrors:
    """How a page words a refused request: a catalog key (sprechstunde/locales) per status, else `default`."""

    default: str
    by_status: Mapping[int, str] = field(default_factory=dict)

    def key(self, status: int) -> str:
        return self.by_status.get(status, self.default)


# a page that declared nothing: what an HTTP error of that status would show
GENERIC = PageErrors("error.internal", {404: "error.not_found"})
PAGE_ERRORS = web.RequestKey("page_errors", PageErrors)
# a non-/api/ route whose errors are JSON all the same (a download the console's script asks for)
JSON_ERRORS = web.RequestKey("json_errors", bool)


def page_errors(default: str, by_status: Mapping[int, str] | None = None) -> Callable[[Handler], Handler]:
    """Decorator for a page handler: a DomainError it raises shows the error page with the message key
    for its status (`by_status`) or `default` — the page's own wording ("this link has expired")."""
    wording = PageErrors(default, dict(by_status or {}))

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def worded(request: web.Request) -> web.StreamResponse:
            request[PAGE_ERRORS] = wording
            return await handler(request)

        return worded

    return decorate


def json_errors(handler: Handler) -> Handler:
    """Decorator for a route outside /api/ whose DomainErrors are answered as JSON, like the API's."""

    @functools.wraps(handler)
    async def as_json(request: web.Request) -> web.StreamResponse:
        request[JSON_ERRORS] = True
        return await handler(request)

    return as_json


def json_error(status: int, code: str, message: str) -> web.Response:
    """The API's error answer `{"error": {"code", "message"}}`."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def error_middleware(render_page: ErrorPage) -> Callable:
    """API routes answer JSON errors, pages the localised error page; a stack trace never leaves the
    server; and no answer is written into a connection whose response (a WebSocket) went out already."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        api = request.path.startswith("/api/")
        try:
            return await handler(request)
        except DomainError as exc:
            if (prepared := request.get(PREPARED)) is not None:
                return await end_prepared(request, prepared, _close_code(exc.status), exc.code, exc.message)
            if api or request.get(JSON_ERRORS, False):
                return web.json_response({"error": exc.body()}, status=exc.status)
            return render_page(request, exc.status, request.get(PAGE_ERRORS, GENERIC).key(exc.status))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = exc.reason.lower().replace(" ", "_")
            if (prepared := request.get(PREPARED)) is not None:
                return await end_prepared(request, prepared, _close_code(exc.status), code, exc.reason)
            if api:
                response = json_error(exc.status, code, exc.reason)
            else:
                response = render_page(request, exc.status, GENERIC.key(exc.status))
            # `Allow` of a 405 (RFC 9110 requires it), WWW-Authenticate, Retry-After … stay on the answer
            for name, value in exc.headers.items():
                if name.lower() not in _BODY_HEADERS:
                    response.headers.setdefault(name, value)
            return response
        except Exception:
            log.exception("unhandled error on %s %s", request.method, mask_tokens(request.path))
            ended = await end_socket(request, CLOSE_INTERNAL, "internal", "the server could not process this")
            if ended is not None:
                return ended
            if api:
                return json_error(500, "internal", "internal server error")
            return render_page(request, 500, "error.internal")

    return middleware


def _close_code(status: int) -> int:
    """The WebSocket close code for an HTTP error status raised after the socket was opened."""
    return CLOSE_POLICY if status < 500 else CLOSE_INTERNAL
