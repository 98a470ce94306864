"""Rows of a Textual DataTable kept in step with data that is fetched again and again
(the Jobnets and Hosts lists, a jobnet's history, a job's executions): the cursor stays
on its row, unchanged cells are not touched, and the columns fit their cells at once.

Two things a bare DataTable does that these helpers undo:
- it reads a `str` cell as Rich markup, so a description reading "copy [/tmp]" would
  raise and "[red]" would vanish: `plain` makes every str cell a Text, shown as written;
- it measures new cells for its column widths later, when its queue runs dry, and keeps
  what it drew in between cached: a screen drawn before that moment showed columns as
  narrow as their headers until the next resize. `fit` measures them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
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


def plain(cells: Sequence[Any]) -> list[Any]:
    """The cells with every str made a Text: shown as written, never read as markup."""
    return [Text(cell) if isinstance(cell, str) else cell for cell in cells]


def width(cell: Any) -> int:
    """The terminal cells `cell` takes: its widest line."""
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return max((cell_len(line) for line in text.splitlines()), default=0)


def fit(table: DataTable[Any]) -> None:
    """Make each auto-width column of `table` as wide as its widest cell or label."""
    for column in table.ordered_columns:
        if column.auto_width:
            column.content_width = max([width(column.label),
                                        *map(width, table.get_column(column.key))])
    table.refresh()


def sync_rows(table: DataTable[Any], columns: Sequence[tuple[str, str]],
              rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
    """Show `rows` (key, cells in the order of `columns`, the (key, label) pairs the
    table was given by add_columns) in that order: cells that changed are
    updated in place when the same keys are shown; otherwise the table is rebuilt. The
    cursor stays on the row it was on either way."""
    wanted = [(key, plain(cells)) for key, cells in rows]
    if [k.value for k in table.rows] == [key for key, _ in wanted]:
        for key, cells in wanted:
            update_row(table, columns, key, cells)
    else:
        keep = cursor_key(table)
        table.clear()
        for key, cells in wanted:
            table.add_row(*cells, key=key)
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep), animate=False)
    fit(table)


def update_row(table: DataTable[Any], columns: Sequence[tuple[str, str]], key: str,
               cells: Sequence[Any]) -> None:
    """Put `cells` in the row `key`, touching only the cells that changed (`fit` the
    table after)."""
    for (column, _), value in zip(columns, plain(cells), strict=True):
        if table.get_cell(key, column) != value:
            table.update_cell(key, column, value, update_width=True)
