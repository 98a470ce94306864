"""`make bench`, the TUI (issue 5): `jaz tui` against a real `jaz server` on 127.0.0.1.

The app runs headless (`App.run_test`, 160x48) in this process; every screen update is
also encoded to terminal escape sequences as a real terminal would get them (headless
Textual skips that step), and its time is recorded as a paint. Figures:

- first paint: RUNS runs in the server's database (default 10,000, written straight
  into SQLite like server_bench's API part); wall time from creating the app to the
  first paint with rows in the Runs table, and until all of them are loaded.
- run detail: a run of a JOBS-job jobnet (default 500: 10 layers of 50, each job
  needing two of the layer before, `run = "true"`), started through the API and
  finished before timing; from push_screen(RunDetailScreen) to the first paint of the
  graph with every job and its state.
- scrolling: page-down key presses in the Runs table, and arrow keys moving the
  selection in the graph; time per key until the screen is repainted (mean, p99).
- live updates: LIVE one-job runs started through the API, paced 20 a second, while
  the Runs screen shows its rows; delay from the POST's answer to the run's row on
  the screen, and to its state turning succeeded.
- idle: this process's CPU time over IDLE seconds with the Runs screen loaded, the
  event stream connected and the server idle.
- the same with one run running (its duration cell ticks every second).
- a real `jaz tui` process in a 160x48 pseudo-terminal: from exec to the newest run's
  id on the terminal, then its CPU (/proc/PID/stat) over IDLE seconds once loaded.

"No visible lag" is taken as p99 < 50 ms for a key and < 200 ms for a live update.
The server, the client threads and the app share the same 2-core machine.
BENCH_QUICK=1 is a smaller, faster try (2,000 runs, 100 jobs, 3 s idle); TUI_RUNS,
TUI_JOBS, TUI_LIVE and TUI_IDLE set each size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import ROOT, Server, fill, pct, verdict, wait_for  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("TUI_RUNS", "2000" if QUICK else "10000"))
JOBS = int(os.environ.get("TUI_JOBS", "100" if QUICK else "500"))
LAYER = 50                                   # jobs per layer of the big jobnet
LIVE = int(os.environ.get("TUI_LIVE", "20" if QUICK else "50"))
LIVE_RATE = 20.0                             # runs started per second
IDLE = float(os.environ.get("TUI_IDLE", "3" if QUICK else "10"))
PAGES = 30 if QUICK else 100                 # page-down presses
MOVES = 30 if QUICK else 100                 # arrow presses in the graph
SIZE = (160, 48)
KEY_LAG, LIVE_LAG = 0.050, 0.200             # "no visible lag"

sys.path.insert(0, str(ROOT))


def big_jobnet(jobs: int) -> str:
    """`jobs` jobs in layers of LAYER; each needs two jobs of the layer before."""
    lines = []
    for i in range(jobs):
        layer, k = divmod(i, LAYER)
        lines.append(f"[jobs.j{layer:02d}_{k:02d}]\nrun = \"true\"")
        if layer:
            width = min(LAYER, jobs - (layer - 1) * LAYER)
            a, b = f"j{layer - 1:02d}_{k % width:02d}", f"j{layer - 1:02d}_{(k + 1) % width:02d}"
            lines.append(f"needs = {json.dumps(sorted({a, b}))}")
    return "\n".join(lines) + "\n"


class Paints:
    """Wraps the app's `_display`: encodes each update for a terminal (headless Textual
    does not) and records when it happened. `expect(probe)`: the time of the first
    paint at which `probe()` holds is `hit`; `watch(fn)`: fn(time) after every paint."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self.probe: Any = None
        self.hit: float | None = None
        self.watcher: Any = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None or app._batch_count:
                return
            if hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            now = time.perf_counter()
            self.count += 1
            if self.probe is not None and self.hit is None and self.probe():
                self.hit = now
            if self.watcher is not None:
                self.watcher(now)

        app._display = display

    def expect(self, probe: Any) -> None:
        self.probe, self.hit = probe, None

    async def wait(self, what: str, within: float = 60.0) -> float:
        """The time of the paint `expect` asked for, once it happened; the app runs on
        its own meanwhile (no forced refreshes, unlike Pilot.pause)."""
        deadline = time.monotonic() + within
        while self.hit is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"tui bench: timed out waiting for {what}")
            await asyncio.sleep(0.001)
        self.probe = None
        return self.hit


def press(app: Any, key: str) -> None:
    """A key as the terminal driver sends it (Pilot.press also waits for idle)."""
    from textual import events

    event = events.Key(key, None)
    event.set_sender(app)
    app._driver.send_message(event)


async def keys(app: Any, paints: Paints, key: str, n: int, moved: Any) -> list[float]:
    """Seconds from each press of `key` to the first paint where `moved(before)` holds,
    `before` being what `moved(None)` returned before the press; presses that change
    nothing (at an end) are not counted. 50 ms between presses, a fast key repeat."""
    steps = []
    for _ in range(n):
        before = moved(None)
        paints.expect(lambda b=before: moved(b))
        t0 = time.perf_counter()
        press(app, key)
        try:
            hit = await paints.wait(f"a repaint after {key}", within=2.0)
        except SystemExit:
            paints.probe = None
            continue          # nothing moved
        steps.append(hit - t0)
        await asyncio.sleep(0.05)
    return steps


def cpu_seconds() -> float:
    return time.process_time()


async def scenario(server: Server, big_run: int) -> dict[str, Any]:
    from jaz.client import Client
    from jaz.tui.app import JazApp
    from jaz.tui.messages import RunChanged
    from jaz.tui.screens.run_detail import RunDetailScreen
    from jaz.tui.widgets.graph import JobGraph
    from jaz.tui.widgets.runs_table import RunsTable

    out: dict[str, Any] = {}
    expected = min(RUNS + 1, 10_000)
    with Client(f"http://{server.host}:{server.port}", server.token) as client:
        t0 = time.perf_counter()
        app = JazApp(client)
        paints = Paints(app)

        def table() -> RunsTable | None:
            try:
                return app.screen.query_one(RunsTable)
            except Exception:
                return None

        paints.expect(lambda: (t := table()) is not None and t.row_count > 0)
        async with app.run_test(size=SIZE) as pilot:
            out["first_paint"] = await paints.wait("the first rows") - t0
            runs_table = table()
            assert runs_table is not None
            paints.expect(lambda: len(runs_table.runs) >= expected
                          and runs_table.row_count >= expected)
            out["all_loaded"] = await paints.wait("every row") - t0
            out["rows"] = runs_table.row_count

            # ---- scrolling the table: until the moved cursor is painted in view
            def cursor_moved(before: Any) -> Any:
                row, top = runs_table.cursor_row, int(runs_table.scroll_y)
                if before is None:
                    return row
                height = runs_table.scrollable_content_region.height - runs_table.header_height
                return row != before and top <= row < top + height

            runs_table.focus()
            await pilot.pause()
            out["pagedown"] = await keys(app, paints, "pagedown", PAGES, cursor_moved)
            await pilot.press("home")
            await pilot.pause()

            # ---- live updates: POSTs from a thread; each paint looks for their rows
            posted: dict[int, float] = {}
            lock = threading.Lock()

            def poster() -> None:
                start = time.perf_counter()
                for i in range(LIVE):
                    wait = start + i / LIVE_RATE - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    rid = int(server.call("POST", "/api/v1/runs", {"jobnet": "one"})["run_id"])
                    with lock:
                        posted[rid] = time.perf_counter()

            shown: dict[int, float] = {}
            done: dict[int, float] = {}
            ended: dict[int, float] = {}    # wall seconds from the run's end to its row

            def watch(now: float) -> None:
                with lock:
                    ids = [rid for rid in posted if rid not in done]
                for rid in ids:
                    key = str(rid)
                    if rid not in shown and key in runs_table.rows:
                        shown[rid] = now
                    run = runs_table.runs.get(key, {})
                    if rid in shown and run.get("status") == "succeeded":
                        done[rid] = now
                        ended[rid] = time.time() - datetime.fromisoformat(
                            run["ended_at"]).timestamp()

            arrived: dict[int, float] = {}   # the run's first event reached the app
            broadcast = app.broadcast

            def spy(make: Any) -> None:
                message = make()
                if isinstance(message, RunChanged):
                    arrived.setdefault(int(message.run["run_id"]), time.perf_counter())
                broadcast(make)

            app.broadcast = spy   # type: ignore[method-assign]
            all_done = asyncio.Event()

            def watch_all(now: float) -> None:
                watch(now)
                if len(done) >= LIVE:
                    all_done.set()

            paints.watcher = watch_all
            thread = threading.Thread(target=poster)
            thread.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_done.wait(), LIVE / LIVE_RATE + 60)
            thread.join()
            paints.watcher = None
            app.broadcast = broadcast   # type: ignore[method-assign]
            out["live_shown"] = [max(0.0, shown[r] - posted[r]) for r in shown]
            out["live_event"] = [max(0.0, arrived[r] - posted[r]) for r in shown
                                 if r in arrived]
            out["live_done"] = [max(0.0, done[r] - posted[r]) for r in done]
            out["live_ended"] = [max(0.0, v) for v in ended.values()]
            out["live_missing"] = LIVE - len(done)

            # ---- idle, with the stream connected
            await asyncio.to_thread(wait_for, lambda: not server.call(
                "GET", "/api/v1/runs?status=running&limit=1"), "the live runs to end")
            await asyncio.sleep(2.0)
            connected = app.stream_connected
            c0, w0 = cpu_seconds(), time.perf_counter()
            await asyncio.sleep(IDLE)
            out["idle_cpu"] = (cpu_seconds() - c0) / (time.perf_counter() - w0)
            out["idle_connected"] = connected and app.stream_connected

            # ---- the same with one run running: its duration cell ticks every second
            rid = int(server.call("POST", "/api/v1/runs", {"jobnet": "sleep"})["run_id"])
            paints.expect(lambda: runs_table.runs.get(str(rid), {}).get("status") == "running")
            await paints.wait("the sleeping run")
            await asyncio.sleep(1.5)
            c0, w0 = cpu_seconds(), time.perf_counter()
            await asyncio.sleep(IDLE)
            out["running_cpu"] = (cpu_seconds() - c0) / (time.perf_counter() - w0)
            server.call("POST", f"/api/v1/runs/{rid}/stop")

            # ---- run detail of the big run
            def graph_ready() -> bool:
                screen = app.screen
                if not isinstance(screen, RunDetailScreen):
                    return False
                graph = screen.query_one(JobGraph)
                nodes = graph.graph_layout.nodes
                return len(nodes) == JOBS and all(graph.state_of(n) for n in nodes)

            paints.expect(graph_ready)
            t1 = time.perf_counter()
            app.push_screen(RunDetailScreen(big_run))
            out["detail"] = await paints.wait("the graph") - t1
            graph = app.screen.query_one(JobGraph)
            graph.focus()
            await pilot.pause()

            def selection_moved(before: Any) -> Any:
                job = graph.selected
                if before is None or job is None:
                    return job
                node = graph.graph_layout.nodes[job]
                x, y = graph.scroll_offset
                view = graph.scrollable_content_region
                return (job != before and x <= node.x and node.x + node.width <= x + view.width
                        and y <= node.row < y + view.height)

            layers = len(graph.graph_layout.columns)
            cycle = ["right"] * (layers - 1) + ["down"] * 2 + ["left"] * (layers - 1) + \
                ["down"] * 2
            steps: list[float] = []
            for key in (cycle * MOVES)[:MOVES]:
                steps += await keys(app, paints, key, 1, selection_moved)
            out["graph_keys"] = steps
            await pilot.press("q")
    return out


def real_process(server: Server) -> dict[str, float]:
    """`jaz tui` as its own process in a 160x48 pseudo-terminal: from exec to the first
    screen with run rows on it (imports included), then its CPU over IDLE seconds."""
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    from server_bench import TICK, cpu_ticks

    newest = str(server.call("GET", "/api/v1/runs?limit=1")[0]["run_id"]).encode()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor")
    seen = bytearray()
    first: list[float] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jaz", "tui", "--server",
                             f"http://{server.host}:{server.port}", "--token", server.token],
                            stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)

    def drain() -> None:   # the terminal: read everything, note the first rows
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            if not first:
                seen.extend(chunk)
                if newest in seen:
                    first.append(time.perf_counter() - t0)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for(lambda: first or proc.poll() is not None, "the real TUI's first rows", 30)
        if not first:
            raise SystemExit(f"tui bench: `jaz tui` exited ({proc.returncode}): "
                             f"{bytes(seen[-500:])!r}")
        time.sleep(8.0)   # all pages loaded, settled
        ticks0, w0 = cpu_ticks(proc.pid), time.perf_counter()
        time.sleep(IDLE)
        cpu = (cpu_ticks(proc.pid) - ticks0) / TICK / (time.perf_counter() - w0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)
    return {"first": first[0], "cpu": cpu}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="jaz-tui-bench-"))
    server: Server | None = None
    try:
        db = tmp / "history.db"
        filled = fill(db, RUNS)
        server = Server(tmp, extra=f'database = "{db}"\n')
        (server.jobnets / "one.toml").write_text('[jobs.a]\nrun = "true"\n')
        (server.jobnets / "sleep.toml").write_text('[jobs.a]\nrun = "sleep 600"\n')
        (server.jobnets / "big.toml").write_text(big_jobnet(JOBS))
        server.start()
        t0 = time.perf_counter()
        big = int(server.call("POST", "/api/v1/runs", {"jobnet": "big"})["run_id"])
        run = wait_for(lambda: (r := server.call("GET", f"/api/v1/runs/{big}"))["status"]
                       not in ("running", "scheduled") and r, "the big run", 300)
        took = time.perf_counter() - t0
        result = asyncio.run(scenario(server, big))
        result["real"] = real_process(server)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report(result, filled, took, run["status"])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(r: dict[str, Any], filled: float, took: float, status: str) -> None:
    print(f"tui: `jaz tui` headless {SIZE[0]}x{SIZE[1]} against a real `jaz server` on "
          f"127.0.0.1, {os.cpu_count()} CPUs ({RUNS:,} runs filled in {filled:.1f} s; "
          f"the {JOBS}-job run {status} in {took:.1f} s)")
    print(f"first paint, Runs with {RUNS:,} runs in history: {r['first_paint']:.3f} s "
          f"(all {r['rows']:,} rows loaded at {r['all_loaded']:.3f} s) "
          f"target < 1 s: {verdict(r['first_paint'] < 1.0)}")
    print(f"run detail, {JOBS} jobs: graph painted {r['detail']:.3f} s after push_screen "
          f"target < 1 s: {verdict(r['detail'] < 1.0)}")
    for name, steps in (("scroll, page-down in the Runs table", r["pagedown"]),
                        (f"selection move in the {JOBS}-job graph", r["graph_keys"])):
        if not steps:
            print(f"{name}: no repaint measured: MISSED")
            continue
        p99 = pct(steps, 0.99)
        print(f"{name} ({len(steps)} keys): mean {ms(statistics.mean(steps))} "
              f"p99 {ms(p99)} target p99 < {KEY_LAG * 1000:.0f} ms: {verdict(p99 < KEY_LAG)}")
    shown, done, ended = r["live_shown"], r["live_done"], r["live_ended"]
    if shown and done:
        p99 = max(pct(shown, 0.99), pct(ended, 0.99))
        print(f"live updates, {LIVE} runs started at {LIVE_RATE:.0f}/s: row shown after the "
              f"POST p50 {ms(pct(shown, 0.5))} p99 {ms(pct(shown, 0.99))} (its event reached "
              f"the app p50 {ms(pct(r['live_event'], 0.5))} p99 "
              f"{ms(pct(r['live_event'], 0.99))}); succeeded shown "
              f"after the run's end p50 {ms(pct(ended, 0.5))} p99 {ms(pct(ended, 0.99))} "
              f"(after the POST, the job's run included: p50 {ms(pct(done, 0.5))} "
              f"p99 {ms(pct(done, 0.99))})"
              + (f"; {r['live_missing']} never shown" if r["live_missing"] else "")
              + f" target p99 < {LIVE_LAG * 1000:.0f} ms: "
              f"{verdict(p99 < LIVE_LAG and not r['live_missing'])}")
    else:
        print("live updates: no run was shown: MISSED")
    real = r["real"]
    print(f"real `jaz tui` process in a {SIZE[0]}x{SIZE[1]} pty: first rows on the terminal "
          f"{real['first']:.3f} s after exec target < 1 s: {verdict(real['first'] < 1.0)}; "
          f"idle CPU {real['cpu'] * 100:.2f} % over {IDLE:.0f} s target < 5 %: "
          f"{verdict(real['cpu'] < 0.05)}")
    print(f"one run running (its duration ticking), Runs screen loaded: CPU "
          f"{r['running_cpu'] * 100:.2f} % over {IDLE:.0f} s (no target; idle's 5 %: "
          f"{verdict(r['running_cpu'] < 0.05)})")
    print(f"idle, Runs screen loaded, stream {'connected' if r['idle_connected'] else 'DOWN'}"
          f": CPU {r['idle_cpu'] * 100:.2f} % over {IDLE:.0f} s target < 5 %: "
          f"{verdict(r['idle_cpu'] < 0.05 and r['idle_connected'])}")


if __name__ == "__main__":
    main()
