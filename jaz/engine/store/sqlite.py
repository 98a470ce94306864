"""The embedded SQLite store (WAL), with versioned migrations.

WAL with `synchronous=NORMAL` makes every commit survive a crash of the process
(kill -9), which is the promise `jaz run --resume` rests on; only a power loss
can take the last commits back, and then the run resumes from an earlier state.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jaz.engine.model import JobState, RunState
from jaz.engine.records import (
    JOB_FIELDS,
    RUN_FIELDS,
    EventRecord,
    JobRecord,
    RunRecord,
    check_fields,
)
from jaz.engine.store.base import Store
from jaz.errors import NotFound, StoreError

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

_TIME_FIELDS = {"created_at", "scheduled_at", "started_at", "ended_at", "not_before", "at"}
_JSON_FIELDS = {"params", "outputs"}


def _encode(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _TIME_FIELDS:   # in UTC, so that the text sorts and compares as time does
        return value.astimezone(UTC).isoformat()
    if key in _JSON_FIELDS:
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
    if key in _TIME_FIELDS:
        return datetime.fromisoformat(value)
    if key in _JSON_FIELDS:
        if value == "{}":
            return {}
        import json

        return json.loads(value)
    if key == "timed_out":
        return bool(value)
    return value


_ADD_EVENT = ("INSERT INTO events (at, kind, run_id, jobnet, job, user, detail) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")


class SqliteStore(Store):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self._job_updates: dict[tuple[str, ...], str] = {}
        # Inside a batch, changes to jobs known to exist and new events wait for the end
        # of the batch (or the next read), so that the writes of one turn to one job (its
        # pid and its result; ready and running) become one UPDATE. Nothing is committed
        # any later: the batch commits them together as before.
        self._pending: dict[tuple[int, str], dict[str, Any]] = {}
        self._pending_events: list[tuple[Any, ...]] = []
        self._known: dict[int, set[str]] = {}  # run id -> jobs seen in the database
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot open the database: {e}",
                           hint="check the path given with --db, or move the broken file "
                                "away") from None
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

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

    # ---------------------------------------------------------- transactions

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
                if self._depth == 1:
                    self._flush()
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._pending.clear()
                    self._pending_events.clear()
                    self._known.clear()  # it may name jobs of runs the rollback removes
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    def _flush(self) -> None:
        """Write what waits for the end of the batch."""
        if self._pending:
            pending, self._pending = self._pending, {}
            for (run_id, name), changes in pending.items():
                self._db.execute(self._job_update(tuple(changes)),
                                 [*(_encode(k, v) for k, v in changes.items()), run_id, name])
        if self._pending_events:
            events, self._pending_events = self._pending_events, []
            self._db.executemany(_ADD_EVENT, events)

    def _write(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        with self._lock:
            if self._depth:  # in this thread's batch (which holds the lock): no commit here
                self._flush()
                return self._db.execute(sql, args)
            with self.batch():
                return self._db.execute(sql, args)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            self._flush()
            cur = self._db.execute(sql, args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # ---------------------------------------------------------- records

    def save_version(self, hash: str, name: str, text: str, at: datetime) -> None:
        self._write("INSERT OR IGNORE INTO versions (hash, name, text, first_seen) "
                    "VALUES (?, ?, ?, ?)", (hash, name, text, at.isoformat()))

    def get_version(self, hash: str) -> str | None:
        rows = self._read("SELECT text FROM versions WHERE hash = ?", (hash,))
        return rows[0]["text"] if rows else None

    def create_run(self, run: RunRecord, jobs: Sequence[JobRecord]) -> int:
        cols = sorted(RUN_FIELDS)
        with self.batch():
            cur = self._db.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [_encode(c, getattr(run, c)) for c in cols])
            run_id = int(cur.lastrowid or 0)
            jcols = ["run_id", "name", "seq", *sorted(JOB_FIELDS)]
            self._db.executemany(
                f"INSERT INTO jobs ({', '.join(jcols)}) VALUES ({', '.join('?' for _ in jcols)})",
                [[run_id, j.name, i, *(_encode(c, getattr(j, c)) for c in sorted(JOB_FIELDS))]
                 for i, j in enumerate(jobs)])
            self._known[run_id] = {j.name for j in jobs}
        return run_id

    def update_run(self, run_id: int, **changes: Any) -> RunRecord:
        check_fields(RUN_FIELDS, changes)
        with self.batch():
            if changes:
                sets = ", ".join(f"{k} = ?" for k in changes)
                self._db.execute(f"UPDATE runs SET {sets} WHERE id = ?",
                                 [*(_encode(k, v) for k, v in changes.items()), run_id])
            return self.get_run(run_id)

    def update_job(self, run_id: int, name: str, **changes: Any) -> None:
        if not changes.keys() <= JOB_FIELDS:
            check_fields(JOB_FIELDS, changes)
        if not changes:
            return
        with self._lock:
            if self._depth and name in self._known.get(run_id, ()):
                pending = self._pending.get((run_id, name))
                if pending is None:
                    self._pending[(run_id, name)] = changes
                else:
                    pending.update(changes)  # the later value of a column wins, as in SQL
                return
            args = [_encode(k, v) for k, v in changes.items()]
            args += (run_id, name)
            if self._write(self._job_update(tuple(changes)), args).rowcount == 0:
                self.get_job(run_id, name)  # raises NotFound
            self._known.setdefault(run_id, set()).add(name)

    def _job_update(self, keys: tuple[str, ...]) -> str:
        sql = self._job_updates.get(keys)  # the engine writes a few shapes, many times
        if sql is None:
            sets = ", ".join(f"{k} = ?" for k in keys)
            sql = self._job_updates[keys] = f"UPDATE jobs SET {sets} WHERE run_id = ? AND name = ?"
        return sql

    def _run(self, row: dict[str, Any]) -> RunRecord:
        data = {f: _decode(f, row[f]) for f in RunRecord._fields}
        data["status"] = RunState(data["status"])
        return RunRecord(**data)

    def _job(self, row: dict[str, Any]) -> JobRecord:
        data = {f: _decode(f, row[f]) for f in JobRecord._fields}
        data["status"] = JobState(data["status"])
        return JobRecord(**data)

    def get_run(self, run_id: int) -> RunRecord:
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFound(f"no run {run_id}", hint="`jaz runs` lists the runs")
        return self._run(rows[0])

    def get_jobs(self, run_id: int) -> list[JobRecord]:
        rows = self._read("SELECT * FROM jobs WHERE run_id = ? ORDER BY seq", (run_id,))
        if not rows:
            self.get_run(run_id)
        jobs = [self._job(r) for r in rows]
        with self._lock:
            self._known.setdefault(run_id, set()).update(j.name for j in jobs)
        return jobs

    def get_job(self, run_id: int, name: str) -> JobRecord:
        rows = self._read("SELECT * FROM jobs WHERE run_id = ? AND name = ?", (run_id, name))
        if not rows:
            self.get_run(run_id)
            raise NotFound(f"run {run_id} has no job {name!r}")
        return self._job(rows[0])

    def list_runs(self, *, jobnet: str | None = None, status: Sequence[RunState] = (),
                  since: datetime | None = None, parent_run: int | None = None,
                  top_level: bool = False, limit: int | None = None,
                  offset: int = 0, due_by: datetime | None = None) -> list[RunRecord]:
        where: list[str] = []
        args: list[Any] = []
        if due_by is not None:
            where.append("scheduled_at <= ?")
            args.append(_encode("scheduled_at", due_by))
        if jobnet is not None:
            where.append("jobnet = ?")
            args.append(jobnet)
        if status:
            where.append(f"status IN ({', '.join('?' for _ in status)})")
            args.extend(str(s) for s in status)
        if since is not None:
            where.append("created_at >= ?")
            args.append(since.astimezone(UTC).isoformat())
        if parent_run is not None:
            where.append("parent_run = ?")
            args.append(parent_run)
        if top_level:
            where.append("+parent_run IS NULL")   # never by runs_parent: all match
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None or offset:
            sql += f" LIMIT {int(limit) if limit is not None else -1} OFFSET {int(offset)}"
        return [self._run(r) for r in self._read(sql, args)]

    def job_history(self, jobnet: str, job: str, limit: int | None = None) -> list[JobRecord]:
        sql = ("SELECT jobs.* FROM jobs JOIN runs ON runs.id = jobs.run_id "
               "WHERE runs.jobnet = ? AND jobs.name = ? ORDER BY runs.id DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._job(r) for r in self._read(sql, (jobnet, job))]

    def add_event(self, event: EventRecord) -> None:
        row = (_encode("at", event.at), event.kind, event.run_id, event.jobnet, event.job,
               event.user, event.detail)
        with self._lock:
            if self._depth:
                self._pending_events.append(row)
            else:
                self._write(_ADD_EVENT, row)

    def list_events(self, *, run_id: int | None = None, since: datetime | None = None,
                    until: datetime | None = None, limit: int | None = None
                    ) -> list[EventRecord]:
        where: list[str] = []
        args: list[Any] = []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if since is not None:
            where.append("at >= ?")
            args.append(since.astimezone(UTC).isoformat())
        if until is not None:
            where.append("at < ?")
            args.append(until.astimezone(UTC).isoformat())
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        rows = self._read(sql, args)
        return [EventRecord(**{k: _decode(k, v) for k, v in r.items()}) for r in reversed(rows)]

    def get_state(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_state(self, key: str, value: str) -> None:
        self._write("INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def waiting(self, after: datetime) -> tuple[dict[str, int], datetime | None]:
        rows = self._read("SELECT jobnet, count(*) AS n, min(scheduled_at) AS first FROM runs "
                          "WHERE status IN ('scheduled', 'held') AND scheduled_at > ? "
                          "AND parent_run IS NULL GROUP BY jobnet",
                          (_encode("scheduled_at", after),))
        firsts = [r["first"] for r in rows]
        first = datetime.fromisoformat(min(firsts)) if firsts else None
        return {r["jobnet"]: int(r["n"]) for r in rows}, first

    def progress(self, run_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        ids = [int(i) for i in run_ids]
        out: dict[int, tuple[int, int]] = dict.fromkeys(ids, (0, 0))
        finished = ",".join(f"'{s}'" for s in JobState if s.finished)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = self._read(
                f"SELECT run_id, sum(status IN ({finished})) AS done, count(*) AS n FROM jobs "
                f"WHERE run_id IN ({','.join('?' * len(chunk))}) GROUP BY run_id", chunk)
            for r in rows:
                out[int(r["run_id"])] = (int(r["done"]), int(r["n"]))
        return out

    def count_runs(self) -> dict[RunState, int]:
        rows = self._read("SELECT status, count(*) AS n FROM runs WHERE parent_run IS NULL "
                          "GROUP BY status")
        return {RunState(r["status"]): int(r["n"]) for r in rows}

    def delete_runs(self, run_ids: Sequence[int]) -> None:
        ids = list(run_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            with self.batch():
                self._write(f"DELETE FROM jobs WHERE run_id IN ({marks})", chunk)
                self._write(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
                for run_id in chunk:
                    self._known.pop(run_id, None)

    def delete_events(self, before: datetime) -> int:
        cutoff = _encode("at", before.astimezone(UTC))   # times are kept in UTC
        with self.batch():
            count = self._read("SELECT count(*) AS n FROM events WHERE at < ?",
                               (cutoff,))[0]["n"]
            self._write("DELETE FROM events WHERE at < ?", (cutoff,))
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
