"""The `jaz` command: composes the per-noun modules and turns `JazError`s into
one clear message on stderr and the exit code of SPEC §3.

Importing typer is most of jaz's start-up (~50 ms), so the typer app is built only
when a command line needs it: `main` first offers the line to the hand parser of
`jaz run` (`jaz.cli.run.parse_argv`), which takes only what typer would read the same
way, and runs it without typer. Everything else goes to typer unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

from jaz import __version__
from jaz.errors import JazError

if TYPE_CHECKING:
    import typer

app: typer.Typer  # made by _build(), the first time a command line needs typer


def _version(value: bool) -> None:
    if value:
        print(f"jaz {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version,
                                          is_eager=True, help="Print the version and exit.")]
    = False,
) -> None:
    """jaz: a terminal-first job arranger."""


def _register() -> None:
    from jaz.cli import (
        audit,
        init,
        kinds,
        purge,
        query,
        remote,
        run,
        schedule,
        server,
        tui,
        validate,
    )

    run.register(app)
    validate.register(app)
    kinds.register(app)
    query.register(app)
    schedule.register(app)
    server.register(app)
    purge.register(app)
    init.register(app)
    remote.register(app)
    audit.register(app)
    tui.register(app)


def _build() -> typer.Typer:
    """The typer app with every command."""
    global app, typer  # module globals: `_root`'s annotations and `_version` read typer
    import typer

    app = typer.Typer(
        name="jaz",
        help="jaz: a terminal-first job arranger. Run jobnets now, on schedules and calendars.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="rich",
    )
    app.callback()(_root)
    _register()
    return app


def main(*, hot_path: bool = True) -> None:
    """The `jaz` console script. `hot_path=False` sends every command line to typer
    (the tests run both ways and compare)."""
    try:
        args = None
        if hot_path and sys.argv[1:2] == ["run"] and not _completing():
            from jaz.cli.run import parse_argv

            args = parse_argv(sys.argv[1:])
        if args is None:
            _build()()
        else:
            _run_hot(args)
    except JazError as e:
        _plain_error(e)
        sys.exit(e.exit_code)


def _completing() -> bool:
    """A shell asking typer for completions (`_JAZ_COMPLETE=...`, named after the program)."""
    return any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)


def _run_hot(args: dict[str, object]) -> None:
    """`jaz run` without typer, ending the way typer ends a command."""
    from jaz.cli.run import run_now

    try:
        code = run_now(**args)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # typer: exit 130, no traceback
        code = 130
    except BrokenPipeError:  # typer: exit 1, and nothing more for the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


def _plain_error(e: JazError) -> None:
    # plain stderr text: messages carry user data that must not be read as markup
    sys.stderr.write(f"jaz: error: {e.message}\n")
    if e.hint:
        sys.stderr.write(f"  hint: {e.hint}\n")
    sys.stderr.flush()
