"""`jaz server` as a real process: SIGTERM, kill -9 in the middle of a 200-job run and a
restart that finishes it with every job ending exactly once, `--once`, root refusal."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import wait_for as _wait_for


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    return _wait_for(check, what, timeout, every=0.05)


class Server:
    started: list[Server] = []    # killed after each test, whatever happened in it

    def __init__(self, root: Path, extra: str = "") -> None:
        self.root = root
        self.home = root / "home"
        (root / "jobnets").mkdir(exist_ok=True)
        self.config = root / "jaz.toml"
        self.config.write_text('listen = "127.0.0.1:0"\njobnets = "jobnets"\n'
                               f'allow_root = true\n{extra}')
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
        env["JAZ_HOME"] = str(self.home)
        return env

    def start(self) -> None:
        url = self.home / "server.url"
        if url.exists():
            url.unlink()   # left behind by a kill -9
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c",
                                          str(self.config)], env=self.env(),
                                         stdout=subprocess.DEVNULL, stderr=log)
        Server.started.append(self)
        self.url = wait_for(lambda: url.exists() and url.read_text().strip(), "server.url")
        self.token = (self.home / "admin.token").read_text().strip()
        wait_for(lambda: self._ok(), "the API")

    def _ok(self) -> bool:
        try:
            return self.call("GET", "/healthz")["status"] == "ok"
        except OSError:
            return False

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)


@pytest.fixture(autouse=True)
def _no_server_left() -> Iterator[None]:
    yield
    while Server.started:
        proc = Server.started.pop().proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    assert server.stop() == 0
    assert not (server.home / "server.url").exists()


def test_kill_9_mid_run_and_restart_every_job_ends_exactly_once(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    lines = []
    for i in range(200):
        lines.append(f'[jobs.j{i}]\nrun = "sleep 0.02; echo x >> {marks}/$JAZ_JOB"')
        if i >= 20:
            lines.append(f'needs = ["j{i - 20}"]')
    server = Server(tmp_path)
    (tmp_path / "jobnets" / "big.toml").write_text("\n".join(lines) + "\n")
    server.start()
    run_id = server.call("POST", "/api/v1/runs", {"jobnet": "big"})["run_id"]
    wait_for(lambda: len(list(marks.iterdir())) >= 60, "some jobs to finish")
    server.stop(signal.SIGKILL)
    server.start()                                       # recovers the run and goes on
    run = wait_for(lambda: (r := server.call("GET", f"/api/v1/runs/{run_id}"))["status"]
                   != "running" and r, "the run to end", timeout=60)
    assert run["status"] == "succeeded", run
    counts = {p.name: len(p.read_text().splitlines()) for p in marks.iterdir()}
    assert len(counts) == 200 and set(counts.values()) == {1}, \
        {k: v for k, v in counts.items() if v != 1}
    assert server.stop() == 0
    db = sqlite3.connect(server.home / "jaz.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("script,code", [("true", 0), ("exit 3", 1)])
def test_once_catches_up_what_was_missed_and_exits_with_its_result(tmp_path: Path,
                                                                   script: str,
                                                                   code: int) -> None:
    server = Server(tmp_path)
    (tmp_path / "jobnets" / "net.toml").write_text(
        f'[schedule]\ncron = "*/10 * * * *"\ncatchup = "latest"\n'
        f'[jobs.a]\nrun = "{script}"\n')
    cmd = [sys.executable, "-m", "jaz", "server", "-c", str(server.config), "--once"]
    first = subprocess.run(cmd, env=server.env(), capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr               # nothing was due yet
    # the server was last up two hours ago: move its cursor and last tick back
    db = sqlite3.connect(server.home / "jaz.db")
    past = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    with db:
        db.execute("UPDATE state SET value = ? WHERE key IN ('scheduler.cursor.net', "
                   "'scheduler.last_tick')", (past,))
        db.execute("DELETE FROM runs")
    db.close()
    second = subprocess.run(cmd, env=server.env(), capture_output=True, text=True, timeout=60)
    assert second.returncode == code, second.stderr
    db = sqlite3.connect(server.home / "jaz.db")
    states = db.execute("SELECT status, trigger FROM runs ORDER BY scheduled_at").fetchall()
    db.close()
    # one run: the latest fire, caught up (or on time, when that fire is under a minute old)
    started = [s for s in states if s[0] not in ("missed", "scheduled")]
    # a failed job halts the run (on_failure = "halt"): `error`, resumable
    assert len(started) == 1 and started[0][0] == ("succeeded" if code == 0 else "error")
    assert {s for s, _ in states} >= {"missed"}              # the older fires are recorded


@pytest.mark.skipif(os.geteuid() != 0, reason="needs to run as root to be refused")
def test_root_is_refused_without_allow_root(tmp_path: Path) -> None:
    config = tmp_path / "jaz.toml"
    config.write_text('listen = "127.0.0.1:0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 5
    assert "refuses to run as root" in result.stderr and "allow_root" in result.stderr


def test_the_event_stream_carries_run_and_job_changes(tmp_path: Path) -> None:
    server = Server(tmp_path)
    (tmp_path / "jobnets" / "hi.toml").write_text('[jobs.a]\nrun = "echo hi"\n')
    server.start()
    try:
        req = urllib.request.Request(server.url + "/api/v1/stream",
                                     headers={"Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(req, timeout=10) as stream:
            assert stream.readline() == b": connected\n"
            run_id = server.call("POST", "/api/v1/runs", {"jobnet": "hi"})["run_id"]
            seen: list[tuple[str, dict[str, Any]]] = []
            event = ""
            while not any(kind == "run" and data.get("status") == "succeeded"
                          for kind, data in seen):
                line = stream.readline().decode().rstrip("\n")   # bounded by the timeout
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    seen.append((event, json.loads(line[6:])))
            assert ("job", "a", "succeeded") in {(k, d.get("job"), d.get("status"))
                                                 for k, d in seen}
            assert all(d["run_id"] == run_id for _, d in seen)
            # runs that no driver touches are told too: created held, then stopped
            held = server.call("POST", "/api/v1/runs", {"jobnet": "hi", "hold": True})
            server.call("POST", f"/api/v1/runs/{held['run_id']}/stop")
            told: list[str] = []
            while told[-1:] != ["stopped"]:
                line = stream.readline().decode()
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    assert data["run_id"] == held["run_id"]
                    told.append(data["status"])
            assert told == ["held", "stopped"]
    finally:
        server.stop()


def test_past_max_memory_the_server_finishes_its_runs_and_exits_0(tmp_path: Path) -> None:
    server = Server(tmp_path, extra='max_memory = "1MiB"\n')   # surely passed at once
    (tmp_path / "jobnets" / "slow.toml").write_text('[jobs.a]\nrun = "sleep 4"\n')
    server.start()
    run_id = server.call("POST", "/api/v1/runs", {"jobnet": "slow"})["run_id"]
    wait_for(lambda: server.call("GET", "/healthz")["status"] == "draining", "draining")
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.call("POST", "/api/v1/runs", {"jobnet": "slow"})
    assert refused.value.code == 409                 # no new work
    refused.value.close()
    assert server.proc is not None
    code = server.proc.wait(timeout=30)       # the watcher notices within a few seconds
    assert code == 0
    log = (tmp_path / "server.log").read_text()
    assert "max_memory" in log and "taking no new work" in log
    db = sqlite3.connect(server.home / "jaz.db")
    status = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    db.close()
    assert status == ("succeeded",)            # the running run was finished first


def test_a_job_still_running_after_a_crash_is_waited_for_not_run_again(tmp_path: Path
                                                                       ) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    go = tmp_path / "go"
    server = Server(tmp_path)
    (tmp_path / "jobnets" / "long.toml").write_text(f"""
[jobs.work]
run = '''
echo start >> {marks}/starts
while [ ! -e {go} ]; do sleep 0.05; done
echo "ROWS=7" >> "$JAZ_OUTPUT"
echo done >> {marks}/ends
'''
[jobs.after]
needs = ["work"]
if = "work.ROWS == 7"
run = "echo after >> {marks}/after"
""")
    server.start()
    run_id = server.call("POST", "/api/v1/runs", {"jobnet": "long"})["run_id"]
    wait_for(lambda: (marks / "starts").exists(), "the job to start")
    server.stop(signal.SIGKILL)                  # the job keeps running without us
    server.start()
    go.touch()                                   # it ends while the new server watches it
    run = wait_for(lambda: (r := server.call("GET", f"/api/v1/runs/{run_id}"))["status"]
                   != "running" and r, "the run to end")
    assert run["status"] == "succeeded", run
    assert (marks / "starts").read_text() == "start\n"       # adopted, not started again
    assert (marks / "ends").read_text() == "done\n"
    assert run["jobs"]["work"]["outputs"] == {"ROWS": "7"}
    assert (marks / "after").read_text() == "after\n"
    assert server.stop() == 0


def test_a_jobs_process_is_started_by_the_spawner_and_its_pid_recorded(tmp_path: Path
                                                                       ) -> None:
    """The server's jobs start in its spawner process, which reports each pid after the
    start: the pid still reaches the job's record (what `--resume` and a restart use)."""
    go, mine = tmp_path / "go", tmp_path / "pid"
    server = Server(tmp_path)
    (tmp_path / "jobnets" / "wait.toml").write_text(f"""
[jobs.work]
run = 'echo "$$ $PPID" > {mine}; while [ ! -e {go} ]; do sleep 0.05; done'
""")
    server.start()
    try:
        run_id = server.call("POST", "/api/v1/runs", {"jobnet": "wait"})["run_id"]
        pid, parent = map(int, wait_for(lambda: mine.exists() and mine.read_text().split(),
                                        "the job to start"))
        assert parent != server.proc.pid    # type: ignore[union-attr]
        assert Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")[3].endswith(
            b"spawnd.py")
        db = sqlite3.connect(server.home / "jaz.db")
        try:
            recorded = wait_for(lambda: db.execute(
                "SELECT pid FROM jobs WHERE run_id = ? AND name = 'work'",
                (run_id,)).fetchone()[0], "the pid to be recorded")
        finally:
            db.close()
        assert recorded == pid
        go.touch()
        run = wait_for(lambda: (r := server.call("GET", f"/api/v1/runs/{run_id}"))["status"]
                       != "running" and r, "the run to end")
        assert run["status"] == "succeeded", run
    finally:
        assert server.stop() == 0
    wait_for(lambda: not Path(f"/proc/{parent}").exists(), "the spawner to end with the server")


def test_max_memory_passed_before_the_api_is_up_still_ends_the_server(tmp_path: Path
                                                                     ) -> None:
    # the first look at the resident size comes at once, as on a slow start: stop()
    # must reach the HTTP server however early it comes
    script = f"""
import os
os.environ["JAZ_HOME"] = {str(tmp_path / "home")!r}
from jaz.server import daemon
from pathlib import Path
from jaz.server.config import load_config
daemon.CHECK_EVERY = 0.0
d = daemon.Daemon(load_config(Path({str(tmp_path / "jaz.toml")!r})))
try:
    raise SystemExit(d.serve())
finally:
    d.core.close()
"""
    (tmp_path / "jobnets").mkdir()
    (tmp_path / "jaz.toml").write_text('listen = "127.0.0.1:0"\njobnets = "jobnets"\n'
                                       'allow_root = true\nmax_memory = "1MiB"\n')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr


def test_sighup_reloads_what_inotify_cannot_see(tmp_path: Path) -> None:
    # a jobnet file that is a symlink: a change to its target is seen by no watch of the
    # jobnets folder (and the server's own look is a minute away): SIGHUP reads it now
    elsewhere = tmp_path / "deployed"
    elsewhere.mkdir()
    (elsewhere / "linked.toml").write_text('[jobs.a]\nrun = "true"\n')
    server = Server(tmp_path)
    (tmp_path / "jobnets" / "linked.toml").symlink_to(elsewhere / "linked.toml")
    server.start()
    try:
        first = server.call("GET", "/api/v1/jobnets/linked")["version"]
        (elsewhere / "linked.toml").write_text('[jobs.b]\nrun = "true"\n')
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        shown = wait_for(lambda: (j := server.call("GET", "/api/v1/jobnets/linked"))
                         ["version"] != first and j, "the reload")
        assert list(shown["jobs"]) == ["b"]
    finally:
        server.stop()
