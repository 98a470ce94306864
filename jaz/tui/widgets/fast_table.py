"""FastTable: a table that draws only the rows on screen, for tens of thousands of rows.

Textual's DataTable renders every cell through Rich and drops its render caches on any
change; with 10,000 rows a page-down or a live update costs hundreds of milliseconds.
This table is a ScrollView whose `render_line` draws one screen line from a cache of
cells padded to their columns, one list per row key, rebuilt only for the row that
changed (and lazily: when the row is next on screen); each line is one Strip made from
them, without intermediate Strips (each costs Textual several caches). Cells are plain
`(text, style)` pairs, already in their final text: nothing is measured or parsed
while drawing.

The rows are kept in the order of a sort value the owner gives with each row (any
totally ordered value, unique per row: add a tie-breaker). The order is a list of keys
sorted ascending; a descending table reads it backwards. A new row is placed with
`bisect`, a changed row is moved only when its value changed, so live updates never
sort. A filter (`filter_rows`) keeps a second sorted list of the rows it lets through.

The header line stays at the top and the first `fixed` columns stay at the left while
the rest scrolls sideways. Columns are as wide as their widest cell (never narrower,
so a table does not twitch as rows come and go), capped by `max_widths`; longer text
ends in "…". The sorted column's header has room for its arrow. The cursor is a row
key: it stays on its row when rows are added, moved or removed around it, and rows
added above the screen move the scroll offset with them so the view does not jump.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = tuple[str, Style | None]
"""A cell: its text (one line) and its style (None: the row's)."""

ASCENDING, DESCENDING = " ▲", " ▼"
ARROW = 2   # cells the sorted column's header needs for its arrow


class SortedKeys:
    """Row keys in ascending order of their (unique) sort values."""

    __slots__ = ("keys", "values")

    def __init__(self, pairs: Iterable[tuple[Any, str]] = ()) -> None:
        ordered = sorted(pairs)
        self.values: list[Any] = [v for v, _ in ordered]
        self.keys: list[str] = [k for _, k in ordered]

    def __len__(self) -> int:
        return len(self.keys)

    def insert(self, key: str, value: Any) -> int:
        at = bisect_left(self.values, value)
        self.values.insert(at, value)
        self.keys.insert(at, key)
        return at

    def index(self, key: str, value: Any) -> int:
        at = bisect_left(self.values, value)
        if at < len(self.keys) and self.keys[at] == key:
            return at
        return self.keys.index(key)   # values not unique after all: still correct

    def remove(self, key: str, value: Any) -> int:
        at = self.index(key, value)
        del self.values[at]
        del self.keys[at]
        return at


class FastTable(ScrollView, can_focus=True):
    """Rows of cells under a header; see the module's text. `columns` are
    (key, label) pairs; `fixed` columns do not scroll sideways."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open"),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "top", "Top", show=False),
        Binding("end", "bottom", "Bottom", show=False),
        Binding("g", "top", "Top", show=False),
        Binding("G", "bottom", "Bottom", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "fast-table--header", "fast-table--fixed", "fast-table--even-row",
        "fast-table--odd-row", "fast-table--cursor",
    }

    DEFAULT_CSS = """
    FastTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        &:focus {
            background-tint: $foreground 5%;
            & > .fast-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .fast-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .fast-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .fast-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .fast-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .fast-table--fixed {
            background: $secondary-muted;
            color: $foreground;
        }
        & > .fast-table--odd-row {
        }
        & > .fast-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .fast-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    @dataclass
    class RowSelected(Message):
        """Enter (or a click on the cursor's row) on the row `key`."""

        table: FastTable
        key: str

        @property
        def control(self) -> FastTable:
            return self.table

    @dataclass
    class HeaderSelected(Message):
        """A click on the header of `column`."""

        table: FastTable
        column: str

        @property
        def control(self) -> FastTable:
            return self.table

    def __init__(self, columns: Sequence[tuple[str, str]], *, fixed: int = 1,
                 max_widths: Mapping[str, int] | None = None, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self.column_keys = [key for key, _ in columns]
        self.labels = dict(columns)
        self.fixed = fixed
        self._max = [dict(max_widths or {}).get(k, 0) for k in self.column_keys]
        self._content = [cell_len(label) for _, label in columns]   # widest cells
        self._widths = list(self._content)   # as drawn
        self._cells: dict[str, list[Cell]] = {}
        self._value: dict[str, Any] = {}
        self._all = SortedKeys()
        self._filtered: SortedKeys | None = None        # None: every row is shown
        self._shown: set[str] | None = None              # the keys of _filtered
        self._passes: Callable[[str], bool] | None = None
        self._strips: dict[str, list[Cell]] = {}    # key -> its cells, padded
        self._header: list[Cell] | None = None
        self.sort_column = self.column_keys[0]
        self.sort_reverse = False
        self._cursor: str | None = None
        self._set_widths()

    # ------------------------------------------------------------ reading

    @property
    def _view(self) -> SortedKeys:
        return self._all if self._filtered is None else self._filtered

    @property
    def row_count(self) -> int:
        """Rows shown (those the filter lets through)."""
        return len(self._view)

    @property
    def rows(self) -> set[str] | Mapping[str, Any]:
        """The keys of the rows shown (for `key in table.rows`)."""
        return self._cells if self._shown is None else self._shown

    @property
    def header_height(self) -> int:
        return 1

    def row_key_at(self, row: int) -> str:
        """The key of the `row`-th row shown, from the top."""
        keys = self._view.keys
        return keys[len(keys) - 1 - row] if self.sort_reverse else keys[row]

    def ordered_keys(self) -> list[str]:
        """The keys of the rows shown, top to bottom."""
        keys = self._view.keys
        return keys[::-1] if self.sort_reverse else list(keys)

    def get_row_index(self, key: str) -> int:
        """The row `key` is shown on; KeyError if it is not shown."""
        if key not in self.rows:
            raise KeyError(key)
        return self._display(self._view.index(key, self._value[key]))

    def cells_of(self, key: str) -> list[Cell]:
        return self._cells[key]

    def cell_text(self, key: str, column: str) -> str:
        """The text of one cell (as given, before any cropping)."""
        return self._cells[key][self.column_keys.index(column)][0]

    def header_label(self, column: str) -> str:
        """A column's header as shown, with its sort arrow."""
        label = self.labels[column]
        if column == self.sort_column:
            label += DESCENDING if self.sort_reverse else ASCENDING
        return label

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor (None: no rows)."""
        if self._cursor is not None and self._cursor in self.rows:
            return self._cursor
        return self.row_key_at(0) if self.row_count else None

    @property
    def cursor_row(self) -> int:
        key = self.cursor_key
        return 0 if key is None else self.get_row_index(key)

    def _display(self, at: int) -> int:
        """A row of the view's ascending list as the row shown."""
        return len(self._view) - 1 - at if self.sort_reverse else at

    # ------------------------------------------------------------ changing rows

    def set_row(self, key: str, cells: list[Cell], value: Any) -> None:
        """Add the row `key` or change it: its line is redrawn, and it moves only if
        its sort `value` changed."""
        self._cursor = self.cursor_key    # pinned: rows added above do not move it
        old = self._value.get(key)
        self._cells[key] = cells
        self._strips.pop(key, None)
        grew = self._fit(cells)
        if old is None:
            self._value[key] = value
            at = self._all.insert(key, value)
            if self._passes is None:
                self._inserted(self._display(at))
            elif self._passes(key):
                self._show(key)
        elif old != value:
            follow = key == self.cursor_key
            self._delete(key)
            self._value[key] = value
            self._all.insert(key, value)
            if self._passes is None or self._passes(key):
                if self._passes is None:
                    self._inserted(self._display(self._all.index(key, value)))
                else:
                    self._show(key)
                if follow:
                    self._cursor = key
                    self.scroll_to_cursor()
        elif self._passes is None:
            self._refresh_row(key)
        else:
            passes, shown = self._passes(key), key in self.rows
            if passes and not shown:
                self._show(key)
            elif shown and not passes:
                self._hide(key)
            elif shown:
                self._refresh_row(key)
        if grew:
            self._relayout()

    def update_cell(self, key: str, column: str, cell: Cell) -> None:
        """Change one cell of a row, leaving its place alone; redrawn if on screen."""
        cells = self._cells.get(key)
        if cells is None:
            return
        cells[self.column_keys.index(column)] = cell
        self._strips.pop(key, None)
        if self._fit(cells):
            self._relayout()
        elif key in self.rows:
            self._refresh_row(key)

    def drop_row(self, key: str) -> None:
        if key in self._cells:
            self._delete(key)
            del self._cells[key]
            self._strips.pop(key, None)

    def set_rows(self, rows: Iterable[tuple[str, list[Cell], Any]]) -> None:
        """Add or change many rows at once: one sort for all (a page of a load)."""
        keep = self.cursor_key
        for key, cells, value in rows:
            self._cells[key] = cells
            self._value[key] = value
            self._strips.pop(key, None)
            if self._fit(cells):
                self._strips.clear()
                self._header = None
        self._all = SortedKeys((v, k) for k, v in self._value.items())
        self._refilter(keep)

    def clear_rows(self) -> None:
        self._cells.clear()
        self._value.clear()
        self._strips.clear()
        self._all = SortedKeys()
        self._refilter(None)

    def filter_rows(self, passes: Callable[[str], bool] | None) -> None:
        """Show only the rows `passes` (a row key) lets through; None: all."""
        keep = self.cursor_key
        self._passes = passes
        self._refilter(keep)

    def sort(self, column: str, reverse: bool, values: Mapping[str, Any]) -> None:
        """Order the rows by `values` (each row's, for `column`), descending if
        `reverse`; the cursor stays on its row."""
        keep = self.cursor_key
        self.sort_column, self.sort_reverse = column, reverse
        self._value = dict(values)
        self._all = SortedKeys((v, k) for k, v in self._value.items())
        self._header = None
        if self._set_widths():
            self._strips.clear()
        self._refilter(keep)

    def _refilter(self, keep: str | None) -> None:
        if self._passes is None:
            self._filtered = self._shown = None
        else:
            passes = self._passes
            pairs = [(v, k) for v, k in zip(self._all.values, self._all.keys, strict=True)
                     if passes(k)]
            self._filtered = SortedKeys()
            self._filtered.values = [v for v, _ in pairs]
            self._filtered.keys = [k for _, k in pairs]
            self._shown = set(self._filtered.keys)
        self._resize()
        if keep is not None and keep in self.rows:
            self._cursor = keep
            self.scroll_to_cursor(center=True)
        else:
            self._cursor = None
            if self.is_mounted:
                self.scroll_to(y=0, animate=False)
        self.refresh()

    def _show(self, key: str) -> None:
        assert self._filtered is not None and self._shown is not None
        self._shown.add(key)
        self._inserted(self._display(self._filtered.insert(key, self._value[key])))

    def _hide(self, key: str) -> None:
        assert self._filtered is not None and self._shown is not None
        row = self._display(self._filtered.index(key, self._value[key]))
        cursor = self.cursor_key
        self._filtered.remove(key, self._value[key])
        self._shown.discard(key)
        self._removed(row, key == cursor)

    def _delete(self, key: str) -> None:
        """Take `key` out of the order (and the view); its cells stay."""
        value = self._value[key]
        if self._filtered is None:
            cursor = self.cursor_key
            row = self._display(self._all.index(key, value))
            self._all.remove(key, value)
            self._removed(row, key == cursor)
        else:
            self._all.remove(key, value)
            if key in self.rows:
                self._hide(key)
        del self._value[key]

    def _inserted(self, row: int) -> None:
        """A row was added at `row`: rows below move down; above the screen, the
        screen moves down with them."""
        self._resize()
        if self.is_mounted and row < int(self.scroll_y):
            self.scroll_to(y=self.scroll_y + 1, animate=False)
        self.refresh()

    def _removed(self, row: int, was_cursor: bool) -> None:
        if was_cursor and self.row_count:
            self._cursor = self.row_key_at(min(row, self.row_count - 1))
        self._resize()
        if self.is_mounted and row < int(self.scroll_y):
            self.scroll_to(y=self.scroll_y - 1, animate=False)
        self.refresh()

    # ------------------------------------------------------------ widths

    def _fit(self, cells: list[Cell]) -> bool:
        """Widen the columns `cells` do not fit in; True if any grew."""
        grew = False
        content, widths, caps = self._content, self._widths, self._max
        for i, (text, _style) in enumerate(cells):
            width = len(text)   # most cells: one cell per character (checked below)
            if width > content[i] or not text.isascii():
                width = cell_len(text)
                if caps[i]:
                    width = min(width, caps[i])
                if width > content[i]:
                    content[i] = width
                    if width > widths[i]:
                        widths[i] = width
                        grew = True
        return grew

    def _set_widths(self) -> bool:
        """The columns' widths from their content and headers; True if any changed."""
        widths = [max(width, cell_len(self.labels[key])
                      + (ARROW if key == self.sort_column else 0))
                  for key, width in zip(self.column_keys, self._content, strict=True)]
        changed, self._widths = widths != self._widths, widths
        return changed

    @property
    def total_width(self) -> int:
        return sum(self._widths) + 2 * len(self._widths)

    @property
    def fixed_width(self) -> int:
        return sum(self._widths[:self.fixed]) + 2 * self.fixed

    def _relayout(self) -> None:
        self._strips.clear()
        self._header = None
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        size = Size(self.total_width, self.row_count + 1)
        if size != self.virtual_size:
            self.virtual_size = size

    # ------------------------------------------------------------ cursor and keys

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        """Put the cursor on the `row`-th row shown (clamped)."""
        if not self.row_count:
            return
        row = max(0, min(row, self.row_count - 1))
        old = self.cursor_key
        self._cursor = self.row_key_at(row)
        if old != self._cursor:
            if old is not None and old in self.rows:
                self._refresh_row(old)
            self._refresh_row(self._cursor)
        if scroll:
            self.scroll_to_cursor()

    def select_key(self, key: str) -> bool:
        """Put the cursor on the row `key`; False if it is not shown."""
        if key not in self.rows:
            return False
        self.move_cursor(row=self.get_row_index(key))
        return True

    @property
    def page_height(self) -> int:
        """Rows on screen under the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def scroll_to_cursor(self, *, center: bool = False) -> None:
        """Scroll so that the cursor's row is on screen (in the middle if `center`
        and it was not)."""
        if not self.is_mounted or self.cursor_key is None:
            return
        row, top, page = self.cursor_row, int(self.scroll_y), self.page_height
        if top <= row < top + page:
            return
        if center:
            y = row - page // 2
        else:
            y = row if row < top else row - page + 1
        self.scroll_to(y=max(0, y), animate=False)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_down(self) -> None:
        page = self.page_height
        row = min(self.cursor_row + page, self.row_count - 1)
        self.scroll_to(y=self.scroll_y + page, animate=False)
        self.move_cursor(row=row)

    def action_page_up(self) -> None:
        page = self.page_height
        row = max(self.cursor_row - page, 0)
        self.scroll_to(y=self.scroll_y - page, animate=False)
        self.move_cursor(row=row)

    def action_top(self) -> None:
        self.move_cursor(row=0)

    def action_bottom(self) -> None:
        self.move_cursor(row=self.row_count - 1)

    def action_select_cursor(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            column = self._column_at(event.x)
            if column is not None:
                self.post_message(self.HeaderSelected(self, column))
            return
        row = int(self.scroll_y) + event.y - 1
        if not 0 <= row < self.row_count:
            return
        key = self.row_key_at(row)
        if key == self.cursor_key:
            self.post_message(self.RowSelected(self, key))
        else:
            self.move_cursor(row=row)

    def _column_at(self, x: int) -> str | None:
        fixed = self.fixed_width
        if x >= fixed:
            x += int(self.scroll_x)
        at = 0
        for key, width in zip(self.column_keys, self._widths, strict=True):
            at += width + 2
            if x < at:
                return key
        return None

    def on_resize(self) -> None:
        self.scroll_to_cursor()

    # ------------------------------------------------------------ drawing

    def _refresh_row(self, key: str) -> None:
        """Redraw the line of row `key` if it is on screen."""
        if not self.is_mounted:
            return
        line = self.get_row_index(key) - int(self.scroll_y)
        if 0 <= line < self.page_height:
            self.refresh(Region(0, line + 1, self.size.width, 1))

    def visible_keys(self) -> list[str]:
        """The keys of the rows on screen now."""
        top = int(self.scroll_y)
        return [self.row_key_at(row)
                for row in range(top, min(top + self.page_height, self.row_count))]

    def _strip(self, key: str) -> list[Cell]:
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._build(self._cells[key])
        return strip

    def _build(self, cells: list[Cell]) -> list[Cell]:
        """`cells` padded (or cut) to their columns' widths, a space each side."""
        padded = []
        for (text, style), width in zip(cells, self._widths, strict=True):
            if len(text) == width and text.isascii():
                shown = text
            elif cell_len(text) > width:
                shown = set_cell_size(text, width - 1) + "…"
            else:
                shown = set_cell_size(text, width)
            padded.append((f" {shown} ", style))
        return padded

    def _header_strip(self) -> list[Cell]:
        if self._header is None:
            self._header = self._build([(self.header_label(k), None)
                                        for k in self.column_keys])
        return self._header

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.get_component_rich_style
        if y == 0:
            header = style("fast-table--header")
            return self._line(self._header_strip(), header, header, None, width)
        row = int(self.scroll_y) + y - 1
        if row >= self.row_count:
            return Strip.blank(width, self.rich_style)
        key = self.row_key_at(row)
        zebra = style("fast-table--even-row" if row % 2 == 0 else "fast-table--odd-row")
        if key == self.cursor_key:
            return self._line(self._strip(key), zebra, zebra, style("fast-table--cursor"),
                              width)
        return self._line(self._strip(key), zebra, style("fast-table--fixed"), None, width)

    def _line(self, cells: list[Cell], style: Style, fixed_style: Style,
              over: Style | None, width: int) -> Strip:
        """One screen line of padded `cells`: the fixed columns in `fixed_style`, the
        rest scrolled sideways in `style` (both under the cells' own styles), all
        under `over` (the cursor's) if given. One Strip, no intermediate ones."""
        segments: list[Segment] = []
        add = segments.append
        room = width
        skip = 0
        for i, ((text, own), cells_wide) in enumerate(zip(cells, self._widths, strict=True)):
            if i == self.fixed:
                skip = int(self.scroll_x)
            under = fixed_style if i < self.fixed else style
            wide = cells_wide + 2
            if skip >= wide:
                skip -= wide
                continue
            if skip or wide - skip > room:
                end = min(wide, skip + room)
                text = text[skip:end] if text.isascii() else _cut(text, skip, end)
                wide, skip = end - skip, 0
            add(Segment(text, under + own if own else under))
            room -= wide
            if room <= 0:
                break
        if room > 0:
            add(Segment(" " * room, style))
        if over is not None:
            segments = [Segment(text, seg_style + over if seg_style else over)
                        for text, seg_style, _ in segments]
        return Strip(segments, width)


def _cut(text: str, start: int, end: int) -> str:
    """The cells `start` to `end` of `text` (wide characters cut in two: spaces)."""
    right = Segment(text).split_cells(start)[1].text if start else text
    return set_cell_size(right, end - start)
