"""The selected job of a run: where it runs, what it does, and how it went (state, exit
code, attempts, times, timeout, outputs). `show(name, definition, state)` redraws it;
`definition` is the job as GET /runs/{id}/jobnet has it, `state` as GET /runs/{id}
(`jobs[name]`, updated by the stream's job events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from jaz.tui import format


def job_rows(name: str, definition: Mapping[str, Any], state: Mapping[str, Any]
             ) -> list[tuple[str, Text | str]]:
    """The panel's rows; values are Text (user data is never markup)."""
    status = str(state.get("status") or "pending")
    exit_code = state.get("exit_code")
    retries = definition.get("retries")
    attempts = str(state.get("attempts") or 0) + (f" (retries {retries})" if retries else "")
    timeout = definition.get("timeout")
    timed_out = "yes" if state.get("timed_out") else "no"
    rows: list[tuple[str, Text | str]] = [
        ("job", Text(name, style="bold")),
        ("state", format.state(status)),
        ("host", str(state.get("host") or definition.get("host") or "local")),
        (str(definition.get("kind") or "run"), Text(str(definition.get("what") or "-"))),
        ("exit code", Text("-" if exit_code is None else str(exit_code),
                           style="" if exit_code in (None, 0) else "bold red")),
        ("attempts", attempts),
        ("started", format.moment(state.get("started_at"))),
        ("ended", format.moment(state.get("ended_at"))),
        ("duration", format.duration(dict(state))),
        ("timed out", Text(timed_out + (f" (timeout {timeout})" if timeout else ""),
                           style="bold red" if state.get("timed_out") else "")),
    ]
    if definition.get("hold"):
        rows.append(("note", "held by its definition (hold = true)"))
    if definition.get("enabled") is False:
        rows.append(("note", "disabled: bypassed"))
    if definition.get("description"):
        rows.append(("about", Text(str(definition["description"]))))
    outputs = state.get("outputs") or {}
    if outputs:
        rows.append(("outputs", Text("\n".join(f"{k} = {v}" for k, v in outputs.items()))))
    return rows


def job_table(rows: list[tuple[str, Text | str]]) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


class JobPanel(Static):
    """One job's facts; empty until a job is shown."""

    DEFAULT_CSS = """
    JobPanel {
        height: auto;
        padding: 0 1;
        border-title-color: $text-muted;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.job: str | None = None
        self._definition: Mapping[str, Any] = {}
        self._state: Mapping[str, Any] = {}
        self.facts: dict[str, str] = {}   # what it shows, as plain text (for tests)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)

    def show(self, name: str, definition: Mapping[str, Any],
             state: Mapping[str, Any]) -> None:
        self.job, self._definition, self._state = name, definition, state
        self._draw()

    def _draw(self) -> None:
        assert self.job is not None
        rows = job_rows(self.job, self._definition, self._state)
        self.facts = {key: str(value) for key, value in rows}
        self.update(job_table(rows))

    def _tick(self) -> None:
        """A running job's duration grows; nothing else changes between events."""
        if self.job is not None and self._state.get("status") == "running":
            self._draw()
