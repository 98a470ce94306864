"""What SqliteStore and PostgresStore share: the statements and the records they map.

Both keep the same tables and the same contract: batches that nest (the outermost
commits), job changes and events that wait for the end of a batch, so that the writes
of one turn to one job (its pid and its result; ready and running) become one UPDATE.
A subclass says what differs:

- its driver's placeholder: the statements here are written with SQLite's `?`, and
  `_sql` turns one into the driver's style (PostgresStore's `_read` and `_write` do it
  on every call; where this class talks to the connection itself it does it once);
- how a value is kept (`_encode`, `_decode`): SQLite keeps times as UTC ISO text and
  JSON as text, PostgreSQL has timestamptz and jsonb;
- how rows are read and changes written (`_read`, `_write`), how a batch begins and
  rolls back, how a new run's id comes back;
- the connection, the schema and its migrations, and PostgreSQL's advisory locks.

The engine's hot paths (get_run, get_jobs, update_job, the flush at the end of a batch)
call the driver directly and look the codecs up once per call, not once per value.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

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
from jaz.errors import NotFound

TIME_FIELDS = {"created_at", "scheduled_at", "started_at", "ended_at", "not_before", "at"}
JSON_FIELDS = {"params", "outputs"}

_ADD_EVENT = ('INSERT INTO events (at, kind, run_id, jobnet, job, "user", detail) '
              "VALUES (?, ?, ?, ?, ?, ?, ?)")
_FINISHED = ", ".join(f"'{s}'" for s in JobState if s.finished)


def no_run(run_id: int) -> NotFound:
    return NotFound(f"no run {run_id}", hint="`jaz runs` lists the runs")


class SqlStore(Store):
    TOP_LEVEL: ClassVar[str]
    """The test for a top-level run in `list_runs` (SQLite keeps it off an index)."""
    NO_LIMIT: ClassVar[str]
    """What `LIMIT` takes for no limit, where an OFFSET needs one."""
    MOST_IDS: ClassVar[int] = 500
    """How many ids one statement takes (`_in`); more go in several statements."""

    _db: Any   # the driver's connection: `execute`, `cursor().executemany`

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._job_updates: dict[tuple[str, ...], str] = {}
        self._add_event_sql = self._sql(_ADD_EVENT)
        # Inside a batch, changes to jobs known to exist and new events wait for the end
        # of the batch (or the next read), so that the writes of one turn to one job
        # become one UPDATE. Nothing is committed any later: the batch commits them
        # together as before.
        self._pending: dict[tuple[int, str], dict[str, Any]] = {}
        self._pending_events: list[tuple[Any, ...]] = []
        self._known: dict[int, set[str]] = {}  # run id -> jobs seen in the database

    # ---------------------------------------------------------- what differs

    @staticmethod
    def _sql(statement: str) -> str:
        """The statement, written with `?`, in the driver's placeholder style."""
        return statement

    @staticmethod
    def _encode(key: str, value: Any) -> Any:
        """A record's field as the database keeps it."""
        return value

    @staticmethod
    def _decode(key: str, value: Any) -> Any:
        """A column's value as the record's field."""
        return value

    @abstractmethod
    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query, as dicts (after writing what waits for the batch's end)."""

    @abstractmethod
    def _write(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one change (committed at once outside a batch); how many rows it touched."""

    @abstractmethod
    def _begin(self) -> None:
        """Begin the outermost batch's transaction."""

    @abstractmethod
    def _rollback(self) -> None:
        """Roll the outermost batch's transaction back."""

    @abstractmethod
    def _insert_run(self, sql: str, args: Sequence[Any]) -> int:
        """Run the INSERT of a run (`_sql`'d, in a batch); the new run's id."""

    def _update_run(self, sql: str, args: Sequence[Any], run_id: int) -> RunRecord:
        """Run the UPDATE of a run (`_sql`'d); the run as it is now (NotFound when the
        UPDATE changed no row)."""
        with self.batch():
            if self._db.execute(sql, args).rowcount == 0:
                raise no_run(run_id)
            return self.get_run(run_id)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column IN values`, as SQL and its arguments (at most MOST_IDS of them)."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    # ---------------------------------------------------------- transactions

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._begin()
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
                    self._rollback()
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    def _flush(self) -> None:
        """Write what waits for the end of the batch."""
        if self._pending:
            pending, self._pending = self._pending, {}
            encode = self._encode
            for (run_id, name), changes in pending.items():
                self._db.execute(self._job_update(tuple(changes)),
                                 [*(encode(k, v) for k, v in changes.items()), run_id, name])
        if self._pending_events:
            events, self._pending_events = self._pending_events, []
            self._db.cursor().executemany(self._add_event_sql, events)

    # ---------------------------------------------------------- records

    def get_version(self, hash: str) -> str | None:
        rows = self._read("SELECT text FROM versions WHERE hash = ?", (hash,))
        return str(rows[0]["text"]) if rows else None

    def create_run(self, run: RunRecord, jobs: Sequence[JobRecord]) -> int:
        encode = self._encode
        cols = sorted(RUN_FIELDS)
        jcols = sorted(JOB_FIELDS)
        with self.batch():
            run_id = self._insert_run(self._sql(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"),
                [encode(c, getattr(run, c)) for c in cols])
            if jobs:
                self._db.cursor().executemany(self._sql(
                    f"INSERT INTO jobs (run_id, name, seq, {', '.join(jcols)}) "
                    f"VALUES ({', '.join('?' * (len(jcols) + 3))})"),
                    [[run_id, encode("name", j.name), i,
                      *(encode(c, getattr(j, c)) for c in jcols)]
                     for i, j in enumerate(jobs)])
            self._known[run_id] = {j.name for j in jobs}
        return run_id

    def update_run(self, run_id: int, **changes: Any) -> RunRecord:
        check_fields(RUN_FIELDS, changes)
        if not changes:
            return self.get_run(run_id)
        encode = self._encode
        sets = ", ".join(f"{k} = ?" for k in changes)
        return self._update_run(self._sql(f"UPDATE runs SET {sets} WHERE id = ?"),
                                [*(encode(k, v) for k, v in changes.items()), run_id], run_id)

    def update_run_if(self, run_id: int, expect: RunState, triggers: Sequence[str],
                      **changes: Any) -> RunRecord | None:
        check_fields(RUN_FIELDS, changes)
        if not changes or not triggers:
            return super().update_run_if(run_id, expect, triggers, **changes)
        encode = self._encode
        sets = ", ".join(f"{k} = ?" for k in changes)
        among, args = self._in("trigger", list(triggers))
        try:
            return self._update_run(
                self._sql(f"UPDATE runs SET {sets} WHERE id = ? AND status = ? AND {among}"),
                [*(encode(k, v) for k, v in changes.items()), run_id, encode("status", expect),
                 *args], run_id)
        except NotFound:
            return None

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
            encode = self._encode
            args = [encode(k, v) for k, v in changes.items()]
            args += (run_id, name)
            if self._write(self._job_update(tuple(changes)), args) == 0:
                self.get_job(run_id, name)  # raises NotFound
            self._known.setdefault(run_id, set()).add(name)

    def _job_update(self, keys: tuple[str, ...]) -> str:
        sql = self._job_updates.get(keys)  # the engine writes a few shapes, many times
        if sql is None:
            sets = ", ".join(f"{k} = ?" for k in keys)
            sql = self._job_updates[keys] = self._sql(
                f"UPDATE jobs SET {sets} WHERE run_id = ? AND name = ?")
        return sql

    def _run(self, row: dict[str, Any]) -> RunRecord:
        decode = self._decode
        data = {f: decode(f, row[f]) for f in RunRecord._fields}
        data["status"] = RunState(data["status"])
        return RunRecord(**data)

    def _job(self, row: dict[str, Any]) -> JobRecord:
        decode = self._decode
        data = {f: decode(f, row[f]) for f in JobRecord._fields}
        data["status"] = JobState(data["status"])
        return JobRecord(**data)

    def get_run(self, run_id: int) -> RunRecord:
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise no_run(run_id)
        return self._run(rows[0])

    def run_status(self, run_id: int) -> RunState:
        rows = self._read("SELECT status FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise no_run(run_id)
        return RunState(rows[0]["status"])

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
            args.append(self._encode("scheduled_at", due_by))
        if jobnet is not None:
            where.append("jobnet = ?")
            args.append(jobnet)
        if status:
            test, values = self._in("status", [str(s) for s in status])
            where.append(test)
            args.extend(values)
        if since is not None:
            where.append("created_at >= ?")
            args.append(self._encode("created_at", since))
        if parent_run is not None:
            where.append("parent_run = ?")
            args.append(parent_run)
        if top_level:
            where.append(self.TOP_LEVEL)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None or offset:
            sql += (f" LIMIT {int(limit) if limit is not None else self.NO_LIMIT}"
                    f" OFFSET {int(offset)}")
        return [self._run(r) for r in self._read(sql, args)]

    def job_history(self, jobnet: str, job: str, limit: int | None = None) -> list[JobRecord]:
        sql = ("SELECT jobs.* FROM jobs JOIN runs ON runs.id = jobs.run_id "
               "WHERE runs.jobnet = ? AND jobs.name = ? ORDER BY runs.id DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._job(r) for r in self._read(sql, (jobnet, job))]

    def add_event(self, event: EventRecord) -> None:
        encode = self._encode
        row = (encode("at", event.at), encode("kind", event.kind), event.run_id,
               encode("jobnet", event.jobnet), encode("job", event.job),
               encode("user", event.user), encode("detail", event.detail))
        with self._lock:
            if self._depth:
                self._pending_events.append(row)
            else:
                self._write(self._add_event_sql, row)

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
            args.append(self._encode("at", since))
        if until is not None:
            where.append("at < ?")
            args.append(self._encode("at", until))
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        decode = self._decode
        return [EventRecord(**{k: decode(k, v) for k, v in r.items()})
                for r in reversed(self._read(sql, args))]

    def get_state(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_state(self, key: str, value: str) -> None:
        self._write("INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (self._encode("key", key), self._encode("value", value)))

    def waiting(self, after: datetime) -> tuple[dict[str, int], datetime | None]:
        rows = self._read("SELECT jobnet, count(*) AS n, min(scheduled_at) AS first FROM runs "
                          "WHERE status IN ('scheduled', 'held') AND scheduled_at > ? "
                          "AND parent_run IS NULL GROUP BY jobnet",
                          (self._encode("scheduled_at", after),))
        # SQLite's UTC text sorts as the times do
        first = self._decode("scheduled_at", min((r["first"] for r in rows), default=None))
        return {r["jobnet"]: int(r["n"]) for r in rows}, first

    def progress(self, run_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        ids = [int(i) for i in run_ids]
        out: dict[int, tuple[int, int]] = dict.fromkeys(ids, (0, 0))
        for start in range(0, len(ids), self.MOST_IDS):
            test, args = self._in("run_id", ids[start:start + self.MOST_IDS])
            rows = self._read(
                f"SELECT run_id, sum(CASE WHEN status IN ({_FINISHED}) THEN 1 ELSE 0 END) "
                f"AS done, count(*) AS n FROM jobs WHERE {test} GROUP BY run_id", args)
            for r in rows:
                out[int(r["run_id"])] = (int(r["done"]), int(r["n"]))
        return out

    def count_runs(self) -> dict[RunState, int]:
        rows = self._read("SELECT status, count(*) AS n FROM runs WHERE parent_run IS NULL "
                          "GROUP BY status")
        return {RunState(r["status"]): int(r["n"]) for r in rows}

    def delete_runs(self, run_ids: Sequence[int]) -> None:
        ids = [int(i) for i in run_ids]
        for start in range(0, len(ids), self.MOST_IDS):
            chunk = ids[start:start + self.MOST_IDS]
            with self.batch():
                test, args = self._in("run_id", chunk)
                self._write(f"DELETE FROM jobs WHERE {test}", args)
                test, args = self._in("id", chunk)
                self._write(f"DELETE FROM runs WHERE {test}", args)
                for run_id in chunk:
                    self._known.pop(run_id, None)

    def delete_events(self, before: datetime) -> int:
        return self._write("DELETE FROM events WHERE at < ?", (self._encode("at", before),))
