"""How states look, the same in every face: a rich style and a glyph per run or job
state. The CLI (`jaz.cli.output`) and the dashboard (`jaz.tui`) both draw with it, so it
sits below them; the glyph makes a state read without colour too."""

from __future__ import annotations

STATE_STYLE = {
    "scheduled": ("cyan", "◷"), "held": ("magenta", "⏸"), "pending": ("dim", "·"),
    "ready": ("blue", "○"), "running": ("yellow", "▶"), "succeeded": ("green", "✔"),
    "failed": ("red", "✘"), "stopped": ("red", "■"), "error": ("bold red", "!"),
    "skipped": ("dim cyan", "↷"), "bypassed": ("dim", "⤼"), "missed": ("dim red", "∅"),
}
