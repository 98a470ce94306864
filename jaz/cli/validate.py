"""`jaz validate`: check jobnet files, report every problem, exit 0 or 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from jaz.cli.common import JsonOption


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    files: Annotated[list[Path], typer.Argument(help="Jobnet TOML files.", show_default=False)],
    json_: JsonOption = False,
) -> None:
    """Check jobnet files: every problem is named with file, job, field and line."""
    from jaz.engine.loader import load_file
    from jaz.errors import JobnetInvalid, NotFound, Problem

    results: list[dict[str, object]] = []
    bad = 0
    for path in files:
        problems: list[Problem] = []
        jobs = 0
        try:
            jobnet = load_file(path)
            jobs = len(jobnet.jobs)
        except JobnetInvalid as e:
            problems = e.problems
        except NotFound:
            problems = [Problem(file=str(path), message="no such file")]
        bad += bool(problems)
        results.append({"file": str(path), "valid": not problems, "jobs": jobs,
                        "problems": [{"message": p.message, "job": p.job, "field": p.field,
                                      "line": p.line, "column": p.column} for p in problems]})
        if json_:
            continue
        if problems:
            for p in problems:
                sys.stderr.write(f"{p}\n")
        else:
            sys.stdout.write(f"ok  {path} ({jobs} job{'s' if jobs != 1 else ''})\n")
    if json_:
        from jaz.cli.output import print_json

        print_json(results)
    elif bad:
        sys.stderr.write(f"{bad} of {len(files)} file{'s' if len(files) != 1 else ''} "
                         f"invalid\n")
    raise typer.Exit(2 if bad else 0)
