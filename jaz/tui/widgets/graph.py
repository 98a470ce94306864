"""JobGraph: a jobnet's jobs in layers by `needs` (jaz.tui.graph), each with its live
state glyph and colour, one selected; scrolls both ways, keeps the selection in view.

Arrow keys move the selection: left/right to the nearest job of the layer before or
after, up/down within the layer (and so across components stacked in that layer).
`vim_keys` adds h/j/k/l for the same; screens whose h/k/l do something else (the run
detail: hold, skip, logs) turn them off. A click selects the job under the mouse.
Every change of selection posts `JobGraph.Selected`.

A move of the selection repaints two lines (the old selection's and the new one's), a
job's new state one. Each drawn line is kept (`_strips`, by row) until a job on it
changes, so scrolling only crops kept lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from jaz.styles import STATE_STYLE
from jaz.tui.graph import Layout, label, layout

NO_STATE = "·"   # the glyph of a job with no state (a definition, not a run)


@lru_cache(maxsize=64)
def _style(state: str, selected: bool) -> Style:
    style = Style.parse(STATE_STYLE.get(state, ("", ""))[0] or "none")
    return style + Style(reverse=True, bold=True) if selected else style


class JobGraph(ScrollView, can_focus=True):
    """The jobs of `jobs` ({name: {"needs": [...], ...}}) as a graph, with `states`
    ({name: state}) shown by glyph and colour."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move('left')", "Previous layer", show=False),
        Binding("right", "move('right')", "Next layer", show=False),
        Binding("up", "move('up')", "Job above", show=False),
        Binding("down", "move('down')", "Job below", show=False),
    ]

    DEFAULT_CSS = """
    JobGraph {
        height: 1fr;
        width: 1fr;
    }
    JobGraph > .jobgraph--edge {
        color: $text-muted;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"jobgraph--edge"}

    @dataclass
    class Selected(Message):
        """The selection moved to `job`."""

        graph: JobGraph
        job: str

        @property
        def control(self) -> JobGraph:
            return self.graph

    def __init__(self, jobs: Mapping[str, Mapping[str, Any]],
                 states: Mapping[str, str] | None = None, *, vim_keys: bool = True,
                 name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._states: dict[str, str] = dict(states or {})
        self._selected: str | None = None
        self._layout = layout({})
        self._strips: dict[int, tuple[Style, Strip]] = {}   # row -> (base style, line)
        self.set_jobs(jobs)
        if vim_keys:
            for key, where, text in (("h", "left", "Previous layer"),
                                     ("l", "right", "Next layer"),
                                     ("k", "up", "Job above"), ("j", "down", "Job below")):
                self._bindings.bind(key, f"move('{where}')", text, show=False)

    # ------------------------------------------------------------ public API

    @property
    def selected(self) -> str | None:
        """The selected job (None when there are no jobs)."""
        return self._selected

    @property
    def graph_layout(self) -> Layout:
        return self._layout

    def set_jobs(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:
        """Lay out other jobs (a reloaded jobnet); the selection stays on its job if
        it is still there, else goes to the first job."""
        self._layout = layout(jobs)
        self._strips.clear()
        self.virtual_size = Size(self._layout.width, self._layout.height)
        keep = self._selected if self._selected in self._layout.nodes else None
        if keep is None:
            first = next((c[0] for c in self._layout.columns if c), None)
            self._selected = None
            if first is not None:
                self.select(first)
        self.refresh()

    def set_states(self, states: Mapping[str, str]) -> None:
        """Every job's state at once (jobs left out keep theirs)."""
        self._states.update(states)
        self._strips.clear()
        self.refresh()

    def set_state(self, job: str, state: str) -> None:
        if self._states.get(job) != state:
            self._states[job] = state
            self._refresh_job(job)

    def state_of(self, job: str) -> str | None:
        return self._states.get(job)

    def select(self, job: str) -> None:
        """Select `job` (a name in the graph), scroll it into view, post Selected."""
        if job not in self._layout.nodes or job == self._selected:
            return
        before, self._selected = self._selected, job
        if before is not None:
            self._refresh_job(before)
        self._refresh_job(job)
        if self.is_mounted:
            if self.size:
                self.scroll_to_selected(immediate=True)   # in the same paint
            else:
                self.call_after_refresh(self.scroll_to_selected)
        self.post_message(self.Selected(self, job))

    def scroll_to_selected(self, *, immediate: bool = False) -> None:
        """Bring the selection into view, in the middle: the next few moves then need
        no scroll (each scroll repaints the whole view)."""
        if self._selected is None:
            return
        node = self._layout.nodes[self._selected]
        region = Region(node.x, node.row, node.width, 1)
        view = Region(int(self.scroll_x), int(self.scroll_y),
                      *self.scrollable_content_region.size)
        if view.contains_region(region):
            return
        self.scroll_to_region(region, animate=False, center=True, force=True,
                              immediate=immediate)

    def _refresh_job(self, job: str) -> None:
        """Repaint only the line `job` is drawn on (the whole view before the first
        layout, when lines are not placed yet)."""
        node = self._layout.nodes.get(job)
        if node is None:
            return
        self._strips.pop(node.row, None)
        if self.size:
            self.refresh_line(node.row)
        else:
            self.refresh()

    def notify_style_update(self) -> None:
        self._strips.clear()   # the theme or the component styles changed
        super().notify_style_update()

    # ------------------------------------------------------------ keys and mouse

    def action_move(self, direction: str) -> None:
        if self._selected is None:
            return
        other = self._layout.neighbour(self._selected, direction)
        if other is not None:
            self.select(other)

    def on_click(self, event: events.Click) -> None:
        x, y = event.x + int(self.scroll_x), event.y + int(self.scroll_y)
        for name in self._layout.by_row.get(y, ()):
            node = self._layout.nodes[name]
            if node.x <= x < node.x + node.width:
                self.select(name)
                return

    def on_resize(self) -> None:
        self.scroll_to_selected()

    # ------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.scrollable_content_region.width
        lay = self._layout
        base = self.rich_style
        if row >= lay.height:
            return Strip.blank(width, base)
        kept = self._strips.get(row)
        if kept is None or kept[0] != base:
            kept = self._strips[row] = (base, self._draw_row(row, base))
        return kept[1].crop_extend(scroll_x, scroll_x + width, base)

    def _draw_row(self, row: int, base: Style) -> Strip:
        lay = self._layout
        edge = base + self.get_component_rich_style("jobgraph--edge", partial=True)
        line = lay.lines[row].ljust(lay.width)
        segments = []
        at = 0
        for name in lay.by_row.get(row, ()):
            node = lay.nodes[name]
            if node.x > at:
                segments.append(Segment(line[at:node.x], edge))
            state = self._states.get(name, "")
            glyph = STATE_STYLE[state][1] if state in STATE_STYLE else NO_STATE
            segments.append(Segment(label(name, glyph),
                                    base + _style(state, name == self._selected)))
            at = node.x + node.width
        if at < lay.width:
            segments.append(Segment(line[at:], edge))
        return Strip(segments, lay.width)
