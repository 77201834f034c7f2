"""Staff accounts and login sessions. Passwords are stored as scrypt hashes only."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass, field

from sprechstunde.clock import Now
from sprechstunde.errors import DomainError
from sprechstunde.store.port import Record, Store, from_record, update

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
# What an unknown or disabled account's password is checked against: same scheme and cost as a real hash,
# so both paths do exactly one scrypt of the same parameters (no digest matches it: the path returns None
# whatever the result).
_DUMMY_HASH = f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${'00' * 16}${'00' * _SCRYPT['dklen']}"


class StaffError(DomainError):
    """An account change that cannot be made; its own class because the CLI reports exactly it."""


@dataclass(frozen=True)
class StaffMember:
    username: str
    role: str
    offices: list[str] = field(default_factory=list)
    disabled: bool = False
    # Accounts created before languages existed carry none in the store and read as German-speaking.
    languages: list[str] = field(default_factory=lambda: list(DEFAULT_LANGUAGES))
    # Bumped by every password change and every disable: a session opened under an older value is void,
    # so those end every session of the account at once (its session records are deleted as well).
    session_epoch: int = field(default=0, repr=False)


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
    def __init__(self, store: Store, clock: Now = time.time) -> None:
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
        record = asdict(member) | {"password": await asyncio.to_thread(hash_password, password)}
        if not await self._store.create(STAFF_KIND, username, record):
            raise StaffError("exists", f"user {username!r} already exists")
        return member

    async def get(self, username: str) -> StaffMember | None:
        record = await self._store.get(STAFF_KIND, username)
        if record is None:
            return None
        record.pop("password", None)
        return from_record(StaffMember, record)

    async def members(self) -> list[StaffMember]:
        """Every account, ordered by username, without password hashes."""
        members = []
        for _, record in await self._store.scan(STAFF_KIND):
            record.pop("password", None)
            members.append(from_record(StaffMember, record))
        return members

    async def set_disabled(self, username: str, disabled: bool = True) -> StaffMember:
        """Lock (or unlock) an account. Locking ends its sessions for good: they do not come back when
        the account is unlocked."""
        member = await self._update(username, {"disabled": disabled}, end_sessions=disabled)
        if disabled:
            await self._delete_sessions(username)
        return member

    async def set_password(self, username: str, password: str) -> StaffMember:
        """A new password; every session of the account ends (whoever knew the old one is signed out)."""
        _check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        member = await self._update(username, {"password": hashed}, end_sessions=True)
        await self._delete_sessions(username)
        return member

    async def _update(self, username: str, changes: dict, *, end_sessions: bool = False) -> StaffMember:
        # Compare-and-set, so a concurrent change to the same account (e.g. disable while the password
        # is being reset) is never silently undone. The epoch moves in the same write as the change.
        if not USERNAME.match(username or ""):
            raise StaffError("unknown_user", f"there is no user {username!r}")

        def change(record: Record | None) -> Record:
            if record is None:
                raise StaffError("unknown_user", f"there is no user {username!r}")
            updated = record | changes
            if end_sessions:
                updated["session_epoch"] = record.get("session_epoch", 0) + 1
            return updated

        written = await update(self._store, STAFF_KIND, username, change)
        return from_record(StaffMember, written.after)  # without the password hash, which it ignores

    async def _delete_sessions(self, username: str) -> None:
        """Remove the (already void) session records of one account."""
        for session_id, record in await self._store.scan(SESSION_KIND):
            if record.get("username") == username:
                await self._store.delete(SESSION_KIND, session_id)

    async def authenticate(self, username: str, password: str) -> StaffMember | None:
        """The member when the password is right. Unknown, disabled and existing accounts cost the same:
        one scrypt of the same parameters (a dummy hash for the first two), so the response time does
        not reveal which accounts exist. The hash runs in a worker thread: scrypt on the event loop
        would stall every socket and media forwarding for its ~50 ms."""
        record = await self._store.get(STAFF_KIND, username) if USERNAME.match(username) else None
        usable = record is not None and not record.get("disabled")
        stored = record["password"] if usable else _DUMMY_HASH
        if not await asyncio.to_thread(check_password, password, stored) or not usable:
            return None
        record.pop("password")
        return from_record(StaffMember, record)

    async def open_session(self, member: StaffMember) -> str:
        session_id = secrets.token_urlsafe(32)
        record = {"username": member.username, "epoch": member.session_epoch}
        await self._store.put(SESSION_KIND, session_id, record, ttl=SESSION_TTL)
        return session_id

    async def session_member(self, session_id: str | None) -> StaffMember | None:
        if not session_id or len(session_id) > 100:
            return None
        record = await self._store.get(SESSION_KIND, session_id)
        if record is None:
            return None
        member = await self.get(record["username"])
        if member is None or member.disabled or record.get("epoch", 0) != member.session_epoch:
            return None
        return member

    async def close_session(self, session_id: str) -> None:
        await self._store.delete(SESSION_KIND, session_id)
