"""The application's services, built once at start-up and hung off the app (no module globals)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiohttp import web

from chatbot.service import ChatService
from documents import DocumentService
from rooms.queue import QueueService
from rooms.service import RoomService
from rooms.staff import StaffDirectory, StaffMember
from rooms.tokens import TokenSigner
from scheduling.bookings import SchedulingService
from scheduling.mail import BookingMailer
from signaling.hub import SignalingHub
from signaling.waiting import WaitingRoom
from store.port import Store
from web.config import Config
from web.render import Pages

SESSION_COOKIE = "sprechstunde_session"


class LoginThrottle:
    """Sliding-window limit on sign-in attempts, per account and per client address."""

    def __init__(self, per_account: int = 5, per_ip: int = 20, window: float = 60.0) -> None:
        self._limits = {"account": per_account, "ip": per_ip}
        self._window = window
        self._attempts: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def allow(self, account: str, ip: str) -> bool:
        now = time.monotonic()
        keys = (("account", account), ("ip", ip))
        for key in keys:
            attempts = self._attempts[key]
            while attempts and attempts[0] <= now - self._window:
                attempts.popleft()
            if len(attempts) >= self._limits[key[0]]:
                return False
        for key in keys:
            self._attempts[key].append(now)
        return True


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
    queue_throttle: LoginThrottle = field(default_factory=lambda: LoginThrottle(per_account=10**9, per_ip=30))
    # anonymous booking requests (POST /api/bookings, the booking form): at most 60 per minute per address
    # (a city portal or the chatbot may book for many citizens)
    booking_throttle: LoginThrottle = field(
        default_factory=lambda: LoginThrottle(per_account=10**9, per_ip=60)
    )
    # the chatbot (knowledge base, conversations, imported pages); its messages: 60 a minute per address
    chatbot: ChatService | None = None
    chatbot_throttle: LoginThrottle = field(
        default_factory=lambda: LoginThrottle(per_account=10**9, per_ip=60)
    )

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self.secret, b"csrf." + session_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session_id), token)

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
