"""The agent's jobs: accepted into its database, started with the engine's local
executor (each in a session and process group of its own, output straight to files,
the exit status recorded in a file by the job's own shell), waited for, and their end
recorded before it is offered to the server.

Jobs are no children the agent needs: a `kill -9` of the agent leaves them running,
and the restarted agent finds them again (`recover`) by their environment in /proc
(`JAZ_AGENT_JOB`); a job found nowhere that left an exit status has ended; one that
left its log files but no exit status was started and ended unwatched (killed by a
signal): it is reported so, never started again; one with none of these never
started, and starts now. Jobs are started by one starter thread, so that
accepting (a commit) never waits for a process to start.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from jaz.agent.config import AgentConfig
from jaz.agent.store import AgentStore, JobRow
from jaz.engine.executors.base import (
    Attempt,
    Execution,
    Outcome,
    read_outputs,
    read_tail,
    redact,
)
from jaz.engine.executors.local import AdoptedExecution, LocalExecutor, read_exit
from jaz.engine.model import Job, RunAction
from jaz.errors import JazError

log = logging.getLogger("jaz.agent")
PURGE_EVERY = 600.0


class Jobs:
    def __init__(self, config: AgentConfig, store: AgentStore) -> None:
        self.config = config
        self.store = store
        self._executor = LocalExecutor(record_exit=True)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._seq = 0                                   # bumped at every job's end or submit
        self._submits: dict[str, int] = {}              # by owner: how many submits took jobs
        self._executions: dict[str, Execution] = {}
        self._owners: dict[str, str] = {}               # of the running jobs
        self._queue: deque[str] = deque()               # accepted, waiting for a slot
        self._starting: set[str] = set()                # taken from the queue, not started
        self._stop_pending: set[str] = set()            # stopped while starting
        self._kick = threading.Event()                  # wakes the starter thread
        self._reboots: list[str] = []                   # reboots waiting for jobs to end
        self._ending: list[tuple[str, dict[str, Any], float]] = []   # to commit (`_end`)
        self._committing = False
        self._busy = 0
        config.jobs_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ files

    def folder(self, job_id: str) -> Path:
        return self.config.jobs_dir / job_id

    def stream_path(self, job_id: str, stream: str) -> Path:
        return self.folder(job_id) / ("job.out" if stream == "stdout" else "job.err")

    # ------------------------------------------------------------ requests

    def submit(self, owner: str, job_id: str, spec: dict[str, Any]) -> tuple[JobRow, bool]:
        """Accept a job: committed before this returns, started soon after by the
        starter thread. (row, False) for an id known already: the same job, not run
        again."""
        return self.submit_many(owner, [(job_id, spec)])[0]

    def submit_many(self, owner: str, jobs: list[tuple[str, dict[str, Any]]]
                    ) -> list[tuple[JobRow, bool]]:
        news = self.store.add_many(owner, jobs, time.time())
        out: list[tuple[JobRow, bool]] = []
        for (job_id, _), new in zip(jobs, news, strict=True):
            row = self.store.get(job_id)
            assert row is not None
            out.append((row, new))
        fresh = [job_id for (job_id, _), new in zip(jobs, news, strict=True) if new]
        if fresh:
            with self._changed:
                self._queue.extend(fresh)
                self._submits[owner] = self._submits.get(owner, 0) + 1
                self._seq += 1
                self._changed.notify_all()   # a `wait` on other ids: ask again with these
            self._kick.set()
        return out

    def run_starter(self, closing: threading.Event) -> None:
        """The starter thread: starts queued jobs as slots free up."""
        while not closing.is_set():
            self._kick.wait(1.0)
            self._kick.clear()
            self._start_queued()

    def stop(self, job_id: str) -> JobRow | None:
        row = self.store.get(job_id)
        if row is None or row.state == "ended":
            return row
        self.store.set(job_id, stop=1)
        with self._lock:
            execution = self._executions.get(job_id)
            queued = job_id in self._queue or job_id in self._reboots
            if job_id in self._queue:
                self._queue.remove(job_id)
            if job_id in self._reboots:
                self._reboots.remove(job_id)
            if job_id in self._starting:   # the starter stops it once it runs
                self._stop_pending.add(job_id)
                return self.store.get(job_id)
        if execution is not None:
            execution.stop()
        elif queued or row.state == "accepted":
            self._end(job_id, {"exit_code": None, "stopped": True, "outputs": {},
                               "stdout_tail": "", "stderr_tail": "",
                               "error": "stopped before it started"})
        return self.store.get(job_id)

    def wait(self, owner: str, timeout: float, ids: list[str] | None = None) -> list[JobRow]:
        """The owner's ended jobs not yet acknowledged (among `ids`, if given), waiting up
        to `timeout` seconds for one when there are none. Waiting on `ids`, it answers
        none at once when the owner submits other jobs meanwhile, so that it asks again
        with them among its ids (else their ends would wait for the timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            submits = self._submits.get(owner, 0)
        while True:
            with self._lock:
                seq = self._seq
                more = ids is not None and self._submits.get(owner, 0) != submits
            rows = self.store.ended_unacked(owner, ids)
            left = deadline - time.monotonic()
            if rows or left <= 0 or more:
                return rows
            with self._changed:
                self._changed.wait_for(lambda seq=seq: self._seq != seq, left)  # type: ignore[misc]

    def read(self, job_id: str, stream: str, offset: int, limit: int) -> dict[str, Any]:
        row = self.store.get(job_id)
        if row is None:
            raise KeyError(job_id)
        path = self.stream_path(job_id, stream)
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                cap = min(size, self.config.max_output)
                f.seek(min(offset, cap))
                data = f.read(max(0, min(limit, cap - offset)))
        except FileNotFoundError:
            size, data = 0, b""
        secrets = [s for s in row.spec.get("secrets", []) if s]
        if secrets and data and row.state != "ended" and b"\n" in data:
            data = data[:data.rindex(b"\n") + 1]   # redact whole lines, as the engine does
        elif secrets and row.state != "ended" and offset + len(data) < min(size, cap):
            data = b""
        used = len(data)
        for secret in secrets:
            data = data.replace(secret.encode(), b"***")
        return {"data": base64.b64encode(data).decode("ascii"), "next": offset + used,
                "size": size, "cut": size > self.config.max_output,
                "ended": row.state == "ended"}

    def log_sizes(self, job_id: str) -> list[int]:
        """The sizes of a job's stdout and stderr as served (at most max_output)."""
        return [min(_size(self.stream_path(job_id, s)), self.config.max_output)
                for s in ("stdout", "stderr")]

    def sizes(self, owner: str) -> dict[str, list[int]]:
        """The log sizes of the owner's running jobs (what a follower asks for next)."""
        with self._lock:
            ids = [i for i in self._executions if self._owners.get(i) == owner]
        return {job_id: self.log_sizes(job_id) for job_id in ids}

    def running(self) -> int:
        with self._lock:
            return self._busy

    # ------------------------------------------------------------ starting

    def recover(self) -> None:
        """After a start: take up every job the last agent process left unfinished."""
        rows = self.store.unfinished()
        # an accepted job may have been started by an agent that died before recording
        # it: its processes name it in their environment
        found = _find_processes({r.id for r in rows if r.state != "running"})
        for row in rows:
            stem = str(self.folder(row.id) / "job")
            if row.state != "running" and row.id not in found \
                    and read_exit(Path(stem + ".exit")) is None \
                    and not Path(stem + ".out").exists():   # never started: it starts now
                self.store.set(row.id, state="accepted")
                with self._lock:
                    self._queue.append(row.id)
                continue
            pgid = row.pid if row.state == "running" else found.get(row.id)
            if pgid is None:   # it ran and ended while nobody watched
                self._finish(row.id, _Gone(stem))
                continue
            self.store.set(row.id, state="running", pid=pgid)
            execution = AdoptedExecution(pgid, stem, float(row.spec.get("grace", 5.0)))
            log.info("job %s: still running (pid %s) after a restart: waited for",
                     row.id, pgid)
            with self._lock:
                self._executions[row.id] = execution
                self._owners[row.id] = row.owner
                self._busy += 1
            if row.stop:
                execution.stop()
            threading.Thread(target=self._finish, args=(row.id, execution), daemon=True,
                             name=f"job-{row.id}").start()
        self._kick.set()

    def _start_queued(self) -> None:
        while True:
            with self._lock:
                if self._reboots and self._busy == 0:   # the jobs it waited for are over
                    self._queue.appendleft(self._reboots.pop(0))
                if not self._queue or self._busy >= self.config.max_jobs:
                    return
                job_id = self._queue.popleft()
            row = self.store.get(job_id)
            with self._lock:
                if row is not None and row.spec.get("reboot") == "after_jobs" \
                        and self._busy > 0:
                    self._reboots.append(job_id)   # after the running jobs end
                    continue
                self._busy += 1
                self._starting.add(job_id)
            try:
                self._start(job_id)
            finally:
                with self._lock:
                    self._starting.discard(job_id)
                    stop = job_id in self._stop_pending
                    self._stop_pending.discard(job_id)
                    execution = self._executions.get(job_id)
                if stop and execution is not None:
                    execution.stop()

    def _start(self, job_id: str) -> None:
        row = self.store.get(job_id)
        assert row is not None
        spec = row.spec
        try:
            attempt = self._attempt(row)
            execution = self._executor.start(attempt)
        except (JazError, OSError) as e:
            with self._lock:
                self._busy -= 1
            message = e.message if isinstance(e, JazError) else str(e)
            self._end(job_id, {"exit_code": None, "outputs": {}, "stdout_tail": "",
                               "stderr_tail": "", "error": message, "stopped": False})
            return
        # no commit here: a restarted agent finds the job by its environment in /proc,
        # or by the log files it leaves (made just before the process starts)
        with self._lock:
            self._executions[job_id] = execution
            self._owners[job_id] = row.owner
        log.debug("job %s (%s/%s) started: pid %s", job_id, spec.get("jobnet"),
                  spec.get("job"), execution.pid)
        threading.Thread(target=self._finish, args=(job_id, execution), daemon=True,
                         name=f"job-{job_id}").start()

    def _attempt(self, row: JobRow) -> Attempt:
        spec = row.spec
        folder = self.folder(row.id)
        folder.mkdir(parents=True, exist_ok=True)
        if spec.get("user") and os.geteuid() == 0:
            import pwd

            try:   # the job writes its $JAZ_OUTPUT and exit status here, as that user
                entry = pwd.getpwnam(spec["user"])
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            except KeyError:
                pass   # the executor says the user is unknown
        stem = folder / "job"
        cwd = Path(os.path.expanduser(spec["cwd"])) if spec.get("cwd") else self.config.work_dir
        if not cwd.is_absolute():
            cwd = self.config.work_dir / cwd
        env = dict(spec.get("env", {}))
        env["JAZ_OUTPUT"] = str(stem) + ".vars"
        env["JAZ_AGENT_JOB"] = row.id
        env["JAZ_AGENT_PID"] = str(os.getpid())
        script = self.config.reboot_command if spec.get("reboot") else spec["script"]
        job = Job(name=spec.get("job", "job"), action=RunAction(script=script),
                  shell=spec.get("shell", "/bin/sh"), user=spec.get("user"),
                  stop_command=spec.get("stop_command"))
        return Attempt(run_id=int(spec.get("run_id", 0)), jobnet=spec.get("jobnet", ""),
                       job=job, attempt=int(spec.get("attempt", 1)), host="local", env=env,
                       cwd=cwd, base_dir=self.config.work_dir,
                       stdout_path=Path(str(stem) + ".out"),
                       stderr_path=Path(str(stem) + ".err"),
                       output_path=Path(str(stem) + ".vars"),
                       grace=float(spec.get("grace", 5.0)))

    # ------------------------------------------------------------ ending

    def _finish(self, job_id: str, execution: Execution) -> None:
        try:
            outcome = execution.wait()
        except Exception as e:   # an executor bug must not leave the job open forever
            outcome = Outcome(exit_code=None, error=f"internal error: {e!r}")
        row = self.store.get(job_id)
        secrets = [s for s in (row.spec.get("secrets", []) if row else []) if s]
        stopped = outcome.stopped or bool(row and row.stop)
        result = {"exit_code": outcome.exit_code, "stopped": stopped,
                  "outputs": {k: redact(v, secrets) for k, v in outcome.outputs.items()},
                  "stdout_tail": redact(outcome.stdout_tail, secrets),
                  "stderr_tail": redact(outcome.stderr_tail, secrets),
                  "error": outcome.error}
        with self._lock:
            self._owners.pop(job_id, None)
            if self._executions.pop(job_id, None) is not None:
                self._busy -= 1
        self._end(job_id, result)
        self._kick.set()

    def _end(self, job_id: str, result: dict[str, Any]) -> None:
        """Record a job's end. Ends that come together share one commit (a group commit:
        whoever finds no commit under way makes it, for all that are waiting); a result
        is offered to the server only once committed."""
        log.debug("job %s ended: %s", job_id, result.get("exit_code"))
        with self._lock:
            self._ending.append((job_id, result, time.time()))
            if self._committing:
                return
            self._committing = True
        while True:
            with self._lock:
                batch, self._ending = self._ending, []
                if not batch:
                    self._committing = False
                    return
            try:
                self.store.end_many(batch)
            except Exception:
                with self._lock:
                    self._committing = False
                log.exception("recording the end of %s jobs failed", len(batch))
                raise
            with self._changed:
                self._seq += 1
                self._changed.notify_all()

    # ------------------------------------------------------------ purging

    def purge(self, now: float) -> int:
        ids = self.store.purge(now - self.config.keep_days * 86400)
        for job_id in ids:
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return len(ids)


class _Gone(Execution):
    """A job that started and ended while no agent watched: what its files say."""

    def __init__(self, stem: str) -> None:
        self._stem = stem

    def wait(self) -> Outcome:
        code = read_exit(Path(self._stem + ".exit"))
        return Outcome(exit_code=code, outputs=read_outputs(Path(self._stem + ".vars")),
                       stdout_tail=read_tail(Path(self._stem + ".out")),
                       stderr_tail=read_tail(Path(self._stem + ".err")),
                       error="" if code is not None else
                       "the job ended without an exit status while the agent was down")

    def stop(self) -> None:
        pass


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _find_processes(ids: set[str]) -> dict[str, int]:
    """The process groups whose environment names one of these jobs (JAZ_AGENT_JOB)."""
    if not ids:
        return {}
    wanted = {f"JAZ_AGENT_JOB={i}".encode(): i for i in ids}
    found: dict[str, int] = {}
    own = os.getpgrp()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            pgid = os.getpgid(int(name))
        except OSError:
            continue
        for entry in environ:
            job_id = wanted.get(entry)
            if job_id is not None and pgid != own:
                found.setdefault(job_id, pgid)
    return found
