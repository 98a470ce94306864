"""Drives one `RunMachine` with real threads, executors and a clock.

One driver thread owns the machine. Attempts are started from it; local
processes are waited on in its own select loop (a pidfd each), other attempts in
small worker threads that only post their outcome back. Operator actions from
other threads are posted too (`submit`), so the machine never needs a lock.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jaz.engine.clock import Clock
from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome
from jaz.engine.log import logger
from jaz.engine.machine import Kill, Launch, Listener, RunMachine, Settings, new_run
from jaz.engine.model import (
    Jobnet,
    JobnetAction,
    JobState,
    PluginAction,
    RebootAction,
    RunState,
    TransferAction,
    WaitFileAction,
)
from jaz.engine.records import RunRecord
from jaz.engine.store.base import Store
from jaz.errors import JazError
from jaz.value import Value, field

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
    # what runs `run` jobs on hosts other than "local" (jaz/hosts: agents), given by the
    # caller so that the engine imports nothing of the network
    remote: Executor | None = None
    active: dict[int, Runner] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # runs with an armed runner (made ahead of their start): True once an action was
    # applied to the run in the store since its runner loaded it (`Service._act`)
    armed: dict[int, bool] = field(default_factory=dict)


class Loop:
    """What runners wait on: one selector, with a wake-up pipe, for the processes of one
    runner (`Runner.run`) or of many on one thread (`Driver`). Executions whose process
    has ended are keyed by (runner, job); runners with posted events queue in `posted`."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.posted: queue.SimpleQueue[Runner] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        # closed when the loop is gone, never earlier: a late stop() must not write
        # into a descriptor number that something else has reused
        weakref.finalize(self, _close_all, self.selector, self._wake_r, self._wake_w)

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed (run is over)

    def drain(self) -> set[Runner]:
        """The runners that had events posted since the last look."""
        runners: set[Runner] = set()
        while not self.posted.empty():   # (one reader: not empty, then get will not wait)
            runners.add(self.posted.get_nowait())
        return runners

    def wait(self, timeout: float | None) -> list[tuple[Runner, str]]:
        """Wait up to `timeout` seconds for a process to end or a wake-up; the jobs whose
        process ended (no longer watched)."""
        ended: list[tuple[Runner, str]] = []
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            self.selector.unregister(key.fd)
            ended.append(key.data)
        return ended


class Runner:
    """One run's machine, turned by one thread at a time: its own (`run`) or a `Driver`'s."""

    def __init__(self, ctx: Context, jobnet: Jobnet, run_id: int,
                 loop: Loop | None = None, *, armed: bool = False,
                 if_running: bool = False) -> None:
        self.ctx = ctx
        self._loop = loop or Loop()
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._executions: dict[str, Execution] = {}
        # started since the last turn's commit, their pid not recorded yet
        self._pids: list[tuple[str, Execution]] = []
        self.due: float | None = None   # monotonic time of the next turn without events
        self._commands: list[Launch | Kill] = []   # a turn's, from `prepare` to `act`
        self._settled: list[tuple[Future[Any], BaseException | None]] = []
        self._adopting = False
        # loaded and registered at once: an action applied to the store directly
        # (`Service._act`, under the same lock) is either in what is loaded or posted here.
        # An armed runner is made ahead of its run's start and registered when it takes
        # the run (`enlist`); an action applied meanwhile marks it stale instead.
        # With `if_running`, the runner takes the run only if it loads running and no
        # other runner has it (`taken`): one stopped since the caller looked at it stays
        # stopped, and an action never goes to a runner that does not drive the run.
        self.taken = True
        with ctx.lock:
            self.machine = RunMachine(ctx.store, jobnet, run_id, ctx.settings, ctx.listener)
            if armed:
                ctx.armed[run_id] = False
            elif if_running and (self.machine.run.status != RunState.RUNNING
                                 or run_id in ctx.active):
                self.taken = False
            else:
                ctx.active[run_id] = self

    def enlist(self, run: RunRecord) -> bool:
        """An armed runner takes its run, now started (`run`, as just read): False, and
        disarmed, when an action changed the run's jobs since it was loaded or another
        runner has the run; a new runner must load it then."""
        with self.ctx.lock:
            stale = self.ctx.armed.pop(self.run_id, True)
            if stale or self.run_id in self.ctx.active:
                return False
            self.machine.run = run
            self.ctx.active[self.run_id] = self
            return True

    def disarm(self) -> None:
        """An armed runner that will not take its run (it was held, skipped, missed...):
        forgotten, with the log folder made for it if still empty."""
        with self.ctx.lock:   # a runner that takes the run registers under this lock
            self.ctx.armed.pop(self.run_id, None)
            if self.run_id not in self.ctx.active:
                try:
                    os.rmdir(self.machine.log_folder)
                except OSError:
                    pass   # not made, or a job's logs are in it

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
        self._loop.posted.put(self)
        self._loop.wake()

    def run(self, resume: Callable[[RunMachine], None] | None = None) -> RunRecord:
        """Drive the run on this thread until it ends (or is in `error`); its record."""
        try:
            self.begin(resume)
            events: list[tuple[str, Any]] = []
            while not self.turn(events):
                ended = self._loop.wait(self.wait_time())
                self._loop.drain()   # only this runner posts to its own loop
                events = self._ended(ended) + self.posted()
            return self.machine.run
        finally:
            self.leave()

    def begin(self, resume: Callable[[RunMachine], None] | None = None) -> None:
        """The run's first commit (resumed first if `resume`), and its adopted jobs."""
        with self.ctx.lock:
            self.ctx.active[self.run_id] = self
        with self.ctx.store.batch():
            self.prepare([], begin=True, resume=resume)
        self._begun()

    def turn(self, events: list[tuple[str, Any]]) -> bool:
        """One turn in a transaction of its own: `prepare` then `act`."""
        with self.ctx.store.batch():
            self.prepare(events)
        return self.act()

    def prepare(self, events: list[tuple[str, Any]], *, begin: bool = False,
                resume: Callable[[RunMachine], None] | None = None) -> None:
        """A turn's changes, in the caller's transaction: the run begun (resumed first if
        `resume`) with `begin`, the pids of the last turn's processes, `events` handled,
        and the machine stepped. Nothing is started or killed before the commit (`act`):
        the results that came in and the transitions they allow are durable first.
        The pids ride on the next turn's commit (or get one to themselves when nothing
        came back within PID_GRACE: what `jaz status` and `--resume` read)."""
        m = self.machine
        if begin:   # registered in `ctx.active` when made (never under the store's lock)
            if resume is not None:
                resume(m)
            m.begin(self.ctx.clock.now())
            self._adopting = True
            # actions posted since the runner was registered (an operator's stop) come
            # before its first jobs start, not in the turn after
            events = [*events, *self.posted()]
        self._record_pids()
        for kind, payload in events:
            self._handle(kind, payload, self._commands, self._settled)
        self._commands += m.step(self.ctx.clock.now())   # after the results' own times

    def act(self) -> bool:
        """After the turn's commit: answer the actions, start and kill what the machine
        said. True when the run is over and has left `ctx.active` (no action posted
        after its last turn)."""
        m = self.machine
        settled, self._settled = self._settled, []
        commands, self._commands = self._commands, []
        for fut, error in settled:
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        if self._adopting:
            self._begun()
        self._dispatch_all(commands)
        if m.finished and not self._executions:
            # leave only with no action posted: `Service._act` posts under the same
            # lock, so an action either reaches this runner or finds no runner
            with self.ctx.lock:
                if self._events.empty():
                    self.ctx.active.pop(self.run_id, None)
                    self.due = None
                    return True
            self.due = time.monotonic()   # take the posted action at once
            return False
        wait = self._timeout(m.next_deadline(), PID_GRACE if self._pids else None)
        self.due = None if wait is None else time.monotonic() + wait
        return False

    def fail(self, error: BaseException) -> None:
        """The turn's transaction failed: the actions it took get the error."""
        settled, self._settled, self._commands = self._settled, [], []
        for fut, _ in settled:
            fut.set_exception(error)

    def _begun(self) -> None:
        self._adopting = False
        for name, (pgid, stem) in self.machine.adopted.items():
            self._adopt(name, pgid, stem)
        for name, (host, stem) in self.machine.adopted_remote.items():
            remote = self.ctx.remote
            execution = None if remote is None else remote.adopt(
                self.run_id, self.machine.jobnet.jobs[name], host, stem)
            if execution is None:
                self._post(("done", (name, Outcome(exit_code=None, error=(
                    f"was running on host {host!r} when interrupted, and this process knows "
                    "no hosts to ask for its result")))))
            else:
                self._watch(name, execution)

    def wait_time(self) -> float | None:
        """Seconds until this runner's next turn without events (None: none)."""
        return None if self.due is None else max(0.0, self.due - time.monotonic())

    def posted(self) -> list[tuple[str, Any]]:
        """The events posted to this runner since it last looked."""
        events: list[tuple[str, Any]] = []
        while not self._events.empty():   # (one reader: as in `drain`)
            events.append(self._events.get_nowait())
        return events

    def _ended(self, ended: list[tuple[Runner, str]]) -> list[tuple[str, Any]]:
        """Events for this runner's jobs among `ended` (from `Loop.wait`)."""
        return [event for runner, name in ended if (event := runner.ended(name)) is not None]

    def ended(self, name: str) -> tuple[str, Any] | None:
        """The outcome of job `name`, whose process has ended."""
        execution = self._executions.get(name)
        return None if execution is None else ("done", (name, _outcome(execution)))

    def leave(self) -> None:
        """Forget the run: out of `ctx.active`, its processes no longer watched."""
        with self.ctx.lock:
            if self.ctx.active.get(self.run_id) is self:
                self.ctx.active.pop(self.run_id)
        # its own processes only: a driver's selector watches every run's, and a walk
        # over all of them at each run's end cost O(runs) per run
        watched = self._loop.selector.get_map()
        for name, execution in self._executions.items():
            fd = execution.fileno()
            key = None if fd is None else watched.get(fd)
            if key is not None and key.data == (self, name):
                self._loop.selector.unregister(key.fd)

    def _timeout(self, deadline: datetime | None, cap: float | None = None) -> float | None:
        timeout = None if deadline is None else max(
            0.0, (deadline - self.ctx.clock.now()).total_seconds())
        if cap is not None:
            timeout = cap if timeout is None else min(cap, timeout)
        return timeout

    def _record_pids(self) -> None:
        """The pids of the processes started since the last commit; one whose start is
        still to be reported (`Execution.report`) waits for the next turn."""
        left: list[tuple[str, Execution]] = []
        for name, execution in self._pids:
            if execution.pid is not None:
                self.machine.started(name, execution.pid)
            elif self._executions.get(name) is execution:
                left.append((name, execution))
        self._pids = left

    def _handle(self, kind: str, payload: Any, commands: list[Launch | Kill],
                settled: list[tuple[Future[Any], BaseException | None]]) -> None:
        m = self.machine
        now = self.ctx.clock.now()
        if kind == "ended":   # reported by its execution: its outcome is ready
            kind, payload = self.ended(payload) or ("", None)
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
        self._pids += [(c.job, execution) for c in commands
                       if (execution := self._dispatch(c)) is not None]

    def _dispatch(self, command: Launch | Kill) -> Execution | None:
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
        host = remote_host(attempt)
        if host is not None:
            executor = self.ctx.remote
        try:
            if executor is None and host is not None:
                raise JazError(f"host {host!r}: no hosts are known in this mode "
                               "(see docs/agent.md for the hosts file)")
            if executor is None and isinstance(attempt.job.action, PluginAction):
                from jaz.engine.executors.plugins import executor_for  # another package's

                executor = executor_for(kind)
            if executor is None:
                raise JazError(f"no executor for {kind!r} jobs in this mode")
            execution = executor.start(attempt)
        except JazError as e:
            self._post(("done", (command.job, Outcome(exit_code=None, error=str(e)))))
            return None
        self._watch(command.job, execution)
        return execution

    def _adopt(self, name: str, pgid: int, stem: str) -> None:
        """Wait for a job a crashed driver left running, as for one started here."""
        from jaz.engine.executors.local import AdoptedExecution

        self._watch(name, AdoptedExecution(pgid, stem, self.ctx.settings.grace))

    def _watch(self, name: str, execution: Execution) -> None:
        """Wait for `execution` in the loop (a pidfd), through what it reports, or else
        in a thread of its own."""
        self._executions[name] = execution
        fd = execution.fileno()
        if fd is not None:
            self._loop.selector.register(fd, selectors.EVENT_READ, (self, name))
        elif execution.report(lambda: self._post(("ended", name))):
            pass
        else:
            threading.Thread(target=self._wait, args=(name, execution), daemon=True,
                             name=f"jaz-job-{name}").start()

    def _wait(self, name: str, execution: Execution) -> None:
        self._post(("done", (name, _outcome(execution))))


class Driver:
    """Drives many runs on one thread (the server's runs): one `Loop` waits for all
    their processes and posted actions, and each run takes its turns as `Runner.run`
    would take them. A thread per run cost ~1 ms more CPU per run under the GIL, and
    runs that started together waited on each other's threads.

    `add(run_id, make)` asks for a run to be driven: on the driver thread, unless that
    run is driven already, `make(loop)` gives its runner and how to resume it (or None:
    nothing to drive), and `ended(run)` is called with the run's last record once its
    runner has left. A run whose turn fails (a bug) is dropped, logged to "jaz.engine"
    and told to `failed(run_id)`; a failed pass is logged the same way.
    """

    def __init__(self, store: Store, ended: Callable[[RunRecord], None],
                 failed: Callable[[int], None] | None = None) -> None:
        self.loop = Loop()
        self._store = store
        self._ended = ended
        self._failed = failed
        self._new: queue.SimpleQueue[tuple[int, Make]] = queue.SimpleQueue()
        self._runners: dict[int, Runner] = {}
        self._pending: dict[int, int] = {}
        self._dues: list[tuple[float, int, Runner]] = []   # a heap of (due, order, runner)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._turning = False   # in a pass's turns (`settle`)
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._serve, name="driver", daemon=True)
        self._thread.start()

    def add(self, *runs: tuple[int, Make]) -> None:
        """Ask for runs to be driven, each as (run id, make). Runs that start together
        (a schedule's burst) come in one call: one wake-up, and the driver's next pass
        sees them all, not the first few while the caller still adds the rest."""
        with self._lock:
            for run_id, _ in runs:
                self._pending[run_id] = self._pending.get(run_id, 0) + 1
        for run in runs:
            self._new.put(run)
        self.loop.wake()

    def running(self) -> list[int]:
        """The runs driven or about to be."""
        with self._lock:
            return list(self._runners.keys() | self._pending.keys())

    def settle(self, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, until every run asked for so far has taken its
        first turn (and the pass that took it is over); whether it had."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending and not self._turning,
                                       timeout)

    def _serve(self) -> None:
        while True:
            try:
                self._pass()
            except Exception:   # never leave the runs undriven
                logger().exception("the driver's pass failed")

    def _pass(self) -> None:
        """Wait for something to do, then take every turn that is due."""
        ended = self.loop.wait(self._timeout())
        turns: dict[Runner, list[tuple[str, Any]]] = {}
        for runner, name in ended:
            event = runner.ended(name)
            if event is not None:
                turns.setdefault(runner, []).append(event)
        for runner in self.loop.drain():
            turns.setdefault(runner, [])
        new: list[tuple[int, Make]] = []
        while not self._new.empty():
            new.append(self._new.get_nowait())
        now = time.monotonic()
        while self._dues and self._dues[0][0] <= now:
            due, _, runner = heapq.heappop(self._dues)
            if runner.due == due:
                turns.setdefault(runner, [])
        with self._lock:
            self._turning = True
        try:
            self._turns(new, turns)
        finally:
            with self._idle:
                self._turning = False
                self._idle.notify_all()

    def _turns(self, new: list[tuple[int, Make]],
               turns: dict[Runner, list[tuple[str, Any]]]) -> None:
        """The turns of this pass, new runs' first ones included, in few transactions: a
        commit per round rather than per run's turn. A burst of new runs (a schedule's
        fires) begins in rounds of 1, 2, 4... runs, each run's runner made in its round:
        the first job starts after one run's turn, not after all of them, and its
        process (in the spawner) starts while the later rounds are prepared. The other
        runs' turns (processes ended, actions) come with the last round. A turn that
        fails drops its run (a restart resumes it) and leaves the others be."""
        size = 1
        while True:
            fresh = self._make_new(new[:size])
            new = new[size:]
            if new and not fresh:
                continue   # nothing to drive among these: on to the next ones
            self._round(fresh, {} if new else turns)
            if not new:
                return
            size *= 2

    def _round(self, fresh: list[tuple[Runner, Callable[[RunMachine], None] | None]],
               turns: dict[Runner, list[tuple[str, Any]]]) -> None:
        """Turns in one transaction, then what they do. A run whose turn fails leaves
        after the transaction: leaving takes the context's lock, which is never taken
        under the store's (`Service._act` takes them the other way round)."""
        taking: list[Runner] = []
        failed: list[Runner] = []
        store = self._store
        try:
            with store.batch():
                for runner, resume in fresh:
                    if self._prepared(runner, [], failed, resume, begin=True):
                        taking.append(runner)
                for runner, events in turns.items():
                    if self._runners.get(runner.run_id) is runner \
                            and self._prepared(runner, events + runner.posted(), failed):
                        taking.append(runner)
        except Exception as error:   # the commit failed: none of these turns happened
            logger().exception("the driver's commit failed (%s runs dropped)", len(taking))
            for runner in taking:
                runner.fail(error)
                self._leave(runner)
                self._dropped(runner.run_id, logged=True)
            return
        finally:
            for runner in failed:
                self._leave(runner)
        for runner in taking:
            try:
                over = runner.act()
            except Exception:
                self._dropped(runner.run_id)
                over = True
            if over:
                self._leave(runner)
            elif runner.due is not None:
                heapq.heappush(self._dues, (runner.due, next(self._order), runner))

    def _prepared(self, runner: Runner, events: list[tuple[str, Any]],
                  failed: list[Runner], resume: Callable[[RunMachine], None] | None = None,
                  *, begin: bool = False) -> bool:
        """Prepare a turn; False (and the runner in `failed`, to leave) if it fails."""
        try:
            runner.prepare(events, begin=begin, resume=resume)
            return True
        except Exception as error:   # one run's failure must not stop the others
            self._dropped(runner.run_id)
            runner.fail(error)
            failed.append(runner)
            return False

    def _timeout(self) -> float | None:
        """Seconds until the next runner's turn without events: the first due in the
        heap that is still its runner's (a turn since has set another, or none)."""
        while self._dues:
            due, _, runner = self._dues[0]
            if runner.due == due and self._runners.get(runner.run_id) is runner:
                return max(0.0, due - time.monotonic())
            heapq.heappop(self._dues)
        return None

    def _make_new(self, asked: Sequence[tuple[int, Make]]
                  ) -> list[tuple[Runner, Callable[[RunMachine], None] | None]]:
        """The runners of runs asked for, not begun yet (none for a run driven already
        or with nothing to drive)."""
        made: list[tuple[Runner, Callable[[RunMachine], None] | None]] = []
        for run_id, make in asked:
            try:
                if run_id in self._runners:
                    continue   # driven already: its runner takes what reopened it
                new = make(self.loop)
                if new is None:
                    continue
                with self._lock:
                    self._runners[run_id] = new[0]
                made.append(new)
            except Exception:
                self._dropped(run_id)
            finally:
                with self._lock:
                    left = self._pending[run_id] - 1
                    if left:
                        self._pending[run_id] = left
                    else:
                        del self._pending[run_id]
        return made

    def _leave(self, runner: Runner) -> None:
        runner.leave()
        with self._lock:
            if self._runners.get(runner.run_id) is runner:
                del self._runners[runner.run_id]
        try:
            self._ended(runner.machine.run)
        except Exception:
            self._dropped(runner.run_id)

    def _dropped(self, run_id: int, *, logged: bool = False) -> None:
        """A run's turn (or what follows it) failed: logged with the error at hand."""
        if not logged:
            logger().exception("run %s: the run's driver failed", run_id)
        if self._failed is not None:
            self._failed(run_id)


Make = Callable[[Loop], "tuple[Runner, Callable[[RunMachine], None] | None] | None"]


def _close_all(selector: selectors.BaseSelector, *fds: int) -> None:
    selector.close()
    for fd in fds:
        os.close(fd)


def remote_host(attempt: Attempt) -> str | None:
    """The host other than "local" an attempt runs on (`run` jobs: `host`, or `hosts` for
    one instance on each; `wait_file`, `reboot`: their own `host`; `transfer`: a host
    of either end), or None: here."""
    action = attempt.job.action
    if isinstance(action, TransferAction):
        from jaz.engine.loader import split_host_path

        far = [h for h in (split_host_path(action.source)[0], split_host_path(action.dest)[0])
               if h != "local"]
        return far[0] if far else None
    if isinstance(action, WaitFileAction | RebootAction):
        return action.host if action.host not in (None, "local") else None
    job = attempt.job
    if job.kind == "run" and job.hosts and set(job.hosts) != {"local"}:
        return ", ".join(job.hosts)   # fan-out: one instance on each
    if job.kind == "run" and attempt.host != "local":
        return attempt.host
    return None


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
