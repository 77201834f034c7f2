"""The storage port every domain package talks to.

Records are small JSON objects addressed by (kind, key). The port is deliberately narrow so that the
embedded adapter (SQLite) and the Redis adapter can honour the same contract, including atomic creation,
compare-and-set, counters and expiry.

Ordered queues are the second half of the port: an item is a key with a `lane` (e.g. "vhs:de:walk-in")
and a numeric `score` (its place in line). `claim_first` hands the lowest-scored unclaimed item of a set
of lanes to exactly one claimant, however many ask at once — the primitive behind "Nächste Person".
Items carry only ordering and claim state; the data behind them lives in ordinary records.
Redis maps a lane to a sorted set and `claim_first` to one Lua script.

Several records that must change together (an advisor's seat and the booking that holds it) are
written with `compare_and_set_many`: every change applies, or none does — one SQLite transaction, one
Redis MULTI/EXEC under WATCH — so a process killed in between cannot leave half of it behind.

Channels (publish/subscribe) carry change signals between processes: "the queue changed", "an event for
room X". Redis maps them to its pub/sub; the embedded adapter delivers within its process.

Two helpers sit on top of the port, so domain code never hand-writes them: `update` is the one
read-modify-compare-and-set-retry loop for a single record, and `from_record` turns a stored record into
its dataclass tolerantly, so records written by an older or newer version still load.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, TypeVar

Record = dict[str, Any]
T = TypeVar("T")
UPDATE_ATTEMPTS = 100


@dataclass(frozen=True)
class QueueItem:
    """One place in an ordered queue; `claimed_by` is None while it waits."""

    key: str
    lane: str
    score: float
    claimed_by: str | None = None
    claimed_at: float | None = None


@dataclass(frozen=True)
class Change:
    """One conditional write of `Store.compare_and_set_many`: `key` of `kind` becomes `new` (expiring
    after `ttl` seconds, None: never) if it still equals `expected` (None: only if absent)."""

    kind: str
    key: str
    expected: Record | None
    new: Record
    ttl: float | None = None


@dataclass(frozen=True)
class Put:
    """One write of `Store.put_many`: `key` of `kind` becomes `value`, expiring after `ttl` seconds
    (None: never)."""

    kind: str
    key: str
    value: Record
    ttl: float | None = None


def check_distinct(changes: Sequence[Change]) -> None:
    """Both adapters refuse a record named twice in one `compare_and_set_many` (which one would win?)."""
    names = [(c.kind, c.key) for c in changes]
    if len(set(names)) != len(names):
        raise ValueError("compare_and_set_many: a record may appear only once")


class Store(Protocol):
    async def get(self, kind: str, key: str) -> Record | None:
        """The record, or None when it is absent or expired."""

    async def put(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> None:
        """Create or replace; `ttl` seconds until the record expires (None: never)."""

    async def put_many(self, puts: Sequence[Put]) -> None:
        """`put` of several records in one store operation (one Redis round trip, one SQLite transaction):
        what a node's write-behind (signaling/persist.py) stores after a burst costs the event loop once,
        not once per record. A record named twice: the later value wins."""

    async def create(self, kind: str, key: str, value: Record, *, ttl: float | None = None) -> bool:
        """Atomically create; False when a live record with that key already exists."""

    async def compare_and_set(
        self, kind: str, key: str, expected: Record | None, new: Record, *, ttl: float | None = None
    ) -> bool:
        """Replace the live record by `new` only if it still equals `expected` (None: only if absent).

        The building block for read-modify-write updates that must not lose a concurrent change.
        """

    async def compare_and_set_many(self, changes: Sequence[Change]) -> bool:
        """`compare_and_set` for several records at once: all are replaced if every one still equals its
        `expected`, else none is touched and the answer is False. A crash never leaves part of it.
        A record may appear only once (ValueError). A counter of `incr` reads as {"n": value}."""

    async def incr(self, kind: str, key: str) -> int:
        """Atomically add one to a counter (created at 0) and return the new value; never expires."""

    async def delete(self, kind: str, key: str) -> bool:
        """True when a live record was removed."""

    async def scan(self, kind: str, prefix: str = "") -> list[tuple[str, Record]]:
        """All live records of a kind whose key starts with `prefix`, ordered by key."""

    async def purge_expired(self) -> int:
        """Remove expired records for good, so that what they held is gone from storage, not just hidden
        (retention of personal data). Embedded: rows deleted and overwritten, WAL truncated; Redis expires
        keys itself, this drops index entries of vanished ones. Returns how many were removed."""

    async def enqueue(self, queue: str, key: str, *, lane: str, score: float, replace: bool = False) -> bool:
        """Add an unclaimed item; False when the key is already in the queue (unless `replace`, which
        also moves a claimed item back into line, unclaimed, in `lane` at `score`)."""

    async def claim_first(
        self, queue: str, lanes: Sequence[str], claimant: str, *, max_score: float | None = None
    ) -> QueueItem | None:
        """Atomically mark the unclaimed item with the lowest (score, key) in any of `lanes` (and a
        score ≤ `max_score`) as claimed by `claimant` and return it; None when there is none."""

    async def claim_item(
        self, queue: str, key: str, claimant: str, *, lanes: Sequence[str] | None = None
    ) -> QueueItem | None:
        """Atomically claim one given item if it is unclaimed (and in one of `lanes`); else None."""

    async def queue_item(self, queue: str, key: str) -> QueueItem | None:
        """The item, claimed or not, or None."""

    async def queued(
        self, queue: str, lanes: Sequence[str] | None = None, *, claimed: bool | None = False
    ) -> list[QueueItem]:
        """Items ordered by (score, key); `claimed` False: waiting only, True: claimed only, None: all."""

    async def dequeue(
        self, queue: str, key: str, *, only_unclaimed: bool = False, claimant: str | None = None
    ) -> bool:
        """Remove an item; with `only_unclaimed` only if nobody holds it, with `claimant` only if that
        claimant holds it. True when it was removed."""

    async def publish(self, channel: str, message: Record) -> None:
        """Send `message` to every current subscriber of `channel`, in every process sharing the store
        (embedded: this process only). Fire and forget: a subscriber that is not listening misses it."""

    async def subscribe(self, channel: str) -> Subscription:
        """Listen on `channel`; returns once the subscription is active, so a later publish is seen."""

    async def close(self) -> None:
        """Release connections; further calls are errors."""


class Subscription(Protocol):
    """Messages of one channel, in order. Survives a lost connection (it resubscribes; messages sent
    meanwhile are lost), so listeners use it for "something changed" signals, never for data."""

    async def next(self) -> Record:
        """Wait for the next message."""

    async def close(self) -> None:
        """Stop listening; a pending `next` raises asyncio.CancelledError."""


# --- helpers on top of the port ----------------------------------------------------------------------


class StoreContention(RuntimeError):
    """`update` lost the compare-and-set to concurrent writers `attempts` times in a row."""


@dataclass(frozen=True)
class Updated:
    """What `update` did: the record it read last (`before`, None if absent) and what is stored now
    (`after`). `written` is False when `change` left the record as it was."""

    before: Record | None
    after: Record | None

    @property
    def written(self) -> bool:
        return self.after is not self.before


Modify = Callable[[Record | None], Record | None | Awaitable[Record | None]]
"""The change `update` applies: current record (None: absent) → new record (the same object: no write)."""


async def update(
    store: Store,
    kind: str,
    key: str,
    change: Modify,
    *,
    ttl: float | None = None,
    attempts: int = UPDATE_ATTEMPTS,
) -> Updated:
    """Read-modify-write of one record that never loses a concurrent change: read it, let `change`
    compute the new record, write it with `compare_and_set`, and start over on the fresh record when
    another writer got there first.

    `change` gets the live record (None when absent) and returns the record to store (written with
    `ttl`), or the very object it was given to leave the record as it is (nothing is written). It may be
    a coroutine function, and it refuses by raising (the exception passes through, nothing is written).
    It may run several times, so it should not have side effects. After `attempts` lost races in a row
    StoreContention is raised rather than spinning for ever."""
    for _ in range(attempts):
        current = await store.get(kind, key)
        new = change(current)
        if inspect.isawaitable(new):
            new = await new
        if new is current:
            return Updated(current, current)
        if new is None:
            raise ValueError(f"update of {kind}/{key}: `change` returned None for an existing record")
        if await store.compare_and_set(kind, key, current, new, ttl=ttl):
            return Updated(current, new)
    raise StoreContention(f"update of {kind}/{key} lost {attempts} compare-and-sets in a row")


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def from_record(cls: type[T], record: Record) -> T:
    """The dataclass `cls` from a stored record, across versions: fields the class does not know (written
    by a newer version, or a secret such as a password hash kept beside the data) are ignored, and fields
    missing from an older record take the class's defaults. A missing field without a default is still
    an error (TypeError): there is nothing sensible to invent."""
    names = _field_names(cls)
    return cls(**{name: value for name, value in record.items() if name in names})
