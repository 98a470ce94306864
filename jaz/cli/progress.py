"""Live progress of `jaz run`: a rich table on a terminal, one line per change otherwise.

The engine calls `Progress.__call__` from its driver threads; rendering happens
on rich's refresh thread from a snapshot, so a slow terminal never slows a run.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jaz.cli.output import out, state
from jaz.engine.durations import format_duration
from jaz.engine.records import JobRecord, RunRecord
from jaz.styles import STATE_STYLE

if TYPE_CHECKING:
    from rich.table import Table

_LINE_STATES = {"running", "succeeded", "failed", "stopped", "skipped", "bypassed", "held"}


class Progress:
    def __init__(self, *, live: bool | None = None, quiet: bool = False) -> None:
        self.live_mode = sys.stdout.isatty() if live is None else live
        self.quiet = quiet
        self.lock = threading.Lock()
        self.jobs: dict[tuple[int, str], JobRecord] = {}
        self.runs: dict[int, RunRecord] = {}
        self.top: int | None = None
        self.started = time.monotonic()
        self._live: Any = None

    # -------------------------------------------------------------- feed

    def seed(self, run: RunRecord, jobs: list[JobRecord]) -> None:
        """Show every job from the start, pending ones included."""
        with self.lock:
            self.runs.setdefault(run.id, run)
            if self.top is None and run.parent_run is None:
                self.top = run.id
            for j in jobs:
                self.jobs.setdefault((j.run_id, j.name), j)

    def __call__(self, kind: str, record: RunRecord | JobRecord) -> None:
        with self.lock:
            if isinstance(record, RunRecord):
                self.runs[record.id] = record
                if self.top is None and record.parent_run is None:
                    self.top = record.id
                return
            key = (record.run_id, record.name)
            before = self.jobs.get(key)
            self.jobs[key] = record
        if self.live_mode or self.quiet:
            return
        if record.status in _LINE_STATES and (before is None or before.status != record.status):
            self._line(record)

    def _label(self, rec: JobRecord) -> str:
        run = self.runs.get(rec.run_id)
        if run is not None and run.parent_job:
            return f"{run.parent_job}/{rec.name}"
        return rec.name

    def _line(self, rec: JobRecord) -> None:
        stamp = time.strftime("%H:%M:%S")
        extra = ""
        if rec.status == "running":
            extra = f" (attempt {rec.attempts})" if rec.attempts > 1 else ""
        elif rec.started_at and rec.ended_at:
            extra = f" in {format_duration((rec.ended_at - rec.started_at).total_seconds())}"
        if rec.exit_code not in (None, 0):
            extra += f", exit {rec.exit_code}"
        if rec.message and rec.status in ("failed", "stopped", "held"):
            extra += f": {rec.message}"
        sys.stdout.write(f"{stamp} {rec.status:<9} {self._label(rec)}{extra}\n")
        sys.stdout.flush()

    # -------------------------------------------------------------- live

    def __enter__(self) -> Progress:
        if self.live_mode and not self.quiet:
            from rich.live import Live

            self._live = Live(get_renderable=self.render, console=out(),
                              refresh_per_second=8, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def render(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            jobs = list(self.jobs.values())
            runs = dict(self.runs)
        top = runs.get(self.top) if self.top is not None else None
        height = max(8, out().size.height - 6)
        now = datetime.now().astimezone()
        title = Text()
        if top is not None:
            title.append(f"{top.jobnet}", style="bold")
            title.append(f"  run {top.id}  ")
            title.append_text(Text.from_markup(state(str(top.status))))
            title.append(f"  {format_duration(time.monotonic() - self.started)}")
        table = Table(title=title, title_justify="left", expand=False, box=None,
                      header_style="bold", pad_edge=False)
        for col in ("job", "state", "host", "try", "time", "note"):
            table.add_column(col, no_wrap=col != "note", overflow="ellipsis")
        counts: dict[str, int] = {}
        for j in jobs:
            counts[str(j.status)] = counts.get(str(j.status), 0) + 1
        order = {"running": 0, "failed": 1, "held": 2, "stopped": 3, "ready": 4}
        shown = jobs
        if len(jobs) > height:
            shown = sorted(jobs, key=lambda j: (order.get(str(j.status), 9),
                                                -(j.ended_at or now).timestamp()))[:height - 1]
        for j in shown:
            if j.started_at is None:
                dur = ""
            else:
                dur = format_duration(((j.ended_at or now) - j.started_at).total_seconds())
            note = j.message or ("timed out" if j.timed_out else "")
            table.add_row(self._label(j), state(str(j.status)), j.host,
                          str(j.attempts) if j.attempts else "", dur, note)
        if len(shown) < len(jobs):
            summary = "  ".join(f"{STATE_STYLE.get(k, ('', '?'))[1]} {v} {k}"
                                for k, v in sorted(counts.items()))
            table.add_row(f"… {len(jobs) - len(shown)} more", summary, "", "", "", "")
        return table
