"""The server's local jobs, started by a spawner process (`spawnd`) beside the server.

A server starting a process itself holds its GIL through the fork and waits for the
exec: a third of the driver's busy time in a burst of scheduled starts, while the API
and the scheduler wait. Here the driver only sends a request down a socket and goes
on; the spawner starts the job on the other core and reports its pid and, later, its
exit status, which one reader thread posts back to the job's runner
(`Execution.report`).

Jobs the spawner cannot start as `LocalExecutor` would (output piped through a
redactor, another user, a stop_command waited for after the job) are started inline.
If the spawner dies, the jobs it started are adopted like a crashed server's (a pidfd
of the group leader, the exit status from its file) and the next job starts a new one.
If one cannot start at all (it never says it is ready), that is logged once and every
job starts inline from then on.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from jaz.engine.executors import spawnd
from jaz.engine.executors.base import Attempt, Execution, Executor, Outcome
from jaz.engine.executors.local import (
    AdoptedExecution,
    LocalExecutor,
    _user,
    ended,
    group_alive,
    kill_group,
)
from jaz.errors import ActionError

_log = logging.getLogger("jaz.engine")
MAX_REQUEST = 64 * 1024   # bytes; a larger request (a huge script) is started inline
READY_WAIT = 10.0         # seconds a new spawner may take to say it is ready
HELPER = (sys.executable, "-I", "-S", spawnd.__file__)   # -I -S: the stdlib alone


class SpawnedExecution(Execution):
    """A job the spawner was asked to start; its news comes from the reader thread."""

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.pid: int | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._code: int | None = None       # as os.waitstatus_to_exitcode gives it
        self._outcome: Outcome | None = None   # when it did not end as the spawner's child
        self._stopping = False
        self._ended: Callable[[], None] | None = None

    def report(self, ended: Callable[[], None]) -> bool:
        with self._lock:   # the end and the callback under one lock: told exactly once
            self._ended = ended
            if self._done.is_set():
                ended()
        return True

    def wait(self) -> Outcome:
        self._done.wait()
        if self._outcome is not None:
            return self._outcome
        assert self._code is not None
        if self._stopping and self.pid is not None:
            kill_group(self.pid)   # nothing of the job outlives a stop
        return ended(self.attempt, self._code, stopped=self._stopping)

    def stop(self) -> None:
        with self._lock:
            pid = self.pid
            if self._stopping:   # a second stop is impatient: kill now
                if pid is not None:
                    kill_group(pid)
                return
            self._stopping = True
        if pid is not None:   # else the spawner's answer is on its way: `_began` stops it
            self._term(pid)

    def _term(self, pid: int) -> None:
        kill_group(pid, signal.SIGTERM)
        timer = threading.Timer(self.attempt.grace, self._force, args=(pid,))
        timer.daemon = True
        timer.start()

    def _force(self, pid: int) -> None:
        if not self._done.is_set() or group_alive(pid):
            kill_group(pid)

    # ------------------------------------------------ news, from the reader thread

    def _began(self, pid: int) -> None:
        with self._lock:
            self.pid = pid
            stopping = self._stopping
        if stopping:
            self._term(pid)

    def _end(self, code: int | None, outcome: Outcome | None = None) -> None:
        with self._lock:
            self._code, self._outcome = code, outcome
            self._done.set()
            if self._ended is not None:
                self._ended()

    def _orphaned(self) -> None:
        """The spawner died before this job ended: watch the job as an adopted one."""
        pid = self.pid
        if pid is None:
            self._end(None, Outcome(exit_code=None, error=(
                "the spawner process ended before it reported the start of this job")))
            return
        stem = str(self.attempt.output_path.with_suffix(""))
        adopted = AdoptedExecution(pid, stem, self.attempt.grace)
        if self._stopping:
            adopted.stop()
        threading.Thread(target=lambda: self._end(None, adopted.wait()), daemon=True,
                         name=f"jaz-job-{self.attempt.job.name}").start()


class _Connection:
    """One spawner process, its socket and the thread that reads its answers."""

    def __init__(self, command: Sequence[str],
                 gone: Callable[[_Connection], None]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen([*command, str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        except OSError as e:
            ours.close()
            raise OSError(f"the spawner process did not start: {command[0]}: {e.strerror}"
                          ) from None
        finally:
            theirs.close()
        try:   # a helper that cannot run (no such file, a broken install) says nothing
            ours.settimeout(READY_WAIT)
            hello = ours.recv(64)
            ours.settimeout(None)
            if not hello or spawnd.ANSWER.unpack_from(hello)[0] != spawnd.READY:
                raise OSError(f"it ended at once (exit status {self.proc.wait(5)})")
        except (OSError, struct.error) as e:
            ours.close()
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            raise OSError(f"the spawner process did not start: {e}") from None
        self.sock = ours
        self.waiting: dict[int, SpawnedExecution] = {}
        self.lock = threading.Lock()
        self.closing = False
        self._gone = gone
        self._ids = itertools.count(1)
        threading.Thread(target=self._read, name="spawner", daemon=True).start()

    def send(self, execution: SpawnedExecution, request: bytes) -> None:
        """Ask for the job's start; OSError when the spawner is gone."""
        with self.lock:
            rid = next(self._ids)
            self.waiting[rid] = execution
            try:
                self.sock.send(rid.to_bytes(8, "little") + request)
            except OSError:
                del self.waiting[rid]
                raise

    def close(self) -> None:
        """End the spawner; the jobs it started go on, unwatched (a server shutting down
        leaves them to the next one)."""
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(1024)
                if not data:
                    break
                self._news(data)
        except Exception:   # a broken spawner must not take the server down
            if not self.closing:
                _log.exception("the spawner's answers cannot be read")
        closing = self.closing
        self._gone(self)
        self.sock.close()
        if self.proc.poll() is None and not closing:
            self.proc.kill()   # it answers no more: a new one takes the next jobs
        self.proc.wait()
        with self.lock:
            orphans, self.waiting = list(self.waiting.values()), {}
        if closing:
            return
        if orphans:
            _log.warning("the spawner process ended (%s); the %d jobs it started are "
                         "watched as adopted ones", self.proc.returncode, len(orphans))
        for execution in orphans:
            execution._orphaned()

    def _news(self, data: bytes) -> None:
        kind, rid, value = spawnd.ANSWER.unpack_from(data)
        with self.lock:
            execution = self.waiting.get(rid) if kind == spawnd.STARTED else \
                self.waiting.pop(rid, None)
        if execution is None:
            return
        if kind == spawnd.STARTED:
            execution._began(value)
        elif kind == spawnd.EXITED:
            execution._end(os.waitstatus_to_exitcode(value))
        elif kind == spawnd.FAILED:
            why = data[spawnd.ANSWER.size:].decode(errors="replace")
            execution._end(None, Outcome(exit_code=None, error=(
                f"cannot start {execution.attempt.job.shell}: {why}\n"
                "  hint: check 'shell' and 'cwd'")))


class SpawningExecutor(Executor):
    """Local jobs through the spawner process, started on the first job and again after
    it died; `close` ends it. Jobs it cannot start go to `inline`, and so do all jobs
    once a spawner could not even start (`command`: how to run one)."""

    def __init__(self, inline: LocalExecutor, command: Sequence[str] = HELPER) -> None:
        self.inline = inline
        self._command = tuple(command)
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self._closed = False
        self.broken = ""   # why jobs start inline for good

    def start(self, attempt: Attempt) -> Execution:
        job = attempt.job
        if self.broken or attempt.redact or job.stop_command or _user(job.user):
            return self.inline.start(attempt)
        argv, env = self.inline.command(attempt)
        request = spawnd.request([os.fsencode(arg) for arg in argv], os.fsencode(attempt.cwd),
                                 env, os.fsencode(attempt.stdout_path),
                                 os.fsencode(attempt.stderr_path))
        if len(request) > MAX_REQUEST:   # a huge script or environment: more than a packet
            return self.inline.start(attempt)
        execution = SpawnedExecution(attempt)
        for _ in range(2):   # once more on a new spawner if this one is gone
            connection = self._connect()
            if connection is None:
                break
            try:
                connection.send(execution, request)
                return execution
            except OSError:
                self._gone(connection)   # its reader sees the end and adopts its jobs
        return self.inline.start(attempt)

    def warm(self) -> None:
        """Start the spawner now rather than at the first job."""
        self._connect()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _connect(self) -> _Connection | None:
        """The spawner, started if need be; None when jobs start inline from now on."""
        with self._lock:
            if self._closed:
                raise ActionError("the server is shutting down; no new jobs start")
            if self._connection is None and not self.broken:
                try:
                    self._connection = _Connection(self._command, self._gone)
                except OSError as e:
                    self.broken = str(e)
                    _log.error("%s; the server starts its jobs itself from now on", e)
            return self._connection

    def _gone(self, connection: _Connection) -> None:
        with self._lock:
            if self._connection is connection:
                self._connection = None
