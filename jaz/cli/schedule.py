"""`jaz next` and `jaz calendar show`: when a jobnet fires, which days are operating.

Both read files (a jobnet's own folder and its `calendars/` subfolder are where names
are looked up); the server becomes a second source of names in the server issue.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jaz.cli.common import JsonOption, ServerOption, TokenOption
from jaz.cli.helpers import quoted
from jaz.errors import NotFound, UsageError

if TYPE_CHECKING:
    from jaz.engine.calendars import Calendar

calendar_app = typer.Typer(help="Business calendars: see their operating days.",
                           no_args_is_help=True,
                           context_settings={"help_option_names": ["-h", "--help"]})


def register(app: typer.Typer) -> None:
    app.command("next")(next_)
    app.add_typer(calendar_app, name="calendar")
    calendar_app.command("show")(show)


# ------------------------------------------------------------------ jaz next


def next_(
    jobnet: Annotated[str, typer.Argument(
        help="A jobnet file, or a name looked up as NAME.toml here or in ./jobnets/.",
        show_default=False)],
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=10000,
                                       help="How many fire times.")] = 10,
    after: Annotated[str | None, typer.Option(
        "--after", help="List fires after this time (ISO 8601, e.g. 2026-12-31T23:00; "
                        "without an offset it is local time). Default: now.")] = None,
    json_: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """The next fire times of a jobnet's schedule, with the operating day of each.

    From its file, or from the server when NAME is no file here and a server runs."""
    from jaz.engine.clock import local_zone
    from jaz.engine.loader import load_file
    from jaz.engine.schedules import bind_jobnet, next_fires

    zone = local_zone()
    start = parse_time(after, zone) if after is not None else datetime.now(zone)
    try:
        path = _jobnet_path(jobnet)
    except NotFound:
        from jaz.client import server_configured

        if not server_configured(server):
            raise
        _next_from_server(jobnet, count, start, json_, server, token)
        return
    net = load_file(path)
    bound = bind_jobnet(net, zone)
    fires = next_fires(bound, start, count)
    if json_:
        from jaz.cli.output import print_json

        print_json([f.at.isoformat() for f in fires])
        return
    from jaz.cli.output import esc, print_table, say

    if not bound:
        say(f"{esc(net.name)} has no [schedule]: it runs only when started "
            "(`jaz run`, `jaz start`)")
        return
    for b in bound:
        label = f"[{b.schedule.index + 1}] " if len(bound) > 1 else ""
        say(f"[b]{esc(net.name)}[/] {label}{esc(b.schedule.describe())} "
            f"[dim]({b.zone})[/]")
    if not fires:
        say("no fire times ahead (the calendar or window leaves no time that matches)")
        return
    many = len(bound) > 1
    rows = []
    for f in fires:
        row = [f"{f.at.isoformat(sep=' ', timespec='seconds')} {f.at:%a}",
               "in " + _span(f.at - start),
               f.day.isoformat() + (" (day before)" if f.day != f.at.date() else "")]
        if many:
            row.append(str(f.schedule + 1))
        rows.append(row)
    print_table(["fire time", "after " + ("now" if after is None else after),
                 "operating day", *(["schedule"] if many else [])], rows)


def _next_from_server(name: str, count: int, start: datetime, json_: bool,
                      server: str | None, token: str | None) -> None:
    from jaz.cli.output import esc, print_json, print_table, say
    from jaz.cli.remote import connect
    from jaz.client import quoted

    with connect(server, token) as client:
        shown = client.jobnet(name)
        fires = client.get(f"/jobnets/{quoted(name)}/next", n=count,
                           after=start.isoformat())
    if json_:
        print_json(fires)
        return
    for rule in shown.get("schedules") or []:
        say(f"[b]{esc(name)}[/] {esc(rule)}")
    if not fires:
        say(f"{esc(name)} has no fire times ahead")
        return
    print_table(["fire time", "after " + start.isoformat(timespec="minutes")],
                [[datetime.fromisoformat(f).isoformat(sep=" "),
                  "in " + _span(datetime.fromisoformat(f) - start)] for f in fires])


def _jobnet_path(ref: str) -> Path:
    p = Path(ref)
    if ref.endswith(".toml") or p.is_file():
        return p
    for candidate in (Path(f"{ref}.toml"), Path("jobnets") / f"{ref}.toml"):
        if candidate.is_file():
            return candidate
    raise NotFound(f"jobnet {quoted(ref)} not found (looked for {ref}.toml and "
                   f"jobnets/{ref}.toml)",
                   hint="give the jobnet's file path")


def parse_time(text: str, zone: tzinfo, what: str = "--after") -> datetime:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"bad {what} {quoted(text)}: use ISO 8601 like 2026-12-31T23:00 or "
                         "2026-12-31T23:00+09:00") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=zone)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours) + \
        [f"{minutes}m"] * bool(minutes)
    return " ".join(parts[:2]) or f"{secs}s"


# ------------------------------------------------------------------ jaz calendar show


def show(
    calendar: Annotated[str, typer.Argument(
        help="A calendar file, or a name looked up as NAME.toml here or in ./calendars/.",
        show_default=False)],
    year: Annotated[int | None, typer.Option("--year", "-y", min=1900, max=2999,
                                             help="Which year. Default: this year.")] = None,
    json_: JsonOption = False,
) -> None:
    """A year of month grids with operating days marked and holidays named."""
    from jaz.engine.calendars import CalendarLibrary

    library = CalendarLibrary()
    p = Path(calendar)
    cal = library.load(p) if calendar.endswith(".toml") or p.is_file() else \
        library.get(calendar, Path.cwd() / "jaz-calendar-lookup")
    shown = year or date.today().year
    days = cal.year(shown)
    if json_:
        from jaz.cli.output import print_json

        print_json(sorted(d.isoformat() for d in days))
        return
    _print_year(cal, shown, days)


def _print_year(cal: Calendar, year: int, days: frozenset[date]) -> None:
    from jaz.cli.output import esc, is_tty, out, say

    holidays = {d: n for d, n in cal.holiday_names(year).items() if d.year == year}
    say(f"[b]{esc(cal.name)}[/] {year}: [b]{len(days)}[/] operating days  "
        f"[dim]{esc(_rule(cal))}[/]")
    width = out().width if is_tty() else 80
    per_row = max(1, min(4, (width + 2) // 30))
    grids = [_month(year, m, days, holidays) for m in range(1, 13)]
    tty = is_tty()
    for first in range(0, 12, per_row):
        block = grids[first:first + per_row]
        for line in range(max(len(g) for g in block)):
            cells = [g[line] if line < len(g) else [("", " " * 28)] for g in block]
            if tty:
                from rich.text import Text

                text = Text()
                for i, month_cells in enumerate(cells):
                    if i:
                        text.append("  ")
                    for style, chunk in month_cells:
                        text.append(chunk, style=style or None)
                out().print(text, overflow="crop", no_wrap=True)
            else:
                sys.stdout.write("  ".join("".join(c for _, c in mc) for mc in cells)
                                 .rstrip() + "\n")
        say("")
    say("[green]*[/] operating day   [red]h[/] public holiday (closed unless included)")
    if holidays:
        say("")
        say("[b]Holidays[/]")
        for d in sorted(holidays):
            mark = "operating" if d in days else "closed"
            say(f"  {d.isoformat()} {d.strftime('%a')}  {esc(holidays[d])}  [dim]({mark})[/]")


def _month(year: int, month: int, days: frozenset[date],
           holidays: dict[date, str]) -> list[list[tuple[str, str]]]:
    """One month as lines of (style, text) chunks, 28 characters wide."""
    import calendar as months

    title = f"{months.month_name[month]} {year}"
    lines: list[list[tuple[str, str]]] = [[("bold", title.center(28))],
                                          [("dim", " Mo  Tu  We  Th  Fr  Sa  Su ")]]
    for week in months.Calendar().monthdatescalendar(year, month):
        line: list[tuple[str, str]] = []
        for d in week:
            if d.month != month:
                line.append(("", "    "))
            elif d in days:
                line.append(("bold green", f"{d.day:3d}*"))
            elif d in holidays:
                line.append(("red", f"{d.day:3d}h"))
            else:
                line.append(("dim", f"{d.day:3d} "))
        lines.append(line)
    return lines


def _rule(cal: Calendar) -> str:
    parts = []
    if cal.base is not None:
        if cal.day_of_month:
            parts.append(f"day {', '.join(map(str, cal.day_of_month))} of the month of "
                         f"{cal.base.name}" + (f", shift {cal.shift}" if cal.shift != "none"
                                                else ""))
        if cal.operating_day_of_month:
            parts.append(f"operating day {', '.join(map(str, cal.operating_day_of_month))} "
                         f"of the month of {cal.base.name}")
    else:
        names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        parts.append("weekdays " + (",".join(names[i] for i in sorted(cal.weekdays)) or "none"))
        if cal.holidays:
            parts.append("holidays " + ", ".join(cal.holidays))
    if cal.include:
        parts.append(f"{len(cal.include)} included")
    if cal.exclude:
        parts.append(f"{len(cal.exclude)} excluded")
    return "; ".join(parts)
