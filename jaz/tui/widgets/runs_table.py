"""The table of runs: one row per run, keyed by run id (as text), newest first unless
sorted otherwise. A FastTable (jaz.tui.widgets.fast_table): only the rows on screen are
drawn, each from a cached line rebuilt only when its run changes.

The table keeps every run it was given (`runs`) and shows those its filter lets
through. A changed run is rewritten in place and moved (by bisection, never a sort)
only when the value it is sorted by changed; a new run is inserted in its place. The
cursor stays on the run it was on through loads, sorts, filters and live updates.
Sorts use the runs' values (ids as numbers, times as times), never the cells' text.

Every second the durations of running runs advance: only the rows on screen are
redrawn (the others when they come into view).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from rich.style import Style
from rich.text import Text

from jaz.engine.model import RunState
from jaz.tui import format
from jaz.tui.widgets.fast_table import Cell, FastTable
from jaz.tui.widgets.filter import RunFilter

COLUMNS = [("id", "ID"), ("jobnet", "Jobnet"), ("state", "State"), ("trigger", "Trigger"),
           ("scheduled", "Scheduled"), ("start", "Start"), ("duration", "Duration"),
           ("progress", "Jobs"), ("late", "Late"), ("note", "Note")]
KEYS = [key for key, _ in COLUMNS]
MAX_WIDTHS = {"jobnet": 40, "note": 60}
DESCENDING = {"id", "scheduled", "start", "duration", "progress", "late"}
"""Columns sorted biggest/newest first when first chosen; the others A to Z."""
STATE_ORDER = {str(s): i for i, s in enumerate(RunState)}
NEVER = float("-inf")
DURATION = KEYS.index("duration")
PROGRESS = KEYS.index("progress")


@lru_cache(maxsize=256)
def _style(style: str) -> Style | None:
    return Style.parse(style) if style else None


def _cell(text: Text) -> Cell:
    return text.plain, _style(str(text.style))


def cells(run: dict[str, Any]) -> list[Cell]:
    """The row of one run, in COLUMNS order."""
    return [(str(run["run_id"]), None), (str(run.get("jobnet", "")), None),
            _cell(format.state(str(run["status"]))), (str(run.get("trigger") or "-"), None),
            (format.short_moment(run.get("scheduled_at")), None),
            (format.short_moment(run.get("started_at")), None),
            (format.duration(run), None), (format.progress(run), None),
            _cell(format.late(run)), (format.note(run), None)]


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


class RunsTable(FastTable):
    """Runs, sorted and filtered; `load`/`extend` take pages, `upsert` one changed run."""

    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(COLUMNS, fixed=1, max_widths=MAX_WIDTHS, name=name, id=id,
                         classes=classes)
        self.runs: dict[str, dict[str, Any]] = {}      # row key -> run, shown or not
        self.filter = RunFilter()
        self.sort_column = "id"
        self.sort_reverse = True
        self._live_runs: dict[str, dict[str, Any]] = {}   # running runs, to tick

    def on_mount(self) -> None:
        self.set_interval(1.0, self.tick)

    # ------------------------------------------------------------ what is shown

    @property
    def shown(self) -> int:
        """Runs shown."""
        return self.row_count

    def _value_of(self, run: dict[str, Any], now: float | None = None) -> Any:
        column = self.sort_column
        if column == "id":
            return int(run["run_id"])
        if column == "duration" and now is None:
            now = format.now().timestamp()
        return sort_value(run, column, now or 0.0)

    def tick(self) -> None:
        """Advance the durations of running runs: the cells of all, the lines of those
        on screen (a duration sort moves them too)."""
        if not self._live_runs:
            return
        at = format.now()
        moving = self.sort_column == "duration"
        for key, run in self._live_runs.items():
            text = format.duration(run, at)
            row = self.cells_of(key) if key in self.runs else None
            if row is None:
                continue
            if moving:
                row = list(row)
                row[DURATION] = (text, None)
                self.set_row(key, row, self._value_of(run, at.timestamp()))
            elif row[DURATION][0] != text:
                self.update_cell(key, "duration", (text, None))

    def clear(self) -> None:
        """Empty the table and forget its runs."""
        self.runs.clear()
        self._live_runs.clear()
        self.clear_rows()

    def load(self, runs: list[dict[str, Any]]) -> None:
        """Replace every run with `runs`, keeping the cursor on the run it was on."""
        keep = self.cursor_key
        self.runs.clear()
        self._live_runs.clear()
        self.clear_rows()
        self.extend(runs)
        if keep is not None and keep in self.rows:
            self.select_key(keep)

    def extend(self, runs: list[dict[str, Any]]) -> None:
        """Add (or refresh) `runs`, e.g. a further page, with one sort for them all."""
        now = format.now().timestamp()
        self.set_rows([(self._track(run), cells(run), self._value_of(run, now))
                       for run in runs])

    def upsert(self, run: dict[str, Any]) -> None:
        """Apply one run's new view: rewrite its row in place (moving it if its sort
        value changed), add it in its place, or hide it when the filter says so."""
        key = self._track(run)
        run = self.runs[key]
        self.set_row(key, cells(run), self._value_of(run))

    def progress(self, job: dict[str, Any]) -> None:
        """A job event's run progress ("3/10") into its run's row."""
        key = str(job.get("run_id"))
        run = self.runs.get(key)
        if run is None or "progress" not in job:
            return
        run["progress"] = job["progress"]
        if self.sort_column == "progress":
            self.set_row(key, cells(run), self._value_of(run))
        else:
            self.update_cell(key, "progress", (format.progress(run), None))

    def set_filter(self, query: RunFilter) -> None:
        """Show only the runs `query` lets through (all for an empty one)."""
        self.filter = query
        runs = self.runs
        self.filter_rows((lambda key: query.matches(runs[key])) if query else None)

    # ------------------------------------------------------------ sorting

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        """Sort by `column`; `reverse` None: its natural order (newest/biggest first for
        ids, times, durations, progress and lateness; A to Z for words)."""
        reverse = column in DESCENDING if reverse is None else reverse
        self.sort_column = column
        now = format.now().timestamp()
        values = {key: self._value_of(run, now) for key, run in self.runs.items()}
        self.sort(column, reverse, values)

    def cycle_sort(self) -> None:
        self.sort_by(KEYS[(KEYS.index(self.sort_column) + 1) % len(KEYS)])

    def reverse_sort(self) -> None:
        self.sort_by(self.sort_column, not self.sort_reverse)

    def on_fast_table_header_selected(self, event: FastTable.HeaderSelected) -> None:
        event.stop()
        if event.column == self.sort_column:
            self.reverse_sort()
        else:
            self.sort_by(event.column)

    # ------------------------------------------------------------ rows

    def cursor_run(self) -> dict[str, Any] | None:
        """The run under the cursor, if any."""
        key = self.cursor_key
        return None if key is None else self.runs.get(key)

    def select(self, run_id: int) -> bool:
        """Put the cursor on run `run_id`; False if it is not shown."""
        return self.select_key(str(run_id))

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
