"""`jaz log`: the server's audit/event log — who started, stopped, held or released
what, and when — as a table, JSON or CSV (JAZ's `jobarg_joblogput`)."""

from __future__ import annotations

import csv
import sys
from typing import Annotated

import typer

from jaz.cli.common import JsonOption, ServerOption, TokenOption

FIELDS = ("at", "kind", "run_id", "jobnet", "job", "user", "detail")


def register(app: typer.Typer) -> None:
    app.command("log")(log)


def log(
    since: Annotated[str | None, typer.Option(
        "--since", help="From this time: ISO (2026-11-20T08:00) or a duration back (2h, 3d).")]
    = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Up to this time (same forms as --since).")] = None,
    jobnet: Annotated[str | None, typer.Option("--jobnet", help="Only this jobnet.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only what this user did.")]
    = None,
    run: Annotated[int | None, typer.Option("--run", min=1, help="Only this run.")] = None,
    csv_: Annotated[bool, typer.Option("--csv", help="Comma-separated values, with a header.")]
    = False,
    json_: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """The audit/event log of the server, oldest first."""
    from jaz.cli.query import parse_since
    from jaz.cli.remote import connect

    params: dict[str, object] = {}
    if since:
        params["since"] = parse_since(since).isoformat()
    if until:
        params["until"] = parse_since(until, what="--until").isoformat()
    for key, value in (("jobnet", jobnet), ("user", user), ("run", run)):
        if value is not None:
            params[key] = value
    with connect(server, token) as client:
        events = client.get("/events", **params)
    if json_:
        from jaz.cli.output import print_json

        print_json(events)
    elif csv_:
        writer = csv.DictWriter(sys.stdout, fieldnames=FIELDS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(events)
    else:
        from jaz.cli.output import print_table, say

        if not events:
            say("no events")
            return
        print_table(["time", "event", "run", "jobnet", "job", "user", "detail"],
                    [[e["at"][:19].replace("T", " "), e["kind"], str(e["run_id"] or ""),
                      e["jobnet"] or "", e["job"] or "", e["user"], e["detail"]]
                     for e in events], wrap=("detail",))
