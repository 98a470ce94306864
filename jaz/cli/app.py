"""The `jaz` command: composes the per-noun modules and turns `JazError`s into
one clear message on stderr and the exit code of SPEC §3.

Importing typer is most of jaz's start-up (~50 ms), so the typer app is built only
when a command line needs it: `main` first offers the line to the hand parser of
`jaz run` (`jaz.cli.run.parse_argv`), which takes only what typer would read the same
way, and runs it without typer. Everything else goes to typer unchanged.
"""

from __future__ import annotations

import gc
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
        agent,
        audit,
        hosts,
        importers,
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
    agent.register(app)
    hosts.register(app)
    importers.register(app)


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
            # no collections while the engine is imported and the jobnet loaded (they
            # would walk every object made so far, again and again): `run_now` freezes
            # what is loaded and turns the collector back on once the run is under way
            gc.disable()
            from jaz.cli.run import parse_argv

            args = parse_argv(sys.argv[1:])
        if args is None:
            _run_typer()
        else:
            _run_hot(args)
    except JazError as e:
        _plain_error(e)
        sys.exit(e.exit_code)


def _run_typer() -> None:
    """The command line through typer, whose usage errors (a bad --parallel, an unknown
    option, a missing argument) end like every other error of jaz: one line on stderr
    saying what and where, and exit 2, rather than a box with the usage in it."""
    from typer.main import get_command

    command = get_command(_build())
    try:
        code = command.main(prog_name="jaz", standalone_mode=False)
    except Exception as e:
        # click's classes, by name: typer 0.28 carries its own copy of click
        kinds = {k.__name__ for k in type(e).__mro__}
        if "Abort" in kinds:
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        if "ClickException" not in kinds:
            raise
        if "NoArgsIsHelpError" not in kinds:   # that one has printed the help already
            _click_error(e)
        sys.exit(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _click_error(e: Exception) -> None:
    format_message = getattr(e, "format_message", None)
    message = _number_error(e) or \
        " ".join((format_message() if format_message else str(e)).split())
    ctx = getattr(e, "ctx", None)
    path = getattr(ctx, "command_path", None)
    where, helps = (f"{path}: ", f" (see `{path} -h`)") if path else ("", "")
    sys.stderr.write(f"jaz: error: {where}{message}{helps}\n")
    sys.stderr.flush()


def _number_error(e: Exception) -> str | None:
    """click's "'abc' is not a valid int range." for a whole-number option, said the way
    jaz says it: `--count: expected a whole number from 1 to 10000, got "abc"`."""
    import re

    param, text = getattr(e, "param", None), getattr(e, "message", "")
    kind = getattr(getattr(param, "type", None), "name", "")
    m = re.match(r"'?(.*?)'? is not (?:a valid|in the range)", str(text))
    if kind not in ("int", "integer", "int range", "integer range") or m is None \
            or param is None:
        return None
    low, high = getattr(param.type, "min", None), getattr(param.type, "max", None)
    bounds = f" from {low} to {high}" if low is not None and high is not None else \
        f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""
    names = " / ".join(param.opts) if getattr(param, "param_type_name", "") == "option" \
        else str(getattr(param, "human_readable_name", param.name))
    return f"{names}: expected a whole number{bounds}, got \"{m.group(1)}\""


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
