"""The HTTP API (jaz/server/api.py) over a real core: a real SQLite file, real jobnet
files, runs driven on real threads with real processes. Requests go through
FastAPI's TestClient (in-process ASGI)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import wait_for

from jaz.server.api import create_app
from jaz.server.auth import Tokens
from jaz.server.config import parse_config
from jaz.server.core import Core

ADMIN = "admin-token-for-tests"
TOKENS = {"viewer": "v-token", "operator": "o-token"}


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    (nets / "hello.toml").write_text('[params]\nWHO = "world"\n'
                                     '[jobs.greet]\nrun = "echo hello $WHO"\n')
    (nets / "gate.toml").write_text('[jobs.first]\nrun = "true"\n'
                                    '[jobs.gate]\nneeds = ["first"]\nhold = true\nrun = "true"\n'
                                    '[jobs.last]\nneeds = ["gate"]\nrun = "echo done"\n')
    (nets / "broken.toml").write_text('[jobs.a]\nrun = "true"\nneeds = ["nope"]\n')
    (nets / "two.toml").write_text('[jobs.nap]\nrun = "sleep 30"\n'
                                   '[jobs.after]\nneeds = ["nap"]\nrun = "true"\n')
    users = "\n".join(f'[users.{role}]\nrole = "{role}"\ntoken_sha256 = '
                      f'"{hashlib.sha256(token.encode()).hexdigest()}"'
                      for role, token in TOKENS.items())
    config = parse_config(f'jobnets = "{nets}"\ncalendars = "{tmp_path / "calendars"}"\n'
                          f'database = "{tmp_path / "jaz.db"}"\n{users}\n')
    core = Core(config)
    app = create_app(core, Tokens(config, ADMIN))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        yield client
    for run_id in core.running():
        core.act("stop", run_id, None, user="test")
    wait_for(lambda: not core.running(), "runs to stop")
    core.close()


def finished(api: TestClient, run_id: int) -> dict[str, Any]:
    return wait_for(lambda: (r := api.get(f"/api/v1/runs/{run_id}").json())["status"]
                    not in ("running", "scheduled") and r, f"run {run_id} to end")


def test_start_a_run_and_read_it_back(api: TestClient) -> None:
    r = api.post("/api/v1/runs", json={"jobnet": "hello", "params": {"WHO": "api"}})
    assert r.status_code == 201, r.text
    run = finished(api, r.json()["run_id"])
    assert (run["status"], run["exit_code"], run["trigger"]) == ("succeeded", 0, "manual")
    assert run["jobs"]["greet"]["status"] == "succeeded"
    logs = api.get(f"/api/v1/runs/{run['run_id']}/logs", params={"job": "greet"}).json()
    assert logs[0]["text"] == "hello api\n"
    again = api.get(f"/api/v1/runs/{run['run_id']}/logs",
                    params={"job": "greet", "stream": "stdout",
                            "offset": logs[0]["next_offset"]}).json()
    assert again[0]["text"] == ""
    listed = api.get("/api/v1/runs", params={"jobnet": "hello"}).json()
    assert [x["run_id"] for x in listed] == [run["run_id"]]
    events = api.get("/api/v1/events", params={"run": run["run_id"]}).json()
    assert events[0]["kind"] == "run_created" and events[0]["user"] == "admin"


def test_operator_actions_on_a_held_job(api: TestClient) -> None:
    run_id = api.post("/api/v1/runs", json={"jobnet": "gate"}).json()["run_id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{run_id}").json()["jobs"]["gate"]["status"]
             == "held", "the gate to be held")
    r = api.post(f"/api/v1/runs/{run_id}/jobs/gate/release")
    assert r.status_code == 200, r.text
    run = finished(api, run_id)
    assert run["status"] == "succeeded"
    assert run["jobs"]["last"]["status"] == "succeeded"
    r = api.post(f"/api/v1/runs/{run_id}/jobs/gate/release")
    assert r.status_code == 409 and "not held" in r.json()["title"]


def test_scheduled_runs_can_be_held_and_released(api: TestClient) -> None:
    r = api.post("/api/v1/runs", json={"jobnet": "hello", "at": "2099-01-01T00:00:00+00:00"})
    run = r.json()
    assert run["status"] == "scheduled"
    assert api.post(f"/api/v1/runs/{run['run_id']}/hold").json()["status"] == "held"
    assert api.post(f"/api/v1/runs/{run['run_id']}/release").json()["status"] == "scheduled"
    assert api.post(f"/api/v1/runs/{run['run_id']}/stop").json()["status"] == "stopped"


def test_scheduled_runs_can_be_retimed_and_skipped(api: TestClient) -> None:
    run_id = api.post("/api/v1/runs", json={"jobnet": "hello", "hold": True,
                                            "at": "2099-01-01T00:00:00+00:00"}).json()["run_id"]
    moved = api.post(f"/api/v1/runs/{run_id}/retime", json={"at": "2098-06-01T12:00:00Z"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "held"       # held stays held, at its new time
    assert datetime.fromisoformat(moved.json()["scheduled_at"]) == \
        datetime(2098, 6, 1, 12, tzinfo=UTC)
    bad = api.post(f"/api/v1/runs/{run_id}/retime", json={"at": "soon"})
    assert bad.status_code == 422
    assert api.post(f"/api/v1/runs/{run_id}/skip").json()["status"] == "skipped"
    again = api.post(f"/api/v1/runs/{run_id}/retime", json={"at": "2098-06-01T12:00:00Z"})
    assert again.status_code == 409 and "skipped" in again.json()["title"]
    assert api.post("/api/v1/runs/999/rerun").status_code == 404


def test_jobnets_show_their_validation_errors(api: TestClient) -> None:
    listed = {j["name"]: j for j in api.get("/api/v1/jobnets").json()}
    assert listed["hello"]["valid"] and not listed["broken"]["valid"]
    assert 'unknown job "nope"' in listed["broken"]["problems"][0]["message"]
    shown = api.get("/api/v1/jobnets/hello").json()
    assert shown["jobs"]["greet"]["kind"] == "run" and "echo hello" in shown["text"]
    r = api.post("/api/v1/runs", json={"jobnet": "broken"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "needs"


@pytest.mark.parametrize("method,path,body", [
    ("post", "/api/v1/runs", {"jobnet": "hello"}),
    ("post", "/api/v1/runs/1/stop", None),
    ("post", "/api/v1/runs/1/hold", None),
    ("post", "/api/v1/runs/1/release", None),
    ("post", "/api/v1/runs/1/jobs/greet/hold", None),
    ("post", "/api/v1/runs/1/jobs/greet/release", None),
    ("post", "/api/v1/runs/1/jobs/greet/skip", None),
    ("post", "/api/v1/runs/1/jobs/greet/unskip", None),
    ("post", "/api/v1/runs/1/jobs/greet/stop", None),
    ("post", "/api/v1/runs/1/jobs/greet/rerun", {"downstream": True}),
    ("post", "/api/v1/runs/1/skip", None),
    ("post", "/api/v1/runs/1/rerun", None),
    ("post", "/api/v1/runs/1/resume", None),
    ("post", "/api/v1/runs/1/retime", {"at": "2098-01-01T00:00:00+00:00"}),
    ("post", "/api/v1/purge", {"keep_days": 0}),
])
@pytest.mark.parametrize("who,expected", [
    (None, 401), ("Bearer wrong", 401), ("Basic xyz", 401), ("Bearer v-token", 403),
])
def test_auth_matrix_refuses_before_anything_changes(api: TestClient, method: str, path: str,
                                                     body: Any, who: str | None,
                                                     expected: int) -> None:
    headers = {"Authorization": who} if who else {"Authorization": ""}
    # run 1 is there, scheduled, for each action to change if it were let through
    made = api.post("/api/v1/runs", json={"jobnet": "hello", "at": "2099-01-01T00:00:00+00:00"})
    assert made.json()["run_id"] == 1
    before = api.get("/api/v1/runs").json()
    r = getattr(api, method)(path, json=body, headers=headers)
    assert r.status_code == expected, r.text
    assert r.json()["status"] == expected
    assert api.get("/api/v1/runs").json() == before


@pytest.mark.parametrize("token,allowed", [("o-token", True), (ADMIN, True),
                                           ("v-token", False)])
def test_roles_for_starting(api: TestClient, token: str, allowed: bool) -> None:
    r = api.post("/api/v1/runs", json={"jobnet": "hello"},
                 headers={"Authorization": f"Bearer {token}"})
    assert (r.status_code == 201) is allowed
    if allowed:
        finished(api, r.json()["run_id"])


def test_viewers_may_read(api: TestClient) -> None:
    r = api.get("/api/v1/jobnets", headers={"Authorization": "Bearer v-token"})
    assert r.status_code == 200


@pytest.mark.parametrize("method,path,kwargs,status,title", [
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "colour": "red"}}, 422,
     "invalid request"),
    ("post", "/api/v1/runs", {"content": b"{not json", "headers": {"Content-Type":
                                                                   "application/json"}},
     422, "invalid request"),
    ("post", "/api/v1/runs", {"json": {"jobnet": ""}}, 422, "invalid request"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "params": {"A": 1}}}, 422,
     "invalid request"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "at": "soon"}}, 422,
     "invalid request"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "nope"}}, 404, "jobnet 'nope'"),
    ("post", "/api/v1/runs", {"content": b"x" * (2 << 20)}, 413, "too large"),
    ("get", "/api/v1/runs/999", {}, 404, "999"),
    ("get", "/api/v1/runs/abc", {}, 422, "invalid request"),
    ("get", "/api/v1/runs", {"params": {"limit": 0}}, 422, "invalid request"),
    ("get", "/api/v1/runs", {"params": {"status": "sleepy"}}, 422, "invalid request"),
    ("get", "/api/v1/runs", {"params": {"sort": "colour"}}, 422, "invalid request"),
    ("post", "/api/v1/runs/999/stop", {}, 404, "999"),
    ("post", "/api/v1/runs/999/resume", {}, 404, "999"),
    ("post", "/api/v1/runs/1/explode", {}, 422, "invalid request"),
    ("post", "/api/v1/runs/999/jobs/x/hold", {}, 404, "999"),
    ("get", "/api/v1/jobnets/nope", {}, 404, "nope"),
    ("get", "/api/v1/calendars/nope", {}, 404, "nope"),
    # a lone surrogate is valid JSON and no valid UTF-8: it once made a run that broke
    # every later list of runs
    ("post", "/api/v1/runs", {"content": b'{"jobnet": "hello", "params": {"WHO": "\\ud800"}}',
                              "headers": {"Content-Type": "application/json"}}, 400,
     "param 'WHO' has a value"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "params": {"X": "a\0b"}}}, 400,
     "param 'X' has a value"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "params": {"A=B": "1"}}}, 400,
     "not a variable name"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "params": {"LD_PRELOAD": "x.so"}}},
     400, "may not be set"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "params": {"PATH": "/tmp"}}},
     400, "may not be set"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "params": {"JAZ_RUN_ID": "7"}}},
     400, "may not be set"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "at": "9999-12-31T23:59:59-14:00"}},
     400, "out of range"),
    ("post", "/api/v1/runs", {"json": {"jobnet": "hello", "at": "0001-01-01T00:00:00"}},
     400, "out of range"),
    ("get", "/api/v1/jobnets/hello/next", {"params": {"after": "9999-12-31T00:00:00"}}, 400,
     "out of range"),
    ("get", "/api/v1/jobnets/hello/next", {"params": {"after": "0001-01-01T00:00:00+14:00"}},
     400, "out of range"),
    ("get", "/api/v1/runs", {"params": {"since": "9999-12-31T23:00:00-14:00"}}, 400,
     "out of range"),
    ("get", "/api/v1/events", {"params": {"until": "0001-01-01T00:00:00+14:00"}}, 400,
     "out of range"),
])
def test_bad_requests_are_clear_4xx_problems(api: TestClient, method: str, path: str,
                                             kwargs: dict[str, Any], status: int,
                                             title: str) -> None:
    r = getattr(api, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert title in r.json()["title"]
    assert api.get("/api/v1/runs").json() == [] or method == "get"


def test_health_metrics_and_openapi(api: TestClient) -> None:
    assert api.get("/healthz", headers={"Authorization": ""}).json()["status"] == "ok"
    metrics = api.get("/metrics").text
    assert 'jaz_runs{state="running"} 0' in metrics and "jaz_jobnets 4" in metrics
    assert "jaz_jobnets_invalid 1" in metrics
    finished(api, api.post("/api/v1/runs", json={"jobnet": "hello"}).json()["run_id"])
    metrics = api.get("/metrics").text
    assert 'jaz_runs{state="succeeded"} 1' in metrics
    assert "jaz_job_duration_seconds_count 1" in metrics
    assert 'jaz_schedule_lag_seconds{quantile="0.99"}' in metrics
    assert "jaz_due_runs 0" in metrics
    doc = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/runs" in doc["paths"]


def test_failures_are_notified_once_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    (nets / "bad.toml").write_text('[jobs.a]\nrun = "echo oops >&2; exit 4"\n')
    heard = tmp_path / "heard.log"
    config = parse_config(
        f'jobnets = "{nets}"\ndatabase = "{tmp_path / "jaz.db"}"\n'
        f'[notify]\ncommand = \'echo "$JAZ_EVENT $JAZ_JOBNET $JAZ_RUN_ID $JAZ_JOB" '
        f'>> {heard}\'\n')
    core = Core(config, interactive=False)
    try:
        run_id = core.start("bad", user="test")
        wait_for(lambda: heard.exists() and len(heard.read_text().splitlines()) >= 2,
                 "two notifications")
        wait_for(lambda: not core.running(), "the run to end")
        lines = sorted(line.strip() for line in heard.read_text().splitlines())
        assert lines == sorted([f"job_failed bad {run_id} a", f"run_error bad {run_id}"])
    finally:
        core.close()


def test_purge_is_for_admins(api: TestClient) -> None:
    run_id = api.post("/api/v1/runs", json={"jobnet": "hello"}).json()["run_id"]
    finished(api, run_id)
    for token in ("v-token", "o-token"):
        r = api.post("/api/v1/purge", json={"keep_days": 0},
                     headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
    assert api.post("/api/v1/purge", json={"keep_days": -1}).status_code == 422
    r = api.post("/api/v1/purge", json={"keep_days": 0})
    assert r.json()["removed"] == [run_id]
    assert api.get(f"/api/v1/runs/{run_id}").status_code == 404


def test_runs_are_paged_and_sorted(api: TestClient) -> None:
    ids = [api.post("/api/v1/runs", json={"jobnet": "hello", "hold": True}).json()["run_id"]
           for _ in range(5)]
    page = api.get("/api/v1/runs", params={"limit": 2, "offset": 1}).json()
    assert [r["run_id"] for r in page] == [ids[3], ids[2]]
    oldest = api.get("/api/v1/runs", params={"sort": "id", "limit": 2}).json()
    assert [r["run_id"] for r in oldest] == ids[:2]
    held = api.get("/api/v1/runs", params={"status": "held", "jobnet": "hello"}).json()
    assert len(held) == 5


def test_start_and_release_actions_work_across_runs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    (nets / "waiter.toml").write_text('[jobs.gate]\nhold = true\nrun = "true"\n'
                                      '[jobs.after]\nneeds = ["gate"]\nrun = "echo released"\n')
    (nets / "boss.toml").write_text('[jobs.kick]\nstart = "waiter"\n'
                                    '[jobs.free]\nneeds = ["kick"]\nrelease = "waiter/gate"\n'
                                    '[jobs.self_gate]\nhold = true\nrun = "true"\n'
                                    '[jobs.open]\nneeds = ["free"]\nrelease = "self_gate"\n')
    config = parse_config(f'jobnets = "{nets}"\ndatabase = "{tmp_path / "jaz.db"}"\n')
    core = Core(config)
    try:
        boss = core.start("boss", user="test")
        run = wait_for(lambda: (r := core.service.run(boss)).status != "running" and r,
                       "boss to end")
        assert run.status == "succeeded", core.service.jobs(boss)
        jobs = {j.name: j for j in core.service.jobs(boss)}
        waiter_id = int(jobs["kick"].outputs["RUN_ID"])
        assert jobs["free"].outputs["RELEASED"] == "1"
        waiter = wait_for(lambda: (r := core.service.run(waiter_id)).status != "running"
                          and r, "the waiter to end")
        assert (waiter.status, waiter.trigger) == ("succeeded", "task")
    finally:
        for run_id in core.running():
            core.act("stop", run_id, None, user="test")
        core.close()


def test_a_chunked_body_over_the_limit_is_refused(api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536            # 2.5 MiB, with no Content-Length

    r = api.post("/api/v1/runs", content=chunks(),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["title"]
    assert api.get("/api/v1/runs").json() == []


def test_what_the_dashboard_reads(api: TestClient) -> None:
    """Progress and lateness in lists, a run's own jobnet version, a job's history across
    runs and the hosts: what `jaz tui` draws."""
    ids = [api.post("/api/v1/runs", json={"jobnet": "hello"}).json()["run_id"]
           for _ in range(2)]
    for run_id in ids:
        finished(api, run_id)
    listed = api.get("/api/v1/runs", params={"jobnet": "hello"}).json()
    assert [(r["progress"], r["late"]) for r in listed] == [({"done": 1, "total": 1}, False)] * 2
    net = api.get(f"/api/v1/runs/{ids[0]}/jobnet").json()
    assert net["params"] == {"WHO": "world"}
    assert net["jobs"]["greet"] | {} == {
        "kind": "run", "needs": [], "host": "local", "what": "echo hello $WHO",
        "description": "", "enabled": True, "hold": False, "timeout": None, "retries": 0}
    assert api.get("/api/v1/jobnets/hello").json()["params"] == {"WHO": "world"}
    history = api.get("/api/v1/jobnets/hello/jobs/greet/history").json()
    assert [(h["run_id"], h["status"], h["exit_code"]) for h in history] == \
        [(ids[1], "succeeded", 0), (ids[0], "succeeded", 0)]
    assert api.get("/api/v1/jobnets/nope/jobs/greet/history").status_code == 404
    assert api.get("/api/v1/runs/999/jobnet").status_code == 404
    gate = api.post("/api/v1/runs", json={"jobnet": "gate"}).json()["run_id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{gate}").json()["progress"]
             == {"done": 1, "total": 3}, "the first job to finish before the held gate")
    hosts = api.get("/api/v1/hosts").json()
    assert [(h["name"], h["kind"], h["online"]) for h in hosts] == [("local", "local", True)]


def test_a_stopped_job_stays_stopped(api: TestClient) -> None:
    """Stopping a job halts its run (`on_failure = "halt"`: `error`); the run must not be
    driven on as a resume, which would start the stopped job again."""
    run_id = api.post("/api/v1/runs", json={"jobnet": "two"}).json()["run_id"]
    wait_for(lambda: api.get(f"/api/v1/runs/{run_id}").json()["jobs"]["nap"]["status"]
             == "running", "the job to run")
    assert api.post(f"/api/v1/runs/{run_id}/jobs/nap/stop").status_code == 200
    run = wait_for(lambda: (r := api.get(f"/api/v1/runs/{run_id}").json())["status"]
                   == "error" and r, "the run to halt")
    assert run["jobs"]["nap"]["status"] == "stopped"
    kinds = [e["kind"] for e in api.get("/api/v1/events", params={"run": run_id}).json()
             if e["job"] == "nap"]
    assert kinds.count("job_started") == 1, kinds
    # a skip lets it go on from where it is, and it ends
    assert api.post(f"/api/v1/runs/{run_id}/jobs/nap/skip").status_code == 200
    assert finished(api, run_id)["status"] == "succeeded"


def test_holding_a_job_of_a_halted_run_starts_nothing(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A hold (or a stop) on a run halted in `error` changes nothing else: the run is not
    driven on, so its stopped or failed jobs are not started again behind the operator's
    back (a skip, release or rerun does drive it on, from where it is)."""
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    (nets / "two.toml").write_text('[jobs.bad]\nrun = "exit 3"\n'
                                   '[jobs.after]\nneeds = ["bad"]\nrun = "true"\n')
    core = Core(parse_config(f'jobnets = "{nets}"\ndatabase = "{tmp_path / "jaz.db"}"\n'))
    try:
        run_id = core.start("two", user="test")
        wait_for(lambda: core.service.run(run_id).status == "error" and not core.running(),
                 "the run to halt")
        core.act("hold", run_id, "after", user="test")
        assert not core.running()            # nothing was set going
        assert core.service.run(run_id).status == "error"
        assert core.service.jobs(run_id)[0].status == "failed"
        core.act("skip", run_id, "bad", user="test")
        core.act("release", run_id, "after", user="test")
        wait_for(lambda: core.service.run(run_id).status == "succeeded", "the run to end")
    finally:
        core.close()
