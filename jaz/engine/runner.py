"""Drives one `RunMachine` with real threads, executors and a clock.

One driver thread owns the machine. Attempts are started from it; local
processes are waited on in its own select loop (a pidfd each), other attempts in
small worker threads that only post their outcome back. Operator actions from
other threads are posted too (`submit`), so the machine never needs a lock.
"""

from __future__ import annotations

import os
import queue
import selectors
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jaz.engine.clock import Clock
from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome
from jaz.engine.machine import Kill, Launch, Listener, RunMachine, Settings, new_run
from jaz.engine.model import Jobnet, JobnetAction, JobState, RunState
from jaz.engine.records import RunRecord
from jaz.engine.store.base import Store
from jaz.engine.value import Value, field
from jaz.errors import JazError

if TYPE_CHECKING:  # imported where used: `jaz run` starts ~5 ms faster without it
    from concurrent.futures import Future

PID_GRACE = 0.01  # seconds a turn's pids may wait for the next turn's commit


class Context(Value, frozen=False, kw_only=False):
    """What every runner of one process shares (also the runners of sub-jobnets)."""

    store: Store
    settings: Settings
    clock: Clock
    executors: Mapping[str, Executor]
    listener: Listener | None = None
    active: dict[int, Runner] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Runner:
    def __init__(self, ctx: Context, jobnet: Jobnet, run_id: int) -> None:
        self.ctx = ctx
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._executions: dict[str, Execution] = {}
        self._pids: list[tuple[str, int]] = []  # started since the last turn's commit
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # closed when the runner is gone, never earlier: a late stop() must not write
        # into a descriptor number that something else has reused
        weakref.finalize(self, _close_all, self._selector, self._wake_r, self._wake_w)
        # loaded and registered at once: an action applied to the store directly
        # (`Service._act`, under the same lock) is either in what is loaded or posted here
        with ctx.lock:
            self.machine = RunMachine(ctx.store, jobnet, run_id, ctx.settings, ctx.listener)
            ctx.active[run_id] = self

    @property
    def run_id(self) -> int:
        return self.machine.run_id

    def submit(self, fn: Callable[[RunMachine], Any]) -> Future[Any]:
        """Run `fn(machine)` on the driver thread (operator actions)."""
        from concurrent.futures import Future

        fut: Future[Any] = Future()
        self._post(("call", (fn, fut)))
        return fut

    def stop(self, user: str = "system") -> None:
        """Thread-safe and signal-safe request to stop the whole run."""
        self._post(("stop", user))

    def _post(self, event: tuple[str, Any]) -> None:
        self._events.put(event)
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed (run is over)

    def run(self, resume: Callable[[RunMachine], None] | None = None) -> RunRecord:
        """Drive the run until it ends (or is in `error`); return its record."""
        m = self.machine
        store = self.ctx.store
        with self.ctx.lock:
            self.ctx.active[self.run_id] = self
        events: list[tuple[str, Any]] = []
        try:
            with store.batch():
                if resume is not None:
                    resume(m)
                m.begin(self.ctx.clock.now())
            for name, (pgid, stem) in m.adopted.items():
                self._adopt(name, pgid, stem)
            while True:
                # One transaction per turn: the results that came in and the transitions
                # they allow are committed together, before anything is started or killed.
                settled: list[tuple[Future[Any], BaseException | None]] = []
                commands: list[Launch | Kill] = []
                with store.batch():
                    self._record_pids()
                    for kind, payload in events:
                        self._handle(kind, payload, commands, settled)
                    commands += m.step(self.ctx.clock.now())
                events = []
                for fut, error in settled:
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)
                self._dispatch_all(commands)
                if m.finished and not self._executions:
                    # leave only with no action posted: `Service._act` posts under the
                    # same lock, so an action either reaches this loop or finds no runner
                    with self.ctx.lock:
                        if self._events.empty():
                            self.ctx.active.pop(self.run_id, None)
                            return m.run
                    events = self._collect(0.0)
                    continue
                deadline = m.next_deadline()
                if self._pids:
                    events = self._collect(self._timeout(deadline, PID_GRACE))
                    if events:
                        continue  # the next turn's commit records the pids
                    # nothing came back at once: the jobs run a while, and their pids get a
                    # commit of their own (what `jaz status` and `--resume` read first)
                    with store.batch():
                        self._record_pids()
                events = self._collect(self._timeout(deadline))
        finally:
            with self.ctx.lock:
                self.ctx.active.pop(self.run_id, None)
            for key in list(self._selector.get_map().values()):
                if key.data is not None:
                    self._selector.unregister(key.fd)

    def _timeout(self, deadline: datetime | None, cap: float | None = None) -> float | None:
        timeout = None if deadline is None else max(
            0.0, (deadline - self.ctx.clock.now()).total_seconds())
        if cap is not None:
            timeout = cap if timeout is None else min(cap, timeout)
        return timeout

    def _record_pids(self) -> None:
        for name, pid in self._pids:
            self.machine.started(name, pid)
        self._pids = []

    def _collect(self, timeout: float | None) -> list[tuple[str, Any]]:
        """Wait for something to happen; return everything that did."""
        events: list[tuple[str, Any]] = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            name = key.data
            self._selector.unregister(key.fd)
            execution = self._executions.get(name)
            if execution is not None:
                events.append(("done", (name, _outcome(execution))))
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def _handle(self, kind: str, payload: Any, commands: list[Launch | Kill],
                settled: list[tuple[Future[Any], BaseException | None]]) -> None:
        m = self.machine
        now = self.ctx.clock.now()
        if kind == "done":
            name, outcome = payload
            self._executions.pop(name, None)
            m.finished_job(name, outcome, now)
        elif kind == "stop":
            if not m.finished:
                if m.stopping == "operator":
                    # asked twice (Ctrl-C again): a second stop kills without the grace
                    for execution in list(self._executions.values()):
                        execution.stop()
                m.stop_run(now, user=payload)
        elif kind == "call":
            fn, fut = payload
            try:
                result = fn(m)
            except Exception as e:  # handed to the caller's thread
                settled.append((fut, e))
                return
            if isinstance(result, list):
                commands.extend(c for c in result if isinstance(c, Kill | Launch))
            settled.append((fut, None))

    def _dispatch_all(self, commands: list[Launch | Kill]) -> None:
        # The pids go into the next turn's commit when it comes soon (PID_GRACE), not one
        # of their own: `--resume` finds the processes of a crashed `jaz run` by their
        # environment in /proc anyway (`machine.kill_stale`), so a pid need not be
        # durable before the job runs.
        self._pids += [(c.job, pid) for c in commands if (pid := self._dispatch(c)) is not None]

    def _dispatch(self, command: Launch | Kill) -> int | None:
        if isinstance(command, Kill):
            execution = self._executions.get(command.job)
            if execution is not None:
                execution.stop()
            return None
        attempt = command.attempt
        kind = attempt.job.kind
        executor = self.ctx.executors.get(kind)
        if kind == "jobnet":
            executor = JobnetExecutor(self.ctx)
        try:
            if executor is None:
                raise JazError(f"no executor for {kind!r} jobs in this mode")
            execution = executor.start(attempt)
        except JazError as e:
            self._post(("done", (command.job, Outcome(exit_code=None, error=str(e)))))
            return None
        self._executions[command.job] = execution
        fd = execution.fileno()
        if fd is not None:
            self._selector.register(fd, selectors.EVENT_READ, command.job)
        else:
            t = threading.Thread(target=self._wait, args=(command.job, execution), daemon=True,
                                 name=f"jaz-job-{command.job}")
            t.start()
        return execution.pid

    def _adopt(self, name: str, pgid: int, stem: str) -> None:
        """Wait for a job a crashed driver left running, as for one started here."""
        from jaz.engine.executors.local import AdoptedExecution

        execution = AdoptedExecution(pgid, stem, self.ctx.settings.grace)
        self._executions[name] = execution
        fd = execution.fileno()
        if fd is not None:
            self._selector.register(fd, selectors.EVENT_READ, name)
        else:
            threading.Thread(target=self._wait, args=(name, execution), daemon=True,
                             name=f"jaz-job-{name}").start()

    def _wait(self, name: str, execution: Execution) -> None:
        self._post(("done", (name, _outcome(execution))))


def _close_all(selector: selectors.BaseSelector, *fds: int) -> None:
    selector.close()
    for fd in fds:
        os.close(fd)


def _outcome(execution: Execution) -> Outcome:
    try:
        return execution.wait()
    except Exception as e:  # an executor bug must not hang the run
        return Outcome(exit_code=None, error=f"internal error: {e!r}")


class JobnetExecutor(Executor):
    """`jobnet = "name"`: the child runs inline as its own run; its outputs flow out."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def start(self, attempt: Attempt) -> Execution:
        return _JobnetExecution(self.ctx, attempt)


class _JobnetExecution(Execution):
    def __init__(self, ctx: Context, attempt: Attempt) -> None:
        self.ctx = ctx
        self.attempt = attempt
        self._runner: Runner | None = None
        self._stopped = threading.Event()

    def wait(self) -> Outcome:
        from jaz.engine.loader import load_file, resolve_jobnet

        a = self.attempt
        action = a.job.action
        assert isinstance(action, JobnetAction)
        try:
            child = load_file(resolve_jobnet(action.name, a.base_dir))
        except JazError as e:
            return Outcome(exit_code=None, error=str(e))
        store = self.ctx.store
        now = self.ctx.clock.now()
        previous = [r for r in store.list_runs(parent_run=a.run_id)
                    if r.parent_job == a.job.name]
        resume = None
        if previous and previous[0].status != RunState.SUCCEEDED and \
                previous[0].version == child.hash:
            run_id = previous[0].id

            def resume(m: RunMachine) -> None:
                m.resume(self.ctx.clock.now())
        else:
            # the variables the job sees flow in; jaz's own and the job's env do not
            params = {k: v for k, v in a.env.items() if not k.startswith("JAZ_")
                      and k not in ("JOB_EXIT_CD", "STD_OUT", "STD_ERR") and k not in a.job.env}
            run_id = new_run(store, child, now, params=params, trigger="jobnet",
                             parent=(a.run_id, a.job.name))
        self._runner = Runner(self.ctx, child, run_id)
        if self._stopped.is_set():  # stop() came before the runner existed
            self._runner.stop()
        record = self._runner.run(resume=resume)
        outputs: dict[str, str] = {}
        for name in child.order():
            job = store.get_job(run_id, name)
            if job.status == JobState.SUCCEEDED:
                outputs.update(job.outputs)
        if record.status == RunState.SUCCEEDED:
            return Outcome(exit_code=0, outputs=outputs,
                           stdout_tail=f"jobnet {child.name}: run {run_id} succeeded\n")
        if record.status == RunState.STOPPED:
            return Outcome(exit_code=None, stopped=True, error=f"child run {run_id} stopped")
        return Outcome(exit_code=1, outputs=outputs,
                       error=f"child run {run_id} ({child.name}) ended {record.status}: "
                             f"{record.message}")

    def stop(self) -> None:
        self._stopped.set()
        if self._runner is not None:
            self._runner.stop()
