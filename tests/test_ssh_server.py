"""SSH hosts in a real `jaz server`: jobs run there, the hosts' reachability and last
error in `jaz hosts` and GET /api/v1/hosts, an operator's stop through the API killing
the remote group, a job left running by a stopped server and adopted by the restarted
one, and a secret that never reaches the API, the database or the logs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_support import jaz
from sshd_support import Lab, make_lab
from support import running_server, wait_for


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    for lab in make_lab(tmp_path):
        monkeypatch.setenv("HOME", lab.env["HOME"])   # the server's ~/.ssh
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        yield lab


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _hosts(home: Path) -> dict:
    return {h["name"]: h for h in json.loads(jaz("hosts", "--json", home=home).stdout)}


def test_server_runs_ssh_jobs_and_lists_ssh_hosts_with_reachability(lab: Lab):
    root = lab.root / "server"
    root.mkdir()
    (root / "hosts.toml").write_text(
        '[hosts.box]\nssh = "box"\nlabels = ["web"]\n'
        '[hosts.stranger]\nssh = "stranger"\n')
    # `stranger` is the same sshd under a name whose key is not known
    lab.ssh_config(lab.alias("box") + lab.alias("stranger").replace("127.0.0.1",
                                                                    "localhost"))
    net = ('[jobs.remote]\nhost = "box"\n'
           'run = \'echo "answer=42" >> "$JAZ_OUTPUT"; echo "on $(whoami)"\'\n')
    with running_server(root, {"net": net}, extra='hosts_file = "hosts.toml"\n') as \
            (url, token, env, home):
        started = jaz("start", "net", "--wait", "--json", home=home)
        assert started.returncode == 0, started.stderr + (root / "server.log").read_text()
        view = json.loads(started.stdout)
        assert view["jobs"]["remote"]["outputs"] == {"answer": "42"}
        assert f"on {lab.sshd.user}" in jaz("logs", view["run_id"], "remote",
                                            home=home).stdout

        hosts = wait_for(lambda: (h := _hosts(home)) and h["stranger"]["error"] and h,
                         "the untrusted host's error to show")
        assert hosts["box"]["kind"] == "ssh" and hosts["box"]["online"] is True
        assert hosts["box"]["last_seen"] and hosts["box"]["error"] == ""
        assert "OpenSSH" in (hosts["box"]["version"] or "")
        assert hosts["stranger"]["online"] is None   # never asked: its key is not known
        assert "not trusted yet" in hosts["stranger"]["error"]
        assert "jaz hosts trust stranger" in hosts["stranger"]["error"]
        table = jaz("hosts", home=home).stdout
        assert "online" in table and "not trusted yet" in table

        lab.sshd.crash()   # the host goes away: the heartbeat notices
        wait_for(lambda: _hosts(home)["box"]["online"] is False, "box to show offline",
                 timeout=30)
        assert _hosts(home)["box"]["error"]


def test_stop_through_the_api_kills_the_remote_group_and_a_secret_never_shows(
        lab: Lab, monkeypatch: pytest.MonkeyPatch):
    canary = "canary-" + os.urandom(6).hex()
    monkeypatch.setenv("JAZ_SECRET_TOKEN", canary)
    root = lab.root / "server"
    root.mkdir()
    (root / "hosts.toml").write_text('[hosts.box]\nssh = "box"\n')
    pids = Path("/tmp") / f"jaz-ssh-srv-{os.getpid()}-{time.monotonic_ns()}"
    net = f"""
[jobs.sleepy]
host = "box"
env = {{ TOKEN = {{ secret = "token" }} }}
run = '''
echo "token is $TOKEN"
echo "T=$TOKEN" >> "$JAZ_OUTPUT"
sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; mv {pids}.tmp {pids}; wait
'''
"""
    try:
        with running_server(root, {"net": net}, extra='hosts_file = "hosts.toml"\n') as \
                (url, token, env, home):
            run_id = jaz("start", "net", home=home).stdout.split()[-1]
            wait_for(pids.exists, "the job to start on the SSH host")
            started = [int(p) for p in pids.read_text().split()]
            assert all(_alive(p) for p in started)
            assert jaz("stop", run_id, "sleepy", home=home).returncode == 0
            status = jaz("status", run_id, "--wait", "--json", home=home)
            assert json.loads(status.stdout)["jobs"]["sleepy"]["status"] == "stopped"
            wait_for(lambda: not any(_alive(p) for p in started),
                     "the job's processes on the host to die")
            logs = jaz("logs", run_id, "sleepy", home=home).stdout
            assert "token is ***" in logs
            import httpx2

            headers = {"Authorization": f"Bearer {token}"}
            for path in (f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/logs",
                         "/api/v1/events", "/api/v1/hosts"):
                answer = httpx2.get(f"{url}{path}", headers=headers)
                assert answer.status_code == 200, path
                assert canary not in answer.text, path
            assert "token is ***" in httpx2.get(f"{url}/api/v1/runs/{run_id}/logs",
                                                headers=headers).text
        for f in root.rglob("*"):
            if f.is_file():
                assert canary.encode() not in f.read_bytes(), f"the secret is in {f}"
    finally:
        pids.unlink(missing_ok=True)


def test_a_server_that_stops_leaves_its_ssh_job_running_and_adopts_it_after_restart(
        lab: Lab):
    """SIGTERM to the server mid-job: the job runs on there (its output into its files);
    the restarted server follows it and records its real end and all its output."""
    root = lab.root / "server"
    root.mkdir()
    (root / "hosts.toml").write_text('[hosts.box]\nssh = "box"\n')
    pids = Path("/tmp") / f"jaz-ssh-srv-{os.getpid()}-{time.monotonic_ns()}"
    gate = Path(f"{pids}.gate")
    net = f"""
[jobs.sleepy]
host = "box"
run = '''
echo $$ > {pids}.tmp; mv {pids}.tmp {pids}
echo before
while [ ! -e {gate} ]; do sleep 0.05; done
echo after; exit 6
'''
"""
    try:
        with running_server(root, {"net": net}, extra='hosts_file = "hosts.toml"\n') as \
                (url, token, env, home):
            run_id = jaz("start", "net", home=home).stdout.split()[-1]
            wait_for(pids.exists, "the job to start on the SSH host")
            started = int(pids.read_text())
        assert _alive(started), "the job died with the server"
        gate.write_text("")
        wait_for(lambda: not _alive(started), "the job to end on the host")
        import shutil

        for folder in ("jobnets", "calendars"):   # (made again by running_server)
            shutil.rmtree(root / folder)
        with running_server(root, {"net": net}, extra='hosts_file = "hosts.toml"\n') as \
                (url, token, env, home):
            status = jaz("status", run_id, "--wait", "--json", home=home)
            job = json.loads(status.stdout)["jobs"]["sleepy"]
            assert (job["status"], job["exit_code"]) == ("failed", 6), job
            logs = jaz("logs", run_id, "sleepy", home=home).stdout
            assert "before" in logs and "after" in logs, logs
    finally:
        pids.unlink(missing_ok=True)
        gate.unlink(missing_ok=True)
