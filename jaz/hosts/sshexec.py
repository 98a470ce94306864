"""Jobs on SSH hosts, behind the engine's Executor/Execution interface (docs/ssh.md).

Each job is one session channel on its host's pooled connection (jaz.hosts.ssh), at
most SESSIONS at once per host. The command sshd runs is fixed and holds nothing of the
job (READ_EVAL or BOOT, so `ps` on the host shows no script, environment or secret);
the job itself comes on the channel's stdin: a small POSIX sh wrapper that
reports its pid (the job's process group: sshd starts each session in a new session),
sets the environment, `cd`s, creates `$JAZ_OUTPUT`, runs the job's shell with stdin
from /dev/null, then writes a marker with a nonce only this side knows and the outputs
after it. stdout and stderr are written into the run's log files as they arrive.

A stop (or a timeout) runs `stop_command` on the host, or sends SIGTERM to the job's
process group, then SIGKILL after the grace time, over a control channel, and waits
until the group is gone there. A connection lost mid-job ends the job in error (its
output pipes are gone with it); the group is killed as soon as the host answers again,
so a retry never runs beside it.
"""

from __future__ import annotations

import logging
import secrets
import select
import shlex
import threading
import time
from pathlib import Path
from typing import Any

from jaz.engine.executors.base import (
    Attempt,
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

log = logging.getLogger("jaz.hosts.ssh")
BOOT = "exec /bin/sh -s"   # the command sshd runs: nothing of the job (it comes on stdin)
# where the login shell is POSIX sh: read stdin to its end with builtins, then run it
# (one exec fewer a job; payloads past READ_LIMIT go through /bin/sh -s)
READ_EVAL = ('_jaz_s=; while IFS= read -r _jaz_l; do _jaz_s="$_jaz_s$_jaz_l\n"; done; '
             'eval "$_jaz_s"')
READ_LIMIT = 1 << 16


def boot(conn: Connection, payload: bytes) -> str:
    return READ_EVAL if conn.posix and len(payload) < READ_LIMIT else BOOT
DRAIN_SECONDS = 1.0    # how long output may trail the wrapper's exit (a background child)
_ENV_NAME = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def wrapper(attempt: Attempt, nonce: str, script: str, shell: str, workdir: str) -> bytes:
    """The POSIX sh text the channel's stdin carries: it runs the job, then reports. Only
    the job's own shell is a new process ($JAZ_OUTPUT lives in the connection's private
    folder, so nothing needs creating first, and is read back only if the job wrote it)."""
    job = attempt.job
    lines = ["printf '%s\\n' \"$$\""]
    env = {**attempt.env, "JAZ_HOST": attempt.host}
    for key, value in env.items():
        if key != "JAZ_OUTPUT" and key and not key[0].isdigit() and set(key) <= _ENV_NAME:
            lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(f"JAZ_OUTPUT={shlex.quote(f'{workdir}/{nonce}.vars')}; export JAZ_OUTPUT")
    # The wrapper never calls `exit`: it ends at the EOF of its stdin, with the status
    # of its last command, so it cannot end (and sshd close the channel) before this side
    # has sent that EOF (an EOF on a channel sshd has freed makes it drop the connection).
    # A stop's SIGTERM goes to the whole group: the wrapper outlives it (a handler, not
    # an ignore, so the job's shell gets it as usual) to report how the job ended.
    lines += ["_jaz_rc() { return \"$1\"; }", "trap : TERM",
              f"if {'cd -- ' + shlex.quote(job.cwd) if job.cwd else ':'}; then",
              f"{shlex.quote(shell)} -c {shlex.quote(script)} </dev/null",
              "rc=$?",
              f"printf '\\036JAZ-{nonce}\\036\\n'",
              'if [ -e "$JAZ_OUTPUT" ]; then cat "$JAZ_OUTPUT"; rm -f "$JAZ_OUTPUT"; fi',
              "else rc=1; fi",
              '_jaz_rc "$rc"']
    return ("\n".join(lines) + "\n").encode()


class _Sink:
    """A log file fed as data arrives; with secrets, line by line through the redactor."""

    def __init__(self, path: Path, secrets_: list[str]) -> None:
        self.f = path.open("wb")
        self.secrets = secrets_
        self.pending = b""

    def feed(self, data: bytes) -> None:
        if not self.secrets:
            self.f.write(data)
            self.f.flush()
            return
        self.pending += data
        cut = self.pending.rfind(b"\n") + 1
        if cut == 0 and len(self.pending) < 1 << 16:
            return
        cut = cut or len(self.pending)
        text, self.pending = self.pending[:cut], self.pending[cut:]
        self.f.write(redact(text.decode("utf-8", errors="replace"), self.secrets).encode())
        self.f.flush()

    def close(self) -> None:
        if self.pending:
            self.feed(b"")
            if self.pending:
                self.f.write(redact(self.pending.decode("utf-8", errors="replace"),
                                    self.secrets).encode())
        self.f.close()


class _Stdout:
    """The channel's stdout: the pid line, the job's output, the marker and outputs."""

    def __init__(self, sink: _Sink, nonce: str) -> None:
        self.sink = sink
        self.marker = f"\x1eJAZ-{nonce}\x1e\n".encode()
        self.head = b""
        self.pid: int | None = None
        self.buf = b""
        self.trailer: bytearray | None = None
        self.got_pid = threading.Event()

    def feed(self, data: bytes) -> None:
        if self.pid is None:
            self.head += data
            if b"\n" not in self.head:
                return
            line, _, data = self.head.partition(b"\n")
            self.pid = int(line) if line.strip().isdigit() else -1
            self.got_pid.set()
        if self.trailer is not None:
            self.trailer += data
            return
        self.buf += data
        at = self.buf.find(self.marker)
        if at >= 0:
            self.sink.feed(self.buf[:at])
            self.trailer = bytearray(self.buf[at + len(self.marker):])
            self.buf = b""
            return
        keep = self._partial()
        if len(self.buf) > keep:
            self.sink.feed(self.buf[:len(self.buf) - keep])
            self.buf = self.buf[len(self.buf) - keep:]

    def _partial(self) -> int:
        """How many bytes at the end may be the start of the marker (held back)."""
        at = self.buf.rfind(b"\x1e", max(0, len(self.buf) - len(self.marker)))
        if at >= 0 and self.marker.startswith(self.buf[at:]):
            return len(self.buf) - at
        return 0

    def close(self) -> None:
        if self.buf:
            self.sink.feed(self.buf)
        self.sink.close()


class SshExecution(Reported):
    def __init__(self, conn: Connection, attempt: Attempt, script: str, shell: str) -> None:
        super().__init__()
        self.conn = conn
        self.attempt = attempt
        self.nonce = secrets.token_hex(16)
        self._script = (script, shell)
        self._stopping = threading.Event()
        self._pid: int | None = None
        self._killer: threading.Thread | None = None
        for path in (attempt.stdout_path, attempt.stderr_path):
            path.write_bytes(b"")   # there from the start, for `jaz logs -f`
        threading.Thread(target=self._run, daemon=True,
                         name=f"ssh-{conn.host.name}-{attempt.job.name}").start()

    # ------------------------------------------------------------ the interface

    def stop(self) -> None:
        with self._lock:
            again = self._stopping.is_set()
            self._stopping.set()
            pid = self._pid
        if pid is None:
            return   # not started yet: the job's thread sees the stop and never runs it
        if again:   # a second stop is impatient: kill now
            threading.Thread(target=self._kill_logged, args=(pid, 0.0), daemon=True).start()
            return
        self._killer = threading.Thread(target=self._kill_logged,
                                        args=(pid, self.attempt.grace), daemon=True,
                                        name="ssh-stop")
        self._killer.start()

    # ------------------------------------------------------------ the job's thread

    def _run(self) -> None:
        try:
            self.settle(self._session())
        except JazError as e:
            self.settle(Outcome(exit_code=None, error=e.message,
                                 stopped=self._stopping.is_set()))
        except Exception as e:   # a bug: the job ends in error, the run goes on
            log.exception("host %s: the SSH job failed", self.conn.host.name)
            self.settle(Outcome(exit_code=None, error=f"SSH executor failed: {e!r}"))

    def _session(self) -> Outcome:
        a = self.attempt
        if self._stopping.is_set():
            return Outcome(exit_code=None, stopped=True, error="stopped before it started")
        chan = self.conn.open()   # (waits for a free channel of the host's)
        if self._stopping.is_set():
            self.conn.release(chan)
            return Outcome(exit_code=None, stopped=True, error="stopped before it started")
        self.conn.running += 1
        self.conn.executions.add(self)
        secrets_ = [s for s in a.redact if s]
        out = _Stdout(_Sink(a.stdout_path, secrets_), self.nonce)
        err = _Sink(a.stderr_path, secrets_)
        status: int | None = None
        try:
            payload = wrapper(a, self.nonce, *self._script, self.conn.workdir)
            chan.exec_command(boot(self.conn, payload))
            chan.sendall(payload)
            chan.shutdown_write()
            drain: float | None = None
            while True:
                if out.pid is not None and self._pid is None:
                    with self._lock:
                        self._pid = out.pid
                        stopping = self._stopping.is_set()
                    self.pid = out.pid
                    if stopping:   # stopped while it was starting
                        self._killer = threading.Thread(
                            target=self._kill_logged, args=(out.pid, a.grace), daemon=True)
                        self._killer.start()
                got = False
                while chan.recv_ready():
                    out.feed(chan.recv(65536))
                    got = True
                while chan.recv_stderr_ready():
                    err.feed(chan.recv_stderr(65536))
                    got = True
                if got:
                    continue
                if chan.eof_received:   # (the pipe stays readable now: wait on the status)
                    if chan.exit_status_ready():
                        break
                    chan.status_event.wait(0.5)
                    continue
                if chan.exit_status_ready():
                    if chan.closed:
                        break
                    drain = drain or time.monotonic() + DRAIN_SECONDS
                    if time.monotonic() > drain:
                        break
                    select.select([chan], [], [], 0.1)
                    continue
                if not self.conn.alive():
                    return self._lost(out.pid)
                select.select([chan], [], [], 0.5)
            status = chan.recv_exit_status()
            if (status is None or status < 0) and not self.conn.alive() \
                    and out.trailer is None:
                return self._lost(out.pid)
        finally:
            self.conn.executions.discard(self)
            self.conn.running -= 1
            self.conn.release(chan)
            out.close()
            err.close()
        if self._killer is not None:
            self._killer.join(timeout=a.grace + 30)
        return self._outcome_of(status, out)

    def _outcome_of(self, status: int | None, out: _Stdout) -> Outcome:
        a = self.attempt
        outputs = parse_outputs(out.trailer.decode("utf-8", errors="replace")) \
            if out.trailer is not None else {}
        outputs = {k: redact(v, a.redact) for k, v in outputs.items()}
        stopped = self._stopping.is_set()
        tails: dict[str, Any] = {"stdout_tail": read_tail(a.stdout_path),
                                 "stderr_tail": read_tail(a.stderr_path)}
        if status is None or status < 0 or out.trailer is None:
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

    def _lost(self, pid: int | None) -> Outcome:
        """The connection broke mid-job: kill what is left of it once the host answers
        again (bounded by the connect timeout), and say what happened."""
        name = self.conn.host.name
        if self.conn.closing:
            return Outcome(exit_code=None, stopped=self._stopping.is_set(), error=(
                f"host {name!r}: the process running the job ended (its SSH connection "
                "closed); the job was killed on the host"))
        self.conn.lost("the SSH connection was lost mid-job")
        what = "its end is unknown"
        if pid is not None and pid > 0:
            try:
                self._kill(pid, 0.0)
                what = "its remote process group was killed"
            except JazError as e:
                self.conn.orphans.add(pid)
                what = (f"its remote process group (pid {pid}) may still run ({e.message}); "
                        "it is killed when the host answers again")
        return Outcome(exit_code=None, stopped=self._stopping.is_set(),
                       stdout_tail=read_tail(self.attempt.stdout_path),
                       stderr_tail=read_tail(self.attempt.stderr_path),
                       error=f"host {name!r}: the SSH connection was lost mid-job; {what}")

    def abandon(self) -> None:
        """This process is closing: kill the job on the host now."""
        pid = self._pid
        if pid is not None and pid > 0:
            self._kill_logged(pid, 0.0)

    def _kill_logged(self, pid: int, grace: float) -> None:
        """`_kill` in a thread of its own: a failure is logged (the job's own thread sees
        the connection's state and reports it)."""
        try:
            self._kill(pid, grace)
        except JazError as e:
            self.conn.orphans.add(pid)   # (killed at the next connection if still there)
            log.warning("host %s: stopping the job (pid %s): %s", self.conn.host.name, pid,
                        e.message)

    def _kill(self, pid: int, grace: float) -> None:
        """stop_command, or TERM to the job's group, KILL after `grace`; returns when the
        group is gone on the host (checked there)."""
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
                  f"rm -f {shlex.quote(f'{self.conn.workdir}/{self.nonce}.vars')}",
                  f"if kill -0 {g} 2>/dev/null; then echo alive; else echo gone; fi"]
        script = ("\n".join(parts) + "\n").encode()
        code, stdout, _ = self.conn.run(boot(self.conn, script), stdin=script,
                                        timeout=grace + 30)
        if b"gone" not in stdout:
            raise ActionError(f"host {self.conn.host.name!r}: process group {pid} is still "
                              "there after SIGKILL")


class SshHosts:
    """The SSH hosts' pooled connections (one per host, made with its first job), their
    heartbeats in a server, and their jobs."""

    HEARTBEAT = 5.0

    def __init__(self, hosts: dict[str, Host]) -> None:
        self.hosts = hosts
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._beat: threading.Thread | None = None

    def conn(self, name: str) -> Connection:
        with self._lock:
            conn = self._conns.get(name)
            if conn is None:
                conn = self._conns[name] = Connection(self.hosts[name])
            return conn

    def start(self, attempt: Attempt, host: Host, script: str, shell: str) -> Execution:
        return SshExecution(self.conn(host.name), attempt, script, shell)

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
        while not self._closing.is_set():
            with self._lock:
                conns = list(self._conns.values())
            threads = [threading.Thread(target=c.check, daemon=True) for c in conns]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            self._closing.wait(self.HEARTBEAT)

    def status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            conns = dict(self._conns)
        return {name: c.status() for name, c in conns.items()}

    def close(self) -> None:
        """Close the connections; jobs still running on them are killed there first (an
        SSH job cannot outlive this process: its output would have nowhere to go)."""
        self._closing.set()
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            c.closing = True
            killers = [threading.Thread(target=e.abandon, daemon=True)
                       for e in list(c.executions)]
            for t in killers:
                t.start()
            for t in killers:
                t.join(timeout=10)
            c.close()
