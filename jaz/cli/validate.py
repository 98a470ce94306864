"""`jaz validate`: check jobnet files, report every problem, exit 0 or 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jaz.cli.common import JsonOption

if TYPE_CHECKING:
    from jaz.engine.calendars import CalendarLibrary
    from jaz.errors import Problem


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    files: Annotated[list[Path], typer.Argument(help="Jobnet TOML files.", show_default=False)],
    json_: JsonOption = False,
) -> None:
    """Check jobnet and calendar files; every problem names its file, job and field.

    A jobnet's schedule calendars are looked up and checked too."""
    from jaz.engine.calendars import CalendarLibrary

    library = CalendarLibrary()
    results: list[dict[str, object]] = []
    bad = 0
    for path in files:
        kind, summary, problems = _check(path, library)
        bad += bool(problems)
        results.append({"file": str(path), "kind": kind, "valid": not problems, **summary,
                        "problems": [{"message": p.message, "job": p.job, "field": p.field,
                                      "line": p.line, "column": p.column} for p in problems]})
        if json_:
            continue
        if problems:
            for p in problems:
                sys.stderr.write(f"{p}\n")
        else:
            sys.stdout.write(f"ok  {path} ({_summary(kind, summary)})\n")
    if json_:
        from jaz.cli.output import print_json

        print_json(results)
    elif bad:
        sys.stderr.write(f"{bad} of {len(files)} file{'s' if len(files) != 1 else ''} "
                         f"invalid\n")
    raise typer.Exit(2 if bad else 0)


def _summary(kind: str, summary: dict[str, int]) -> str:
    if kind == "calendar":
        return f"calendar, {summary['operating_days']} operating days this year"
    jobs = summary["jobs"]
    return f"{jobs} job{'s' if jobs != 1 else ''}"


def _check(path: Path, library: CalendarLibrary) -> tuple[str, dict[str, int], list[Problem]]:
    """(kind, summary, problems) of one file, a jobnet or a calendar."""
    from datetime import date

    from jaz.engine.calendars import looks_like_calendar
    from jaz.engine.checks import parse_toml
    from jaz.engine.clock import local_zone
    from jaz.engine.loader import load_text
    from jaz.engine.schedules import bind_jobnet
    from jaz.errors import JobnetInvalid, NotFound, Problem

    kind = "jobnet"
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = parse_toml(text, str(path))
        if looks_like_calendar(data, path):
            kind = "calendar"
            calendar = library.load(path)
            return kind, {"operating_days": len(calendar.year(date.today().year))}, []
        jobnet = load_text(text, path=path)   # the text already read
        bind_jobnet(jobnet, local_zone(), library)
        return kind, {"jobs": len(jobnet.jobs)}, []
    except JobnetInvalid as e:
        problems = e.problems
    except (NotFound, FileNotFoundError, IsADirectoryError):
        problems = [Problem(file=str(path), message="no such file")]
    except (OSError, UnicodeDecodeError) as e:
        problems = [Problem(file=str(path), message=f"cannot read file: {e}")]
    return kind, ({"jobs": 0} if kind == "jobnet" else {"operating_days": 0}), problems
