"""The PostgreSQL store on a real PostgreSQL server (tests/pg_support.py): the store
tests written for files, what PostgreSQL does differently (NUL bytes, time zones,
other sessions, a broken connection, the schema), the leader lock, and `jaz server`
on a PostgreSQL database.

The contract tests of tests/test_store.py run on it too, through its `store` fixture."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import test_store
from pg_support import call, fresh_database, jaz_server
from support import free_port, wait_for

from jaz.engine.model import JobState, RunState
from jaz.engine.records import EventRecord, JobRecord, RunRecord
from jaz.engine.store import PostgresStore
from jaz.errors import JazError, StoreError, Unreachable

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)


@pytest.fixture
def url() -> str:
    return fresh_database()


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(url)
    yield s
    s.close()


@pytest.mark.parametrize("test", [
    test_store.test_a_failed_batch_leaves_nothing_behind,
    test_store.test_purging_deletes_runs_jobs_and_old_events_only,
    test_store.test_pages_of_runs,
    test_store.test_runs_are_counted_by_state,
    test_store.test_waiting_runs_per_jobnet_and_due_runs,
], ids=lambda t: t.__name__.removeprefix("test_"))
def test_the_file_store_tests_pass_on_postgres(test: Callable[[Path], None], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests open their stores themselves: each SqliteStore they open is a
    PostgresStore on a new database here."""
    opened: list[PostgresStore] = []

    def open_postgres(path: object) -> PostgresStore:
        opened.append(PostgresStore(fresh_database()))
        return opened[-1]

    monkeypatch.setattr(test_store, "SqliteStore", open_postgres)
    try:
        test(tmp_path)
    finally:
        for s in opened:
            s.close()
    assert opened


def test_batches_nest_and_other_sessions_see_them_only_when_committed(
        store: PostgresStore, url: str) -> None:
    other = PostgresStore(url)
    store.set_state("cursor", "before")
    with pytest.raises(RuntimeError), store.batch():
        store.set_state("cursor", "during a failed turn")
        raise RuntimeError("crash")
    assert store.get_state("cursor") == "before"
    with store.batch():
        run_id = test_store.make_run(store)
        with store.batch():
            store.update_job(run_id, "a", status=JobState.RUNNING)   # waits for the end
            store.set_state("cursor", "after")
        store.add_event(EventRecord(at=T0, kind="k", run_id=run_id))
        assert other.get_state("cursor") == "before"
        assert other.list_runs() == []
        assert store.get_job(run_id, "a").status == JobState.RUNNING  # a read flushes
    assert other.get_state("cursor") == "after"
    assert other.get_job(run_id, "a").status == JobState.RUNNING
    assert [e.kind for e in other.list_events()] == ["k"]
    other.close()


def test_times_come_back_as_the_same_instants_in_utc(store: PostgresStore) -> None:
    tokyo = timezone(timedelta(hours=9))
    run_id = store.create_run(RunRecord(jobnet="n", status=RunState.SCHEDULED,
                                        created_at=T0.astimezone(tokyo),
                                        scheduled_at=(T0 + timedelta(microseconds=7))
                                        .astimezone(tokyo)), [])
    run = store.get_run(run_id)
    assert run.created_at == T0 and run.created_at.utcoffset() == timedelta(0)
    assert run.scheduled_at == T0 + timedelta(microseconds=7)
    assert store.list_runs(due_by=T0) == []
    assert [r.id for r in store.list_runs(due_by=T0 + timedelta(microseconds=7))] == [run_id]


def test_text_with_nul_bytes_and_any_params_round_trip(store: PostgresStore) -> None:
    """Job output can hold NUL bytes, which PostgreSQL text cannot: they are replaced,
    never a failed write that would stop the run."""
    run_id = store.create_run(RunRecord(jobnet="n", status=RunState.RUNNING, created_at=T0,
                                        params={"Q": "it's \"quoted\" ; --", "é": "ü"}),
                              [JobRecord(name="a", kind="run")])
    store.update_job(run_id, "a", stdout_tail="bin\x00ary", outputs={"k": "v\x00"},
                     timed_out=True, pid=4242, exit_code=-9)
    job = store.get_job(run_id, "a")
    assert (job.stdout_tail, job.outputs) == ("bin\ufffdary", {"k": "v\ufffd"})
    assert (job.timed_out, job.pid, job.exit_code) == (True, 4242, -9)
    assert store.get_run(run_id).params == {"Q": "it's \"quoted\" ; --", "é": "ü"}
    assert store.progress([run_id, 999]) == {run_id: (0, 1), 999: (0, 0)}


def test_the_schema_is_made_once_and_a_newer_one_is_refused(store: PostgresStore,
                                                            url: str) -> None:
    run_id = test_store.make_run(store)
    again = PostgresStore(url)                  # a second server on the same database
    assert again.schema_version == store.schema_version == 2
    assert again.get_run(run_id).jobnet == "etl"
    again._db.execute("UPDATE jaz_schema SET version = 99")
    again.close()
    with pytest.raises(StoreError, match="newer jaz"):
        PostgresStore(url)


def test_a_broken_connection_is_opened_again(store: PostgresStore, url: str) -> None:
    run_id = test_store.make_run(store)
    admin = PostgresStore(url)
    admin._db.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))
    admin.close()
    with pytest.raises(Exception):   # noqa: B017 - the call in flight fails…
        store.get_run(run_id)
    assert store.get_run(run_id).jobnet == "etl"    # …and the next one reconnects


def test_threads_share_one_store(store: PostgresStore) -> None:
    run_id = store.create_run(RunRecord(jobnet="n", status=RunState.RUNNING, created_at=T0),
                              [JobRecord(name=f"j{i}", kind="run") for i in range(8)])
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(20):
                with store.batch():
                    store.update_job(run_id, f"j{i}", attempts=n + 1)
                    store.add_event(EventRecord(at=T0, kind=f"j{i}", run_id=run_id))
                store.get_jobs(run_id)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {j.attempts for j in store.get_jobs(run_id)} == {20}
    assert len(store.list_events(run_id=run_id)) == 160


def test_urls_with_a_password_or_nobody_listening_are_refused_clearly() -> None:
    with pytest.raises(StoreError, match="password") as e:
        PostgresStore("postgresql://jaz:secret@127.0.0.1/jaz")
    assert "~/.pgpass" in str(e.value)
    with pytest.raises(Unreachable, match="cannot connect to the database") as refused:
        PostgresStore(f"postgresql://jaz@127.0.0.1:{free_port()}/jaz")
    assert refused.value.exit_code == 3 and isinstance(refused.value, JazError)


def test_one_store_leads_until_it_goes(url: str) -> None:
    first, second = PostgresStore(url), PostgresStore(url)
    try:
        assert first.lead() and first.lead()
        assert not second.lead()
        first.close()                             # the process died: its session ends
        # the server frees a session's locks when its backend exits, a moment after the
        # client has closed: the other store takes over then (a server asks every second)
        wait_for(second.lead, "the other store to take the lead", timeout=10)
        assert second.lead()
    finally:
        first.close()
        second.close()


def test_without_psycopg_the_store_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)    # what an import finds missing
    with pytest.raises(StoreError, match="needs psycopg") as e:
        PostgresStore("postgresql://jaz@127.0.0.1/jaz")
    assert "jaz[postgres]" in str(e.value) and e.value.exit_code == 2


@pytest.mark.parametrize("url,ok", [
    ("postgresql://jaz@db.example:5432/jaz?sslmode=require", True),
    ("postgres:///jaz", True),
    ("postgresql://jaz:secret@db.example/jaz", False),
    ("postgresql://jaz@db.example/jaz?password=secret", False),
])
def test_the_server_config_takes_postgres_urls_without_a_password(url: str, ok: bool) -> None:
    from jaz.errors import JobnetInvalid
    from jaz.server.config import parse_config

    if ok:
        assert parse_config(f'database = "{url}"').database == url
    else:
        with pytest.raises(JobnetInvalid, match=r"put the password in ~/.pgpass or PGPASSWORD"):
            parse_config(f'database = "{url}"')


# ---------------------------------------------------------------- `jaz server` on it

def test_a_server_on_postgres_runs_and_remembers_across_a_restart(tmp_path: Path,
                                                                  url: str) -> None:
    nets = {"hello": '[jobs.a]\nrun = "echo hi from $JAZ_JOB"\n'}
    with jaz_server(tmp_path, url, nets) as (base, token, _, _):
        run_id = call(base, token, "POST", "/api/v1/runs", {"jobnet": "hello"})["run_id"]
        run = wait_for(lambda: (r := call(base, token, "GET", f"/api/v1/runs/{run_id}"))
                       ["status"] != "running" and r, "the run to end")
        assert run["status"] == "succeeded", run
    with jaz_server(tmp_path, url) as (base, token, _, _):
        runs = call(base, token, "GET", "/api/v1/runs")
        assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "succeeded")]
        logs = call(base, token, "GET", f"/api/v1/runs/{run_id}/logs?job=a")
        assert "hi from a" in json.dumps(logs)   # kept in $JAZ_HOME/logs on this machine


def test_two_servers_on_one_database_fire_each_instant_once(tmp_path: Path, url: str) -> None:
    """Both servers see the schedule; only the holder of the leader lock fires it, and
    when it dies (kill -9) the other takes over from where it was."""
    nets = {"tick": '[schedule]\nevery = "1s"\noverlap = "allow"\n[jobs.a]\nrun = "true"\n'}
    db = PostgresStore(url)

    def fired() -> list[datetime]:
        return [r.scheduled_at for r in db.list_runs(jobnet="tick")
                if r.scheduled_at is not None and r.status != RunState.SCHEDULED]

    with jaz_server(tmp_path / "a", url, nets) as (_, _, _, first), \
            jaz_server(tmp_path / "b", url, nets):
        wait_for(lambda: len(fired()) >= 3, "a few fires", timeout=20)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = datetime.now(UTC)
        wait_for(lambda: sum(t > killed_at for t in fired()) >= 2,
                 "the other server to fire", timeout=20)
    times = [r.scheduled_at for r in db.list_runs(jobnet="tick")]
    db.close()
    assert len(times) == len(set(times)), sorted(t for t in times if times.count(t) > 1)


def test_a_server_whose_database_cannot_be_reached_says_so_and_exits_3(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    config = tmp_path / "jaz.toml"
    config.write_text(f'listen = "127.0.0.1:0"\nallow_root = true\n'
                      f'database = "postgresql://jaz@127.0.0.1:{free_port()}/jaz"\n')
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JAZ_")},
           "JAZ_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr
    assert "cannot connect to the database" in done.stderr and "~/.pgpass" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_is_driven_by_one_server_and_taken_over_when_it_dies(tmp_path: Path,
                                                                  url: str) -> None:
    """A server that starts does not resume the runs another live server drives (each
    run is claimed with an advisory lock): the jobs after the running one start once.
    When the driving server dies (kill -9) the leader takes its runs over and the run
    goes on to its end."""
    marks = tmp_path / "marks"
    nets = {"slow": f'[jobs.a]\nrun = "echo a$RUN >> {marks}; sleep 3"\n'
                    f'[jobs.b]\nneeds = ["a"]\nrun = "echo b$RUN >> {marks}"\n'}

    def count(line: str) -> int:
        return marks.read_text().splitlines().count(line) if marks.exists() else 0

    db = PostgresStore(url)
    try:
        with jaz_server(tmp_path / "a", url, nets) as (base, token, _, first):
            def start(n: int) -> int:
                return int(call(base, token, "POST", "/api/v1/runs",
                                 {"jobnet": "slow", "params": {"RUN": str(n)}})["run_id"])

            one = start(1)
            wait_for(lambda: count("a1"), "the first run's job to start")
            with jaz_server(tmp_path / "b", url, nets):   # recovers while `one` runs on a
                wait_for(lambda: db.get_run(one).status != RunState.RUNNING, "run 1 to end")
                assert (count("a1"), count("b1")) == (1, 1), marks.read_text()
                assert db.get_run(one).status == RunState.SUCCEEDED
                two = start(2)
                wait_for(lambda: count("a2"), "the second run's job to start")
                first.send_signal(signal.SIGKILL)
                first.wait()
                run = wait_for(lambda: (r := db.get_run(two)).status != RunState.RUNNING
                               and r, "the other server to take run 2 over", timeout=30)
        # the job the dead server was running ran once, or once more where its result was
        # out of reach (its exit file is in the dead server's own $JAZ_HOME/logs), as
        # `--resume` does, or it was waited for and its result counted as lost; what
        # comes after it runs at most once
        assert count("a2") in (1, 2) and count("b2") <= 1, marks.read_text()
        assert run.status in (RunState.SUCCEEDED, RunState.ERROR, RunState.FAILED)
    finally:
        db.close()


def test_runs_are_not_armed_on_a_database_other_servers_share(
        tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another server may hold a job of a run after this one armed it, which this one
    would not hear of: on PostgreSQL nothing is armed, and the run starts as usual."""
    from datetime import timedelta

    from jaz.server.config import parse_config
    from jaz.server.core import Core

    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    (nets / "net.toml").write_text('[jobs.a]\nrun = "true"\n')
    core = Core(parse_config(f'jobnets = "{nets}"\ndatabase = "{url}"\n'))
    try:
        run_id = core.start("net", at=core.clock.now() + timedelta(minutes=5), user="test")
        assert core.arm([(run_id, None)]) == 0 and core.armed() == {}
        assert not (core.settings.log_dir / str(run_id)).exists()
    finally:
        core.close()
