"""The store contract, on both implementations, and the SQLite file's own concerns."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support import wait_for

from jaz.engine.model import JobState, RunState
from jaz.engine.records import EventRecord, JobRecord, RunRecord
from jaz.engine.store import MemoryStore, SqliteStore
from jaz.engine.store import sqlite as sqlite_module
from jaz.engine.store.base import Store
from jaz.engine.store.sqlite import MIGRATIONS
from jaz.errors import JazError, NotFound

T0 = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("sqlite", marks=pytest.mark.sqlite),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "postgres":
        from pg_support import fresh_database

        from jaz.engine.store import PostgresStore

        s: Store = PostgresStore(fresh_database())
    else:
        s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "jaz.db")
    yield s
    s.close()


def make_run(store, jobnet="etl", minutes=0, status=RunState.RUNNING, parent=None) -> int:
    run = RunRecord(jobnet=jobnet, status=status, params={"DAY": "mon"},
                    created_at=T0 + timedelta(minutes=minutes), parent_run=parent,
                    parent_job="sub" if parent else None)
    return store.create_run(run, [JobRecord(name="a", kind="run"),
                                  JobRecord(name="b", kind="sql", host="db1")])


def test_runs_and_jobs_round_trip(store):
    run_id = make_run(store)
    store.update_job(run_id, "a", status=JobState.SUCCEEDED, exit_code=0, attempts=1,
                     outputs={"rows": "12"}, started_at=T0, ended_at=T0 + timedelta(seconds=3),
                     timed_out=True)
    store.update_run(run_id, status=RunState.SUCCEEDED, ended_at=T0, message="done")
    run = store.get_run(run_id)
    assert (run.status, run.params, run.message) == (RunState.SUCCEEDED, {"DAY": "mon"}, "done")
    jobs = store.get_jobs(run_id)
    assert [j.name for j in jobs] == ["a", "b"]  # file order is kept
    a = store.get_job(run_id, "a")
    assert (a.status, a.exit_code, a.outputs, a.timed_out) == (JobState.SUCCEEDED, 0,
                                                               {"rows": "12"}, True)
    assert a.ended_at == T0 + timedelta(seconds=3)
    assert store.get_job(run_id, "b").host == "db1"
    assert store.run_status(run_id) == RunState.SUCCEEDED
    # an update returns the row as it is now, other fields included
    after = store.update_run(run_id, message="again")
    assert (after.status, after.message, after.params) == (RunState.SUCCEEDED, "again",
                                                           {"DAY": "mon"})


def test_a_run_is_updated_only_while_it_is_as_expected(store):
    """`update_run_if`: the scheduler starts a run only if it is still scheduled by a
    schedule (an operator may have held, skipped or re-timed it since it was read)."""
    run_id = make_run(store, status=RunState.SCHEDULED)
    store.update_run(run_id, trigger="schedule")
    started = store.update_run_if(run_id, RunState.SCHEDULED, ("schedule", "catch-up"),
                                  status=RunState.RUNNING, trigger="catch-up")
    assert started is not None and (started.status, started.trigger, started.params) == (
        RunState.RUNNING, "catch-up", {"DAY": "mon"})
    assert store.update_run_if(run_id, RunState.SCHEDULED, ("schedule", "catch-up"),
                               status=RunState.RUNNING) is None      # running already
    other = make_run(store, status=RunState.SCHEDULED)
    store.update_run(other, trigger="manual")                        # re-timed by hand
    assert store.update_run_if(other, RunState.SCHEDULED, ("schedule",),
                               status=RunState.RUNNING) is None
    assert store.get_run(other).status == RunState.SCHEDULED         # nothing changed
    assert store.update_run_if(other + 100, RunState.SCHEDULED, ("manual",),
                               status=RunState.RUNNING) is None      # no such run


def test_unknown_ids_are_not_found(store):
    run_id = make_run(store)
    with pytest.raises(NotFound):
        store.get_run(run_id + 1)
    with pytest.raises(NotFound):
        store.run_status(run_id + 1)
    with pytest.raises(NotFound):
        store.update_run(run_id + 1, message="x")
    with pytest.raises(NotFound):
        store.get_job(run_id, "zz")
    with pytest.raises(NotFound):
        store.update_job(run_id, "zz", status=JobState.FAILED)
    with pytest.raises(TypeError):
        store.update_job(run_id, "a", colour="red")


def test_list_runs_filters_and_orders_newest_first(store):
    first = make_run(store, "etl", 0, RunState.SUCCEEDED)
    second = make_run(store, "etl", 10, RunState.FAILED)
    other = make_run(store, "backup", 20, RunState.SUCCEEDED)
    child = make_run(store, "sub", 21, RunState.SUCCEEDED, parent=second)
    assert [r.id for r in store.list_runs()] == [child, other, second, first]
    assert [r.id for r in store.list_runs(jobnet="etl")] == [second, first]
    assert [r.id for r in store.list_runs(status=[RunState.FAILED])] == [second]
    assert [r.id for r in store.list_runs(since=T0 + timedelta(minutes=5),
                                          top_level=True)] == [other, second]
    assert [r.id for r in store.list_runs(parent_run=second)] == [child]
    assert [r.id for r in store.list_runs(limit=2)] == [child, other]


def test_job_history_spans_runs(store):
    runs = [make_run(store, "etl", i) for i in range(3)]
    for i, run_id in enumerate(runs):
        store.update_job(run_id, "a", exit_code=i)
    make_run(store, "other", 9)
    history = store.job_history("etl", "a")
    assert [(j.run_id, j.exit_code) for j in history] == [(runs[2], 2), (runs[1], 1),
                                                          (runs[0], 0)]


def test_events_and_versions(store):
    run_id = make_run(store)
    for i, kind in enumerate(["run_started", "hold", "release"]):
        store.add_event(EventRecord(at=T0 + timedelta(seconds=i), kind=kind, run_id=run_id,
                                    jobnet="etl", job="a", user="ops"))
    assert [e.kind for e in store.list_events(run_id=run_id)] == ["run_started", "hold",
                                                                  "release"]
    assert [e.kind for e in store.list_events(since=T0 + timedelta(seconds=1))] == [
        "hold", "release"]
    assert [e.kind for e in store.list_events(limit=1)] == ["release"]
    store.save_version("abc", "etl", "text v1", T0)
    store.save_version("abc", "etl", "ignored duplicate", T0)
    assert store.get_version("abc") == "text v1"
    assert store.get_version("nope") is None


def test_a_failed_batch_leaves_nothing_behind(tmp_path):
    store = SqliteStore(tmp_path / "jaz.db")
    run_id = make_run(store)
    with pytest.raises(RuntimeError), store.batch():
        store.update_job(run_id, "a", status=JobState.RUNNING)
        raise RuntimeError("crash in the middle of a turn")
    assert store.get_job(run_id, "a").status == JobState.PENDING


def test_sqlite_upgrades_an_older_schema(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO runs (jobnet, status, created_at) VALUES ('etl', 'failed', ?)",
               (T0.isoformat(),))
    db.execute("INSERT INTO jobs (run_id, name, seq, kind, status, host) "
               "VALUES (1, 'a', 0, 'run', 'failed', 'local')")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.get_job(1, "a").executions == 0  # the new column, with its default
    assert store.get_run(1).status == RunState.FAILED


def test_sqlite_refuses_a_newer_schema_and_garbage(tmp_path):
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    with pytest.raises(JazError, match="newer jaz"):
        SqliteStore(newer)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JazError, match="cannot open the database"):
        SqliteStore(garbage)


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path):
    store = SqliteStore(tmp_path / "jaz.db")
    make_run(store)
    assert (tmp_path / "jaz.db").stat().st_mode & 0o077 == 0
    mode = sqlite3.connect(tmp_path / "jaz.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_cli_reports_a_broken_database_without_a_traceback(tmp_path):
    import subprocess
    import sys

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite" * 500)
    result = subprocess.run([sys.executable, "-m", "jaz", "runs", "--db", str(garbage)],
                            capture_output=True, text=True, env={"JAZ_HOME": str(tmp_path),
                                                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_state_values_round_trip(store):
    assert store.get_state("scheduler.last_tick") is None
    store.set_state("scheduler.last_tick", T0.isoformat())
    store.set_state("scheduler.cursor.etl", "a")
    store.set_state("scheduler.cursor.etl", "b")       # overwritten, not added
    assert store.get_state("scheduler.last_tick") == T0.isoformat()
    assert store.get_state("scheduler.cursor.etl") == "b"


def test_state_values_join_an_open_batch(tmp_path):
    store = SqliteStore(tmp_path / "jaz.db")
    store.set_state("cursor", "before")
    with pytest.raises(RuntimeError), store.batch():
        store.set_state("cursor", "during a failed turn")
        raise RuntimeError("crash")
    assert store.get_state("cursor") == "before"
    other = sqlite3.connect(tmp_path / "jaz.db")
    with store.batch():
        store.set_state("cursor", "after")
        assert other.execute("SELECT value FROM state").fetchall() == [("before",)]
    assert other.execute("SELECT value FROM state").fetchall() == [("after",)]
    other.close()
    store.close()
    reopened = SqliteStore(tmp_path / "jaz.db")
    assert reopened.get_state("cursor") == "after"
    reopened.close()


def test_sqlite_upgrade_to_the_state_table_keeps_the_runs(tmp_path):
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + "; PRAGMA user_version = 2;")
    db.execute("INSERT INTO runs (jobnet, status, created_at) VALUES ('etl', 'succeeded', ?)",
               (T0.isoformat(),))
    db.execute("INSERT INTO jobs (run_id, name, seq, kind, status, host, executions) "
               "VALUES (1, 'a', 0, 'run', 'succeeded', 'local', 3)")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.schema_version == len(MIGRATIONS) == 4
    assert store.get_run(1).status == RunState.SUCCEEDED
    assert store.get_job(1, "a").executions == 3
    assert store.get_state("cursor") is None
    store.set_state("cursor", T0.isoformat())
    assert store.get_state("cursor") == T0.isoformat()
    store.close()


def test_purging_deletes_runs_jobs_and_old_events_only(tmp_path: Path) -> None:
    tokyo = timezone(timedelta(hours=9))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for store in (MemoryStore(), SqliteStore(tmp_path / "p.db")):
        ids = [store.create_run(RunRecord(jobnet="n", status=RunState.SUCCEEDED,
                                          created_at=t0 + timedelta(days=i)),
                                [JobRecord(name="a", kind="run")]) for i in range(3)]
        for i in range(3):
            store.add_event(EventRecord(at=t0 + timedelta(days=i), kind="k", user="u",
                                        run_id=ids[i]))
        store.delete_runs(ids[:2])
        assert [r.id for r in store.list_runs()] == [ids[2]]
        assert store.get_jobs(ids[2])[0].name == "a"
        # a cutoff in another zone is the same instant: times compare as times
        assert store.delete_events((t0 + timedelta(days=1, hours=9)).astimezone(tokyo)) == 2
        assert [e.run_id for e in store.list_events()] == [ids[2]]


def test_pages_of_runs(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for store in (MemoryStore(), SqliteStore(tmp_path / "pages.db")):
        ids = [store.create_run(RunRecord(jobnet="n", status=RunState.SUCCEEDED,
                                          created_at=t0), []) for _ in range(7)]
        newest = list(reversed(ids))
        assert [r.id for r in store.list_runs(limit=3)] == newest[:3]
        assert [r.id for r in store.list_runs(limit=3, offset=3)] == newest[3:6]
        assert [r.id for r in store.list_runs(offset=5)] == newest[5:]


def test_runs_are_counted_by_state(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for store in (MemoryStore(), SqliteStore(tmp_path / "count.db")):
        for status in (RunState.SUCCEEDED, RunState.SUCCEEDED, RunState.FAILED):
            store.create_run(RunRecord(jobnet="n", status=status, created_at=t0), [])
        parent = store.create_run(RunRecord(jobnet="n", status=RunState.RUNNING,
                                            created_at=t0), [])
        store.create_run(RunRecord(jobnet="c", status=RunState.RUNNING, created_at=t0,
                                   parent_run=parent), [])
        assert store.count_runs() == {RunState.SUCCEEDED: 2, RunState.FAILED: 1,
                                      RunState.RUNNING: 1}


def test_waiting_runs_per_jobnet_and_due_runs(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    tokyo = timezone(timedelta(hours=9))
    for store in (MemoryStore(), SqliteStore(tmp_path / "wait.db")):
        def run(jobnet: str, status: RunState, minutes: int, store: Store = store) -> int:
            return store.create_run(RunRecord(
                jobnet=jobnet, status=status, created_at=t0,
                scheduled_at=(t0 + timedelta(minutes=minutes)).astimezone(tokyo)), [])
        due = run("a", RunState.SCHEDULED, -5)
        run("a", RunState.SCHEDULED, 5)
        run("a", RunState.HELD, 10)
        run("b", RunState.SCHEDULED, 3)
        run("b", RunState.SUCCEEDED, 30)
        counts, first = store.waiting(t0)
        assert counts == {"a": 2, "b": 1}
        assert first == t0 + timedelta(minutes=3)
        assert [r.id for r in store.list_runs(status=[RunState.SCHEDULED], due_by=t0)] == [due]


def test_unfinished_runs_are_found_by_their_state_not_by_scanning_history(
        tmp_path: Path) -> None:
    """The scheduler asks for the running and the due runs on every tick: with a long
    history those must come from the status index, not from walking every top-level run
    (what `parent_run IS NULL` through its own index amounts to)."""
    store = SqliteStore(tmp_path / "jaz.db")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with store.batch():
        for i in range(300):
            store.create_run(RunRecord(jobnet="n", status=RunState.SUCCEEDED, created_at=t0,
                                       scheduled_at=t0 + timedelta(minutes=i)), [])
        store.create_run(RunRecord(jobnet="n", status=RunState.RUNNING, created_at=t0), [])
    traced: list[str] = []
    store._db.set_trace_callback(traced.append)
    running = store.list_runs(status=[RunState.RUNNING, RunState.ERROR], top_level=True)
    assert [r.status for r in running] == [RunState.RUNNING]
    plan = store._db.execute("EXPLAIN QUERY PLAN " + traced[-1]).fetchall()
    assert any("runs_status" in str(row) or "runs_scheduled" in str(row) for row in plan), plan


def test_the_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)   # what a shell usually has: new files would be world-readable
    store = SqliteStore(tmp_path / "jaz.db")
    try:
        store.set_state("k", "v")
        for name in ("jaz.db", "jaz.db-wal", "jaz.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
    finally:
        store.close()
        os.umask(old)


def _checkpointed(db: Path, copy: Path) -> list[str]:
    """The jobnets of the runs in the database file itself, without its WAL: what was
    checkpointed so far."""
    shutil.copyfile(db, copy)
    try:
        with sqlite3.connect(copy) as con:
            return [row[0] for row in con.execute("SELECT jobnet FROM runs ORDER BY id")]
    except sqlite3.DatabaseError:   # no runs table yet, or copied mid-checkpoint
        return []
    finally:
        copy.unlink()


def test_background_checkpoints_move_the_wal_into_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 0.05)
    store = SqliteStore(tmp_path / "jaz.db", background_checkpoints=True)
    try:
        for name in ("etl", "backup", "report"):
            make_run(store, jobnet=name)
        wait_for(lambda: _checkpointed(tmp_path / "jaz.db", tmp_path / "copy.db")
                 == ["etl", "backup", "report"], "the runs to reach the database file")
    finally:
        store.close()


def test_with_background_checkpoints_no_commit_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past 1,000 pages of WAL a commit would checkpoint (and wait for the disk) itself;
    with background checkpoints only the store's thread does, here never."""
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 3600.0)
    for background, in_file in ((False, True), (True, False)):
        db = tmp_path / f"{background}.db"
        store = SqliteStore(db, background_checkpoints=background)
        try:
            make_run(store, jobnet="etl")
            for i in range(60):   # 6 MB: past 1,000 pages of 4 KiB
                store.set_state(f"big.{i}", "x" * 100_000)
            assert (_checkpointed(db, tmp_path / "copy.db") == ["etl"]) is in_file
        finally:
            store.close()
        with sqlite3.connect(db) as con:   # nothing lost either way
            assert con.execute("SELECT count(*) FROM state WHERE key LIKE 'big.%'"
                               ).fetchone() == (60,)
