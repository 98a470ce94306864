"""`jaz runs`, `jaz status`, `jaz logs`: read runs through the service layer.

They ask the server's API (jaz/cli/remote.py) when one is named (`--server`,
`JAZ_SERVER`) or the local one is running (`$JAZ_HOME/server.url` exists), unless
`--db PATH` or `--local` says to read an embedded database (`$JAZ_HOME/jaz.db`, what
`jaz run` writes) instead. With neither, they read `$JAZ_HOME/jaz.db`.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from typing import Annotated

import typer

from jaz.cli.common import (
    DbOption,
    JsonOption,
    LocalOption,
    ServerOption,
    TokenOption,
    make_service,
    open_existing_store,
)
from jaz.cli.helpers import quoted
from jaz.errors import UsageError

SORT_FIELDS = ("id", "jobnet", "status", "scheduled", "started", "ended", "duration")


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("status")(status)
    app.command("logs")(logs)


def parse_since(text: str, now: datetime | None = None, what: str = "--since") -> datetime:
    """"2026-11-20", "2026-11-20T08:00", or a duration back from now ("2h", "3d");
    `what` is the option, for the message."""
    from jaz.engine.durations import DurationError, parse_duration

    now = now or datetime.now().astimezone()
    try:
        return now - timedelta(seconds=parse_duration(text))
    except DurationError:
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad {what} {quoted(text)}: use an ISO date/time like 2026-11-20 or "
                         "2026-11-20T08:00, or a duration back from now like 2h or 3d") from None
    return t if t.tzinfo else t.astimezone()


def use_server(db: object, local: bool, server: str | None) -> bool:
    """Whether to ask a server: not when told to read a database, else when one is
    named or the local one runs."""
    from jaz.client import server_configured

    if db is not None or local:
        if server:
            raise UsageError("--server asks a server, --db/--local read a database: "
                             "give one of them")
        return False
    return server_configured(server)


def runs(
    jobnet: Annotated[str | None, typer.Option("--jobnet", help="Only runs of this jobnet.")]
    = None,
    status_: Annotated[list[str] | None, typer.Option(
        "--status", help="Only runs in this state (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only runs created since: an ISO time or a duration like 2h.")] = None,
    sort: Annotated[str, typer.Option("--sort", help=f"Sort by: {', '.join(SORT_FIELDS)}; "
                                      "prefix - for descending.")] = "-id",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    json_: JsonOption = False,
    db: DbOption = None,
    local: LocalOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List runs, newest first (upcoming scheduled ones too, from a server)."""
    from jaz.engine.checks import did_you_mean
    from jaz.engine.model import RunState

    states = []
    for s in status_ or []:
        try:
            states.append(RunState(s))
        except ValueError:
            names = [x.value for x in RunState]
            raise UsageError(f"bad --status {quoted(s)}: use one of {', '.join(names)}"
                             f"{did_you_mean(s, names)}") from None
    key = sort.lstrip("-")
    if key not in SORT_FIELDS:
        raise UsageError(f"bad --sort {quoted(sort)}: sort by one of {', '.join(SORT_FIELDS)}, "
                         f"with - before it for descending (like --sort -started)"
                         f"{did_you_mean(key, SORT_FIELDS)}")
    after = parse_since(since) if since else None   # a bad option before any look-up
    if use_server(db, local, server):
        from jaz.cli.remote import connect, runs_remote

        with connect(server, token) as client:
            runs_remote(client, jobnet=jobnet, states=[s.value for s in states],
                        since=after, sort=sort, limit=limit, json_=json_)
        return
    from jaz.engine.service import run_view

    store = open_existing_store(db)
    service = make_service(store)
    records = service.runs(jobnet=jobnet, status=states, since=after)

    def sort_key(r: object) -> tuple[int, object]:
        from jaz.engine.records import RunRecord

        assert isinstance(r, RunRecord)
        value: object = {
            "id": r.id, "jobnet": r.jobnet, "status": str(r.status),
            "scheduled": r.scheduled_at.timestamp() if r.scheduled_at else None,
            "started": r.started_at.timestamp() if r.started_at else None,
            "ended": r.ended_at.timestamp() if r.ended_at else None,
            "duration": ((r.ended_at - r.started_at).total_seconds()
                         if r.started_at and r.ended_at else None),
        }[key]
        return (value is None, value)

    records = sorted(records, key=sort_key, reverse=sort.startswith("-"))[:limit]
    if json_:
        from jaz.cli.output import print_json

        print_json([run_view(r, None) for r in records])
        return
    from rich.table import Table

    from jaz.cli.output import out, state, when
    from jaz.engine.durations import format_duration

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("run", "jobnet", "state", "trigger", "started", "time", "jobs", "note"):
        table.add_column(col, no_wrap=col != "note")
    for r in records:
        jobs = service.jobs(r.id)
        done = sum(1 for j in jobs if j.status.finished)
        dur = format_duration((r.ended_at - r.started_at).total_seconds()) \
            if r.started_at and r.ended_at else ""
        table.add_row(str(r.id), r.jobnet, state(str(r.status)), r.trigger,
                      when(r.started_at), dur, f"{done}/{len(jobs)}",
                      r.message if r.status != "succeeded" else "")
    if records:
        out().print(table)
    else:
        out().print("no runs")


def status(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the run ends.")] = False,
    json_: JsonOption = False,
    db: DbOption = None,
    local: LocalOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Show a run and its jobs (jobarg_get).

    Exit 0 when it succeeded, 1 when it failed, halted in error or was stopped."""
    if use_server(db, local, server):
        from jaz.cli.remote import connect, status_remote

        with connect(server, token) as client:
            exit_ = status_remote(client, run_id, wait=wait, json_=json_)
        raise typer.Exit(exit_)
    from jaz.engine.service import run_exit_code, run_view

    store = open_existing_store(db)
    service = make_service(store)
    record = service.run(run_id)
    while wait and run_exit_code(record.status) is None:
        time.sleep(0.2)  # another process writes the run; polling the file is all we have
        record = service.run(run_id)
    jobs = service.jobs(run_id)
    if json_:
        from jaz.cli.output import print_json

        print_json(run_view(record, jobs))
    else:
        from jaz.cli.run import summary

        summary(record, jobs)
    code = run_exit_code(record.status)
    raise typer.Exit(0 if code in (0, None) else 1)


def logs(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run id.")],
    job: Annotated[str | None, typer.Argument(help="Only this job.")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow",
                                         help="Keep printing new output until the run "
                                              "ends.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Every attempt, not just the last.")]
    = False,
    db: DbOption = None,
    local: LocalOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Print the stdout/stderr of a run's jobs."""
    if use_server(db, local, server):
        if all_:
            raise UsageError("--all reads an embedded database only (with --db or --local); "
                             "the server gives each job's latest attempt")
        from jaz.cli.remote import connect, logs_remote

        with connect(server, token) as client:
            logs_remote(client, run_id, job, follow=follow)
        return
    from jaz.engine.service import run_exit_code

    store = open_existing_store(db)
    service = make_service(store)
    chunks = service.logs(run_id, job, all_attempts=all_)
    multi = len({c.job for c in chunks}) > 1 or all_
    for c in chunks:
        if not c.text:
            continue
        if multi or c.stream == "stderr":
            sys.stdout.write(f"==> {c.job} (attempt {c.attempt}) {c.stream} <==\n")
        sys.stdout.write(c.text if c.text.endswith("\n") else c.text + "\n")
    sys.stdout.flush()
    if not follow:
        return
    sizes = {c.path: len(c.text.encode()) for c in chunks}
    while True:
        running = run_exit_code(service.run(run_id).status) is None
        for c in service.logs(run_id, job):
            try:
                with c.path.open("rb") as f:
                    f.seek(sizes.get(c.path, 0))
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                sizes[c.path] = sizes.get(c.path, 0) + len(data)
                sys.stdout.write(data.decode("utf-8", errors="replace"))
                sys.stdout.flush()
        if not running:
            return
        time.sleep(0.2)  # following a file another process writes
