"""Stores: where runs live. `open_store(path)` gives SQLite; `MemoryStore` is for tests;
`PostgresStore(url)` is the database several servers share.

The implementations are imported on first use: `jaz run` needs only SQLite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaz.engine.store.base import Store

if TYPE_CHECKING:
    from jaz.engine.store.memory import MemoryStore
    from jaz.engine.store.postgres import PostgresStore
    from jaz.engine.store.sqlite import SqliteStore

__all__ = ["MemoryStore", "PostgresStore", "SqliteStore", "Store"]


def __getattr__(name: str) -> object:
    if name == "MemoryStore":
        from jaz.engine.store.memory import MemoryStore

        return MemoryStore
    if name == "SqliteStore":
        from jaz.engine.store.sqlite import SqliteStore

        return SqliteStore
    if name == "PostgresStore":
        from jaz.engine.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
