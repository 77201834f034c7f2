"""Shared state behind one small port; the app picks an adapter once at start-up."""

from store.embedded import SQLiteStore
from store.port import Store

__all__ = ["SQLiteStore", "Store"]
