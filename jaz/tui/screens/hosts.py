"""The Hosts screen (SPEC §6): the local host and the configured agents, SSH hosts and JAZ
agents, their kind, whether they are online, when they were last seen, the agent's (or
SSH server's) version, how many jobs run on them and the last error while away; under
the table, the running jobs of the selected host (`enter` goes there, `enter` on a job
opens its run).

Built for hundreds of hosts: the list is fetched in a worker every REFRESH seconds, on
job events (at most once a second) and when the stream reconnects, and applied to the
table in place, so the cursor and the scroll stay where they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Footer, Header

from jaz.hosts import view
from jaz.tui import format
from jaz.tui.messages import JobChanged, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.screens.nav import open_run
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.name_filter import NameFilter, matches
from jaz.tui.widgets.rows import add_columns, cursor_key, sync_rows

REFRESH = 5.0          # seconds between fetches of the host list
COLUMNS = [("name", "Host"), ("kind", "Kind"), ("address", "Address"), ("online", "State"),
           ("seen", "Last seen"), ("version", "Version"), ("running", "Running"),
           ("error", "Last error"), ("description", "Description")]
JOB_COLUMNS = [("run", "Run"), ("jobnet", "Jobnet"), ("job", "Job"), ("since", "Since")]


def online(value: bool | None) -> Text:
    if value is None:
        return Text("? unknown", style="dim")
    return Text("● online", style="green") if value else Text("○ offline", style="bold red")


def cells(host: dict[str, Any]) -> list[Any]:
    error = view.note(host)
    return [str(host["name"]), view.kind_label(host), str(host.get("address") or "-"),
            online(host.get("online")), format.moment(host.get("last_seen")),
            str(host.get("version") or "-"), len(host.get("running") or []),
            Text(error, style="red" if host.get("error") else "dim"),
            str(host.get("description") or "")]


def job_cells(job: dict[str, Any]) -> list[Any]:
    return [int(job["run_id"]), str(job.get("jobnet") or ""), str(job.get("job") or ""),
            format.moment(job.get("started_at"))]


@dataclass
class HostsLoaded(Message):
    hosts: list[dict[str, Any]]


class HostsScreen(JazScreen):
    """Hosts: online state, last seen, running jobs."""

    HELP = ("The local host and the agent, SSH and JAZ agent hosts of the server's config: "
            "kind, state (● online, ○ offline, ? not probed yet), last seen, version, jobs "
            "running, and the last error while a host is away. The lower "
            "table lists the running jobs of the selected host; enter there opens the run.")
    PALETTE = "Hosts"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "jobs", "Running jobs"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    DEFAULT_CSS = """
    HostsScreen #hosts {
        height: 2fr;
    }
    HostsScreen #running {
        height: 1fr;
        min-height: 5;
        border-top: solid $primary;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, dict[str, Any]] = {}
        self.filter = ""
        self._dirty = False      # a job event asked for a fetch

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        yield DataTable(cursor_type="row", zebra_stripes=True, id="hosts")
        yield DataTable(cursor_type="row", id="running")
        yield NameFilter(id="filter")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = "jaz · hosts"
        add_columns(self.query_one("#hosts", DataTable), COLUMNS)
        running = self.query_one("#running", DataTable)
        add_columns(running, JOB_COLUMNS)
        running.border_title = "running jobs"
        self.set_interval(REFRESH, self.load)
        self.set_interval(1.0, self._events)
        if self.jaz.stream_connected:
            self.load()

    # ------------------------------------------------------------ data

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        self.post_message(HostsLoaded(self.client.hosts()))

    def _events(self) -> None:
        if self._dirty:
            self._dirty = False
            self.load()

    @on(HostsLoaded)
    def _loaded(self, message: HostsLoaded) -> None:
        self.hosts = {str(h["name"]): h for h in message.hosts}
        self.show()

    def show(self) -> None:
        # the order of the server: local first, then the configured hosts by name
        sync_rows(self.query_one("#hosts", DataTable), COLUMNS,
                  ((name, cells(host)) for name, host in self.hosts.items()
                   if matches(name, self.filter)))
        self.show_jobs()

    def selected(self) -> str | None:
        key = cursor_key(self.query_one("#hosts", DataTable))
        return None if key is None else str(key.value)

    def show_jobs(self) -> None:
        name = self.selected()
        host = self.hosts.get(name) if name is not None else None
        jobs = (host or {}).get("running") or []
        table = self.query_one("#running", DataTable)
        table.border_title = f"running jobs on {name}" if name else "running jobs"
        sync_rows(table, JOB_COLUMNS, ((f"{j['run_id']}/{j['job']}", job_cells(j)) for j in jobs))

    @on(DataTable.RowHighlighted, "#hosts")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_jobs()

    @on(JobChanged)
    def _job(self, message: JobChanged) -> None:
        self._dirty = True

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None:
            self.load()

    # ------------------------------------------------------------ actions

    def action_refresh(self) -> None:
        self.load()

    def action_jobs(self) -> None:
        running = self.query_one("#running", DataTable)
        if running.row_count:
            running.focus()
        else:
            self.notify(f"no job is running on {self.selected() or 'this host'}")

    @on(DataTable.RowSelected, "#hosts")
    def _host_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_jobs()

    @on(DataTable.RowSelected, "#running")
    def _job_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        run_id = str(event.row_key.value).split("/", 1)[0]
        open_run(self, int(run_id))

    def action_filter(self) -> None:
        self.query_one(NameFilter).open(self.filter)

    def action_clear_filter(self) -> None:
        if self.filter:
            self.query_one(NameFilter).action_clear_filter()
        elif self.focused is self.query_one("#running", DataTable):
            self.query_one("#hosts", DataTable).focus()

    @on(NameFilter.Applied)
    def _filtered(self, message: NameFilter.Applied) -> None:
        self.filter = message.text
        self.show()
