"""One jobnet (pushed from Jobnets with `enter`): tabs for its definition (the TOML,
syntax-highlighted, and the problems of a broken file), its graph of jobs, its runs and
its next fire times. `j` opens the history of the selected job across all runs; `enter`
on a run opens the run.

The definition is the version in force. For a broken file the server also sends the
file as it is now (`file_text`), shown under its problems; a file that never loaded has
only that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane, Tree
from textual.widgets.data_table import RowDoesNotExist

from jaz.tui import format
from jaz.tui.messages import RunChanged, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.screens.job_history import JobHistoryScreen
from jaz.tui.screens.nav import open_run, start_jobnet
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.rows import add_columns, cursor_key, fit, plain, sync_rows, update_row

HISTORY = 200         # runs shown in the History tab
NEXT = 20             # fire times shown in the Next tab
TABS = ["definition", "graph", "history", "next"]
RUN_COLUMNS = [("id", "Run"), ("state", "State"), ("trigger", "Trigger"),
               ("scheduled", "Scheduled"), ("start", "Start"), ("duration", "Duration")]


@dataclass
class DefinitionLoaded(Message):
    jobnet: dict[str, Any]
    file_text: str | None     # a broken file as it is now (the API's `file_text`)


@dataclass
class HistoryLoaded(Message):
    runs: list[dict[str, Any]]


@dataclass
class NextLoaded(Message):
    fires: list[str]


def run_cells(run: dict[str, Any]) -> list[Any]:
    return [int(run["run_id"]), format.state(str(run["status"])),
            str(run.get("trigger") or "-"), format.moment(run.get("scheduled_at")),
            format.moment(run.get("started_at")), format.duration(run)]


def definition(jobnet: dict[str, Any], file_text: str | None) -> Group:
    """The Definition tab: a note on what is shown, the TOML, the problems."""
    parts: list[Any] = []
    problems = jobnet.get("problems") or []
    text = jobnet.get("text")
    if problems:
        where = PurePath(str(jobnet.get("path") or "?")).name   # the folder: `jaz jobnets`
        parts.append(Text(f"✖ {len(problems)} problem(s) in {where}:", style="bold red"))
        parts += [Text(f"  {format.problem(p, short=True)}", style="red") for p in problems]
        parts.append(Text(""))
        if text is not None:
            parts.append(Text("The last valid version stays in force; it reads:",
                              style="yellow"))
        elif file_text is not None:
            parts.append(Text("Nothing is in force; the file reads:", style="yellow"))
    if text is None:
        text = file_text
    if text is None:
        parts.append(Text("(the text of this file is not available here)", style="dim"))
    else:
        parts.append(Syntax(text, "toml", line_numbers=True, theme="ansi_dark",
                            word_wrap=False))
    return Group(*parts)


def jobs_tree(jobs: dict[str, dict[str, Any]]) -> Tree[str]:
    """The jobs as a tree by `needs`: roots are the jobs that need none; a job that
    needs several appears under each of them."""
    tree: Tree[str] = Tree("jobs", id="jobs")
    tree.show_root = False
    children: dict[str, list[str]] = {}
    for name, job in jobs.items():
        for need in job.get("needs") or []:
            children.setdefault(str(need), []).append(name)

    def label(name: str) -> Text:
        job = jobs[name]
        out = Text(name, style="bold")
        out.append(f"  {job.get('kind', '')}", style="cyan")
        if job.get("what"):
            out.append(f"  {job['what']}"[:60], style="dim")
        if not job.get("enabled", True):
            out.append("  (disabled)", style="yellow")
        return out

    def add(node: Any, name: str, path: tuple[str, ...]) -> None:
        kids = [k for k in children.get(name, []) if k not in path and k in jobs]
        child = node.add(label(name), data=name, expand=True) if kids else \
            node.add_leaf(label(name), data=name)
        for kid in kids:
            add(child, kid, (*path, kid))

    roots = [n for n, j in jobs.items() if not j.get("needs")] or list(jobs)
    for name in roots:
        add(tree.root, name, (name,))
    tree.root.expand()
    return tree


def graph_widget(jobs: dict[str, dict[str, Any]]) -> Widget:
    """The JobGraph widget when it is there, else the tree."""
    try:
        from jaz.tui.widgets.graph import JobGraph
    except ImportError:
        return jobs_tree(jobs)
    return JobGraph(jobs, vim_keys=False, id="jobs")   # j: the job's history here


class JobnetDetailScreen(JazScreen):
    """One jobnet: definition, graph, history, next fires."""

    HELP = ("A jobnet: its TOML (Definition), its jobs by needs (Graph), its runs "
            "(History; enter opens a run) and its next fire times (Next). j opens the "
            "selected job's history across all runs.")
    PALETTE = "Jobnet"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open_job", "Job history", show=False),
        Binding("j", "job_history", "Job history"),
        Binding("n", "start", "Start"),
        Binding("left_square_bracket", "tab(-1)", "Prev tab"),
        Binding("right_square_bracket", "tab(1)", "Next tab"),
        Binding("r", "refresh", "Refresh"),
    ]

    DEFAULT_CSS = """
    JobnetDetailScreen TabbedContent {
        height: 1fr;
    }
    JobnetDetailScreen TabPane {
        height: 1fr;
        padding: 0;
    }
    JobnetDetailScreen #definition-scroll, JobnetDetailScreen #jobs,
    JobnetDetailScreen #runs, JobnetDetailScreen #fires {
        height: 1fr;
    }
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.jobnet_name = name
        self.jobnet: dict[str, Any] | None = None
        self.job: str | None = None       # the job selected in the graph

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        with TabbedContent(id="tabs"):
            with TabPane("Definition", id="definition"), \
                    VerticalScroll(id="definition-scroll"):
                yield Static("loading…", id="text")
            with TabPane("Graph", id="graph"):
                yield Static("loading…", id="jobs")
            with TabPane("History", id="history"):
                yield DataTable(cursor_type="row", zebra_stripes=True, id="runs")
            with TabPane("Next", id="next"):
                yield DataTable(cursor_type="row", id="fires")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = f"jaz · jobnet {self.jobnet_name}"
        runs = self.query_one("#runs", DataTable)
        add_columns(runs, RUN_COLUMNS)
        fires = self.query_one("#fires", DataTable)
        fires.add_column("#", key="n")
        fires.add_column("Fire", key="at")
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load_definition()
        self.load_history()
        self.load_next()

    # ------------------------------------------------------------ workers

    @work(thread=True, exclusive=True, group="definition", exit_on_error=False)
    def load_definition(self) -> None:
        jobnet = self.client.jobnet(self.jobnet_name)
        self.post_message(DefinitionLoaded(jobnet, jobnet.get("file_text")))

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load_history(self) -> None:
        self.post_message(HistoryLoaded(self.client.runs(jobnet=self.jobnet_name,
                                                         limit=HISTORY)))

    @work(thread=True, exclusive=True, group="next", exit_on_error=False)
    def load_next(self) -> None:
        self.post_message(NextLoaded(self.client.next_fires(self.jobnet_name, NEXT)))

    # ------------------------------------------------------------ handlers

    @on(DefinitionLoaded)
    async def _definition(self, message: DefinitionLoaded) -> None:
        self.jobnet = message.jobnet
        self.query_one("#text", Static).update(definition(message.jobnet,
                                                          message.file_text))
        jobs = message.jobnet.get("jobs")
        pane = self.query_one("#graph", TabPane)
        old = pane.query_one("#jobs")
        await old.remove()
        if jobs:
            await pane.mount(graph_widget(jobs))
        else:
            await pane.mount(Static("no version of this jobnet is in force: no jobs to show",
                                    id="jobs"))

    @on(HistoryLoaded)
    def _history(self, message: HistoryLoaded) -> None:
        newest_first = sorted(message.runs, key=lambda run: int(run["run_id"]), reverse=True)
        sync_rows(self.query_one("#runs", DataTable), RUN_COLUMNS,
                  ((str(run["run_id"]), run_cells(run)) for run in newest_first))

    @on(NextLoaded)
    def _next(self, message: NextLoaded) -> None:
        table = self.query_one("#fires", DataTable)
        table.clear()
        for i, at in enumerate(message.fires, 1):
            table.add_row(i, format.moment(at), key=at)
        if not message.fires:
            table.add_row("", "no fire time ahead (no schedule, or it never fires)")
        fit(table)

    @on(RunChanged)
    def _run(self, message: RunChanged) -> None:
        run = message.run
        if run.get("jobnet") != self.jobnet_name:
            return
        table = self.query_one("#runs", DataTable)
        key = str(run["run_id"])
        try:
            table.get_row_index(key)
        except RowDoesNotExist:
            keep = cursor_key(table)
            table.add_row(*plain(run_cells(run)), key=key)
            table.sort("id", reverse=True)
            if keep is not None:
                table.move_cursor(row=table.get_row_index(keep), animate=False)
        else:
            update_row(table, RUN_COLUMNS, key, run_cells(run))
        fit(table)

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None:
            self.load_history()

    @on(DataTable.RowSelected, "#runs")
    def _open_run(self, event: DataTable.RowSelected) -> None:
        event.stop()
        open_run(self, int(str(event.row_key.value)))

    @on(Tree.NodeHighlighted, "#jobs")
    def _highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self.job = event.node.data

    @on(Tree.NodeSelected, "#jobs")
    def _tree_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        self.job = event.node.data
        self.action_job_history()

    def on_job_graph_selected(self, event: Any) -> None:
        """JobGraph.Selected(graph, job): the selection moved (enter opens it)."""
        self.job = str(event.job)

    # ------------------------------------------------------------ actions

    def action_open_job(self) -> None:
        """enter on the graph: the selected job's history."""
        if self.focused is not None and self.focused.id == "jobs":
            self.action_job_history()

    def action_job_history(self) -> None:
        job = self.job
        if job is None:
            jobs = (self.jobnet or {}).get("jobs") or {}
            if len(jobs) != 1:
                self.notify("select a job in the Graph tab first")
                return
            job = next(iter(jobs))
        self.app.push_screen(JobHistoryScreen(self.jobnet_name, job))

    def action_start(self) -> None:
        start_jobnet(self, self.jobnet_name)

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        at = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(at + step) % len(TABS)]
