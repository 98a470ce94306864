"""Several real `jaz server` processes on one real PostgreSQL (tests/pg_support.py): what
one server shows and does about a run that another drives. The run's changes reach the
other server's /stream (NOTIFY), its logs are read through it (`jaz logs -f`), and the
operator actions sent to it (hold, skip, rerun, release, and the scheduler's replace)
are routed to the driver through `jaz_actions`."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pg_support import Stream, call, fresh_database, jaz_server
from support import wait_for

from jaz.engine.model import RunState
from jaz.engine.store import PostgresStore

TOKEN = "an-operator-token-both-servers-know"   # noqa: S105 - a test's own token
USERS = (f'[users.ops]\nrole = "admin"\n'
         f'token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n')


@pytest.fixture
def url() -> str:
    return fresh_database()


@pytest.fixture
def db(url: str) -> Any:
    store = PostgresStore(url)
    yield store
    store.close()


def _until_file(flag: Path) -> str:
    return f"while [ ! -e {flag} ]; do sleep 0.05; done"


def _jaz(env: dict[str, str], base: str, *args: str, **kw: Any) -> Any:
    return subprocess.Popen([sys.executable, "-m", "jaz", *args],
                            env={**env, "JAZ_SERVER": base, "JAZ_TOKEN": TOKEN}, **kw)


def test_a_run_driven_by_b_is_followed_live_through_a(tmp_path: Path, url: str,
                                                       db: PostgresStore) -> None:
    """A run started through B (so driven by B): A's /stream carries its changes while
    they happen (A's own engine makes none of them: only B's NOTIFY brings them), `jaz
    logs -f` against A prints B's job output as it is written, and `jaz status --wait`
    against A ends with the run."""
    flag = tmp_path / "go"
    nets = {"relay": f'[jobs.a]\nrun = "echo one; {_until_file(flag)}; echo two"\n'
                     f'[jobs.b]\nrun = "echo bee"\nneeds = ["a"]\n'}
    with jaz_server(tmp_path / "a", url, nets, USERS) as (base_a, _, env, _), \
            jaz_server(tmp_path / "b", url, nets, USERS) as (base_b, _, _, _):
        stream = Stream(base_a, TOKEN)
        try:
            run_id = call(base_b, TOKEN, "POST", "/api/v1/runs", {"jobnet": "relay"})["run_id"]
            stream.until(lambda k, d: k == "job" and d["run_id"] == run_id
                         and d["job"] == "a" and d["status"] == "running", "a running")
            assert db.get_job(run_id, "a").status == "running"   # live: before it ended
            driver = db.driver(run_id)
            assert driver is not None and driver["url"] == base_b
            out = tmp_path / "logs.out"
            with out.open("wb") as sink:
                logs = _jaz(env, base_a, "logs", str(run_id), "-f", stdout=sink,
                            stderr=subprocess.STDOUT)
                try:
                    wait_for(lambda: "one" in out.read_text(), "jaz logs -f to print a's "
                             "first line through A", timeout=20)
                    assert "two" not in out.read_text()
                    status = _jaz(env, base_a, "status", str(run_id), "--wait",
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                    flag.touch()
                    stream.until(lambda k, d: k == "job" and d["run_id"] == run_id
                                 and d["job"] == "b" and d["status"] == "succeeded",
                                 "b succeeded")
                    stream.until(lambda k, d: k == "run" and d["run_id"] == run_id
                                 and d["status"] == "succeeded", "the run succeeded")
                    assert logs.wait(timeout=30) == 0, out.read_text()
                    said, _ = status.communicate(timeout=30)
                    assert status.returncode == 0 and "succeeded" in said, said
                finally:
                    if logs.poll() is None:
                        logs.kill()
                        logs.wait()
            text = out.read_text()
            assert text.index("one") < text.index("two") and "bee" in text, text
        finally:
            stream.close()


def test_hold_skip_rerun_and_release_sent_to_b_are_applied_by_a(
        tmp_path: Path, url: str, db: PostgresStore) -> None:
    """A run started through A: B, asked to hold, skip, rerun and release its jobs,
    has A apply each (the rows of `jaz_actions`, A's log of the rerun), and A's driver
    acts on them: the held job does not start when its need ends, the skipped one never
    runs, the rerun one runs again there, the released one runs."""
    gate, fixed, done = tmp_path / "gate", tmp_path / "fixed", tmp_path / "done"
    nets = {"steer": f'[jobs.gate]\nrun = "{_until_file(gate)}"\n'
                     f'[jobs.keep]\nrun = "{_until_file(done)}"\n'
                     f'[jobs.flaky]\nrun = "echo try; test -e {fixed}"\n'
                     '[jobs.held]\nrun = "echo held ran"\nneeds = ["gate"]\n'
                     '[jobs.next]\nrun = "true"\nneeds = ["gate"]\n'
                     '[jobs.skipped]\nrun = "echo skipped ran"\nneeds = ["gate"]\n'}
    with jaz_server(tmp_path / "a", url, nets, USERS) as (base_a, _, _, _), \
            jaz_server(tmp_path / "b", url, nets, USERS) as (base_b, _, _, _):
        run_id = call(base_a, TOKEN, "POST", "/api/v1/runs", {"jobnet": "steer"})["run_id"]
        wait_for(lambda: db.get_job(run_id, "flaky").status == "failed"
                 and db.get_job(run_id, "gate").status == "running", "flaky to fail")
        driver = db.driver(run_id)
        assert driver is not None and driver["url"] == base_a

        def act(action: str, job: str) -> None:
            call(base_b, TOKEN, "POST", f"/api/v1/runs/{run_id}/jobs/{job}/{action}")

        act("hold", "held")
        assert db.get_job(run_id, "held").status == "held"
        act("skip", "skipped")
        assert db.get_job(run_id, "skipped").status == "skipped"
        fixed.touch()
        act("rerun", "flaky")
        wait_for(lambda: db.get_job(run_id, "flaky").status == "succeeded", "flaky rerun")
        assert db.get_job(run_id, "flaky").executions == 2
        gate.touch()
        wait_for(lambda: db.get_job(run_id, "next").status == "succeeded", "next to run")
        assert db.get_job(run_id, "held").status == "held"   # its need ended with next's
        act("release", "held")
        wait_for(lambda: db.get_job(run_id, "held").status == "succeeded", "held to run")
        done.touch()
        wait_for(lambda: db.get_run(run_id).status.finished, "the run to end")
        assert db.get_run(run_id).status == "succeeded"
        assert db.get_job(run_id, "skipped").started_at is None
        sent = db._read('SELECT action, job, status, server, sender, "user" FROM jaz_actions '
                        "ORDER BY id")
        assert [(r["action"], r["job"], r["status"]) for r in sent] == [
            ("hold", "held", "done"), ("skip", "skipped", "done"), ("rerun", "flaky", "done"),
            ("release", "held", "done")], sent
        assert {r["server"] for r in sent} == {driver["id"]}
        assert {r["user"] for r in sent} == {"ops"}
        kinds = [e.kind for e in db.list_events(run_id=run_id)
                 if e.kind in ("hold", "skip", "rerun", "release")]
        assert sorted(kinds) == ["hold", "release", "rerun", "skip"], kinds
        # the rerun ran on A's machine: its logs are in A's JAZ_HOME
        logs = tmp_path / "a" / "home" / "logs" / str(run_id)
        assert logs.is_dir() and not (tmp_path / "b" / "home" / "logs" / str(run_id)).exists()


def _stop_outside_a_transaction(proc: subprocess.Popen[bytes], db: PostgresStore) -> None:
    """SIGSTOP a server that leads, at a moment when it is not inside a transaction: one
    of its fires would hold the term row, and nobody could lead until it goes on (only
    its lock session is cut)."""
    def settled() -> list[dict[str, Any]] | None:
        rows = db._read("SELECT state FROM pg_stat_activity WHERE application_name = 'jaz' "
                        "AND pid <> pg_backend_pid() AND state IS NOT NULL")
        return None if any(r["state"] == "active" for r in rows) else rows

    for _ in range(50):
        proc.send_signal(signal.SIGSTOP)
        rows = wait_for(settled, "the stopped server's statements to end")
        if not any(r["state"].startswith("idle in transaction") for r in rows):
            return
        proc.send_signal(signal.SIGCONT)
        wait_for(lambda: not any(r["state"].startswith("idle in transaction")
                                 for r in settled() or [{"state": "active"}]),
                 "the server to finish its transaction")
    raise AssertionError("the server was always caught inside a transaction")


def test_a_replace_stops_the_run_another_server_drives_through_its_actions(
        tmp_path: Path, url: str, db: PostgresStore) -> None:
    """overlap = "replace" when the run to stop is driven by a server that does not lead:
    A fires and drives run 1; A is stopped (SIGSTOP) and its lock session cut, so B
    leads, and B's next fire replaces run 1 while A cannot answer. The stop is an
    action for A written with B's fire: continued, A takes it and stops run 1 (its
    `sleep`). Asked of a driver with no session, the stop would have been refused."""
    nets = {"swap": '[schedule]\nevery = "1s"\noverlap = "replace"\n'
                    '[jobs.a]\nrun = "sleep 60"\n'}
    with jaz_server(tmp_path / "a", url, nets) as (_, _, _, first):
        wait_for(lambda: db._read("SELECT term FROM jaz_leader"), "A to lead", timeout=20)
        leader_a = db._read("SELECT server FROM jaz_leader")[0]["server"]
        with jaz_server(tmp_path / "b", url, nets):
            wait_for(lambda: db._read("SELECT 1 FROM jaz_servers WHERE lock_pid IS NOT NULL "
                                      "HAVING count(*) = 2"), "B to be up", timeout=20)
            _stop_outside_a_transaction(first, db)
            try:
                db._read("SELECT pg_terminate_backend(lock_pid) FROM jaz_servers "
                         "WHERE id = ?", (leader_a,))
                wait_for(lambda: db._read("SELECT term FROM jaz_leader")[0]["term"] >= 2,
                         "B to lead", timeout=20)
                # the runs A drives (one, or two if A's stop of its previous one is
                # still to apply), replaced by B's fire
                sent = wait_for(lambda: db._read(
                    "SELECT * FROM jaz_actions WHERE server = ? AND sender <> server "
                    "AND \"user\" = 'scheduler'",
                    (leader_a,)), "B's fire to send A the stop", timeout=20)
                assert {r["status"] for r in sent} == {"pending"}   # A cannot answer
                victims = [int(r["run_id"]) for r in sent]
                assert all(db.get_run(v).status == RunState.RUNNING for v in victims)
            finally:
                first.send_signal(signal.SIGCONT)
            wait_for(lambda: all(db.get_run(v).status.finished for v in victims),
                     "A to stop the runs B's fire replaced", timeout=20)
            for victim in victims:
                run = db.get_run(victim)
                assert run.status == RunState.STOPPED and "replaced by run" in run.message, run
                assert db.get_job(victim, "a").status == "stopped"
            rows = [db.action(int(r["id"])) for r in sent]
            assert {r["server"] for r in rows} == {leader_a}, rows
            # done; or refused, for a run A's own stop (sent before it was stopped) ended
            assert "done" in {r["status"] for r in rows} and \
                {r["status"] for r in rows} <= {"done", "refused"}, rows
            # B's later fires replace the runs B drives itself, through the same path
            wait_for(lambda: db._read("SELECT 1 FROM jaz_actions WHERE sender = server "
                                      "AND server <> ? AND status = 'done'", (leader_a,)),
                     "B to stop its own run")


def test_jaz_purge_forgets_old_actions_and_servers_gone_long_ago(
        tmp_path: Path, url: str, db: PostgresStore) -> None:
    """`jaz purge --keep-days 30` through a server on the shared database (what
    `keep_days` does every hour): the actions sent before then go, however they went,
    and so do the servers not seen since then that drove none of the runs left; the
    recent ones stay."""
    nets = {"hello": '[jobs.a]\nrun = "true"\n'}
    with jaz_server(tmp_path / "a", url, nets) as (base, token, env, _):
        run_id = call(base, token, "POST", "/api/v1/runs", {"jobnet": "hello"})["run_id"]
        wait_for(lambda: db.get_run(run_id).status.finished, "the run to end")
        old = [db.send_action("gone", run_id, None, "stop", user="ops") for _ in range(3)]
        new = db.send_action("gone", run_id, "a", "hold", user="ops")
        db._read("UPDATE jaz_actions SET created_at = now() - interval '40 days', "
                 "status = 'done' WHERE id = ANY(?) RETURNING id", (old[:2],))
        db._read("UPDATE jaz_actions SET created_at = now() - interval '40 days' "
                 "WHERE id = ? RETURNING id", (old[2],))   # one its server never took
        db._read("INSERT INTO jaz_servers (id, name, started_at, seen_at) VALUES "
                 "('gone', 'old', now() - interval '50 days', now() - interval '40 days'), "
                 "('recent', 'new', now(), now() - interval '1 day') RETURNING id")
        servers = {r["id"] for r in db._read("SELECT id FROM jaz_servers")}
        done = subprocess.run([sys.executable, "-m", "jaz", "purge", "--keep-days", "30"],
                              env={**env, "JAZ_SERVER": base, "JAZ_TOKEN": token},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert [r["id"] for r in db._read("SELECT id FROM jaz_actions")] == [new]
        assert {r["id"] for r in db._read("SELECT id FROM jaz_servers")} == servers - {"gone"}
        assert db.get_run(run_id).status == RunState.SUCCEEDED   # it ended just now
