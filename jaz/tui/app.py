"""The `jaz tui` application (SPEC §6).

The app holds the API client, reads the server's event stream once for every screen
(`follow`), and switches between the top-level screens with modes: `1` Runs (home),
`2` Jobnets, `3` Hosts, `4` Calendars. Screens drill down with `enter` (push) and come
back with `esc` (pop). `?` opens the help of the screen on top; `:` or ctrl+p the
command palette, where every screen's actions are also listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from jaz.tui.messages import JobChanged, RunChanged, StreamState

if TYPE_CHECKING:
    from textual.message import Message
    from textual.screen import Screen

    from jaz.client import Client

RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0   # seconds between stream retries, growing
THREADS_GRACE = 5.0   # seconds quitting waits for requests in flight


def _runs() -> Screen[Any]:
    from jaz.tui.screens.runs import RunsScreen

    return RunsScreen()


def _jobnets() -> Screen[Any]:
    from jaz.tui.screens.jobnets import JobnetsScreen

    return JobnetsScreen()


def _hosts() -> Screen[Any]:
    from jaz.tui.screens.hosts import HostsScreen

    return HostsScreen()


def _calendars() -> Screen[Any]:
    from jaz.tui.screens.calendars import CalendarsScreen

    return CalendarsScreen()


async def _finished(worker: Any) -> None:
    """Wait for a worker to end, however it ends."""
    import contextlib

    with contextlib.suppress(Exception):
        await worker.wait()


class JazApp(App[None]):
    """The operator's dashboard for one jaz server."""

    CSS_PATH = "jaz.tcss"
    TITLE = "jaz"
    MODES: ClassVar[dict[str, Any]] = {"runs": _runs, "jobnets": _jobnets, "hosts": _hosts,
                                       "calendars": _calendars}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('runs')", "Runs"),
        Binding("2", "switch_mode('jobnets')", "Jobnets"),
        Binding("3", "switch_mode('hosts')", "Hosts"),
        Binding("4", "switch_mode('calendars')", "Calendars"),
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_palette", "Commands", show=False),
        Binding("q", "quit", "Quit"),
    ]

    stream_error: reactive[str | None] = reactive(None)
    """Why the event stream is down (None while connected); the banner shows it."""
    stream_connected = False
    """The stream has been open since the last (re)connection."""

    def __init__(self, client: Client, *, mode: str = "runs") -> None:
        super().__init__()
        self.client = client
        self.sub_title = client.url
        self._first_mode = mode
        self.listeners: set[Screen[Any]] = set()   # mounted JazScreens (base.py)

    def on_mount(self) -> None:
        self.switch_mode(self._first_mode)
        self.follow()

    async def on_unmount(self) -> None:
        """Let thread workers still in a request finish (up to THREADS_GRACE s), so the
        client is not closed under them: a thread cannot be cancelled."""
        import asyncio

        threads = [w for w in self.workers
                   if w.is_running and getattr(w, "_thread_worker", False)]
        if threads:
            await asyncio.wait([asyncio.ensure_future(_finished(w)) for w in threads],
                               timeout=THREADS_GRACE)

    def action_help(self) -> None:
        from jaz.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    # ------------------------------------------------------------ the event stream

    def broadcast(self, make: Any) -> None:
        """Post a fresh message from `make()` to every mounted screen."""
        for screen in list(self.listeners):
            message: Message = make()
            screen.post_message(message)

    @work(exclusive=True, group="stream", exit_on_error=False)
    async def follow(self) -> None:
        """Read the event stream for ever, reconnecting with a growing pause."""
        import asyncio
        from contextlib import aclosing

        from jaz.tui.stream import CONNECTED, events

        pause = RECONNECT_FIRST
        while True:
            try:
                # aclosing: a cancelled worker must close the connection, not the GC
                async with aclosing(events(self.client)) as stream:
                    async for name, data in stream:
                        if name == CONNECTED:
                            pause = RECONNECT_FIRST
                            self.stream_error, self.stream_connected = None, True
                            self.broadcast(StreamState)
                        elif name == "run":
                            self.broadcast(lambda d=data: RunChanged(d))
                        elif name == "job":
                            self.broadcast(lambda d=data: JobChanged(d))
                reason = "the server closed the stream"
            except Exception as e:  # any failure means: retry later
                reason = str(e) or type(e).__name__
            self.stream_connected = False
            if self.stream_error is None:
                self.stream_error = reason
                self.broadcast(lambda r=reason: StreamState(r))
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)
