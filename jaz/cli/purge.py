"""`jaz purge`: forget old runs, their logs and old audit events (SPEC §4 `keep_days`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer

from jaz.cli.common import DbOption, JsonOption, LocalOption, ServerOption, TokenOption


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)


def purge(
    keep_days: Annotated[int, typer.Option(
        "--keep-days", min=0, help="Keep runs that ended in the last N days.")] = 30,
    json_: JsonOption = False,
    db: DbOption = None,
    local: LocalOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Remove finished runs older than --keep-days, with their logs and the audit events
    from before then.

    Asks the server when one runs here or is named (an admin's token: it purges its own
    database, whatever its config says), else works on the embedded database (--db,
    --local). A server with keep_days set does the same every hour."""
    from jaz.cli.output import print_json, say
    from jaz.cli.query import use_server

    if use_server(db, local, server):
        from jaz.cli.remote import connect

        with connect(server, token) as client:
            answer = client.post("/purge", {"keep_days": keep_days})
        removed, before = answer["removed"], datetime.fromisoformat(answer["before"])
    else:
        from jaz.cli.common import make_service, open_existing_store

        store = open_existing_store(db)
        try:
            service = make_service(store)
            before = datetime.now().astimezone() - timedelta(days=keep_days)
            removed = service.purge(before, user="cli")
        finally:
            store.close()
    if json_:
        print_json({"removed": removed, "before": before.isoformat()})
    else:
        say(f"removed {len(removed)} run{'s' * (len(removed) != 1)} that ended before "
            f"{before:%Y-%m-%d %H:%M}")
