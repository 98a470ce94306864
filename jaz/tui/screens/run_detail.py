"""Run detail: one run's jobnet graph with each job's live state, the selected job's
panel, and its stdout/stderr (pushed from Runs with `enter`).

The run and the jobnet version it started with are loaded in a thread worker; the app's
stream keeps job states live (JobChanged), and a (re)connected stream reloads. Job
events that arrive while a load is in flight are kept and applied on top of it.

Logs: the selected job's latest attempt, both streams, read from byte offsets so that
only new text travels. With `f` (follow) on, a worker polls every LOG_POLL seconds while
the job runs and keeps the end in view; a new attempt (rerun, retry) starts the text
over. Stale answers (another job, an older offset) are dropped on arrival.

Moving the selection is cheap, since an arrow key held down moves it ~30 times a second:
the graph repaints the two lines that changed, the job panel (fixed size) repaints
itself with no layout pass, and the log is read LOG_SETTLE seconds after the selection
stops moving (until then the log pane keeps the previous job's text, under its name).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import Footer, Header, Input
from textual.worker import Worker, WorkerState, get_current_worker

from jaz.tui.messages import JobChanged, RunChanged, StreamState
from jaz.tui.screens.base import JazScreen
from jaz.tui.screens.run_info import RunInfoScreen
from jaz.tui.widgets.banner import Banner
from jaz.tui.widgets.graph import JobGraph
from jaz.tui.widgets.job_panel import JobPanel
from jaz.tui.widgets.log_view import LogView

LOG_POLL = 0.5          # seconds between log reads while following a running job
LOG_SETTLE = 0.15       # seconds the selection stays on a job before its log is read
NARROW = 120            # below this many columns, the panes stack
STREAMS = ("stdout", "stderr")
FINISHED = {"succeeded", "failed", "stopped", "error", "skipped", "bypassed"}
JOB_ACTIONS = {   # key action -> (API action, downstream, what it says, confirmation)
    "hold": ("hold", False, "hold", None),
    "release": ("release", False, "release", None),
    "skip": ("skip", False, "skip", "Skip job {job} of run {run}?"),
    "unskip": ("unskip", False, "unskip", None),
    "stop": ("stop", False, "stop", "Stop job {job} of run {run}?"),
    "rerun": ("rerun", False, "rerun", "Rerun job {job} of run {run}?"),
    "rerun_downstream": ("rerun", True, "rerun with downstream",
                         "Rerun job {job} of run {run} and every job after it?"),
}


class RunDetailScreen(JazScreen):
    """One run: graph, job panel, logs."""

    HELP = ("The run's jobs in layers by `needs` (arrows move between them), the "
            "selected job's facts and its stdout/stderr (stderr lines marked ▌). "
            "l shows/focuses the log, f follows it live, / searches it (n/N). "
            "Job actions act on the selected job; stop, skip and reruns ask first. "
            "i shows the run's params, jobnet version and audit trail.")
    PALETTE = "Run"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("l", "logs", "Logs"),
        Binding("f", "follow", "Follow"),
        Binding("slash", "search", "Search log"),
        Binding("n", "next_match(1)", "Next match", show=False),
        Binding("N", "next_match(-1)", "Previous match", show=False),
        Binding("i", "info", "Info"),
        Binding("h", "job('hold')", "Hold job", show=False),
        Binding("u", "job('release')", "Release job", show=False),
        Binding("k", "job('skip')", "Skip job", show=False),
        Binding("K", "job('unskip')", "Unskip job", show=False),
        Binding("x", "job('stop')", "Stop job"),
        Binding("R", "job('rerun')", "Rerun job"),
        Binding("D", "job('rerun_downstream')", "Rerun with downstream", show=False),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    DEFAULT_CSS = """
    RunDetailScreen #body {
        layout: horizontal;
        height: 1fr;
    }
    RunDetailScreen #graph {
        width: 1fr;
        height: 1fr;
        border: round $panel;
    }
    RunDetailScreen #graph:focus {
        border: round $accent;
    }
    RunDetailScreen #side {
        width: 1fr;
        height: 1fr;
        layout: vertical;
    }
    RunDetailScreen #facts {
        height: 14;
        max-height: 50%;
        border: round $panel;
    }
    RunDetailScreen #facts:focus {
        border: round $accent;
    }
    RunDetailScreen.narrow #body {
        layout: vertical;
    }
    RunDetailScreen.narrow #graph {
        width: 100%;
    }
    RunDetailScreen.narrow #side {
        width: 100%;
        layout: horizontal;
    }
    RunDetailScreen.narrow #facts {
        width: 40;
        height: 100%;
        max-height: 100%;
    }
    RunDetailScreen.nolog #log {
        display: none;
    }
    RunDetailScreen.nolog #facts {
        width: 1fr;
        height: 1fr;
        max-height: 100%;
    }
    RunDetailScreen #search {
        display: none;
        dock: bottom;
    }
    RunDetailScreen.searching #search {
        display: block;
    }
    """

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: dict[str, Any] = {}
        self.jobnet: dict[str, Any] = {}
        self.jobs: dict[str, dict[str, Any]] = {}    # job -> its state (GET /runs/{id})
        self._loading = False
        self._generation = 0                         # of the latest load asked
        self._loaded_once = False
        self._held: list[dict[str, Any]] = []        # job events during a load
        self.following = False
        self.log_job: str | None = None
        self._log_attempt: str | None = None
        self._offsets = dict.fromkeys(STREAMS, 0)
        self._log_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Banner()
        with Container(id="body"):
            yield JobGraph({}, vim_keys=False, id="graph")
            with Container(id="side"):
                yield JobPanel(id="facts")
                yield LogView(id="log")
        yield Input(placeholder="search the log (enter: find, esc: close)", id="search")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = f"run {self.run_id}"
        self.query_one("#facts").border_title = "job"
        self.query_one(LogView).border_title = "log"
        self.query_one(JobGraph).border_title = "jobs"
        self.query_one(JobGraph).focus()
        self._fit(self.app.size.width)
        if self.jaz.stream_connected:
            self.reload()

    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.set_class(width < NARROW, "narrow")

    @property
    def graph(self) -> JobGraph:
        return self.query_one(JobGraph)

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    # ------------------------------------------------------------ loading

    def reload(self, *, jobnet: bool = True) -> None:
        """Load the run (and the jobnet version with `jobnet`); job events that arrive
        meanwhile are held and applied on top, so an older answer never hides them."""
        self._loading = True
        self._generation += 1
        self.load(self._generation, jobnet or not self.jobnet)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, generation: int, jobnet: bool) -> None:
        run = self.client.run(self.run_id)
        version = self.client.run_jobnet(self.run_id) if jobnet else None
        self.app.call_from_thread(self._loaded, generation, run, version)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "load" and event.state == WorkerState.ERROR:
            self._loading = False   # no answer is coming: stop holding events
            self._apply_held()

    def _loaded(self, generation: int, run: dict[str, Any],
                jobnet: dict[str, Any] | None) -> None:
        if generation != self._generation:
            return   # a newer load is on its way
        first = not self._loaded_once
        if jobnet is not None:
            same = jobnet.get("jobs") == self.jobnet.get("jobs")
            self.jobnet = jobnet
            if not same:
                self.graph.set_jobs(jobnet.get("jobs") or {})
        self._apply_run(run)
        self.jobs = {name: dict(job) for name, job in (run.get("jobs") or {}).items()}
        self.graph.set_states({name: str(job["status"]) for name, job in self.jobs.items()})
        self._loaded_once, self._loading = True, False
        self._apply_held()
        if first:
            self._select_first()
        self._show_panel()

    def _apply_held(self) -> None:
        for job in self._held:
            self._apply_job(job)
        self._held.clear()

    def _select_first(self) -> None:
        """Open on what the operator most likely came for: a failed job, else a running
        one, else the first."""
        for wanted in ("failed", "error", "stopped", "running"):
            for name in self.graph.graph_layout.nodes:
                if self.graph.state_of(name) == wanted:
                    self.graph.select(name)
                    return
        if self.graph.selected is not None and self.log_job is None:
            self._open_log(self.graph.selected)

    def _apply_run(self, run: dict[str, Any]) -> None:
        self.run.update({k: v for k, v in run.items() if k != "jobs"})
        name = self.run.get("jobnet") or self.jobnet.get("name") or "?"
        self.title = f"run {self.run_id} · {name} · {self.run.get('status', '?')}"

    def _apply_job(self, job: dict[str, Any]) -> None:
        name = str(job.get("job"))
        if name not in self.jobs and name not in self.graph.graph_layout.nodes:
            return
        state = self.jobs.setdefault(name, {})
        before = state.get("status")
        state.update({k: v for k, v in job.items() if k not in ("run_id", "job", "progress")})
        status = str(state.get("status"))
        self.graph.set_state(name, status)
        if name == self.graph.selected:
            self._show_panel()
        if name == self.log_job and status != before and (
                status in FINISHED or (status == "running" and self.following)):
            self._read_log()
        if status in FINISHED and status != before:
            self.reload(jobnet=False)   # its outputs are not in the event

    def _show_panel(self) -> None:
        job = self.graph.selected
        if job is None:
            return
        definition = (self.jobnet.get("jobs") or {}).get(job) or {}
        panel = self.query_one(JobPanel)
        panel.show(job, definition, self.jobs.get(job, {}))
        panel.border_title = f"job {job}"

    # ------------------------------------------------------------ stream

    @on(RunChanged)
    def _run_changed(self, message: RunChanged) -> None:
        if int(message.run.get("run_id", 0)) == self.run_id:
            self._apply_run(message.run)

    @on(JobChanged)
    def _job_changed(self, message: JobChanged) -> None:
        if int(message.job.get("run_id", 0)) != self.run_id:
            return
        if self._loading:
            self._held.append(message.job)
        else:
            self._apply_job(message.job)

    @on(StreamState)
    def _stream(self, message: StreamState) -> None:
        if message.error is None or not self._loaded_once:
            self.reload()

    @on(JobGraph.Selected)
    def _selected(self, message: JobGraph.Selected) -> None:
        self._show_panel()
        if self._log_timer is not None:
            self._log_timer.stop()
            self._log_timer = None
        if self.log_job is None:
            self._open_log(message.job)   # the first job: at once
        elif message.job != self.log_job:
            self._log_timer = self.set_timer(LOG_SETTLE, self._settled)

    def _settled(self) -> None:
        self._log_timer = None
        job = self.graph.selected
        if job is not None and job != self.log_job:
            self._open_log(job)

    # ------------------------------------------------------------ logs

    def _open_log(self, job: str) -> None:
        self.log_job, self._log_attempt = job, None
        self._offsets = dict.fromkeys(STREAMS, 0)
        self.log_view.clear(note="no output yet")
        self.log_view.border_title = f"log {job}"
        self._read_log()

    def _read_log(self) -> None:
        if self.log_job is not None:
            self.read_log(self.log_job, dict(self._offsets), self._log_attempt)

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def read_log(self, job: str, offsets: dict[str, int], attempt: str | None) -> None:
        """Read what is new of `job`'s log; go on every LOG_POLL s while it runs and
        following is on."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            running = (self.jobs.get(job) or {}).get("status") == "running"
            restart = False
            for stream in STREAMS:
                for chunk in self.client.logs(self.run_id, job, stream=stream,
                                              offset=offsets[stream]):
                    if chunk["attempt"] != attempt:
                        restart = attempt is not None   # a new attempt: read it anew
                        attempt = str(chunk["attempt"])
                        self.app.call_from_thread(self._log_restart, job, attempt)
                        if restart:
                            offsets = dict.fromkeys(STREAMS, 0)
                            break
                    self.app.call_from_thread(self._log_text, job, chunk)
                    offsets[stream] = int(chunk["next_offset"])
                if restart:
                    break
            if restart:
                continue
            if worker.is_cancelled or not (running and self.following):
                return
            time.sleep(LOG_POLL)

    def _log_restart(self, job: str, attempt: str) -> None:
        if job != self.log_job or attempt == self._log_attempt:
            return
        if self._log_attempt is not None:
            self.log_view.clear(note="no output yet")
        self._log_attempt = attempt
        self._offsets = dict.fromkeys(STREAMS, 0)
        self.log_view.border_title = f"log {job} · attempt {attempt}"

    def _log_text(self, job: str, chunk: dict[str, Any]) -> None:
        stream = str(chunk["stream"])
        if (job != self.log_job or chunk["attempt"] != self._log_attempt
                or int(chunk["offset"]) != self._offsets[stream]):
            return   # stale: another job, attempt, or text already shown
        self._offsets[stream] = int(chunk["next_offset"])
        self.log_view.append(stream, str(chunk["text"]))
        if not self.log_view.lines:
            self.log_view.note = "no output"

    # ------------------------------------------------------------ keys

    def action_back(self) -> None:
        if self.has_class("searching"):
            self.remove_class("searching")
            self.log_view.focus()
            return
        self.app.pop_screen()

    def action_refresh(self) -> None:
        self.reload()

    def action_logs(self) -> None:
        log = self.log_view
        if self.has_class("nolog") or not log.has_focus:
            self.remove_class("nolog")
            log.focus()
        else:
            self.add_class("nolog")
            self.graph.focus()

    def action_follow(self) -> None:
        self.following = not self.following
        self.log_view.following = self.following
        self.remove_class("nolog")
        self.log_view.border_subtitle = "following" if self.following else ""
        if self.following:
            self.log_view.scroll_end(animate=False)
            self._read_log()
        self.notify("following the log" if self.following else "stopped following")

    def action_search(self) -> None:
        self.remove_class("nolog")
        self.add_class("searching")
        search = self.query_one("#search", Input)
        search.value = self.log_view.pattern
        search.focus()

    @on(Input.Submitted, "#search")
    def _search(self, event: Input.Submitted) -> None:
        self.remove_class("searching")
        self.log_view.focus()
        if not event.value:
            self.log_view.search("")
            return
        found = self.log_view.search(event.value)
        self.log_view.border_subtitle = f"/{event.value}: {found} match" + ("" if found == 1
                                                                       else "es")
        if not found:
            self.notify(f"no match for {event.value!r}", severity="warning", markup=False)

    def action_next_match(self, step: int) -> None:
        self.log_view.next_match(step)

    def action_info(self) -> None:
        if not self.jobnet:
            self.notify("the run is still loading", severity="warning")
            return
        self.app.push_screen(RunInfoScreen(self.run_id, dict(self.run), self.jobnet))

    def action_job(self, key: str) -> None:
        job = self.graph.selected
        if job is None:
            self.notify("no job selected", severity="warning")
            return
        action, downstream, said, question = JOB_ACTIONS[key]
        run_id = self.run_id
        self.act(f"{said} {job}",
                 lambda c: c.act(action, run_id, job, downstream=downstream),
                 confirm=question.format(job=job, run=run_id) if question else None,
                 done=self._acted)

    def _acted(self, _run: Any) -> None:
        """The answer's job states may be older than the stream's events already
        applied: load again, holding the events that arrive meanwhile."""
        self.reload(jobnet=False)
