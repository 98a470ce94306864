"""`jaz tui`: the operator's dashboard in the terminal (SPEC §6).

textual is imported inside the command, so `jaz --help` stays light. The server is
asked once before the screen opens: with none reachable the command ends like every
other client command, with one line saying how to start one (exit 3).

`--local` starts a server in this process instead (see `local_server`), so that a
newcomer can try the dashboard with one command.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jaz.cli.common import ServerOption, TokenOption

if TYPE_CHECKING:
    from jaz.client import Client

LocalFlag = Annotated[bool, typer.Option(
    "--local", help="Start a server in this process on a free loopback port, with a "
                    "temporary database and your jobnet folders (or the examples), and "
                    "open the dashboard on it.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="FILE", help="With --local: the server config to use "
                                           "(default: $JAZ_HOME/server.toml if present).")]


def register(app: typer.Typer) -> None:
    app.command("tui")(tui)


def tui(server: ServerOption = None, token: TokenOption = None, local: LocalFlag = False,
        config: ConfigOption = None) -> None:
    """Open the dashboard: runs, jobnets, hosts and calendars, live, from a jaz server.

    Connects to --server URL (or JAZ_SERVER), else the local server named in
    $JAZ_HOME/server.url; --local starts one in this process. Keys are shown in the
    footer; ? shows help; q quits.
    """
    from jaz.client import Client

    if config is not None and not local:
        from jaz.errors import UsageError

        raise UsageError("--config goes with --local (without --local, jaz tui connects to "
                         "a running server and uses its config)")
    with local_server(config) if local else Client.find(server, token) as client:
        client.runs(limit=1)    # Unreachable / Refused here, before the screen opens
        from jaz.tui.app import JazApp

        JazApp(client).run()


def examples_folder() -> Path | None:
    """The examples/ of a source checkout (or an editable install), if there is one."""
    folder = Path(__file__).resolve().parents[2] / "examples"
    return folder if folder.is_dir() else None


@contextlib.contextmanager
def local_server(config_path: Path | None) -> Iterator[Client]:
    """A server in this process, for `jaz tui --local`: the config given, else
    $JAZ_HOME/server.toml, else defaults; jobnets from the config, else $JAZ_HOME/jobnets
    when it holds any, else the examples. It listens on a free loopback port, keeps its
    database and log in a temporary folder (so it never shares a database with a real
    server) and is stopped when the dashboard closes. Refused while a local server runs:
    two schedulers would fire the same jobnets. As root it warns and goes on, whatever
    `allow_root` says: only the long-running `jaz server` refuses root."""
    import dataclasses
    import logging
    import tempfile

    from jaz.client import Client
    from jaz.errors import UsageError
    from jaz.paths import SERVER_URL_FILE, jaz_home
    from jaz.server.config import load_config
    from jaz.server.daemon import Daemon, warn_root

    home = jaz_home()
    running = home / SERVER_URL_FILE
    if running.is_file():
        url = running.read_text().strip()
        with Client(url, None) as probe:
            if probe.alive():
                raise UsageError(f"a jaz server already runs at {url}",
                                 hint="run `jaz tui` without --local to watch it")
    if config_path is None and (home / "server.toml").is_file():
        config_path = home / "server.toml"
    config = load_config(config_path)
    warn_root("the dashboard's local server")
    jobnets, calendars = config.jobnets, config.calendars
    if jobnets is None:
        mine = home / "jobnets"
        examples = examples_folder()
        if any(mine.glob("*.toml")) or examples is None:
            jobnets, calendars = mine, calendars or home / "calendars"
        else:
            jobnets, calendars = examples, calendars or examples / "calendars"
    with tempfile.TemporaryDirectory(prefix="jaz-tui-") as tmp:
        log = logging.getLogger("jaz")
        handler = logging.FileHandler(Path(tmp) / "server.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
        before = log.handlers[:], log.level, log.propagate
        log.handlers[:] = [handler]          # stderr belongs to the dashboard
        log.setLevel(config.log_level.upper())
        log.propagate = False
        local = dataclasses.replace(config, listen_host="127.0.0.1", listen_port=0,
                                    database=str(Path(tmp) / "jaz.db"), jobnets=jobnets,
                                    calendars=calendars, keep_days=None)
        daemon = Daemon(local, home=Path(tmp))
        try:
            daemon.serve_in_thread()
            with Client(daemon.url, daemon.token) as client:
                yield client
        finally:
            daemon.stop()
            daemon.core.close()
            log.handlers[:], log.level, log.propagate = before
            handler.close()
