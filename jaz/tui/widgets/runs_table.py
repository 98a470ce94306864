"""The table of runs: one row per run, keyed by run id, newest first unless sorted
otherwise.

The table keeps every run it was given (`runs`) and shows those its filter lets
through. Rows are updated in place when a run changes, and the cursor stays on the run
it was on through loads, sorts and live updates, so a live table does not jump under
the operator's eyes.

With 10,000 rows, an update must not cost a sort: a changed run is rewritten in place,
and only when the value it is sorted by has changed is a sort scheduled, at most one
every RESORT seconds. A new run is placed at once (one sort of already sorted rows).
Sorts use the runs' values (ids as numbers, times as times), never the cells' text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Self

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist, RowKey

from jaz.engine.model import RunState
from jaz.tui import format
from jaz.tui.widgets.filter import RunFilter

COLUMNS = [("id", "ID"), ("jobnet", "Jobnet"), ("state", "State"), ("trigger", "Trigger"),
           ("scheduled", "Scheduled"), ("start", "Start"), ("duration", "Duration"),
           ("progress", "Jobs"), ("late", "Late"), ("note", "Note")]
KEYS = [key for key, _ in COLUMNS]
DESCENDING = {"id", "scheduled", "start", "duration", "progress", "late"}
"""Columns sorted biggest/newest first when first chosen; the others A to Z."""
STATE_ORDER = {str(s): i for i, s in enumerate(RunState)}
RESORT = 0.5     # seconds: live changes to sorted-by values regroup rows this often
NEVER = float("-inf")
BATCH, FRAME = 500, 0.02   # rows added per step when refilling, seconds between steps


def cells(run: dict[str, Any]) -> list[Any]:
    """The row of one run, in COLUMNS order; Text, not str, so that the table does not
    parse (and measure) each cell as markup: that is most of the cost of 10,000 rows."""
    return [int(run["run_id"]), Text(str(run.get("jobnet", ""))),
            format.state(str(run["status"])), Text(str(run.get("trigger") or "-")),
            Text(format.short_moment(run.get("scheduled_at"))),
            Text(format.short_moment(run.get("started_at"))), Text(format.duration(run)),
            Text(format.progress(run)), format.late(run), Text(format.note(run))]


def _stamp(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else NEVER


def _seconds(run: dict[str, Any], now: float) -> float:
    start = run.get("started_at")
    if not start:
        return NEVER
    end = run.get("ended_at")
    if end:
        return _stamp(end) - _stamp(start)
    return now - _stamp(start) if run.get("status") == "running" else NEVER


def sort_value(run: dict[str, Any], column: str, now: float) -> Any:
    """What a run is sorted by in `column` (`now`, a timestamp, for running durations);
    ties go by run id."""
    rid = int(run["run_id"])
    if column == "id":
        return rid
    if column == "jobnet":
        value: Any = str(run.get("jobnet", "")).lower()
    elif column == "state":
        value = STATE_ORDER.get(str(run.get("status")), len(STATE_ORDER))
    elif column == "trigger":
        value = str(run.get("trigger") or "")
    elif column == "scheduled":
        value = _stamp(run.get("scheduled_at"))
    elif column == "start":
        value = _stamp(run.get("started_at"))
    elif column == "duration":
        value = _seconds(run, now)
    elif column == "progress":
        p = run.get("progress") or {}
        done, total = int(p.get("done", 0)), int(p.get("total", 0))
        value = (done / total if total else -1.0, total)
    elif column == "late":
        value = bool(run.get("late"))
    else:
        value = format.note(run).lower()
    return (value, rid)


class RunsTable(DataTable[Any]):
    """Runs, sorted and filtered; `load`/`extend` take pages, `upsert` one changed run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open"),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, fixed_columns=1, **kwargs)
        self.runs: dict[str, dict[str, Any]] = {}      # row key -> run, shown or not
        self.filter = RunFilter()
        self.sort_column = "id"
        self.sort_reverse = True
        self._live_runs: dict[str, dict[str, Any]] = {}   # running runs, to tick
        self._resort: Timer | None = None
        self._pending: list[str] = []     # row keys set_filter has yet to add
        self._fills = 0

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self._label_sort()
        self.set_interval(1.0, self.tick)

    # ------------------------------------------------------------ what is shown

    @property
    def shown(self) -> int:
        """Runs shown, or about to be (see set_filter)."""
        return self.row_count + len(self._pending)

    def tick(self) -> None:
        """Advance the duration of running runs (nothing else changes between events)."""
        for key, run in self._live_runs.items():
            if key in self.rows:
                self.update_cell(key, "duration", Text(format.duration(run)))

    def clear(self, columns: bool = False) -> Self:
        """Empty the table and forget its runs."""
        self.runs.clear()
        self._live_runs.clear()
        self._pending = []
        self._fills += 1
        return super().clear(columns)

    def load(self, runs: list[dict[str, Any]]) -> None:
        """Replace every run with `runs`, keeping the cursor on the run it was on."""
        keep = self.cursor_key()
        self.clear()
        self.extend(runs, keep=keep)

    def extend(self, runs: list[dict[str, Any]], *, keep: RowKey | None = None) -> None:
        """Add (or refresh) `runs`, e.g. a further page, with one sort for them all."""
        keep = keep or self.cursor_key()
        for run in runs:
            key = self._track(run)
            if not self.filter.matches(run):
                continue
            if key in self.rows:
                self._rewrite(key, run)
            else:
                self.add_row(*cells(run), key=key)
        self._sort(keep)

    def upsert(self, run: dict[str, Any]) -> None:
        """Apply one run's new view: rewrite its row in place, add it in its place, or
        drop it when it no longer passes the filter."""
        key = str(run["run_id"])
        before = self.runs.get(key)
        self._track(run)
        shown = key in self.rows
        if not self.filter.matches(run):
            if shown:
                self.remove_row(key)
            return
        if not shown:
            keep = self.cursor_key()
            self.add_row(*cells(run), key=key)
            self._sort(keep)
            return
        self._rewrite(key, run)
        if before is not None and self.sort_column not in ("id", "jobnet") and \
                sort_value(before, self.sort_column, 0) != sort_value(run, self.sort_column, 0):
            self._resort_soon()

    def progress(self, job: dict[str, Any]) -> None:
        """A job event's run progress ("3/10") into its run's row."""
        key = str(job.get("run_id"))
        run = self.runs.get(key)
        if run is None or "progress" not in job:
            return
        run["progress"] = job["progress"]
        if key in self.rows:
            self.update_cell(key, "progress", Text(format.progress(run)))
            if self.sort_column == "progress":
                self._resort_soon()

    def set_filter(self, query: RunFilter) -> None:
        """Show only the runs `query` lets through (all for an empty one). The rows are
        added in their sorted order, BATCH at a time between frames: adding a row costs
        the table a measure of each cell, and 10,000 at once would freeze the screen."""
        keep = self.cursor_key()
        self.filter = query
        super().clear()
        now = format.now().timestamp()
        column = self.sort_column
        matching = sorted((r for r in self.runs.values() if query.matches(r)),
                          key=lambda r: sort_value(r, column, now), reverse=self.sort_reverse)
        self._pending = [str(r["run_id"]) for r in matching]
        self._fills += 1
        self._fill(self._fills, keep)

    def _fill(self, fill: int, keep: RowKey | None) -> None:
        if fill != self._fills:
            return   # a newer filter (or load) took over
        batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
        for key in batch:
            run = self.runs.get(key)
            if run is not None and key not in self.rows and self.filter.matches(run):
                self.add_row(*cells(run), key=key)
        if self._pending:
            if keep is not None and keep in self.rows:
                self.move_cursor(row=self.get_row_index(keep), animate=False)
            self.set_timer(FRAME, lambda: self._fill(fill, keep))
        else:
            self._sort(keep)   # live changes meanwhile may have put rows out of order

    # ------------------------------------------------------------ sorting

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by `column`; `reverse` None: its natural order (newest/biggest first for
        ids, times, durations, progress and lateness; A to Z for words)."""
        self.sort_column = column
        self.sort_reverse = column in DESCENDING if reverse is None else reverse
        self._label_sort()
        self._sort(self.cursor_key())

    def cycle_sort(self) -> None:
        self.sort_by(KEYS[(KEYS.index(self.sort_column) + 1) % len(KEYS)])

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = str(event.column_key.value)
        if column == self.sort_column:
            self.reverse_sort()
        else:
            self.sort_by(column)

    def _sort(self, keep: RowKey | None) -> None:
        if self._resort is not None:
            self._resort.stop()
            self._resort = None
        now = format.now().timestamp()
        column, runs = self.sort_column, self.runs
        if column == "id":   # the common case, and the cell is the value: no lookups
            self.sort("id", reverse=self.sort_reverse)
        else:
            self.sort("id", key=lambda rid: sort_value(runs[str(rid)], column, now),
                      reverse=self.sort_reverse)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def _resort_soon(self) -> None:
        if self._resort is None:
            self._resort = self.set_timer(RESORT, lambda: self._sort(self.cursor_key()))

    def _label_sort(self) -> None:
        arrow = " ▼" if self.sort_reverse else " ▲"
        for key, label in COLUMNS:
            column = self.columns.get(ColumnKey(key))
            if column is None:
                continue
            text = label + (arrow if key == self.sort_column else "")
            column.label = Text(text)
            column.content_width = max(column.content_width, cell_len(text))
        self.refresh()

    # ------------------------------------------------------------ rows

    def cursor_key(self) -> RowKey | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key

    def cursor_run(self) -> dict[str, Any] | None:
        """The run under the cursor, if any."""
        key = self.cursor_key()
        return None if key is None else self.runs.get(str(key.value))

    def select(self, run_id: int) -> bool:
        """Put the cursor on run `run_id`; False if it is not shown."""
        try:
            row = self.get_row_index(str(run_id))
        except RowDoesNotExist:
            return False
        self.move_cursor(row=row, animate=False)
        return True

    def _rewrite(self, key: str, run: dict[str, Any]) -> None:
        for (column, _label), value in zip(COLUMNS, cells(run), strict=True):
            width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
            grow = width > self.columns[ColumnKey(column)].content_width
            self.update_cell(key, column, value, update_width=grow)

    def _track(self, run: dict[str, Any]) -> str:
        """Remember the run (running ones also for `tick`); its row key."""
        key = str(run["run_id"])
        old = self.runs.get(key)
        if old is not None and "progress" in old and "progress" not in run:
            run = {**run, "progress": old["progress"]}
        self.runs[key] = run
        if run.get("status") == "running":
            self._live_runs[key] = run
        else:
            self._live_runs.pop(key, None)
        return key
