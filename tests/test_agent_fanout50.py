"""A fan-out to 50 hosts: `hosts = ["label:web"]` over 50 host entries (distinct names to
jaz, served by three real agents on loopback TLS), one instance per host, at most
`fan_out` at once, per-host status, exit code and outputs in the job's outputs, and the
job failing with the one failing host named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent_support import Agent, jaz
from support import wait_for

HOSTS = 50
FAN_OUT = 16


def test_a_fan_out_to_50_hosts_keeps_its_bound_and_reports_each_host(tmp_path: Path) -> None:
    agents = [Agent(tmp_path / f"agent{i}").start() for i in range(3)]
    try:
        hosts = "".join(agents[i % 3].hosts_entry(f"web{i:02d}", labels='labels = ["web"]')
                        for i in range(HOSTS)) + agents[0].hosts_entry("db1")
        (tmp_path / "hosts.toml").write_text(hosts)
        trace, go = tmp_path / "trace", tmp_path / "go"
        # each instance: its host from its job id (RUN.JOB.N_HOST-DIGEST), a line when it
        # starts and one when it ends in a shared trace (small O_APPEND writes), held
        # until `go` so that the bound is reached; web07 fails
        (tmp_path / "net.toml").write_text(f"""
[jobs.wide]
hosts = ["label:web"]
fan_out = {FAN_OUT}
run = '''
host=${{JAZ_AGENT_JOB##*_}}; host=${{host%-*}}
echo "start $host" >> {trace}
while [ ! -e {go} ]; do sleep 0.02; done
echo "who=$host" >> "$JAZ_OUTPUT"
echo "end $host" >> {trace}
echo "hello from $host"
[ "$host" != web07 ] || exit 3
'''
""")
        env = {"JAZ_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen([sys.executable, "-m", "jaz", "run", str(tmp_path / "net.toml"),
                                 "--hosts", str(tmp_path / "hosts.toml"), "--db",
                                 str(tmp_path / "r.db"), "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = lambda: trace.exists() and trace.read_text().count("start ")  # noqa: E731
        wait_for(lambda: started() == FAN_OUT, f"{FAN_OUT} instances to start", timeout=60)
        go.touch()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, out + err    # web07 failed

        lines = trace.read_text().split()
        events = list(zip(lines[::2], lines[1::2], strict=True))
        running, most = set(), 0
        for what, host in events:
            (running.add if what == "start" else running.remove)(host)
            most = max(most, len(running))
        assert most == FAN_OUT                    # the bound, reached and never passed
        names = [f"web{i:02d}" for i in range(HOSTS)]
        assert sorted(h for w, h in events if w == "start") == names   # each host once

        job = json.loads(out)["jobs"]["wide"]
        assert job["status"] == "failed" and job["exit_code"] == 3
        outputs = job["outputs"]
        for name in names:
            assert outputs[f"{name}.who"] == name
            assert outputs[f"{name}.status"] == ("failed" if name == "web07" else "succeeded")
            assert outputs[f"{name}.exit_code"] == ("3" if name == "web07" else "0")
        assert not any(k.startswith("db1.") for k in outputs)   # not labelled web
        logs = jaz("logs", json.loads(out)["run_id"], "wide", "--db", tmp_path / "r.db",
                   home=tmp_path / "home").stdout
        assert "==> web07: exit 3 <==" in logs and "hello from web49" in logs
        assert sum(len(a.jobs()) for a in agents) == HOSTS
    finally:
        for a in agents:
            a.stop()
