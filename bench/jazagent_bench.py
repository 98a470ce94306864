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
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from agent_harness import IN_FLIGHT, ROOT, Timed, free_port, ms, spawn_floor
from server_bench import pct

N = int(os.environ.get("BENCH_JOBS", "400"))


def main() -> None:
    from jaz.hosts.config import Host
    from jaz.hosts.jazagent import JazAgents

    tmp = Path(tempfile.mkdtemp(prefix="jaz-jazagent-bench-"))
    listen = free_port()
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "jaz_fake.py"), str(listen)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline())
        host = Host(name="legacy", jaz_agent=f"127.0.0.1:{port}", hostname="jaztest",
                    jaz_listen=f"127.0.0.1:{listen}")
        agents = JazAgents({"legacy": host}, "bench:owner")
        timed = Timed(agents, "legacy", tmp)
        alone = timed.alone(50)
        wall = timed.in_flight(N)
        agents.close()
        floor = spawn_floor(N)
        print(f"JAZ agent round trips (fake agent, loopback): {N} `true` jobs, {IN_FLIGHT} in "
              f"flight: {N / wall:.0f} jobs/s, p50 {ms(statistics.median(timed.latencies))}, "
              f"p99 {ms(pct(timed.latencies, 0.99))}")
        print(f"one at a time: p50 {ms(statistics.median(alone))}")
        print(f"floor (sh -c true spawned directly, {IN_FLIGHT} at a time): {floor:.0f} jobs/s")
    finally:
        if fake.stdin is not None:
            fake.stdin.close()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
