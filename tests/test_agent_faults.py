"""Faults at random moments, with real agents and real `jaz run` processes: kill -9 of
the agent while jobs are being sent, run and reported, restarted at once. Invariant,
checked with marker files: every job ends exactly once, successfully, and none runs
twice. Also: a flood of connections, and fuzzed frames."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_support import Agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaz.hosts.client import AgentClient
from jaz.hosts.config import Host


@pytest.fixture
def agent(tmp_path: Path):
    a = Agent(tmp_path / "agent").start()
    yield a
    a.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_of_the_agent_at_random_moments_loses_and_doubles_nothing(
        agent: Agent, tmp_path: Path, seed: int):
    rng = random.Random(seed)
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = "\n".join(f'[jobs.j{i}]\nhost = "a1"\nrun = \'echo $JAZ_JOB >> {marks}/j{i}; '
                     f'sleep 0.{rng.randint(0, 3)}; echo "n={i}" >> "$JAZ_OUTPUT"\'\n'
                     for i in range(12))
    net = tmp_path / "net.toml"
    net.write_text(jobs)
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(agent.hosts_entry("a1"))
    env = dict(os.environ, JAZ_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "jaz", "run", str(net), "--hosts",
                             str(hosts), "--db", str(tmp_path / "r.db"), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3):   # a fault at a random moment: sending, running or reporting
            time.sleep(rng.uniform(0.0, 0.4))   # the moment of the fault, not a wait for state
            agent.kill(signal.SIGKILL)
            agent.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    view = json.loads(out)
    for i in range(12):
        assert view["jobs"][f"j{i}"]["outputs"] == {"n": str(i)}
        assert (marks / f"j{i}").read_text() == f"j{i}\n"    # ran once, never again
    rows = agent.jobs()
    assert len(rows) == 12 and all(r[1] == "ended" for r in rows)


def test_a_flood_of_connections_is_survived_and_the_next_good_request_answered(
        agent: Agent):
    held = []
    try:
        for _ in range(300):   # more than the agent keeps open: the rest are closed at once
            held.append(socket.create_connection(("127.0.0.1", agent.port), timeout=5))
    finally:
        for s in held:
            s.close()
    client = AgentClient(Host(name="a1", agent=agent.address, fingerprint=agent.fingerprint,
                              token_file=agent.token_file), "o")
    try:
        deadline = time.monotonic() + 15
        while True:   # the agent frees the flood's slots as their sockets close
            try:
                assert client.call("hello")["ok"]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()
    assert agent.proc is not None and agent.proc.poll() is None
    assert agent.jobs() == []


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["op", "token", "owner", "id", "spec", "ids", "timeout",
                                     "stream", "offset", "limit"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                              st.lists(st.text(max_size=5), max_size=3),
                              st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                              max_size=3)),
                    max_size=8)), st.booleans())
def test_fuzzed_frames_never_run_anything_nor_take_the_agent_down(fuzz_agent, frame,
                                                                  with_token):
    from jaz.hosts.wire import client_context

    agent, good = fuzz_agent
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    sock = client_context().wrap_socket(raw)
    try:
        if isinstance(frame, bytes):
            sock.sendall(frame)
        else:
            if with_token:
                frame["token"] = agent.token   # past the token check, to the field checks
            data = json.dumps(frame).encode()
            sock.sendall(struct.pack(">I", len(data)) + data)
        sock.shutdown(socket.SHUT_WR)
        try:
            sock.recv(65536)
        except (OSError, ssl.SSLError):
            pass
    finally:
        sock.close()
    assert good.call("hello")["ok"]
    assert agent.proc is not None and agent.proc.poll() is None
    assert all(r[1] != "running" for r in agent.jobs())


@pytest.fixture(scope="module")
def fuzz_agent(tmp_path_factory: pytest.TempPathFactory):
    a = Agent(tmp_path_factory.mktemp("fuzz")).start()
    good = AgentClient(Host(name="a1", agent=a.address, fingerprint=a.fingerprint,
                            token_file=a.token_file), "o")
    yield a, good
    good.close()
    a.stop()


def test_an_agent_frozen_past_the_heartbeat_delivers_once_it_thaws(agent: Agent,
                                                                   tmp_path: Path):
    from jaz.hosts.executor import HEARTBEAT

    go, ran = tmp_path / "go", tmp_path / "ran"
    net = tmp_path / "net.toml"
    net.write_text(f'[jobs.j]\nhost = "a1"\nrun = \'echo x >> {ran}; '
                   f'while [ ! -e {go} ]; do sleep 0.05; done; echo "ok=1" >> "$JAZ_OUTPUT"\'\n')
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(agent.hosts_entry("a1"))
    env = dict(os.environ, JAZ_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "jaz", "run", str(net), "--hosts",
                             str(hosts), "--db", str(tmp_path / "r.db"), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from support import wait_for

    wait_for(ran.exists, "the job to start")
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        go.touch()                      # the job ends while its agent is frozen
        time.sleep(HEARTBEAT + 1)       # the fault's length, not a wait for state
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["jobs"]["j"]["outputs"] == {"ok": "1"}
    assert ran.read_text() == "x\n"
