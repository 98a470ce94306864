"""`jaz server` with JAZ agent hosts: a run through the API on the fake agent, `jaz hosts`
showing `jaz-agent (plaintext)`, the listener's port from the server config, and a
result the agent dropped while the server was down (kill -9) found after the restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from agent_support import jaz
from jaz_fake import FakeJazAgent
from support import free_port, running_server, wait_for


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_run_through_the_server_on_a_jaz_agent_and_jaz_hosts(tmp_path: Path):
    listen = free_port()
    fake = FakeJazAgent(server_port=listen, retry_every=0.2)
    root = tmp_path / "server"
    root.mkdir()
    (root / "hosts.toml").write_text(
        f'jaz_listen = "127.0.0.1:{free_port()}"\n'     # the server config's wins
        f'[hosts.legacy]\njaz_agent = "{fake.address}"\nhostname = "jaztest"\n'
        'description = "old box"\n')
    net = '[jobs.j]\nhost = "legacy"\nrun = "echo via the server"\n'
    try:
        with running_server(root, {"net": net}, extra=f'hosts_file = "hosts.toml"\n'
                            f'jaz_listen = "127.0.0.1:{listen}"\n') as (url, token, env, home):
            assert _listening(listen)
            started = jaz("start", "net", "--wait", "--json", home=home)
            assert started.returncode == 0, started.stderr + (root / "server.log").read_text()
            view = json.loads(started.stdout)
            assert view["jobs"]["j"]["status"] == "succeeded"
            logs = jaz("logs", view["run_id"], "j", home=home)
            assert "via the server" in logs.stdout

            def listed() -> dict | None:
                hosts = {h["name"]: h for h in
                         json.loads(jaz("hosts", "--json", home=home).stdout)}
                return hosts if hosts["legacy"]["online"] is True else None

            hosts = wait_for(listed, "the JAZ agent host to show online")
            assert hosts["legacy"]["kind"] == "jaz-agent"
            assert hosts["legacy"]["address"] == fake.address
            table = jaz("hosts", home=home).stdout
            assert "jaz-agent (plaintext)" in " ".join(table.split())
            assert "old box" in table
    finally:
        fake.close()
    assert len(fake.started) == 1


@contextlib.contextmanager
def _server(root: Path, config: Path, home: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(home)
    (home / "server.url").unlink(missing_ok=True)
    with (root / "server.log").open("a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (home / "server.url").exists() or proc.poll() is not None,
                 "the server to start")
        assert proc.poll() is None, (root / "server.log").read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_result_dropped_while_the_server_was_down_ends_the_job_in_error(tmp_path: Path):
    listen = free_port()
    fake = FakeJazAgent(server_port=listen, send_retry=3, retry_every=0.2)
    root, home = tmp_path / "server", tmp_path / "home"
    (root / "jobnets").mkdir(parents=True)
    (root / "calendars").mkdir()
    (root / "jobnets" / "net.toml").write_text(
        '[jobs.j]\nhost = "legacy"\nrun = "sleep 1; echo finished"\n')
    config = root / "jaz.toml"
    config.write_text(
        f'listen = "127.0.0.1:{free_port()}"\njobnets = "jobnets"\ncalendars = "calendars"\n'
        + ("allow_root = true\n" if os.geteuid() == 0 else "")
        + f'jaz_listen = "127.0.0.1:{listen}"\n[hosts.legacy]\njaz_agent = "{fake.address}"\n'
        'hostname = "jaztest"\ncheck_every = "0.5s"\n')
    try:
        with _server(root, config, home) as proc:
            started = jaz("start", "net", "--json", home=home)
            assert started.returncode == 0, started.stderr
            run_id = json.loads(started.stdout)["run_id"]
            wait_for(lambda: fake.started, "the job to start on the JAZ agent")
            proc.kill()   # kill -9: nothing listens for the result now
            proc.wait()
            wait_for(lambda: fake.dropped, "the agent to drop the result", timeout=20)
        with _server(root, config, home):
            def ended() -> dict | None:
                view = json.loads(jaz("status", run_id, "--json", home=home).stdout)
                return view if view["status"] not in ("running", "pending") else None

            view = wait_for(ended, "the run to end after the restart", timeout=30)
            assert view["jobs"]["j"]["status"] == "failed"
            assert view["jobs"]["j"]["exit_code"] is None
        from jaz.engine.store.sqlite import SqliteStore

        store = SqliteStore(home / "jaz.db")
        message = store.get_job(run_id, "j").message
        store.close()
        assert "the JAZ agent on host 'legacy' lost this job's result" in message
    finally:
        fake.close()
    assert len(fake.started) == 1   # never run again on its own


def test_an_operator_stop_kills_the_job_on_the_jaz_agent(tmp_path: Path):
    listen = free_port()
    fake = FakeJazAgent(server_port=listen, retry_every=0.2)
    root = tmp_path / "server"
    root.mkdir()
    net = '[jobs.j]\nhost = "legacy"\nrun = "echo begun; sleep 60"\n'
    try:
        with running_server(root, {"net": net}, extra=(
                f'jaz_listen = "127.0.0.1:{listen}"\n[hosts.legacy]\n'
                f'jaz_agent = "{fake.address}"\nhostname = "jaztest"\n')) as (_, _t, _e, home):
            run_id = json.loads(jaz("start", "net", "--json", home=home).stdout)["run_id"]
            wait_for(lambda: fake.started, "the job to start on the JAZ agent")
            assert jaz("stop", run_id, home=home).returncode == 0

            def ended() -> dict | None:
                view = json.loads(jaz("status", run_id, "--json", home=home).stdout)
                return view if view["status"] == "stopped" else None

            view = wait_for(ended, "the run to be stopped")
            assert view["jobs"]["j"]["status"] == "stopped"
            assert [r["data"]["method"] for r in fake.log] == [0, 3]
            assert "begun" in jaz("logs", run_id, "j", home=home).stdout
    finally:
        fake.close()


def test_the_server_does_not_start_when_its_jaz_listen_port_is_taken(tmp_path: Path):
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    config = tmp_path / "jaz.toml"
    config.write_text(f'listen = "127.0.0.1:{free_port()}"\n'
                      + ("allow_root = true\n" if os.geteuid() == 0 else "")
                      + f'jaz_listen = "127.0.0.1:{port}"\n[hosts.legacy]\n'
                      'jaz_agent = "127.0.0.1:10055"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(tmp_path / "home")
    try:
        result = subprocess.run([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                                env=env, capture_output=True, text=True, timeout=30)
    finally:
        busy.close()
    assert result.returncode == 2   # as for its own `listen` address
    assert f"cannot listen on 127.0.0.1:{port} for JAZ agents' results" in result.stderr
    assert "set jaz_listen to a free port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "server.url").exists()
