"""`jaz run` as a real process: crashes, Ctrl-C, halts, holds, timeouts and its output.

Every test runs the real CLI (`python -m jaz`) against a real SQLite file and
real shell jobs, and waits for states by polling the database, marker files or
/proc with a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytestmark = pytest.mark.slow

T = TypeVar("T")

RUN_KEYS = {"run_id", "jobnet", "status", "exit_code", "params", "started_at", "ended_at",
            "jobs"}
JOB_KEYS = {"status", "exit_code", "attempts", "timed_out", "host", "outputs", "started_at",
            "ended_at"}

MARK = 'echo x >> "$MARK_DIR/$JAZ_JOB"'
CHILDREN = "sleep 300 & sleep 300; wait"


# ---------------------------------------------------------------- helpers


def jaz_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "1000"  # no wrapped lines in rich tables
    return env


def jaz(tmp_path: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jaz", *args], env=jaz_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def start_jaz(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """A background `jaz`, its output in files so that a full pipe never blocks it."""
    out = (tmp_path / "jaz.stdout").open("wb")
    err = (tmp_path / "jaz.stderr").open("wb")
    with out, err:
        return subprocess.Popen([sys.executable, "-m", "jaz", *args], env=jaz_env(tmp_path),
                                cwd=tmp_path, stdout=out, stderr=err)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(0.02)  # poll interval, not a wait for state


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the database another process writes; [] while it does not exist yet."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        con.close()


def job_rows(db: Path) -> dict[str, tuple[str, int | None]]:
    return {name: (status, pid) for name, status, pid in
            query(db, "SELECT name, status, pid FROM jobs WHERE run_id = 1")}


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.append(int(entry))
    return members


def group_gone(pgid: int) -> bool:
    """No process of the group remains. Killed orphans belong to init, which may reap
    them a little later: a group of zombies counts as gone."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not group_members(pgid)


def kill_group_quietly(pgid: int | None) -> None:
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def marks(mark_dir: Path, job: str) -> int:
    path = mark_dir / job
    return len(path.read_text().splitlines()) if path.exists() else 0


def write_jobnet(path: Path, jobs: dict[str, tuple[Sequence[str], str]], head: str = "") -> Path:
    """A jobnet file from {name: (needs, script)}."""
    lines = [head]
    for name, (needs, script) in jobs.items():
        lines.append(f"[jobs.{name}]")
        if needs:
            lines.append("needs = [" + ", ".join(f'"{n}"' for n in needs) + "]")
        lines.append(f"run = '''\n{script}\n'''")
    path.write_text("\n".join(lines) + "\n")
    return path


def is_iso_with_offset(text: str) -> bool:
    return datetime.fromisoformat(text).utcoffset() is not None


# ---------------------------------------------------------------- kill -9 and resume

BLOCK = MARK + """
n=$(wc -l < "$MARK_DIR/$JAZ_JOB")
if [ $n -eq 1 ]; then
  i=0
  while [ ! -e "$MARK_DIR/go" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
fi"""

CRASH_JOBS: dict[str, tuple[Sequence[str], str]] = {
    "a1": ((), MARK),
    "a2": (("a1",), MARK),
    "p1": (("a1",), MARK),
    "p2": (("a1",), MARK),
    "p3": (("a1",), MARK),
    "p4": (("a1",), MARK),
    "a3": (("a2",), MARK),
    "q1": (("a3",), MARK),
    "q2": (("a3",), MARK),
    "block": (("a3",), BLOCK),  # blocks on its first attempt only
    "c1": (("block",), MARK),
    "c2": (("c1",), MARK),
    "z": (("c2", "p1", "p2", "p3", "p4", "q1", "q2"), MARK),
}


def test_kill_9_mid_run_then_resume_reruns_only_the_interrupted_job(tmp_path: Path) -> None:
    mark_dir = tmp_path / "marks"
    mark_dir.mkdir()
    db = tmp_path / "runs.db"
    file = write_jobnet(tmp_path / "crash.toml", CRASH_JOBS, '[params]\nMARK_DIR = ""\n')
    proc = start_jaz(tmp_path, "run", str(file), "--db", str(db), "-p", f"MARK_DIR={mark_dir}")
    block_pid = None
    try:
        def at_the_block() -> dict[str, tuple[str, int | None]] | None:
            rows = job_rows(db)
            done = [n for n in ("a1", "a2", "a3", "p1", "p2", "p3", "p4", "q1", "q2")
                    if rows.get(n, ("",))[0] == "succeeded"]
            block = rows.get("block")
            if len(done) == 9 and block and block[0] == "running" and block[1] \
                    and marks(mark_dir, "block") == 1:
                return rows
            return None

        before = wait_for(at_the_block, "every job before 'block' to succeed, 'block' running")
        block_pid = before["block"][1]
        assert block_pid is not None and group_members(block_pid)
        # while its jaz lives, the run is not interrupted: a resume would kill live jobs
        early = jaz(tmp_path, "run", "--resume", "1", "--db", str(db))
        assert early.returncode == 2, early.stderr + early.stdout
        assert "another jaz process" in early.stderr
        assert group_members(block_pid) and proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        # the crash leaves the job orphaned and the run recorded as running
        assert group_members(block_pid), "the orphaned job should outlive the crashed jaz"
        assert query(db, "SELECT status FROM runs WHERE id = 1") == [("running",)]
        assert job_rows(db)["block"][0] == "running"
        succeeded_before = {n for n, (status, _) in job_rows(db).items()
                            if status == "succeeded"}
        assert succeeded_before >= {"a1", "a2", "a3", "p1", "p4", "q2"}

        result = jaz(tmp_path, "run", "--resume", "1", "--db", str(db), "--json")
        assert result.returncode == 0, result.stderr + result.stdout
        view = json.loads(result.stdout)
        assert view["status"] == "succeeded"
        assert {n: j["status"] for n, j in view["jobs"].items()} == \
            dict.fromkeys(CRASH_JOBS, "succeeded")

        for name in CRASH_JOBS:
            assert marks(mark_dir, name) >= 1, f"{name} never ran"
        for name in succeeded_before:
            assert marks(mark_dir, name) == 1, f"{name} ran again after the resume"
        assert marks(mark_dir, "block") == 2  # interrupted, so run again
        assert view["jobs"]["block"]["attempts"] == 1
        wait_for(lambda: group_gone(block_pid), "the orphaned job's process group to end",
                 timeout=5)

        status = jaz(tmp_path, "status", "1", "--db", str(db), "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["status"] == "succeeded"
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        events = [k for (k,) in query(db, "SELECT kind FROM events WHERE run_id = 1")]
        assert "resume" in events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        (mark_dir / "go").touch()
        kill_group_quietly(block_pid)


# ---------------------------------------------------------------- Ctrl-C

INTERRUPTIBLE = f"""[ -e "$MARK_DIR/$JAZ_JOB.ran" ] && exit 0
touch "$MARK_DIR/$JAZ_JOB.ran"
{CHILDREN}"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_the_run_and_kills_every_job_process_then_resume_finishes(
        tmp_path: Path, sig: signal.Signals) -> None:
    mark_dir = tmp_path / "marks"
    mark_dir.mkdir()
    db = tmp_path / "runs.db"
    file = write_jobnet(tmp_path / "ctrlc.toml", {
        "w1": ((), INTERRUPTIBLE),
        "w2": ((), INTERRUPTIBLE),
        "after": (("w1", "w2"), MARK),
    }, '[params]\nMARK_DIR = ""\n')
    proc = start_jaz(tmp_path, "run", str(file), "--db", str(db), "-p", f"MARK_DIR={mark_dir}")
    pids: list[int] = []
    try:
        def spawned() -> list[int] | None:
            rows = job_rows(db)
            found = [rows[n][1] for n in ("w1", "w2") if n in rows and rows[n][1]]
            # the shell and both of its sleeps
            if len(found) == 2 and all(len(group_members(p)) >= 3 for p in found if p):
                return [p for p in found if p]
            return None

        pids = wait_for(spawned, "both jobs to run with their children")
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 1
        wait_for(lambda: all(group_gone(p) for p in pids), "the jobs' process groups to end",
                 timeout=5)

        status = jaz(tmp_path, "status", "1", "--db", str(db), "--json")
        assert status.returncode == 1
        view = json.loads(status.stdout)
        assert view["status"] == "stopped"
        assert {n: j["status"] for n, j in view["jobs"].items()} == \
            {"w1": "stopped", "w2": "stopped", "after": "pending"}

        result = jaz(tmp_path, "run", "--resume", "1", "--db", str(db), "--json")
        assert result.returncode == 0, result.stderr + result.stdout
        view = json.loads(result.stdout)
        assert view["status"] == "succeeded"
        assert {n: j["status"] for n, j in view["jobs"].items()} == \
            dict.fromkeys(("w1", "w2", "after"), "succeeded")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pgid in pids:
            kill_group_quietly(pgid)


def test_a_second_ctrl_c_kills_at_once_a_job_that_ignores_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "stubborn.toml"
    file.write_text('[jobs.nap]\nsleep = "300s"\n'
                    '[jobs.stubborn]\nrun = \'trap "" TERM; sleep 300\'\n')
    proc = start_jaz(tmp_path, "run", str(file), "--db", str(db))
    pgid = None
    try:
        pgid = wait_for(lambda: job_rows(db).get("stubborn", ("", None))[1],
                        "the stubborn job to start")
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: query(db, "SELECT 1 FROM events WHERE kind = 'stop_run'"),
                 "the first Ctrl-C to be recorded")
        assert proc.poll() is None  # the job ignored SIGTERM; jaz gives it its grace
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 1
        assert time.monotonic() - started < 4  # well inside the 5 s grace
        wait_for(lambda: group_gone(pgid), f"process group {pgid} to end", timeout=5)
        assert {n: s for n, (s, _) in job_rows(db).items()} == \
            {"nap": "stopped", "stubborn": "stopped"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_group_quietly(pgid)


# ---------------------------------------------------------------- halt, hold

HALTED = """
[jobs.bad]
run = "exit 3"
[jobs.after_bad]
needs = ["bad"]
run = "echo after"
[jobs.other]
run = "echo other"
"""

HELD = """
[jobs.gate]
hold = true
run = "echo gate"
[jobs.after_gate]
needs = ["gate"]
run = "echo after"
"""


@pytest.mark.parametrize(("text", "blocked", "resume_args", "finished"), [
    (HALTED, {"bad": "failed", "after_bad": "pending", "other": "succeeded"},
     ["--skip", "bad"], {"bad": "skipped", "after_bad": "succeeded", "other": "succeeded"}),
    (HELD, {"gate": "held", "after_gate": "pending"},
     ["--release", "gate"], {"gate": "succeeded", "after_gate": "succeeded"}),
], ids=["halt-then-skip", "hold-then-release"])
def test_a_blocked_run_exits_1_in_error_and_resume_moves_it_on(
        tmp_path: Path, text: str, blocked: dict[str, str], resume_args: list[str],
        finished: dict[str, str]) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "blocked.toml"
    file.write_text(text)

    first = jaz(tmp_path, "run", str(file), "--db", str(db), "--json")
    assert first.returncode == 1, first.stderr
    view = json.loads(first.stdout)
    assert (view["status"], view["exit_code"]) == ("error", 1)
    assert {n: j["status"] for n, j in view["jobs"].items()} == blocked

    people = jaz(tmp_path, "status", "1", "--db", str(db))
    assert people.returncode == 1
    assert "jaz run --resume 1" in people.stdout

    second = jaz(tmp_path, "run", "--resume", "1", "--db", str(db), "--json", *resume_args)
    assert second.returncode == 0, second.stderr + second.stdout
    view = json.loads(second.stdout)
    assert (view["run_id"], view["status"], view["exit_code"]) == (1, "succeeded", 0)
    assert {n: j["status"] for n, j in view["jobs"].items()} == finished


FLAKY = """
[jobs.flaky]
run = '''
if [ ! -e flaky.ran ]; then
  touch flaky.ran; echo "first attempt"; echo "A=1" >> "$JAZ_OUTPUT"; exit 3
fi
echo "second attempt"; echo "B=2" >> "$JAZ_OUTPUT"
'''
"""


def test_resume_reruns_a_failed_job_with_fresh_outputs(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "flaky.toml"
    file.write_text(FLAKY)
    first = jaz(tmp_path, "run", str(file), "--db", str(db), "--json")
    assert json.loads(first.stdout)["jobs"]["flaky"]["outputs"] == {"A": "1"}
    second = jaz(tmp_path, "run", "--resume", "1", "--db", str(db), "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["jobs"]["flaky"]["outputs"] == {"B": "2"}


def test_resume_keeps_the_logs_of_the_failed_attempt(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "flaky.toml"
    file.write_text(FLAKY)
    assert jaz(tmp_path, "run", str(file), "--db", str(db)).returncode == 1
    assert jaz(tmp_path, "run", "--resume", "1", "--db", str(db)).returncode == 0
    logs = jaz(tmp_path, "logs", "1", "flaky", "--all", "--db", str(db))
    assert "second attempt" in logs.stdout
    assert "first attempt" in logs.stdout


def test_resume_of_a_succeeded_run_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "ok.toml"
    file.write_text('[jobs.a]\nrun = "true"\n')
    assert jaz(tmp_path, "run", str(file), "--db", str(db)).returncode == 0
    again = jaz(tmp_path, "run", "--resume", "1", "--db", str(db))
    assert again.returncode == 2
    assert "already succeeded" in again.stderr


# ---------------------------------------------------------------- timeouts


@pytest.mark.parametrize(("on_timeout", "script", "status", "exit_code"), [
    ("stop", f'echo $$ > "$JAZ_JOB.pid"\n{CHILDREN}', "failed", None),
    ("warn", 'echo $$ > "$JAZ_JOB.pid"\nsleep 1.3', "succeeded", 0),
], ids=["stop", "warn"])
def test_a_job_timeout_kills_its_whole_process_group_or_only_warns(
        tmp_path: Path, on_timeout: str, script: str, status: str, exit_code: int | None
        ) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "slow.toml"
    file.write_text(f"[jobs.slow]\ntimeout = \"1s\"\non_timeout = \"{on_timeout}\"\n"
                    f"run = '''\n{script}\n'''\n")
    pgid = None
    try:
        started = time.monotonic()
        result = jaz(tmp_path, "run", str(file), "--db", str(db), "--json")
        took = time.monotonic() - started
        pgid = int((tmp_path / "slow.pid").read_text())
        view = json.loads(result.stdout)
        job = view["jobs"]["slow"]
        assert (job["status"], job["timed_out"]) == (status, True)
        if exit_code is not None:
            assert job["exit_code"] == exit_code
        assert result.returncode == (0 if status == "succeeded" else 1)
        assert took < 10  # SIGTERM ends it; no wait for the 5 s grace
        wait_for(lambda: group_gone(pgid), f"process group {pgid} to end", timeout=5)
    finally:
        kill_group_quietly(pgid)


# ---------------------------------------------------------------- --json output

JSON_JOBNET = """
[params]
DAY = "yesterday"
FAIL = "0"

[jobs.produce]
run = '''
echo "DAY_SEEN=$DAY" >> "$JAZ_OUTPUT"
printf 'NOTE<<EOF\\nline one\\nline two = 2\\nEOF\\n' >> "$JAZ_OUTPUT"
'''

[jobs.consume]
needs = ["produce"]
run = '''
echo "GOT=$DAY_SEEN" >> "$JAZ_OUTPUT"
[ "$NOTE" = "$(printf 'line one\\nline two = 2')" ] && echo "NOTE_OK=yes" >> "$JAZ_OUTPUT"
exit "$FAIL"
'''
"""


@pytest.mark.parametrize(("args", "code", "status", "params", "consume"), [
    ([], 0, "succeeded", {"DAY": "yesterday", "FAIL": "0"}, ("succeeded", 0)),
    (["-p", "DAY=today"], 0, "succeeded", {"DAY": "today", "FAIL": "0"}, ("succeeded", 0)),
    (["-p", "FAIL=5", "-p", "EXTRA=x"], 1, "error",
     {"DAY": "yesterday", "FAIL": "5", "EXTRA": "x"}, ("failed", 5)),
])
def test_run_json_is_the_spec_object(tmp_path: Path, args: list[str], code: int, status: str,
                                     params: dict[str, str], consume: tuple[str, int]) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "outputs.toml"
    file.write_text(JSON_JOBNET)
    result = jaz(tmp_path, "run", str(file), "--db", str(db), "--json", *args)
    assert result.returncode == code, result.stderr
    view = json.loads(result.stdout)  # one object and nothing else on stdout
    assert set(view) == RUN_KEYS
    assert (view["run_id"], view["jobnet"], view["status"], view["exit_code"]) == \
        (1, "outputs", status, code)
    assert view["params"] == params
    assert set(view["jobs"]) == {"produce", "consume"}
    for job in view["jobs"].values():
        assert set(job) == JOB_KEYS
        assert job["host"] == "local"
        assert job["attempts"] == 1
        assert job["timed_out"] is False
        assert is_iso_with_offset(job["started_at"]) and is_iso_with_offset(job["ended_at"])
    assert is_iso_with_offset(view["started_at"])
    if status == "succeeded":
        assert is_iso_with_offset(view["ended_at"])
    produce, consume_view = view["jobs"]["produce"], view["jobs"]["consume"]
    assert produce["outputs"] == {"DAY_SEEN": params["DAY"], "NOTE": "line one\nline two = 2"}
    assert (produce["status"], produce["exit_code"]) == ("succeeded", 0)
    assert (consume_view["status"], consume_view["exit_code"]) == consume
    assert consume_view["outputs"] == {"GOT": params["DAY"], "NOTE_OK": "yes"}

    again = jaz(tmp_path, "status", "1", "--db", str(db), "--json")
    assert again.returncode == code
    assert json.loads(again.stdout) == view


# ---------------------------------------------------------------- query commands


def test_runs_logs_and_status_read_the_database(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    file = tmp_path / "talk.toml"
    file.write_text('[params]\nCODE = "0"\n[jobs.talk]\n'
                    'run = \'echo "hello from $JAZ_JOB"; echo "to stderr" >&2; exit $CODE\'\n')
    assert jaz(tmp_path, "run", str(file), "--db", str(db)).returncode == 0
    assert jaz(tmp_path, "run", str(file), "--db", str(db), "-p", "CODE=2").returncode == 1

    runs = jaz(tmp_path, "runs", "--db", str(db), "--json")
    assert runs.returncode == 0, runs.stderr
    listed = json.loads(runs.stdout)
    assert [(r["run_id"], r["jobnet"], r["status"], r["exit_code"]) for r in listed] == \
        [(2, "talk", "error", 1), (1, "talk", "succeeded", 0)]
    assert all(set(r) == RUN_KEYS - {"jobs"} for r in listed)
    assert listed[0]["params"] == {"CODE": "2"}

    logs = jaz(tmp_path, "logs", "1", "talk", "--db", str(db))
    assert logs.returncode == 0, logs.stderr
    assert "hello from talk" in logs.stdout
    assert "to stderr" in logs.stdout

    table = jaz(tmp_path, "runs", "--db", str(db))
    assert table.returncode == 0 and "talk" in table.stdout


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a database holding one succeeded run (run 1, job 'one')."""
    folder = tmp_path_factory.mktemp("one-run")
    file = folder / "one.toml"
    file.write_text('[jobs.one]\nrun = "true"\n')
    assert jaz(folder, "run", str(file), "--db", str(folder / "runs.db")).returncode == 0
    return folder


@pytest.mark.parametrize(("args", "code", "words"), [
    (["status", "999"], 4, "999"),
    (["status", "999", "--json"], 4, "999"),
    (["logs", "999"], 4, "999"),
    (["logs", "1", "nosuch"], 4, "nosuch"),
    (["status", "1"], 0, ""),
])
def test_query_exit_codes(one_run: Path, args: list[str], code: int, words: str) -> None:
    result = jaz(one_run, *args, "--db", str(one_run / "runs.db"))
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_query_of_a_missing_database_is_not_found(tmp_path: Path) -> None:
    result = jaz(tmp_path, "status", "1", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 4
    assert not (tmp_path / "none.db").exists()
