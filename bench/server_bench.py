"""`make bench`, the server (issue 4): real `jaz server` processes on 127.0.0.1.

- schedule lag: 1,000 jobnets, each firing once a minute (cron with a seconds field,
  spread over the minute: ~17 fires a second); each job is a bash that records its own
  start (`$EPOCHREALTIME`, a builtin: no process of its own, unlike `$(date)`, which
  forked a subshell and exec'd `date` first) beside `$JAZ_SCHEDULED_TIME`. Lag = process
  start − scheduled instant, over LAG_WINDOW seconds of fires (default 30 s, ~500 fires).
- throughput: THROUGHPUT_RUNS one-job runs (`true`) started with POST /api/v1/runs from
  4 client threads; wall time from the first POST until none is running.
- idle: 10,000 jobnet files with yearly crons; once loaded, CPU ticks of the server
  process over 10 s (/proc/PID/stat) and its resident size (VmRSS).
- API: 100,000 runs written straight into a database (SqliteStore, batched), then
  GET /api/v1/runs pages: the default page, deep offsets, filters; p50/p99.

Every figure is printed beside its target with ok/MISSED. The clients run on the
same 2-core machine as the server, so they take CPU from it too.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAG_JOBNETS = 1000
BASH = shutil.which("bash") or "/bin/bash"   # the lag jobs' shell ($EPOCHREALTIME)
LAG_WINDOW = float(os.environ.get("LAG_WINDOW", "30"))
THROUGHPUT_RUNS = int(os.environ.get("THROUGHPUT_RUNS", "1500"))
IDLE_JOBNETS = 10_000
IDLE_SAMPLE = 10.0
API_RUNS = 100_000
TICK = os.sysconf("SC_CLK_TCK")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"bench: timed out waiting for {what}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


class Server:
    """One `jaz server` process in its own JAZ_HOME, like tests/test_server_process.py."""

    def __init__(self, root: Path, extra: str = "") -> None:
        self.root = root
        self.home = root / "home"
        self.jobnets = root / "jobnets"
        self.jobnets.mkdir(parents=True, exist_ok=True)
        self.config = root / "jaz.toml"
        self.config.write_text('listen = "127.0.0.1:0"\njobnets = "jobnets"\n'
                               f'allow_root = true\nlog_level = "warning"\n{extra}')
        self.proc: subprocess.Popen[bytes] | None = None
        self._local = threading.local()

    def start(self, timeout: float = 120.0) -> float:
        """Start it; returns the seconds until the API answered."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
        env["JAZ_HOME"] = str(self.home)
        url_file = self.home / "server.url"
        t0 = time.perf_counter()
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c",
                                          str(self.config)], env=env,
                                         stdout=subprocess.DEVNULL, stderr=log)
        url = wait_for(lambda: self._alive() and url_file.exists()
                       and url_file.read_text().strip(), "server.url", timeout)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = (self.home / "admin.token").read_text().strip()
        wait_for(self._healthy, "the API", timeout)
        return time.perf_counter() - t0

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.root / "server.log").read_text()[-3000:]
            raise SystemExit(f"server bench: the server exited ({self.proc.returncode}):\n{log}")
        return True

    def _healthy(self) -> bool:
        try:
            return bool(self.call("GET", "/healthz")["status"] == "ok")
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request on this thread's keep-alive connection."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        for attempt in (0, 1):
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self._local.conn = conn
            try:
                data = json.dumps(body).encode() if body is not None else None
                conn.request(method, path, body=data, headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if attempt:
                    raise
                continue
            if response.status >= 400:
                raise SystemExit(f"server bench: {method} {path}: {response.status} "
                                 f"{payload[:300]!r}")
            if path == "/metrics":
                return payload.decode()
            return json.loads(payload)
        raise AssertionError("unreachable")

    def metric(self, name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.call("GET", "/metrics").splitlines():
            if line.startswith(name):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])     # utime + stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------- schedule lag


def schedule_lag(tmp: Path) -> dict[str, Any]:
    server = Server(tmp / "lag")
    marks = tmp / "lag" / "starts"
    for i in range(LAG_JOBNETS):
        second = i * 60 // LAG_JOBNETS
        (server.jobnets / f"every-minute-{i:04d}.toml").write_text(
            f'[schedule]\ncron = "* * * * * {second}"\n'
            f'[jobs.a]\nshell = "{BASH}"\n'
            f'run = \'echo "$EPOCHREALTIME $JAZ_SCHEDULED_TIME" >> {marks}\'\n')
    marks.touch()
    took = server.start()
    try:
        # the first tick materialises 10 fires per jobnet (~2 s here, in parts of 100
        # jobnets): measure once it is done, not while it is (its fires are late then:
        # the start-up, not the steady state this measures)
        wait_for(lambda: server.metric('jaz_runs{state="scheduled"}').get(
            'jaz_runs{state="scheduled"}', 0) >= LAG_JOBNETS * 10, "the first tick", 180)
        t0 = time.time()
        first = float(int(t0) + 2)
        last = first + LAG_WINDOW
        ticks0 = cpu_ticks(server.pid)
        time.sleep(max(0.0, last - time.time() + 3.0))
        ticks = cpu_ticks(server.pid) - ticks0
        span = time.time() - t0
    finally:
        server.stop()
    lags: list[float] = []
    for line in marks.read_text().splitlines():
        started, _, scheduled = line.partition(" ")
        at = datetime.fromisoformat(scheduled).timestamp()
        if first <= at < last:
            lags.append(float(started) - at)
    expected = sum(1 for i in range(LAG_JOBNETS)
                   for t in range(int(first), int(last))
                   if t % 60 == i * 60 // LAG_JOBNETS)
    return {"lags": lags, "expected": expected, "load": took,
            "cpu": ticks / TICK / span}


# ---------------------------------------------------------------- throughput


def throughput(tmp: Path) -> dict[str, Any]:
    server = Server(tmp / "tp")
    (server.jobnets / "one.toml").write_text('[jobs.a]\nrun = "true"\n')
    server.start()
    try:
        n, threads = THROUGHPUT_RUNS, 4
        post_latency: list[float] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            mine = []
            for _ in range(k, n, threads):
                t = time.perf_counter()
                server.call("POST", "/api/v1/runs", {"jobnet": "one"})
                mine.append(time.perf_counter() - t)
            with lock:
                post_latency.extend(mine)

        ticks0 = cpu_ticks(server.pid)
        t0 = time.perf_counter()
        workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        posted = time.perf_counter() - t0
        wait_for(lambda: not server.call("GET", "/api/v1/runs?status=running&limit=1"),
                 "the runs to end", 300)
        wall = time.perf_counter() - t0
        cpu = (cpu_ticks(server.pid) - ticks0) / TICK
        states = server.metric("jaz_runs{")
    finally:
        server.stop()
    return {"n": n, "wall": wall, "posted": posted, "cpu": cpu,
            "succeeded": states.get('jaz_runs{state="succeeded"}', 0),
            "post_p50": statistics.median(post_latency), "post_p99": pct(post_latency, 0.99)}


# ---------------------------------------------------------------- idle


def idle(tmp: Path) -> dict[str, Any]:
    server = Server(tmp / "idle")
    for i in range(IDLE_JOBNETS):
        minute, hour, day, month = i % 60, (i // 60) % 24, 1 + (i // 1440) % 28, 1 + i % 12
        (server.jobnets / f"yearly-{i:05d}.toml").write_text(
            f'description = "a yearly job"\n[schedule]\ncron = "{minute} {hour} {day} {month} *"\n'
            f'[jobs.a]\nrun = "echo {i}"\n[jobs.b]\nneeds = ["a"]\nrun = "true"\n')
    took = server.start(timeout=300)
    try:
        wait_for(lambda: server.metric("jaz_jobnets").get("jaz_jobnets") == IDLE_JOBNETS,
                 "the jobnets", 300)
        time.sleep(6.0)            # the first scheduler tick and folder look are done
        ticks0, t0 = cpu_ticks(server.pid), time.perf_counter()
        time.sleep(IDLE_SAMPLE)
        cpu = (cpu_ticks(server.pid) - ticks0) / TICK / (time.perf_counter() - t0)
        rss = rss_bytes(server.pid)
    finally:
        server.stop()
    return {"cpu": cpu, "rss": rss, "load": took}


# ---------------------------------------------------------------- API


def fill(db: Path, n: int) -> float:
    from jaz.engine.model import JobState, RunState
    from jaz.engine.records import JobRecord, RunRecord
    from jaz.engine.store.sqlite import SqliteStore

    t0 = time.perf_counter()
    store = SqliteStore(db)
    start = datetime.now(UTC) - timedelta(days=100)
    step = timedelta(days=100) / n
    with store.batch():
        for i in range(n):
            at = start + step * i
            failed = i % 50 == 0
            run = RunRecord(jobnet=f"net-{i % 100:03d}",
                            status=RunState.FAILED if failed else RunState.SUCCEEDED,
                            version="0" * 64, trigger="schedule", created_at=at,
                            scheduled_at=at, started_at=at, ended_at=at + timedelta(seconds=3),
                            params={"DAY": at.date().isoformat()})
            job = JobRecord(name="a", kind="run",
                            status=JobState.FAILED if failed else JobState.SUCCEEDED,
                            attempts=1, executions=1, exit_code=1 if failed else 0,
                            started_at=at, ended_at=at + timedelta(seconds=3))
            store.create_run(run, [job])
    store.close()
    return time.perf_counter() - t0


def api(tmp: Path) -> dict[str, Any]:
    db = tmp / "api" / "history.db"
    db.parent.mkdir(parents=True)
    filled = fill(db, API_RUNS)
    server = Server(tmp / "api", extra=f'database = "{db}"\n')
    server.start()
    queries = {
        "GET /runs?limit=50 (x200)": ["/api/v1/runs?limit=50"] * 200,
        "offset 0..99,950 (x40)": [f"/api/v1/runs?limit=50&offset={k * 2500}"
                                   for k in range(40)],
        "jobnet= (x40)": [f"/api/v1/runs?limit=50&jobnet=net-{k:03d}" for k in range(40)],
        "status=failed (x40)": [f"/api/v1/runs?limit=50&status=failed&offset={k * 10}"
                                for k in range(40)],
        "since=30 days ago (x20)": [
            "/api/v1/runs?limit=50&since="
            + (datetime.now() - timedelta(days=30)).isoformat(timespec="seconds")] * 20,
    }
    out: dict[str, list[float]] = {}
    try:
        for path in queries["GET /runs?limit=50 (x200)"][:10]:
            server.call("GET", path)         # warm: connection, caches
        for name, paths in queries.items():
            times = []
            for path in paths:
                t = time.perf_counter()
                page = server.call("GET", path)
                times.append(time.perf_counter() - t)
                assert len(page) == 50, (path, len(page))
            out[name] = times
    finally:
        server.stop()
    return {"filled": filled, "times": out}


# ---------------------------------------------------------------- main


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="jaz-server-bench-"))
    parts = sys.argv[1:] or ["throughput", "api", "idle", "lag"]   # a subset: name them
    try:
        run(tmp, parts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, parts: list[str]) -> None:
    print(f"server: real `jaz server` processes on 127.0.0.1, {os.cpu_count()} CPUs")
    reports = {"throughput": report_throughput, "api": report_api, "idle": report_idle,
               "lag": report_lag}
    for name, report in reports.items():
        if name in parts:
            # what the parts before wrote (a 100,000-run database, 10,000 files) is on
            # disk before this one measures: its write-back stalled the next part's
            # commits here (a lag of 1.6 s once, after the API part)
            os.sync()
            report(tmp)


def report_throughput(tmp: Path) -> None:
    t = throughput(tmp)
    rate = t["n"] / t["wall"]
    print(f"throughput, {t['n']} one-job runs via POST /api/v1/runs (4 clients): "
          f"{rate:.0f} runs/s ({t['wall']:.2f} s wall, POSTs done at {t['posted']:.2f} s, "
          f"POST p50 {t['post_p50'] * 1000:.1f} ms p99 {t['post_p99'] * 1000:.1f} ms, "
          f"server CPU {t['cpu']:.2f} s, {t['succeeded']:.0f} succeeded) "
          f"target > 300/s: {verdict(rate > 300 and t['succeeded'] == t['n'])}")


def report_api(tmp: Path) -> None:
    a = api(tmp)
    print(f"API, {API_RUNS:,} runs in history (filled in {a['filled']:.1f} s):")
    for name, times in a["times"].items():
        p99 = pct(times, 0.99)
        print(f"  {name:<28} p50 {statistics.median(times) * 1000:6.1f} ms  "
              f"p99 {p99 * 1000:6.1f} ms  target p99 < 50 ms: {verdict(p99 < 0.050)}")


def report_idle(tmp: Path) -> None:
    i = idle(tmp)
    print(f"idle, {IDLE_JOBNETS:,} jobnets loaded (API up after {i['load']:.1f} s): "
          f"CPU {i['cpu'] * 100:.2f} % over {IDLE_SAMPLE:.0f} s "
          f"target < 1 %: {verdict(i['cpu'] < 0.01)}; "
          f"resident {i['rss'] / 2**20:.0f} MiB target < 200 MB: "
          f"{verdict(i['rss'] < 200e6)}")


def report_lag(tmp: Path) -> None:
    lag = schedule_lag(tmp)
    lags = lag["lags"]
    if not lags:
        print("schedule lag: no fires recorded: MISSED")
        return
    p50, p99, worst = pct(lags, 0.5), pct(lags, 0.99), max(lags)
    complete = len(lags) == lag["expected"]
    print(f"schedule lag, {LAG_JOBNETS:,} jobnets firing every minute, {len(lags)} fires "
          f"of {lag['expected']} in {LAG_WINDOW:.0f} s: p50 {p50 * 1000:.1f} ms "
          f"p99 {p99 * 1000:.1f} ms max {worst * 1000:.1f} ms (server CPU "
          f"{lag['cpu'] * 100:.0f} %) target p99 < 50 ms: {verdict(p99 < 0.050 and complete)}")
    floor = spawn_floor(tmp / "floor")
    print(f"  the machine's floor now: {FLOOR_BURST} such jobs started by a bare posix_spawn "
          f"loop, no server: the last begins p50 {pct(floor, 0.5) * 1000:.1f} ms, p99 "
          f"{pct(floor, 0.99) * 1000:.1f} ms after the burst's start ({len(floor)} bursts)")


FLOOR_BURST = LAG_JOBNETS // 60 + 1   # the fires of one second in the lag benchmark
FLOOR_BURSTS = 30


def spawn_floor(tmp: Path) -> list[float]:
    """What starting one second's burst of the lag benchmark's jobs costs on this
    machine at this moment, with no server at all: a bare loop of `posix_spawn`s of the
    same script (own session, logs in files), timed from the loop's start to the last
    job's stamp. Runs alongside the lag figure because this VM's speed swings."""
    tmp.mkdir(parents=True)
    marks = tmp / "starts"
    script = f'echo "$EPOCHREALTIME" >> {marks}'.encode()
    env = dict(os.environb)
    stdin = os.open(os.devnull, os.O_RDONLY)
    lasts: list[float] = []
    try:
        for burst in range(FLOOR_BURSTS):
            marks.write_text("")
            t0, pids = time.time(), []
            for i in range(FLOOR_BURST):
                log = os.fsencode(tmp / f"{burst}.{i}")
                pids.append(os.posix_spawn(os.fsencode(BASH), [b"bash", b"-c", script], env,
                                           setsid=True, file_actions=[
                    (os.POSIX_SPAWN_DUP2, stdin, 0),
                    (os.POSIX_SPAWN_OPEN, 1, log + b".out", os.O_WRONLY | os.O_CREAT, 0o644),
                    (os.POSIX_SPAWN_OPEN, 2, log + b".err", os.O_WRONLY | os.O_CREAT, 0o644)]))
            for pid in pids:
                os.waitpid(pid, 0)
            lasts.append(max(float(x) for x in marks.read_text().split()) - t0)
    finally:
        os.close(stdin)
    return lasts


if __name__ == "__main__":
    main()
