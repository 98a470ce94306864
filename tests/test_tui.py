"""`jaz tui` (SPEC §6) against a real `jaz server` subprocess: the Runs screen shows the
server's runs, grows a row when a run starts (through the event stream), and quits on
`q`; `jaz tui` with no server says how to start one. Waits poll with deadlines."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from support import free_port, running_server
from textual.pilot import Pilot

from jaz.client import Client
from jaz.tui.app import JazApp
from jaz.tui.widgets.runs_table import RunsTable

JOBNETS = {"hello": '[jobs.greet]\nrun = "echo hello"\n'}


@dataclass
class Server:
    home: Path
    url: str
    token: str
    api: httpx.Client
    env: dict[str, str]

    def start(self, jobnet: str) -> int:
        response = self.api.post("/api/v1/runs", json={"jobnet": jobnet, "params": {}})
        response.raise_for_status()
        return int(response.json()["run_id"])

    def client(self) -> Client:
        return Client(self.url, self.token)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tui")
    with running_server(root, JOBNETS) as (url, token, env, home), \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                         timeout=10, trust_env=False) as api:
        yield Server(home=home, url=url, token=token, api=api, env=env)


async def until(pilot: Pilot[Any], check: Callable[[], Any], what: str,
                within: float = 10.0) -> Any:
    """`support.wait_for` for a running app: poll between the app's own steps."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def table_ids(app: JazApp) -> list[int]:
    table = app.screen.query_one(RunsTable)
    return [int(table.get_row_at(i)[0]) for i in range(table.row_count)]


def state_of(app: JazApp, run_id: int) -> str:
    return str(app.screen.query_one(RunsTable).get_cell(str(run_id), "state"))


def test_runs_screen_shows_runs_and_follows_new_ones_live(server: Server) -> None:
    first = server.start("hello")

    async def scenario() -> None:
        with server.client() as client:
            app = JazApp(client)
            async with app.run_test(size=(120, 30)) as pilot:
                await until(pilot, lambda: first in table_ids(app), "the existing run's row")
                table = app.screen.query_one(RunsTable)
                cursor_on = table.get_row_at(table.cursor_row)[0]

                second = server.start("hello")   # through the API; the stream brings it
                await until(pilot, lambda: second in table_ids(app), "the new run's row")
                assert table_ids(app) == sorted(table_ids(app), reverse=True)
                assert table.get_row_at(table.cursor_row)[0] == cursor_on  # cursor kept
                await until(pilot, lambda: state_of(app, second) == "✔ succeeded",
                            "the new run's row to turn succeeded in place")
                assert table_ids(app).count(second) == 1

                await pilot.press("q")
                await until(pilot, lambda: not app.is_running, "the app to quit on q")

    asyncio.run(scenario())


def test_r_reloads_the_runs(server: Server) -> None:
    async def scenario() -> None:
        with server.client() as client:
            app = JazApp(client)
            async with app.run_test() as pilot:
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
