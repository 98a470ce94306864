"""The run state machine: the flow rules of SPEC §2, with time as an argument.

`RunMachine.step(now)` looks at the run as the store has it, makes every
transition that is due, and returns what must happen outside (start an attempt,
stop one). `finished(job, outcome, now)` feeds a result back. Each transition is
written to the store before it is returned, so a crash at any point leaves a
state `resume` can continue from. No threads, no clock, no processes here: the
driver (`runner.py`) supplies those, and the tests drive this class directly.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaz.engine.executors.base import Attempt, Outcome, redact
from jaz.engine.model import (
    Job,
    Jobnet,
    JobState,
    OnFailure,
    OnTimeout,
    RunState,
    Secret,
    SetAction,
    SleepAction,
    WaitUntilAction,
)
from jaz.engine.records import EventRecord, JobRecord, RunRecord, evolve
from jaz.engine.secrets import Secrets
from jaz.engine.store.base import Store
from jaz.errors import JazError, StateError
from jaz.value import Value, field

if TYPE_CHECKING:  # imported where used: jobnets without expressions start faster
    from jaz.engine import expr
    from jaz.engine.calendars import Calendar, CalendarLibrary

STD_CAP = 1024  # bytes of STD_OUT / STD_ERR handed to the next job
INSTANT = (SetAction,)
TIMERS = (SleepAction, WaitUntilAction)

Listener = Callable[[str, RunRecord | JobRecord], None]


class Launch(Value, kw_only=False):
    """Start this attempt on an executor."""

    job: str
    attempt: Attempt


class Kill(Value, kw_only=False):
    """Stop the running attempt of this job."""

    job: str
    reason: str


Command = Launch | Kill


class Settings(Value, frozen=False):
    """How a machine behaves in its host process (`jaz run` or the server)."""

    log_dir: Path
    secrets: Secrets = field(default_factory=lambda: Secrets(None))
    parallel: int = 16
    queues: Mapping[str, int] = field(default_factory=dict)
    wait_for_operator: bool = False
    tz: tzinfo | None = None
    grace: float = 5.0
    functions: Mapping[str, Callable[..., expr.Value]] = field(default_factory=dict)
    calendars: CalendarLibrary | None = None   # the server's; else looked up by the jobnet
    # on resume, jobs whose processes still run are waited for instead of run again (the
    # server: its local jobs record their exit status); `jaz run --resume` kills them
    adopt_running: bool = False


class RunMachine:
    def __init__(self, store: Store, jobnet: Jobnet, run_id: int, settings: Settings,
                 listener: Listener | None = None) -> None:
        self.store = store
        self.jobnet = jobnet
        self.settings = settings
        self.listener = listener
        self._calendars: CalendarLibrary | None = None
        # jobs found still running on resume, waited for: name -> (process group, stem)
        self.adopted: dict[str, tuple[int, str]] = {}
        # jobs running on remote hosts when the run was interrupted: job -> (host, stem);
        # their host keeps them and their results (an agent, an SSH host's job folder), so
        # they are waited for, never rerun
        self.adopted_remote: dict[str, tuple[str, str]] = {}
        self.run = store.get_run(run_id)
        self.jobs: dict[str, JobRecord] = {j.name: j for j in store.get_jobs(run_id)}
        self.order = jobnet.order()
        self._index = {name: i for i, name in enumerate(self.order)}
        # names by state, kept in step with self.jobs, so a turn looks only at the jobs
        # that can move instead of scanning the whole jobnet
        self._by_state: dict[JobState, set[str]] = {s: set() for s in JobState}
        for name, rec in self.jobs.items():
            self._by_state[rec.status].add(name)
        # pending jobs worth a look: those whose needs moved since they were last looked at
        self._children = jobnet.children()
        self._candidates: set[str] = set(self._by_state[JobState.PENDING])
        # ready jobs waiting for a retry delay or a repeat interval
        self._delayed: set[str] = {n for n in self._by_state[JobState.READY]
                                   if self.jobs[n].not_before is not None}
        self._no_slot = {n for n, job in jobnet.jobs.items() if not _uses_slot(job)}
        # jobs with outputs: while there are none, a job's variables are the params alone
        self._with_outputs = {n for n, rec in self.jobs.items() if rec.outputs}
        self.stopping: str | None = None  # "operator" | "failure" | "timeout"
        self.stop_reason = ""   # the message of a run stopped by `stop_run`, if given
        self.killing: set[str] = set()
        # jobs started in the current step: an instant job (set, a zero sleep) that repeats
        # or retries with no delay starts again in the next step, so `step` always returns
        self.started_now: set[str] = set()
        self.secret_values: set[str] = set()
        self._logs_made = False
        self._scheduled: str | None = None  # $JAZ_SCHEDULED_TIME, the same for every job
        self._log_folder: str | None = None  # settings.log_dir / run id

    # ------------------------------------------------------------ records

    @property
    def run_id(self) -> int:
        return self.run.id

    def _job(self, name: str, **changes: Any) -> JobRecord:
        if "message" in changes:
            changes["message"] = self.redact(changes["message"])
        self.store.update_job(self.run_id, name, **changes)
        before = self.jobs[name].status
        rec = self.jobs[name] = evolve(self.jobs[name], **changes)
        if "outputs" in changes:
            if rec.outputs:
                self._with_outputs.add(name)
            else:
                self._with_outputs.discard(name)
        if "not_before" in changes or "status" in changes:
            if rec.status == JobState.READY and rec.not_before is not None:
                self._delayed.add(name)
            else:
                self._delayed.discard(name)
        if rec.status != before:
            self._by_state[before].discard(name)
            self._by_state[rec.status].add(name)
            if rec.status == JobState.PENDING:
                self._candidates.add(name)
            elif rec.status.finished:
                self._candidates.update(self._children[name])
        if self.listener:
            self.listener("job", rec)
        return rec

    def _run(self, **changes: Any) -> RunRecord:
        self.run = self.store.update_run(self.run_id, **changes)
        if self.listener:
            self.listener("run", self.run)
        return self.run

    def event(self, kind: str, now: datetime, *, job: str | None = None, user: str = "system",
              detail: str = "") -> None:
        self.store.add_event(EventRecord(at=now, kind=kind, run_id=self.run_id,
                                         jobnet=self.jobnet.name, job=job, user=user,
                                         detail=self.redact(detail)))

    def redact(self, text: str) -> str:
        if not self.secret_values:
            return text
        return redact(text, sorted(self.secret_values, key=len, reverse=True))

    # ------------------------------------------------------------ lifecycle

    def begin(self, now: datetime) -> None:
        if self.run.status != RunState.RUNNING or self.run.started_at is None:
            first = self.run.started_at is None
            self._run(status=RunState.RUNNING, started_at=self.run.started_at or now,
                      ended_at=None, message="")
            if first:
                self.event("run_started", now)

    @property
    def finished(self) -> bool:
        return self.run.status.finished or self.run.status == RunState.ERROR

    def running(self) -> list[str]:
        return self._in(JobState.RUNNING)

    def _in(self, state: JobState) -> list[str]:
        """The jobs in one state, in topological order."""
        return sorted(self._by_state[state], key=self._index.__getitem__)

    def step(self, now: datetime) -> list[Command]:
        """Make every due transition; return what the driver must do."""
        if self.finished:
            return []
        commands: list[Command] = []
        self.started_now.clear()
        self._check_timeouts(now, commands)
        if self.stopping is None:
            while self._advance_pending(now) | self._launch(now, commands):
                pass
        if self.stopping is not None:
            for name in self.running():
                if name not in self.killing and self.jobnet.jobs[name].kind not in (
                        "sleep", "wait_until"):
                    self.killing.add(name)
                    commands.append(Kill(name, self.stopping))
                elif isinstance(self.jobnet.jobs[name].action, TIMERS):
                    self._job(name, status=JobState.STOPPED, ended_at=now,
                              message=f"stopped ({self.stopping})")
        self._conclude(now)
        return commands

    def next_deadline(self) -> datetime | None:
        """The next instant at which `step` has something to do without any event."""
        times: list[datetime] = []
        if self.finished:
            return None
        if (self.jobnet.timeout is not None and self.run.started_at is not None
                and self.stopping is None):
            times.append(self.run.started_at + timedelta(seconds=self.jobnet.timeout))
        for name in self._delayed:
            not_before = self.jobs[name].not_before
            if not_before is not None:
                times.append(not_before)
        for name in self._by_state[JobState.RUNNING]:
            rec = self.jobs[name]
            job = self.jobnet.jobs[name]
            if rec.started_at is not None:
                if job.timeout is not None and not rec.timed_out:
                    times.append(rec.started_at + timedelta(seconds=job.timeout))
                end = self._timer_end(job, rec)
                if end is not None:
                    times.append(end)
        return min(times) if times else None

    # ------------------------------------------------------------ flow

    def _advance_pending(self, now: datetime) -> bool:
        changed = False
        looking = sorted(self._candidates, key=self._index.__getitem__)
        self._candidates.clear()
        for name in looking:
            rec = self.jobs[name]
            if rec.status != JobState.PENDING:
                continue
            job = self.jobnet.jobs[name]
            needs = [self.jobs[n] for n in job.needs]
            if not all(n.status.finished for n in needs):
                continue
            if not all(n.status.passes for n in needs):
                continue  # halted behind a failure: waits for an operator
            changed = True
            if needs and all(n.status == JobState.BYPASSED for n in needs):
                self._job(name, status=JobState.BYPASSED, ended_at=now,
                          message="every job it needs was bypassed")
                continue
            if not job.enabled:
                self._job(name, status=JobState.SKIPPED, ended_at=now, message="disabled")
                continue
            if job.if_ is not None:
                from jaz.engine import expr

                try:
                    taken = expr.parse(job.if_).truth(self.scope(name, now))
                except expr.ExprError as e:
                    self._fail(name, now, f"if: {e}")
                    continue
                if not taken:
                    self._job(name, status=JobState.BYPASSED, ended_at=now,
                              message=f"if {job.if_!r} was false")
                    continue
            if job.hold and not rec.message.startswith("released"):
                self._job(name, status=JobState.HELD, message="held (hold = true)")
                continue
            self._job(name, status=JobState.READY)
        return changed

    def _slots(self) -> tuple[int, dict[str, int]]:
        used = 0
        per_queue: dict[str, int] = {}
        for name in self.running():
            job = self.jobnet.jobs[name]
            if _uses_slot(job):
                used += 1
                if job.queue:
                    per_queue[job.queue] = per_queue.get(job.queue, 0) + 1
        return used, per_queue

    def _launch(self, now: datetime, commands: list[Command]) -> bool:
        changed = False
        used, per_queue = self._slots()
        ready = self._in(JobState.READY)
        if used >= self.settings.parallel:  # only jobs that take no slot can start
            ready = [n for n in ready if n in self._no_slot]
        for name in ready:
            if used >= self.settings.parallel and name not in self._no_slot:
                continue  # no slot left for it (a fan-out would look at all of them)
            rec = self.jobs[name]
            if rec.status != JobState.READY:
                continue
            if name in self.started_now or (rec.not_before is not None and rec.not_before > now):
                continue
            job = self.jobnet.jobs[name]
            if _uses_slot(job):
                if used >= self.settings.parallel:
                    continue
                limit = self.settings.queues.get(job.queue or "")
                if job.queue and limit is not None and per_queue.get(job.queue, 0) >= limit:
                    continue
            attempt_no = rec.attempts + 1
            self.started_now.add(name)
            rec = self._job(name, status=JobState.RUNNING, attempts=attempt_no,
                            executions=rec.executions + 1, started_at=now,
                            ended_at=None, exit_code=None, timed_out=False, not_before=None,
                            pid=None, message="")
            self.event("job_started", now, job=name, detail=f"attempt {attempt_no}")
            if isinstance(job.action, SetAction):
                self._run_set(name, job.action, now)
                changed = True
                continue
            if isinstance(job.action, TIMERS):
                end = self._timer_end(job, rec)
                if end is not None and end <= now:
                    self.finished_job(name, Outcome(exit_code=0), now)
                    changed = True
                continue
            try:
                attempt = self._attempt(name, now)
            except JazError as e:
                self.finished_job(name, Outcome(exit_code=None, error=str(e)), now)
                changed = True
                continue
            if _uses_slot(job):
                used += 1
                if job.queue:
                    per_queue[job.queue] = per_queue.get(job.queue, 0) + 1
            commands.append(Launch(name, attempt))
        return changed

    def _run_set(self, name: str, action: SetAction, now: datetime) -> None:
        import dataclasses

        from jaz.engine import expr

        scope = self.scope(name, now)
        values: dict[str, str] = {}
        try:
            for key, template in action.values.items():
                values[key] = expr.parse_template(template).render(scope)
                # later values may use earlier ones of the same job
                scope = dataclasses.replace(scope, variables={**scope.variables, key: values[key]})
        except expr.ExprError as e:
            self.finished_job(name, Outcome(exit_code=None, error=f"set.{key}: {e}"), now)
            return
        self.finished_job(name, Outcome(exit_code=0, outputs=values), now)

    def _timer_end(self, job: Job, rec: JobRecord) -> datetime | None:
        if rec.started_at is None:
            return None
        if isinstance(job.action, SleepAction):
            return rec.started_at + timedelta(seconds=job.action.seconds)
        if isinstance(job.action, WaitUntilAction):
            a = job.action
            day = self.run_day()
            base = datetime.combine(day, time(0), tzinfo=self._tz())
            return base + timedelta(hours=a.hour, minutes=a.minute, seconds=a.second)
        return None

    def _tz(self) -> tzinfo | None:
        return self.settings.tz or datetime.now().astimezone().tzinfo

    def run_day(self) -> date:
        when = self.run.scheduled_at or self.run.created_at
        return when.astimezone(self._tz()).date()

    def _check_timeouts(self, now: datetime, commands: list[Command]) -> None:
        if (self.jobnet.timeout is not None and self.run.started_at is not None
                and self.stopping is None
                and now >= self.run.started_at + timedelta(seconds=self.jobnet.timeout)):
            self.stopping = "timeout"
            self._run(warning=f"the run passed its timeout of {self.jobnet.timeout:g}s")
            self.event("run_timeout", now)
        for name in self.running():
            job = self.jobnet.jobs[name]
            rec = self.jobs[name]
            end = self._timer_end(job, rec)
            if end is not None and now >= end and name not in self.killing:
                self.finished_job(name, Outcome(exit_code=0), now)
                continue
            if job.timeout is None or rec.timed_out or rec.started_at is None:
                continue
            if now >= rec.started_at + timedelta(seconds=job.timeout):
                self._job(name, timed_out=True)
                self.event("job_timeout", now, job=name, detail=f"{job.timeout:g}s")
                if job.on_timeout == OnTimeout.STOP:
                    if isinstance(job.action, TIMERS):
                        self.finished_job(name, Outcome(exit_code=None, error="timed out"), now)
                    elif name not in self.killing:
                        self.killing.add(name)
                        commands.append(Kill(name, "timeout"))
                else:
                    self._run(warning=f"job {name!r} passed its timeout of {job.timeout:g}s")

    def finished_job(self, name: str, outcome: Outcome, now: datetime) -> None:
        """Record how an attempt ended and decide what comes next for the job."""
        self.killing.discard(name)
        job = self.jobnet.jobs[name]
        rec = self.jobs[name]
        if rec.status != JobState.RUNNING:
            return  # a late result for an attempt already written off
        tails = {"stdout_tail": self.redact(outcome.stdout_tail),
                 "stderr_tail": self.redact(outcome.stderr_tail)}
        outputs = {k: self.redact(v) for k, v in outcome.outputs.items()}
        code = outcome.exit_code
        killed_for_timeout = rec.timed_out and job.on_timeout == OnTimeout.STOP
        ok = (code is not None and not job.failed_exit(code) and not outcome.error
              and not killed_for_timeout and not (outcome.stopped and code != 0))
        if outcome.stopped and not killed_for_timeout and not ok:
            self._job(name, status=JobState.STOPPED, exit_code=code, ended_at=now, pid=None,
                      outputs=outputs, message=outcome.error or "stopped", **tails)
            self.event("job_stopped", now, job=name)
            return
        if not ok:
            reason = (f"timed out after {job.timeout:g}s" if killed_for_timeout
                      else outcome.error or f"exit code {code}")
            if rec.attempts <= job.retries and self.stopping is None:
                delay = timedelta(seconds=job.retry_delay)
                self._job(name, status=JobState.READY, exit_code=code, pid=None, outputs=outputs,
                          not_before=now + delay, ended_at=now,
                          message=f"attempt {rec.attempts} failed ({reason}); retrying", **tails)
                self.event("job_retry", now, job=name, detail=reason)
                return
            self._fail(name, now, reason, exit_code=code, outputs=outputs, **tails)
            return
        if job.repeat is not None:
            iteration = rec.iteration + 1
            done = job.repeat.max is not None and iteration >= job.repeat.max
            if not done and job.repeat.until is not None:
                from jaz.engine import expr

                rec = self._job(name, outputs=outputs, exit_code=code, iteration=iteration)
                try:
                    done = expr.parse(job.repeat.until).truth(self.scope(name, now, own=True))
                except expr.ExprError as e:
                    self._fail(name, now, f"repeat.until: {e}", exit_code=code, **tails)
                    return
            if not done:
                self._job(name, status=JobState.READY, exit_code=code, outputs=outputs,
                          iteration=iteration, attempts=0, pid=None, ended_at=now,
                          not_before=now + timedelta(seconds=job.repeat.interval),
                          message=f"iteration {iteration} done; repeating", **tails)
                return
            self._job(name, iteration=iteration)
        self._job(name, status=JobState.SUCCEEDED, exit_code=code, outputs=outputs, ended_at=now,
                  pid=None, message="", **tails)
        self.event("job_succeeded", now, job=name)

    def _fail(self, name: str, now: datetime, reason: str, **changes: Any) -> None:
        self._job(name, status=JobState.FAILED, ended_at=now, pid=None, message=reason,
                  **changes)
        self.event("job_failed", now, job=name, detail=reason)
        if self.jobnet.on_failure == OnFailure.STOP and self.stopping is None:
            self.stopping = "failure"

    def _conclude(self, now: datetime) -> None:
        if self.running():
            return
        states = [j.status for j in self.jobs.values()]
        if self.stopping is not None:
            status = RunState.STOPPED if self.stopping == "operator" else RunState.FAILED
            message = {"operator": self.stop_reason or "stopped by an operator",
                       "failure": "a job failed (on_failure = \"stop\")",
                       "timeout": "the run timed out"}[self.stopping]
            self._end(status, now, message)
            return
        if any(s == JobState.READY for s in states):
            return  # waiting for a retry delay, an interval or a free slot
        if all(s.passes for s in states):
            self._end(RunState.SUCCEEDED, now, "")
            return
        held = [n for n, j in self.jobs.items() if j.status == JobState.HELD]
        failed = [n for n, j in self.jobs.items() if j.status in (JobState.FAILED,
                                                                   JobState.STOPPED)]
        if held and self.settings.wait_for_operator and not failed:
            return  # the server waits for a release
        parts = []
        if failed:
            parts.append("failed: " + ", ".join(failed))
        if held:
            parts.append("held: " + ", ".join(held))
        if self.run.status != RunState.ERROR:
            self._run(status=RunState.ERROR, message="; ".join(parts) or "blocked")
            self.event("run_error", now, detail="; ".join(parts))

    def _end(self, status: RunState, now: datetime, message: str) -> None:
        self._run(status=status, ended_at=now, message=message)
        self.event(f"run_{status}", now, detail=message)

    # ------------------------------------------------------------ variables

    def visible(self, name: str, *, own: bool = False) -> tuple[list[str], dict[str, str]]:
        """The jobs whose results `name` sees (its ancestors), and its variables.

        A repeating job also sees its own outputs from the iteration before, so a
        loop can count (`set = { N = "${N + 1}" }` with `until = "N >= 3"`).
        """
        own = own or (self.jobnet.jobs[name].repeat is not None and self.jobs[name].iteration > 0)
        ancestors = self.jobnet.upstream(name) + ([name] if own else [])
        variables = dict(self.run.params)
        for other in ancestors:
            variables.update(self.jobs[other].outputs)
        return ancestors, variables

    def scope(self, name: str, now: datetime, *, own: bool = False) -> expr.Scope:
        from jaz.engine import expr

        ancestors, variables = self.visible(name, own=own)
        jobs: dict[str, dict[str, expr.Value]] = {}
        for other in ancestors:
            rec = self.jobs[other]
            lines = rec.stdout_tail.rstrip("\n").rsplit("\n", 1)
            jobs[other] = {**rec.outputs, "exit_code": rec.exit_code, "status": str(rec.status),
                           "stdout": lines[-1] if lines else ""}
        return expr.Scope(variables=variables, jobs=jobs, now=now.astimezone(self._tz()),
                          functions=self.settings.functions, calendars=self.calendar)

    def calendar(self, name: str) -> Calendar:
        """A calendar named in an expression, looked up next to the jobnet's file."""
        from jaz.engine.calendars import CalendarLibrary

        if self._calendars is None:
            self._calendars = self.settings.calendars or CalendarLibrary()
        return self._calendars.get(name, self.jobnet.path)

    def _attempt(self, name: str, now: datetime) -> Attempt:
        job = self.jobnet.jobs[name]
        rec = self.jobs[name]
        # no outputs anywhere (shell jobs often set none): no need to walk the ancestors
        variables = self.visible(name)[1] if self._with_outputs else self.run.params
        env = {k: v for k, v in variables.items() if k.isidentifier()}
        before = [self.jobs[n] for n in job.needs if self.jobs[n].ended_at is not None]
        if before:
            last = max(before, key=lambda r: r.ended_at or now)
            env["JOB_EXIT_CD"] = "" if last.exit_code is None else str(last.exit_code)
            env["STD_OUT"] = last.stdout_tail[-STD_CAP:]
            env["STD_ERR"] = last.stderr_tail[-STD_CAP:]
        stem = self._stem(name, rec.executions)
        if self._scheduled is None:
            scheduled = self.run.scheduled_at or self.run.created_at
            self._scheduled = scheduled.astimezone(self._tz()).isoformat(timespec="seconds")
        env.update({
            "JAZ_RUN_ID": str(self.run_id), "JAZ_JOBNET": self.jobnet.name, "JAZ_JOB": name,
            "JAZ_SCHEDULED_TIME": self._scheduled,
            "JAZ_ATTEMPT": str(rec.attempts), "JAZ_OUTPUT": stem + ".vars",
        })
        secrets: list[str] = []
        for key, value in job.env.items():
            if isinstance(value, Secret):
                secret = self.settings.secrets.get(value.name)
                secrets.append(secret)
                self.secret_values.add(secret)
                env[key] = secret
            else:
                env[key] = value
        base = self.jobnet.directory
        cwd = Path(os.path.expanduser(job.cwd)) if job.cwd else base
        if not cwd.is_absolute():
            cwd = base / cwd
        self.make_log_folder()
        return Attempt(run_id=self.run_id, jobnet=self.jobnet.name, job=job,
                       attempt=rec.attempts, host=job.host, env=env, cwd=cwd, base_dir=base,
                       stdout_path=Path(stem + ".out"), stderr_path=Path(stem + ".err"),
                       output_path=Path(stem + ".vars"), redact=tuple(secrets),
                       grace=self.settings.grace)

    def _stem(self, name: str, execution: int) -> str:
        """The logs of one execution of a job, without the extension; `.vars` is its
        $JAZ_OUTPUT, which also names its processes (`kill_stale`)."""
        return os.path.join(self.log_folder, f"{name}.{execution}")

    @property
    def log_folder(self) -> str:
        """The run's log folder: settings.log_dir / run id."""
        if self._log_folder is None:
            self._log_folder = str(self.settings.log_dir / str(self.run_id))
        return self._log_folder

    def make_log_folder(self) -> None:
        """Make the run's log folder if this machine has not yet (before its first job,
        or ahead of the run's start when its runner is armed)."""
        if not self._logs_made:
            os.makedirs(self.log_folder, exist_ok=True)
            self._logs_made = True

    def started(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self._job(name, pid=pid)

    # ------------------------------------------------------------ operator actions

    def stop_run(self, now: datetime, user: str = "system", reason: str = "") -> None:
        """Stop the run (`reason`: the run's message once stopped, if not an operator's)."""
        if self.finished:
            raise StateError(f"run {self.run_id} is {self.run.status}; there is nothing to stop")
        self.stopping = "operator"
        self.stop_reason = reason
        self.event("stop_run", now, user=user, detail=reason)

    def hold(self, name: str, now: datetime, user: str = "system") -> None:
        rec = self._get(name)
        if rec.status not in (JobState.PENDING, JobState.READY):
            raise StateError(f"job {name!r} is {rec.status}; only pending or ready jobs can be "
                             "held")
        self._job(name, status=JobState.HELD, message=f"held by {user}")
        self.event("hold", now, job=name, user=user)

    def release(self, name: str, now: datetime, user: str = "system") -> None:
        rec = self._get(name)
        if rec.status != JobState.HELD:
            raise StateError(f"job {name!r} is {rec.status}, not held")
        self._job(name, status=JobState.PENDING, message=f"released by {user}")
        self.event("release", now, job=name, user=user)
        self._reopen(now)

    def skip(self, name: str, now: datetime, user: str = "system") -> None:
        rec = self._get(name)
        if rec.status in (JobState.RUNNING, JobState.SUCCEEDED, JobState.SKIPPED,
                          JobState.BYPASSED):
            raise StateError(f"job {name!r} is {rec.status}; it cannot be skipped" + (
                " (stop it first)" if rec.status == JobState.RUNNING else ""))
        self._job(name, status=JobState.SKIPPED, ended_at=now, not_before=None,
                  message=f"skipped by {user}")
        self.event("skip", now, job=name, user=user)
        self._reopen(now)

    def unskip(self, name: str, now: datetime, user: str = "system") -> None:
        rec = self._get(name)
        if rec.status != JobState.SKIPPED or not rec.message.startswith("skipped by"):
            raise StateError(f"job {name!r} was not skipped by an operator")
        started = [d for d in self.jobnet.downstream(name)
                   if self.jobs[d].status != JobState.PENDING]
        if started:
            raise StateError(f"jobs after {name!r} have moved on already ({', '.join(started)})")
        self._job(name, status=JobState.PENDING, ended_at=None, message=f"unskipped by {user}")
        self.event("unskip", now, job=name, user=user)
        self._reopen(now)

    def stop_job(self, name: str, now: datetime, user: str = "system") -> list[Command]:
        rec = self._get(name)
        if rec.status != JobState.RUNNING:
            raise StateError(f"job {name!r} is {rec.status}, not running")
        self.event("stop_job", now, job=name, user=user)
        if isinstance(self.jobnet.jobs[name].action, TIMERS):
            self.finished_job(name, Outcome(exit_code=None, stopped=True, error="stopped"), now)
            return []
        self.killing.add(name)
        return [Kill(name, "operator")]

    def rerun(self, name: str, now: datetime, *, downstream: bool = False,
              user: str = "system") -> None:
        rec = self._get(name)
        names = [name] + (self.jobnet.downstream(name) if downstream else [])
        busy = [n for n in names if self.jobs[n].status == JobState.RUNNING]
        if busy:
            raise StateError(f"job(s) {', '.join(busy)} are running; stop them first")
        if rec.status in (JobState.PENDING, JobState.READY):
            raise StateError(f"job {name!r} is {rec.status}; it has not run yet")
        with self.store.batch():
            for n in names:
                self._reset(n, f"rerun by {user}")
        self.event("rerun", now, job=name, user=user,
                   detail="with downstream" if downstream else "")
        self._reopen(now)

    def resume(self, now: datetime, *, skip: Sequence[str] = (), release: Sequence[str] = (),
               user: str = "system") -> None:
        """Continue a halted, stopped or interrupted run (jaz run --resume)."""
        if self.run.status == RunState.SUCCEEDED:
            raise StateError(f"run {self.run_id} already succeeded; nothing to resume")
        for name in [*skip, *release]:
            self._get(name)
        for name in skip:  # refuse before anything changes: a failed batch leaves no trace
            if self.jobs[name].status in (JobState.SUCCEEDED, JobState.SKIPPED,
                                          JobState.BYPASSED):
                raise StateError(f"job {name!r} is {self.jobs[name].status}; it cannot be "
                                 "skipped")
        interrupted = {name: rec for name, rec in self.jobs.items()
                       if rec.status == JobState.RUNNING}
        finished = self._finished_meanwhile(interrupted)
        self.adopted_remote = {
            name: (self.jobnet.jobs[name].host, self._stem(name, rec.executions))
            for name, rec in interrupted.items() if name not in finished
            and _remote(self.jobnet.jobs[name])}
        stale = {name: (rec.pid, self._stem(name, rec.executions) + ".vars")
                 for name, rec in interrupted.items()
                 if name not in finished and name not in self.adopted_remote}
        groups = stale_groups(self.run_id, stale)
        if self.settings.adopt_running:
            self.adopted = {name: (min(found), self._stem(name, self.jobs[name].executions))
                            for name, found in groups.items() if found}
        kill_groups(found for name, found in groups.items() if name not in self.adopted)
        with self.store.batch():
            for name, outcome in finished.items():
                self.finished_job(name, outcome, now)
            for name, rec in self.jobs.items():
                if rec.status == JobState.RUNNING and name in self.adopted:
                    self._job(name, message="still running after a restart: waited for")
                elif rec.status == JobState.RUNNING and name in self.adopted_remote:
                    self._job(name, message=f"on host {self.adopted_remote[name][0]} when "
                                            "interrupted: its result is asked for")
                elif rec.status == JobState.RUNNING:
                    self._reset(name, "interrupted; runs again on resume")
                elif rec.status in (JobState.FAILED, JobState.STOPPED) and name not in skip:
                    self._reset(name, "runs again on resume")
            for name in skip:
                self.skip(name, now, user)
            for name in release:
                if self.jobs[name].status == JobState.HELD:
                    self.release(name, now, user)
                elif self.jobs[name].status == JobState.PENDING and \
                        self.jobnet.jobs[name].hold:
                    self._job(name, message=f"released by {user}")
            self._run(status=RunState.RUNNING, ended_at=None, message="", warning="")
        self.stopping = None
        self.event("resume", now, user=user)

    def _finished_meanwhile(self, interrupted: Mapping[str, JobRecord]) -> dict[str, Outcome]:
        """Jobs that ended while nobody was watching, as their recorded exit status shows
        (the server's local jobs keep one: executors/local.py); they are not run again."""
        from jaz.engine.executors.base import read_outputs, read_tail
        from jaz.engine.executors.local import exit_file, read_exit

        out: dict[str, Outcome] = {}
        for name, rec in interrupted.items():
            stem = self._stem(name, rec.executions)
            code = read_exit(exit_file(Path(stem + ".vars")))
            if code is not None:
                out[name] = Outcome(exit_code=code, outputs=read_outputs(Path(stem + ".vars")),
                                    stdout_tail=read_tail(Path(stem + ".out")),
                                    stderr_tail=read_tail(Path(stem + ".err")))
        return out

    def _reset(self, name: str, message: str) -> None:
        rec = self.jobs[name]
        released = self.jobnet.jobs[name].hold and rec.status not in (JobState.HELD,)
        self._job(name, status=JobState.PENDING, attempts=0, iteration=0, exit_code=None,
                  timed_out=False, outputs={}, started_at=None, ended_at=None, not_before=None,
                  pid=None, message=("released; " if released else "") + message)

    def _reopen(self, now: datetime) -> None:
        if self.run.status in (RunState.ERROR, RunState.SUCCEEDED, RunState.FAILED,
                               RunState.STOPPED):
            self._run(status=RunState.RUNNING, ended_at=None, message="")
            self.stopping = None

    def _get(self, name: str) -> JobRecord:
        if name not in self.jobs:
            from jaz.errors import NotFound

            raise NotFound(f"run {self.run_id} has no job {name!r}",
                           hint=f"its jobs are: {', '.join(self.jobs)}")
        return self.jobs[name]


def _remote(job: Job) -> bool:
    """A `run` job on remote hosts (`host`, or `hosts` for a fan-out): its hosts keep it
    (agents; SSH hosts in their job folder)."""
    return job.kind == "run" and (job.host != "local" or bool(set(job.hosts) - {"local"}))


def _uses_slot(job: Job) -> bool:
    return job.kind not in ("set", "sleep", "wait_until", "jobnet")


def kill_stale(run_id: int, jobs: Mapping[str, tuple[int | None, str]]) -> None:
    """Kill the process groups of jobs left running by a crashed `jaz run`."""
    kill_groups(stale_groups(run_id, jobs).values())


def stale_groups(run_id: int, jobs: Mapping[str, tuple[int | None, str]]
                 ) -> dict[str, set[int]]:
    """The process groups of jobs left running by a crashed driver, per job.

    `jobs` maps each interrupted job to its pid, if one was recorded, and the
    $JAZ_OUTPUT of its execution. A pid is only recorded with the turn after the job
    started, so the processes are also looked for in /proc: any whose environment
    names this run, this job and this very output file (which holds the log folder,
    so another database's run 1 never matches) belongs to the job. A recorded pid
    counts only if it still leads a group whose environment names this run and job:
    after a reboot or pid reuse the pid may be anyone's.
    """
    found: dict[str, set[int]] = {name: set() for name in jobs}
    if not jobs:
        return found
    wanted = {os.fsencode(f"JAZ_OUTPUT={output}"): (name, f"JAZ_JOB={name}".encode())
              for name, (_, output) in jobs.items()}
    run = f"JAZ_RUN_ID={run_id}".encode()
    for name, (leader, _) in jobs.items():
        environ = _environ(leader) if leader else None
        if leader and environ and run in environ and f"JAZ_JOB={name}".encode() in environ:
            try:
                if os.getpgid(leader) == leader:
                    found[name].add(leader)
            except OSError:
                pass
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        environ = _environ(pid)
        if environ is None or run not in environ:
            continue
        for output, (name, job) in wanted.items():
            if output in environ and job in environ:
                try:
                    found[name].add(os.getpgid(pid))
                except OSError:
                    pass
    own = os.getpgrp()
    for groups in found.values():
        groups.discard(own)  # never this process's own group
    return found


def kill_groups(groups: Iterable[set[int]]) -> None:
    for found in groups:
        for pgid in found:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _environ(pid: int) -> set[bytes] | None:
    try:
        return set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
    except OSError:
        return None


def new_run(store: Store, jobnet: Jobnet, now: datetime, *, params: Mapping[str, str] = {},
            trigger: str = "manual", scheduled_at: datetime | None = None,
            status: RunState = RunState.RUNNING, parent: tuple[int, str] | None = None) -> int:
    """Create a run with all its jobs pending, and remember the exact jobnet text."""
    store.save_version(jobnet.hash, jobnet.name, jobnet.text, now)
    merged = {**jobnet.params, **params}  # undeclared params are allowed: they are variables
    run = RunRecord(jobnet=jobnet.name, status=status, params=merged, version=jobnet.hash,
                    path=str(jobnet.path) if jobnet.path else None, trigger=trigger,
                    created_at=now, scheduled_at=scheduled_at,
                    parent_run=parent[0] if parent else None,
                    parent_job=parent[1] if parent else None)
    jobs = [JobRecord(name=name, kind=job.kind, host=job.host)
            for name, job in jobnet.jobs.items()]
    return store.create_run(run, jobs)
