"""Staff accounts and login sessions. Passwords are stored as scrypt hashes only."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from store.port import Store

STAFF_KIND = "staff"
SESSION_KIND = "staff-session"
# advisor: serves citizens of their offices; lead: an office lead, serves too and sees statistics;
# admin: city IT, manages accounts, serves no queue.
STAFF_ROLES = ("advisor", "lead", "admin")
SERVING_ROLES = ("advisor", "lead")
DEFAULT_LANGUAGES = ("de",)
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
SESSION_TTL = 12 * 3600
# scrypt cost: n=2**14, r=8 takes ~50 ms here, enough to make offline guessing expensive.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class StaffError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StaffMember:
    username: str
    role: str
    offices: list[str] = field(default_factory=list)
    disabled: bool = False
    # Accounts created before languages existed carry none in the store and read as German-speaking.
    languages: list[str] = field(default_factory=lambda: list(DEFAULT_LANGUAGES))


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < 10:
        raise StaffError("weak_password", "password must have at least 10 characters")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


class StaffDirectory:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def add(
        self,
        username: str,
        password: str,
        role: str,
        offices: list[str],
        languages: list[str] | None = None,
    ) -> StaffMember:
        """Create an account; `languages` defaults to German only."""
        if not USERNAME.match(username or ""):
            raise StaffError("invalid_username", "username: 2–40 of a-z 0-9 . _ -")
        if role not in STAFF_ROLES:
            raise StaffError("invalid_role", f"role must be one of {', '.join(STAFF_ROLES)}")
        _check_password(password)
        languages = list(DEFAULT_LANGUAGES) if languages is None else languages
        bad = [code for code in languages if not isinstance(code, str) or not LANGUAGE_CODE.match(code)]
        if bad or not languages:
            raise StaffError("invalid_language", "languages: codes of 2–3 lowercase letters, e.g. de, en, tr")
        member = StaffMember(
            username=username,
            role=role,
            offices=sorted(set(offices)),
            languages=list(dict.fromkeys(languages)),
        )
        record = asdict(member) | {"password": hash_password(password)}
        if not await self._store.create(STAFF_KIND, username, record):
            raise StaffError("exists", f"user {username!r} already exists")
        return member

    async def get(self, username: str) -> StaffMember | None:
        record = await self._store.get(STAFF_KIND, username)
        if record is None:
            return None
        record.pop("password", None)
        return StaffMember(**record)

    async def members(self) -> list[StaffMember]:
        """Every account, ordered by username, without password hashes."""
        members = []
        for _, record in await self._store.scan(STAFF_KIND):
            record.pop("password", None)
            members.append(StaffMember(**record))
        return members

    async def set_disabled(self, username: str, disabled: bool = True) -> StaffMember:
        """Lock (or unlock) an account; its open sessions stop working at their next request."""
        return await self._update(username, {"disabled": disabled})

    async def set_password(self, username: str, password: str) -> StaffMember:
        _check_password(password)
        return await self._update(username, {"password": hash_password(password)})

    async def _update(self, username: str, changes: dict) -> StaffMember:
        # Compare-and-set, so a concurrent change to the same account (e.g. disable while the password
        # is being reset) is never silently undone.
        while True:
            record = await self._store.get(STAFF_KIND, username) if USERNAME.match(username or "") else None
            if record is None:
                raise StaffError("unknown_user", f"there is no user {username!r}")
            updated = record | changes
            if await self._store.compare_and_set(STAFF_KIND, username, record, updated):
                updated.pop("password")
                return StaffMember(**updated)

    async def authenticate(self, username: str, password: str) -> StaffMember | None:
        record = await self._store.get(STAFF_KIND, username) if USERNAME.match(username) else None
        if record is None or record.get("disabled"):
            # Same cost as a real check, so response time does not reveal which accounts exist.
            check_password(password, hash_password("x"))
            return None
        if not check_password(password, record["password"]):
            return None
        record.pop("password")
        return StaffMember(**record)

    async def open_session(self, member: StaffMember) -> str:
        session_id = secrets.token_urlsafe(32)
        await self._store.put(SESSION_KIND, session_id, {"username": member.username}, ttl=SESSION_TTL)
        return session_id

    async def session_member(self, session_id: str | None) -> StaffMember | None:
        if not session_id or len(session_id) > 100:
            return None
        record = await self._store.get(SESSION_KIND, session_id)
        if record is None:
            return None
        member = await self.get(record["username"])
        return None if member is None or member.disabled else member

    async def close_session(self, session_id: str) -> None:
        await self._store.delete(SESSION_KIND, session_id)
