"""Round trips of `true` jobs server side -> agent -> result, over loopback TLS.

A real `jaz agent` (made with `jaz agent init` in a temporary folder) and this
process's `AgentHosts`, the executor `jaz run` and `jaz server` use; N jobs with 8 in
flight. Printed beside a floor: the same `/bin/sh -c true` processes spawned directly
with 8 at a time. Also the agent's resident memory and CPU while idle.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

N = int(os.environ.get("BENCH_JOBS", "400"))
IN_FLIGHT = 8
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    from jaz.engine.executors.base import Attempt
    from jaz.engine.model import Job, RunAction
    from jaz.hosts.config import Host
    from jaz.hosts.executor import AgentHosts

    tmp = Path(tempfile.mkdtemp(prefix="jaz-agent-bench-"))
    env = dict(os.environ, JAZ_HOME=str(tmp / "home"))
    port = _port()
    config = tmp / "agent.toml"
    init = subprocess.run([sys.executable, "-m", "jaz", "agent", "init", "-c", str(config),
                           "--listen", f"127.0.0.1:{port}"], env=env, capture_output=True,
                          text=True, check=True)
    fp = re.search(r"fingerprint: (\S+)", init.stdout).group(1)  # type: ignore[union-attr]
    token = re.search(r"token: (\S+)", init.stdout).group(1)  # type: ignore[union-attr]
    config.write_text(config.read_text().replace("allow_root = false", "allow_root = true"))
    (tmp / "token").write_text(token)
    agent = subprocess.Popen([sys.executable, "-m", "jaz", "agent", "-c", str(config)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        hosts = AgentHosts({"a1": Host(name="a1", agent=f"127.0.0.1:{port}", fingerprint=fp,
                                       token_file=tmp / "token")}, "bench:owner")
        logs = tmp / "logs"
        logs.mkdir()
        job = Job(name="t", action=RunAction(script="true"))
        latencies: list[float] = []

        def one(i: int) -> None:
            stem = logs / f"t.{i}".replace("-", "m")
            attempt = Attempt(run_id=1, jobnet="bench", job=job, attempt=1, host="a1", env={},
                              cwd=tmp, base_dir=tmp, stdout_path=Path(f"{stem}.out"),
                              stderr_path=Path(f"{stem}.err"),
                              output_path=Path(f"{stem}.vars"))
            done = threading.Event()
            t0 = time.perf_counter()
            execution = hosts.start(attempt)
            execution.report(done.set)
            done.wait()
            latencies.append(time.perf_counter() - t0)
            assert execution.wait().exit_code == 0

        one(0)   # connections made, the agent warm
        latencies.clear()
        for i in range(1, 101):   # one at a time: the latency of one round trip
            one(-i)
        alone = sorted(latencies)
        latencies.clear()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(one, range(1, N + 1)))
        wall = time.perf_counter() - t0
        hosts.close()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(lambda _: subprocess.run(["/bin/sh", "-c", "true"],
                                                   start_new_session=True), range(N)))
        floor = time.perf_counter() - t0

        time.sleep(2.0)   # idle now
        stat0 = _cpu(agent.pid)
        time.sleep(5.0)
        idle_cpu = (_cpu(agent.pid) - stat0) / 5.0 * 100
        rss = _rss(agent.pid)
        print(f"agent round trips: {N} `true` jobs, {IN_FLIGHT} in flight: "
              f"{N / wall:.0f} jobs/s, p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")
        print(f"one at a time: p50 {statistics.median(alone) * 1000:.1f} ms, "
              f"p99 {alone[98] * 1000:.1f} ms (floor: one sh -c true "
              f"{_spawn_ms():.1f} ms)")
        print(f"floor (sh -c true spawned directly, {IN_FLIGHT} at a time): "
              f"{N / floor:.0f} jobs/s")
        print(f"idle agent: {rss / 2**20:.1f} MiB resident, {idle_cpu:.2f} % CPU")
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def _spawn_ms() -> float:
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", "true"], start_new_session=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
