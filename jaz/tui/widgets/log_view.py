"""A job's stdout and stderr as one scrollable text, in the order it arrived; stderr
lines carry a red bar so they read apart without colour too.

The screen feeds it (`append(stream, text)`: pieces of a stream, possibly ending
mid-line, continue that stream's open line) and clears it for another job or attempt.
`search(text)` marks every match and moves to the first; `next_match(+1/-1)` walks
them. `following` keeps the end in view as text arrives.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

GUTTER = {"stdout": "  ", "stderr": "▌ "}
MATCH = Style(bgcolor="yellow", color="black")
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Text as it can be drawn in cells: tabs expanded, escapes and controls dropped."""
    return CONTROL.sub("", text.expandtabs(8))


CURRENT = Style(bgcolor="bright_magenta", color="black", bold=True)


class LogView(ScrollView, can_focus=True):
    """Lines of (stream, text); stderr marked."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g,home", "scroll_home", "Top", show=False),
        Binding("G,end", "scroll_end", "Bottom", show=False),
    ]

    DEFAULT_CSS = """
    LogView {
        height: 1fr;
        border: round $panel;
        border-title-color: $text-muted;
    }
    LogView:focus {
        border: round $accent;
    }
    LogView > .logview--stderr {
        color: $error;
    }
    LogView > .logview--note {
        color: $text-muted;
        text-style: italic;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"logview--stderr", "logview--note"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines: list[tuple[str, str]] = []     # (stream, text)
        self._open: dict[str, int] = {}            # stream -> index of its unfinished line
        self._width = 0
        self.following = False
        self.pattern = ""
        self.matches: list[tuple[int, int]] = []   # (line, column)
        self._on_line: dict[int, list[int]] = {}   # line -> its matches' indexes
        self.current = -1
        self.note = ""                              # shown when there are no lines

    # ------------------------------------------------------------ content

    def clear(self, note: str = "") -> None:
        self.lines.clear()
        self._open.clear()
        self._width = 0
        self.note = note
        self.matches, self.current, self._on_line = [], -1, {}
        self._resize()

    def append(self, stream: str, text: str) -> None:
        if not text:
            return
        pieces = clean(text).split("\n")
        if stream in self._open:
            i = self._open.pop(stream)
            self.lines[i] = (stream, self.lines[i][1] + pieces[0])
            self._measure(self.lines[i][1])
            pieces = pieces[1:]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            if last and piece == "":
                break   # the text ended with a newline
            self.lines.append((stream, piece))
            self._measure(piece)
            if last:
                self._open[stream] = len(self.lines) - 1
        if self.pattern:
            self._find(keep=True)
        self._resize()
        if self.following:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.lines)

    def _measure(self, text: str) -> None:
        self._width = max(self._width, cell_len(text) + len(GUTTER["stdout"]))

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, max(len(self.lines), 1))
        self.refresh()

    # ------------------------------------------------------------ search

    def search(self, query: str) -> int:
        """Mark the matches of `query` (case-insensitive) and go to the first; the
        number of matches."""
        self.pattern = query
        self._find(keep=False)
        if self.matches:
            self.current = 0
            self._show_current()
        self.refresh()
        return len(self.matches)

    def next_match(self, step: int = 1) -> None:
        if not self.matches:
            return
        self.current = (self.current + step) % len(self.matches)
        self._show_current()
        self.refresh()

    def _find(self, *, keep: bool) -> None:
        q = self.pattern.lower()
        self.matches = []
        self._on_line = {}
        if q:
            for i, (_, text) in enumerate(self.lines):
                low = text.lower()
                at = low.find(q)
                while at >= 0:
                    self._on_line.setdefault(i, []).append(len(self.matches))
                    self.matches.append((i, at))
                    at = low.find(q, at + len(q))
        if not keep or self.current >= len(self.matches):
            self.current = 0 if self.matches else -1

    def _show_current(self) -> None:
        line, _ = self.matches[self.current]
        self.following = False    # looking back: stop jumping to the end
        self.scroll_to(y=max(0, line - self.scrollable_content_region.height // 2),
                       animate=False)

    # ------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        i = y + scroll_y
        if not self.lines:
            if y == 0 and self.note:
                note = base + self.get_component_rich_style("logview--note", partial=True)
                return Strip([Segment(self.note, note)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        if i >= len(self.lines):
            return Strip.blank(width, base)
        stream, text = self.lines[i]
        style = base
        if stream == "stderr":
            style = base + self.get_component_rich_style("logview--stderr", partial=True)
        segments = [Segment(GUTTER.get(stream, "  "), style)]
        at = 0
        if self.pattern:
            n = len(self.pattern)
            for k in self._on_line.get(i, ()):
                column = self.matches[k][1]
                segments.append(Segment(text[at:column], style))
                segments.append(Segment(text[column:column + n],
                                        style + (CURRENT if k == self.current else MATCH)))
                at = column + n
        segments.append(Segment(text[at:], style))
        strip = Strip(segments)
        return strip.crop_extend(scroll_x, scroll_x + width, base)
