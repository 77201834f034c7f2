"""Capability tokens: HMAC-SHA256 over a compact JSON claim set, signed with the server secret.

A join link carries everything the server trusts about its holder (room, role, expiry); nothing the
client says later can widen it.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

ROLES = ("advisor", "citizen", "guest")
# Unpadded URL-safe base64 and nothing else: a lenient decoder would also read `tok=`, `tok!!`, `+` for
# `-` or a sibling last character as the same bytes, so one link would have many accepted spellings
# (issue 15, finding 11).
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
SIGNATURE_CHARS = 43  # HMAC-SHA256: 32 bytes, unpadded


class TokenError(Exception):
    """A token that must not be honoured; `reason` is 'invalid' or 'expired'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JoinGrant:
    room_id: str
    role: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes of canonical unpadded base64url text; ValueError for anything else (other characters,
    padding, spare bits set), so that each token has exactly one accepted spelling."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


class TokenSigner:
    """Signs and verifies claim sets; `purpose` separates join links from other token kinds."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("server secret must be at least 32 bytes")
        self._secret = secret
        self._clock = clock

    def _mac(self, purpose: str, body: str) -> bytes:
        return hmac.new(self._secret, f"{purpose}.{body}".encode(), sha256).digest()

    def sign(self, purpose: str, claims: dict) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64(self._mac(purpose, body))}"

    def verify(self, purpose: str, token: str) -> dict:
        """The claims of a genuine, unexpired token; TokenError otherwise."""
        claims = self.claims(purpose, token)
        if claims["exp"] <= self._clock():
            raise TokenError("expired")
        return claims

    def claims(self, purpose: str, token: str) -> dict:
        """The claims of a genuine token, expired or not (TokenError('invalid') otherwise): for a holder
        whose record knows better when its link ends (a moved appointment, scheduling/bookings.py)."""
        if not isinstance(token, str) or len(token) > 2048 or token.count(".") != 1:
            raise TokenError("invalid")
        body, sig = token.split(".")
        if len(sig) != SIGNATURE_CHARS:
            raise TokenError("invalid")
        try:
            given = _unb64(sig)
        except (ValueError, TypeError):
            raise TokenError("invalid") from None
        if not hmac.compare_digest(given, self._mac(purpose, body)):
            raise TokenError("invalid")
        try:
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            raise TokenError("invalid") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), (int, float)):
            raise TokenError("invalid")
        return claims

    def join_token(self, room_id: str, role: str, expires_at: float) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        # The nonce makes two links for the same room and role distinguishable in logs and revocations.
        claims = {"r": room_id, "ro": role, "exp": int(expires_at), "n": secrets.token_hex(4)}
        return self.sign("join", claims)

    def verify_join(self, token: str) -> JoinGrant:
        claims = self.verify("join", token)
        room, role = claims.get("r"), claims.get("ro")
        if not isinstance(room, str) or role not in ROLES:
            raise TokenError("invalid")
        return JoinGrant(room_id=room, role=role, expires_at=float(claims["exp"]))
