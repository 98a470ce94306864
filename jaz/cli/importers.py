"""`jaz import crontab|pgagent`: bring crontabs and pgAgent jobs over as jobnet files.

The importers live in `jaz.importers`; this module only reads the command line, prints
what was written and, on stderr, every note on what could not be carried over.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jaz.cli.common import JsonOption

if TYPE_CHECKING:
    from jaz.importers import Plan

import_app = typer.Typer(help="Import crontabs and pgAgent jobs as jobnet files.",
                         no_args_is_help=True,
                         context_settings={"help_option_names": ["-h", "--help"]})

OutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="The folder to write the jobnets into (made if missing); "
                        "schedules' calendars go into its calendars/ subfolder.",
    file_okay=False, show_default=False)]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Overwrite files of the same names in --out.")]


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    import_app.command("crontab")(crontab)
    import_app.command("pgagent")(pgagent)


def crontab(
    out: OutOption,
    file: Annotated[str, typer.Argument(
        help="A crontab file (`crontab -l > my.crontab`), or - for standard input.",
        metavar="[FILE|-]")] = "-",
    one: Annotated[bool, typer.Option(
        "--one", help="One jobnet for the whole crontab, instead of one jobnet per "
                      "entry.")] = False,
    system: Annotated[bool, typer.Option(
        "--system", help="A system crontab (/etc/crontab, /etc/cron.d/*): a user field "
                         "before each command.")] = False,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="Start of the jobnet names (default: the file's name, or "
                         "'crontab' for standard input).")] = None,
    mail: Annotated[bool, typer.Option(
        "--mail/--no-mail", help="Mail the jobs' output as cron does (to MAILTO, else "
                                 "the crontab's owner), or keep it in jaz's logs only.")
                    ] = True,
    force: ForceOption = False,
    json_: JsonOption = False,
) -> None:
    """Each crontab entry becomes a jobnet with the same fire times (cron's rules),
    its environment, SHELL, CRON_TZ, and cron's mail of its output (MAILTO).

    Lines cron would refuse stop the import with nothing written (exit 2); what cannot be
    carried over (@reboot) is reported line by line on stderr."""
    from jaz.importers import slug
    from jaz.importers.crontab import Options, plan_crontab, read_source

    text, source = read_source(file)
    name = prefix if prefix is not None else \
        ("crontab" if file == "-" else Path(file).name.removesuffix(".crontab"))
    options = Options(out=out, prefix=slug(name, fallback="crontab"), one=one,
                      system=system, home=str(Path.home()), mail=mail)
    plan = plan_crontab(text, source, options)
    _write(plan, out, force, json_)


def pgagent(
    dsn: Annotated[str, typer.Argument(
        help="The database that holds pgAgent's schema: postgresql://user@host:port/db "
             "(a password comes from ~/.pgpass or PGPASSWORD).", metavar="POSTGRESQL_URL",
        show_default=False)],
    out: OutOption,
    job: Annotated[list[str] | None, typer.Option(
        "--job", help="Import only this pgAgent job (its name or id); repeatable.")] = None,
    force: ForceOption = False,
    json_: JsonOption = False,
) -> None:
    """Each pgAgent job becomes a jobnet: its steps in pgAgent's order as a chain, SQL
    steps with `database`, batch steps as `run`, schedules with their exceptions.

    What cannot be carried over is reported job by job and step by step on stderr."""
    from datetime import datetime

    from jaz.importers.pgagent import plan_pgagent

    plan = plan_pgagent(dsn, only=job or [], now=datetime.now().astimezone())
    _write(plan, out, force, json_)


def _write(plan: Plan, out: Path, force: bool, json_: bool) -> None:
    from jaz.importers import write_plan

    for note in plan.notes:
        sys.stderr.write(f"{note}\n")
    written = write_plan(plan, out, force=force)
    rels = list(plan.files)
    if json_:
        from jaz.cli.output import print_json

        print_json({"written": [{"file": str(p), "from": plan.sources[r]}
                                for p, r in zip(written, rels, strict=True)],
                    "notes": [{"where": n.where, "message": n.message} for n in plan.notes]})
        return
    for p, rel in zip(written, rels, strict=True):
        sys.stdout.write(f"wrote {p}  ({plan.sources[rel]})\n")
    jobnets = sum(1 for r in rels if r.endswith(".toml") and not r.startswith("calendars/"))
    summary = f"{jobnets} jobnet{'s' if jobnets != 1 else ''} in {out}"
    if plan.notes:
        summary += f"; {len(plan.notes)} note{'s' if len(plan.notes) != 1 else ''} above"
    if "cron-mail.sh" in plan.files:
        summary += (f"\nMAILTO: jobs mail their output through {(out / 'cron-mail.sh').resolve()}"
                    " (their shell; keep it there) with $SENDMAIL or /usr/sbin/sendmail")
    sys.stdout.write(summary + "\n")
