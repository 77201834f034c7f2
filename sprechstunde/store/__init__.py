"""Shared state behind one small port; the app picks an adapter once at start-up (`open_store`)."""

from __future__ import annotations

from pathlib import Path

from sprechstunde.store.embedded import SQLiteStore
from sprechstunde.store.port import Store
from sprechstunde.store.redis import DEFAULT_PREFIX, RedisStore, StoreUnavailable

__all__ = ["DEFAULT_PREFIX", "RedisStore", "SQLiteStore", "Store", "StoreUnavailable", "open_store", "ready"]


def open_store(
    database_path: Path | str, *, redis_url: str | None = None, redis_prefix: str | None = None
) -> Store:
    """The one place that chooses the adapter: Redis when a URL is configured, else the SQLite file.

    Redis connects lazily; `await ready(store)` checks at start-up that the server can be reached."""
    if redis_url:
        try:
            return RedisStore(redis_url, prefix=redis_prefix or DEFAULT_PREFIX)
        except ValueError as exc:  # the URL's scheme or options; the message never echoes the URL
            raise StoreUnavailable(f"invalid Redis URL: {exc}") from None
    return SQLiteStore(database_path)


async def ready(store: Store) -> None:
    """Raise StoreUnavailable (with a one-line reason) when the store's service cannot be reached."""
    if isinstance(store, RedisStore):
        await store.ping()
