"""The one service layer of SPEC §2.4: what `jaz run`, the server's API and the
TUI do to runs goes through here — start, stop, hold, release, skip, unskip,
rerun, resume — and so does every query of runs, jobs and logs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jaz.engine.clock import Clock, SystemClock
from jaz.engine.executors.base import Attempt, Execution, Executor
from jaz.engine.executors.local import LocalExecutor
from jaz.engine.loader import load_text
from jaz.engine.machine import Listener, RunMachine, Settings, new_run
from jaz.engine.model import Jobnet, RunState
from jaz.engine.params import check_values
from jaz.engine.records import EventRecord, JobRecord, RunRecord
from jaz.engine.runner import Context, Runner
from jaz.engine.store.base import Store
from jaz.errors import JazError, NotFound, StateError
from jaz.value import Value


def default_executors() -> dict[str, Executor]:
    return {"run": LocalExecutor(), "sql": _Lazy("sql", "SqlExecutor"),
            "wait_file": _Lazy("files", "WaitFileExecutor"),
            "transfer": _Lazy("files", "TransferExecutor"),
            "zabbix": _Lazy("zabbix", "ZabbixExecutor")}


class _Lazy(Executor):
    """An executor imported with its first job: a jobnet of shell jobs (every `jaz run`
    start-up) never pays for the SQL, file and Zabbix ones and what they import."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self._executor: Executor | None = None

    def start(self, attempt: Attempt) -> Execution:
        if self._executor is None:
            import importlib

            module = importlib.import_module(f"jaz.engine.executors.{self.module}")
            self._executor = getattr(module, self.name)()
        return self._executor.start(attempt)


class LogChunk(Value):
    job: str
    attempt: str
    stream: str
    path: Path
    text: str          # from the byte offset asked for to the end
    size: int = 0      # bytes in the whole log: where a follower goes on from


class Service:
    def __init__(self, store: Store, settings: Settings, *, clock: Clock | None = None,
                 executors: Mapping[str, Executor] | None = None,
                 listener: Listener | None = None, remote: Executor | None = None) -> None:
        self.ctx = Context(store=store, settings=settings, clock=clock or SystemClock(),
                           executors=executors if executors is not None
                           else default_executors(), listener=listener, remote=remote)

    @property
    def store(self) -> Store:
        return self.ctx.store

    def now(self) -> datetime:
        return self.ctx.clock.now()

    # ------------------------------------------------------------ runs

    def create(self, jobnet: Jobnet, *, params: Mapping[str, str] | None = None,
               trigger: str = "manual", hold: bool = False, user: str = "system",
               scheduled_at: datetime | None = None, status: RunState | None = None) -> int:
        """A new run: held, scheduled for later, or running now; `status` overrides it
        (the scheduler records a fire that is already past as `scheduled` too)."""
        check_values(params or {})
        now = self.now()
        status = status or (RunState.HELD if hold else (
            RunState.SCHEDULED if scheduled_at is not None and scheduled_at > now
            else RunState.RUNNING))
        with self.store.batch():   # the run and its audit event in one commit
            run_id = new_run(self.store, jobnet, now, params=params or {}, trigger=trigger,
                             scheduled_at=scheduled_at, status=status)
            self.store.add_event(EventRecord(at=now, kind="run_created", run_id=run_id,
                                             jobnet=jobnet.name, user=user,
                                             detail=f"trigger {trigger}"))
        return run_id

    def execute(self, run_id: int, jobnet: Jobnet | None = None,
                resume: Callable[[RunMachine], None] | None = None,
                on_runner: Callable[[Runner], None] | None = None) -> RunRecord:
        """Drive a run in the calling thread until it ends or halts in `error`."""
        jobnet = jobnet or self.jobnet_of(run_id)
        runner = Runner(self.ctx, jobnet, run_id)
        if on_runner is not None:
            on_runner(runner)
        return runner.run(resume=resume)

    def resume(self, run_id: int, *, skip: Sequence[str] = (), release: Sequence[str] = (),
               user: str = "system",
               on_runner: Callable[[Runner], None] | None = None) -> RunRecord:
        return self.execute(run_id, resume=self.resumer(run_id, skip=skip, release=release,
                                                         user=user), on_runner=on_runner)

    def resumer(self, run_id: int, *, skip: Sequence[str] = (), release: Sequence[str] = (),
                user: str = "system") -> Callable[[RunMachine], None]:
        """What resumes the run in its first turn (`Runner.begin`): it goes on where it
        was, the jobs it had running adopted or run again."""
        run = self.run(run_id)
        if run.parent_run is not None:
            raise StateError(f"run {run_id} is part of run {run.parent_run}; resume that one")
        if run_id in self.ctx.active:
            raise StateError(f"run {run_id} is running in this process already")
        now = self.now()

        def apply(m: RunMachine) -> None:
            m.resume(now, skip=skip, release=release, user=user)

        return apply

    def jobnet_of(self, run_id: int) -> Jobnet:
        """The exact jobnet version the run started with."""
        run = self.run(run_id)
        text = self.store.get_version(run.version)
        if text is None:
            raise NotFound(f"the jobnet version of run {run_id} is missing from the store")
        return load_text(text, path=Path(run.path) if run.path else None, name=run.jobnet)

    # ------------------------------------------------------------ operator actions

    def _act(self, run_id: int, fn: Callable[[RunMachine], Any]) -> None:
        """Apply an operator action: through the run's driver when one runs here, else
        to the store directly. Under the context's lock, so that a driver starting or
        leaving meanwhile can neither miss the action nor lose it."""
        jobnet = self.jobnet_of(run_id)
        with self.ctx.lock:
            runner = self.ctx.active.get(run_id)
            if runner is not None:
                done = runner.submit(fn)
            else:
                machine = RunMachine(self.store, jobnet, run_id, self.ctx.settings,
                                     self.ctx.listener)
                with self.store.batch():
                    result = fn(machine)
                if run_id in self.ctx.armed:   # its armed runner loaded it before this
                    self.ctx.armed[run_id] = True
        if runner is not None:
            done.result()
            return
        if result:
            raise StateError(f"run {run_id} is not running in this process; "
                             f"resume it to act on running jobs")

    def stop(self, run_id: int, job: str | None = None, user: str = "system",
             reason: str = "") -> None:
        """Stop a run (`reason`: its message once stopped, else "stopped by USER"), or
        one of its jobs."""
        if job is None:
            # under the context's lock, as `_act`: a runner taking the run up meanwhile
            # is either registered (and told) or loads the run stopped, never begins it
            # over the stop (an armed one is marked stale: it loaded the run before)
            with self.ctx.lock:
                runner = self.ctx.active.get(run_id)
                if runner is None:
                    self._stop_undriven(run_id, user, reason)
                    return
                done = runner.submit(lambda m: m.stop_run(self.now(), user, reason))
            done.result()
            return
        self._act(run_id, lambda m: m.stop_job(job, self.now(), user))

    def resume_ended(self, run_id: int, statuses: Sequence[RunState], *,
                     user: str = "system") -> None:
        """Reopen a run in one of `statuses` where it stopped, as `jaz run --resume` does
        (its failed and stopped jobs to run again); StateError if it is in none of them
        by the time the action applies. The caller drives it."""
        now = self.now()

        def resume(m: RunMachine) -> None:
            if m.run.status not in statuses:
                raise StateError(f"run {run_id} is {m.run.status} now; look again and retry")
            m.resume(now, user=user)

        self._act(run_id, resume)

    def _stop_undriven(self, run_id: int, user: str, reason: str = "") -> None:
        """Stop a run no runner drives here, in the store (under the context's lock; read
        and written in one transaction: the scheduler starts a due run only if it is
        still scheduled)."""
        now = self.now()
        with self.store.batch():
            run = self.run(run_id)
            if run.status not in (RunState.ERROR, RunState.HELD, RunState.SCHEDULED,
                                  RunState.RUNNING):
                raise StateError(f"run {run_id} is {run.status}; there is nothing to stop")
            # only as read: another server (PostgreSQL) may have started it meanwhile
            if self.store.update_run_if(run_id, run.status, [run.trigger],
                                        status=RunState.STOPPED, ended_at=now,
                                        message=reason or f"stopped by {user}") is None:
                raise StateError(f"run {run_id} changed meanwhile; look again and retry")
            self.store.add_event(EventRecord(at=now, kind="stop_run", run_id=run_id,
                                             jobnet=run.jobnet, user=user, detail=reason))
        if run_id in self.ctx.armed:
            self.ctx.armed[run_id] = True

    def hold(self, run_id: int, job: str, user: str = "system") -> None:
        self._act(run_id, lambda m: m.hold(job, self.now(), user))

    def release(self, run_id: int, job: str, user: str = "system") -> None:
        self._act(run_id, lambda m: m.release(job, self.now(), user))

    def skip(self, run_id: int, job: str, user: str = "system") -> None:
        self._act(run_id, lambda m: m.skip(job, self.now(), user))

    def unskip(self, run_id: int, job: str, user: str = "system") -> None:
        self._act(run_id, lambda m: m.unskip(job, self.now(), user))

    def rerun(self, run_id: int, job: str, *, downstream: bool = False,
              user: str = "system") -> None:
        self._act(run_id, lambda m: m.rerun(job, self.now(), downstream=downstream, user=user))

    # ------------------------------------------------------------ retention

    def purge(self, before: datetime, *, user: str = "system") -> list[int]:
        """Forget finished runs that ended before `before`, their logs and the audit
        events older than that (`keep_days`, `jaz purge`). Returns the runs removed."""
        import shutil

        old = [r for r in self.store.list_runs(top_level=True)
               if r.status.finished and (r.ended_at or r.created_at) < before
               and r.id not in self.ctx.active]
        ids: list[int] = []
        for run in old:
            ids.append(run.id)
            ids.extend(child.id for child in self.store.list_runs(parent_run=run.id))
        for run_id in ids:
            shutil.rmtree(self.ctx.settings.log_dir / str(run_id), ignore_errors=True)
        self.store.delete_runs(ids)
        self.store.delete_events(before)
        if ids or user != "keep_days":   # an operator's purge is audited even when empty
            self.store.add_event(EventRecord(at=self.now(), kind="purge", user=user,
                                             detail=f"{len(ids)} runs before "
                                                    f"{before.isoformat()}"))
        return ids

    # ------------------------------------------------------------ queries

    def run(self, run_id: int) -> RunRecord:
        return self.store.get_run(run_id)

    def jobs(self, run_id: int) -> list[JobRecord]:
        return self.store.get_jobs(run_id)

    def runs(self, *, jobnet: str | None = None, status: Sequence[RunState] = (),
             since: datetime | None = None, limit: int | None = None,
             offset: int = 0) -> list[RunRecord]:
        """Top-level runs, newest first."""
        return self.store.list_runs(jobnet=jobnet, status=status, since=since, top_level=True,
                                    limit=limit, offset=offset)

    def children(self, run_id: int) -> list[RunRecord]:
        return self.store.list_runs(parent_run=run_id)

    def events(self, run_id: int | None = None) -> list[EventRecord]:
        return self.store.list_events(run_id=run_id)

    def logs(self, run_id: int, job: str | None = None, *, all_attempts: bool = False,
             offset: int = 0) -> list[LogChunk]:
        """Stdout/stderr of the run's jobs: the latest attempt of each, or all of them;
        from a byte offset on, so that a follower reads only what is new."""
        jobs = self.jobs(run_id)
        if job is not None and job not in {j.name for j in jobs}:
            raise NotFound(f"run {run_id} has no job {job!r}",
                           hint=f"its jobs are: {', '.join(j.name for j in jobs)}")
        folder = self.ctx.settings.log_dir / str(run_id)
        out: list[LogChunk] = []
        for rec in jobs:
            if job is not None and rec.name != job:
                continue
            # NAME.N.out, N counting every start of the job in this run
            attempts = sorted((p.name[len(rec.name) + 1:-4]
                               for p in folder.glob(f"{rec.name}.*.out")
                               if p.name[len(rec.name) + 1:-4].isdigit()), key=int)
            if not all_attempts:
                attempts = attempts[-1:]
            for attempt in attempts:
                for stream in ("out", "err"):
                    path = folder / f"{rec.name}.{attempt}.{stream}"
                    try:
                        with path.open("rb") as f:
                            size = f.seek(0, os.SEEK_END)
                            f.seek(min(offset, size))
                            data = f.read()
                    except FileNotFoundError:
                        # logs may have been purged; the tail in the store remains
                        whole = (rec.stdout_tail if stream == "out" else rec.stderr_tail
                                 ).encode()
                        size, data = len(whole), whole[offset:]
                    out.append(LogChunk(job=rec.name, attempt=attempt,
                                        stream="stdout" if stream == "out" else "stderr",
                                        path=path, size=size, text=_universal(
                                            data.decode("utf-8", errors="replace"))))
        return out


def _universal(text: str) -> str:
    """Newlines as reading the log as text gives them (what `jaz logs` always showed)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _iso(t: datetime | None) -> str | None:
    return t.astimezone().isoformat() if t is not None else None


def job_view(j: JobRecord) -> dict[str, Any]:
    """One job of a run as `run_view` shows it (also the API's job events and history)."""
    return {"status": str(j.status), "exit_code": j.exit_code, "attempts": j.attempts,
            "timed_out": j.timed_out, "host": j.host, "outputs": dict(j.outputs),
            "started_at": _iso(j.started_at), "ended_at": _iso(j.ended_at)}


def run_view(run: RunRecord, jobs: Sequence[JobRecord] | None) -> dict[str, Any]:
    """The object SPEC §3 defines for `--json` of `jaz run` and `jaz status`."""
    view: dict[str, Any] = {
        "run_id": run.id, "jobnet": run.jobnet, "status": str(run.status),
        "exit_code": run_exit_code(run.status), "params": dict(run.params),
        "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
    }
    if jobs is not None:
        view["jobs"] = {j.name: job_view(j) for j in jobs}
    return view


def run_exit_code(status: RunState) -> int | None:
    if status == RunState.SUCCEEDED:
        return 0
    if status in (RunState.FAILED, RunState.STOPPED, RunState.ERROR):
        return 1
    return None


__all__ = ["JazError", "LogChunk", "Service", "job_view", "run_exit_code", "run_view"]
