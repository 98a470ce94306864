"""The Jobnets, Jobnet detail, Job history, Hosts and Calendars screens of `jaz tui`
(SPEC §6) against a real `jaz server` subprocess: what each lists, filters, drill-downs
and month navigation, and that each works at 80x24. Waits poll with deadlines."""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from rich.console import Console
from support import wait_for
from textual.widgets import DataTable, OptionList, Select, Static
from tui_support import Server, tui, tui_server, until

from jaz.tui.app import JazApp
from jaz.tui.screens.calendars import CalendarsScreen
from jaz.tui.screens.hosts import HostsScreen
from jaz.tui.screens.job_history import JobHistoryScreen
from jaz.tui.screens.jobnet_detail import JobnetDetailScreen
from jaz.tui.screens.jobnets import JobnetsScreen
from jaz.tui.screens.run_detail import RunDetailScreen
from jaz.tui.screens.start import StartScreen
from jaz.tui.widgets.month_grid import MonthGrid

JOBNETS = {
    "hello": 'description = "Say hello, then goodbye"\n[schedule]\ntimes = ["02:30"]\n'
             '[jobs.greet]\nrun = "echo hello"\n'
             '[jobs.part]\nneeds = ["greet"]\nrun = "echo bye"\n',
    "broken": '[jobs.x]\nrun = "echo x"\nretries = "many"\n',
    "sleepy": '[jobs.nap]\nrun = "sleep 30"\n',
}
HOSTS = '[hosts.db1]\nagent = "127.0.0.1:10055"\n[hosts.web]\nssh = "ops@127.0.0.1"\n'
BIZ = 'weekdays = ["mon", "tue", "wed", "thu", "fri"]\nholidays = "JP"\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tui-screens")
    with tui_server(root, JOBNETS, HOSTS) as running:
        # the server reads its calendars folder on change: add one and wait for it
        (root / "calendars" / "biz.toml").write_text(BIZ)
        (root / "calendars" / "bad.toml").write_text('weekdays = ["funday"]\n')
        wait_for(lambda: len(running.api.get("/api/v1/calendars").json()) == 2,
                 "the server to load the calendars")
        yield running


def plain(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    console.file.close()
    return console.export_text()


def keys(table: DataTable[Any]) -> list[str]:
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value)
            for i in range(table.row_count)]


def cell(table: DataTable[Any], row: str, column: str) -> str:
    return str(table.get_cell(row, column))


def inside(app: JazApp, selector: str) -> bool:
    """The widget is shown and lies within the screen."""
    widget = app.screen.query_one(selector)
    region, size = widget.region, app.screen.size
    return bool(region.width and region.height and region.right <= size.width
                and region.bottom <= size.height)


async def open_jobnet(pilot: Any, app: JazApp, table: DataTable[Any],
                      name: str) -> JobnetDetailScreen:
    """`enter` on `name` in the Jobnets table: its screen, once pushed."""
    table.move_cursor(row=keys(table).index(name))
    await pilot.press("enter")
    screen: JobnetDetailScreen = await until(
        pilot, lambda: isinstance(app.screen, JobnetDetailScreen) and app.screen,
        f"the screen of {name}")
    return screen


# ------------------------------------------------------------------ jobnets


def test_jobnets_lists_valid_and_broken_filters_and_switches_modes(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (160, 40)) as (app, pilot):
            await pilot.press("2")
            await until(pilot, lambda: isinstance(app.screen, JobnetsScreen),
                        "the Jobnets screen on 2")
            table = app.screen.query_one("#jobnets", DataTable)
            await until(pilot, lambda: keys(table) == ["broken", "hello", "sleepy"],
                        "the jobnets")
            assert cell(table, "hello", "valid") == "✔"
            assert cell(table, "hello", "description") == "Say hello, then goodbye"
            assert cell(table, "hello", "schedules") == "at 02:30"
            assert cell(table, "hello", "next") != "-"
            assert cell(table, "broken", "valid") == "✖ invalid"
            assert "retries" in cell(table, "broken", "problem")
            table.move_cursor(row=0)
            about = app.screen.query_one("#about", Static)
            await until(pilot, lambda: "nothing in force" in plain(about.content),
                        "the broken jobnet's problem under the table")

            await pilot.press("slash", *"BRO")
            await until(pilot, lambda: keys(table) == ["broken"], "the filter")
            await pilot.press("enter")
            assert app.screen.focused is table
            await pilot.press("escape")
            await until(pilot, lambda: len(keys(table)) == 3, "the filter cleared")

            table.move_cursor(row=keys(table).index("hello"))
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, StartScreen)
                        and app.screen.chosen == "hello", "the start modal")
            await pilot.press("escape")

            for key, screen in (("3", HostsScreen), ("4", CalendarsScreen),
                                ("2", JobnetsScreen)):
                await pilot.press(key)
                await until(pilot, lambda s=screen: isinstance(app.screen, s),
                            f"{screen.__name__} on {key}")

    asyncio.run(scenario())


def test_jobnet_detail_and_job_history(server: Server) -> None:
    runs = [server.start("hello") for _ in range(2)]
    for run_id in runs:
        server.finished(run_id)

    async def scenario() -> None:
        async with tui(server, (120, 36), mode="jobnets") as (app, pilot):
            table = app.screen.query_one("#jobnets", DataTable)
            await until(pilot, lambda: "hello" in keys(table), "the jobnets")
            await until(pilot, lambda: cell(table, "hello", "last").startswith("✔"),
                        "hello's last result")
            detail = await open_jobnet(pilot, app, table, "hello")
            text = detail.query_one("#text", Static)
            await until(pilot, lambda: 'run = "echo hello"' in plain(text.content),
                        "the definition")
            history = detail.query_one("#runs", DataTable)
            await until(pilot, lambda: set(map(str, runs)) <= set(keys(history)),
                        "the runs in History")
            assert cell(history, str(runs[0]), "state") == "✔ succeeded"
            await pilot.press("right_square_bracket", "right_square_bracket")
            history.focus()
            history.move_cursor(row=keys(history).index(str(runs[0])))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                        and app.screen.run_id == runs[0], "the run on enter")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is detail, "back to the jobnet")
            await pilot.press("left_square_bracket", "left_square_bracket")
            fires = detail.query_one("#fires", DataTable)
            await until(pilot, lambda: fires.row_count == 20, "20 next fires")

            await pilot.press("right_square_bracket")
            assert detail.query_one("TabbedContent").active == "graph"  # type: ignore[attr-defined]
            await until(pilot, lambda: detail.jobnet is not None, "the jobs")
            detail.job = "greet"
            await pilot.press("j")
            screen = await until(pilot, lambda: isinstance(app.screen, JobHistoryScreen)
                                 and app.screen, "the job's history")
            executions = screen.query_one("#executions", DataTable)
            await until(pilot, lambda: set(map(str, runs)) <= set(keys(executions)),
                        "the job's executions in both runs")
            row = str(runs[1])
            assert cell(executions, row, "state") == "✔ succeeded"
            assert cell(executions, row, "exit") == "0"
            assert cell(executions, row, "host") == "local"

            await pilot.press("escape", "escape")
            await until(pilot, lambda: isinstance(app.screen, JobnetsScreen),
                        "back to the list")
            broken = await open_jobnet(pilot, app, table, "broken")
            text = broken.query_one("#text", Static)
            shown = await until(pilot, lambda: "problem" in (s := plain(text.content))
                                and s, "the problems")
            assert "broken.toml:3 (job 'x', field 'retries')" in shown
            assert 'retries = "many"' in shown        # the file's text, read here

    asyncio.run(scenario())


# ------------------------------------------------------------------ hosts


def test_hosts_lists_configured_hosts_and_running_jobs(server: Server) -> None:
    run_id = server.start("sleepy")

    async def scenario() -> None:
        async with tui(server, (120, 30), mode="hosts") as (app, pilot):
            table = app.screen.query_one("#hosts", DataTable)
            await until(pilot, lambda: keys(table) == ["local", "db1", "web"], "hosts")
            assert cell(table, "local", "online") == "● online"
            assert cell(table, "db1", "online") == "? unknown"
            assert cell(table, "db1", "kind") == "agent"
            assert cell(table, "web", "address") == "ops@127.0.0.1"
            await until(pilot, lambda: cell(table, "local", "running") == "1",
                        "the sleeping job on the local host")
            running = app.screen.query_one("#running", DataTable)
            await until(pilot, lambda: keys(running) == [f"{run_id}/nap"],
                        "the running job listed")
            assert cell(running, f"{run_id}/nap", "jobnet") == "sleepy"
            table.move_cursor(row=0)
            await pilot.press("enter")
            assert app.screen.focused is running
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen)
                        and app.screen.run_id == run_id, "the running job's run")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, HostsScreen), "hosts")
            table.focus()

            await pilot.press("slash", "w")
            await until(pilot, lambda: keys(table) == ["web"], "the filter")
            await pilot.press("escape")
            await until(pilot, lambda: len(keys(table)) == 3, "the filter cleared")
        server.api.post(f"/api/v1/runs/{run_id}/stop").raise_for_status()

    asyncio.run(scenario())


def test_hosts_show_kind_state_version_and_last_error_of_every_kind(tmp_path: Any) -> None:
    """A real agent (online, its version), a trusted agent that is down and a JAZ agent
    that is down (offline, the error why), an SSH host not trusted yet (the note)."""
    from agent_support import Agent
    from support import free_port

    from jaz import __version__

    up = Agent(tmp_path / "up").start()
    down = Agent(tmp_path / "down")      # initialised, never started: its port is closed
    hosts = (f'jaz_listen = "127.0.0.1:{free_port()}"\n'
             + up.hosts_entry("app1") + down.hosts_entry("app2")
             + f'[hosts.legacy]\njaz_agent = "127.0.0.1:{free_port()}"\ncheck_every = "1s"\n'
             '[hosts.web]\nssh = "ops@127.0.0.1"\n')
    try:
        with tui_server(tmp_path, {"sleepy": JOBNETS["sleepy"]}, hosts) as server:
            async def scenario() -> None:
                async with tui(server, (200, 30), mode="hosts") as (app, pilot):
                    table = app.screen.query_one("#hosts", DataTable)
                    await until(pilot, lambda: keys(table) == ["local", "app1", "app2",
                                                                "legacy", "web"], "hosts")

                    def shown() -> bool:
                        app.screen.load()     # as `r` does: fetch again now
                        return (cell(table, "app1", "online") == "● online"
                                and cell(table, "app2", "online") == "○ offline"
                                and cell(table, "legacy", "online") == "○ offline"
                                and cell(table, "web", "error") != "")
                    await until(pilot, shown, "every host probed", within=30)
                    assert cell(table, "app1", "kind") == "agent"
                    assert cell(table, "app1", "version") == __version__
                    assert cell(table, "app1", "seen") != "-"
                    assert cell(table, "app1", "error") == ""
                    assert cell(table, "app2", "version") == "-"
                    assert "app2" in cell(table, "app2", "error") or \
                        "refused" in cell(table, "app2", "error").lower()
                    assert cell(table, "legacy", "kind") == "jaz-agent (plaintext)"
                    assert cell(table, "legacy", "error") != ""
                    assert cell(table, "web", "kind") == "ssh"
                    assert "jaz hosts trust web" in cell(table, "web", "error")
                    assert cell(table, "web", "online") == "? unknown"

            asyncio.run(scenario())
    finally:
        up.stop()


# ------------------------------------------------------------------ calendars


def test_calendar_month_grid_with_fires_and_navigation(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (120, 40), mode="calendars") as (app, pilot):
            screen = app.screen
            assert isinstance(screen, CalendarsScreen)
            grid = screen.query_one(MonthGrid)
            options = screen.query_one("#calendars", OptionList)
            await until(pilot, lambda: options.option_count == 2, "the calendar list")
            assert "✖ bad invalid" in str(options.get_option_at_index(0).prompt)
            await until(pilot, lambda: grid.operating is not None, "the operating days")
            screen.show_month(2026, 11)
            await until(pilot, lambda: date(2026, 11, 24) in (grid.operating or ()),
                        "November 2026")
            assert date(2026, 11, 23) not in (grid.operating or ())   # a holiday
            assert date(2026, 11, 22) not in (grid.operating or ())   # a Sunday
            info = screen.query_one("#info", Static)
            assert "2026-11-23 Labor Thanksgiving Day" in plain(info.content)
            drawn = plain(grid.render())
            assert "23 H" in drawn and "22 ·" in drawn and "November 2026 · biz" in drawn

            select: Select[str] = screen.query_one("#jobnet", Select)
            await until(pilot, lambda: select._options, "the jobnet list")  # noqa: SLF001
            select.value = "hello"
            await until(pilot, lambda: len(screen.fires) == 30, "30 daily fires")
            assert grid.fires == {date(2026, 11, d): ["02:30"] for d in range(1, 31)}
            assert "11-02 02:30" in plain(info.content)
            assert "24  *" in plain(grid.render())

            await pilot.press("right_square_bracket")
            assert (grid.year, grid.month) == (2026, 12)
            await until(pilot, lambda: len(screen.fires) == 31, "December's fires")
            await pilot.press("Y")
            assert (grid.year, grid.month) == (2027, 12)
            await until(pilot, lambda: date(2027, 12, 1) in (grid.operating or ()),
                        "2027's operating days")
            grid.focus()
            await pilot.press("left", "y")
            assert (grid.year, grid.month) == (2026, 11)
            await pilot.press("t")
            today = date.today()
            assert (grid.year, grid.month) == (today.year, today.month)
            days = calendar.monthrange(today.year, today.month)[1]
            await until(pilot, lambda: len(screen.fires) == days, "this month's fires")

    asyncio.run(scenario())


# ------------------------------------------------------------------ small terminals


def test_every_screen_works_at_80x24(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (80, 24), mode="jobnets") as (app, pilot):
            table = app.screen.query_one("#jobnets", DataTable)
            await until(pilot, lambda: table.row_count == 3, "the jobnets")
            assert inside(app, "#jobnets")
            await open_jobnet(pilot, app, table, "hello")
            await until(pilot, lambda: inside(app, "#definition-scroll"),
                        "the definition")
            await pilot.press("escape", "3")
            await until(pilot, lambda: isinstance(app.screen, HostsScreen), "hosts")
            await until(pilot, lambda: app.screen.query_one("#hosts", DataTable)
                        .row_count == 3, "the hosts")
            assert inside(app, "#hosts") and inside(app, "#running")
            await pilot.press("4")
            await until(pilot, lambda: isinstance(app.screen, CalendarsScreen),
                        "calendars")
            grid = app.screen.query_one(MonthGrid)
            await until(pilot, lambda: grid.operating is not None, "the month")
            assert inside(app, "#grid") and inside(app, "#calendars")
            assert inside(app, "#jobnet")

    asyncio.run(scenario())
