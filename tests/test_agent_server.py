"""`jaz server` with agent hosts: jobs on a real agent started through the API, the
hosts' online state in `jaz hosts` and GET /api/v1/hosts, an operator's stop, and
`jaz hosts trust`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from agent_support import Agent, jaz
from support import free_port, running_server, wait_for

NET = """
[jobs.remote]
host = "a1"
run = '''
echo "on the agent: $JAZ_AGENT_JOB"
echo "answer=42" >> "$JAZ_OUTPUT"
'''
[jobs.after]
needs = ["remote"]
run = 'test "$answer" = 42'
"""


@pytest.fixture
def agent(tmp_path: Path):
    a = Agent(tmp_path / "agent").start()
    yield a
    a.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, OSError):
        return False


def test_the_server_runs_jobs_on_an_agent_and_shows_the_host_online(agent: Agent,
                                                                   tmp_path: Path):
    root = tmp_path / "server"
    root.mkdir()
    down = free_port()   # nothing listens there
    (root / "hosts.toml").write_text(
        agent.hosts_entry("a1", labels='labels = ["web"]')
        + f'[hosts.gone]\nagent = "127.0.0.1:{down}"\nfingerprint = "SHA256:{"0" * 64}"\n'
        f'token_file = "{agent.token_file}"\n')
    with running_server(root, {"net": NET}, extra='hosts_file = "hosts.toml"\n') as \
            (url, token, env, home):
        started = jaz("start", "net", "--wait", "--json", home=home)
        assert started.returncode == 0, started.stderr + (root / "server.log").read_text()
        view = json.loads(started.stdout)
        assert view["jobs"]["remote"]["outputs"] == {"answer": "42"}
        logs = jaz("logs", view["run_id"], "remote", home=home)
        assert "on the agent: " in logs.stdout

        def listed() -> dict | None:
            hosts = {h["name"]: h for h in json.loads(jaz("hosts", "--json", home=home).stdout)}
            return hosts if hosts["gone"]["online"] is False else None

        hosts = wait_for(listed, "the unreachable host to show offline")
        assert hosts["a1"]["online"] is True and hosts["a1"]["version"]
        assert hosts["a1"]["labels"] == ["web"] and hosts["a1"]["last_seen"]
        assert "cannot reach" in hosts["gone"]["error"]
        table = jaz("hosts", home=home)
        assert "OFFLINE" in table.stdout and "online" in table.stdout
        import httpx2

        metrics = httpx2.get(f"{url}/metrics").text
        assert 'jaz_host_online{host="a1"} 1' in metrics
        assert 'jaz_host_online{host="gone"} 0' in metrics
        assert [r[2] for r in agent.jobs()] == [1]   # the result was acknowledged


def test_an_operator_stop_through_the_api_kills_the_job_on_the_agent(agent: Agent,
                                                                     tmp_path: Path):
    root = tmp_path / "server"
    root.mkdir()
    pids = tmp_path / "pids"
    (root / "hosts.toml").write_text(agent.hosts_entry("a1"))
    net = f"""
[jobs.sleepy]
host = "a1"
run = 'sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; mv {pids}.tmp {pids}; wait'
"""
    with running_server(root, {"net": net}, extra='hosts_file = "hosts.toml"\n') as \
            (url, token, env, home):
        run_id = jaz("start", "net", home=home).stdout.split()[-1]
        wait_for(pids.exists, "the job to start on the agent")
        started = [int(p) for p in pids.read_text().split()]
        assert jaz("stop", run_id, "sleepy", home=home).returncode == 0
        status = jaz("status", run_id, "--wait", "--json", home=home)
        assert json.loads(status.stdout)["jobs"]["sleepy"]["status"] == "stopped"
        wait_for(lambda: not any(_alive(p) for p in started), "the job's processes to die")


def test_trust_pins_the_fingerprint_after_asking(agent: Agent, tmp_path: Path):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(f'# my hosts\n[hosts.a1]  # the first\nagent = "{agent.address}"\n'
                     f'token_file = "{agent.token_file}"\n\n[hosts.b]\nssh = "x@y"\n')
    home = tmp_path / "home"
    no = jaz("hosts", "trust", "a1", "--hosts", hosts, home=home, input="n\n")
    assert no.returncode == 1 and agent.fingerprint in no.stdout
    assert "fingerprint =" not in hosts.read_text()
    yes = jaz("hosts", "trust", "a1", "--hosts", hosts, home=home, input="y\n")
    assert yes.returncode == 0, yes.stderr
    text = hosts.read_text()
    assert f'[hosts.a1]  # the first\nfingerprint = "{agent.fingerprint}"\n' in text
    assert text.startswith("# my hosts\n") and '[hosts.b]\nssh = "x@y"\n' in text
    again = jaz("hosts", "trust", "a1", "--hosts", hosts, home=home)
    assert again.returncode == 0 and "pinned already" in again.stdout


def test_trust_with_a_fingerprint_pins_only_that_one(agent: Agent, tmp_path: Path):
    hosts = tmp_path / "hosts.toml"
    before = agent.hosts_entry("a1", fingerprint="SHA256:" + "1" * 64)
    hosts.write_text(before)
    home = tmp_path / "home"
    wrong = jaz("hosts", "trust", "a1", "--hosts", hosts, "--fingerprint",
                "SHA256:" + "2" * 64, home=home)
    assert wrong.returncode == 5 and "nothing was pinned" in wrong.stderr
    assert "NOT the fingerprint pinned" in wrong.stdout
    assert hosts.read_text() == before
    right = jaz("hosts", "trust", "a1", "--hosts", hosts, "--fingerprint",
                agent.fingerprint.upper().replace("SHA256:", ""), home=home)
    assert right.returncode == 0, right.stderr
    assert f'fingerprint = "{agent.fingerprint}"' in hosts.read_text()
    assert hosts.read_text().count("fingerprint =") == 1
    missing = jaz("hosts", "trust", "zz", "--hosts", hosts, home=home)
    assert missing.returncode == 4 and "hosts there: a1" in missing.stderr


def test_trust_of_an_agent_that_refuses_this_machine_says_so(tmp_path: Path):
    a = Agent(tmp_path / "agent", servers=("192.0.2.1",)).start()
    try:
        hosts = tmp_path / "hosts.toml"
        hosts.write_text(f'[hosts.a1]\nagent = "{a.address}"\n')
        result = jaz("hosts", "trust", "a1", "--hosts", hosts, "--yes", home=tmp_path / "h")
        assert result.returncode == 3 and "servers" in result.stderr
    finally:
        a.stop()


@pytest.mark.parametrize("fault", ["server", "both, agent back first",
                                   "both, server back first", "server, fan-out"])
def test_a_server_killed_while_its_job_runs_on_an_agent_gets_the_result_after_restart(
        agent: Agent, tmp_path: Path, fault: str):
    import subprocess
    import sys

    root = tmp_path / "server"
    (root / "jobnets").mkdir(parents=True)
    go, ran = tmp_path / "go", tmp_path / "ran"
    where = 'hosts = ["label:all"]' if "fan-out" in fault else 'host = "a1"'
    (root / "jobnets" / "net.toml").write_text(f"""
[jobs.long]
{where}
run = '''
echo started >> {ran}
while [ ! -e {go} ]; do sleep 0.05; done
echo "done=yes" >> "$JAZ_OUTPUT"
'''
""")
    (root / "hosts.toml").write_text(agent.hosts_entry("a1", labels='labels = ["all"]'))
    config = root / "jaz.toml"
    config.write_text(f'listen = "127.0.0.1:{free_port()}"\njobnets = "jobnets"\n'
                      'hosts_file = "hosts.toml"\n'
                      + ("allow_root = true\n" if os.geteuid() == 0 else ""))
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(home)

    def serve() -> subprocess.Popen[bytes]:
        (home / "server.url").unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: (home / "server.url").exists(), "the server to listen")
        return proc

    server = serve()
    try:
        run_id = jaz("start", "net", home=home).stdout.split()[-1]
        wait_for(ran.exists, "the job to start on the agent")
        server.kill()                      # kill -9 of the server while the agent holds it
        server.wait(timeout=10)
        if fault == "server":
            server = serve()
        else:
            agent.kill()                   # and of the agent: restarted in either order
            if fault == "both, agent back first":
                agent.start()
                server = serve()
            else:
                server = serve()
                agent.start()
        go.touch()
        status = jaz("status", run_id, "--wait", "--json", home=home)
        view = json.loads(status.stdout)
        assert view["status"] == "succeeded", status.stdout + status.stderr
        assert view["jobs"]["long"]["outputs"]["done"] == "yes"
        assert ran.read_text() == "started\n"       # never sent again
        assert len(agent.jobs()) == 1
        wait_for(lambda: agent.jobs()[0][2] == 1, "the result to be acknowledged")
    finally:
        server.terminate()
        server.wait(timeout=10)
