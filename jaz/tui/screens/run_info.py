"""`i` on a run: its params, the jobnet version it started with (hash and TOML text,
highlighted) and its audit trail (who did what to it, when). `esc` closes it.

The run and the jobnet version come from the run detail screen (already loaded); the
audit trail is read here, in a thread worker."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from jaz.tui import format
from jaz.tui.screens.base import describe


def params_table(params: dict[str, Any], defaults: dict[str, Any]) -> Table | Text:
    if not params and not defaults:
        return Text("no params", style="dim")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("param", style="bold cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("default", style="dim", overflow="fold")
    for name in dict.fromkeys([*params, *defaults]):
        value = params.get(name, defaults.get(name))
        default = defaults.get(name)
        table.add_row(name, Text(str(value)), Text("" if default is None else str(default)))
    return table


def events_table(events: list[dict[str, Any]]) -> Table | Text:
    if not events:
        return Text("no events", style="dim")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("at", "kind", "job", "user", "detail"):
        table.add_column(column, no_wrap=column != "detail", overflow="fold")
    for e in events:
        table.add_row(format.moment(e.get("at")), Text(str(e.get("kind") or "")),
                      Text(str(e.get("job") or "-")), Text(str(e.get("user") or "-")),
                      Text(str(e.get("detail") or "")))
    return table


class RunInfoScreen(ModalScreen[None]):
    """A run's params, jobnet version and audit trail."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,i", "dismiss", "Close"),
    ]

    DEFAULT_CSS = """
    RunInfoScreen {
        align: center middle;
    }
    RunInfoScreen > VerticalScroll {
        width: 90%;
        max-width: 130;
        height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    RunInfoScreen .heading {
        text-style: bold;
        margin-top: 1;
    }
    """

    def __init__(self, run_id: int, run: dict[str, Any], jobnet: dict[str, Any]) -> None:
        super().__init__()
        self.run_id, self.run, self.jobnet = run_id, run, jobnet

    def compose(self) -> ComposeResult:
        name = self.run.get("jobnet") or self.jobnet.get("name") or "?"
        with VerticalScroll():
            yield Static(Text(f"run {self.run_id} · {name}", style="bold"))
            yield Static("params", classes="heading")
            yield Static(params_table(dict(self.run.get("params") or {}),
                                      dict(self.jobnet.get("params") or {})), id="params")
            yield Static("jobnet version", classes="heading")
            yield Static(Text(str(self.jobnet.get("version") or self.run.get("version")
                                  or "?")), id="version")
            yield Static(Syntax(str(self.jobnet.get("text") or ""), "toml",
                                theme="ansi_dark", line_numbers=True, word_wrap=True),
                         id="text")
            yield Static("audit trail", classes="heading")
            yield Static(Text("loading…", style="dim"), id="events")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self.load()

    @work(thread=True, exclusive=True, group="events", exit_on_error=False)
    def load(self) -> None:
        client = getattr(self.app, "client")  # noqa: B009 (JazApp has one)
        events = client.events(run=self.run_id)
        self.app.call_from_thread(self._loaded, events)

    def _loaded(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.query_one("#events", Static).update(events_table(events))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.query_one("#events", Static).update(
                Text(describe(event.worker.error), style="red"))
