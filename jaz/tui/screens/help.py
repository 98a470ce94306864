"""`?`: the keys of the screen below, with what they do, and the screen's own help text
(its `HELP` attribute). `esc`, `q` or `?` closes it."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GLOBAL_HELP = ("enter drills down, esc goes back; / filters the table; "
               ": or ctrl+p opens the command palette; 1-4 switch screens; q quits.")


def keys_of(screen: Screen[Any]) -> list[tuple[str, str]]:
    """(key as shown, description) of every binding active on `screen`, its focused
    widget's and the app's, in the order Textual resolves them; hidden ones too."""
    seen: dict[str, str] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.description:
            seen.setdefault(screen.app.get_key_display(binding) or key, binding.description)
    return list(seen.items())


class HelpScreen(ModalScreen[None]):
    """Keys and help of the screen it was opened on."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 80%;
        max-width: 100;
        height: 80%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, below: Screen[Any]) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        table = Table(show_header=True, header_style="bold", box=None, expand=True)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("does")
        for key, description in keys_of(self.below):
            table.add_row(key, description)
        title = getattr(self.below, "title", None) or type(self.below).__name__
        text = str(getattr(self.below, "HELP", "") or "").strip()
        with VerticalScroll():
            yield Static(Text(f"{title} — help", style="bold"))
            if text:
                yield Static(Text(text))
            yield Static(table)
            yield Static(Text(GLOBAL_HELP, style="dim"))
