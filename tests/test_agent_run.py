"""`jaz run` with jobs on agent hosts: real agents on loopback ports with real TLS, a
real `jaz run` process. Faults: kill -9 of the agent mid-job and after the job ended,
a changed certificate, an unknown host, operator stop, timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from agent_support import Agent, jaz
from support import wait_for


@pytest.fixture
def agent(tmp_path: Path):
    a = Agent(tmp_path / "agent").start()
    yield a
    a.stop()


def _net(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "net.toml"
    path.write_text(text)
    return path


def _hosts(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(entries))
    return path


def _popen_run(tmp_path: Path, net: Path, hosts: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, JAZ_HOME=str(tmp_path / "home"))
    return subprocess.Popen([sys.executable, "-m", "jaz", "run", str(net), "--hosts",
                             str(hosts), "--db", str(tmp_path / "r.db"), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is gone as far as the job goes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_jobs_run_on_the_agent_with_outputs_logs_and_exit_codes(agent: Agent, tmp_path: Path):
    net = _net(tmp_path, """
[jobs.one]
host = "a1"
run = '''
echo "hello from $JAZ_AGENT_JOB in $(pwd)"
echo to-stderr >&2
echo "rows=42" >> "$JAZ_OUTPUT"
'''
[jobs.two]
needs = ["one"]
host = "a1"
run = 'echo "rows were $rows"; exit 3'
""")
    hosts = _hosts(tmp_path, agent.hosts_entry("a1"))
    result = jaz("run", net, "--hosts", hosts, "--db", tmp_path / "r.db", "--json",
                 home=tmp_path / "home")
    assert result.returncode == 1, result.stderr
    view = json.loads(result.stdout)
    assert view["jobs"]["one"]["status"] == "succeeded"
    assert view["jobs"]["one"]["outputs"] == {"rows": "42"}
    assert view["jobs"]["one"]["host"] == "a1"
    assert (view["jobs"]["two"]["status"], view["jobs"]["two"]["exit_code"]) == ("failed", 3)
    logs = jaz("logs", view["run_id"], "one", "--db", tmp_path / "r.db",
               home=tmp_path / "home")
    assert f"in {agent.folder / 'work'}" in logs.stdout and "to-stderr" in logs.stdout
    two = jaz("logs", view["run_id"], "two", "--db", tmp_path / "r.db", home=tmp_path / "home")
    assert "rows were 42" in two.stdout
    assert all(row[1:3] == ("ended", 1) for row in agent.jobs())   # every result taken


def test_kill_9_of_the_agent_mid_job_neither_kills_the_job_nor_loses_its_result(
        agent: Agent, tmp_path: Path):
    go, ran = tmp_path / "go", tmp_path / "ran"
    net = _net(tmp_path, f"""
[jobs.long]
host = "a1"
run = '''
echo started >> {ran}
while [ ! -e {go} ]; do sleep 0.05; done
echo "done=yes" >> "$JAZ_OUTPUT"
echo finished
'''
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
    wait_for(ran.exists, "the job to start on the agent")
    agent.kill(signal.SIGKILL)
    agent.start()                       # a new agent process finds the job again
    wait_for(lambda: "still running (pid" in agent.log.read_text(),
             "the new agent to find the job running")
    go.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    view = json.loads(out)
    assert view["jobs"]["long"]["outputs"] == {"done": "yes"}
    assert ran.read_text() == "started\n"          # it ran once, and was never started again
    [row] = agent.jobs()
    assert row[1:3] == ("ended", 1), (err, agent.log.read_text())


def test_a_job_that_ends_while_the_agent_is_down_reports_once_it_is_back(agent: Agent,
                                                                         tmp_path: Path):
    go, ended, began = tmp_path / "go", tmp_path / "ended", tmp_path / "began"
    net = _net(tmp_path, f"""
[jobs.quick]
host = "a1"
run = 'touch {began}; while [ ! -e {go} ]; do sleep 0.05; done; echo x >> {ended}; exit 4'
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
    wait_for(began.exists, "the job to run")
    agent.kill(signal.SIGKILL)
    go.touch()
    wait_for(ended.exists, "the job to end while its agent is down")
    agent.start()
    out, err = proc.communicate(timeout=60)
    view = json.loads(out)
    assert (view["jobs"]["quick"]["status"], view["jobs"]["quick"]["exit_code"]) == \
        ("failed", 4), err
    assert ended.read_text() == "x\n"


def test_a_changed_certificate_fails_the_job_and_nothing_is_sent(agent: Agent, tmp_path: Path):
    marker = tmp_path / "ran"
    net = _net(tmp_path, f'[jobs.j]\nhost = "a1"\nrun = "touch {marker}"\n')
    hosts = _hosts(tmp_path, agent.hosts_entry("a1", fingerprint="SHA256:" + "ab" * 32))
    result = jaz("run", net, "--hosts", hosts, "--db", tmp_path / "r.db", "--json",
                 home=tmp_path / "home")
    assert result.returncode == 1
    view = json.loads(result.stdout)
    assert view["jobs"]["j"]["status"] == "failed"
    assert agent.jobs() == [] and not marker.exists()
    shown = jaz("status", view["run_id"], "--db", tmp_path / "r.db", home=tmp_path / "home")
    assert "CHANGED" in shown.stdout, shown.stdout


def test_a_host_not_in_the_hosts_file_is_refused_before_anything_runs(agent: Agent,
                                                                      tmp_path: Path):
    net = _net(tmp_path, '[jobs.j]\nhost = "web9"\nrun = "true"\n')
    hosts = _hosts(tmp_path, agent.hosts_entry("a1"))
    result = jaz("run", net, "--hosts", hosts, home=tmp_path / "home")
    assert result.returncode == 2
    assert 'host "web9" is not in the hosts file (hosts known: a1)' in result.stderr
    bad = _hosts(tmp_path, '[hosts.a1]\nagent = "nowhere"\n')
    result = jaz("run", net, "--hosts", bad, home=tmp_path / "home")
    assert result.returncode == 2 and f"{bad}:2" in result.stderr \
        and "bad agent address" in result.stderr


def test_an_operator_stop_kills_the_jobs_process_group_on_the_agent(agent: Agent,
                                                                    tmp_path: Path):
    pids = tmp_path / "pids"
    net = _net(tmp_path, f"""
[jobs.sleepy]
host = "a1"
run = 'sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; mv {pids}.tmp {pids}; wait'
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
    wait_for(pids.exists, "the job to start")
    started = [int(p) for p in pids.read_text().split()]
    proc.send_signal(signal.SIGINT)                 # the operator's Ctrl-C
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert json.loads(out)["jobs"]["sleepy"]["status"] == "stopped"
    wait_for(lambda: not any(_alive(p) for p in started), "the job's processes to die")


def test_a_timeout_stops_the_remote_job(agent: Agent, tmp_path: Path):
    pid = tmp_path / "pid"
    net = _net(tmp_path, f"""
[jobs.slow]
host = "a1"
timeout = "1s"
run = 'echo $$ > {pid}; sleep 300'
""")
    result = jaz("run", net, "--hosts", _hosts(tmp_path, agent.hosts_entry("a1")), "--db",
                 tmp_path / "r.db", "--json", home=tmp_path / "home")
    view = json.loads(result.stdout)
    assert view["jobs"]["slow"]["timed_out"] is True
    assert view["jobs"]["slow"]["status"] in ("failed", "stopped")
    wait_for(lambda: not _alive(int(pid.read_text())), "the timed-out job to die")


def test_jobs_on_two_agents_run_side_by_side(tmp_path: Path):
    a1 = Agent(tmp_path / "a1").start()
    a2 = Agent(tmp_path / "a2").start()
    try:
        net = _net(tmp_path, """
[jobs.x]
host = "a1"
run = 'echo "where=$JAZ_AGENT_JOB" >> "$JAZ_OUTPUT"'
[jobs.y]
host = "a2"
run = 'echo "where=$JAZ_AGENT_JOB" >> "$JAZ_OUTPUT"'
""")
        hosts = _hosts(tmp_path, a1.hosts_entry("a1"), a2.hosts_entry("a2"))
        result = jaz("run", net, "--hosts", hosts, "--db", tmp_path / "r.db", "--json",
                     home=tmp_path / "home")
        assert result.returncode == 0, result.stderr
        jobs = json.loads(result.stdout)["jobs"]
        assert [r[0] for r in a1.jobs()] == [jobs["x"]["outputs"]["where"]]
        assert [r[0] for r in a2.jobs()] == [jobs["y"]["outputs"]["where"]]
    finally:
        a1.stop()
        a2.stop()


def test_user_switching_only_when_the_agent_runs_as_root(tmp_path: Path):
    import shutil
    import tempfile

    # the job's folder must be reachable for the user: not under pytest's 0700 folders
    work = Path(tempfile.mkdtemp(prefix="jaz-agent-work-"))
    work.chmod(0o755)
    agent = Agent(tmp_path / "agent")
    agent.config.write_text(agent.config.read_text().replace('work_dir = "work"',
                                                             f'work_dir = "{work}"'))
    agent.start()
    try:
        _user_job(agent, tmp_path)
    finally:
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)


def _user_job(agent: Agent, tmp_path: Path) -> None:
    net = _net(tmp_path, """
[jobs.as_nobody]
host = "a1"
user = "nobody"
cwd = "/"
run = 'echo "uid=$(id -u)" >> "$JAZ_OUTPUT"'
""")
    result = jaz("run", net, "--hosts", _hosts(tmp_path, agent.hosts_entry("a1")), "--db",
                 tmp_path / "r.db", "--json", home=tmp_path / "home")
    job = json.loads(result.stdout)["jobs"]["as_nobody"]
    import pwd

    if os.geteuid() == 0:   # the agent runs as root with allow_root = true here
        assert result.returncode == 0, jaz("status", json.loads(result.stdout)["run_id"],
                                           "--db", tmp_path / "r.db",
                                           home=tmp_path / "home").stdout
        assert job["outputs"] == {"uid": str(pwd.getpwnam("nobody").pw_uid)}
    else:
        assert job["status"] == "failed"
        shown = jaz("status", json.loads(result.stdout)["run_id"], "--db", tmp_path / "r.db",
                    home=tmp_path / "home")
        assert "jaz is not running as root" in shown.stdout


def test_a_large_output_is_kept_whole_and_mirrored_in_chunks(agent: Agent, tmp_path: Path):
    size = 64 * 2**20
    net = _net(tmp_path, f"""
[jobs.big]
host = "a1"
run = 'head -c {size} /dev/zero | tr "\\\\0" x; echo; echo "done=1" >> "$JAZ_OUTPUT"'
""")
    env = dict(os.environ, JAZ_HOME=str(tmp_path / "home"))
    # `jaz run` is started by a small Python that reports its peak RSS: a process started
    # from this (large) test worker inherits the worker's high-water mark through vfork
    peak = tmp_path / "peak"
    measure = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); "
               "_, st, ru = os.wait4(p.pid, 0); open(sys.argv[1], 'w').write(str(ru.ru_maxrss)); "
               "sys.exit(os.waitstatus_to_exitcode(st))")
    done = subprocess.run([sys.executable, "-c", measure, str(peak), sys.executable, "-m",
                           "jaz", "run", str(net), "--hosts",
                           str(_hosts(tmp_path, agent.hosts_entry("a1"))), "--db",
                           str(tmp_path / "r.db"), "--json"], env=env, capture_output=True,
                          timeout=120)
    view = json.loads(done.stdout)
    assert view["jobs"]["big"]["outputs"] == {"done": "1"}
    [log] = (tmp_path / "r.logs").glob("*/big.1.out")
    assert log.stat().st_size == size + 1
    assert int(peak.read_text()) < 150 * 1024   # KiB: streamed in chunks, not held in memory


def test_a_job_killed_while_its_agent_is_down_is_reported_and_never_started_again(
        agent: Agent, tmp_path: Path):
    pid, ran = tmp_path / "pid", tmp_path / "ran"
    net = _net(tmp_path, f"""
[jobs.victim]
host = "a1"
run = 'echo x >> {ran}; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; sleep 300'
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
    wait_for(pid.exists, "the job to start")
    agent.kill(signal.SIGKILL)
    os.killpg(int(pid.read_text()), signal.SIGKILL)   # it dies with nobody watching
    wait_for(lambda: not _alive(int(pid.read_text())), "the job to be gone")
    agent.start()
    out, err = proc.communicate(timeout=60)
    job = json.loads(out)["jobs"]["victim"]
    assert job["status"] == "failed", err
    assert ran.read_text() == "x\n"
    shown = jaz("status", json.loads(out)["run_id"], "--db", tmp_path / "r.db",
                home=tmp_path / "home")
    assert "without an exit status" in shown.stdout


def test_wait_file_on_an_agent_host_waits_there(agent: Agent, tmp_path: Path):
    drop = tmp_path / "drop zone"
    drop.mkdir()
    net = _net(tmp_path, f"""
[jobs.wait]
wait_file = {{ path = "{drop}/in *.csv", host = "a1", delete = true, interval = "1" }}
[jobs.after]
needs = ["wait"]
run = 'echo "got $FILE"'
[jobs.missing]
wait_file = {{ path = "nothing-here", host = "a1", check = true }}
[jobs.late]
wait_file = {{ path = "never", host = "a1", timeout = "1s", interval = "1" }}
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
    wait_for(lambda: len(agent.jobs()) >= 3, "the waits to reach the agent")
    (drop / "in 1.csv").write_text("x")
    out, err = proc.communicate(timeout=60)
    jobs = json.loads(out)["jobs"]
    assert jobs["wait"]["status"] == "succeeded", err
    assert jobs["wait"]["outputs"] == {"FILE": f"{drop}/in 1.csv"}
    assert not (drop / "in 1.csv").exists()           # delete = true
    assert jobs["after"]["status"] == "succeeded"
    assert (jobs["missing"]["status"], jobs["late"]["status"]) == ("failed", "failed")


def test_fan_out_runs_one_instance_per_host_and_succeeds_only_if_all_do(tmp_path: Path):
    agents = [Agent(tmp_path / f"a{i}").start() for i in range(3)]
    try:
        hosts = _hosts(tmp_path, agents[0].hosts_entry("web1", labels='labels = ["web"]'),
                       agents[1].hosts_entry("web2", labels='labels = ["web"]'),
                       agents[2].hosts_entry("db1", labels='labels = ["db"]'))
        net = _net(tmp_path, """
[jobs.deploy]
hosts = ["label:web", "db1"]
run = '''
echo "deployed on $JAZ_AGENT_JOB"
echo "version=7" >> "$JAZ_OUTPUT"
echo "me=$JAZ_AGENT_JOB" >> "$JAZ_OUTPUT"
'''
[jobs.after]
needs = ["deploy"]
run = 'echo "version $version"'
[jobs.check]
needs = ["after"]
hosts = ["label:web"]
run = 'case "$JAZ_AGENT_JOB" in *web2*) exit 5;; esac'
""")
        result = jaz("run", net, "--hosts", hosts, "--db", tmp_path / "r.db", "--json",
                     home=tmp_path / "home")
        assert result.returncode == 1
        jobs = json.loads(result.stdout)["jobs"]
        deploy = jobs["deploy"]
        assert deploy["status"] == "succeeded"
        assert {h: deploy["outputs"][f"{h}.status"] for h in ("web1", "web2", "db1")} == \
            {"web1": "succeeded", "web2": "succeeded", "db1": "succeeded"}
        assert deploy["outputs"]["version"] == "7"          # the same on every host
        assert "me" not in deploy["outputs"]                # not the same: per host only
        for i, name in enumerate(("web1", "web2", "db1")):
            [row] = [r for r in agents[i].jobs() if ".deploy." in r[0]]
            assert deploy["outputs"][f"{name}.me"] == row[0]
        assert jobs["after"]["status"] == "succeeded"
        check = jobs["check"]
        assert (check["status"], check["exit_code"]) == ("failed", 5)
        assert check["outputs"]["web1.status"] == "succeeded"
        assert (check["outputs"]["web2.status"], check["outputs"]["web2.exit_code"]) == \
            ("failed", "5")
        logs = jaz("logs", json.loads(result.stdout)["run_id"], "deploy", "--db",
                   tmp_path / "r.db", home=tmp_path / "home")
        assert "==> web1: exit 0 <==" in logs.stdout and "==> db1: exit 0 <==" in logs.stdout
    finally:
        for a in agents:
            a.stop()


def test_fan_out_to_an_unknown_label_is_refused_before_anything_runs(agent: Agent,
                                                                     tmp_path: Path):
    net = _net(tmp_path, '[jobs.j]\nhosts = ["label:nope"]\nrun = "true"\n')
    result = jaz("run", net, "--hosts", _hosts(tmp_path, agent.hosts_entry("a1")),
                 home=tmp_path / "home")
    assert result.returncode == 2
    assert 'no host in the hosts file has the label "nope"' in result.stderr
    assert agent.jobs() == []


def test_reboot_waits_for_running_jobs_runs_the_agents_command_and_waits_for_it(
        tmp_path: Path):
    marker, go, began = tmp_path / "rebooted", tmp_path / "go", tmp_path / "began"
    # the harmless "reboot": note it, and end the agent (the test starts it again)
    agent = Agent(tmp_path / "agent")
    agent.config.write_text(agent.config.read_text().replace(
        'reboot_command = "systemctl reboot"',
        f'reboot_command = \'echo rebooted >> {marker}; kill -TERM "$JAZ_AGENT_PID"\''))
    agent.start()
    try:
        net = _net(tmp_path, f"""
[jobs.busy]
host = "a1"
run = 'touch {began}; while [ ! -e {go} ]; do sleep 0.05; done'
[jobs.boot]
reboot = {{ host = "a1", mode = "normal", wait = "60s" }}
[jobs.after]
needs = ["boot"]
host = "a1"
run = 'echo back'
""")
        proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
        wait_for(lambda: began.exists() and len(agent.jobs()) == 2,
                 "the busy job to run and the reboot to reach the agent")
        assert not marker.exists()            # "normal": it waits for the busy job
        go.touch()
        assert agent.proc is not None
        agent.proc.wait(timeout=30)           # the reboot command ended the agent
        agent.proc = None
        agent.start()                         # ... and the machine "came back"
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        jobs = json.loads(out)["jobs"]
        assert [jobs[n]["status"] for n in ("busy", "boot", "after")] == ["succeeded"] * 3
        assert marker.read_text() == "rebooted\n"
    finally:
        agent.stop()


def test_transfer_between_two_agents_and_here_checksummed_with_any_name(tmp_path: Path):
    import hashlib

    a1 = Agent(tmp_path / "a1").start()
    a2 = Agent(tmp_path / "a2").start()
    try:
        src = tmp_path / "src"
        src.mkdir()
        big = os.urandom(3 * 2**20 + 123)               # several chunks, not a multiple
        (src / "données été.bin").write_bytes(big)
        (src / "b.csv").write_text("x,y\n")
        (src / "c.csv").write_text("")                  # empty files too
        out = tmp_path / "out"
        back = tmp_path / "back"
        net = _net(tmp_path, f"""
[jobs.there]
transfer = {{ from = "a1:{src}/données été.bin", to = "a2:{out}/" }}
[jobs.many]
transfer = {{ from = "a1:{src}/*.csv", to = "a2:{out}/csv/" }}
[jobs.home]
needs = ["there"]
transfer = {{ from = "a2:{out}/données été.bin", to = "{back}/copy.bin" }}
[jobs.again]
needs = ["many"]
transfer = {{ from = "a1:{src}/b.csv", to = "a2:{out}/csv/b.csv" }}
""")
        result = jaz("run", net, "--hosts", _hosts(tmp_path, a1.hosts_entry("a1"),
                                                   a2.hosts_entry("a2")),
                     "--db", tmp_path / "r.db", "--json", home=tmp_path / "home")
        jobs = json.loads(result.stdout)["jobs"]
        assert jobs["there"]["status"] == "succeeded", result.stderr
        assert (out / "données été.bin").read_bytes() == big
        assert (back / "copy.bin").read_bytes() == big
        assert jobs["many"]["outputs"] == {"FILES": "2"}
        assert (out / "csv" / "b.csv").read_text() == "x,y\n"
        assert (out / "csv" / "c.csv").read_text() == ""
        assert jobs["again"]["status"] == "failed"      # exists, and overwrite is false
        assert not list(out.rglob(".*jaz-part-*"))      # no part file left behind
        logs = jaz("logs", json.loads(result.stdout)["run_id"], "there", "--db",
                   tmp_path / "r.db", home=tmp_path / "home")
        assert hashlib.sha256(big).hexdigest() in logs.stdout
    finally:
        a1.stop()
        a2.stop()


def test_a_host_away_past_offline_after_fails_its_job_naming_the_host(agent: Agent,
                                                                      tmp_path: Path):
    from support import free_port

    nowhere = f"127.0.0.1:{free_port()}"   # nothing listens there
    hosts = _hosts(tmp_path, agent.hosts_entry("gone").replace(agent.address, nowhere)
                   + 'offline_after = "1s"\n')
    net = _net(tmp_path, '[jobs.j]\nhost = "gone"\nrun = "true"\n')
    result = jaz("run", net, "--hosts", hosts, "--db", tmp_path / "r.db", "--json",
                 home=tmp_path / "home")
    assert result.returncode == 1
    from jaz.engine.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "r.db")
    message = store.get_job(json.loads(result.stdout)["run_id"], "j").message
    store.close()
    assert "host 'gone' unreachable for more than 1" in message
    assert "the job was not sent" in message and "cannot reach the agent" in message


def test_a_stop_runs_the_jobs_stop_command_on_the_agent(agent: Agent, tmp_path: Path):
    began, stopped = tmp_path / "began", tmp_path / "stopped"
    net = _net(tmp_path, f"""
[jobs.svc]
host = "a1"
stop_command = 'echo "$JAZ_PID" > {stopped}; kill "$JAZ_PID"'
run = 'touch {began}; sleep 300'
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))
    wait_for(began.exists, "the job to start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert json.loads(out)["jobs"]["svc"]["status"] == "stopped", err
    assert stopped.read_text().strip().isdigit()     # the stop_command ran, on the agent


def test_secrets_echoed_on_the_agent_never_come_back(agent: Agent, tmp_path: Path):
    net = _net(tmp_path, """
[jobs.leaky]
host = "a1"
env = { TOKEN = { secret = "api" } }
run = '''
echo "token is $TOKEN"
echo "also $TOKEN" >&2
echo "t=$TOKEN" >> "$JAZ_OUTPUT"
'''
""")
    env = dict(os.environ, JAZ_HOME=str(tmp_path / "home"), JAZ_SECRET_API="s3cr3t-value")
    result = subprocess.run([sys.executable, "-m", "jaz", "run", str(net), "--hosts",
                             str(_hosts(tmp_path, agent.hosts_entry("a1"))), "--db",
                             str(tmp_path / "r.db"), "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    view = json.loads(result.stdout)
    assert view["jobs"]["leaky"]["outputs"] == {"t": "***"}, result.stderr
    logs = jaz("logs", view["run_id"], "leaky", "--db", tmp_path / "r.db",
               home=tmp_path / "home")
    assert "token is ***" in logs.stdout and "also ***" in logs.stdout
    assert "s3cr3t-value" not in logs.stdout
    for log in (tmp_path / "r.logs").rglob("*"):
        if log.is_file():
            assert b"s3cr3t-value" not in log.read_bytes()


def test_a_running_remote_jobs_output_is_followed_live(agent: Agent, tmp_path: Path):
    go = tmp_path / "go"
    net = _net(tmp_path, f"""
[jobs.chatty]
host = "a1"
run = 'echo first-line; while [ ! -e {go} ]; do sleep 0.05; done; echo last-line'
""")
    proc = _popen_run(tmp_path, net, _hosts(tmp_path, agent.hosts_entry("a1")))

    def mirrored() -> bool:
        logs = list((tmp_path / "r.logs").glob("*/chatty.1.out"))
        return bool(logs) and logs[0].read_text() == "first-line\n"

    wait_for(mirrored, "the first line in the local log while the job runs")
    go.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    [log] = (tmp_path / "r.logs").glob("*/chatty.1.out")
    assert log.read_text() == "first-line\nlast-line\n"
