"""How run fields read in the TUI's cells: states with glyph and colour (the CLI's
table styles, so both faces look alike), local times, short durations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rich.text import Text

from jaz.engine.durations import format_duration
from jaz.styles import STATE_STYLE


def now() -> datetime:
    """The TUI's clock, aware, in local time: everything that reads "now" or "today" asks
    here, so that snapshots can fix it."""
    return datetime.now().astimezone()


def today() -> date:
    return now().date()


def state(value: str) -> Text:
    """A state as glyph + word in its colour: it reads without colour too."""
    style, glyph = STATE_STYLE.get(value, ("", "?"))
    return Text(f"{glyph} {value}", style=style)


def moment(iso: str | None) -> str:
    """A time: HH:MM:SS today, else the date and HH:MM (as the CLI's tables show it)."""
    if not iso:
        return "-"
    local = datetime.fromisoformat(iso).astimezone()
    if local.date() == today():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def duration(run: dict[str, Any], at: datetime | None = None) -> str:
    """Start to end; a running run counts to `at` (default: now)."""
    start, end = run.get("started_at"), run.get("ended_at")
    if not start:
        return "-"
    began = datetime.fromisoformat(start)
    if end:
        finished = datetime.fromisoformat(end)
    elif run.get("status") == "running":
        finished = at or now()
    else:
        return "-"
    return format_duration(max(0.0, (finished - began).total_seconds()))


def note(run: dict[str, Any]) -> str:
    """The run's message, else its warning, on one line."""
    text = run.get("message") or run.get("warning") or ""
    return " ".join(str(text).split())


def last_result(run: dict[str, Any] | None) -> Text:
    """A jobnet's last run as its state glyph in colour and when it started (else when
    it was scheduled or created): "✔ 14:02:11"; "-" for none."""
    if not run:
        return Text("-")
    style, glyph = STATE_STYLE.get(str(run.get("status")), ("", "?"))
    at = run.get("started_at") or run.get("scheduled_at") or run.get("created_at")
    return Text.assemble((glyph, style), f" {moment(at)}")


def problem(p: dict[str, Any], *, short: bool = False) -> str:
    """A validation problem of the API on one line, as the CLI prints it:
    "file:line:col (job 'x', field 'y'): message"; `short` names the file only."""
    where = str(p.get("file") or "?")
    if short:
        where = where.rsplit("/", 1)[-1]
    if p.get("line") is not None:
        where += f":{p['line']}" + (f":{p['column']}" if p.get("column") is not None else "")
    parts = [f"{what} {p[what]!r}" for what in ("job", "field") if p.get(what) is not None]
    return f"{where}{' (' + ', '.join(parts) + ')' if parts else ''}: {p.get('message', '')}"


def short_moment(iso: str | None) -> str:
    """A time in few cells, for narrow tables: today HH:MM:SS, else MM-DD HH:MM this year,
    else the date."""
    if not iso:
        return "-"
    local = datetime.fromisoformat(iso).astimezone()
    day = today()
    if local.date() == day:
        return local.strftime("%H:%M:%S")
    return local.strftime("%m-%d %H:%M" if local.year == day.year else "%Y-%m-%d")


def progress(run: dict[str, Any]) -> str:
    """Jobs finished of the run's jobs: "3/10"."""
    p = run.get("progress")
    return f"{p.get('done', 0)}/{p.get('total', 0)}" if isinstance(p, dict) else "-"


def late(run: dict[str, Any]) -> Text:
    """The late flag of a scheduled run that started late (or is overdue)."""
    return Text("⚠ late", style="bold yellow") if run.get("late") else Text("")
