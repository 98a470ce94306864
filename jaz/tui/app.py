"""The `jaz tui` application: holds the API client and opens on the Runs screen
(SPEC §6). Screens talk to the server through workers; see screens/base.py for how
their failures are shown."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from jaz.tui.screens.runs import RunsScreen

if TYPE_CHECKING:
    from jaz.client import Client


class JazApp(App[None]):
    """The operator's dashboard for one jaz server."""

    CSS_PATH = "jaz.tcss"
    TITLE = "jaz"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.client))
