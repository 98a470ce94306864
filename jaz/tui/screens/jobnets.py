"""The Jobnets screen (SPEC §6): every jobnet the server loaded, with its validity (the
first problem of a broken file), description, schedules, next fire and last result.

`enter` opens a jobnet (JobnetDetailScreen: its TOML, graph, history and next fires),
`n` starts the highlighted one, `/` filters by name. The list is fetched in a worker
when the event stream (re)connects; runs of the stream update the last result in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from jaz.tui import format
from jaz.tui.messages import RunChanged, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.screens.jobnet_detail import JobnetDetailScreen
from jaz.tui.screens.nav import start_jobnet
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.name_filter import NameFilter, matches
from jaz.tui.widgets.rows import add_columns, cursor_key, sync_rows

COLUMNS = [("name", "Jobnet"), ("valid", "Valid"), ("description", "Description"),
           ("schedules", "Schedule"), ("next", "Next fire"), ("last", "Last result"),
           ("problem", "Problem")]
REFRESH = 30.0        # seconds between fetches of the list (the stream has no fires)
DESCRIPTION = 32      # characters of the description in the table (all of it below)


def about(net: dict[str, Any] | None) -> Text:
    """The line under the table for the highlighted jobnet: its first problem (and
    whether an older version is in force), else its description."""
    if net is None:
        return Text("")
    problems = net.get("problems") or []
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        out = Text(f"✖ {format.problem(problems[0], short=True)}{more}", style="red")
        out.append(" · the last valid version stays in force" if net.get("in_force")
                   else " · nothing in force", style="yellow")
        return out
    return Text(f"{net['name']}: {net.get('description') or 'no description'}")


def cells(net: dict[str, Any]) -> list[Any]:
    """The row of one jobnet, in COLUMNS order."""
    problems = net.get("problems") or []
    valid = Text("✔", style="green") if net.get("valid") else \
        Text("✖ invalid", style="bold red")
    fires = net.get("next") or []
    description = " ".join(str(net.get("description") or "").split())
    if len(description) > DESCRIPTION:
        description = description[:DESCRIPTION - 1] + "…"
    return [str(net["name"]), valid, description,
            "; ".join(net.get("schedules") or []) or "-",
            format.short_moment(fires[0]) if fires else "-",
            format.last_result(net.get("last_run")),
            Text(format.problem(problems[0], short=True), style="red") if problems else ""]


@dataclass
class JobnetsLoaded(Message):
    jobnets: list[dict[str, Any]]


class JobnetsScreen(JazScreen):
    """Jobnets: definitions, schedules, next fires, last results, validation errors."""

    HELP = ("Every jobnet the server loaded. A broken file is marked ✖ invalid with its "
            "first problem (the last valid version, if any, stays in force). enter opens a "
            "jobnet: its TOML, graph, history and next fires.")
    PALETTE = "Jobnets"

    DEFAULT_CSS = """
    JobnetsScreen #about {
        height: auto;
        max-height: 3;
        padding: 0 1;
        border-top: solid $primary;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open"),
        Binding("n", "start", "Start"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobnets: dict[str, dict[str, Any]] = {}
        self.filter = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True, id="jobnets")
        yield table
        yield Static("", id="about", markup=False)
        yield NameFilter(id="filter")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = "jaz · jobnets"
        table = self.query_one("#jobnets", DataTable)
        table.styles.height = "1fr"
        add_columns(table, COLUMNS)
        self.set_interval(REFRESH, self.load)   # next fires move on as time passes
        if self.jaz.stream_connected:
            self.load()

    # ------------------------------------------------------------ data

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        self.post_message(JobnetsLoaded(self.client.jobnets()))

    @on(JobnetsLoaded)
    def _loaded(self, message: JobnetsLoaded) -> None:
        self.jobnets = {str(n["name"]): n for n in message.jobnets}
        self.show()

    def show(self) -> None:
        table = self.query_one("#jobnets", DataTable)
        sync_rows(table, COLUMNS,
                  ((name, cells(net)) for name, net in sorted(self.jobnets.items())
                   if matches(name, self.filter)))
        self.show_about()

    def show_about(self) -> None:
        name = self.selected()
        self.query_one("#about", Static).update(
            about(self.jobnets.get(name) if name is not None else None))

    @on(DataTable.RowHighlighted, "#jobnets")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_about()

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None:
            self.load()

    @on(RunChanged)
    def _run(self, message: RunChanged) -> None:
        run = message.run
        net = self.jobnets.get(str(run.get("jobnet")))
        if net is None:
            return
        last = net.get("last_run")
        if last is None or int(run["run_id"]) >= int(last["run_id"]):
            net["last_run"] = run
            self.show()

    # ------------------------------------------------------------ actions

    def selected(self) -> str | None:
        key = cursor_key(self.query_one("#jobnets", DataTable))
        return None if key is None else str(key.value)

    def action_open(self) -> None:
        name = self.selected()
        if name is not None:
            self.app.push_screen(JobnetDetailScreen(name))

    @on(DataTable.RowSelected, "#jobnets")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_start(self) -> None:
        name = self.selected()
        if name is not None:
            start_jobnet(self, name)

    def action_filter(self) -> None:
        self.query_one(NameFilter).open(self.filter)

    def action_clear_filter(self) -> None:
        if self.filter:
            self.query_one(NameFilter).action_clear_filter()

    @on(NameFilter.Applied)
    def _filtered(self, message: NameFilter.Applied) -> None:
        self.filter = message.text
        self.show()

    def action_refresh(self) -> None:
        self.load()
