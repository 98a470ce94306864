"""The table of runs: one row per run, keyed by run id, newest first.

Rows are updated in place when a run changes, and the cursor stays on the run it was
on when rows are added, so a live table does not jump under the operator's eyes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist, RowKey

from jaz.tui import format

COLUMNS = [("id", "ID"), ("jobnet", "Jobnet"), ("state", "State"), ("trigger", "Trigger"),
           ("scheduled", "Scheduled"), ("start", "Start"), ("duration", "Duration"),
           ("note", "Note")]


def cells(run: dict[str, Any]) -> list[Any]:
    """The row of one run, in COLUMNS order."""
    return [int(run["run_id"]), str(run.get("jobnet", "")), format.state(str(run["status"])),
            str(run.get("trigger") or "-"), format.moment(run.get("scheduled_at")),
            format.moment(run.get("started_at")), format.duration(run), format.note(run)]


class RunsTable(DataTable[Any]):
    """Runs, newest first; `upsert` applies one changed run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._live_runs: dict[str, dict[str, Any]] = {}   # row key -> run, to tick

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.set_interval(1.0, self.tick)

    def tick(self) -> None:
        """Advance the duration of running runs (nothing else changes between events)."""
        for key, run in self._live_runs.items():
            self.update_cell(key, "duration", format.duration(run))

    def clear(self, columns: bool = False) -> Self:
        self._live_runs.clear()
        return super().clear(columns)

    def load(self, runs: list[dict[str, Any]]) -> None:
        """Replace every row with `runs`, keeping the cursor on the run it was on."""
        keep = self._cursor_key()
        self.clear()
        for run in runs:
            self.add_row(*cells(run), key=self._track(run))
        self._sort_newest_first(keep)

    def upsert(self, run: dict[str, Any]) -> None:
        """Update the run's row in place, or add it in its place by id."""
        key = self._track(run)
        row = cells(run)
        try:
            self.get_row_index(key)
        except RowDoesNotExist:
            keep = self._cursor_key()
            self.add_row(*row, key=key)
            self._sort_newest_first(keep)
            return
        for (column, _label), value in zip(COLUMNS, row, strict=True):
            self.update_cell(key, column, value)

    def _track(self, run: dict[str, Any]) -> str:
        """The run's row key; running runs are remembered for `tick`."""
        key = str(run["run_id"])
        if run.get("status") == "running":
            self._live_runs[key] = run
        else:
            self._live_runs.pop(key, None)
        return key

    def _cursor_key(self) -> RowKey | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key

    def _sort_newest_first(self, keep: RowKey | None) -> None:
        self.sort("id", reverse=True)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), animate=False)
