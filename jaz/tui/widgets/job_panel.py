"""The selected job of a run: where it runs, what it does, and how it went (state, exit
code, attempts, times, timeout, outputs). `show(name, definition, state)` redraws it;
`definition` is the job as GET /runs/{id}/jobnet has it, `state` as GET /runs/{id}
(`jobs[name]`, updated by the stream's job events).

Its size is set by the screen, never by its content: showing another job repaints the
panel alone, with no layout pass over the screen (the arrow keys in the graph change it
at key-repeat speed). The rows are rendered to lines once per change, at the panel's
width; what does not fit (long commands, many outputs) scrolls inside."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from jaz.tui import format


def job_rows(name: str, definition: Mapping[str, Any], state: Mapping[str, Any]
             ) -> list[tuple[str, Text | str]]:
    """The panel's rows; values are Text (user data is never markup)."""
    status = str(state.get("status") or "pending")
    exit_code = state.get("exit_code")
    retries = definition.get("retries")
    attempts = str(state.get("attempts") or 0) + (f" (retries {retries})" if retries else "")
    timeout = definition.get("timeout")
    timed_out = "yes" if state.get("timed_out") else "no"
    rows: list[tuple[str, Text | str]] = [
        ("job", Text(name, style="bold")),
        ("state", format.state(status)),
        ("host", str(state.get("host") or definition.get("host") or "local")),
        (str(definition.get("kind") or "run"), Text(str(definition.get("what") or "-"))),
        ("exit code", Text("-" if exit_code is None else str(exit_code),
                           style="" if exit_code in (None, 0) else "bold red")),
        ("attempts", attempts),
        ("started", format.moment(state.get("started_at"))),
        ("ended", format.moment(state.get("ended_at"))),
        ("duration", format.duration(dict(state))),
        ("timed out", Text(timed_out + (f" (timeout {timeout})" if timeout else ""),
                           style="bold red" if state.get("timed_out") else "")),
    ]
    if definition.get("hold"):
        rows.append(("note", "held by its definition (hold = true)"))
    if definition.get("enabled") is False:
        rows.append(("note", "disabled: bypassed"))
    if definition.get("description"):
        rows.append(("about", Text(str(definition["description"]))))
    outputs = state.get("outputs") or {}
    if outputs:
        rows.append(("outputs", Text("\n".join(f"{k} = {v}" for k, v in outputs.items()))))
    return rows


def job_lines(rows: list[tuple[str, Text | str]], width: int,
              console: Console) -> list[list[Segment]]:
    """The rows as lines `width` cells wide: the keys in a bold column, each value
    wrapped (long words folded) beside its key. A rich Table.grid draws the same, ~10
    times slower."""
    keys = max((cell_len(key) for key, _ in rows), default=0)
    room = max(width - keys - 1, 1)
    bold = Style(bold=True)
    lines: list[list[Segment]] = []
    for key, value in rows:
        text = value if isinstance(value, Text) else Text(value)
        label = [Segment(key.ljust(keys), bold), Segment(" ")]
        for n, part in enumerate(text.wrap(console, room, overflow="fold")):
            part.end = ""
            lines.append((label if n == 0 else [Segment(" " * (keys + 1))])
                         + list(part.render(console)))
    return lines


class JobPanel(ScrollView, can_focus=True):
    """One job's facts; empty until a job is shown."""

    DEFAULT_CSS = """
    JobPanel {
        padding: 0 0 0 1;
        overflow-x: hidden;
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
        border-title-color: $text-muted;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job: str | None = None
        self._definition: Mapping[str, Any] = {}
        self._state: Mapping[str, Any] = {}
        self._rows: list[tuple[str, Text | str]] = []
        self._lines: list[list[Segment]] = []
        self._built_width = 0
        self.facts: dict[str, str] = {}   # what it shows, as plain text (for tests)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def show(self, name: str, definition: Mapping[str, Any],
             state: Mapping[str, Any]) -> None:
        if name != self.job:
            self.scroll_to(0, 0, animate=False, immediate=True)
        self.job, self._definition, self._state = name, definition, state
        self._draw()

    def _draw(self) -> None:
        assert self.job is not None
        self._rows = job_rows(self.job, self._definition, self._state)
        self.facts = {key: str(value) for key, value in self._rows}
        self._build()

    def _build(self) -> None:
        """Render the rows to lines at the current width; the virtual size (so a layout
        pass) changes only when the number of lines does."""
        width = self.scrollable_content_region.width
        self._built_width = width
        if not self._rows or width <= 0 or not self.is_mounted:
            self._lines = []
        else:
            self._lines = job_lines(self._rows, width, self.app.console)
        size = Size(width, len(self._lines))
        if size != self.virtual_size:
            self.virtual_size = size
        self.refresh()

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._built_width:
            self._build()

    def _tick(self) -> None:
        """A running job's duration grows; nothing else changes between events."""
        if self.job is not None and self._state.get("status") == "running":
            self._draw()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self.rich_style
        i = y + scroll_y
        if i >= len(self._lines):
            return Strip.blank(width, base)
        return Strip(self._lines[i]).apply_style(base).crop_extend(scroll_x,
                                                                    scroll_x + width, base)
