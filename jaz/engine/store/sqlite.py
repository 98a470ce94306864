"""The embedded SQLite store (WAL), with versioned migrations.

WAL with `synchronous=NORMAL` makes every commit survive a crash of the process
(kill -9), which is the promise `jaz run --resume` rests on; only a power loss
can take the last commits back, and then the run resumes from an earlier state.

A commit does not wait for the disk, but the one that finds the WAL past 1,000 pages
copies them into the database and waits for its fsyncs (a checkpoint): 5-10 ms at
times on a VM, in the middle of a burst of scheduled starts. With
`background_checkpoints` (the server) the commits never checkpoint: a thread of the
store's own, on a connection of its own, does it at most once a second when something
was written, and does not block the writers (PASSIVE).

The statements and the mapping of rows to records are SqlStore's (`sql.py`), shared
with PostgresStore; here are the connection, the schema and how SQLite keeps a value:
times as UTC ISO text (which sorts as the times do), JSON as text, booleans as 0 and 1.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jaz.engine.log import logger
from jaz.engine.records import RunRecord
from jaz.engine.store.sql import JSON_FIELDS, TIME_FIELDS, SqlStore, no_run
from jaz.errors import StoreError

# UPDATE ... RETURNING (SQLite 3.35, 2021): a run's update reads its row back in the same
# statement; older libraries take a SELECT after it
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
CHECKPOINT_EVERY = 1.0   # seconds between background checkpoints, when written to

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE versions (
        hash TEXT PRIMARY KEY, name TEXT NOT NULL, text TEXT NOT NULL, first_seen TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        jobnet TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL DEFAULT '{}',
        version TEXT NOT NULL DEFAULT '', path TEXT, trigger TEXT NOT NULL DEFAULT 'manual',
        created_at TEXT NOT NULL, scheduled_at TEXT, started_at TEXT, ended_at TEXT,
        parent_run INTEGER REFERENCES runs(id) ON DELETE CASCADE, parent_job TEXT,
        message TEXT NOT NULL DEFAULT '', warning TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_jobnet ON runs (jobnet, id);
    CREATE INDEX runs_status ON runs (status);
    CREATE INDEX runs_parent ON runs (parent_run);
    CREATE TABLE jobs (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
        host TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        iteration INTEGER NOT NULL DEFAULT 0, exit_code INTEGER,
        timed_out INTEGER NOT NULL DEFAULT 0, outputs TEXT NOT NULL DEFAULT '{}',
        started_at TEXT, ended_at TEXT, not_before TEXT, pid INTEGER,
        stdout_tail TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL,
        run_id INTEGER, jobnet TEXT, job TEXT, user TEXT NOT NULL, detail TEXT NOT NULL
    );
    CREATE INDEX events_at ON events (at);
    CREATE INDEX events_run ON events (run_id);
    """,
    # 2: a job's total number of starts, so that reruns never overwrite earlier logs
    """
    ALTER TABLE jobs ADD COLUMN executions INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: small values the server keeps between restarts (the scheduler's cursors)
    """
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 4: the scheduler asks for due and waiting runs by their time
    """
    CREATE INDEX runs_scheduled ON runs (status, scheduled_at);
    """,
]


def _encode(key: str, value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or value is None:   # most values: as they are
        return value
    if key in TIME_FIELDS:   # in UTC, so that the text sorts and compares as time does
        return value.astimezone(UTC).isoformat()
    if key in JSON_FIELDS:
        if not value:
            return "{}"  # most params and outputs: json is imported when one is not
        import json

        return json.dumps(dict(value), sort_keys=True)
    if isinstance(value, bool):
        return int(value)
    return value


def _decode(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in TIME_FIELDS:
        return datetime.fromisoformat(value)
    if key in JSON_FIELDS:
        if value == "{}":
            return {}
        import json

        return json.loads(value)
    if key == "timed_out":
        return bool(value)
    return value


class SqliteStore(SqlStore):
    TOP_LEVEL = "+parent_run IS NULL"   # never by runs_parent: all top-level runs match
    NO_LIMIT = "-1"
    _encode = staticmethod(_encode)
    _decode = staticmethod(_decode)
    _db: sqlite3.Connection

    def __init__(self, path: str | Path, *, background_checkpoints: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # private before SQLite opens it: it makes the -wal and -shm files with the
            # database's mode, and they hold the same data
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            pass        # sqlite3 says what is wrong with the path
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if background_checkpoints:
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot open the database: {e}",
                           hint="check the path given with --db, or move the broken file "
                                "away") from None
        for private in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                private.chmod(0o600)
            except OSError:
                pass
        if background_checkpoints:
            self._checkpointer = threading.Thread(target=self._checkpoints, daemon=True,
                                                  name="checkpoint")
            self._checkpointer.start()

    def _checkpoints(self) -> None:
        """The background checkpoints: every CHECKPOINT_EVERY seconds, when another
        connection committed since the last complete one (`data_version` tells)."""
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:   # the commits checkpoint then, as without the thread
            logger().warning("%s: no background checkpoints: %s", self.path, e)
            with self._lock:
                self._db.execute("PRAGMA wal_autocheckpoint=1000")
            return
        done = None
        try:
            while not self._closing.wait(CHECKPOINT_EVERY):
                try:
                    (version,) = db.execute("PRAGMA data_version").fetchone()
                    if version == done:
                        continue
                    _, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames == copied:   # else a reader held some back: again next time
                        done = version
                except sqlite3.Error as e:
                    logger().warning("%s: a background checkpoint failed: %s", self.path, e)
        finally:
            db.close()

    def _migrate(self) -> None:
        (current,) = self._db.execute("PRAGMA user_version").fetchone()
        if current > len(MIGRATIONS):
            raise StoreError(f"{self.path} was written by a newer jaz (schema {current}, this "
                           f"jaz knows {len(MIGRATIONS)})", hint="upgrade jaz")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {version}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # ---------------------------------------------------------- the driver

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._lock:
            if self._depth:  # in this thread's batch (which holds the lock): no commit here
                self._flush()
                return self._db.execute(sql, args).rowcount
            with self.batch():
                return self._db.execute(sql, args).rowcount

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            self._flush()
            cur = self._db.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _insert_run(self, sql: str, args: Sequence[Any]) -> int:
        return int(self._db.execute(sql, args).lastrowid or 0)

    def _update_run(self, sql: str, args: Sequence[Any], run_id: int) -> RunRecord:
        if not _RETURNING:
            return super()._update_run(sql, args, run_id)
        with self.batch():   # the row as updated, without a SELECT after the UPDATE
            rows = self._read(sql + " RETURNING *", args)
        if not rows:
            raise no_run(run_id)
        return self._run(rows[0])

    # ---------------------------------------------------------- records

    def save_version(self, hash: str, name: str, text: str, at: datetime) -> None:
        self._write("INSERT OR IGNORE INTO versions (hash, name, text, first_seen) "
                    "VALUES (?, ?, ?, ?)", (hash, name, text, at.isoformat()))

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            self._db.close()
