"""Unmodified JAZ v3 agents as hosts (`jaz_agent = "addr:port"`), against a fake agent that
replays the recorded real one (jaz_fake.py, checked against the record first), with a
real `jaz run` process or a real `jaz server`: jobs, output, exit codes, kill, an agent
that is down, a dropped result, malformed frames, an address not allowed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_support import jaz
from jaz_fake import HEADER, FakeJazAgent, children
from support import free_port, wait_for

RECORD = Path("/work/shared/jaz-agent/transcript.jsonl")


@pytest.fixture
def listen_port() -> int:
    return free_port()


@pytest.fixture
def fake(listen_port: int):
    agent = FakeJazAgent(server_port=listen_port, retry_every=0.2)
    yield agent
    agent.close()


def _hosts(tmp_path: Path, listen_port: int, *entries: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(f'jaz_listen = "127.0.0.1:{listen_port}"\n' + "\n".join(entries))
    return path


def _entry(name: str, address: str, extra: str = "") -> str:
    return f'[hosts.{name}]\njaz_agent = "{address}"\nhostname = "jaztest"\n{extra}\n'


def _net(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "net.toml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, net: Path, hosts: Path, timeout: float = 60
         ) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = jaz("run", net, "--hosts", hosts, "--db", tmp_path / "r.db", "--json",
                 home=tmp_path / "home", timeout=timeout)
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


def _popen(tmp_path: Path, net: Path, hosts: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(tmp_path / "home")
    return subprocess.Popen([sys.executable, "-m", "jaz", "run", str(net), "--hosts",
                             str(hosts), "--db", str(tmp_path / "r.db"), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _message(tmp_path: Path, run_id: int, job: str) -> str:
    from jaz.engine.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "r.db")
    try:
        return store.get_job(run_id, job).message
    finally:
        store.close()


def _log(tmp_path: Path, run_id: int, job: str, stream: str = "out") -> str:
    files = list((tmp_path / "r.logs" / str(run_id)).glob(f"{job}.*.{stream}"))
    assert files, list((tmp_path / "r.logs").rglob("*"))
    return files[0].read_text()


def _errored(view: dict, job: str) -> bool:
    """A job that ended without an exit code (an error, with its message), halting the run
    in error."""
    j = view["jobs"][job]
    return j["status"] == "failed" and j["exit_code"] is None and view["status"] == "error"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# ------------------------------------------------------------ the fake is the record

def _exchange(address: tuple[str, int], body: str, *, framed: bool, source: str | None
              ) -> dict | None:
    with socket.create_connection(address, timeout=5,
                                  source_address=(source, 0) if source else None) as s:
        data = body.encode()
        s.sendall(HEADER.pack(b"ZBXD\x01", len(data)) + data if framed else data)
        if not framed:
            s.shutdown(socket.SHUT_WR)
        head = b""
        while len(head) < 13:
            try:
                chunk = s.recv(13 - len(head))
            except ConnectionResetError:   # closed unread (an address not in Server=)
                return None
            if not chunk:
                return None
            head += chunk
        _, size = HEADER.unpack(head)
        reply = b""
        while len(reply) < size:
            reply += s.recv(size - len(reply))
        return json.loads(reply)


@pytest.mark.skipif(not RECORD.exists(), reason="the recorded transcript is not here")
def test_the_fake_agent_answers_every_recorded_request_as_the_real_one_did(listen_port: int):
    """Replays each request of the record to the fake and compares the answers and the
    results it sends; so the other tests' partner is the recorded agent."""
    events = [json.loads(line) for line in RECORD.read_text().splitlines()]
    results: list[dict] = []
    import threading

    server = socket.create_server(("127.0.0.1", listen_port))

    def collect() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(13, socket.MSG_WAITALL)
                _, size = HEADER.unpack(head)
                results.append(json.loads(conn.recv(size, socket.MSG_WAITALL)))
                reply = json.dumps({"kind": "response", "version": 1,
                                    "data": {"result": 0}}).encode()
                conn.sendall(HEADER.pack(b"ZBXD\x01", len(reply)) + reply)

    threading.Thread(target=collect, daemon=True).start()
    fake = FakeJazAgent(server_port=listen_port, retry_every=0.1)
    try:
        pending: dict | None = None
        compared = 0
        for event in events:
            if event["event"] == "server->agent(jobrun)":
                pending = event
            elif event["event"] == "agent->server(reply)" and pending is not None:
                if '"method": 3' in pending["body"]:   # kill once the job's command runs
                    job = fake.jobs.get(json.loads(pending["body"])["data"]["jobid"])
                    if job is not None and job.proc is not None:
                        pid = job.proc.pid
                        wait_for(lambda: children(pid), "the job's command")  # noqa: B023
                got = _exchange(("127.0.0.1", fake.port), pending["body"],
                                framed=pending["framed"], source=pending["source_ip"])
                assert got == event.get("json"), pending["body"]
                compared += 1
                pending = None
        assert compared == 20
        wanted = [e["json"] for e in events if e["event"] == "server<-agent"]
        wait_for(lambda: len(results) >= len(wanted), "the fake's results")
        key = lambda r: r["data"]["jobid"]   # noqa: E731
        assert sorted(results, key=key) == sorted(wanted, key=key)
    finally:
        fake.close()
        server.close()


# ------------------------------------------------------------ jobs from `jaz run`

def test_jobs_run_on_a_jaz_agent_with_output_env_and_exit_codes(fake: FakeJazAgent,
                                                                tmp_path: Path,
                                                                listen_port: int):
    net = _net(tmp_path, r"""
[jobs.one]
host = "legacy"
env = { FOO = "bar baz" }
run = '''printf '%s\n' '中 "q" \"x'; echo "FOO=$FOO"; echo err >&2; exit 3'''

[jobs.two]
host = "legacy"
cwd = "/tmp"
run = "pwd"
""")
    hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
    result, view = _run(tmp_path, net, hosts)
    jobs = view["jobs"]
    assert jobs["one"]["status"] == "failed" and jobs["one"]["exit_code"] == 3
    assert jobs["one"]["host"] == "legacy"
    assert jobs["two"]["status"] == "succeeded" and jobs["two"]["exit_code"] == 0
    out = _log(tmp_path, view["run_id"], "one")
    assert out == '中 "q" \\"x\nFOO=bar baz\n'   # quotes and backslashes as the job wrote them
    assert _log(tmp_path, view["run_id"], "one", "err") == "err\n"
    assert _log(tmp_path, view["run_id"], "two") == "/tmp\n"
    assert len(fake.started) == 2
    sent = [r["data"] for r in fake.log]
    assert all(d["jobid"].isdigit() for d in sent)    # JAZ job ids are numbers
    assert {r["hostname"] for r in fake.log} == {"jaztest"}
    assert not _listening(listen_port)                 # `jaz run` closed its listener


def test_a_timeout_kills_the_job_on_the_jaz_agent_with_method_3(fake: FakeJazAgent,
                                                                 tmp_path: Path,
                                                                 listen_port: int):
    net = _net(tmp_path, '[jobs.slow]\nhost = "legacy"\ntimeout = "1s"\n'
                         'run = "echo started; sleep 60; echo never"\n')
    hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
    t0 = time.monotonic()
    result, view = _run(tmp_path, net, hosts)
    assert time.monotonic() - t0 < 30
    job = view["jobs"]["slow"]
    assert job["status"] in ("failed", "stopped") and job["timed_out"]
    kills = [r for r in fake.log if r["data"]["method"] == 3]
    assert len(kills) == 1
    assert _log(tmp_path, view["run_id"], "slow") == "started\n"


def test_an_agent_that_is_down_gets_the_job_once_it_is_back(tmp_path: Path, listen_port: int):
    port = free_port()
    net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "echo back"\n')
    hosts = _hosts(tmp_path, listen_port, _entry("legacy", f"127.0.0.1:{port}"))
    proc = _popen(tmp_path, net, hosts)
    fake = None
    try:
        wait_for(lambda: _listening(listen_port), "jaz run's JAZ listener")
        time.sleep(0.5)   # (jaz run keeps trying an agent that is away; let it fail a few)
        fake = FakeJazAgent(server_port=listen_port, port=port)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        if fake is not None:
            fake.close()
    view = json.loads(out)
    assert view["jobs"]["j"]["status"] == "succeeded", err
    assert fake.started and len(fake.started) == 1


def test_an_agent_away_past_offline_after_fails_the_job_naming_the_host(tmp_path: Path,
                                                                         listen_port: int):
    hosts = _hosts(tmp_path, listen_port, _entry("gone", f"127.0.0.1:{free_port()}",
                                                  'offline_after = "1s"'))
    net = _net(tmp_path, '[jobs.j]\nhost = "gone"\nrun = "true"\n')
    result, view = _run(tmp_path, net, hosts)
    assert result.returncode == 1
    message = _message(tmp_path, view["run_id"], "j")
    assert "host 'gone' (JAZ agent) unreachable for more than 1" in message
    assert "the job was not sent" in message


def test_a_dropped_result_ends_the_job_in_error_and_it_is_not_rerun(tmp_path: Path,
                                                                     listen_port: int):
    fake = FakeJazAgent(server_port=listen_port, drop_results=True, send_retry=2,
                        retry_every=0.1)
    try:
        hosts = _hosts(tmp_path, listen_port,
                       _entry("legacy", fake.address, 'check_every = "0.3s"'))
        net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "echo ran"\n')
        t0 = time.monotonic()
        result, view = _run(tmp_path, net, hosts)
        assert time.monotonic() - t0 < 20
    finally:
        fake.close()
    assert _errored(view, "j")
    message = _message(tmp_path, view["run_id"], "j")
    assert "the JAZ agent on host 'legacy' lost this job's result" in message
    assert "rerun" in message
    assert set(fake.dropped) == {fake.started[0]}   # (and the look's own, method 1)
    assert len(fake.started) == 1        # looked for with method 1, never sent to run again
    assert all(r["data"]["method"] in (0, 1) for r in fake.log)


def test_malformed_frames_and_strangers_are_refused_and_the_listener_stays_up(
        fake: FakeJazAgent, tmp_path: Path, listen_port: int):
    net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "sleep 1.5; echo done"\n')
    hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
    proc = _popen(tmp_path, net, hosts)
    try:
        wait_for(lambda: fake.started, "the job to start on the agent")
        jobid = fake.started[0]
        forged = json.dumps({"kind": "jobresult", "version": 1, "data": {
            "jobid": jobid, "method": 0, "result": 0, "std_out": "forged", "std_err": "",
            "return_code": 0, "signal": 0}}).encode()

        def answer(payload: bytes, source: str = "127.0.0.1") -> bytes:
            with socket.create_connection(("127.0.0.1", listen_port), timeout=5,
                                          source_address=(source, 0)) as s:
                try:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    return s.recv(100)
                except OSError:   # reset, broken pipe, not connected: closed unread
                    return b""

        # from an address that is no configured JAZ agent's: closed, nothing read
        assert answer(HEADER.pack(b"ZBXD\x01", len(forged)) + forged, "127.0.0.2") == b""
        for bad in (b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n\r\n",    # not the API
                    b"ZBXD\x01" + (2**40).to_bytes(8, "little"),       # huge
                    HEADER.pack(b"ZBXD\x01", 50) + b"{cut",             # cut short
                    HEADER.pack(b"ZBXD\x01", 9) + b"{not json",
                    HEADER.pack(b"ZBXD\x01", 2) + b"[]",
                    HEADER.pack(b"ZBXD\x01", 40) + b'{"kind":"jobrun","data":{"jobid":1}}  ',
                    b"\xff" * 13):
            assert answer(bad) == b"", bad
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    view = json.loads(out)
    assert view["jobs"]["j"]["status"] == "succeeded"
    assert _log(tmp_path, view["run_id"], "j") == "done\n"   # the real result, not the forged
    assert "refused" in err and "not a configured JAZ agent" in err
    assert len(fake.started) == 1


def test_results_from_an_address_not_allowed_are_not_taken(tmp_path: Path, listen_port: int):
    fake = FakeJazAgent(server_port=listen_port, source_ip="127.0.0.2", send_retry=2,
                        retry_every=0.1)
    try:
        hosts = _hosts(tmp_path, listen_port,
                       _entry("legacy", fake.address, 'check_every = "0.3s"'))
        net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "echo hi"\n')
        result, view = _run(tmp_path, net, hosts)
    finally:
        fake.close()
    assert _errored(view, "j")
    assert "lost this job's result" in _message(tmp_path, view["run_id"], "j")
    assert "refused a connection from 127.0.0.2" in result.stderr
    assert fake.sent == []


def test_a_refusing_agent_fails_the_job_with_its_message(fake: FakeJazAgent, tmp_path: Path,
                                                         listen_port: int):
    hosts = _hosts(tmp_path, listen_port,
                   f'[hosts.legacy]\njaz_agent = "{fake.address}"\n')   # Hostname differs
    net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "true"\n')
    result, view = _run(tmp_path, net, hosts)
    assert _errored(view, "j")
    message = _message(tmp_path, view["run_id"], "j")
    assert "refused the job: hostname 'legacy' does not match Hostname" in message
    assert 'hostname = "..."' in message
    assert fake.started == []


def test_jaz_agent_hosts_in_the_hosts_file_are_checked(tmp_path: Path):
    net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "true"\n')
    hosts = tmp_path / "hosts.toml"
    hosts.write_text('jaz_listen = "nowhere"\n[hosts.legacy]\njaz_agent = "x:1"\n'
                     'fingerprint = "SHA256:00"\n[hosts.both]\njaz_agent = "x:1"\n'
                     'agent = "x:2"\n[hosts.bad]\njaz_agent = "x"\n')
    result = jaz("run", net, "--hosts", hosts, home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "bad jaz_listen address" in err
    assert "'fingerprint' does not apply to a JAZ agent" in err
    assert "found agent and jaz_agent" in err
    assert "bad agent address" in err and "hosts.bad.jaz_agent" in err
    assert "Traceback" not in err


def test_a_listen_port_in_use_is_a_clear_error(fake: FakeJazAgent, tmp_path: Path,
                                               listen_port: int):
    busy = socket.create_server(("127.0.0.1", listen_port))
    try:
        hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
        net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "true"\n')
        result, view = _run(tmp_path, net, hosts)
    finally:
        busy.close()
    assert _errored(view, "j")
    message = _message(tmp_path, view["run_id"], "j")
    assert f"cannot listen on 127.0.0.1:{listen_port} for JAZ agents' results" in message
    assert fake.started == []


def test_a_job_fans_out_to_jaz_agents_by_label(tmp_path: Path, listen_port: int):
    a = FakeJazAgent(server_port=listen_port, retry_every=0.2)
    b = FakeJazAgent(server_port=listen_port, retry_every=0.2, hostname="other")
    try:
        hosts = _hosts(tmp_path, listen_port,
                       _entry("one", a.address, 'labels = ["batch"]'),
                       f'[hosts.two]\njaz_agent = "{b.address}"\nhostname = "other"\n'
                       'labels = ["batch"]\n')
        net = _net(tmp_path, '[jobs.all]\nhosts = ["label:batch"]\n'
                             'run = "echo on $JAZ_JOB"\n')
        result, view = _run(tmp_path, net, hosts)
    finally:
        a.close()
        b.close()
    assert view["jobs"]["all"]["status"] == "succeeded", result.stderr
    outputs = view["jobs"]["all"]["outputs"]
    assert outputs["one.status"] == "succeeded" and outputs["two.status"] == "succeeded"
    assert len(a.started) == 1 and len(b.started) == 1


def test_jaz_hosts_trust_of_a_jaz_agent_says_it_has_no_certificate(tmp_path: Path):
    hosts = _hosts(tmp_path, 10062, _entry("legacy", "127.0.0.1:10055"))
    result = jaz("hosts", "trust", "legacy", "--hosts", hosts, home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "is a JAZ agent: its protocol is plaintext" in result.stderr


def test_jaz_run_resume_takes_a_jaz_agents_job_back_and_gets_its_result(tmp_path: Path,
                                                                          listen_port: int):
    """kill -9 of `jaz run` while its job runs on the agent: the agent keeps trying to send
    the result; `jaz run --resume` listens again, takes the job back and records it, once."""
    import signal

    fake = FakeJazAgent(server_port=listen_port, send_retry=200, retry_every=0.1)
    try:
        hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
        net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "sleep 0.5; echo finished"\n'
                             '[jobs.after]\nneeds = ["j"]\nrun = "echo after"\n')
        proc = _popen(tmp_path, net, hosts)
        try:
            wait_for(lambda: fake.started, "the job to start on the agent")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.communicate(timeout=10)
        wait_for(lambda: fake.jobs and all(j.proc is not None and j.proc.poll() is not None
                                           for j in fake.jobs.values()),
                 "the job to end on the agent (its result not delivered)")
        assert fake.sent == []
        result = jaz("run", "--resume", "1", "--hosts", hosts, "--db", tmp_path / "r.db",
                     "--json", home=tmp_path / "home")
    finally:
        fake.close()
    view = json.loads(result.stdout)
    assert view["status"] == "succeeded", result.stderr
    assert view["jobs"]["j"]["status"] == "succeeded"
    assert _log(tmp_path, 1, "j") == "finished\n"
    assert len(fake.started) == 1 and len(fake.sent) == 1


def test_an_agent_that_refuses_to_be_asked_about_a_job_does_not_hold_it_for_ever(
        fake: FakeJazAgent, tmp_path: Path, listen_port: int):
    hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address,
                                                 'check_every = "0.2s"\noffline_after = "1s"'))
    net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "sleep 30"\n')
    proc = _popen(tmp_path, net, hosts)
    try:
        wait_for(lambda: fake.started, "the job to start on the agent")
        fake.hostname = "renamed"   # its Hostname= changed: every look is refused now
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    view = json.loads(out)
    assert _errored(view, "j")
    message = _message(tmp_path, view["run_id"], "j")
    assert "has refused for more than 1" in message and "still runs this job" in message
    assert "does not match Hostname" in message


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_stop_while_the_agent_is_down_waits_for_it_and_then_kills(fake: FakeJazAgent,
                                                                     tmp_path: Path,
                                                                     listen_port: int):
    net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\ntimeout = "0.5s"\nrun = "sleep 30"\n')
    hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
    proc = _popen(tmp_path, net, hosts)
    try:
        wait_for(lambda: fake.started, "the job to start on the agent")
        fake.down()
        before = _cpu_seconds(proc.pid)
        time.sleep(2.0)   # a window to measure in: the timeout's kill finds the agent away
        assert _cpu_seconds(proc.pid) - before < 0.8   # retried with backoff, not spun
        assert not any(r["data"]["method"] == 3 for r in fake.log)
        fake.start()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    view = json.loads(out)
    assert view["jobs"]["j"]["timed_out"], err
    assert [r["data"]["method"] for r in fake.log if r["data"]["method"] == 3] == [3]


def test_result_addresses_allow_a_multi_homed_agents_results(tmp_path: Path,
                                                             listen_port: int):
    fake = FakeJazAgent(server_port=listen_port, source_ip="127.0.0.2", send_retry=20,
                        retry_every=0.1)
    try:
        hosts = _hosts(tmp_path, listen_port, _entry(
            "legacy", fake.address, 'result_addresses = ["127.0.0.2"]'))
        net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "echo from the other side"\n')
        result, view = _run(tmp_path, net, hosts)
    finally:
        fake.close()
    assert view["jobs"]["j"]["status"] == "succeeded", result.stderr
    assert _log(tmp_path, view["run_id"], "j") == "from the other side\n"


def test_the_listener_survives_random_frames_and_takes_the_real_result(fake: FakeJazAgent,
                                                                        tmp_path: Path,
                                                                        listen_port: int):
    """The executor in this process (as `jaz run` and `jaz server` make it), fuzzed: random
    bytes, random lengths, frames of random JSON (types the record never shows, results for
    jobs nobody sent) while a job runs; the listener stays up and the job's own result is
    the one recorded."""
    import random
    import threading

    from jaz.engine.executors.base import Attempt
    from jaz.engine.model import Job, RunAction
    from jaz.hosts.config import Host
    from jaz.hosts.jazagent import JazAgents

    host = Host(name="legacy", jaz_agent=fake.address, hostname="jaztest",
                jaz_listen=f"127.0.0.1:{listen_port}")
    agents = JazAgents({"legacy": host}, "test:owner")
    try:
        stem = tmp_path / "j.1"
        attempt = Attempt(run_id=1, jobnet="n", job=Job(name="j", action=RunAction(
            script="sleep 1; echo real; exit 4")), attempt=1, host="legacy", env={},
            cwd=tmp_path, base_dir=tmp_path, stdout_path=Path(f"{stem}.out"),
            stderr_path=Path(f"{stem}.err"), output_path=Path(f"{stem}.vars"))
        ended = threading.Event()
        execution = agents.start(attempt)
        execution.report(ended.set)
        wait_for(lambda: fake.started, "the job to start on the agent")
        rng = random.Random(21)
        values = [None, True, -1, 2**70, 1.5, "", "x" * 300, [], {}, [1, "a"], {"a": {}}]
        for i in range(300):
            kind = i % 4
            if kind == 0:
                payload = rng.randbytes(rng.randrange(1, 64))
            elif kind == 1:
                payload = HEADER.pack(b"ZBXD\x01", rng.randrange(0, 2**64)) + rng.randbytes(8)
            else:
                data = {k: rng.choice(values) for k in ("jobid", "method", "result",
                                                         "return_code", "signal", "std_out")}
                if kind == 3:
                    data["jobid"] = str(rng.randrange(10**15, 10**16))   # nobody's job
                body = json.dumps({"kind": rng.choice(["jobresult", "jobrun", 7, None]),
                                   "version": rng.choice(values), "data": data}).encode()
                payload = HEADER.pack(b"ZBXD\x01", len(body)) + body
            with socket.create_connection(("127.0.0.1", listen_port), timeout=5) as s:
                try:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    s.recv(64)
                except OSError:
                    pass
        assert ended.wait(20)
        outcome = execution.wait()
        assert (outcome.exit_code, outcome.error) == (4, "")
        assert Path(f"{stem}.out").read_text() == "real\n"
        assert agents.listener.malformed > 100
    finally:
        agents.close()


def test_resume_with_the_listen_port_taken_fails_the_job_saying_so(tmp_path: Path,
                                                                     listen_port: int):
    import signal

    fake = FakeJazAgent(server_port=listen_port, send_retry=200, retry_every=0.1)
    busy = None
    try:
        hosts = _hosts(tmp_path, listen_port, _entry("legacy", fake.address))
        net = _net(tmp_path, '[jobs.j]\nhost = "legacy"\nrun = "sleep 0.3"\n')
        proc = _popen(tmp_path, net, hosts)
        try:
            wait_for(lambda: fake.started, "the job to start on the agent")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.communicate(timeout=10)
        busy = socket.create_server(("127.0.0.1", listen_port))
        result = jaz("run", "--resume", "1", "--hosts", hosts, "--db", tmp_path / "r.db",
                     "--json", home=tmp_path / "home")
    finally:
        if busy is not None:
            busy.close()
        fake.close()
    assert "Traceback" not in result.stderr
    view = json.loads(result.stdout)
    assert _errored(view, "j")
    message = _message(tmp_path, 1, "j")
    assert f"cannot listen on 127.0.0.1:{listen_port} for JAZ agents' results" in message
    assert "the job may still run on host 'legacy'" in message
    assert len(fake.started) == 1
