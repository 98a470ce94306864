"""Going from one screen to another where several screens go: a run's detail and the
start dialog. Screens import the screens they open; the ones opened from everywhere
are reached through here, so that no two screens import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jaz.tui.screens.run_detail import RunDetailScreen
from jaz.tui.screens.start import StartScreen

if TYPE_CHECKING:
    from jaz.tui.screens.base import JazScreen


def open_run(screen: JazScreen, run_id: int) -> None:
    """Push the run's detail screen."""
    screen.app.push_screen(RunDetailScreen(run_id))


def start_jobnet(screen: JazScreen, name: str) -> None:
    """Start `name` through the start dialog (params, `at`, held)."""

    def started(run: dict[str, Any] | None) -> None:
        if run is not None:
            screen.notify(f"started {name}: run {run.get('run_id')}", markup=False)

    screen.app.push_screen(StartScreen(jobnet=name), started)
