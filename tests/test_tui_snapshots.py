"""Snapshots of every screen of `jaz tui` at 80x24 and 160x48 (pytest-textual-snapshot),
in fixed states: a running run with a failed branch, an `error` run, a late run,
scheduled runs, an invalid jobnet, hosts, a calendar; and an empty server.

The states are real: a real core and SQLite store behind the real HTTP API on a
loopback port, its runs driven with real processes, on a fixed clock (FakeClock at
T0), so every time and id on screen is the same on every run. The TUI's own clock
(`jaz.tui.format.now`) is fixed at T0 too. Only the late flag is written to the store
directly: a deadline needs the scheduler's clock to pass it.

Update the snapshots after a deliberate change of the look with
`pytest tests/test_tui_snapshots.py --snapshot-update` and review the SVGs
(tests/__snapshots__/test_tui_snapshots/).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from textual.pilot import Pilot

from jaz.client import Client
from jaz.engine.clock import FakeClock
from jaz.engine.model import RunState
from jaz.engine.planner import LATE_MARK
from jaz.server.auth import Tokens
from jaz.server.config import parse_config
from jaz.server.core import Core
from jaz.tui import format
from jaz.tui.app import JazApp

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)      # a Friday
TOKEN = "snapshot-admin-token"
SHOWN_URL = "http://127.0.0.1:10061"                 # the free port, as the snapshots show it
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}

JOBNETS = {
    "nightly": '''description = "Nightly load of the order warehouse"
[params]
DAY = "today"
[schedule]
times = ["02:30"]
calendar = "biz"
[jobs.extract]
run = "echo extracted 1200 rows"
[jobs.load]
needs = ["extract"]
run = "echo loading; echo 'constraint violation on orders' >&2; exit 3"
[jobs.aggregate]
needs = ["extract"]
run = "sleep 600"
[jobs.report]
needs = ["aggregate"]
hold = true
run = "echo report"
[jobs.publish]
needs = ["load", "report"]
run = "echo published"
''',
    "backup": '''description = "Database dump"
[jobs.dump]
run = "echo dumping; exit 2"
''',
    "late-report": '''description = "Report for the morning meeting"
[jobs.build]
run = "echo built"
''',
    "hello": '''description = "Says hello every quarter of an hour"
[schedule]
cron = "*/15 * * * *"
[jobs.greet]
run = "echo hello"
''',
    "broken": '''[jobs.a]
run = "true"
needs = ["nope"]
''',
}
CALENDARS = {"biz": '''description = "Business days"
weekdays = ["mon", "tue", "wed", "thu", "fri"]
exclude = ["2026-11-23"]
'''}
HOSTS = '''[hosts.db1]
agent = "127.0.0.1:10055"
description = "warehouse database"
[hosts.web]
ssh = "ops@127.0.0.1"
'''


@dataclass
class Served:
    core: Core
    url: str
    runs: dict[str, int]


@contextlib.contextmanager
def serve(root: Path, *, seeded: bool) -> Iterator[Served]:
    """A real core on a fixed clock behind the real API on a free loopback port; with
    `seeded`, the jobnets above, their runs driven to fixed states, scheduled fires."""
    import uvicorn

    from jaz.server.api import create_app
    from jaz.server.scheduler import Scheduler

    nets, cals = root / "jobnets", root / "calendars"
    nets.mkdir()
    cals.mkdir()
    if seeded:
        for name, text in JOBNETS.items():
            (nets / f"{name}.toml").write_text(text)
        for name, text in CALENDARS.items():
            (cals / f"{name}.toml").write_text(text)
    config = parse_config(f'jobnets = "{nets}"\ncalendars = "{cals}"\n'
                          f'database = "{root / "jaz.db"}"\n' + (HOSTS if seeded else ""))
    core = Core(config, clock=FakeClock(T0))
    runs: dict[str, int] = {}
    if seeded:
        runs["old"] = core.start("hello")
        wait_for(lambda: core.service.run(runs["old"]).status == RunState.SUCCEEDED, "hello")
        runs["nightly"] = core.start("nightly", params={"DAY": "2026-11-20"})
        runs["backup"] = core.start("backup")
        runs["late"] = core.start("late-report", hold=True)
        core.store.update_run(runs["late"], warning=f"{LATE_MARK}start_by 09:00")

        def settled() -> bool:
            jobs = {j.name: j.status for j in core.service.jobs(runs["nightly"])}
            return (jobs.get("load") == "failed" and jobs.get("aggregate") == "running"
                    and core.service.run(runs["backup"]).status == RunState.ERROR)

        wait_for(settled, "the failed branch and the error run")
        Scheduler(core).tick(T0)          # the nightly fires ahead, as `scheduled`
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(create_app(core, Tokens(config, TOKEN)),
                                           log_config=None, access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the API to listen")
        yield Served(core, f"http://127.0.0.1:{sock.getsockname()[1]}", runs)
    finally:
        core.closing.set()
        server.should_exit = True
        thread.join(timeout=10)
        for run_id in core.running():
            core.act("stop", run_id, None, user="test")
        wait_for(lambda: not core.running(), "runs to stop")
        core.close()
        sock.close()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with _fixed_zone(), serve(tmp_path_factory.mktemp("full"), seeded=True) as served:
        yield served


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with _fixed_zone(), serve(tmp_path_factory.mktemp("empty"), seeded=False) as served:
        yield served


@contextlib.contextmanager
def _fixed_zone() -> Iterator[None]:
    """Local time is UTC, so times read the same on every machine."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr(format, "now", lambda: T0)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def shot(served: Served, mode: str, ready: Callable[[JazApp], Any],
         then: Callable[[Pilot[Any]], Awaitable[None]] | None = None, *,
         clients: list[Client]) -> tuple[JazApp, Callable[[Pilot[Any]], Awaitable[None]]]:
    """The app on `mode`, and what to do before the screenshot: wait until `ready(app)`,
    run `then`, wait for the screen to settle, and show the URL without its port."""
    client = Client(served.url, TOKEN)
    clients.append(client)
    app = JazApp(client, mode=mode)

    async def before(pilot: Pilot[Any]) -> None:
        from tui_support import until

        await until(pilot, lambda: ready(app), "the screen's data")
        if then is not None:
            await then(pilot)
        await settled(pilot)
        for screen in (app.screen, *app.screen_stack):
            if screen.sub_title:
                screen.sub_title = screen.sub_title.replace(served.url, SHOWN_URL)
        app.sub_title = SHOWN_URL
        await pilot.pause()

    return app, before


async def settled(pilot: Pilot[Any], within: float = 10.0) -> None:
    """Wait until no fetch is in flight and the screen reads the same twice in a row: a
    fetch answered late, or a table's column widths (measured when its queue runs dry),
    would otherwise land in some screenshots and not in others on a loaded machine."""
    app = pilot.app
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        await pilot.wait_for_scheduled_animations()
        busy = any(w.is_running for w in app.workers if w.group != "stream")
        now = app.export_screenshot()
        if not busy and now == last:
            return
        last = now
    raise AssertionError(f"the screen did not settle within {within:.0f}s")


def rows(app: JazApp, min_rows: int = 1) -> bool:
    """The screen's (first) table holds at least `min_rows` rows."""
    tables = app.screen.query("DataTable, FastTable")
    return bool(tables) and int(tables.first().row_count) >= min_rows


# ------------------------------------------------------------------ the snapshots


@pytest.mark.parametrize("size", SIZES)
def test_runs(full: Served, size: str, snap_compare: Any,
              clients: list[Client]) -> None:
    app, before = shot(full, "runs", lambda a: rows(a, 5), clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_runs_of_an_empty_server(empty: Served, size: str, snap_compare: Any,
                                 clients: list[Client]) -> None:
    app, before = shot(empty, "runs", lambda a: a.stream_connected, clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_jobnets(full: Served, size: str, snap_compare: Any,
                 clients: list[Client]) -> None:
    app, before = shot(full, "jobnets", lambda a: rows(a, len(JOBNETS)), clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_jobnets_of_an_empty_server(empty: Served, size: str, snap_compare: Any,
                                    clients: list[Client]) -> None:
    app, before = shot(empty, "jobnets", lambda a: a.stream_connected, clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_hosts(full: Served, size: str, snap_compare: Any,
               clients: list[Client]) -> None:
    def probed(app: JazApp) -> bool:   # the SSH host's heartbeat has looked at it
        from jaz.tui.screens.hosts import HostsScreen

        screen = app.screen
        if not (isinstance(screen, HostsScreen) and "web" in screen.hosts):
            return False
        if not (screen.hosts["web"].get("error") and screen.hosts["db1"].get("error")):
            screen.load()
            return False
        return rows(app, 3)

    app, before = shot(full, "hosts", probed, clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_calendars(full: Served, size: str, snap_compare: Any,
                   clients: list[Client]) -> None:
    async def pick(pilot: Pilot[Any]) -> None:
        await pilot.pause(0.3)

    app, before = shot(full, "calendars", lambda a: a.stream_connected, pick, clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


def test_help(full: Served, snap_compare: Any,
              clients: list[Client]) -> None:
    async def help_(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")

    app, before = shot(full, "runs", lambda a: rows(a, 5), help_, clients=clients)
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_start_modal(full: Served, snap_compare: Any,
                     clients: list[Client]) -> None:
    async def start(pilot: Pilot[Any]) -> None:
        await pilot.press("n")
        await pilot.pause(0.3)

    app, before = shot(full, "runs", lambda a: rows(a, 5), start, clients=clients)
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_the_token_is_not_on_screen() -> None:
    """The snapshots are committed: no secret in them (the token is a test one anyway)."""
    folder = Path(__file__).parent / "__snapshots__" / "test_tui_snapshots"
    for svg in folder.glob("*.svg"):
        assert TOKEN not in svg.read_text()
        assert hashlib.sha256(TOKEN.encode()).hexdigest() not in svg.read_text()


# ------------------------------------------------------------------ the run detail

DETAIL_LOG = {"nightly": ("stderr", "constraint violation on orders"),   # load, failed
              "backup": ("stdout", "dumping")}                            # dump, exit 2


def runs_loaded(app: JazApp) -> bool:
    """The Runs screen shows its rows: its load is over before the detail's begins."""
    from jaz.tui.widgets.runs_table import RunsTable

    tables = app.screen.query(RunsTable)
    return bool(tables) and tables.first().row_count >= 5


def detail_ready(app: Any, served: Served, run: str) -> bool:
    """The graph shows every job in the state the server has, and the selected job's
    log is in (the screen opens on the failed job)."""
    from jaz.tui.screens.run_detail import RunDetailScreen
    from jaz.tui.widgets.log_view import LogView

    screen = app.screen
    if (not isinstance(screen, RunDetailScreen) or not screen.is_mounted
            or screen.graph.selected is None):
        return False
    jobs = {j.name: str(j.status) for j in served.core.service.jobs(served.runs[run])}
    graph = screen.graph
    return (set(graph.graph_layout.nodes) == set(jobs)
            and all(graph.state_of(name) == state for name, state in jobs.items())
            and screen.log_job == graph.selected
            and DETAIL_LOG[run] in screen.query_one(LogView).lines)


def open_detail(served: Served, run: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def then(pilot: Pilot[Any]) -> None:
        from tui_support import until

        from jaz.tui.screens.run_detail import RunDetailScreen

        pilot.app.push_screen(RunDetailScreen(served.runs[run]))
        await until(pilot, lambda: detail_ready(pilot.app, served, run),
                    "the run's graph with its states and the selected job's log")
        await pilot.pause()

    return then


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("run", ["nightly", "backup"])
def test_run_detail(full: Served, run: str, size: str, snap_compare: Any,
                    clients: list[Client]) -> None:
    app, before = shot(full, "runs", runs_loaded, open_detail(full, run),
                       clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


def test_run_detail_info(full: Served, snap_compare: Any,
                         clients: list[Client]) -> None:
    async def info(pilot: Pilot[Any]) -> None:
        from tui_support import until

        from jaz.tui.screens.run_info import RunInfoScreen

        await open_detail(full, "nightly")(pilot)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunInfoScreen)
                    and pilot.app.screen.events, "the run's audit trail")

    app, before = shot(full, "runs", runs_loaded, info, clients=clients)
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def _on(screen_type: type, ready: Callable[[Any], bool]) -> Callable[[JazApp], bool]:
    """Ready when the screen on top is a `screen_type` and `ready(screen)` holds."""
    def check(app: JazApp) -> bool:
        return isinstance(app.screen, screen_type) and ready(app.screen)
    return check


def _shown(screen: Any, selector: str) -> bool:
    from textual.widgets import DataTable, Static

    widget = screen.query_one(selector)
    if isinstance(widget, DataTable):
        return bool(widget.row_count)
    return isinstance(widget, Static) and "loading" not in str(widget.render())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["nightly", "broken"])
def test_jobnet_detail(full: Served, name: str, size: str, snap_compare: Any,
                       clients: list[Client]) -> None:
    from jaz.tui.screens.jobnet_detail import JobnetDetailScreen

    app, before = shot(full, "jobnets", lambda a: rows(a, len(JOBNETS)),
                       _push(lambda: JobnetDetailScreen(name),
                             _on(JobnetDetailScreen, lambda s: _shown(s, "#text"))),
                       clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


@pytest.mark.parametrize("tab", ["graph", "history"])
def test_jobnet_detail_tabs(full: Served, tab: str, snap_compare: Any,
                            clients: list[Client]) -> None:
    from textual.widgets import TabbedContent

    from jaz.tui.screens.jobnet_detail import JobnetDetailScreen

    async def then(pilot: Pilot[Any]) -> None:
        await _push(lambda: JobnetDetailScreen("nightly"),
                    _on(JobnetDetailScreen, lambda s: _shown(s, "#text")
                        and _shown(s, "#runs")))(pilot)
        pilot.app.screen.query_one(TabbedContent).active = tab
        await pilot.pause(0.2)

    app, before = shot(full, "jobnets", lambda a: rows(a, len(JOBNETS)), then,
                       clients=clients)
    assert snap_compare(app, terminal_size=(160, 48), run_before=before)


@pytest.mark.parametrize("size", SIZES)
def test_job_history(full: Served, size: str, snap_compare: Any,
                     clients: list[Client]) -> None:
    from jaz.tui.screens.job_history import JobHistoryScreen

    app, before = shot(full, "jobnets", lambda a: rows(a, len(JOBNETS)),
                       _push(lambda: JobHistoryScreen("hello", "greet"),
                             _on(JobHistoryScreen, lambda s: _shown(s, "#executions"))),
                       clients=clients)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=before)


def _push(make: Callable[[], Any], ready: Callable[[JazApp], bool]
          ) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A `then` for `shot`: push the screen `make()` gives and wait until `ready`."""
    async def then(pilot: Pilot[Any]) -> None:
        from tui_support import until

        app = pilot.app
        assert isinstance(app, JazApp)
        await app.push_screen(make())
        await until(pilot, lambda: ready(app), "the pushed screen's data")
    return then
