"""Stores: where runs live. `open_store(path)` gives SQLite; `MemoryStore` is for tests."""

from jaz.engine.store.base import Store
from jaz.engine.store.memory import MemoryStore
from jaz.engine.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store"]
