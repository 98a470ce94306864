"""Helpers of the commands that need no typer: -p params, the embedded store, the service.

Apart from `jaz.cli.common` (which adds the shared typer options and re-exports
these) so that the hot path of `jaz run` can use them without importing typer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jaz.errors import UsageError

if TYPE_CHECKING:
    from jaz.engine.service import Service
    from jaz.engine.store import Store


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """`-p NAME=VALUE` options as params; a bad one is a UsageError quoting it."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad -p {quoted(item)}: write it as -p NAME=VALUE, like "
                             f"-p DAY=2026-11-20")
        if not key.strip().isidentifier():
            raise UsageError(f"bad -p {quoted(item)}: the name {quoted(key)} must be letters, "
                             f"digits and \"_\", not starting with a digit")
        params[key.strip()] = value
    return params


def quoted(text: str) -> str:
    """A command-line value in an error message, in double quotes (escaped like a TOML
    string, so a control character cannot garble the terminal)."""
    from jaz.engine.tomltext import quote

    return quote(text)


def open_store(db: Path | None) -> Store:
    from jaz.engine.store.sqlite import SqliteStore
    from jaz.paths import default_db, ensure_home

    if db is None:
        ensure_home()
        db = default_db()
    return SqliteStore(db)


def open_existing_store(db: Path | None) -> Store:
    """For queries: a missing database is 'nothing found', not a new empty file."""
    from jaz.errors import NotFound
    from jaz.paths import default_db

    path = db or default_db()
    if not path.exists():
        raise NotFound(f"no database at {path}",
                       hint="run a jobnet with `jaz run FILE` first, or pass --db PATH")
    return open_store(path)


def make_service(store: Store, *, parallel: int = 16, listener: object = None,
                 remote: object = None) -> Service:
    from jaz.engine.machine import Settings
    from jaz.engine.secrets import Secrets
    from jaz.engine.service import Service
    from jaz.paths import log_dir, secrets_file

    settings = Settings(log_dir=_log_dir_for(store) or log_dir(),
                        secrets=Secrets(secrets_file()), parallel=parallel)
    return Service(store, settings, listener=listener,  # type: ignore[arg-type]
                   remote=remote)  # type: ignore[arg-type]


def _log_dir_for(store: Store) -> Path | None:
    """Logs live beside a database given with --db, so that one folder holds a whole history."""
    from jaz.engine.store.sqlite import SqliteStore
    from jaz.paths import default_db

    if isinstance(store, SqliteStore) and store.path.resolve() != default_db().resolve():
        # absolute: jobs run in their jobnet's folder and write $JAZ_OUTPUT from there
        path = store.path.resolve()
        return path.parent / (path.stem + ".logs")
    return None
