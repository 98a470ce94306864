"""Jobs/s to a JAZ agent over loopback: `true` jobs sent by `JazAgents` (the executor
`jaz run` and `jaz server` use for `jaz_agent` hosts) to the fake JAZ agent of the tests
(tests/jaz_fake.py, replaying the recorded real agent, in a process of its own: it
runs each job with /bin/sh), results back on the JAZ listener. N jobs, 8 in flight.

Printed beside a floor: the same `/bin/sh -c true` processes spawned directly with 8 at
a time. The real agent's own limits (it forks a job runner per job, polls its job
folder) are its business: this measures jaz's side and the protocol.
"""

from __future__ import annotations

import os
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
    from jaz.hosts.jazagent import JazAgents

    tmp = Path(tempfile.mkdtemp(prefix="jaz-jazagent-bench-"))
    listen = _port()
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "jaz_fake.py"), str(listen)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline())
        host = Host(name="legacy", jaz_agent=f"127.0.0.1:{port}", hostname="jaztest",
                    jaz_listen=f"127.0.0.1:{listen}")
        agents = JazAgents({"legacy": host}, "bench:owner")
        job = Job(name="t", action=RunAction(script="true"))
        latencies: list[float] = []

        def one(i: int) -> None:
            stem = tmp / f"t.{i}".replace("-", "m")
            attempt = Attempt(run_id=1, jobnet="bench", job=job, attempt=1, host="legacy",
                              env={}, cwd=tmp, base_dir=tmp, stdout_path=Path(f"{stem}.out"),
                              stderr_path=Path(f"{stem}.err"),
                              output_path=Path(f"{stem}.vars"))
            done = threading.Event()
            t0 = time.perf_counter()
            execution = agents.start(attempt)
            execution.report(done.set)
            done.wait()
            latencies.append(time.perf_counter() - t0)
            outcome = execution.wait()
            assert outcome.exit_code == 0, outcome

        one(0)
        latencies.clear()
        for i in range(1, 51):   # one at a time: the latency of one round trip
            one(-i)
        alone = sorted(latencies)
        latencies.clear()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(one, range(1, N + 1)))
        wall = time.perf_counter() - t0
        agents.close()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(lambda _: subprocess.run(["/bin/sh", "-c", "true"],
                                                   start_new_session=True), range(N)))
        floor = time.perf_counter() - t0
        print(f"JAZ agent round trips (fake agent, loopback): {N} `true` jobs, {IN_FLIGHT} in "
              f"flight: {N / wall:.0f} jobs/s, p50 {statistics.median(latencies) * 1000:.1f} "
              f"ms, p99 {sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")
        print(f"one at a time: p50 {statistics.median(alone) * 1000:.1f} ms")
        print(f"floor (sh -c true spawned directly, {IN_FLIGHT} at a time): "
              f"{N / floor:.0f} jobs/s")
    finally:
        if fake.stdin is not None:
            fake.stdin.close()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
