"""What every screen of `jaz tui` shares.

- `client`: the app's API client. Network calls run in thread workers
  (`@work(thread=True, exit_on_error=False)`) that only post messages or call
  `app.call_from_thread`; nothing blocks the screen.
- Failed workers become notifications (`describe`), so a refused token or a server
  gone away reads as a message, never a crash.
- Mounted screens receive the app's stream messages (RunChanged, JobChanged,
  StreamState; see messages.py) and show the connection banner.
- `act(...)`: an operator action through the API, after a confirmation when it is
  destructive, with its result or error as a notification.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

from textual import work
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from jaz.errors import JazError, Refused

if TYPE_CHECKING:
    from jaz.client import Client


class Dashboard(Protocol):
    """What screens use of the app (`jaz.tui.app.JazApp` is one): the app builds the
    screens, so they do not import it."""

    client: Client
    stream_connected: bool
    listeners: set[Screen[Any]]


def describe(error: BaseException | None) -> str:
    """An error as the operator should read it: jaz's message and hint, else its type."""
    if isinstance(error, Refused):
        return f"not allowed: {error.message}" + (f"\n{error.hint}" if error.hint else "")
    if isinstance(error, JazError):
        return error.message + (f"\nhint: {error.hint}" if error.hint else "")
    return f"{type(error).__name__}: {error}"


class KeysProvider(Provider):
    """Every key of the screen the palette was opened on (its bindings with a
    description, its focused widget's and the app's) as a command: each action a key
    does is also a command in the palette, with the same name as in the footer."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        screen = self.screen
        title = str(getattr(screen, "PALETTE", "") or type(screen).__name__)
        out = []
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.action in ("command_palette",):
                continue
            key = self.app.get_key_display(binding)
            run = partial(self.app.run_action, binding.action, active.node)
            out.append((f"{title}: {binding.description}", f"key {key}", run))
        return out

    async def discover(self) -> Hits:
        for text, help_text, run in self._commands():
            yield DiscoveryHit(text, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, run in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), run, help=help_text)


class JazScreen(Screen[None]):
    """Base of the TUI's full screens. Subclasses compose `Banner()` under their Header,
    set `HELP` (shown by `?`) and `PALETTE` (the screen's name in the command palette),
    and give every binding a description: it is its footer label and palette command."""

    COMMANDS = {KeysProvider}
    PALETTE = ""

    @property
    def jaz(self) -> Dashboard:
        return cast(Dashboard, self.app)

    @property
    def client(self) -> Client:
        return self.jaz.client

    def on_mount(self) -> None:
        self.jaz.listeners.add(self)

    def on_unmount(self) -> None:
        self.jaz.listeners.discard(self)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(describe(event.worker.error), title="error", severity="error",
                        markup=False)

    # ------------------------------------------------------------ operator actions

    def act(self, what: str, call: Callable[[Client], Any], *,
            confirm: str | None = None,
            done: Callable[[Any], None] | None = None) -> None:
        """Do `call(client)` in a worker and notify "`what`: done" or the error.
        With `confirm`, ask that question first (destructive actions). `done` gets the
        call's result on the app's thread."""
        if confirm is None:
            self._act(what, call, done)
            return
        from jaz.tui.widgets.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(what, call, done)

        self.app.push_screen(ConfirmScreen(confirm), answered)

    @work(thread=True, group="act", exit_on_error=False)
    def _act(self, what: str, call: Callable[[Client], Any],
             done: Callable[[Any], None] | None) -> None:
        try:
            result = call(self.client)
        except Exception as e:
            self.app.call_from_thread(self.notify, f"{what}: {describe(e)}", title="refused"
                                      if isinstance(e, Refused) else "failed",
                                      severity="error", markup=False)
            return
        self.app.call_from_thread(self.notify, f"{what}: done", markup=False)
        if done is not None:
            self.app.call_from_thread(done, result)
