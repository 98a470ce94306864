"""Output helpers: people get rich on stdout, scripts get `--json`, errors go to stderr.

rich is imported only when stdout is a terminal: piped output is plain aligned
text (nothing to garble), and `jaz run` starts faster without it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jaz.styles import STATE_STYLE

_out: Any = None


def is_tty() -> bool:
    return sys.stdout.isatty()


def out() -> Any:
    """The rich console for stdout (imports rich on first use)."""
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False)
    return _out


def glyph(value: str) -> str:
    return f"{STATE_STYLE.get(value, ('', '?'))[1]} {value}"


def state(value: str) -> str:
    """A state as rich markup: glyph + word, so it reads without colour too."""
    style = STATE_STYLE.get(value, ("", "?"))[0]
    return f"[{style}]{glyph(value)}[/]" if style else glyph(value)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                state_col: int | None = None, wrap: Sequence[str] = ()) -> None:
    """A table: rich on a terminal, plain aligned columns otherwise."""
    if not rows:
        return
    if is_tty():
        from rich.markup import escape
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in columns:
            table.add_column(col, no_wrap=col not in wrap, overflow="fold")
        for row in rows:
            table.add_row(*(state(c) if i == state_col else escape(c)
                            for i, c in enumerate(row)))
        out().print(table)
        return
    cells = [list(columns)] + [[glyph(c) if i == state_col else c.replace("\n", " ")
                                for i, c in enumerate(row)] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
    sys.stdout.flush()


def esc(text: str) -> str:
    """Escape user text for `say` (what rich.markup.escape does, without importing rich)."""
    return text.replace("[", "\\[")


def say(text: str) -> None:
    """One line for people; `[b]...[/]`-style markup only shows on a terminal."""
    if is_tty():
        out().print(text)
    else:
        import re

        plain = re.sub(r"(?<!\\)\[/?[a-z ]*\]", "", text).replace("\\[", "[")
        sys.stdout.write(plain + "\n")
        sys.stdout.flush()


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def when(t: datetime | None) -> str:
    if t is None:
        return "-"
    local = t.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")
