"""Jobs on SSH hosts, behind the engine's Executor/Execution interface (docs/ssh.md).

Each job is one session channel on one of its host's pooled connections (jaz.hosts.ssh;
SESSIONS channels each, a second connection opened when the first is full, up to the
host's `connections`). The command sshd runs is fixed and holds nothing of the job
(READ_EVAL or BOOT, so `ps` on the host shows no script, environment or secret); the job
itself comes on the channel's stdin (jaz.hosts.sshjob), and its stdout and stderr are
written into the run's log files as they arrive.

Where the host has a job folder (`~/.jaz/jobs`), the job's output and status are also
written there, in files named by a job id that any later process of the same database
computes again. A connection lost mid-job then does not end it: the job runs on there,
and is followed from its files (reconnecting with backoff, for up to the host's
`offline_after`) to its real end; a restarted `jaz server` or `jaz run --resume` adopts
it the same way. The files are removed once the result is read.

A stop (or a timeout) runs `stop_command` on the host, or sends SIGTERM to the job's
process group, then SIGKILL after the grace time, over a control channel, and waits
until the group is gone there.
"""

from __future__ import annotations

import logging
import random
import secrets
import select
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jaz.engine.durations import format_duration
from jaz.engine.executors.base import (
    Attempt,
    Ended,
    Execution,
    Outcome,
    Reported,
    parse_outputs,
    read_tail,
    redact,
)
from jaz.errors import ActionError, JazError
from jaz.hosts.config import Host
from jaz.hosts.ssh import Connection
from jaz.hosts.sshjob import Sink, Stdout, boot_for, wrapper

log = logging.getLogger("jaz.hosts.ssh")
DRAIN_SECONDS = 1.0    # how long output may trail the wrapper's exit (a background child)
OUTPUT_EVERY = 0.25    # seconds between reads of a running job's output files
FOLLOW_EVERY = 0.5     # seconds between looks at a followed job's files
BACKOFF = (0.2, 5.0)   # first and longest pause between reconnections while following
STOP_AWAY = 30.0       # a stopped job being followed: how long its host may stay away


def boot(conn: Connection, payload: bytes) -> str:
    return boot_for(conn.posix, payload)


class _Closing(Exception):
    """This process is closing its connections: the job is left running there."""


@dataclass(frozen=True)
class _Look:
    pid: int | None      # the job's process group (None: no trace of the job there)
    alive: bool
    rc: int | None       # its status (once its shell ended)


class SshExecution(Reported):
    def __init__(self, hosts: SshHosts, host: Host, attempt: Attempt, script: str,
                 shell: str, *, adopted: bool = False) -> None:
        super().__init__()
        self.hosts = hosts
        self.host = host
        self.attempt = attempt
        self.job_id = hosts.job_id(attempt)
        self.nonce = secrets.token_hex(16)
        self.conn: Connection | None = hosts.conn(host.name) if adopted else None
        self.prefix = ""
        self._script = (script, shell)
        self._stopping = threading.Event()
        self._pid: int | None = None
        self._killer: threading.Thread | None = None
        self._spent: Connection | None = None   # its result is read: its files can go
        if not adopted:
            for path in (attempt.stdout_path, attempt.stderr_path):
                path.write_bytes(b"")   # there from the start, for `jaz logs -f`
        threading.Thread(target=self._run, args=(adopted,), daemon=True,
                         name=f"ssh-{host.name}-{attempt.job.name}").start()

    # ------------------------------------------------------------ the interface

    def stop(self) -> None:
        with self._lock:
            again = self._stopping.is_set()
            self._stopping.set()
            pid = self._pid
        if pid is None:
            return   # not started (or not found) yet: its thread sees the stop
        self._start_killer(pid, 0.0 if again else self.attempt.grace)

    def _start_killer(self, pid: int, grace: float) -> None:
        killer = threading.Thread(target=self._kill_logged, args=(pid, grace), daemon=True,
                                  name="ssh-stop")
        if grace > 0 or self._killer is None:
            self._killer = killer
        killer.start()

    def _know_pid(self, pid: int) -> None:
        """The job's process group is known: a stop that came before it is carried out."""
        with self._lock:
            if self._pid is not None:
                return
            self._pid = pid
            stopping = self._stopping.is_set()
        self.pid = pid
        if stopping and pid > 0:
            self._start_killer(pid, self.attempt.grace)

    # ------------------------------------------------------------ the job's thread

    def _run(self, adopted: bool) -> None:
        try:
            outcome = self._adopt() if adopted else self._session()
        except _Closing:
            return   # (left running there: the next process adopts it)
        except JazError as e:
            outcome = Outcome(exit_code=None, error=e.message,
                              stopped=self._stopping.is_set())
        except Exception as e:   # a bug: the job ends in error, the run goes on
            log.exception("host %s: the SSH job failed", self.host.name)
            outcome = Outcome(exit_code=None, error=f"SSH executor failed: {e!r}")
        # its files go with the next batch (before the engine hears: a close that follows
        # at once removes them too; the command itself runs after)
        full = self._spent.spend(self.prefix) if self._spent is not None else False
        self.settle(outcome)
        if full and self._spent is not None:
            self._spent.clean()

    def _session(self) -> Outcome:
        a = self.attempt
        if self._stopping.is_set():
            return Outcome(exit_code=None, stopped=True, error="stopped before it started")
        conn = self.conn = self.hosts.job_conn(self.host.name)   # (a slot held)
        if self._stopping.is_set():
            conn.free_slot()
            return Outcome(exit_code=None, stopped=True, error="stopped before it started")
        chan = conn.open(held=True)
        detached = bool(conn.jobs_dir)
        self.prefix = f"{conn.jobs_dir}/{self.job_id}" if detached \
            else f"{conn.workdir}/{self.nonce}"
        conn.running += 1
        conn.executions.add(self)
        secrets_ = [s for s in a.redact if s]
        out = Sink(a.stdout_path, secrets_)
        err = Sink(a.stderr_path, secrets_)
        channel = Stdout(out, self.nonce, note=detached)   # (output in files: only notes)
        tick = (lambda: self._copy(conn, out, err)) if detached else None
        try:
            payload = wrapper(a, self.nonce, *self._script, self.prefix, detached)
            chan.exec_command(boot(conn, payload))
            chan.sendall(payload)
            chan.shutdown_write()
            status = self._stream(conn, chan, channel, err, tick, detached)
        except (OSError, JazError):   # (the connection broke while sending or reading)
            status = None
        finally:
            conn.executions.discard(self)
            conn.running -= 1
            conn.release(chan)
        trailer = None if channel.trailer is None else \
            channel.trailer.decode("utf-8", "replace")
        unread = False   # (its output could not be read: followed like a lost job)
        if detached and trailer is not None:   # its first line: which files it wrote
            flags, _, trailer = trailer.partition("\n")
            try:
                self._copy(conn, out, err, flags)
            except JazError as e:
                log.warning("host %s: %s", self.host.name, e.message)
                unread = True
        lost = (status is None and not conn.alive()) or unread
        if lost and conn.closing:
            channel.close()
            err.close()
            if detached:
                raise _Closing
            return Outcome(exit_code=None, stopped=self._stopping.is_set(), error=(
                f"host {self.host.name!r}: the process running the job ended (its SSH "
                "connection closed); the job was killed on the host"))
        if lost:
            if not conn.alive():
                conn.lost("the SSH connection was lost mid-job")
            if not detached:
                channel.close()
                err.close()
                return self._lost(channel.pid)
            log.warning("host %s: the SSH connection was lost mid-job %s; following it",
                        self.host.name, a.job.name)
            if channel.pid is not None and channel.pid > 0:
                self._know_pid(channel.pid)
            return self._follow(out, err)
        channel.close()
        err.close()
        if self._killer is not None:
            self._killer.join(timeout=a.grace + 30)
        if detached:
            self._spent = conn
        return self._outcome_of(status, trailer)

    def _copy(self, conn: Connection, out: Sink, err: Sink, flags: str = "11") -> None:
        """What is new in the job's .out and .err there into the log files (`flags`:
        which of them to look at)."""
        for sink, stream, flag in ((out, "out", flags[:1]), (err, "err", flags[1:2])):
            if flag != "0":
                sink.fed = conn.copy(f"{self.prefix}.{stream}", sink.fed, sink.feed)

    def _stream(self, conn: Connection, chan: Any, out: Stdout, err: Sink,
                tick: Callable[[], None] | None, detached: bool) -> int | None:
        """The channel to its end (its output into the log files; with the job's output
        in files, `tick` copies what is new there every OUTPUT_EVERY): the exit status,
        None when the connection was lost first."""
        drain: float | None = None
        due = time.monotonic() + OUTPUT_EVERY
        feed_err = err.note if detached else err.feed
        while True:
            if out.pid is not None and self._pid is None:
                self._know_pid(out.pid)
            got = False
            while chan.recv_ready():
                out.feed(chan.recv(65536))
                got = True
            while chan.recv_stderr_ready():
                feed_err(chan.recv_stderr(65536))
                got = True
            if got:
                continue
            if tick is not None and time.monotonic() >= due:
                try:
                    tick()
                except JazError as e:
                    if not conn.alive():
                        return None
                    log.warning("host %s: %s (tried again)", self.host.name, e.message)
                due = time.monotonic() + OUTPUT_EVERY
            if chan.eof_received:   # (the pipe stays readable now: wait on the status)
                if chan.exit_status_ready():
                    break
                if not conn.alive():
                    return None
                chan.status_event.wait(OUTPUT_EVERY)
                continue
            if chan.exit_status_ready():
                if chan.closed:
                    break
                drain = drain or time.monotonic() + DRAIN_SECONDS
                if time.monotonic() > drain:
                    break
                select.select([chan], [], [], 0.1)
                continue
            if not conn.alive():
                return None
            select.select([chan], [], [], OUTPUT_EVERY)
        status: int = chan.recv_exit_status()
        if status < 0 and not conn.alive():
            return None
        return status

    def _outcome_of(self, status: int | None, trailer: str | None) -> Outcome:
        """The job's end: its status, and what its wrapper reported after it (None: it
        never got there)."""
        a = self.attempt
        outputs = parse_outputs(trailer) if trailer is not None else {}
        outputs = {k: redact(v, a.redact) for k, v in outputs.items()}
        stopped = self._stopping.is_set()
        tails: dict[str, Any] = {"stdout_tail": read_tail(a.stdout_path),
                                 "stderr_tail": read_tail(a.stderr_path)}
        if status is None or status < 0 or trailer is None:
            if stopped:
                return Outcome(exit_code=None, stopped=True, outputs=outputs,
                               error="stopped: its process group on the host was killed",
                               **tails)
            return Outcome(exit_code=None if status is None or status < 0 else status,
                           outputs=outputs, error=(
                               "the job's shell on the host was killed (no exit status)"
                               if status is None or status < 0 else
                               f"the job's wrapper ended with {status} before the job "
                               "ran (see its stderr)"), **tails)
        return Outcome(exit_code=status, outputs=outputs, stopped=stopped, **tails)

    # ------------------------------------------------------------ following its files

    def _adopt(self) -> Outcome:
        """A job started by an earlier process: followed from its files there."""
        a = self.attempt
        secrets_, note = _secrets_of(a)
        out = Sink(a.stdout_path, secrets_ or [], append=True)
        err = Sink(a.stderr_path, secrets_ or [], append=True)
        for sink, path in ((out, a.stdout_path), (err, a.stderr_path)):
            try:   # what was written before (exact unless the job has secrets)
                sink.fed = path.stat().st_size
            except OSError:
                pass
        if secrets_ is None:
            err.f.write(f"[jaz: {note}]\n".encode())
            err.f.flush()
        return self._follow(out, err, copy=secrets_ is not None)

    def _follow(self, out: Sink, err: Sink, *, copy: bool = True) -> Outcome:
        """Follow the job from its files on the host until it ends there: new output
        into the log files, its status once written. Reconnects with backoff; after the
        host's `offline_after` away, the job ends in error (it may still run there)."""
        conn = self.conn
        assert conn is not None
        name = self.host.name
        away: float | None = None
        backoff = BACKOFF[0]
        try:
            while True:
                if conn.closing:
                    raise _Closing
                try:
                    conn.transport()
                    if not conn.jobs_dir:
                        return Outcome(exit_code=None, error=(
                            f"host {name!r} has no job folder (~/.jaz/jobs) any more: the "
                            "job's end cannot be read there"))
                    self.prefix = f"{conn.jobs_dir}/{self.job_id}"
                    look = self._look(conn)
                    if look.pid is None:
                        return Outcome(exit_code=None, error=(
                            f"host {name!r} has no trace of the job (its files in "
                            f"{conn.jobs_dir} are gone): its end is unknown"))
                    self._know_pid(look.pid)
                    if copy:
                        self._copy(conn, out, err)
                    away, backoff = None, BACKOFF[0]
                    if look.rc is not None or not look.alive:
                        vars_ = bytearray()
                        conn.copy(f"{self.prefix}.vars", 0, vars_.extend)
                        out.close()
                        err.close()
                        if self._killer is not None:
                            self._killer.join(timeout=self.attempt.grace + 30)
                        self._spent = conn
                        return self._outcome_of(look.rc, None if look.rc is None else
                                                vars_.decode("utf-8", "replace"))
                except JazError as e:
                    away = away or time.monotonic()
                    if self._stopping.is_set() and time.monotonic() - away > STOP_AWAY:
                        return Outcome(exit_code=None, stopped=True, error=(
                            f"stopped while host {name!r} was unreachable: its process "
                            f"group (pid {self._pid}) may still run there; it is killed "
                            f"when the host answers again; last error: {e.message}"))
                    if time.monotonic() - away > self.host.offline_after:
                        return Outcome(exit_code=None, stopped=self._stopping.is_set(),
                                       error=(
                            f"host {name!r} unreachable for more than "
                            f"{format_duration(self.host.offline_after)} while following "
                            f"the job: its end is unknown (it may still run there); last "
                            f"error: {e.message}"))
                    self.hosts.closing.wait(backoff * random.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, BACKOFF[1])
                    continue
                self.hosts.closing.wait(FOLLOW_EVERY)
        finally:
            out.close()
            err.close()

    def _look(self, conn: Connection) -> _Look:
        """The job's state there, with builtins only: its group, then its status (in
        this order: a group gone after its status was read would look killed)."""
        p = shlex.quote(self.prefix)
        script = (f"p=; r=; {{ read p <{p}.st; }} 2>/dev/null\n"
                  'if [ -n "$p" ] && kill -0 -"$p" 2>/dev/null; then a=1; else a=0; fi\n'
                  f"{{ {{ read p; read r; }} <{p}.st; }} 2>/dev/null\n"
                  'echo "jaz-look $p/$a/$r"\n').encode()
        _, stdout, _ = conn.run(boot(conn, script), stdin=script, timeout=30)
        line = next((x for x in stdout.decode(errors="replace").splitlines()
                     if x.startswith("jaz-look ")), "")
        fields = line[9:].split("/")
        if len(fields) != 3:
            raise ActionError(f"host {conn.host.name!r}: cannot read the job's state there "
                              f"({stdout[:200]!r})")

        def number(text: str) -> int | None:
            return int(text) if text.strip().isdigit() else None

        return _Look(pid=number(fields[0]), alive=fields[1] == "1", rc=number(fields[2]))

    # ------------------------------------------------------------ killing it

    def _lost(self, pid: int | None) -> Outcome:
        """The connection broke mid-job on a host without a job folder (its output had
        only the channel): kill what is left of it once the host answers again (bounded
        by the connect timeout), and say what happened."""
        name = self.host.name
        what = "its end is unknown"
        if pid is not None and pid > 0:
            try:
                self._kill(pid, 0.0)
                what = "its remote process group was killed"
            except JazError as e:
                assert self.conn is not None
                self.conn.orphans.add(pid)
                what = (f"its remote process group (pid {pid}) may still run ({e.message}); "
                        "it is killed when the host answers again")
        return Outcome(exit_code=None, stopped=self._stopping.is_set(),
                       stdout_tail=read_tail(self.attempt.stdout_path),
                       stderr_tail=read_tail(self.attempt.stderr_path),
                       error=f"host {name!r}: the SSH connection was lost mid-job; {what} "
                             "(the host has no job folder: see docs/ssh.md)")

    def abandon(self) -> None:
        """This process is closing: a job whose output has only its channel is killed
        on the host now; one with a job folder runs on (the next process adopts it)."""
        pid = self._pid
        conn = self.conn
        if pid is not None and pid > 0 and conn is not None and not conn.jobs_dir:
            self._kill_logged(pid, 0.0)

    def _kill_logged(self, pid: int, grace: float) -> None:
        """`_kill` in a thread of its own: a failure is logged (the job's own thread sees
        the connection's state and reports it)."""
        try:
            self._kill(pid, grace)
        except JazError as e:
            if self.conn is not None:
                self.conn.orphans.add(pid)   # (killed at the next connection if still there)
            log.warning("host %s: stopping the job (pid %s): %s", self.host.name, pid,
                        e.message)

    def _kill(self, pid: int, grace: float) -> None:
        """stop_command, or TERM to the job's group, KILL after `grace`; returns when the
        group is gone on the host (checked there)."""
        conn = self.conn
        assert conn is not None
        job = self.attempt.job
        g = f"-{int(pid)}"
        tries = max(1, int(grace * 10))
        parts = []
        if job.stop_command and grace > 0:
            parts.append(f"JAZ_PID={pid} {shlex.quote(job.shell)} -c "
                         f"{shlex.quote(job.stop_command)} </dev/null >/dev/null 2>&1")
        elif grace > 0:
            parts.append(f"kill -TERM {g} 2>/dev/null")
        parts += [f"i=0; while kill -0 {g} 2>/dev/null && [ $i -lt {tries} ]; "
                  "do sleep 0.1; i=$((i+1)); done",
                  f"kill -KILL {g} 2>/dev/null",
                  f"i=0; while kill -0 {g} 2>/dev/null && [ $i -lt 100 ]; "
                  "do sleep 0.05; i=$((i+1)); done",
                  f"if kill -0 {g} 2>/dev/null; then echo alive; else echo gone; fi"]
        script = ("\n".join(parts) + "\n").encode()
        code, stdout, _ = conn.run(boot(conn, script), stdin=script, timeout=grace + 30)
        if b"gone" not in stdout:
            raise ActionError(f"host {self.host.name!r}: process group {pid} is still "
                              "there after SIGKILL")


def _secrets_of(attempt: Attempt) -> tuple[list[str] | None, str]:
    """An adopted job's secrets (to redact what it wrote since), from jaz's secrets as a
    run reads them; None (its output is then not copied) when they cannot be read."""
    from jaz.engine.model import Secret

    names = [v.name for v in attempt.job.env.values() if isinstance(v, Secret)]
    if not names:
        return [], ""
    from jaz.engine.secrets import Secrets
    from jaz.paths import jaz_home

    try:
        store = Secrets(jaz_home() / "secrets.toml")
        return [s for s in (store.get(n) for n in names) if s], ""
    except JazError as e:
        return None, (f"the output it wrote after this process took it back is not copied "
                      f"here: its secrets cannot be read to redact it ({e.message})")


class SshHosts:
    """The SSH hosts' pooled connections (made with a host's first job; another when
    those are full, up to the host's `connections`), their heartbeats in a server, and
    their jobs."""

    HEARTBEAT = 5.0

    def __init__(self, hosts: dict[str, Host], job_id: Callable[[Attempt], str]) -> None:
        self.hosts = hosts
        self.job_id = job_id
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._free = threading.Condition()
        self.closing = threading.Event()
        self._beat: threading.Thread | None = None

    def conn(self, name: str) -> Connection:
        """The host's first connection (heartbeats, files, stops, reboots)."""
        with self._lock:
            conn = self._conns.get(name)
            if conn is None:
                conn = self._conns[name] = Connection(self.hosts[name], on_free=self._freed)
                conn.pool.append(conn)
            return conn

    def job_conn(self, name: str) -> Connection:
        """A connection of the host's with a job slot taken for the caller: the first
        with one free, else a new one (up to the host's `connections`), else the first
        to free one."""
        host = self.hosts[name]
        first = self.conn(name)
        limit = max(1, host.connections)
        with self._free:
            while True:
                for c in list(first.pool):
                    if c.take_slot():
                        return c
                if len(first.pool) < limit:
                    c = Connection(host, on_free=self._freed, pool=first.pool)
                    c.take_slot()
                    first.pool.append(c)
                    return c
                self._free.wait()

    def _freed(self) -> None:
        with self._free:
            self._free.notify()

    def start(self, attempt: Attempt, host: Host, script: str, shell: str) -> Execution:
        return SshExecution(self, host, attempt, script, shell)

    def adopt(self, attempt: Attempt) -> Execution:
        """A job an earlier process started there: followed from its files."""
        host = self.hosts[attempt.host]
        try:
            return SshExecution(self, host, attempt, "", "", adopted=True)
        except JazError as e:
            return Ended(Outcome(exit_code=None, error=e.message))

    def connect_all(self) -> None:
        """Connect to every SSH host now and keep checking them (a server's heartbeat)."""
        for name, host in self.hosts.items():
            if host.ssh is not None:
                self.conn(name)
        if self._beat is None:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name="ssh-heartbeat")
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self.closing.is_set():
            with self._lock:
                conns = list(self._conns.values())
            threads = [threading.Thread(target=c.check, daemon=True) for c in conns]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            self.closing.wait(self.HEARTBEAT)

    def status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            conns = dict(self._conns)
        out = {}
        for name, c in conns.items():
            view = c.status()
            view["in_flight"] = c.busy()   # (on all its connections)
            out[name] = view
        return out

    def close(self) -> None:
        """Close the connections. Jobs with a job folder on their host run on there (a
        restarted server, or `jaz run --resume`, adopts them); those without one are
        killed there first (their output would have nowhere to go)."""
        self.closing.set()
        with self._lock:
            conns = [x for c in self._conns.values() for x in c.pool]
        for c in conns:
            c.closing = True
            killers = [threading.Thread(target=e.abandon, daemon=True)
                       for e in list(c.executions)]
            for t in killers:
                t.start()
            for t in killers:
                t.join(timeout=10)
            c.clean()
            c.close()
