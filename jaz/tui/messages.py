"""Messages the workers post up to the screens: small dataclasses, nothing else.

Workers never touch widgets; they post one of these and the screen applies it on the
app's thread, so every change to the table happens in one place.
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
    """One run's new view, from a `run` event of the stream."""

    run: dict[str, Any]


@dataclass
class StreamState(Message):
    """The event stream connected (`error` None) or was lost (`error` says why)."""

    error: str | None = None
