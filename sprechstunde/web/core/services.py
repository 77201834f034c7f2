"""The application's services, built once at start-up and hung off the app (no module globals)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from sprechstunde.chatbot.service import ChatService
from sprechstunde.documents import DocumentService
from sprechstunde.rooms.queue import QueueService
from sprechstunde.rooms.service import RoomService
from sprechstunde.rooms.staff import StaffDirectory, StaffMember
from sprechstunde.rooms.tokens import TokenSigner
from sprechstunde.scheduling.bookings import SchedulingService
from sprechstunde.scheduling.mail import BookingMailer
from sprechstunde.signaling.hub import SignalingHub
from sprechstunde.signaling.waiting import WaitingRoom
from sprechstunde.store.port import Store
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.ratelimit import LoginThrottle, RequestThrottle
from sprechstunde.web.core.render import Pages

SESSION_COOKIE = "sprechstunde_session"
# the header staff pages and scripts send the CSRF token in (from POST /api/login or the page markup)
CSRF_HEADER = "X-CSRF-Token"
__all__ = [
    "CSRF_HEADER",
    "SERVICES",
    "SESSION_COOKIE",
    "LoginThrottle",
    "RequestThrottle",
    "Services",
    "cross_site",
    "own_origins",
]


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(request: web.Request, public_url: str) -> set[str]:
    """This server's origins: as the request addressed it (scheme after the trusted-proxy rule of
    web/core/proxy.py, Host header) and the configured public URL."""
    return {f"{request.scheme}://{request.host}".lower(), _origin_of(public_url)}


def cross_site(request: web.Request, public_url: str) -> bool:
    """Whether a POST was sent by a page of another site (login CSRF): its `Origin` — or, from a browser
    that sends none, its `Referer` — is neither this server as the request addressed it (scheme after
    the trusted-proxy rule of web/core/proxy.py, Host header) nor the configured public URL. Browsers send
    `Origin` with every cross-site form POST (the Fetch standard), with or without JavaScript, and a page
    cannot forge it. A request with neither header comes from no browser (curl, a script): nothing to
    forge, so it passes. `Origin: null` (sandboxed frames, some redirects) is refused.

    Our own pages send `Referrer-Policy: no-referrer`, under which browsers post `Origin: null` even from
    the same site; so the browser's `Sec-Fetch-Site` (which no page can set, and which the referrer policy
    does not touch) decides first when present: only `same-origin` and `none` (typed or bookmarked) pass."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in ("same-origin", "none")
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if claimed is None:
        return False
    return _origin_of(claimed.strip()) not in own_origins(request, public_url)


@dataclass
class Services:
    config: Config
    store: Store
    signer: TokenSigner
    rooms: RoomService
    staff: StaffDirectory
    pages: Pages
    hub: SignalingHub
    secret: bytes
    throttle: LoginThrottle
    documents: DocumentService
    # the waiting room: the queue's domain core and the sockets' shared state (change notifier, sweep)
    queue: QueueService
    waiting: WaitingRoom
    # appointments: slots, bookings, tokens; the job that sends confirmation and reminder mails
    scheduling: SchedulingService
    booking_mailer: BookingMailer
    # anonymous POST /api/queue: at most 30 per minute from one address (a chatbot proxies many citizens)
    # (web/core/ratelimit.py: counted per client network, on Redis shared by every node — build_services)
    queue_throttle: RequestThrottle = field(default_factory=lambda: RequestThrottle(per_network=30))
    # anonymous booking requests (POST /api/bookings, the booking form): at most 60 per minute per address
    # (a city portal or the chatbot may book for many citizens)
    booking_throttle: RequestThrottle = field(default_factory=lambda: RequestThrottle(per_network=60))
    # the chatbot (knowledge base, conversations, imported pages); its messages: 60 a minute per address
    chatbot: ChatService | None = None
    chatbot_throttle: RequestThrottle = field(default_factory=lambda: RequestThrottle(per_network=60))

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self.secret, b"csrf." + session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session_id: str, token: object) -> bool:
        """Constant-time check; anything but a string (a form's file part) or a non-ASCII string (which
        compare_digest refuses with TypeError) is simply a wrong token (issue 15, finding 10)."""
        if not isinstance(token, str) or not token:
            return False
        given = token.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(self.csrf_token(session_id).encode(), given)

    def has_csrf_header(self, request: web.Request) -> bool:
        """Whether a signed-in staff request carries its session's CSRF token in `CSRF_HEADER` (the
        cookie alone is what a cross-site form sends too)."""
        return self.check_csrf(request.cookies.get(SESSION_COOKIE, ""), request.headers.get(CSRF_HEADER))

    async def sign_in(self, request: web.Request, username: str, password: str) -> StaffMember | str:
        """The member, or why not: "rate_limited" (refused before the password is checked) or "failed".
        The rule of what is counted and refused is LoginThrottle's (web/core/ratelimit.py)."""
        async with self.throttle.attempt(username, request.remote) as attempt:
            if not attempt.allowed:
                return "rate_limited"
            member = await self.staff.authenticate(username, password)
            if member is None:
                await attempt.failed()
                return "failed"
            await attempt.succeeded()
            return member

    async def current_staff(self, request: web.Request) -> StaffMember | None:
        return await self.staff.session_member(request.cookies.get(SESSION_COOKIE))

    def set_session_cookie(self, request: web.Request, response: web.Response, session_id: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            httponly=True,
            samesite="Lax",
            secure=request.secure,
            path="/",
            max_age=12 * 3600,
        )


SERVICES = web.AppKey("services", Services)
