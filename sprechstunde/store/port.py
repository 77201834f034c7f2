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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Record = dict[str, Any]


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
