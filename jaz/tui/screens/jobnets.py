"""The Jobnets screen (SPEC §6). PLACEHOLDER: being built; see docs/tui.md."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from jaz.tui.screens.base import JazScreen
from jaz.tui.widgets.banner import Banner


class JobnetsScreen(JazScreen):
    """Jobnets."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield Static("Jobnets: not built yet")
        yield Footer()
