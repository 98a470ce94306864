"""Messages the workers post up to the screens: small dataclasses, nothing else.

Workers never touch widgets; they post one of these and the screen applies it on the
app's thread, so every change to a widget happens in one place.

The app reads the server's event stream once and hands `RunChanged`, `JobChanged` and
`StreamState` to every mounted `JazScreen` (see app.py), so each screen has a handler
for what it shows and nothing to subscribe to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class RunsLoaded(Message):
    """A fresh page of runs from GET /runs (newest first)."""

    runs: list[dict[str, Any]]


@dataclass
class RunChanged(Message):
    """One run's new view, from a `run` event of the stream (the fields of GET /runs,
    with `progress` and `late`)."""

    run: dict[str, Any]


@dataclass
class JobChanged(Message):
    """One job's new state, from a `job` event of the stream: run_id, job, status,
    exit_code, attempts, timed_out, host, started_at, ended_at, and the run's
    `progress`."""

    job: dict[str, Any]


@dataclass
class StreamState(Message):
    """The event stream connected (`error` None) or was lost (`error` says why).
    Screens reload what they show when it (re)connects: events were missed meanwhile."""

    error: str | None = None
