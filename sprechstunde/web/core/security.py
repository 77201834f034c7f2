"""Response headers, ending connections on error, and log masking shared by every route.

- Every response carries the security headers: the `response_prepared` hook (on_response_prepare) sets them
  on whatever goes out — handler results, redirects and errors raised as exceptions, streamed downloads,
  WebSocket upgrades — and `headers_middleware` on what a middleware chain returns or raises.
- Errors are rendered by web/core/errors.py; the helpers here end a connection whose response went out
  already (a WebSocket, a streamed download) instead of writing a second answer into it.
- Capability tokens (join, waiting room, download, booking manage and join links) are never written to a
  log: `mask_tokens` replaces them in any text (see web/core/observability.py's TokenFilter).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

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

CLOSE_POLICY = 1008  # WebSocket close code: refused (an HTTP 4xx raised after the socket was opened)
CLOSE_INTERNAL = 1011  # WebSocket close code: the server met an unexpected condition
CLOSE_TRY_AGAIN = 1013  # WebSocket close code: try again later (the client's reconnect logic takes over)
NO_STORE_PATHS = ("/join/", "/console", "/login", "/api/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# the response whose headers went out already (set by `response_prepared`)
PREPARED = web.RequestKey("prepared_response", web.StreamResponse)


def websocket_upgrade(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def end_socket(
    request: web.Request, close_code: int, code: str, message: str
) -> web.StreamResponse | None:
    """An error in a WebSocket handshake or after a response went out: never write an HTTP answer into
    that connection (see `end_prepared`). A handshake that failed before its socket was accepted is
    accepted here just to be closed with a code: a browser shows a refused handshake only as 1006, a
    close code says "try again later" (1013) or "server error" (1011). None: an ordinary request,
    answer it as usual."""
    prepared = request.get(PREPARED)
    if prepared is None:
        if not websocket_upgrade(request):
            return None
        accepted = web.WebSocketResponse()
        if not accepted.can_prepare(request).ok:
            return None  # not a valid handshake: the HTTP error is the right answer
        await accepted.prepare(request)
        prepared = accepted
    return await end_prepared(request, prepared, close_code, code, message)


async def end_prepared(
    request: web.Request, prepared: web.StreamResponse, close_code: int, code: str, message: str
) -> web.StreamResponse:
    """End a response whose headers went out: a WebSocket gets an `error` message and a close with
    `close_code` and `code` as reason; a streamed HTTP response is cut off, so that no client takes it
    for complete."""
    if isinstance(prepared, web.WebSocketResponse):
        if not prepared.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):  # the client may be gone already
                await prepared.send_json({"type": "error", "code": code, "message": message})
            await prepared.close(code=close_code, message=code.encode())
        return prepared
    if request.transport is not None:
        request.transport.abort()
    return prepared


def _add_security_headers(request: web.BaseRequest, headers: CIMultiDict[str]) -> None:
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    if request.path.startswith(NO_STORE_PATHS):
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The security headers on what the handler returns — and on a redirect or error it raises (aiohttp
    builds that response itself, after every middleware)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _add_security_headers(request, exc.headers)
        raise
    if not response.prepared:
        _add_security_headers(request, response.headers)
    return response


async def response_prepared(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the security headers on every response just before its headers go out —
    also those prepared inside a handler (streamed downloads, WebSocket upgrades), which no middleware
    can change any more. Remembers the prepared response, so that an error after it (a store outage in
    a WebSocket) closes that response instead of writing a second one into the connection."""
    _add_security_headers(request, response.headers)
    request[PREPARED] = response


# --- tokens in logs --------------------------------------------------------------------------------

# Routes whose next path segment is a capability token. Longer prefixes first (/api/bookings/join/<t>).
# The segment ends where a base64url token cannot go on (so "…/<t>: ConnectionError" keeps its colon).
CAPABILITY_PREFIXES = (
    "api/bookings/join",
    "api/bookings",
    "api/chatbot/conversations",  # the former GET of a chat's download: now POST, the id in the body
    "api/download",
    "api/endings",  # the citizen's end screen (web/consultations/ending.py)
    "termin/verwalten",
    "termin/beitreten",
    "join",
    "wait",
)
_CAPABILITY_PATH = re.compile(
    "/(" + "|".join(re.escape(prefix) for prefix in CAPABILITY_PREFIXES) + r")/[^/?#\s\"'<>:,;)\]}]+"
)
# A signed token anywhere (rooms/tokens.py: base64url claims "." 43-character HMAC), with whatever a
# client appended to it (`=`, `!!`): a token must not survive because it sits in an unusual place.
_TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{40,}[^\s/?#&\"'<>:,;)\]}]*")
# query values whose name says secret, whatever they look like
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[a-z_]*token|key|secret|password|session|sig|signature|resume|nonce)=)[^&#\s\"'<>]+"
)
MASK = "…"


def mask_tokens(text: str) -> str:
    """`text` with every capability token replaced by "…": path segments after a capability route,
    secret-named query values and anything shaped like a signed token."""
    if "/" not in text and "." not in text and "=" not in text:
        return text
    text = _SECRET_QUERY.sub(lambda m: m.group(1) + MASK, text)
    text = _CAPABILITY_PATH.sub(lambda m: f"/{m.group(1)}/{MASK}", text)
    return _TOKEN_SHAPE.sub(MASK, text)
