"""Several real `jaz server` processes on one real PostgreSQL (tests/pg_support.py):
an operator action sent to the server that does not drive the run; fires fenced when
the leader's session is cut (pg_terminate_backend), with a fire caught in flight, or the
leader is killed (kill -9); the fires due while nobody leads fired once by the next
leader; a server started again on its JAZ_HOME taking its runs back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pg_support import call, fresh_database, jaz_server
from support import wait_for

from jaz.engine.model import RunState
from jaz.engine.store import PostgresStore


@pytest.fixture
def url() -> str:
    return fresh_database()


def test_an_action_sent_to_the_other_server_is_applied_once_by_the_driver(
        tmp_path: Path, url: str) -> None:
    """A run driven by A: its job stopped through B stops at once (B alone could only
    have changed the database, and A's `sleep` would have gone on); the stop is
    recorded once; B's logs call fetches A's logs."""
    nets = {"slow": '[jobs.a]\nrun = "echo started; sleep 60"\n'}
    db = PostgresStore(url)
    try:
        with jaz_server(tmp_path / "a", url, nets) as (base_a, token_a, _, _), \
                jaz_server(tmp_path / "b", url, nets) as (base_b, token_b, _, _):
            run_id = call(base_a, token_a, "POST", "/api/v1/runs", {"jobnet": "slow"})["run_id"]
            wait_for(lambda: db.get_job(run_id, "a").status == "running", "job a to run")
            call(base_b, token_b, "POST", f"/api/v1/runs/{run_id}/jobs/a/stop")
            job = wait_for(lambda: (j := db.get_job(run_id, "a")).status != "running" and j,
                           "the driver to stop the job", timeout=10)
            assert job.status == "stopped", job
            stops = [e for e in db.list_events(run_id=run_id) if e.kind == "stop_job"]
            assert len(stops) == 1, stops
            sent = db._read("SELECT status, server FROM jaz_actions")
            assert [r["status"] for r in sent] == ["done"], sent
            # the logs are on A's machine: B asks A (another token: B says where)
            try:
                logs = call(base_b, token_b, "GET", f"/api/v1/runs/{run_id}/logs?job=a")
                assert "started" in json.dumps(logs)
            except urllib.error.HTTPError as e:
                assert e.code == 409
                assert base_a in json.loads(e.read())["title"]
    finally:
        db.close()


def test_cutting_the_leaders_session_or_killing_it_never_doubles_a_fire(
        tmp_path: Path, url: str) -> None:
    nets = {"tick": '[schedule]\nevery = "1s"\noverlap = "allow"\n[jobs.a]\nrun = "true"\n'}
    db = PostgresStore(url)

    def fired() -> list[datetime]:
        return [r.scheduled_at for r in db.list_runs(jobnet="tick")
                if r.scheduled_at is not None and r.status != RunState.SCHEDULED]

    try:
        with jaz_server(tmp_path / "a", url, nets) as (_, _, _, first), \
                jaz_server(tmp_path / "b", url, nets), \
                jaz_server(tmp_path / "c", url, nets):
            wait_for(lambda: len(fired()) >= 3, "a few fires", timeout=20)
            leader = db._read("SELECT server FROM jaz_leader")[0]["server"]
            # cut every session of the leader
            db._read("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN "
                     "(SELECT lock_pid FROM jaz_servers WHERE id = ?)", (leader,))
            cut_at = datetime.now(UTC)
            wait_for(lambda: db._read("SELECT term FROM jaz_leader")[0]["term"] >= 2,
                     "another term", timeout=20)
            wait_for(lambda: sum(t > cut_at for t in fired()) >= 2, "fires after the cut",
                     timeout=20)
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = datetime.now(UTC)
            wait_for(lambda: sum(t > killed_at for t in fired()) >= 2,
                     "fires after the kill", timeout=20)
        times = [r.scheduled_at for r in db.list_runs(jobnet="tick")]
        assert len(times) == len(set(times)), sorted(t for t in times if times.count(t) > 1)
    finally:
        db.close()


def test_the_fires_due_while_nobody_leads_are_fired_once_by_the_next_leader(
        tmp_path: Path, url: str) -> None:
    """The leader is killed (kill -9) while the only other server is stopped (SIGSTOP):
    fires come due with nobody to fire them. Continued, the other server takes over and
    fires them, late: every fire, before, in and after the gap, exists exactly once
    (one second apart, none missing) and ran."""
    nets = {"tick": '[schedule]\nevery = "1s"\noverlap = "allow"\n[jobs.a]\nrun = "true"\n'}
    db = PostgresStore(url)

    def due_unfired() -> list[Any]:
        now = datetime.now(UTC)
        return [r for r in db.list_runs(jobnet="tick") if r.status == RunState.SCHEDULED
                and r.scheduled_at is not None and r.scheduled_at < now - timedelta(seconds=0.3)]

    try:
        with jaz_server(tmp_path / "a", url, nets) as (_, _, _, first):
            wait_for(lambda: db._read("SELECT term FROM jaz_leader"), "A to lead", timeout=20)
            with jaz_server(tmp_path / "b", url, nets) as (_, _, _, second):
                try:
                    wait_for(lambda: db._read("SELECT 1 FROM jaz_servers WHERE url <> '' "
                                              "AND lock_pid IS NOT NULL HAVING count(*) = 2"),
                             "B to be up", timeout=20)
                    second.send_signal(signal.SIGSTOP)
                    first.send_signal(signal.SIGKILL)
                    first.wait()
                    gap = wait_for(lambda: len(r := due_unfired()) >= 3 and r,
                                   "fires to come due with nobody leading", timeout=20)
                finally:
                    second.send_signal(signal.SIGCONT)
                wait_for(lambda: db._read("SELECT term FROM jaz_leader")[0]["term"] >= 2,
                         "B to lead", timeout=20)
                wait_for(lambda: not due_unfired(), "B to fire what came due", timeout=20)
                resumed = datetime.now(UTC)
                wait_for(lambda: sum(r.scheduled_at is not None and r.scheduled_at > resumed
                                     and r.status != RunState.SCHEDULED
                                     for r in db.list_runs(jobnet="tick")) >= 2,
                         "fires after the take-over", timeout=20)
        runs = [r for r in db.list_runs(jobnet="tick") if r.status != RunState.SCHEDULED]
        times = sorted(r.scheduled_at for r in runs if r.scheduled_at is not None)
        assert len(times) == len(set(times)), [t for t in times if times.count(t) > 1]
        steps = {b - a for a, b in zip(times, times[1:], strict=False)}
        assert steps == {timedelta(seconds=1)}, times          # none lost
        assert all(r.started_at is not None and r.status != RunState.MISSED for r in runs)
        late = {r.id for r in runs if r.started_at is not None and r.scheduled_at is not None
                and r.started_at - r.scheduled_at > timedelta(seconds=0.3)}
        assert {r.id for r in gap} <= late   # the gap's fires, fired by B after it
    finally:
        db.close()


def _waiting(db: PostgresStore) -> list[dict[str, Any]]:
    """The jaz sessions waiting for a lock: pid, whether in a transaction that wrote
    (or locked a row), and the relation waited for if any."""
    return db._read("SELECT a.pid, a.backend_xid IS NOT NULL AS wrote, "
                    "(SELECT l.relation::regclass::text FROM pg_locks l WHERE l.pid = a.pid "
                    "AND NOT l.granted LIMIT 1) AS rel FROM pg_stat_activity a "
                    "WHERE a.application_name = 'jaz' AND a.wait_event_type = 'Lock'")


def test_a_fire_in_flight_when_the_leaders_session_is_cut_is_not_doubled(
        tmp_path: Path, url: str) -> None:
    """The race the fence is for, made to happen: the leader's fire (a run created ahead
    and the schedule's cursor moved, in one transaction) is held up by the test's lock
    on the `state` table after it wrote the run; the leader's lock session is cut; the
    other servers try to take over while it is stuck. Without the fence, one of them
    leads at once, reads the old cursor, creates the same fire and waits on the same
    lock: once the lock goes, both commit and the fire is doubled. With it, the
    stuck fire holds the term row, nobody leads until it commits, and the one that
    takes over reads its cursor."""
    import psycopg

    nets = {"tick": '[schedule]\nevery = "1s"\noverlap = "allow"\n[jobs.a]\nrun = "true"\n'}
    db = PostgresStore(url)
    blocker = psycopg.connect(url)   # a transaction the test holds open
    try:
        with jaz_server(tmp_path / "a", url, nets), jaz_server(tmp_path / "b", url, nets), \
                jaz_server(tmp_path / "c", url, nets):
            wait_for(lambda: db._read("SELECT term FROM jaz_leader"), "a leader", timeout=20)
            leader = db._read("SELECT server FROM jaz_leader")[0]["server"]
            for _ in range(20):   # until the leader is stuck inside a fire, not elsewhere
                blocker.execute("LOCK TABLE state IN EXCLUSIVE MODE")
                stuck = wait_for(lambda: [w for w in _waiting(db) if w["rel"] == "state"],
                                 "the leader to wait for the state table", timeout=10)
                if stuck[0]["wrote"]:
                    break
                blocker.rollback()   # its tick's own write: let it go, and try again
            else:
                raise AssertionError("the leader was never caught inside a fire")
            db._read("SELECT pg_terminate_backend(lock_pid) FROM jaz_servers WHERE id = ?",
                     (leader,))
            # another server tries to take over: blocked on the term row (fenced), or
            # leading and stuck on the state table with a fire of its own (not fenced)
            wait_for(lambda: len(_waiting(db)) >= 2, "another server to try to take over",
                     timeout=20)
            blocker.rollback()
            wait_for(lambda: db._read("SELECT term FROM jaz_leader")[0]["term"] >= 2,
                     "another term", timeout=20)
            after = datetime.now(UTC)
            wait_for(lambda: sum(r.scheduled_at is not None and r.scheduled_at > after
                                 and r.status != RunState.SCHEDULED
                                 for r in db.list_runs(jobnet="tick")) >= 2,
                     "fires after the take-over", timeout=20)
        times = [r.scheduled_at for r in db.list_runs(jobnet="tick")]
        assert len(times) == len(set(times)), sorted(t for t in times if times.count(t) > 1)
    finally:
        blocker.close()
        db.close()


def test_a_leader_whose_session_was_cut_cannot_commit_a_fire(url: str) -> None:
    """The lock session of the leader is terminated; another store takes the lock (a new
    term); a fire of the old leader, still connected otherwise, rolls back."""
    from jaz.engine.store.postgres import LostLeadership

    old, new = PostgresStore(url), PostgresStore(url)
    try:
        assert old.lead() and not new.lead()
        old._read("SELECT pg_terminate_backend(lock_pid) FROM jaz_servers WHERE id = ?",
                  (old.server_id,))
        wait_for(new.lead, "the other store to take the lock", timeout=10)
        with pytest.raises(LostLeadership, match="no longer schedules"), old.batch():
            old.fence()
            old.set_state("fired", "twice")
        assert new.get_state("fired") is None
        with new.batch():
            new.fence()
            new.set_state("fired", "once")
        assert old.get_state("fired") == "once" and not old.lead()
    finally:
        old.close()
        new.close()


@pytest.mark.parametrize("lingering", [False, True], ids=["lock-free", "lock-lingering"])
def test_a_server_started_again_is_the_same_one_and_takes_its_runs_back_at_once(
        tmp_path: Path, url: str, lingering: bool) -> None:
    """A drives a run; A is killed (kill -9) and started again on the same JAZ_HOME:
    it is the same server (its id is kept in $JAZ_HOME/server.id), and so it takes the
    run back at once, where a new server would have had to wait for the old one's
    heartbeat to go stale (10 s) and leave the run to whoever leads. The job still
    running is waited for, and the run ends. A second server on that JAZ_HOME is
    refused. `lingering`: the run's lock is still held when A starts (the dead
    session not gone yet: the test holds it), so A's start cannot take the run; A,
    which does not lead, takes it once the lock goes (nobody else would: A beats)."""
    import psycopg

    from jaz.engine.store.postgres import _LOCKS, _RUNS

    holder: psycopg.Connection[Any] | None = None   # a session the test holds locks on
    flag = tmp_path / "go"
    nets = {"slow": f'[jobs.a]\nrun = "while [ ! -e {flag} ]; do sleep 0.05; done"\n'
                    '[jobs.b]\nrun = "true"\nneeds = ["a"]\n'}
    db = PostgresStore(url)
    try:
        with jaz_server(tmp_path / "b", url, nets):
            wait_for(lambda: db._read("SELECT term FROM jaz_leader"), "B to lead", timeout=20)
            with jaz_server(tmp_path / "a", url, nets) as (base, token, _, first):
                run_id = call(base, token, "POST", "/api/v1/runs", {"jobnet": "slow"})["run_id"]
                wait_for(lambda: db.get_job(run_id, "a").status == "running", "a to run")
                before = db.driver(run_id)
                assert before is not None and before["url"] == base
                first.send_signal(signal.SIGKILL)
                first.wait()
                wait_for(lambda: db.driver(run_id) is None, "the lock to go with A")
            holder = psycopg.connect(url, autocommit=True)
            if lingering:
                holder.execute("SELECT pg_advisory_lock(%s, %s)",
                               (_LOCKS + _RUNS, run_id % 2**31))
            log = tmp_path / "a" / "server.log"
            with jaz_server(tmp_path / "a", url, nets) as (base, _, env, _):
                if lingering:   # logged after its start's look for runs to resume
                    wait_for(lambda: log.read_text().count("jaz server listening") == 2,
                             "A to have started again")
                    assert db.driver(run_id) is None
                    holder.close()
                after = wait_for(lambda: db.driver(run_id), "A to take its run back",
                                 timeout=20)
                assert after["id"] == before["id"] and after["url"] == base
                assert (tmp_path / "a" / "home" / "server.id").read_text().strip() == after["id"]
                assert db.get_run(run_id).status == RunState.RUNNING
                again = subprocess.run([sys.executable, "-m", "jaz", "server", "-c",
                                        str(tmp_path / "a" / "jaz.toml")], env=env,
                                       capture_output=True, text=True, timeout=30)
                assert again.returncode == 5, again.stderr
                assert "another jaz server runs with this JAZ_HOME" in again.stderr
                flag.touch()
                run = wait_for(lambda: (r := db.get_run(run_id)).status.finished and r,
                               "the run to end")
                assert run.status == RunState.SUCCEEDED, run
                assert db.get_job(run_id, "a").executions == 1   # waited for, not rerun
            servers = db._read("SELECT id FROM jaz_servers")
            assert len(servers) == 2, servers
    finally:
        if holder is not None:
            holder.close()
        db.close()
