"""SQL steps (pgAgent): SQLite in the standard library, PostgreSQL through psycopg.

The rows of the last statement that returns rows are written to the job's
stdout as tab-separated text, and the first row's columns become outputs.
"""

from __future__ import annotations

import importlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome, read_tail
from jaz.engine.model import SqlAction
from jaz.errors import ActionError


def sqlite_path(url: str, base: Path) -> Path:
    """`sqlite:///rel.db` is relative to the jobnet folder, `sqlite:////abs.db` absolute."""
    rest = url[len("sqlite:///"):]
    p = Path(rest)
    return p if p.is_absolute() else base / p


def _write_rows(path: Path, cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        if cols:
            f.write("\t".join(cols) + "\n")
        for row in rows:
            f.write("\t".join("" if v is None else str(v) for v in row) + "\n")


def _outputs(cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, str]:
    out = {"ROWS": str(len(rows))}
    if rows:
        for c, v in zip(cols, rows[0], strict=False):
            if c.isidentifier():
                out[c] = "" if v is None else str(v)
    return out


class SqlExecution(Execution):
    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self._conn: Any = None
        self._stopped = threading.Event()

    def wait(self) -> Outcome:
        a = self.attempt
        action = a.job.action
        assert isinstance(action, SqlAction)
        a.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        a.stderr_path.write_text("")
        try:
            cols, rows = self._run(action.database, action.statements)
        except ActionError as e:
            a.stdout_path.write_text("")
            a.stderr_path.write_text(str(e) + "\n")
            return Outcome(exit_code=1, error=str(e), stderr_tail=str(e),
                           stopped=self._stopped.is_set())
        _write_rows(a.stdout_path, cols, rows)
        return Outcome(exit_code=0, outputs=_outputs(cols, rows),
                       stdout_tail=read_tail(a.stdout_path))

    def _run(self, url: str, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
        if url.startswith("sqlite:///"):
            return self._sqlite(sqlite_path(url, self.attempt.base_dir), sql)
        return self._postgres(url, sql)

    def _sqlite(self, path: Path, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
        try:
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as e:
            raise ActionError(f"cannot open {path}: {e}") from None
        self._conn = conn
        cols: list[str] = []
        rows: list[Sequence[Any]] = []
        try:
            conn.execute("BEGIN")
            for statement in _statements(sql):
                cur = conn.execute(statement)
                if cur.description:
                    cols = [d[0] for d in cur.description]
                    rows = cur.fetchall()
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise ActionError(f"SQL error: {e}") from None
        finally:
            conn.close()
        return cols, rows

    def _postgres(self, url: str, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
        try:
            psycopg: Any = importlib.import_module("psycopg")
        except ImportError:
            raise ActionError("PostgreSQL jobs need psycopg, which is not installed",
                              hint="pip install 'jaz[postgres]'") from None
        try:
            with psycopg.connect(url) as conn:
                self._conn = conn
                cols: list[str] = []
                rows: list[Sequence[Any]] = []
                with conn.cursor() as cur:
                    for statement in _statements(sql):
                        cur.execute(statement)
                        if cur.description:
                            cols = [d.name for d in cur.description]
                            rows = cur.fetchall()
                return cols, rows
        except psycopg.Error as e:
            raise ActionError(f"SQL error: {e}") from None

    def stop(self) -> None:
        self._stopped.set()
        conn = self._conn
        if conn is None:
            return
        try:
            if isinstance(conn, sqlite3.Connection):
                conn.interrupt()
            else:
                conn.cancel()
        except Exception:  # noqa: S110 - the connection may be closing already
            pass


def _statements(sql: str) -> list[str]:
    """Split on semicolons that end complete statements (sqlite3.complete_statement)."""
    out: list[str] = []
    buf = ""
    for part in sql.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        out.append(buf.strip().rstrip(";"))
    return out


class SqlExecutor(Executor):
    def start(self, attempt: Attempt) -> Execution:
        return SqlExecution(attempt)
