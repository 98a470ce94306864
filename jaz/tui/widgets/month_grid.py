"""One month as a grid (weeks as rows, Monday to Sunday as columns) with a calendar's
operating days and a jobnet's fires on it.

On a wide terminal each day also shows its fire times and its holiday's name. Each
day reads without colour: `[23]` is today, a `·` after the day marks a closed
(non-operating) day, `H` a public holiday, `*` a day with fires. Colour adds to it:
operating days bold green, closed days dim, holidays red, fires yellow.

The widget only draws what it is given (`show`): the screen fetches the data; `left`
and `right` ask it for another month with `MonthGrid.Step`.
"""

from __future__ import annotations

import calendar
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget

from jaz.tui import format

LEGEND = Text.assemble(("23", "bold green"), " operating  ", ("23·", "dim"), " closed  ",
                       ("H", "red"), " holiday  ", ("*", "bold yellow"), " fire  ",
                       ("[23]", "reverse"), " today")
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
CELL, WIDE, WIDEST = 6, 12, 16    # a day's columns: narrowest, with times and names, most


def day_cell(day: date, *, operating: bool | None, holiday: bool, fires: bool,
             today: bool) -> Text:
    """One day as 6 characters: "[dd]" or " dd ", then the closed/holiday mark, then
    the fire mark. `operating` None: no calendar, no mark."""
    left, right = ("[", "]") if today else (" ", " ")
    style = "" if operating is None else ("bold green" if operating else "dim")
    out = Text(left, style="reverse" if today else "")
    out.append(f"{day.day:>2}", style=f"{style} reverse".strip() if today else style)
    out.append(right, style="reverse" if today else "")
    if holiday:
        out.append("H", style="red")
    elif operating is False:
        out.append("·", style="dim")
    else:
        out.append(" ")
    out.append("*" if fires else " ", style="bold yellow")
    return out


def month_table(year: int, month: int, *, operating: Collection[date] | None,
                holidays: Mapping[date, str], fires: Mapping[date, Sequence[str]],
                today: date, width: int = CELL) -> Table:
    """The month's weeks. Cells are `width` wide; from WIDE on, each week has two more
    lines: the day's fire times and its holiday's name."""
    wide = width >= WIDE
    table = Table(box=None, padding=(0, 0), collapse_padding=True, show_edge=False,
                  pad_edge=False, header_style="bold")
    for name in WEEKDAYS:
        table.add_column(f" {name}", width=width, no_wrap=True, overflow="crop")
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        row: list[Text] = []
        for day in week:
            if day.month != month:
                row.append(Text(""))
                continue
            out = day_cell(day, operating=None if operating is None else day in operating,
                           holiday=day in holidays, fires=day in fires, today=day == today)
            if wide:
                times = list(fires.get(day, ()))
                more = f" +{len(times) - 1}" if len(times) > 1 else ""
                out.append("\n " + (times[0] + more if times else ""), style="yellow")
                out.append("\n " + holidays.get(day, "")[:width - 2], style="red")
            row.append(out)
        table.add_row(*row)
    return table


class MonthGrid(Widget, can_focus=True):
    """A month of a calendar, with fires."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "step(-1)", "Prev month", show=False),
        Binding("right", "step(1)", "Next month", show=False),
    ]

    DEFAULT_CSS = """
    MonthGrid {
        height: auto;
        width: 1fr;
        min-width: 44;
        padding: 0 1;
    }
    MonthGrid:focus {
        background: $boost;
    }
    """

    @dataclass
    class Step(Message):
        """Show the month `months` before (negative) or after this one."""

        months: int

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        today = format.today()
        self.year, self.month = today.year, today.month
        self.title = ""
        self.operating: frozenset[date] | None = None
        self.holidays: dict[date, str] = {}
        self.fires: dict[date, list[str]] = {}
        self.today = today

    def show(self, year: int, month: int, *, title: str = "",
             operating: Collection[date] | None = None,
             holidays: Mapping[date, str] | None = None,
             fires: Mapping[date, Sequence[str]] | None = None,
             today: date | None = None) -> None:
        """Draw this month; `operating` None when no calendar is chosen; `fires` the
        times ("02:30") of each day's fires."""
        self.year, self.month, self.title = year, month, title
        self.operating = None if operating is None else frozenset(operating)
        self.holidays = dict(holidays or {})
        self.fires = {d: list(t) for d, t in (fires or {}).items()}
        if today is not None:
            self.today = today
        self.refresh(layout=True)

    def render(self) -> RenderableType:
        head = Text(f"{calendar.month_name[self.month]} {self.year}", style="bold")
        if self.title:
            head.append(f" · {self.title}", style="cyan")
        width = max(CELL, min(WIDEST, (self.size.width - 1) // 7))
        return Group(head, month_table(self.year, self.month, operating=self.operating,
                                       holidays=self.holidays, fires=self.fires,
                                       today=self.today, width=width), LEGEND)

    def action_step(self, months: int) -> None:
        self.post_message(self.Step(months))
