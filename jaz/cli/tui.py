"""`jaz tui`: the operator's dashboard in the terminal (SPEC §6).

textual is imported inside the command, so `jaz --help` stays light. The server is
asked once before the screen opens: with none reachable the command ends like every
other client command, with one line saying how to start one (exit 3).
"""

from __future__ import annotations

import typer

from jaz.cli.common import ServerOption, TokenOption


def register(app: typer.Typer) -> None:
    app.command("tui")(tui)


def tui(server: ServerOption = None, token: TokenOption = None) -> None:
    """Open the dashboard: runs, live, from a jaz server.

    Connects to --server URL (or JAZ_SERVER), else the local server named in
    $JAZ_HOME/server.url. Keys are shown in the footer; q quits.
    """
    from jaz.client import Client

    with Client.find(server, token) as client:
        client.runs(limit=1)    # Unreachable / Refused here, before the screen opens
        from jaz.tui.app import JazApp

        JazApp(client).run()
