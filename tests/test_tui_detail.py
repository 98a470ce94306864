"""The run detail screen of `jaz tui` (SPEC §6) against a real `jaz server`: the graph
with live job states, the job panel, logs (following, search), every job action with
its confirmation (checked on the server), the info modal, and 80x24. Waits poll with
deadlines; nothing sleeps."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from tui_support import Server, tui, tui_server, until

from jaz.tui.app import JazApp
from jaz.tui.screens.run_detail import RunDetailScreen
from jaz.tui.screens.run_info import RunInfoScreen
from jaz.tui.widgets.confirm import ConfirmScreen
from jaz.tui.widgets.graph import JobGraph
from jaz.tui.widgets.job_panel import JobPanel
from jaz.tui.widgets.log_view import LogView
from jaz.tui.widgets.runs_table import RunsTable

JOBNETS = {
    "branch": '[params]\nDAY = "monday"\n\n'
              '[jobs.a]\nrun = "echo start $DAY"\n\n'
              '[jobs.b]\nneeds = ["a"]\nrun = "echo before; echo oops >&2; exit 3"\n\n'
              '[jobs.c]\nneeds = ["a"]\nrun = "echo fine"\n',
    "talk": '[jobs.talk]\nrun = "for i in 1 2 3; do echo line$i; sleep 0.3; done"\n',
    # on_failure = "stop": after a job stop, a halted run would be resumed by the server
    # (Core.act goes on with a halted run), starting the stopped job again
    "acts": 'on_failure = "stop"\n\n[jobs.sleeper]\nrun = "sleep 30"\n\n'
            '[jobs.later]\nneeds = ["sleeper"]\nrun = "true"\n\n'
            '[jobs.gate]\nhold = true\nrun = "true"\n',
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with tui_server(tmp_path_factory.mktemp("tui-detail"), JOBNETS) as running:
        yield running


def job(server: Server, run_id: int, name: str) -> dict[str, Any]:
    result: dict[str, Any] = server.run(run_id)["jobs"][name]
    return result


def screen_text(app: JazApp) -> str:
    """What the terminal shows, as plain text (export_screenshot's SVG escapes it)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system="truecolor", legacy_windows=False,
                      safe_box=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    return console.export_text()


def audit(server: Server, run_id: int) -> list[tuple[str, str | None, str]]:
    response = server.api.get("/api/v1/events", params={"run": run_id})
    response.raise_for_status()
    return [(e["kind"], e["job"], e["detail"]) for e in response.json()]


def detail(app: JazApp) -> RunDetailScreen:
    screen = app.screen
    assert isinstance(screen, RunDetailScreen), type(screen).__name__
    return screen


async def open_run(pilot: Pilot[Any], app: JazApp, run_id: int) -> RunDetailScreen:
    await until(pilot, lambda: app.stream_connected, "the stream")
    app.push_screen(RunDetailScreen(run_id))
    await until(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                and app.screen.jobs and app.screen.graph.selected, "the run to load")
    return detail(app)


def facts(screen: RunDetailScreen) -> dict[str, str]:
    return screen.query_one(JobPanel).facts


async def until_said(pilot: Pilot[Any], check: Any, what: str, within: float = 10.0,
                     server: Server | None = None, run_id: int = 0) -> None:
    """`until`, saying which notifications the app showed (and the run's audit trail)
    if it times out."""
    try:
        await until(pilot, check, what, within)
    except AssertionError as e:
        said = [str(n.message) for n in pilot.app._notifications]
        trail = audit(server, run_id) if server else []
        raise AssertionError(f"{e}; notifications: {said}; audit: {trail}") from None


async def confirm(pilot: Pilot[Any], app: JazApp) -> None:
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
    await pilot.press("y")
    await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), "the screen back")


def test_a_failed_branch_shows_states_exit_code_and_stderr(server: Server) -> None:
    run_id = server.start("branch")
    server.finished(run_id)

    async def scenario() -> None:
        async with tui(server, (160, 48)) as (app, pilot):
            await until(pilot, lambda: app.stream_connected, "the stream")
            # once through the runs table: enter on the run's row
            await until(pilot, lambda: str(run_id) in app.screen.query_one(
                RunsTable).rows, "the run's row")
            table: Any = app.screen.query_one(RunsTable)
            table.move_cursor(row=table.get_row_index(str(run_id)))
            table.focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                        and app.screen.jobs, "the run detail")
            screen = detail(app)
            graph = screen.graph
            await until(pilot, lambda: graph.state_of("b") == "failed", "b failed")
            assert graph.state_of("a") == "succeeded"
            assert graph.state_of("c") == "succeeded"
            assert graph.selected == "b"          # it opens on the failed job
            status = server.run(run_id)["status"]   # halted on b's failure
            assert screen.title == f"run {run_id} · branch · {status}"
            await until(pilot, lambda: facts(screen).get("exit code") == "3",
                        "exit code 3 in the panel")
            assert facts(screen)["run"] == "echo before; echo oops >&2; exit 3"
            assert facts(screen)["attempts"] == "1"
            assert facts(screen)["host"] == "local"
            log = screen.query_one(LogView)
            await until(pilot, lambda: ("stderr", "oops") in log.lines, "oops")
            assert ("stdout", "before") in log.lines

            # arrows move the selection; the panel and log follow
            graph.focus()
            await pilot.press("left")
            assert graph.selected == "a"
            await until(pilot, lambda: ("stdout", "start monday") in log.lines,
                        "a's log")
            assert facts(screen)["job"] == "a" and facts(screen)["exit code"] == "0"

            # search the log
            await pilot.press("right")
            await until(pilot, lambda: ("stderr", "oops") in log.lines, "b's log")
            await pilot.press("slash")
            await pilot.press(*"OOP", "enter")
            assert log.matches == [(log.lines.index(("stderr", "oops")), 0)]
            await pilot.press("slash")
            await pilot.press("o", "enter")   # replaces the last search: before, oops (x2)
            assert len(log.matches) == 3 and log.current == 0
            await pilot.press("n")
            assert log.current == 1
            await pilot.press("N", "N")
            assert log.current == 2

            # the info modal: params, version, audit trail
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, RunInfoScreen)
                        and getattr(app.screen, "events", None), "the audit trail")
            info: Any = app.screen
            assert any(e["kind"] for e in info.events)
            shot = screen_text(app)
            assert "DAY" in shot and "monday" in shot
            assert str(server.run(run_id)["version"])[:8] in shot
            await pilot.press("escape")
            assert isinstance(app.screen, RunDetailScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, RunDetailScreen)

    asyncio.run(scenario())


def test_following_a_running_jobs_log(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (120, 40)) as (app, pilot):
            await until(pilot, lambda: app.stream_connected, "the stream")
            run_id = server.start("talk")
            screen = await open_run(pilot, app, run_id)
            await pilot.press("f")
            assert screen.following
            log = screen.query_one(LogView)
            await until(pilot, lambda: ("stdout", "line1") in log.lines, "line1")
            await until(pilot, lambda: screen.graph.state_of("talk") == "succeeded",
                        "talk to finish", within=15)
            await until(pilot, lambda: [t for _, t in log.lines]
                        == ["line1", "line2", "line3"], "all three lines, once each")
            await pilot.press("l")   # focus the log, then hide it
            assert log.has_focus
            await pilot.press("l")
            assert screen.has_class("nolog") and not log.display

    asyncio.run(scenario())


def test_every_job_action_with_its_confirmation(server: Server) -> None:
    acts = server.start("acts")
    branch = server.start("branch")
    server.finished(branch)

    async def scenario() -> None:
        async with tui(server, (160, 48)) as (app, pilot):
            screen = await open_run(pilot, app, acts)
            await until_said(pilot, lambda: job(server, acts, "sleeper")["status"] == "running",
                        "sleeper to run")
            screen.graph.select("later")
            await pilot.press("h")
            await until_said(pilot, lambda: job(server, acts, "later")["status"] == "held",
                        "later held")
            await until(pilot, lambda: screen.graph.state_of("later") == "held",
                        "the graph to show it held")
            await pilot.press("u")
            await until_said(pilot, lambda: job(server, acts, "later")["status"] == "pending",
                        "later released")
            await pilot.press("k")
            await confirm(pilot, app)
            await until_said(pilot, lambda: job(server, acts, "later")["status"] == "skipped",
                        "later skipped")
            await pilot.press("K")
            await until_said(pilot, lambda: job(server, acts, "later")["status"] == "pending",
                        "later unskipped")

            screen.graph.select("gate")   # held by its definition
            await until_said(pilot, lambda: job(server, acts, "gate")["status"] == "held",
                        "gate held")
            await pilot.press("u")
            await until_said(pilot, lambda: job(server, acts, "gate")["status"] == "succeeded",
                        "gate released and run")

            screen.graph.select("sleeper")
            await pilot.press("x")
            await pilot.press("n")        # cancelled: still running
            assert job(server, acts, "sleeper")["status"] == "running"
            await pilot.press("x")
            await confirm(pilot, app)
            await until_said(pilot, lambda: job(server, acts, "sleeper")["status"] == "stopped",
                             "sleeper stopped", server=server, run_id=acts)
            await until(pilot, lambda: screen.graph.state_of("sleeper") == "stopped",
                        "the graph to show it stopped")

            # a refused action is a notification, not a crash
            await pilot.press("x")
            await confirm(pilot, app)
            await until(pilot, lambda: any("stop sleeper" in str(n.message)
                                           and n.severity == "error"
                                           for n in app._notifications), "the refusal")

            await pilot.press("escape")
            screen = await open_run(pilot, app, branch)
            screen.graph.select("b")
            await pilot.press("R")
            await confirm(pilot, app)
            await until_said(pilot, lambda: ("rerun", "b", "") in audit(server, branch),
                             "b rerun")
            server.finished(branch)
            screen.graph.select("a")
            await pilot.press("D")
            await confirm(pilot, app)
            await until_said(pilot, lambda: ("rerun", "a", "with downstream")
                             in audit(server, branch), "a rerun with downstream")
            done = server.finished(branch)
            assert done["jobs"]["c"]["started_at"] > done["jobs"]["a"]["ended_at"]
            await until(pilot, lambda: screen.graph.state_of("b") == "failed",
                        "b failed again")

    asyncio.run(scenario())


def test_the_screen_at_80x24(server: Server) -> None:
    run_id = server.start("branch")
    server.finished(run_id)

    async def scenario() -> None:
        async with tui(server, (80, 24)) as (app, pilot):
            screen = await open_run(pilot, app, run_id)
            assert screen.has_class("narrow")
            await until(pilot, lambda: "[✘ b]" in screen_text(app), "b drawn")
            for widget in (screen.query_one(JobGraph), screen.query_one("#facts"),
                           screen.query_one(LogView)):
                assert widget.size.width >= 20 and widget.size.height >= 3, widget
            text = screen_text(app)
            assert "[✔ a]─┤" in text and "└──[✔ c]" in text
            await until(pilot, lambda: "exit code 3" in (t := screen_text(app))
                        and "▌ oops" in t, "b's exit code and stderr on screen")

    asyncio.run(scenario())


def test_moving_the_selection_is_cheap(server: Server, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    """Arrow keys change the panel at once with no layout pass over the screen; the
    log is read once, for the job the selection settles on."""
    import jaz.tui.screens.run_detail as run_detail

    monkeypatch.setattr(run_detail, "LOG_SETTLE", 0.5)   # slow machines: no early read
    run_id = server.start("branch")
    server.finished(run_id)

    async def scenario() -> None:
        async with tui(server, (160, 48)) as (app, pilot):
            screen = await open_run(pilot, app, run_id)
            log = screen.query_one(LogView)
            await until(pilot, lambda: ("stderr", "oops") in log.lines, "b's log")
            await pilot.pause()
            reads: list[str] = []
            layouts: list[bool] = []
            read_log, refresh_layout = screen.read_log, screen._refresh_layout

            def read_spy(job: str, *args: Any) -> Any:
                reads.append(job)
                return read_log(job, *args)

            def layout_spy(*args: Any, **kwargs: Any) -> None:
                layouts.append(bool(kwargs.get("scroll")))
                refresh_layout(*args, **kwargs)

            screen.read_log = read_spy                 # type: ignore[method-assign]
            screen._refresh_layout = layout_spy        # type: ignore[method-assign]
            screen.graph.focus()
            assert screen.graph.selected == "b"
            for key, job in (("down", "c"), ("up", "b"), ("down", "c"), ("left", "a")):
                await pilot.press(key)
                assert screen.graph.selected == job
                assert facts(screen)["job"] == job      # the panel follows at once
            assert reads == [] and layouts == []
            assert log.border_title == "log b · attempt 1"   # b's, under its name
            await until(pilot, lambda: ("stdout", "start monday") in log.lines,
                        "a's log")
            assert reads == ["a"]

    asyncio.run(scenario())
