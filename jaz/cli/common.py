"""Options and helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jaz.cli.helpers import make_service, open_existing_store, open_store, parse_params

__all__ = ["DbOption", "JsonOption", "LocalOption", "ServerOption", "TokenOption",
           "make_service", "open_existing_store", "open_store", "parse_params"]

DbOption = Annotated[Path | None, typer.Option(
    "--db", help="Read/write this embedded database instead of $JAZ_HOME/jaz.db.",
    dir_okay=False)]
LocalOption = Annotated[bool, typer.Option(
    "--local", help="Use the embedded database in $JAZ_HOME (what `jaz run` writes).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ServerOption = Annotated[str | None, typer.Option(
    "--server", metavar="URL", envvar="JAZ_SERVER", show_envvar=False,
    help="The jaz server (env JAZ_SERVER); default: the local one, from $JAZ_HOME/server.url.")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", metavar="TOKEN", envvar="JAZ_TOKEN", show_envvar=False,
    help="Bearer token (env JAZ_TOKEN); default: the local server's $JAZ_HOME/admin.token.")]
