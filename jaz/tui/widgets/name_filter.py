"""`/` on a list of names (Jobnets, Hosts): the filter line of the Runs screen, made to
filter as you type. A name filter cannot be wrong, so there is nothing to parse first;
it stays open while a filter is set, so the filter in force shows under the table."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable, Input

from jaz.tui.widgets.filter import FilterInput


def matches(name: str, text: str) -> bool:
    """The filter's rule: the text anywhere in the name, any case."""
    return text.casefold() in name.casefold()


class NameFilter(FilterInput):
    """Every change posts `Applied(text)`; `enter` keeps the filter and goes back to the
    table (closing the line if it is empty), `esc` empties it, closes it and goes back
    to the table. Emptying is applying "" here: it never posts `Cleared()`."""

    DEFAULT_CSS = """
    NameFilter {
        border: tall $accent;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(placeholder="filter by name (enter keeps, esc clears)", **kwargs)

    def _on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Applied(event.value.strip()))

    async def action_submit(self) -> None:
        text = self.value.strip()
        self.post_message(self.Applied(text))
        if not text:
            self.close()
        self.screen.focus_next(DataTable)

    def action_clear_filter(self) -> None:
        self.value = ""
        self.close()
        self.post_message(self.Applied(""))
        self.screen.focus_next(DataTable)
