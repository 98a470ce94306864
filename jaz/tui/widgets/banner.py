"""The connection banner: a red line under the header while the event stream is down
(`JazApp.stream_error`), hidden while connected. Every JazScreen composes one."""

from __future__ import annotations

from textual.widgets import Static


class Banner(Static):
    """"connection lost: WHY; reconnecting" while the stream is down."""

    DEFAULT_CSS = """
    Banner {
        display: none;
        height: 1;
        background: $error;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    Banner.-down {
        display: block;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "stream_error", self._show)

    def _show(self, error: str | None) -> None:
        self.set_class(error is not None, "-down")
        if error is not None:
            self.update(f"connection to the server lost: {error} · reconnecting…")
