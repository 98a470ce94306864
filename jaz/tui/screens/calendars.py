"""The Calendars screen (SPEC §6): the server's calendars on the left (broken ones
marked), and on the right a month grid of the chosen calendar's operating days, its
holidays named below, with the fires of a chosen jobnet on their days.

`[` / `]` (or left / right on the grid) step a month, `y` / `Y` a year, `t` comes back
to this month. A calendar's year and a month's fires are fetched in workers; a year
once fetched is kept until `r`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from jaz.tui import format
from jaz.tui.messages import StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.month_grid import MonthGrid

FIRES = 200            # fires fetched from the first of the month on
ON_CALENDAR = re.compile(r" on (\S+)")   # in a schedule's description: "at 02:30 on biz"


@dataclass
class ListsLoaded(Message):
    calendars: list[dict[str, Any]]
    jobnets: list[dict[str, Any]]


@dataclass
class YearLoaded(Message):
    name: str
    year: int
    data: dict[str, Any]


@dataclass
class FiresLoaded(Message):
    jobnet: str
    year: int
    month: int
    fires: list[str]


def month_fires(fires: list[str], year: int, month: int) -> list[datetime]:
    """The fires in that month, each on its own schedule's wall clock."""
    out = [datetime.fromisoformat(f) for f in fires]
    return [f for f in out if (f.year, f.month) == (year, month)]


def add_months(year: int, month: int, step: int) -> tuple[int, int]:
    at = year * 12 + (month - 1) + step
    return at // 12, at % 12 + 1


class CalendarsScreen(JazScreen):
    """Calendars: a month of operating days with a jobnet's fires."""

    HELP = ("Pick a calendar on the left and, below it, a jobnet: the grid shows the "
            "month's operating days (bold; `·` closed, `H` holiday, `[dd]` today) and "
            "the jobnet's fires (`*`), listed under the grid with the holidays.")
    PALETTE = "Calendars"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "step(-1)", "Prev month"),
        Binding("right_square_bracket", "step(1)", "Next month"),
        Binding("y", "step(-12)", "Year back", show=False),
        Binding("Y", "step(12)", "Year on", show=False),
        Binding("t", "today", "Today"),
        Binding("r", "refresh", "Refresh"),
    ]

    DEFAULT_CSS = """
    CalendarsScreen #side {
        width: 30;
        height: 1fr;
        border-right: solid $primary;
    }
    CalendarsScreen #calendars {
        height: 1fr;
    }
    CalendarsScreen #side Label {
        padding: 0 1;
        text-style: bold;
    }
    CalendarsScreen #month {
        height: 1fr;
        padding: 0 1;
    }
    CalendarsScreen #info {
        padding: 1 1 0 1;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        today = format.today()
        self.year, self.month = today.year, today.month
        self.calendar: str | None = None
        self.jobnet: str | None = None
        self.calendars: dict[str, dict[str, Any]] = {}
        self.jobnets: dict[str, dict[str, Any]] = {}
        self.years: dict[tuple[str, int], dict[str, Any]] = {}
        self.fires: list[datetime] = []
        self.fires_capped = False      # FIRES fires did not reach the month's end

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        with Horizontal():
            with Vertical(id="side"):
                yield Label("Calendars")
                yield OptionList(id="calendars")
                yield Label("Fires of jobnet")
                yield Select[str]([], prompt="no jobnet", allow_blank=True, id="jobnet")
            with VerticalScroll(id="month"):
                yield MonthGrid(id="grid")
                yield Static("", id="info")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = "jaz · calendars"
        self.show()
        if self.jaz.stream_connected:
            self.load_lists()

    # ------------------------------------------------------------ workers

    @work(thread=True, exclusive=True, group="lists", exit_on_error=False)
    def load_lists(self) -> None:
        self.post_message(ListsLoaded(self.client.calendars(), self.client.jobnets()))

    @work(thread=True, group="year", exit_on_error=False)
    def load_year(self, name: str, year: int) -> None:
        self.post_message(YearLoaded(name, year, self.client.calendar(name, year)))

    @work(thread=True, exclusive=True, group="fires", exit_on_error=False)
    def load_fires(self, jobnet: str, year: int, month: int) -> None:
        after = datetime(year, month, 1) - timedelta(seconds=1)
        self.post_message(FiresLoaded(jobnet, year, month, self.client.next_fires(
            jobnet, FIRES, after=after.isoformat())))

    # ------------------------------------------------------------ handlers

    @on(ListsLoaded)
    def _lists(self, message: ListsLoaded) -> None:
        self.calendars = {str(c["name"]): c for c in message.calendars}
        self.jobnets = {str(n["name"]): n for n in message.jobnets}
        options = self.query_one("#calendars", OptionList)
        options.set_options([Option(self._label(c), id=name)
                             for name, c in sorted(self.calendars.items())])
        select: Select[str] = self.query_one("#jobnet", Select)
        chosen = self.jobnet
        select.set_options([(name, name) for name in sorted(self.jobnets)])
        if chosen in self.jobnets:
            select.value = chosen
        if self.calendar not in self.calendars:
            self.calendar = next((n for n, c in sorted(self.calendars.items())
                                  if c.get("valid")), None)
        if self.calendar is not None:
            options.highlighted = options.get_option_index(self.calendar)
        self.fetch()

    @staticmethod
    def _label(cal: dict[str, Any]) -> Text:
        if cal.get("valid"):
            return Text(str(cal["name"]))
        return Text.assemble(("✖ ", "bold red"), (str(cal["name"]), "red"),
                             (" invalid", "red"))

    @on(OptionList.OptionHighlighted, "#calendars")
    def _calendar(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id != self.calendar:
            self.calendar = event.option.id
            self.fetch()

    @on(Select.Changed, "#jobnet")
    def _jobnet(self, event: Select.Changed) -> None:
        value = None if event.value is Select.NULL else str(event.value)
        if value == self.jobnet:
            return
        self.jobnet = value
        self.fires = []
        own = self._calendar_of(value)
        if own is not None and own in self.calendars and own != self.calendar:
            options = self.query_one("#calendars", OptionList)
            options.highlighted = options.get_option_index(own)  # its own calendar
        self.fetch()

    def _calendar_of(self, jobnet: str | None) -> str | None:
        """The calendar the jobnet's schedule runs on, if it names one."""
        for rule in (self.jobnets.get(jobnet or "") or {}).get("schedules") or []:
            found = ON_CALENDAR.search(str(rule))
            if found:
                return found.group(1)
        return None

    @on(YearLoaded)
    def _year(self, message: YearLoaded) -> None:
        self.years[(message.name, message.year)] = message.data
        self.show()

    @on(FiresLoaded)
    def _fires(self, message: FiresLoaded) -> None:
        if (message.jobnet, message.year, message.month) != (self.jobnet, self.year,
                                                             self.month):
            return    # an answer for a month or jobnet no longer shown
        self.fires = month_fires(message.fires, message.year, message.month)
        self.fires_capped = len(message.fires) >= FIRES and len(self.fires) == FIRES
        self.show()

    @on(MonthGrid.Step)
    def _step(self, message: MonthGrid.Step) -> None:
        self.action_step(message.months)

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None:
            self.load_lists()

    # ------------------------------------------------------------ actions

    def action_step(self, months: int) -> None:
        self.show_month(*add_months(self.year, self.month, months))

    def action_today(self) -> None:
        today = format.today()
        self.show_month(today.year, today.month)

    def action_refresh(self) -> None:
        self.years.clear()
        self.load_lists()

    def show_month(self, year: int, month: int) -> None:
        self.year, self.month = year, month
        self.fires = []
        self.fetch()

    def fetch(self) -> None:
        """Fetch what the month shown needs and is not here yet, and draw what is."""
        cal = self.calendars.get(self.calendar or "")
        if cal is not None and cal.get("valid") and \
                (self.calendar, self.year) not in self.years:
            assert self.calendar is not None
            self.load_year(self.calendar, self.year)
        if self.jobnet is not None:
            self.load_fires(self.jobnet, self.year, self.month)
        self.show()

    # ------------------------------------------------------------ drawing

    def show(self) -> None:
        data = self.years.get((self.calendar or "", self.year))
        operating = holidays = None
        if data is not None:
            operating = {date.fromisoformat(d) for d in data.get("operating_days") or []}
            holidays = {date.fromisoformat(d): str(n)
                        for d, n in (data.get("holidays") or {}).items()}
        title = self.calendar or "no calendar"
        self.query_one(MonthGrid).show(
            self.year, self.month, title=title, operating=operating, holidays=holidays,
            fires=self._fire_times(), today=format.today())
        self.query_one("#info", Static).update(self._info(holidays or {}))

    def _fire_times(self) -> dict[date, list[str]]:
        out: dict[date, list[str]] = {}
        for f in self.fires:
            out.setdefault(f.date(), []).append(f.strftime("%H:%M"))
        return out

    def _info(self, holidays: dict[date, str]) -> Text:
        out = Text()
        cal = self.calendars.get(self.calendar or "")
        if cal is not None and not cal.get("valid"):
            out.append(f"✖ {self.calendar} is invalid:\n", style="bold red")
            for p in cal.get("problems") or []:
                out.append(f"  {format.problem(p)}\n", style="red")
        named = sorted((d, n) for d, n in holidays.items()
                       if (d.year, d.month) == (self.year, self.month))
        if named:
            out.append("holidays:\n", style="bold")
            for d, n in named:
                out.append(f"  {d.isoformat()} {n}\n", style="red")
        if self.jobnet is not None:
            out.append(f"fires of {self.jobnet} this month ({len(self.fires)}"
                       f"{', the first only' if self.fires_capped else ''}): ",
                       style="bold")
            out.append(", ".join(f.strftime("%m-%d %H:%M") for f in self.fires) or "none")
        return out
