"""`true` jobs on an SSH host, side by side in one run, against a real OpenSSH sshd on a
loopback port (started here with its own host key and an authorised key, logging in as
the tests' user, whose shell is /bin/sh: tests/sshd_support.py):

- jaz's SSH executor (the one `jaz run` and `jaz server` use): one pooled connection,
  8 channels in flight (jobs/s), and one job at a time (p50/p99 latency); and the same
  with `job_folder = false` (output on the channel only, the job not kept there);
- the floor: raw paramiko `exec_command("true")` on one connection, the same two ways;
- OpenSSH's `ssh` with ControlMaster (one master, a client process per command) and
  with a new connection per command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

N = int(os.environ.get("BENCH_JOBS", "600"))
SEQ = int(os.environ.get("BENCH_SEQ", "200"))
IN_FLIGHT = 8
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def _measure(one: Callable[[int], None], n: int, seq: int) -> tuple[float, list[float]]:
    """jobs/s with IN_FLIGHT at once, and the latencies of `seq` jobs one at a time."""
    for i in range(5):
        one(-1000 - i)   # warm
    alone: list[float] = []
    for i in range(seq):
        t0 = time.perf_counter()
        one(-i - 1)
        alone.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - t0), alone


def main() -> None:
    if shutil.which("sshd") is None and not os.path.exists("/usr/sbin/sshd"):
        print("ssh bench: skipped, OpenSSH's sshd is not installed (apt-get install "
              "openssh-server)")
        return
    from sshd_support import Sshd, keygen

    tmp = Path(tempfile.mkdtemp(prefix="jaz-ssh-bench-"))
    key = keygen(tmp / "id_ed25519")
    sshd = Sshd(tmp / "sshd", [key], extra="MaxSessions 16\n").start()
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    cfg = home / ".ssh" / "config"
    cfg.write_text(f"Host box\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
                   f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
                   f"  UserKnownHostsFile {home / '.ssh' / 'known_hosts'}\n"
                   "  StrictHostKeyChecking yes\n")
    (home / ".ssh" / "known_hosts").write_text(sshd.host_key_line())
    os.environ["HOME"] = str(home)
    os.environ["JAZ_HOME"] = str(tmp / "jazhome")
    try:
        rows = [_jaz(tmp), _jaz(tmp, detach=False), _raw(), _openssh(cfg, tmp, master=True),
                _openssh(cfg, tmp, master=False)]
    finally:
        sshd.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"SSH `true` jobs on one loopback sshd ({N} with {IN_FLIGHT} in flight; {SEQ} one "
          "at a time):")
    for name, rate, alone in rows:
        print(f"  {name:<44} {rate:7.0f} jobs/s   one at a time: p50 {_ms(alone, .5):6.2f} "
              f"ms, p99 {_ms(alone, .99):6.2f} ms")


def _jaz(tmp: Path, detach: bool = True) -> tuple[str, float, list[float]]:
    """jaz's executor; with `detach` off, as a host with `job_folder = false` (each job's
    output on its channel only: what jaz did before jobs outlived their connection)."""
    from jaz.engine.executors.base import Attempt
    from jaz.engine.model import Job, RunAction
    from jaz.hosts.config import Host
    from jaz.hosts.executor import AgentHosts

    hosts = AgentHosts({"box": Host(name="box", ssh="box", job_folder=detach)}, "bench:owner")
    logs = tmp / ("logs" if detach else "logs-attached")
    logs.mkdir()
    job = Job(name="t", action=RunAction(script="true"))

    def one(i: int) -> None:
        stem = logs / f"t.{i}".replace("-", "m")
        attempt = Attempt(run_id=1, jobnet="bench", job=job, attempt=1, host="box", env={},
                          cwd=tmp, base_dir=tmp, stdout_path=Path(f"{stem}.out"),
                          stderr_path=Path(f"{stem}.err"), output_path=Path(f"{stem}.vars"))
        done = threading.Event()
        execution = hosts.start(attempt)
        execution.report(done.set)
        done.wait()
        outcome = execution.wait()
        assert outcome.exit_code == 0, outcome

    try:
        rate, alone = _measure(one, N, SEQ)
    finally:
        hosts.close()
    return ("jaz SSH executor (1 pooled connection)" if detach else
            "jaz, job_folder = false (output on channel)"), rate, alone


def _raw() -> tuple[str, float, list[float]]:
    from jaz.hosts.config import Host
    from jaz.hosts.ssh import connect

    client = connect(Host(name="box", ssh="box"))
    transport = client.get_transport()

    def one(i: int) -> None:
        chan = transport.open_session()
        chan.exec_command("true")
        status = chan.recv_exit_status()
        chan.close()
        assert status == 0

    try:
        rate, alone = _measure(one, N, SEQ)
    finally:
        client.close()
    return "floor: raw paramiko exec (1 connection)", rate, alone


def _openssh(cfg: Path, tmp: Path, *, master: bool) -> tuple[str, float, list[float]]:
    control = ["-o", "ControlMaster=auto", "-o", f"ControlPath={tmp}/cm-%C",
               "-o", "ControlPersist=60"] if master else ["-o", "ControlMaster=no",
                                                          "-o", "ControlPath=none"]
    argv = ["ssh", "-F", str(cfg), *control, "-o", "BatchMode=yes", "box", "true"]

    def one(i: int) -> None:
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)

    n, seq = (N, SEQ) if master else (max(40, N // 10), max(20, SEQ // 5))
    try:
        rate, alone = _measure(one, n, seq)
    finally:
        if master:
            subprocess.run(["ssh", "-F", str(cfg), *control, "-O", "exit", "box"],
                           capture_output=True)
    name = "OpenSSH ssh, ControlMaster" if master else "OpenSSH ssh, new connection per job"
    return name, rate, alone


if __name__ == "__main__":
    main()
