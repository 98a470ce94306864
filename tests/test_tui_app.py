"""What the whole dashboard shares, against real servers: the connection banner when
the server goes away and its return (the screen reloads what was missed), `?` help
with the screen's keys, the command palette running a screen's action, and the
confirmation a destructive action asks for."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port, wait_for
from tui_support import Server, tui, tui_server, until

from jaz.client import Client
from jaz.tui.app import JazApp
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.runs_table import RunsTable

JOBNETS = {"hello": '[jobs.greet]\nrun = "echo hello"\n',
           "slow": '[jobs.nap]\nrun = "sleep 30"\n'}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with tui_server(tmp_path_factory.mktemp("app"), JOBNETS) as running:
        yield running


def test_the_banner_shows_a_lost_server_and_the_screen_catches_up(tmp_path: Path) -> None:
    home, nets = tmp_path / "home", tmp_path / "jobnets"
    nets.mkdir()
    (nets / "hello.toml").write_text(JOBNETS["hello"])
    config = tmp_path / "jaz.toml"
    config.write_text(f'listen = "127.0.0.1:{free_port()}"\njobnets = "jobnets"\n'
                      + ("allow_root = true\n" if os.geteuid() == 0 else ""))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("JAZ_")},
           "JAZ_HOME": str(home)}

    def launch() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: (home / "server.url").exists(), "the server to listen")
        return proc

    proc = launch()
    url = (home / "server.url").read_text().strip()
    token = (home / "admin.token").read_text().strip()

    async def scenario() -> None:
        nonlocal proc
        with Client(url, token) as client:
            app = JazApp(client)
            async with app.run_test(size=(100, 30)) as pilot:
                banner = app.screen.query_one(Banner)
                await until(pilot, lambda: app.stream_connected, "the stream")
                assert not banner.display
                proc.terminate()
                proc.wait(timeout=10)
                await until(pilot, lambda: banner.display, "the banner")
                assert "connection to the server lost" in str(banner.render())
                proc = launch()
                with Client(url, token) as api:   # a run made while the TUI looked away
                    run_id = api.start("hello", params={})["run_id"]
                await until(pilot, lambda: not banner.display, "the banner to go", 30)
                table = app.screen.query_one(RunsTable)
                await until(pilot, lambda: str(run_id) in table.rows, "the missed run")

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_help_lists_the_keys_of_the_screen(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (100, 30)) as (app, pilot):
            await until(pilot, lambda: app.stream_connected, "the stream")
            await pilot.press("question_mark")
            from jaz.tui.screens.help import HelpScreen

            await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
            text = app.export_screenshot().replace("&#160;", " ")
            for words in ("Stop", "Filter", "Start", "runs — help"):
                assert words in text
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "closed")

    asyncio.run(scenario())


def test_the_palette_runs_a_screens_action_after_confirmation(server: Server) -> None:
    run_id = server.start("slow")
    wait_for(lambda: server.run(run_id)["status"] == "running", "the run to start")

    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            table = app.screen.query_one(RunsTable)
            await until(pilot, lambda: str(run_id) in table.rows, "the run's row")
            table.move_cursor(row=table.get_row_index(str(run_id)))
            await pilot.press("colon")
            from textual.command import CommandPalette

            await until(pilot, lambda: isinstance(app.screen, CommandPalette), "palette")
            await pilot.press(*"runs stop")
            await pilot.pause(0.3)
            await pilot.press("enter")
            from jaz.tui.widgets.confirm import ConfirmScreen

            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen),
                        "the confirmation")
            await pilot.press("y")
            await until(pilot, lambda: server.run(run_id)["status"] == "stopped",
                        "the run to stop", 15)

    asyncio.run(scenario())
