"""`make bench`: whole-process timings of `jaz run` beside a floor.

The floor is a small Python script that spawns the same `/bin/sh -c true`
processes directly, with the same parallelism and the same dependency order,
and nothing else: no parsing, no store, no logs. (jaz's wall − floor wall) / jobs
is the engine's overhead per job, store commits included. Each figure is the
median of several runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
ROOT = Path(__file__).resolve().parent.parent

FLOOR = r'''
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
layers = [int(x) for x in sys.argv[1].split(",")]
parallel = int(sys.argv[2])
def one(_):
    subprocess.run(["/bin/sh", "-c", "true"], start_new_session=True)
with ThreadPoolExecutor(parallel) as pool:
    for width in layers:
        list(pool.map(one, range(width)))
'''


def chain(n: int) -> tuple[str, list[int]]:
    lines = []
    for i in range(n):
        lines.append(f"[jobs.j{i}]\nrun = \"true\"")
        if i:
            lines.append(f"needs = [\"j{i - 1}\"]")
    return "\n".join(lines), [1] * n


def fanout(n: int) -> tuple[str, list[int]]:
    return "\n".join(f"[jobs.j{i}]\nrun = \"true\"" for i in range(n)), [n]


def layered(layers: int, width: int) -> tuple[str, list[int]]:
    lines = []
    for layer in range(layers):
        for i in range(width):
            lines.append(f"[jobs.l{layer}_{i}]\nrun = \"true\"")
            if layer:
                needs = ", ".join(f"\"l{layer - 1}_{k}\"" for k in range(width))
                lines.append(f"needs = [{needs}]")
    return "\n".join(lines), [width] * layers


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{result.stderr.decode()}")
    return took


def main() -> None:
    workloads = [
        ("one job (start-up)", *fanout(1), 16),
        ("chain of 100", *chain(100), 16),
        ("fan-out of 500, parallel 8", *fanout(500), 8),
        ("10x10 layered DAG", *layered(10, 10), 16),
    ]
    jaz = [sys.executable, "-m", "jaz"]
    print(f"{'workload':<28} {'jobs':>5} {'jaz':>9} {'floor':>9} {'ratio':>6} "
          f"{'overhead/job':>13} {'w/o start-up':>13}")
    startup = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "JAZ_HOME": tmp}
        for name, text, layers, parallel in workloads:
            path = Path(tmp) / (name.split()[0] + ".toml")
            path.write_text(text)
            jobs = sum(layers)
            jaz_times, floor_times = [], []
            for i in range(REPEAT):
                db = Path(tmp) / f"{path.stem}-{i}.db"
                jaz_times.append(wall([*jaz, "run", str(path), "--db", str(db),
                                       "--parallel", str(parallel)], env))
                floor_times.append(wall([sys.executable, "-c", FLOOR,
                                         ",".join(map(str, layers)), str(parallel)], env))
            j, f = statistics.median(jaz_times), statistics.median(floor_times)
            per_job = (j - f) / jobs * 1000
            if jobs == 1:
                startup = j - f
            engine = (j - f - startup) / jobs * 1000
            print(f"{name:<28} {jobs:>5} {j:>8.3f}s {f:>8.3f}s {j / f:>5.2f}x "
                  f"{per_job:>10.2f} ms {engine:>10.2f} ms")
    print("overhead/job = (jaz - floor) / jobs; w/o start-up subtracts the one-job run's "
          "overhead first (what the engine costs per job once it runs)")
    print("targets: overhead under 1 ms per job; one-job `jaz run` under 0.150 s wall")


if __name__ == "__main__":
    main()
