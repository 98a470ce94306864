"""The Runs screen, the home of `jaz tui`: every run the server knows, newest first,
kept live by the event stream.

Two workers feed it: `follow` reads the event stream (async, so quitting cancels it at
once) and `load` fetches a page of runs through the client (a thread: the client is
synchronous). Both only post messages; the handlers here change the table.

No change may fall between the page and the stream: the page is fetched each time the
stream (re)connects, so it is at least as new as the subscription, and events that
arrive while a page is in flight are kept and applied on top of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState

from jaz.tui.messages import RunChanged, RunsLoaded, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.widgets.runs_table import RunsTable

if TYPE_CHECKING:
    from jaz.client import Client

PAGE = 1000                 # runs fetched on load (the API's largest page)
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0   # seconds between stream retries, growing


class RunsScreen(JazScreen):
    """Runs: scheduled, running and finished, live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.sub_title = client.url
        self._loading = False           # a page is in flight
        self._held: dict[int, dict[str, Any]] = {}   # run events that arrived meanwhile
        self._lost = False              # the stream is down (shown once, not per retry)
        self._loaded_once = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield RunsTable(id="runs")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "jaz · runs"
        self.follow()     # loads the first page once the stream is open

    def action_refresh(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._loading = True
        self.load()

    # ------------------------------------------------------------ workers

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        self.post_message(RunsLoaded(self.client.runs(limit=PAGE)))

    @work(exclusive=True, group="stream", exit_on_error=False)
    async def follow(self) -> None:
        """Read the event stream for ever, reconnecting with a growing pause. After a
        reconnect the table is reloaded: events were missed meanwhile."""
        import asyncio

        from jaz.tui.stream import CONNECTED, events

        pause, lost = RECONNECT_FIRST, False
        while True:
            try:
                async for name, data in events(self.client):
                    if name == CONNECTED:
                        pause, lost = RECONNECT_FIRST, False
                        self.post_message(StreamState())
                    elif name == "run":
                        self.post_message(RunChanged(data))
                reason = "the server closed the stream"
            except Exception as e:  # any failure means: retry later
                reason = str(e) or type(e).__name__
            if not lost:
                lost = True
                self.post_message(StreamState(reason))
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)

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
        if message.error is None:
            if self._lost:
                self.notify("live updates are back")
            self._lost = False
            self.reload()
            return
        self._lost = True
        self.notify(f"live updates lost: {message.error}; retrying", severity="warning")
        if not self._loaded_once:
            self.reload()   # show what there is (or why not) even without the stream
