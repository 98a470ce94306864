"""`jaz server`: the scheduling daemon (SPEC §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("server")(server)


def server(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Server config (TOML); without one, defaults apply.",
        dir_okay=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Log more, in colour on a terminal.")] = False,
    once: Annotated[bool, typer.Option(
        "--once", help="Run what is due now (catch-up included), wait for it, exit 0 if "
                       "all succeeded, 1 otherwise.")] = False,
) -> None:
    """Run the scheduler, the run engine and the HTTP API (until SIGTERM or Ctrl-C).

    SIGHUP reloads the jobnet and calendar folders."""
    from jaz.server.daemon import main

    raise typer.Exit(main(config, verbose=verbose, once=once))
