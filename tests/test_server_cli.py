"""The CLI against a real `jaz server` (SPEC §3): one server subprocess for the module,
on a free loopback port, with its own $JAZ_HOME and jobnet folder; every command runs
as a `jaz` subprocess that finds the server through $JAZ_HOME/server.url and
admin.token, as an operator's shell would. Nothing sleeps: waits poll with deadlines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from support import free_port, running_server, wait_for

from jaz.engine.when import parse_at
from jaz.errors import UsageError

JOBNETS = {
    "hello": '[params]\nWHO = "world"\n[jobs.greet]\nrun = "echo hello $WHO; echo psst >&2"\n',
    "fail": '[jobs.a]\nrun = "echo bad; exit 3"\n[jobs.b]\nneeds = ["a"]\nrun = "echo after"\n',
    "gate": '[jobs.first]\nrun = "echo first"\n'
            '[jobs.gate]\nneeds = ["first"]\nhold = true\nrun = "echo gate"\n'
            '[jobs.last]\nneeds = ["gate"]\nrun = "echo done"\n',
    "broken": '[jobs.a]\nrun = "true"\nneeds = ["nope"]\n',
    "yearly": '[schedule]\ncron = "0 3 1 1 *"\ntimezone = "UTC"\n[jobs.a]\nrun = "true"\n',
}


@dataclass
class Server:
    home: Path
    url: str
    api: httpx.Client
    env: dict[str, str]

    def jaz(self, *args: str, env: dict[str, str] | None = None,
            ok: bool | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "jaz", *args], capture_output=True,
                                text=True, env=env or self.env, timeout=30)
        if ok is not None:
            assert (result.returncode == 0) == ok, (result.returncode, result.stdout,
                                                    result.stderr)
        return result

    def run(self, run_id: int) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/runs/{run_id}")
        response.raise_for_status()
        return dict(response.json())

    def until(self, run_id: int, check: Callable[[dict[str, Any]], bool],
              what: str) -> dict[str, Any]:
        def ok() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if check(run) else None

        return dict(wait_for(ok, f"run {run_id}: {what}"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("server")
    with running_server(root, JOBNETS) as (url, token, env, home), \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                         timeout=10, trust_env=False) as api:
        yield Server(home=home, url=url, api=api, env=env)


def started(result: subprocess.CompletedProcess[str]) -> int:
    """The run id `jaz start` prints on its first line."""
    assert result.stdout, result.stderr
    return int(result.stdout.splitlines()[0])


# ------------------------------------------------------------------ start, status, runs, logs


def test_start_wait_succeeds_and_the_query_commands_read_the_server(server: Server) -> None:
    result = server.jaz("start", "hello", "-p", "WHO=cli", "--wait", ok=True)
    run_id = started(result)
    assert f"run {run_id} (hello)" in result.stdout and "succeeded" in result.stdout

    status = server.jaz("status", str(run_id), "--json", ok=True)
    view = json.loads(status.stdout)
    assert {"run_id", "jobnet", "status", "exit_code", "params", "started_at", "ended_at",
            "jobs"} <= set(view)
    assert (view["status"], view["exit_code"], view["params"]["WHO"]) == ("succeeded", 0, "cli")
    assert set(view["jobs"]["greet"]) >= {"status", "exit_code", "attempts", "timed_out",
                                          "host", "outputs", "started_at", "ended_at"}

    listed = json.loads(server.jaz("runs", "--jobnet", "hello", "--sort", "-duration",
                                   "--json", ok=True).stdout)
    assert run_id in [r["run_id"] for r in listed] and "jobs" not in listed[0]

    logs = server.jaz("logs", str(run_id), ok=True).stdout
    assert "hello cli\n" in logs and "psst\n" in logs and "stderr <==" in logs


def test_env_params_and_json_of_start(server: Server) -> None:
    env = {**server.env, "WHO": "from-env"}
    result = server.jaz("start", "hello", "-e", "WHO", "--wait", "--json", env=env, ok=True)
    view = json.loads(result.stdout)           # --json --wait: only the ended run object
    assert (view["status"], view["params"]["WHO"]) == ("succeeded", "from-env")
    missing = server.jaz("start", "hello", "-e", "NOT_SET_ANYWHERE_4711")
    assert missing.returncode == 2 and "NOT_SET_ANYWHERE_4711" in missing.stderr


def test_a_failed_run_exits_1_and_rerun_and_skip_move_it_on(server: Server) -> None:
    result = server.jaz("start", "fail", "--wait")
    assert result.returncode == 1, result.stderr
    run_id = started(result)
    assert "error" in result.stdout and f"jaz skip {run_id} a" in result.stdout

    rerun = server.jaz("rerun", str(run_id), "a", "--downstream", "--json", ok=True)
    assert json.loads(rerun.stdout)["run_id"] == run_id
    server.until(run_id, lambda r: r["status"] == "error", "in error again")

    server.jaz("skip", str(run_id), "a", ok=True)
    done = server.jaz("status", str(run_id), "--wait", "--json", ok=True)
    view = json.loads(done.stdout)
    assert view["status"] == "succeeded"
    assert (view["jobs"]["a"]["status"], view["jobs"]["b"]["status"]) == \
        ("skipped", "succeeded")


def test_a_halted_run_is_resumed_from_the_shell(server: Server) -> None:
    run_id = started(server.jaz("start", "fail", "--wait"))
    refused = server.jaz("resume", str(run_id + 1000))
    assert refused.returncode == 4 and str(run_id + 1000) in refused.stderr
    first = server.run(run_id)["jobs"]["a"]["started_at"]
    resumed = server.jaz("resume", str(run_id), "--json", ok=True)
    assert json.loads(resumed.stdout)["status"] in ("running", "error")
    view = server.until(run_id, lambda r: r["status"] == "error"
                        and r["jobs"]["a"]["started_at"] != first, "in error again")
    assert view["jobs"]["a"]["status"] == "failed"     # it ran again, and failed again
    events = server.api.get("/api/v1/events", params={"run": run_id}).json()
    assert [e["user"] for e in events if e["kind"] == "resume"] == ["admin"], events
    running = started(server.jaz("start", "gate", ok=True))
    server.until(running, lambda r: r["jobs"]["gate"]["status"] == "held", "gate held")
    busy = server.jaz("resume", str(running))
    assert busy.returncode == 2 and "only a failed, stopped or halted" in busy.stderr
    server.jaz("stop", str(running), ok=True)


def test_held_jobs_are_held_released_and_logs_follow_to_the_end(server: Server) -> None:
    run_id = started(server.jaz("start", "gate", ok=True))
    server.until(run_id, lambda r: r["jobs"]["gate"]["status"] == "held", "gate held")
    follow = subprocess.Popen([sys.executable, "-m", "jaz", "logs", str(run_id), "-f"],
                              env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        held = server.jaz("hold", str(run_id), "last", "--json", ok=True)
        assert json.loads(held.stdout)["jobs"]["last"]["status"] == "held"
        assert "job gate" in server.jaz("release", str(run_id), "gate", ok=True).stdout
        server.until(run_id, lambda r: r["jobs"]["gate"]["status"] == "succeeded", "gate ran")
        assert follow.poll() is None       # `last` is still held: the run goes on
        server.jaz("release", str(run_id), "last", ok=True)
        out, err = follow.communicate(timeout=20)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    assert follow.returncode == 0, err
    assert out.index("first\n") < out.index("gate\n") < out.index("done\n")
    assert "==> last (attempt 1) stdout <==" in out
    assert server.run(run_id)["status"] == "succeeded"


def test_stop_a_run_with_a_held_job(server: Server) -> None:
    run_id = started(server.jaz("start", "gate", ok=True))
    server.until(run_id, lambda r: r["jobs"]["gate"]["status"] == "held", "gate held")
    server.jaz("stop", str(run_id), ok=True)
    status = server.jaz("status", str(run_id), "--wait")
    assert status.returncode == 1 and "stopped" in status.stdout


def test_a_run_at_a_later_time_is_scheduled_and_can_be_held(server: Server) -> None:
    result = server.jaz("start", "hello", "--at", "+2h", "--json", ok=True)
    view = json.loads(result.stdout)
    assert view["status"] == "scheduled"
    due = datetime.fromisoformat(view["scheduled_at"])
    assert timedelta(minutes=119) < due - datetime.now(UTC) <= timedelta(hours=2)
    run_id = view["run_id"]
    upcoming = json.loads(server.jaz("runs", "--status", "scheduled", "--json").stdout)
    assert run_id in [r["run_id"] for r in upcoming]
    assert "held" in server.jaz("hold", str(run_id), ok=True).stdout
    assert "scheduled" in server.jaz("release", str(run_id), ok=True).stdout
    server.jaz("stop", str(run_id), ok=True)
    assert server.run(run_id)["status"] == "stopped"


# ------------------------------------------------------------------ definitions


def test_jobnets_and_show_include_an_invalid_jobnet(server: Server) -> None:
    nets = {n["name"]: n for n in json.loads(server.jaz("jobnets", "--json", ok=True).stdout)}
    assert set(nets) == set(JOBNETS)
    assert nets["broken"]["valid"] is False and "nope" in nets["broken"]["problems"][0]["message"]
    table = server.jaz("jobnets", ok=True).stdout
    broken = next(line for line in table.splitlines() if line.startswith("broken"))
    assert "INVALID" in broken and "nope" in broken

    shown = server.jaz("show", "gate", ok=True).stdout
    assert "hold = true" in shown and "first" in shown.split("[jobs.first]")[0]
    assert 'unknown job "nope"' in server.jaz("show", "broken", ok=True).stdout

    started_broken = server.jaz("start", "broken")
    assert started_broken.returncode == 2 and 'unknown job "nope"' in started_broken.stderr
    unknown = server.jaz("show", "nothing-like-it")
    assert unknown.returncode == 4 and "jaz jobnets" in unknown.stderr


# ------------------------------------------------------------------ errors and exit codes


def test_a_bad_token_is_refused_with_exit_5(server: Server) -> None:
    result = server.jaz("runs", "--token", "not-the-token")
    assert result.returncode == 5 and "refused" in result.stderr
    env = {**server.env, "JAZ_TOKEN": "not-the-token"}
    assert server.jaz("start", "hello", env=env).returncode == 5


def test_no_server_is_exit_3_naming_where_it_looked(server: Server, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = server.jaz("status", "1", "--server", dead)
    assert result.returncode == 3 and dead in result.stderr and "jaz server" in result.stderr
    env = {**server.env, "JAZ_HOME": str(tmp_path)}
    result = server.jaz("start", "hello", env=env)
    assert result.returncode == 3
    assert str(tmp_path / "server.url") in result.stderr and "jaz server" in result.stderr


def test_unknown_runs_and_jobs_are_exit_4(server: Server) -> None:
    for args in (["status", "987654"], ["stop", "987654", "some-job"]):
        result = server.jaz(*args)
        assert result.returncode == 4, (args, result.stderr)
        assert "987654" in result.stderr


def test_usage_errors_are_exit_2(server: Server) -> None:
    for args in (["start", "hello", "-p", "no-equals-sign"], ["start", "hello", "--at", "soon"],
                 ["runs", "--db", "x.db", "--server", server.url]):
        result = server.jaz(*args)
        assert result.returncode == 2, (args, result.stderr)


# ------------------------------------------------------------------ --at


NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("+10m", NOW + timedelta(minutes=10)),
    ("+1d", NOW + timedelta(days=1)),
    ("2026-11-21T08:00+00:00", datetime(2026, 11, 21, 8, tzinfo=UTC)),
])
def test_at_times(text: str, expected: datetime) -> None:
    assert parse_at(text, NOW) == expected


def test_at_a_time_of_day_is_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    assert parse_at("11:30", NOW) == datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    assert parse_at("09:30", NOW).date().isoformat() == "2026-11-21"


@pytest.mark.parametrize("text", ["soon", "+", "+forever", "25:00", "12:61"])
def test_bad_at_times(text: str) -> None:
    with pytest.raises(UsageError):
        parse_at(text, NOW)


def test_the_audit_log_as_table_csv_and_json(server: Server) -> None:
    run_id = started(server.jaz("start", "hello", "--hold", ok=True))
    server.jaz("release", str(run_id), ok=True)
    rows = list(csv.DictReader(io.StringIO(
        server.jaz("log", "--run", str(run_id), "--csv", ok=True).stdout)))
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["run_created", "release_run"], kinds
    assert {r["user"] for r in rows[:2]} == {"admin"}
    assert rows[0]["jobnet"] == "hello" and rows[0]["at"].startswith("20")
    mine = json.loads(server.jaz("log", "--user", "admin", "--jobnet", "hello", "--since",
                                 "1h", "--json", ok=True).stdout)
    assert {e["user"] for e in mine} == {"admin"} and run_id in {e["run_id"] for e in mine}
    assert json.loads(server.jaz("log", "--user", "nobody", "--json", ok=True).stdout) == []
    table = server.jaz("log", "--run", str(run_id), ok=True).stdout
    assert "release_run" in table
    bad = server.jaz("log", "--since", "whenever")
    assert bad.returncode == 2 and 'bad --since "whenever"' in bad.stderr


def test_next_asks_the_server_for_a_name_that_is_no_file_here(server: Server) -> None:
    fires = json.loads(server.jaz("next", "yearly", "-n", "2", "--after",
                                  "2026-06-01T00:00+00:00", "--json", ok=True).stdout)
    assert fires == ["2027-01-01T03:00:00+00:00", "2028-01-01T03:00:00+00:00"]
    human = server.jaz("next", "yearly", "-n", "1", ok=True).stdout
    assert "cron 0 3 1 1 *" in human and "01-01 03:00" in human
    missing = server.jaz("next", "nowhere")
    assert missing.returncode == 4


def test_a_scheduled_run_is_retimed_skipped_or_rerun_from_the_shell(server: Server) -> None:
    later = started(server.jaz("start", "hello", "-p", "WHO=ops", "--at", "+2h", ok=True))
    other = started(server.jaz("start", "hello", "--at", "+2h", ok=True))
    # another time, an hour on: still scheduled, at the new time, audited
    shown = server.jaz("retime", str(later), "+3h", "--json", ok=True)
    due = datetime.fromisoformat(json.loads(shown.stdout)["scheduled_at"])
    assert timedelta(hours=2, minutes=50) < due - datetime.now(UTC) < timedelta(hours=3, minutes=1)
    events = server.api.get("/api/v1/events", params={"run": later}).json()
    assert [e["user"] for e in events if e["kind"] == "retime_run"] == ["admin"]
    # a time already past: it starts now
    server.jaz("retime", str(later), "2000-01-01T00:00", ok=True)
    assert server.until(later, lambda r: r["status"] == "succeeded", "it ran")
    # skipped: recorded, never started
    assert "skipped" in server.jaz("skip", str(other), ok=True).stdout
    assert server.run(other)["status"] == "skipped" and server.run(other)["started_at"] is None
    refused = server.jaz("skip", str(later))
    assert refused.returncode == 2 and "only a scheduled or held run" in refused.stderr
    # rerun as a new run, with the same params
    again = started(server.jaz("rerun", str(later), ok=True))
    assert again != later
    run = server.until(again, lambda r: r["status"] == "succeeded", "the rerun ran")
    assert run["params"]["WHO"] == "ops" and run["trigger"] == "rerun"
    logs = server.jaz("logs", str(again), "greet", ok=True)
    assert "hello ops" in logs.stdout


def test_undeclared_params_that_change_what_jobs_run_are_refused(server: Server) -> None:
    refused = server.jaz("start", "hello", "-p", "LD_PRELOAD=/tmp/x.so")
    assert refused.returncode == 2 and "LD_PRELOAD" in refused.stderr
    assert "may not be set" in refused.stderr


def test_purge_asks_the_running_server(server: Server) -> None:
    # its database is the server's, wherever its config puts it: the runs it lists go
    done = started(server.jaz("start", "hello", "--wait", ok=True))
    assert server.run(done)["status"] == "succeeded"
    answer = json.loads(server.jaz("purge", "--keep-days", "0", "--json", ok=True).stdout)
    assert done in answer["removed"]
    assert server.api.get(f"/api/v1/runs/{done}").status_code == 404
