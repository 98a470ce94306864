"""The agent's own SQLite database: every job it accepted, what became of it, and
whether its server has taken the result. A job is committed here before the agent
says yes to it, and its end before it is offered to the server (docs/agent.md)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,          -- accepted | running | ended
    pid INTEGER,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    result TEXT,                  -- JSON: exit_code, outputs, tails, error, stopped
    acked INTEGER NOT NULL DEFAULT 0,
    stop INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (owner, acked, state);
"""


@dataclass(frozen=True, kw_only=True)
class JobRow:
    id: str
    owner: str
    spec: dict[str, Any]
    state: str
    pid: int | None
    created: float
    started: float | None
    ended: float | None
    result: dict[str, Any] | None
    acked: bool
    stop: bool

    def view(self) -> dict[str, Any]:
        """What the server is told of the job."""
        return {"id": self.id, "state": self.state, "pid": self.pid,
                "started": self.started, "ended": self.ended, "result": self.result,
                "acked": self.acked}


class AgentStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")   # a yes survives a power cut too
            self._db.executescript(SCHEMA)
        # reads on a connection of their own (WAL: they see every commit made before
        # them), so that they never wait behind a commit's sync to disk
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._read_lock = threading.Lock()
        try:
            path.chmod(0o600)   # the jobs' environments are in it
        except OSError:
            pass

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[JobRow]:
        with self._read_lock:
            rows = self._reader.execute(f"SELECT id, owner, spec, state, pid, created, "
                                        f"started, ended, result, acked, stop FROM jobs {sql}",
                                        tuple(args)).fetchall()
        return [JobRow(id=r[0], owner=r[1], spec=json.loads(r[2]), state=r[3], pid=r[4],
                       created=r[5], started=r[6], ended=r[7],
                       result=json.loads(r[8]) if r[8] else None, acked=bool(r[9]),
                       stop=bool(r[10])) for r in rows]

    def get(self, job_id: str) -> JobRow | None:
        rows = self._rows("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def add_many(self, owner: str, jobs: list[tuple[str, dict[str, Any]]], now: float
                 ) -> list[bool]:
        """Commit several new jobs in one transaction (one sync to disk); for each,
        whether it is new (False: the id was known, the same job)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                new = [self._db.execute(
                    "INSERT OR IGNORE INTO jobs (id, owner, spec, state, created) "
                    "VALUES (?, ?, ?, 'accepted', ?)",
                    (job_id, owner, json.dumps(spec), now)).rowcount == 1
                    for job_id, spec in jobs]
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return new

    def set(self, job_id: str, **values: Any) -> None:
        if "result" in values and values["result"] is not None:
            values["result"] = json.dumps(values["result"])
        cols = ", ".join(f"{k} = ?" for k in values)
        self._unsynced(f"UPDATE jobs SET {cols} WHERE id = ?", [(*values.values(), job_id)])

    def _unsynced(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        """A write that need not reach the disk before it returns (a pid, a start, an
        acknowledgement: lost in a power cut, the result is only delivered again); the
        next synced commit takes it to disk with it."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                return self._db.executemany(sql, rows).rowcount
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def end_many(self, ends: list[tuple[str, dict[str, Any], float]]) -> None:
        """Record the ends of several jobs in one commit (each only once)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "UPDATE jobs SET state = 'ended', ended = ?, result = ? "
                    "WHERE id = ? AND state != 'ended'",
                    [(now, json.dumps(result), job_id) for job_id, result, now in ends])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def ack(self, owner: str, ids: list[str]) -> int:
        return self._unsynced(
            "UPDATE jobs SET acked = 1 WHERE id = ? AND owner = ? AND state = 'ended'",
            [(i, owner) for i in ids])

    def unfinished(self) -> list[JobRow]:
        return self._rows("WHERE state != 'ended' ORDER BY created")

    def held(self, owner: str) -> list[JobRow]:
        """Every job of this owner not yet settled: running, or ended and not acked."""
        return self._rows("WHERE owner = ? AND acked = 0 ORDER BY created", (owner,))

    def ended_unacked(self, owner: str, ids: list[str] | None = None, limit: int = 500
                      ) -> list[JobRow]:
        if ids is None:
            return self._rows("WHERE owner = ? AND acked = 0 AND state = 'ended' "
                              "ORDER BY ended LIMIT ?", (owner, limit))
        return self._rows("WHERE owner = ? AND acked = 0 AND state = 'ended' AND id IN "
                          "(SELECT value FROM json_each(?)) ORDER BY ended LIMIT ?",
                          (owner, json.dumps(ids), limit))

    def purge(self, before: float) -> list[str]:
        """Forget the settled jobs that ended before `before`; their ids (for the logs)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM jobs WHERE state = 'ended' AND acked = 1 AND ended < ?",
                (before,))]
            self._db.execute("DELETE FROM jobs WHERE state = 'ended' AND acked = 1 AND "
                             "ended < ?", (before,))
        return ids
