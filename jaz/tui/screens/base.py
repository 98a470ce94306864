"""What every screen of `jaz tui` shares: the one handler that turns a failed worker
into a notification. Workers run with `exit_on_error=False` and only post messages, so
a refused token or a server gone away reads as a message, never a crash."""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker, WorkerState

from jaz.errors import JazError


def describe(error: BaseException | None) -> str:
    """An error as the operator should read it: jaz's message and hint, else its type."""
    if isinstance(error, JazError):
        return error.message + (f"\nhint: {error.hint}" if error.hint else "")
    return f"{type(error).__name__}: {error}"


class JazScreen(Screen[None]):
    """Base of the TUI's screens."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(describe(event.worker.error), title="error", severity="error",
                        markup=False)
