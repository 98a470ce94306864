"""`make bench`, agent hosts (issue 19), over loopback TLS with real `jaz agent` processes:

- round trips: N `true` jobs server side -> agent -> result through this process's
  `AgentHosts` (the executor `jaz run` and `jaz server` use), 8 in flight, and 100 one
  at a time; beside the floor of the same `/bin/sh -c true` spawned directly.
- through `jaz server`: SERVER_RUNS one-job runs (`host = "a1"`, `true`) started with
  POST /api/v1/runs from 4 client threads, wall time from the first POST until none is
  running; per-job latency as the server recorded it (the job's start to its recorded
  end) and per-run latency (created to ended), and 50 runs one at a time (nothing
  queued: the latency of one job through the server); beside its floor in the same
  run, the same jobs sent by a bare agent client (the round trips above).
- fan-out: one job with `hosts = ["label:web"]` over FAN_HOSTS host entries (distinct
  hosts to jaz, served by this one agent; their links connected by a first fan-out),
  each instance stamping its start (bash's `$EPOCHREALTIME`): the time from the job's
  start to the last instance's start; beside the floor of the same FAN_HOSTS bash
  processes spawned by a bare loop here.
- idle: the agent's resident size and CPU while idle.
- soak (`--minutes M`, default 1; 0 skips it): 1,000 `true` jobs a minute through an
  agent whose keep_days is a few minutes (a quarter of the run, at most 5), its RSS,
  CPU %, database rows and size and job folders sampled as it goes: they must stay
  bounded. `python bench/agent_bench.py --minutes 60` is the hour of the issue.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_harness import (
    IN_FLIGHT,
    AgentProcess,
    Timed,
    cpu_seconds,
    ms,
    rss,
    spawn_floor,
    spawn_ms,
)
from server_bench import pct, verdict, wait_for

N = int(os.environ.get("BENCH_JOBS", "400"))
SERVER_RUNS = int(os.environ.get("SERVER_RUNS", "1000"))
RATE = 1000 / 60.0   # soak: jobs a second
FAN_HOSTS = 50
IDLE_SAMPLE = 10.0


def round_trips(tmp: Path, agent: AgentProcess) -> dict[str, Any]:
    from jaz.hosts.executor import AgentHosts

    hosts = AgentHosts({"a1": agent.host("a1")}, "bench:owner")
    (tmp / "logs").mkdir()
    timed = Timed(hosts, "a1", tmp / "logs")
    alone = timed.alone(100)
    wall = timed.in_flight(N)
    hosts.close()
    return {"rate": N / wall, "p50": statistics.median(timed.latencies),
            "p99": pct(timed.latencies, 0.99), "alone": alone}


def through_server(tmp: Path, agent: AgentProcess) -> dict[str, Any]:
    from server_bench import Server

    server = Server(tmp / "server", extra='hosts_file = "hosts.toml"\n')
    (tmp / "server" / "hosts.toml").write_text(agent.hosts_entry("a1"))
    (server.jobnets / "remote.toml").write_text('[jobs.a]\nhost = "a1"\nrun = "true"\n')
    server.start()
    try:
        wait_for(lambda: any(h["name"] == "a1" and h["online"]
                               for h in server.call("GET", "/api/v1/hosts")), "a1 online")
        warm = server.call("POST", "/api/v1/runs", {"jobnet": "remote"})["run_id"]
        wait_for(lambda: server.call("GET", f"/api/v1/runs/{warm}")["status"] == "succeeded",
                   "the first run")
        for _ in range(50):   # one at a time: the latency of one job, nothing queued
            one = server.call("POST", "/api/v1/runs", {"jobnet": "remote"})["run_id"]
            while server.call("GET", f"/api/v1/runs/{one}")["status"] != "succeeded":
                time.sleep(0.002)
        alone = one
        threads = 4

        def client(k: int) -> None:
            for _ in range(k, SERVER_RUNS, threads):
                server.call("POST", "/api/v1/runs", {"jobnet": "remote"})

        t0 = time.perf_counter()
        workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wait_for(lambda: not server.call("GET", "/api/v1/runs?status=running&limit=1"),
                   "the runs to end", 300)
        wall = time.perf_counter() - t0
    finally:
        server.stop()
    with sqlite3.connect(server.home / "jaz.db") as db:
        jobs = db.execute("SELECT started_at, ended_at FROM jobs WHERE run_id > ?",
                          (alone,)).fetchall()
        runs = db.execute("SELECT created_at, ended_at, status FROM runs WHERE id > ?",
                          (alone,)).fetchall()
        singles = db.execute("SELECT created_at, ended_at FROM runs WHERE id > ? AND "
                             "id <= ?", (warm, alone)).fetchall()

    def span(a: str, b: str) -> float:
        return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()

    job_times = [span(a, b) for a, b in jobs if a and b]
    run_times = [span(a, b) for a, b, _ in runs if a and b]
    single = [span(a, b) for a, b in singles if a and b]
    return {"rate": SERVER_RUNS / wall, "wall": wall,
            "succeeded": sum(1 for *_, s in runs if s == "succeeded"),
            "job_p50": statistics.median(job_times), "job_p99": pct(job_times, 0.99),
            "run_p50": statistics.median(run_times), "run_p99": pct(run_times, 0.99),
            "alone_p50": statistics.median(single), "alone_p99": pct(single, 0.99)}


def fan_out(tmp: Path, agent: AgentProcess) -> tuple[float, float]:
    """Seconds from a FAN_HOSTS-host job's start to its last instance's start (the best
    of 3), and the floor's: the same shells spawned one after another by a bare loop."""
    from jaz.engine.model import Job, RunAction
    from jaz.hosts.config import Host
    from jaz.hosts.executor import AgentHosts

    names = [f"web{i:02d}" for i in range(FAN_HOSTS)]
    hosts = AgentHosts({n: Host(name=n, agent=agent.address, fingerprint=agent.fingerprint,
                                token_file=agent.token_file, labels=("web",))
                        for n in names}, "bench:fan-out")
    folder = tmp / "fan-out"
    folder.mkdir()
    trace = folder / "trace"
    job = Job(name="wide", action=RunAction(script=f"echo $EPOCHREALTIME >> {trace}"),
              hosts=("label:web",), shell="/bin/bash")
    try:
        return _spread(hosts, job, folder, trace)
    finally:
        hosts.close()   # (50 links saying hello every 5 s would be the idle agent's work)


def _spread(hosts: Any, job: Any, folder: Path, trace: Path) -> tuple[float, float]:
    from jaz.engine.executors.base import Attempt

    spreads = []
    for i in range(4):   # the first connects the hosts' links
        trace.write_text("")
        stem = folder / f"wide.{i}"
        attempt = Attempt(run_id=1, jobnet="bench", job=job, attempt=i + 1, host="local",
                          env={}, cwd=folder, base_dir=folder,
                          stdout_path=Path(f"{stem}.out"), stderr_path=Path(f"{stem}.err"),
                          output_path=Path(f"{stem}.vars"))
        t0 = time.time()
        outcome = hosts.start(attempt).wait()
        assert outcome.exit_code == 0, outcome
        stamps = [float(x) for x in trace.read_text().split()]
        assert len(stamps) == FAN_HOSTS, stamps
        if i:
            spreads.append(max(stamps) - t0)
    floor = []
    for _ in range(3):
        trace.write_text("")
        t0 = time.time()
        procs = [subprocess.Popen(["/bin/bash", "-c", f"echo $EPOCHREALTIME >> {trace}"],
                                  start_new_session=True) for _ in range(FAN_HOSTS)]
        for p in procs:
            p.wait()
        floor.append(max(float(x) for x in trace.read_text().split()) - t0)
    return min(spreads), min(floor)


def idle(agent: AgentProcess) -> tuple[float, float]:
    time.sleep(2.0)   # idle now
    cpu0 = cpu_seconds(agent.proc.pid)
    time.sleep(IDLE_SAMPLE)   # (CPU time is counted in 10 ms ticks: 0.1 % of 10 s is one)
    return rss(agent.proc.pid), (cpu_seconds(agent.proc.pid) - cpu0) / IDLE_SAMPLE * 100


# ---------------------------------------------------------------- soak


def soak(tmp: Path, minutes: float) -> None:
    from jaz.engine.executors.base import Attempt
    from jaz.engine.model import Job, RunAction
    from jaz.hosts.executor import AgentHosts

    keep = min(300.0, minutes * 60 / 4)          # seconds a finished job is kept
    agent = AgentProcess(tmp / "soak-agent", {"keep_days": repr(keep / 86400)})
    hosts = AgentHosts({"a1": agent.host("a1")}, "bench:owner")
    logs = tmp / "soak-logs"
    logs.mkdir()
    job = Job(name="t", action=RunAction(script="true"))
    every = 10.0 if minutes <= 5 else 60.0        # seconds between samples
    lock = threading.Lock()
    ended: list[float] = []
    failed = [0]

    def finished(execution: Any, stem: Path, t0: float) -> None:
        outcome = execution.wait()
        with lock:
            ended.append(time.perf_counter() - t0)
            failed[0] += outcome.exit_code != 0
        for suffix in (".out", ".err", ".vars"):
            Path(f"{stem}{suffix}").unlink(missing_ok=True)

    print(f"soak: {minutes:g} min of 1,000 `true` jobs a minute through one agent, "
          f"keep_days = {keep:.0f} s (purged every {max(1.0, keep / 4):.0f} s)")
    print(f"{'m:ss':>6} {'jobs done':>9} {'RSS MiB':>8} {'CPU %':>6} {'db rows':>8} "
          f"{'db KiB':>8} {'job dirs':>8}")
    samples: list[tuple[float, int, int]] = []
    start = time.perf_counter()
    cpu0, next_sample, i = cpu_seconds(agent.proc.pid), start + every, 0
    total = int(minutes * 60 * RATE)
    def sample(now: float) -> None:
        nonlocal cpu0
        cpu = cpu_seconds(agent.proc.pid)
        rows, size, dirs = _agent_db(agent)
        samples.append((now - start, rows, size))
        with lock:
            done = len(ended)
        at = int(now - start)
        print(f"{at // 60:3d}:{at % 60:02d} {done:9d} {rss(agent.proc.pid) / 2**20:8.1f} "
              f"{(cpu - cpu0) / every * 100:6.1f} {rows:8d} {size / 1024:8.0f} {dirs:8d}",
              flush=True)
        cpu0 = cpu

    try:
        while i < total:
            now = time.perf_counter()
            if now >= next_sample:
                sample(now)
                next_sample += every
            elif now >= start + i / RATE:
                stem = logs / f"s.{i}"
                attempt = Attempt(run_id=1, jobnet="soak", job=job, attempt=1, host="a1",
                                  env={}, cwd=tmp, base_dir=tmp,
                                  stdout_path=Path(f"{stem}.out"),
                                  stderr_path=Path(f"{stem}.err"),
                                  output_path=Path(f"{stem}.vars"))
                execution = hosts.start(attempt)
                execution.report(lambda e=execution, s=stem, t=now: finished(e, s, t))
                i += 1
            else:
                time.sleep(min(start + i / RATE, next_sample) - now)
        wait_for(lambda: len(ended) >= total, "the soak's last jobs", 120)
        time.sleep(max(0.0, next_sample - time.perf_counter()))
        sample(time.perf_counter())
    finally:
        hosts.close()
        agent.stop()
    bound = RATE * (keep + max(1.0, keep / 4) + every) * 1.2
    most = max(r for _, r, _ in samples)
    late = [s for t, _, s in samples if t > minutes * 60 / 2]
    early = [s for t, _, s in samples if t <= minutes * 60 / 2] or late
    print(f"soak: {len(ended)} jobs ({failed[0]} failed), p50 {ms(statistics.median(ended))}; "
          f"database at most {most} rows (bound {bound:.0f}: {verdict(most <= bound)}), "
          f"size in the second half at most {max(late) / 1024:.0f} KiB vs "
          f"{max(early) / 1024:.0f} KiB in the first "
          f"({verdict(max(late) <= 2 * max(early) + 256 * 1024)})")


def _agent_db(agent: AgentProcess) -> tuple[int, int, int]:
    db = agent.folder / "agent.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (rows,), = conn.execute("SELECT count(*) FROM jobs").fetchall()
    size = sum(p.stat().st_size for p in agent.folder.glob("agent.db*"))
    jobs = agent.folder / "work" / "jobs"
    return rows, size, sum(1 for _ in jobs.iterdir()) if jobs.exists() else 0


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0,
                        help="how long the soak runs (0: no soak; 60: the hour)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jaz-agent-bench-"))
    agent = AgentProcess(tmp / "agent")
    try:
        trips = round_trips(tmp, agent)
        floor = spawn_floor(N)
        served = through_server(tmp, agent)
        spread, spread_floor = fan_out(tmp, agent)
        resident, cpu = idle(agent)
    finally:
        agent.stop()
    print(f"agent round trips: {N} `true` jobs, {IN_FLIGHT} in flight: "
          f"{trips['rate']:.0f} jobs/s (target >= 500: {verdict(trips['rate'] >= 500)}), "
          f"p50 {ms(trips['p50'])}, p99 {ms(trips['p99'])}")
    alone = trips["alone"]
    print(f"one at a time: p50 {ms(statistics.median(alone))} (target < 5 ms: "
          f"{verdict(statistics.median(alone) < 0.005)}), p99 {ms(pct(alone, 0.99))} "
          f"(floor: one sh -c true {spawn_ms():.1f} ms)")
    print(f"floor (sh -c true spawned directly, {IN_FLIGHT} at a time): {floor:.0f} jobs/s")
    print(f"through jaz server: {SERVER_RUNS} runs of one `true` job on the agent host, "
          f"started by POST /api/v1/runs (4 clients): {served['rate']:.0f} jobs/s "
          f"(target >= 300: {verdict(served['rate'] >= 300)}; {served['succeeded']} "
          f"succeeded), job p50 {ms(served['job_p50'])}, p99 {ms(served['job_p99'])}; "
          f"run created to ended p50 {ms(served['run_p50'])}, p99 {ms(served['run_p99'])}")
    print(f"  one at a time through jaz server: run created to ended p50 "
          f"{ms(served['alone_p50'])}, p99 {ms(served['alone_p99'])}")
    print(f"  floor (the same jobs by a bare agent client, above): {trips['rate']:.0f} "
          f"jobs/s, p50 {ms(trips['p50'])}; one at a time p50 "
          f"{ms(statistics.median(alone))}")
    print(f"fan-out of one job to {FAN_HOSTS} agent hosts: all started within "
          f"{ms(spread)} of the job's start (target < 100 ms: {verdict(spread < 0.1)}); "
          f"floor ({FAN_HOSTS} bash spawned by a bare loop): {ms(spread_floor)}")
    print(f"idle agent: {resident / 2**20:.1f} MiB resident (target < 40: "
          f"{verdict(resident < 40 * 2**20)}), {cpu:.2f} % CPU (target < 0.2: "
          f"{verdict(cpu < 0.2)})")
    if args.minutes > 0:
        soak(tmp, args.minutes)


if __name__ == "__main__":
    main()
