"""jaz.tui.widgets.rows: a DataTable kept in step with data fetched again and again.
Its columns fit new cells at once, even when the table is drawn before it would have
measured them itself (it then kept the narrow drawing until a resize), and text is shown
as written, never read as Rich markup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable
from tui_support import until

from jaz.tui.widgets.rows import add_columns, sync_rows

COLUMNS = [("name", "Name"), ("note", "Note")]
LONG = "a note far wider than its header"


class Table(App[None]):
    CSS = "DataTable { height: 1fr; }"

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable()
        add_columns(table, COLUMNS)
        yield table


def with_table(body: Callable[[Any, DataTable[Any]], Awaitable[None]]) -> None:
    """`body(pilot, table)` in a Table app on an 80x10 screen."""
    async def scenario() -> None:
        app = Table()
        async with app.run_test(size=(80, 10)) as pilot:
            await body(pilot, app.query_one(DataTable))

    asyncio.run(scenario())


def test_new_rows_are_drawn_at_full_width_even_when_drawn_at_once() -> None:
    async def body(pilot: Any, table: DataTable[Any]) -> None:
        await pilot.pause()
        sync_rows(table, COLUMNS, [("a", ["alpha", LONG])])
        assert table.columns["note"].content_width == len(LONG)
        table.render_line(1)            # drawn before the table's queue runs dry
        await until(pilot, lambda: LONG in table.render_line(1).text,
                    "the whole note on screen")

    with_table(body)


def test_cells_changed_in_place_widen_and_narrow_their_column() -> None:
    async def body(pilot: Any, table: DataTable[Any]) -> None:
        sync_rows(table, COLUMNS, [("a", ["alpha", "short"])])
        assert table.columns["note"].content_width == len("short")
        sync_rows(table, COLUMNS, [("a", ["alpha", LONG])])    # same keys: in place
        assert table.columns["note"].content_width == len(LONG)
        sync_rows(table, COLUMNS, [("a", ["alpha", "ok"])])
        assert table.columns["note"].content_width == len("Note")
        await pilot.pause()
        assert str(table.get_cell("a", "note")) == "ok"

    with_table(body)


def test_text_is_shown_as_written_not_read_as_markup() -> None:
    async def body(pilot: Any, table: DataTable[Any]) -> None:
        sync_rows(table, COLUMNS, [("a", ["copy [/tmp] files", "[red]alarm[/red]"])])
        await until(pilot, lambda: "[red]alarm[/red]" in table.render_line(1).text,
                    "the note as written")
        assert "copy [/tmp] files" in table.render_line(1).text

    with_table(body)
