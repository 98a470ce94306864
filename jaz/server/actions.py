"""The actions only a server can carry out (SPEC §1.1): `start = "name"` (JAZ's task:
start another jobnet as a run of its own, without waiting) and `release = "jobnet/job"`
(release a held job in this run, or in the running runs of another jobnet).

They are executors like any other; their work happens in `wait`, on a worker thread,
because releasing a job of the very run that asks goes through that run's driver.
They see the server through `Operations`, the few things of `Core` they use: the
core builds them, so they do not import it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome
from jaz.engine.model import JobState, ReleaseAction, RunState, StartAction
from jaz.engine.service import Service
from jaz.errors import JazError

WAIT_FOR_HELD = 30.0   # seconds a cross-run release waits for its job to be held


class Operations(Protocol):
    """What the server's own actions need of it (`jaz.server.core.Core` is one)."""

    service: Service
    closing: threading.Event

    def start(self, name: str, *, trigger: str, user: str) -> int: ...

    def act(self, action: str, run_id: int, job: str | None, *, user: str) -> Any: ...


class _Deferred(Execution):
    def __init__(self, work: Callable[[], Outcome]) -> None:
        self._work = work

    def wait(self) -> Outcome:
        try:
            return self._work()
        except JazError as e:
            return Outcome(exit_code=None, error=e.message, stderr_tail=e.message + "\n")

    def stop(self) -> None:
        pass   # both actions take a moment; there is nothing to interrupt


class StartExecutor(Executor):
    def __init__(self, core: Operations) -> None:
        self.core = core

    def start(self, attempt: Attempt) -> Execution:
        action = attempt.job.action
        assert isinstance(action, StartAction)

        def work() -> Outcome:
            run_id = self.core.start(action.name, trigger="task",
                                     user=f"{attempt.jobnet}/{attempt.job.name}")
            line = f"started {action.name} as run {run_id}\n"
            return Outcome(exit_code=0, outputs={"RUN_ID": str(run_id)}, stdout_tail=line)

        return _Deferred(work)


class ReleaseExecutor(Executor):
    def __init__(self, core: Operations) -> None:
        self.core = core

    def start(self, attempt: Attempt) -> Execution:
        action = attempt.job.action
        assert isinstance(action, ReleaseAction)
        jobnet, sep, job = action.target.rpartition("/")

        def work() -> Outcome:
            user = f"{attempt.jobnet}/{attempt.job.name}"
            if not sep:   # a job of this very run
                self.core.act("release", attempt.run_id, job, user=user)
                return Outcome(exit_code=0, outputs={"RELEASED": "1"},
                               stdout_tail=f"released {job} in run {attempt.run_id}\n")
            released: list[int] = []
            deadline = time.monotonic() + WAIT_FOR_HELD
            while not released and time.monotonic() < deadline and \
                    not self.core.closing.is_set():
                for run in self.core.service.runs(jobnet=jobnet, status=[RunState.RUNNING]):
                    held = {j.name for j in self.core.service.jobs(run.id)
                            if j.status == JobState.HELD}
                    if job in held:
                        self.core.act("release", run.id, job, user=user)
                        released.append(run.id)
                if not released:   # a run just started may not have held it yet
                    self.core.closing.wait(0.05)
            if not released:
                message = f"no running run of {jobnet!r} has {job!r} held"
                return Outcome(exit_code=None, error=message, stderr_tail=message + "\n")
            return Outcome(exit_code=0, outputs={"RELEASED": str(len(released))},
                           stdout_tail=f"released {job} in run(s) "
                                       f"{', '.join(map(str, released))}\n")

        return _Deferred(work)
