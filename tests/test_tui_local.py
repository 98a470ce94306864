"""`jaz tui --local`: a server in the dashboard's own process, on a free loopback port,
with a temporary database, the user's jobnet folder or else the examples; refused
while a local server already runs. The dashboard is driven with Pilot."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from support import running_server
from tui_support import until

from jaz.cli.tui import examples_folder, local_server
from jaz.errors import UsageError
from jaz.tui.app import JazApp
from jaz.tui.widgets.runs_table import RunsTable


def _config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "server.toml"
    config.write_text(("allow_root = true\n" if os.geteuid() == 0 else "") + extra)
    return config


def test_local_serves_the_users_jobnets_on_a_private_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "jobnets").mkdir(parents=True)
    (home / "jobnets" / "mine.toml").write_text('[jobs.a]\nrun = "echo mine"\n')
    monkeypatch.setenv("JAZ_HOME", str(home))
    _config(home)    # $JAZ_HOME/server.toml is used when -c is not given

    async def scenario() -> None:
        with local_server(None) as client:
            assert client.url.startswith("http://127.0.0.1:")
            assert [j["name"] for j in client.jobnets()] == ["mine"]
            run_id = client.start("mine", params={})["run_id"]
            app = JazApp(client)
            async with app.run_test(size=(100, 30)) as pilot:
                table = app.screen.query_one(RunsTable)
                await until(pilot, lambda: str(run_id) in table.rows, "the run's row")
        assert not (home / "jaz.db").exists()        # the database was a temporary one
        assert not (home / "server.url").exists()    # and no other client is sent to it

    asyncio.run(scenario())


def test_local_falls_back_to_the_examples(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "empty-home"))
    examples = examples_folder()
    assert examples is not None
    with local_server(_config(tmp_path)) as client:
        names = {j["name"] for j in client.jobnets()}
        assert names == {p.stem for p in examples.glob("*.toml")}
        assert {c["name"] for c in client.calendars()} >= {"jp-business-days"}


def test_local_is_refused_while_a_server_runs(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with running_server(tmp_path, {}) as (url, _token, _env, home):
        monkeypatch.setenv("JAZ_HOME", str(home))
        with pytest.raises(UsageError, match="already runs at") as e, \
                local_server(_config(tmp_path)):
            pass
        assert url in e.value.message


def test_config_without_local_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "jaz", "tui", "-c", str(tmp_path / "x")],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "JAZ_HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert "--config goes with --local" in result.stderr


def test_the_log_goes_back_to_where_it_was(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process server logs to a file of its temporary folder while the dashboard
    owns the terminal; afterwards jaz's logger is as it was (the folder is gone)."""
    import logging

    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    log = logging.getLogger("jaz")
    before = (log.handlers[:], log.level, log.propagate)
    with local_server(_config(tmp_path)):
        assert [type(h).__name__ for h in log.handlers] == ["FileHandler"]
    assert (log.handlers, log.level, log.propagate) == before
    log.warning("still fine")    # no handler writes into the deleted folder


def test_local_works_as_root_without_allow_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Containers and fresh VMs are root: the local dashboard works there, with a one-line
    warning, and no `allow_root` (only the long-running `jaz server` refuses root)."""
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)    # the check's one boundary
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    config = tmp_path / "server.toml"
    config.write_text("")                                  # no allow_root
    with local_server(config) as client:
        assert client.jobnets()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "root" in err


def test_server_still_refuses_root_without_allow_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from jaz.errors import Refused
    from jaz.server.config import ServerConfig
    from jaz.server.daemon import refuse_root

    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(Refused, match="refuses to run as root"):
        refuse_root(ServerConfig())
    refuse_root(ServerConfig(allow_root=True))
