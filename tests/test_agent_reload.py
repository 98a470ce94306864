"""`jaz server` reads its hosts file again on SIGHUP (and when a look at its folders finds
the file changed): hosts added, changed and removed are used from then on, a job running
on a changed host keeps running and is recorded, and a bad file is refused with a log
message that says where, the old hosts kept. Real server and agent processes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from agent_support import Agent, jaz
from support import free_port, wait_for

NET = """
[jobs.remote]
host = "{host}"
run = 'while [ ! -e "$GO" ]; do sleep 0.05; done; echo "ran on {host}"'
env = {{ GO = "{go}" }}
"""


def _hosts(home: Path) -> dict[str, dict]:
    listed = jaz("hosts", "--json", home=home)
    assert listed.returncode == 0, listed.stderr
    return {h["name"]: h for h in json.loads(listed.stdout)}


def test_sighup_reloads_the_hosts_file_keeping_running_jobs_and_refuses_a_bad_one(
        tmp_path: Path) -> None:
    a1, a2 = Agent(tmp_path / "a1").start(), Agent(tmp_path / "a2").start()
    root, home = tmp_path / "server", tmp_path / "server" / "home"
    (root / "jobnets").mkdir(parents=True)
    go = tmp_path / "go"
    for host in ("a1", "a2"):
        (root / "jobnets" / f"on_{host}.toml").write_text(NET.format(host=host, go=go))
    hosts = root / "hosts.toml"
    hosts.write_text(a1.hosts_entry("a1"))
    (root / "jaz.toml").write_text(f'listen = "127.0.0.1:{free_port()}"\njobnets = "jobnets"\n'
                                   'hosts_file = "hosts.toml"\nallow_root = true\n')
    log = root / "server.log"
    env = {"JAZ_HOME": str(home), "PATH": "/usr/bin:/bin"}
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c",
                                   str(root / "jaz.toml")], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (home / "server.url").exists(), "the server to listen")
        wait_for(lambda: _hosts(home)["a1"]["online"], "a1 online")
        first = jaz("start", "on_a1", home=home).stdout.split()[-1]
        wait_for(lambda: a1.jobs(), "the job to reach a1")

        # a1 changed (a label), a2 added: the running job on a1 goes on
        hosts.write_text(a1.hosts_entry("a1", labels='labels = ["web"]') + a2.hosts_entry("a2"))
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded: added a2; changed a1" in log.read_text(), "the reload")
        listed = wait_for(lambda: (h := _hosts(home))["a2"]["online"] and h, "a2 online")
        assert listed["a1"]["labels"] == ["web"]
        second = jaz("start", "on_a2", home=home).stdout.split()[-1]
        wait_for(lambda: a2.jobs(), "the job to reach a2")

        # a bad file: refused, said where, the hosts as they were
        hosts.write_text(a1.hosts_entry("a1") + '[hosts.a3]\nagent = "nowhere"\n')
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "NOT reloaded" in log.read_text(), "the refusal")
        text = log.read_text()
        assert "hosts.toml:" in text and 'bad agent address "nowhere"' in text, text
        assert "Traceback" not in text
        assert sorted(_hosts(home)) == ["a1", "a2", "local"]

        # a2 removed: a new job for it fails, naming the hosts known
        hosts.write_text(a1.hosts_entry("a1"))
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded: changed a1; removed a2" in log.read_text(), "removal")
        assert sorted(_hosts(home)) == ["a1", "local"]
        third = jaz("start", "on_a2", "--wait", "--json", home=home)
        view = json.loads(third.stdout)
        assert view["jobs"]["remote"]["status"] == "failed", view
        with sqlite3.connect(home / "jaz.db") as db:
            (message,), = db.execute("SELECT message FROM jobs WHERE run_id = ?",
                                     (view["run_id"],)).fetchall()
        assert "unknown host 'a2' (hosts known: a1)" in message, message

        go.touch()   # the jobs started before the reloads end, and are recorded
        for run_id, host in ((first, "a1"), (second, "a2")):
            done = jaz("status", run_id, "--wait", "--json", home=home)
            view = json.loads(done.stdout)
            assert view["status"] == "succeeded", (host, view)
            assert f"ran on {host}" in jaz("logs", run_id, "remote", home=home).stdout
        wait_for(lambda: [r[2] for r in a2.jobs()] == [1], "a2's result acknowledged")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        a1.stop()
        a2.stop()


def test_a_look_at_the_folders_reloads_the_hosts_file_only_when_it_changed(
        tmp_path: Path, monkeypatch) -> None:
    """The path of the server's regular looks (`always=False`): an unchanged file is not
    read again; a changed one is, and a host added to a server that had none is usable."""
    from jaz.server.config import parse_config
    from jaz.server.core import Core

    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    hosts = tmp_path / "hosts.toml"
    hosts.write_text("")
    (tmp_path / "jobnets").mkdir()
    core = Core(parse_config(f'jobnets = "{tmp_path / "jobnets"}"\n'
                             f'database = "{tmp_path / "jaz.db"}"\nhosts_file = "{hosts}"\n'))
    try:
        assert core.remote is None and not core.reload_hosts(always=False)
        hosts.write_text('[hosts.db1]\nagent = "127.0.0.1:10055"\n')
        assert core.reload_hosts(always=False)
        assert list(core.hosts) == ["db1"] and core.remote is not None
        assert core.service.ctx.remote is core.remote
        assert not core.reload_hosts(always=False)      # read once per change
        assert core.reload_hosts(always=True)           # SIGHUP: read anyway
    finally:
        core.close()
