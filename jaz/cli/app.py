"""The `jaz` command: composes the per-noun modules and turns `JazError`s into
one clear message on stderr and the exit code of SPEC §3."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from jaz import __version__
from jaz.errors import JazError

app = typer.Typer(
    name="jaz",
    help="jaz: a terminal-first job arranger. Run jobnets now, on schedules and calendars.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"jaz {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version,
                                          is_eager=True, help="Print the version and exit.")]
    = False,
) -> None:
    """jaz: a terminal-first job arranger."""


def _register() -> None:
    from jaz.cli import query, run, schedule, validate

    run.register(app)
    validate.register(app)
    query.register(app)
    schedule.register(app)


_register()


def main() -> None:
    try:
        app()
    except JazError as e:
        _plain_error(e)
        sys.exit(e.exit_code)


def _plain_error(e: JazError) -> None:
    # plain stderr text: messages carry user data that must not be read as markup
    sys.stderr.write(f"jaz: error: {e.message}\n")
    if e.hint:
        sys.stderr.write(f"  hint: {e.hint}\n")
    sys.stderr.flush()
