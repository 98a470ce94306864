"""`n` on the Runs screen: start a jobnet. Choose the jobnet, fill its params (prefilled
with the jobnet's defaults, refilled when another jobnet is chosen), optionally a time
to start at and "start held", then Start. A bad time is said here and nothing is sent;
a refusal from the server is said here too, so nothing typed is lost. Dismisses with
the new run (the API's run view) or None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from jaz.tui.screens.base import describe

if TYPE_CHECKING:
    from jaz.client import Client

AT_HELP = "empty: now; HH:MM (next such time), YYYY-MM-DD HH:MM, ISO, or +10m"


def parse_at(text: str) -> str | None:
    """The `at` field as the ISO time to send (None: now); ValueError says what is wrong."""
    from jaz.engine.when import parse_at as parse_when
    from jaz.errors import UsageError

    if not text.strip():
        return None
    try:
        return parse_when(text).isoformat()
    except UsageError as e:
        raise ValueError(e.message.replace("bad --at", "bad time")) from None


class StartScreen(ModalScreen[dict[str, Any] | None]):
    """The start dialog."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Cancel"),
        Binding("ctrl+s", "start", "Start"),
    ]

    DEFAULT_CSS = """
    StartScreen {
        align: center middle;
    }
    StartScreen > Vertical {
        width: 90%;
        max-width: 80;
        height: auto;
        max-height: 95%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    StartScreen .title {
        text-style: bold;
    }
    StartScreen #params {
        height: auto;
        max-height: 30vh;
    }
    StartScreen .field {
        height: auto;
    }
    StartScreen .field Label {
        width: 16;
        padding: 1 1 0 0;
    }
    StartScreen .field Input, StartScreen .field Select {
        width: 1fr;
    }
    StartScreen #error {
        color: $error;
        height: auto;
    }
    StartScreen #buttons {
        height: auto;
        align-horizontal: right;
    }
    StartScreen Button {
        margin-left: 2;
    }
    """

    def __init__(self, jobnet: str | None = None) -> None:
        super().__init__()
        self.chosen = jobnet
        self._defaults: dict[str, str] = {}
        self._shown: str | None = None    # the jobnet whose params the fields are

    @property
    def client(self) -> Client:
        client: Client = getattr(self.app, "client")  # noqa: B009 (the JazApp's)
        return client

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Start a jobnet", classes="title")
            with Horizontal(classes="field"):
                yield Label("jobnet")
                yield Select[str]([], prompt="jobnet", id="jobnet")
            yield VerticalScroll(id="params")
            with Horizontal(classes="field"):
                yield Label("at")
                yield Input(placeholder=AT_HELP, id="at")
            yield Checkbox("start held", id="hold")
            yield Static("", id="error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.load_jobnets()

    # ------------------------------------------------------------ loading

    @work(thread=True, exclusive=True, group="jobnets", exit_on_error=False)
    def load_jobnets(self) -> None:
        try:
            nets = self.client.jobnets()
        except Exception as e:
            self.app.call_from_thread(self._error, describe(e))
            return
        self.app.call_from_thread(self._jobnets, [n["name"] for n in nets
                                                  if n.get("in_force", True)])

    def _jobnets(self, names: list[str]) -> None:
        select = self.query_one("#jobnet", Select)
        select.set_options([(n, n) for n in names])
        if self.chosen in names:
            select.value = self.chosen
        elif names:
            select.value = names[0]
        select.focus()

    @on(Select.Changed, "#jobnet")
    def _jobnet_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.chosen = event.value
            self.load_params(event.value)

    @work(thread=True, exclusive=True, group="params", exit_on_error=False)
    def load_params(self, name: str) -> None:
        try:
            params = self.client.jobnet(name).get("params") or {}
        except Exception as e:
            self.app.call_from_thread(self._error, describe(e))
            return
        self.app.call_from_thread(self._params, name, params)

    def _params(self, name: str, params: dict[str, str]) -> None:
        if name != self.chosen:
            return   # another jobnet was chosen meanwhile
        self._defaults = dict(params)
        self._shown = name
        box = self.query_one("#params", VerticalScroll)
        box.remove_children()
        box.mount_all([Horizontal(Label(key, markup=False), Input(str(default), name=key),
                                  classes="field param") for key, default in params.items()])
        self._error("")

    # ------------------------------------------------------------ starting

    def values(self) -> dict[str, str]:
        return {str(i.name): i.value for i in self.query(".param Input").results(Input)}

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        jobnet = self.query_one("#jobnet", Select).value   # what the operator sees
        if not isinstance(jobnet, str):
            self._error("choose a jobnet")
            return
        if jobnet != self._shown:   # its params are not the ones in the fields yet
            self._error(f"the params of {jobnet} are still loading; start again in a moment")
            return
        try:
            at = parse_at(self.query_one("#at", Input).value)
        except ValueError as e:
            self._error(str(e))
            self.query_one("#at", Input).focus()
            return
        hold = self.query_one("#hold", Checkbox).value
        self._error("")
        self.start(jobnet, self.values(), at, hold)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def start(self, jobnet: str, params: dict[str, str], at: str | None, hold: bool) -> None:
        try:
            run = self.client.start(jobnet, params=params, at=at, hold=hold)
        except Exception as e:
            self.app.call_from_thread(self._error, describe(e))
            return
        self.app.call_from_thread(self.dismiss, run)

    @on(Button.Pressed, "#cancel")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()

    def _error(self, text: str) -> None:
        self.query_one("#error", Static).update(text)
