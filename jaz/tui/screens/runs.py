"""The Runs screen, the home of `jaz tui`: every run the server knows (up to MAX_RUNS,
newest first), sortable, filterable and kept live by the app's event stream.

`load` fetches the newest PAGE runs through the client in a thread worker and paints
them, then fetches the older pages in the same worker: the first paint does not wait
for the rest. The stream's messages (RunChanged, JobChanged) are applied as they come.
No change may fall between the pages and the stream: the pages are fetched each time
the stream (re)connects, so they are at least as new as the subscription, and events
that arrive while a page is in flight are kept and applied on top of it.
"""

from __future__ import annotations

import gc
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header
from textual.worker import Worker, WorkerState, get_current_worker

from jaz.tui import format
from jaz.tui.messages import JobChanged, RunChanged, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.screens.nav import open_run
from jaz.tui.screens.start import StartScreen
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.filter import FilterError, FilterInput, parse_filter
from jaz.tui.widgets.runs_table import RunsTable

PAGE = 1000                 # runs per request (the API's largest page)
MAX_RUNS = 10_000           # runs loaded at most (older ones: `jaz runs` / the API)

HELP = """Every run the server knows (the newest 10,000), newest first, kept live.

Sort: click a column header (again to reverse), or `s` to pick the next column and `S`
to reverse. Sorting is by value: ids as numbers, times as times.

Filter with `/` (enter applies, esc clears), terms combine:
  nightly              jobnet name contains "nightly"
  state:failed,running states (also s:)
  since:2h  since:3d   scheduled (else created) in the last 2 hours / 3 days
  since:2026-11-20     on or after that day; until:2026-11-20 up to its end
  trigger:schedule     how it was started: manual, schedule, catch-up, rerun, task,
                       jobnet

enter opens a run; n starts a jobnet (params, a time, held); x stops a run; h holds a
scheduled run and u releases a held one."""


class RunsScreen(JazScreen):
    """Runs: scheduled, running and finished, live."""

    HELP = HELP
    PALETTE = "Runs"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("h", "hold", "Hold"),
        Binding("u", "release", "Release"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._loading = False           # a page is in flight
        self._held: dict[int, dict[str, Any]] = {}   # run events that arrived meanwhile
        self._loaded_once = False
        self._generation = 0            # of loads: a page of an older load is dropped

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield RunsTable(id="runs")
        yield FilterInput(id="filter")
        yield Footer()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def on_mount(self) -> None:
        super().on_mount()
        self.title = "jaz · runs"
        self._count()
        if self.jaz.stream_connected:
            self.reload()   # else the stream's StreamState brings the first load

    # ------------------------------------------------------------ loading

    def action_refresh(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._loading = True
        self._generation += 1
        self.load(self._generation)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, generation: int) -> None:
        """The newest page, painted at once, then older pages up to MAX_RUNS."""
        worker = get_current_worker()
        offset = 0
        while offset < MAX_RUNS and not worker.is_cancelled:
            page = self.client.runs(limit=min(PAGE, MAX_RUNS - offset), offset=offset)
            last = len(page) < PAGE or offset + len(page) >= MAX_RUNS
            self.app.call_from_thread(self._page, generation, page, offset == 0, last)
            if last:
                return
            offset += len(page)

    def _page(self, generation: int, runs: list[dict[str, Any]], first: bool,
              last: bool) -> None:
        if generation != self._generation:
            return
        if first:
            self.table.load(runs)
        else:
            self.table.extend(runs)
        self._loaded_once = True
        self._apply_held(done=last)
        self._count()
        if last:
            settle()

    def _apply_held(self, *, done: bool = True) -> None:
        table = self.table
        for run in self._held.values():
            table.upsert(run)
        self._held.clear()
        if done:
            self._loading = False

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "load" and event.state == WorkerState.ERROR:
            self._apply_held()   # no page is coming: do not hold events for ever

    # ------------------------------------------------------------ the stream

    @on(RunChanged)
    def _changed(self, message: RunChanged) -> None:
        if self._loading:
            self._held[int(message.run["run_id"])] = message.run
        else:
            self.table.upsert(message.run)
            self._count()

    @on(JobChanged)
    def _job(self, message: JobChanged) -> None:
        self.table.progress(message.job)

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None or not self._loaded_once:
            self.reload()   # (re)connected: events may have been missed

    # ------------------------------------------------------------ sort and filter

    def action_cycle_sort(self) -> None:
        self.table.cycle_sort()

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()

    def action_filter(self) -> None:
        self.query_one(FilterInput).open(self.table.filter.text)

    def action_clear_filter(self) -> None:
        if self.table.filter:
            self._set_filter("")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self.table.filter)
        return True

    @on(FilterInput.Applied)
    def _filter_applied(self, message: FilterInput.Applied) -> None:
        if self._set_filter(message.text):
            self._close_filter()

    @on(FilterInput.Cleared)
    def _filter_cleared(self) -> None:
        self._set_filter("")
        self._close_filter()

    def _close_filter(self) -> None:
        self.query_one(FilterInput).close()
        self.table.focus()

    def _set_filter(self, text: str) -> bool:
        """Filter by `text`; a bad one is said and the filter in force is kept."""
        try:
            query = parse_filter(text, format.now())
        except FilterError as e:
            self.notify(str(e), title="bad filter", severity="error", markup=False)
            return False
        self.table.set_filter(query)
        self._count()
        self.refresh_bindings()
        return True

    def _count(self) -> None:
        table = self.table
        total = len(table.runs)
        if table.filter:
            self.sub_title = f"{table.filter.text} · {table.shown} of {total} runs"
        else:
            self.sub_title = f"{total} runs"

    # ------------------------------------------------------------ actions

    @on(RunsTable.RowSelected)
    def _open(self, message: RunsTable.RowSelected) -> None:
        open_run(self, int(message.key))

    def _selected(self) -> dict[str, Any] | None:
        run = self.table.cursor_run()
        if run is None:
            self.notify("no run selected", severity="warning")
        return run

    def action_stop(self) -> None:
        run = self._selected()
        if run is not None:
            rid = int(run["run_id"])
            self.act(f"stop run {rid}", lambda c: c.act("stop", rid),
                     confirm=f"Stop run {rid} ({run.get('jobnet')})?")

    def action_hold(self) -> None:
        run = self._selected()
        if run is not None:
            rid = int(run["run_id"])
            self.act(f"hold run {rid}", lambda c: c.act("hold", rid), done=self.table.upsert)

    def action_release(self) -> None:
        run = self._selected()
        if run is not None:
            rid = int(run["run_id"])
            self.act(f"release run {rid}", lambda c: c.act("release", rid),
                     done=self.table.upsert)

    def action_start(self) -> None:
        run = self.table.cursor_run()
        self.app.push_screen(StartScreen(run.get("jobnet") if run else None), self._started)

    def _started(self, run: dict[str, Any] | None) -> None:
        if not run:
            return
        rid = int(run["run_id"])
        self.notify(f"started run {rid}" + (" (held)" if run.get("status") == "held" else ""))
        self.table.upsert(run)
        self._count()
        self.table.select(rid)


def settle() -> None:
    """The runs just loaded live as long as the screen: they go out of the garbage
    collector's sight (gc.freeze), else each of its full passes traverses them all, a
    35-50 ms stutter every few dozen key presses with 10,000 runs. What an earlier load
    froze is let go first and collected with any other garbage (refcounts free the
    runs themselves: they hold no cycles)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
