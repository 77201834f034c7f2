"""Response headers and error rendering shared by every route."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
    "Cross-Origin-Opener-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorPage = Callable[[web.Request, int, str], web.Response]


class ApiError(Exception):
    """Raised by API handlers; rendered as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def error_middleware(render_page: ErrorPage) -> Callable:
    """API routes answer JSON errors, pages a human sentence; a stack trace never leaves the server."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        api = request.path.startswith("/api/")
        try:
            return await handler(request)
        except ApiError as exc:
            return json_error(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if api:
                code = exc.reason.lower().replace(" ", "_")
                return json_error(exc.status, code, exc.reason)
            key = "error.not_found" if exc.status == 404 else "error.internal"
            return render_page(request, exc.status, key)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            if api:
                return json_error(500, "internal", "internal server error")
            return render_page(request, 500, "error.internal")

    return middleware


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(("/join/", "/console", "/login", "/api/")):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
