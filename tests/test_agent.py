"""`jaz agent`: init, the allow-list, TLS and the pinned fingerprint, tokens, framing,
durable and idempotent jobs. Real agents as subprocesses on loopback ports."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
from pathlib import Path

import pytest
from agent_support import Agent, jaz
from support import wait_for

from jaz.errors import Refused, Unreachable
from jaz.hosts.client import AgentClient, FingerprintChanged
from jaz.hosts.config import Host

_OPEN: list = []   # clients and sockets of a test, closed after it


@pytest.fixture(autouse=True)
def _close_connections():
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def agent(tmp_path: Path):
    a = Agent(tmp_path / "agent").start()
    yield a
    a.stop()


def client(a: Agent, *, fingerprint: str | None = None, token: str | None = None,
           tmp: Path | None = None) -> AgentClient:
    token_file = a.token_file
    if token is not None:
        assert tmp is not None
        token_file = tmp / "other-token"
        token_file.write_text(token)
    host = Host(name="a1", agent=a.address, fingerprint=fingerprint or a.fingerprint,
                token_file=token_file)
    c = AgentClient(host, "test-owner")
    _OPEN.append(c)
    return c


def spec(script: str, **kw: object) -> dict[str, object]:
    return {"script": script, "env": {}, "job": "j", "jobnet": "n", "run_id": 1, **kw}


def wait_ended(c: AgentClient, job_id: str) -> dict[str, object]:
    def ended() -> dict[str, object] | None:
        answer = c.call("wait", ids=[job_id], timeout=1.0)
        return answer["jobs"][0] if answer["jobs"] else None

    return wait_for(ended, f"job {job_id} to end")


def test_init_writes_config_key_certificate_and_only_a_hash_of_the_token(tmp_path: Path):
    a = Agent(tmp_path / "agent")
    text = a.config.read_text()
    assert a.token not in text
    assert f'token_sha256 = "{hashlib.sha256(a.token.encode()).hexdigest()}"' in text
    assert (a.folder / "agent.key").stat().st_mode & 0o777 == 0o600
    shown = jaz("agent", "fingerprint", "-c", a.config, home=a.home)
    assert shown.returncode == 0 and shown.stdout.strip() == a.fingerprint
    again = jaz("agent", "init", "-c", a.config, home=a.home)
    assert again.returncode == 2 and "exists already" in again.stderr


def test_a_job_runs_and_its_result_and_output_stay_until_acknowledged(agent: Agent,
                                                                     tmp_path: Path):
    c = client(agent)
    hello = c.call("hello")
    assert hello["version"] and hello["protocol"] == 1
    answer = c.call("submit", id="job-1", spec=spec(
        'echo out-line; echo err-line >&2; echo "n=7" >> "$JAZ_OUTPUT"; exit 3'))
    assert answer["accepted"] is True and answer["new"] is True
    view = wait_ended(c, "job-1")
    result = view["result"]
    assert result["exit_code"] == 3 and result["outputs"] == {"n": "7"}
    assert result["stdout_tail"] == "out-line\n"
    chunk = c.call("read", id="job-1", stream="stderr", offset=0, limit=1000)
    assert base64.b64decode(chunk["data"]) == b"err-line\n" and chunk["ended"]
    assert [v["id"] for v in c.call("list")["jobs"]] == ["job-1"]   # held until acked
    assert c.call("ack", ids=["job-1"])["acked"] == 1
    assert c.call("list")["jobs"] == []
    assert agent.jobs()[0][1:3] == ("ended", 1)


def test_a_duplicate_job_id_is_the_same_job_not_a_second_run(agent: Agent, tmp_path: Path):
    marker = tmp_path / "ran"
    c = client(agent)
    first = c.call("submit", id="dup", spec=spec(f"echo x >> {marker}"))
    second = c.call("submit", id="dup", spec=spec(f"echo x >> {marker}"))
    assert first["new"] is True and second["new"] is False
    wait_ended(c, "dup")
    assert c.call("submit", id="dup", spec=spec(f"echo x >> {marker}"))["new"] is False
    assert marker.read_text() == "x\n"


def test_another_server_sees_none_of_this_servers_jobs(agent: Agent):
    c = client(agent)
    c.call("submit", id="mine", spec=spec("true"))
    other = AgentClient(c.host, "other-owner")
    _OPEN.append(other)
    assert other.call("list")["jobs"] == []
    with pytest.raises(Exception, match="no job mine"):
        other.call("get", id="mine")


def test_a_wrong_or_missing_token_is_refused_and_nothing_runs(agent: Agent, tmp_path: Path):
    with pytest.raises(Refused, match="refused"):
        client(agent, token="not-the-token", tmp=tmp_path).call(
            "submit", id="evil", spec=spec(f"touch {tmp_path / 'evil'}"))
    raw = _tls(agent)
    _send(raw, {"op": "submit", "owner": "x", "id": "evil2", "spec": spec("true")})
    assert _receive(raw)["code"] == "refused"
    assert agent.jobs() == []
    assert not (tmp_path / "evil").exists()
    assert client(agent).call("hello")["ok"]   # and it still serves good requests


def test_a_changed_fingerprint_is_refused_before_anything_is_sent(agent: Agent,
                                                                 tmp_path: Path):
    wrong = "SHA256:" + "0" * 64
    with pytest.raises(FingerprintChanged, match="CHANGED"):
        client(agent, fingerprint=wrong).call("submit", id="never",
                                              spec=spec(f"touch {tmp_path / 'x'}"))
    assert agent.jobs() == []
    assert "request from" not in agent.log.read_text()   # not even a refused request


def test_an_address_not_in_servers_is_closed_before_tls(tmp_path: Path):
    a = Agent(tmp_path / "agent", servers=("192.0.2.1",)).start()
    try:
        with pytest.raises(Unreachable):
            client(a).call("hello")
        wait_for(lambda: "not in `servers`" in a.log.read_text(), "the refusal in the log")
        assert "TLS with" not in a.log.read_text()   # no handshake was even tried
        assert a.jobs() == []
    finally:
        a.stop()


@pytest.mark.parametrize("frame", [
    struct.pack(">I", 2**31) + b"x",                 # over the size limit
    struct.pack(">I", 5) + b"\xff\xfe{}}",            # not UTF-8 JSON
    struct.pack(">I", 2) + b"[]",                     # not an object
    struct.pack(">I", 100) + b'{"op":',               # cut short, then closed
    b"\x00",                                          # not even a header
])
def test_malformed_frames_are_refused_and_the_agent_stays_up(agent: Agent, frame: bytes):
    raw = _tls(agent)
    raw.sendall(frame)
    raw.shutdown(socket.SHUT_WR) if frame.endswith(b'{"op":') or frame == b"\x00" else None
    try:
        answer = _receive(raw)
        assert answer["ok"] is False and answer["code"] == "bad_frame"
    except (ConnectionError, ssl.SSLError, struct.error):
        pass   # a frame cut short: the agent closes without an answer
    raw.close()
    assert client(agent).call("hello")["ok"]


@pytest.mark.parametrize(("request_", "says"), [
    ({"op": "launch"}, "unknown op"),
    ({"op": "submit", "id": "../../etc", "spec": spec("true")}, "'id' must be"),
    ({"op": "submit", "id": "ok", "spec": {"env": {}}}, "'script' is missing"),
    ({"op": "submit", "id": "ok", "spec": spec("true", env={"A": 1})}, "spec.env"),
    ({"op": "read", "id": "ok", "stream": "stdin", "offset": 0, "limit": 1}, "'stream'"),
    ({"op": "wait", "timeout": "soon"}, "'timeout' must be"),
])
def test_bad_requests_get_a_clear_error_and_nothing_runs(agent: Agent, request_: dict,
                                                         says: str):
    raw = _tls(agent)
    _send(raw, {"token": agent.token, "owner": "o", **request_})
    answer = _receive(raw)
    assert answer["ok"] is False and answer["code"] == "bad_request"
    assert says in answer["error"]
    _send(raw, {"token": agent.token, "owner": "o", "op": "hello"})   # same connection
    assert _receive(raw)["ok"] is True
    assert agent.jobs() == []


def test_plaintext_to_the_tls_port_is_refused_and_the_agent_stays_up(agent: Agent):
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
    raw.sendall(struct.pack(">I", 2) + b"{}")
    raw.settimeout(5)
    try:
        raw.recv(100)
    except OSError:
        pass
    raw.close()
    assert client(agent).call("hello")["ok"]


def test_the_agent_refuses_root_without_allow_root(tmp_path: Path, monkeypatch):
    a = Agent(tmp_path / "agent")
    a.config.write_text(a.config.read_text().replace("allow_root = true",
                                                     "allow_root = false"))
    if os.geteuid() == 0:
        result = jaz("agent", "-c", a.config, home=a.home)
        assert result.returncode == 5
        assert "refuses to run as root" in result.stderr
    else:
        from jaz.agent.config import load_config
        from jaz.agent.daemon import refuse_root

        monkeypatch.setattr(os, "geteuid", lambda: 0)   # the check's one boundary
        with pytest.raises(Refused, match="refuses to run as root"):
            refuse_root(load_config(a.config))
    assert not (a.folder / "agent.db").exists()


@pytest.mark.parametrize(("line", "says"), [
    ('listen = "nowhere"', "bad listen address"),
    ('insecure = true', "works only on a loopback"),
    ('servers = ["not an ip"]', "bad server address"),
    ('max_jobs = 0', "from 1 to 10000"),
    ('max_output = "lots"', "bad size"),
])
def test_config_mistakes_are_reported_with_file_and_line(tmp_path: Path, line: str, says: str):
    config = tmp_path / "agent.toml"
    config.write_text('listen = "0.0.0.0:10055"\nservers = ["127.0.0.1"]\n'
                      f'token_sha256 = "{"a" * 64}"\n' + line + "\n")
    if line.startswith(("listen", "servers")):
        config.write_text(config.read_text().replace(
            'listen = "0.0.0.0:10055"\n' if line.startswith("listen") else
            'servers = ["127.0.0.1"]\n', ""))
    result = jaz("agent", "-c", config, home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert f"{config}:" in result.stderr and says in result.stderr


def test_finished_acknowledged_jobs_are_purged_after_keep_days(tmp_path: Path):
    import time

    from jaz.agent.config import parse_config
    from jaz.agent.jobs import Jobs
    from jaz.agent.store import AgentStore

    config = parse_config(f'servers = ["127.0.0.1"]\ntoken_sha256 = "{"a" * 64}"\n'
                          f'database = "{tmp_path / "a.db"}"\nwork_dir = "{tmp_path / "w"}"\n'
                          "keep_days = 1\n")
    import threading

    store = AgentStore(config.database)
    jobs = Jobs(config, store)
    closing = threading.Event()
    threading.Thread(target=jobs.run_starter, args=(closing,), daemon=True).start()
    jobs.submit("o", "old", spec("echo hi"))
    wait_for(lambda: jobs.wait("o", 1.0, ["old"]), "the job to end")
    assert jobs.purge(time.time() + 2 * 86400) == 0     # not acknowledged: kept
    store.ack("o", ["old"])
    assert jobs.purge(time.time()) == 0                 # too young
    assert jobs.purge(time.time() + 2 * 86400) == 1
    assert store.get("old") is None and not jobs.folder("old").exists()
    closing.set()
    store.close()


def test_a_wait_on_some_jobs_answers_when_the_owner_submits_another(tmp_path: Path):
    # else the new job's end waits for the poll's timeout (1 s): a server's poller waits
    # on the jobs it had when it asked, and asks again when the answer comes
    import threading

    from jaz.agent.config import parse_config
    from jaz.agent.jobs import Jobs
    from jaz.agent.store import AgentStore

    config = parse_config(f'servers = ["127.0.0.1"]\ntoken_sha256 = "{"a" * 64}"\n'
                          f'database = "{tmp_path / "a.db"}"\nwork_dir = "{tmp_path / "w"}"\n')
    store = AgentStore(config.database)
    jobs = Jobs(config, store)
    closing = threading.Event()
    threading.Thread(target=jobs.run_starter, args=(closing,), daemon=True).start()
    try:
        jobs.submit("o", "long", spec("sleep 60"))
        answered = threading.Event()
        threading.Thread(target=lambda: (jobs.wait("o", 120.0, ["long"]), answered.set()),
                         daemon=True).start()
        jobs.submit("other-owner", "x", spec("true"))   # not this owner's: no answer
        assert not answered.wait(0.5)
        jobs.submit("o", "quick", spec("true"))
        assert answered.wait(60), "the wait went on past the owner's new job"
        wait_for(lambda: jobs.wait("o", 1.0, ["quick"]), "the new job's end")
    finally:
        jobs.stop("long")
        wait_for(lambda: jobs.wait("o", 1.0, ["long"]), "the stopped job's end")  # then close
        closing.set()
        store.close()


# ------------------------------------------------------------------ raw frames

def _tls(a: Agent) -> ssl.SSLSocket:
    from jaz.hosts.wire import client_context

    raw = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    sock = client_context().wrap_socket(raw)
    _OPEN.append(sock)
    return sock


def _send(sock: ssl.SSLSocket, message: dict) -> None:
    data = json.dumps(message).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def _receive(sock: ssl.SSLSocket) -> dict:
    head = b""
    while len(head) < 4:
        part = sock.recv(4 - len(head))
        if not part:
            raise ConnectionError("closed")
        head += part
    (size,) = struct.unpack(">I", head)
    body = b""
    while len(body) < size:
        part = sock.recv(size - len(body))
        if not part:
            raise ConnectionError("closed")
        body += part
    return json.loads(body)


def test_a_result_acknowledged_by_a_process_that_died_is_given_again(agent: Agent,
                                                                    tmp_path: Path):
    """The window between an acknowledgement and the run's commit: the next process
    that adopts the job gets its result again, instead of 'unknown'."""
    import threading

    from jaz.engine.executors.base import Attempt
    from jaz.engine.model import Job, RunAction
    from jaz.hosts.executor import AgentHosts

    hosts = {"a1": Host(name="a1", agent=agent.address, fingerprint=agent.fingerprint,
                        token_file=agent.token_file)}
    job = Job(name="j", action=RunAction(script='echo "v=1" >> "$JAZ_OUTPUT"; exit 7'),
              host="a1")
    stem = tmp_path / "j.1"
    attempt = Attempt(run_id=1, jobnet="n", job=job, attempt=1, host="a1", env={},
                      cwd=tmp_path, base_dir=tmp_path, stdout_path=Path(f"{stem}.out"),
                      stderr_path=Path(f"{stem}.err"), output_path=Path(f"{stem}.vars"))
    first = AgentHosts(hosts, "owner-1")
    done = threading.Event()
    execution = first.start(attempt)
    execution.report(done.set)
    assert done.wait(30) and execution.wait().exit_code == 7
    first.close()
    wait_for(lambda: agent.jobs() and agent.jobs()[0][2] == 1, "the acknowledgement")
    again = AgentHosts(hosts, "owner-1")
    try:
        adopted = again.adopt(1, job, "a1", str(stem))
        assert adopted is not None
        done.clear()
        adopted.report(done.set)
        assert done.wait(30)
        outcome = adopted.wait()
        assert (outcome.exit_code, dict(outcome.outputs)) == (7, {"v": "1"})
    finally:
        again.close()
