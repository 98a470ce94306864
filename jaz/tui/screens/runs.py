"""The Runs screen, the home of `jaz tui`: every run the server knows, newest first,
kept live by the app's event stream.

`load` fetches a page of runs through the client in a thread worker and posts it; the
stream's messages (RunChanged) are applied as they come. No change may fall between
the page and the stream: the page is fetched each time the stream (re)connects, so it
is at least as new as the subscription, and events that arrive while a page is in
flight are kept and applied on top of it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState

from jaz.tui.messages import RunChanged, RunsLoaded, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.runs_table import RunsTable

PAGE = 1000                 # runs fetched on load (the API's largest page)


class RunsScreen(JazScreen):
    """Runs: scheduled, running and finished, live."""

    HELP = "Every run the server knows, newest first, kept live."
    PALETTE = "Runs"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._loading = False           # a page is in flight
        self._held: dict[int, dict[str, Any]] = {}   # run events that arrived meanwhile
        self._loaded_once = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield RunsTable(id="runs")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = "jaz · runs"
        if self.jaz.stream_connected:
            self.reload()   # else the stream's StreamState brings the first load

    def action_refresh(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._loading = True
        self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        self.post_message(RunsLoaded(self.client.runs(limit=PAGE)))

    # ------------------------------------------------------------ handlers

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "load" and event.state == WorkerState.ERROR:
            self._apply_held()   # no page is coming: do not hold events for ever

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        self.query_one(RunsTable).load(message.runs)
        self._loaded_once = True
        self._apply_held()

    def _apply_held(self) -> None:
        table = self.query_one(RunsTable)
        for run in self._held.values():
            table.upsert(run)
        self._held.clear()
        self._loading = False

    @on(RunChanged)
    def _changed(self, message: RunChanged) -> None:
        if self._loading:
            self._held[int(message.run["run_id"])] = message.run
        else:
            self.query_one(RunsTable).upsert(message.run)

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None or not self._loaded_once:
            self.reload()   # (re)connected: events may have been missed
