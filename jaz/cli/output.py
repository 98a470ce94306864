"""Output helpers: people get rich on stdout, scripts get `--json`, errors go to stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console

STATE_STYLE = {
    "scheduled": ("cyan", "◷"), "held": ("magenta", "⏸"), "pending": ("dim", "·"),
    "ready": ("blue", "○"), "running": ("yellow", "▶"), "succeeded": ("green", "✔"),
    "failed": ("red", "✘"), "stopped": ("red", "■"), "error": ("bold red", "!"),
    "skipped": ("dim cyan", "↷"), "bypassed": ("dim", "⤼"), "missed": ("dim red", "∅"),
}

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    global _out
    if _out is None:
        _out = Console(highlight=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        _err = Console(stderr=True, highlight=False)
    return _err


def state(value: str) -> str:
    """A state as rich markup: glyph + word, so it reads without colour too."""
    style, glyph = STATE_STYLE.get(value, ("", "?"))
    return f"[{style}]{glyph} {value}[/]" if style else f"{glyph} {value}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def when(t: datetime | None) -> str:
    if t is None:
        return "-"
    local = t.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")
