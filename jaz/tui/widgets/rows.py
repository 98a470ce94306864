"""Rows of a Textual DataTable kept in step with data that is fetched again and again
(the Jobnets and Hosts lists, a jobnet's history, a job's executions): the cursor stays
on its row and unchanged cells are not touched."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


def cursor_key(table: DataTable[Any]) -> RowKey | None:
    """The key of the row under the cursor; None in an empty table."""
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key


def add_columns(table: DataTable[Any], columns: Sequence[tuple[str, str]]) -> None:
    """Give `table` the `columns`, (key, label) pairs, in that order."""
    for key, label in columns:
        table.add_column(label, key=key)


def sync_rows(table: DataTable[Any], columns: Sequence[tuple[str, str]],
              rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
    """Show `rows` (key, cells in the order of `columns`, the (key, label) pairs the
    table was given by add_columns) in that order: cells that changed are
    updated in place when the same keys are shown; otherwise the table is rebuilt. The
    cursor stays on the row it was on either way."""
    wanted = list(rows)
    if [k.value for k in table.rows] == [key for key, _ in wanted]:
        for key, cells in wanted:
            for (column, _), value in zip(columns, cells, strict=True):
                if table.get_cell(key, column) != value:
                    table.update_cell(key, column, value)
        return
    keep = cursor_key(table)
    table.clear()
    for key, cells in wanted:
        table.add_row(*cells, key=key)
    if keep is not None and keep in table.rows:
        table.move_cursor(row=table.get_row_index(keep), animate=False)
