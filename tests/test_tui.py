"""`jaz tui` (SPEC §6) against a real `jaz server` subprocess: the Runs screen shows the
server's runs, grows a row when a run starts (through the event stream), and quits on
`q`; `jaz tui` with no server says how to start one. Waits poll with deadlines."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port
from tui_support import Server, tui, tui_server, until

from jaz.tui.app import JazApp
from jaz.tui.widgets.runs_table import RunsTable

JOBNETS = {"hello": '[jobs.greet]\nrun = "echo hello"\n'}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with tui_server(tmp_path_factory.mktemp("tui"), JOBNETS) as running:
        yield running


def table_ids(app: JazApp) -> list[int]:
    return [int(key) for key in app.screen.query_one(RunsTable).ordered_keys()]


def state_of(app: JazApp, run_id: int) -> str:
    return app.screen.query_one(RunsTable).cell_text(str(run_id), "state")


def test_runs_screen_shows_runs_and_follows_new_ones_live(server: Server) -> None:
    first = server.start("hello")

    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            await until(pilot, lambda: first in table_ids(app), "the existing run's row")
            table = app.screen.query_one(RunsTable)
            cursor_on = table.cursor_key

            second = server.start("hello")   # through the API; the stream brings it
            await until(pilot, lambda: second in table_ids(app), "the new run's row")
            assert table_ids(app) == sorted(table_ids(app), reverse=True)
            assert table.cursor_key == cursor_on  # cursor kept
            await until(pilot, lambda: state_of(app, second) == "✔ succeeded",
                        "the new run's row to turn succeeded in place")
            assert table_ids(app).count(second) == 1

            await pilot.press("q")
            await until(pilot, lambda: not app.is_running, "the app to quit on q")

    asyncio.run(scenario())


def test_r_reloads_the_runs(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (80, 24)) as (app, pilot):
            await until(pilot, lambda: table_ids(app), "the first load")
            table = app.screen.query_one(RunsTable)
            table.clear()
            await pilot.press("r")
            await until(pilot, lambda: table_ids(app), "the rows to come back on r")

    asyncio.run(scenario())


def test_tui_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(tmp_path)
    for extra in ([], ["--server", f"127.0.0.1:{free_port()}"]):
        result = subprocess.run([sys.executable, "-m", "jaz", "tui", *extra],
                                capture_output=True, text=True, env=env, timeout=30)
        assert result.returncode == 3, result.stderr
        assert "jaz server" in result.stderr
