"""`jaz init`: a starter server config, an example jobnet and a business calendar, so
that `jaz server` has something to run at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CONFIG = """\
# jaz server config (SPEC §4; docs/server.md). `jaz server` reads this file when it is
# $JAZ_HOME/server.toml, or give it with -c. Every key is optional.
listen = "127.0.0.1:10061"
jobnets = "jobnets"           # relative paths are relative to this file
calendars = "calendars"
keep_days = 30                # finished runs older than this are purged, with their logs
log_level = "info"

[queues]                      # jobs with queue = "io" share two slots
io = 2

# [users.alice]               # API users; the admin token is in admin.token beside this file
# role = "operator"           # viewer | operator | admin
# token_sha256 = "..."        # printf %s "$TOKEN" | sha256sum

# [notify]                    # on failures and lateness
# command = 'logger -t jaz "$JAZ_EVENT $JAZ_JOBNET $JAZ_RUN_ID $JAZ_JOB $JAZ_MESSAGE"'
"""

JOBNET = """\
# An example jobnet: `jaz next hello` shows when it fires, `jaz start hello` runs it now.
name = "hello"
description = "Say hello on business days at 09:00"

[schedule]
times = ["09:00"]
calendar = "business-days"
overlap = "skip"

[params]
WHO = "world"

[jobs.greet]
run = 'echo "hello, $WHO" && echo "GREETED=yes" >> "$JAZ_OUTPUT"'

[jobs.report]
needs = ["greet"]
if = "greet.GREETED == 'yes'"
run = "date"
"""

CALENDAR = """\
# Monday to Friday. Add your country's public holidays: holidays = "JP" (or "DE-BY",
# "US-NY"...), and closed dates: exclude = ["2026-12-30..2027-01-03"].
name = "business-days"
weekdays = ["mon", "tue", "wed", "thu", "fri"]
"""


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    folder: Annotated[Path | None, typer.Argument(
        help="Where to write (default: $JAZ_HOME, where `jaz server` looks).",
        show_default=False, file_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a starter server config, an example jobnet and a business calendar."""
    from jaz.cli.output import say
    from jaz.errors import UsageError
    from jaz.paths import jaz_home

    root = folder or jaz_home()
    files = {root / "server.toml": CONFIG, root / "jobnets" / "hello.toml": JOBNET,
             root / "calendars" / "business-days.toml": CALENDAR}
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(map(str, existing))} already exist"
                         f"{'s' if len(existing) == 1 else ''}; nothing was written",
                         hint="use --force to overwrite, or give another folder")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        say(f"wrote {path}")
    start = "jaz server" if folder is None else f"jaz server -c {root / 'server.toml'}"
    say(f"next: `{start}`, then `jaz jobnets` and `jaz start hello`")
