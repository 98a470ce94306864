"""One job's executions across all runs of its jobnet, newest first (pushed from a
jobnet with `j`). `enter` opens the run of the selected execution.

The stream's job events keep it live: a known run's row is updated in place; an
execution of this job in a run not shown yet reloads the list (the event does not
name the jobnet, the list does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from jaz.tui import format
from jaz.tui.messages import JobChanged, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.screens.nav import open_run
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.rows import add_columns, cursor_key, fit, sync_rows, update_row

LIMIT = 500
COLUMNS = [("run", "Run"), ("state", "State"), ("exit", "Exit"), ("attempts", "Attempts"),
           ("host", "Host"), ("start", "Start"), ("duration", "Duration"),
           ("timed_out", "Timed out")]


def cells(job: dict[str, Any]) -> list[Any]:
    exit_code = job.get("exit_code")
    return [int(job["run_id"]), format.state(str(job["status"])),
            "-" if exit_code is None else str(exit_code), str(job.get("attempts") or 0),
            str(job.get("host") or "-"), format.moment(job.get("started_at")),
            format.duration(job),
            Text("⏱ timed out", style="red") if job.get("timed_out") else ""]


@dataclass
class HistoryLoaded(Message):
    jobs: list[dict[str, Any]]


class JobHistoryScreen(JazScreen):
    """A job of a jobnet, in every run."""

    HELP = ("One job's executions in every run of its jobnet, newest first: state, exit "
            "code, attempts, host, start, duration, timeout. enter opens the run.")
    PALETTE = "Job history"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open", "Open run"),
        Binding("r", "refresh", "Refresh"),
    ]

    DEFAULT_CSS = """
    JobHistoryScreen #executions {
        height: 1fr;
    }
    JobHistoryScreen #what {
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, jobnet: str, job: str) -> None:
        super().__init__()
        self.jobnet_name = jobnet
        self.job = job

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield Static(f"{self.jobnet_name} › {self.job}: its executions in every run",
                     id="what", markup=False)
        yield DataTable(cursor_type="row", zebra_stripes=True, id="executions")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = f"jaz · {self.jobnet_name} › {self.job}"
        table = self.query_one("#executions", DataTable)
        add_columns(table, COLUMNS)
        self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        self.post_message(HistoryLoaded(self.client.job_history(self.jobnet_name, self.job,
                                                                limit=LIMIT)))

    def action_refresh(self) -> None:
        self.load()

    @on(HistoryLoaded)
    def _loaded(self, message: HistoryLoaded) -> None:
        sync_rows(self.query_one("#executions", DataTable), COLUMNS,
                  ((str(job["run_id"]), cells(job)) for job in message.jobs))

    @on(JobChanged)
    def _changed(self, message: JobChanged) -> None:
        job = message.job
        if job.get("job") != self.job or job.get("jobnet") not in (None, self.jobnet_name):
            return
        key = str(job["run_id"])
        table = self.query_one("#executions", DataTable)
        if key not in table.rows:
            self.load()
            return
        update_row(table, COLUMNS, key, cells(job))
        fit(table)

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None:
            self.load()

    def action_open(self) -> None:
        key = cursor_key(self.query_one("#executions", DataTable))
        if key is not None:
            open_run(self, int(str(key.value)))

    @on(DataTable.RowSelected, "#executions")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()
