"""Shell scripts on this host, each in its own process group.

Output goes straight to the log files (the child writes them itself, the cheap
path) unless the job carries secrets: then it is piped through a redactor so a
secret echoed by the script never reaches the disk.
"""

from __future__ import annotations

import os
import pwd
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jaz.engine.executors.base import (
    Attempt,
    Execution,
    Executor,
    Outcome,
    read_outputs,
    read_tail,
    redact,
)
from jaz.engine.model import RunAction
from jaz.errors import ActionError

if TYPE_CHECKING:
    import subprocess  # imported where a job needs it: `jaz run` starts most without

_FS = sys.getfilesystemencoding()

DRAIN_SECONDS = 1.0  # how long a piped job's output may trail the end of its shell
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC  # open(path, "wb")
_CHILD_LOG_FLAGS = _LOG_FLAGS & ~os.O_CLOEXEC   # opened in the child, for it to keep
# Python ignores these and an ignored signal stays ignored across exec: a job gets them
# back at their defaults, as Popen gives them back (`yes | head -1` ends quietly).
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it is already gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Child:
    """What `LocalExecution` asks of `subprocess.Popen`, for a process started with
    `os.posix_spawn`: its pid, and its exit code once reaped (-N: killed by signal N)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:   # a waiter holding the lock reaps it
                self._reap(os.WNOHANG)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self) -> int:
        with self._lock:
            while self.returncode is None:
                self._reap(0)
            return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:   # reaped elsewhere: its status is lost
            self.returncode = 255
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)


class LocalExecution(Execution):
    def __init__(self, attempt: Attempt, proc: subprocess.Popen[bytes] | Child,
                 pumps: list[threading.Thread]) -> None:
        self.attempt = attempt
        self.proc = proc
        self.pid = proc.pid
        self._pumps = pumps
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stopper: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        if not pumps:  # output piped through a redactor may outlive the process: use a thread
            try:
                self._pidfd = os.pidfd_open(proc.pid)
            except (AttributeError, OSError):  # not Linux >= 5.3
                self._pidfd = None

    def fileno(self) -> int | None:
        # a stop_command is waited for after the job ends: keep that off the driver thread
        return None if self.attempt.job.stop_command else self._pidfd

    def wait(self) -> Outcome:
        code = self.proc.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        drained = time.monotonic() + DRAIN_SECONDS
        for t in self._pumps:
            # A child the script left running in the background holds the pipe open, so
            # EOF may never come; what the script wrote itself is drained by then.
            t.join(timeout=max(0.0, drained - time.monotonic()))
        if self._stopping.is_set():
            # The leader is gone; make sure nothing of the job outlives the stop.
            kill_group(self.proc.pid)
            with self._lock:
                stopper = self._stopper
            if stopper is not None:
                import subprocess

                try:
                    stopper.wait(timeout=self.attempt.grace)
                except subprocess.TimeoutExpired:
                    kill_group(stopper.pid)
                    stopper.wait()
        return ended(self.attempt, code, stopped=self._stopping.is_set())

    def stop(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                kill_group(self.proc.pid)  # a second stop is impatient: kill now
                return
            self._stopping.set()
            a = self.attempt
            if a.job.stop_command:
                import subprocess

                env = {**os.environ, **a.env, "JAZ_PID": str(self.proc.pid)}
                self._stopper = subprocess.Popen(
                    [a.job.shell, "-c", a.job.stop_command], cwd=a.cwd, env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
            else:
                kill_group(self.proc.pid, signal.SIGTERM)
        timer = threading.Timer(a.grace, self._force)
        timer.daemon = True
        timer.start()

    def _force(self) -> None:
        if self.proc.poll() is None or group_alive(self.proc.pid):
            kill_group(self.proc.pid)


def ended(a: Attempt, code: int, *, stopped: bool) -> Outcome:
    """The outcome of an attempt whose shell ended with `code` (-N: killed by signal N),
    from what it left in its files."""
    outputs = {k: redact(v, a.redact) for k, v in read_outputs(a.output_path).items()}
    if a.redact:
        _redact_file(a.output_path, a.redact)  # it stays in the logs folder
    exit_code = code if code >= 0 else 128 - code
    return Outcome(exit_code=exit_code, outputs=outputs,
                   stdout_tail=redact(read_tail(a.stdout_path), a.redact),
                   stderr_tail=redact(read_tail(a.stderr_path), a.redact),
                   stopped=stopped, error=f"killed by signal {-code}" if code < 0 else "")


def _redact_file(path: Path, secrets: Sequence[str]) -> None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    path.write_text(redact(text, secrets), encoding="utf-8")


def _pump(src: IO[bytes], dest: Path, secrets: list[str]) -> None:
    with dest.open("wb") as out:
        for line in iter(src.readline, b""):
            out.write(redact(line.decode("utf-8", errors="replace"), secrets).encode())
            out.flush()
    src.close()


# The server's jobs outlive a crash of the server: their shell's exit status is kept in
# NAME.N.exit beside the logs, so a restarted server collects the result instead of
# running a finished job again (JAZ's agent keeps start/end/exit code in files likewise).
# A job killed by a signal to its group (stop, timeout) leaves no file: the wrapper dies
# with it.
_RECORD_EXIT = '"$0" -c "$1"; rc=$?; echo "$rc" > "$JAZ_EXIT_FILE"; exit "$rc"'
# Where the job's shell is a POSIX shell and its script sets no trap of its own and
# execs nothing, the shell records its status itself on exit: one process fewer per job
# (a trap on the script's first line keeps its line numbers).
_TRAP_EXIT = "trap 'echo $? > \"$JAZ_EXIT_FILE\"' EXIT; "
_POSIX_SHELLS = frozenset({"sh", "dash", "bash", "ash", "ksh", "mksh", "zsh"})
_OWN_TRAP = re.compile(r"\b(trap|exec)\b")


def recording_argv(shell: str, script: str) -> list[str]:
    """The argv that runs `script` with `shell` and records its exit status in
    $JAZ_EXIT_FILE, even when the server is gone by the time it ends."""
    if os.path.basename(shell) in _POSIX_SHELLS and not _OWN_TRAP.search(script):
        return [shell, "-c", _TRAP_EXIT + script]
    return ["/bin/sh", "-c", _RECORD_EXIT, shell, script]


def exit_file(attempt_output: Path) -> Path:
    """Where the exit status of the attempt whose $JAZ_OUTPUT is given is recorded."""
    return attempt_output.with_suffix(".exit")


def read_exit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class AdoptedExecution(Execution):
    """A job left running by a server that crashed, found again after the restart.

    It is no child of this process, so its end is watched through a pidfd of its group
    leader (the exit-recording wrapper) and its result read from the files it leaves:
    the exit status, its outputs, its logs.
    """

    def __init__(self, pgid: int, stem: str, grace: float) -> None:
        self.pid = pgid
        self._pgid = pgid
        self._stem = stem
        self._grace = grace
        self._stopping = threading.Event()
        try:
            self._pidfd: int | None = os.pidfd_open(pgid)
        except (AttributeError, OSError):   # gone already, or not Linux >= 5.3
            self._pidfd = None

    def fileno(self) -> int | None:
        return self._pidfd

    def wait(self) -> Outcome:
        if self._pidfd is None:   # no pidfd: look until the group is gone
            while group_alive(self._pgid) and read_exit(Path(self._stem + ".exit")) is None:
                self._stopping.wait(0.1)
        else:
            select.select([self._pidfd], [], [])
            os.close(self._pidfd)
            self._pidfd = None
        if self._stopping.is_set():
            kill_group(self._pgid)
        code = read_exit(Path(self._stem + ".exit"))
        stem = self._stem
        return Outcome(exit_code=code, stopped=self._stopping.is_set(),
                       outputs=read_outputs(Path(stem + ".vars")),
                       stdout_tail=read_tail(Path(stem + ".out")),
                       stderr_tail=read_tail(Path(stem + ".err")),
                       error="" if code is not None else
                       "the job ended without an exit status (killed while nobody watched?)")

    def stop(self) -> None:
        if self._stopping.is_set():
            kill_group(self._pgid)
            return
        self._stopping.set()
        kill_group(self._pgid, signal.SIGTERM)
        timer = threading.Timer(self._grace, lambda: kill_group(self._pgid))
        timer.daemon = True
        timer.start()


class LocalExecutor(Executor):
    def __init__(self, *, record_exit: bool = False) -> None:
        # Copying os.environ costs more than a fork; take it once per executor, encoded
        # (bytes keep subprocess from encoding each variable again for every job).
        self._base_env = dict(os.environb)
        self.record_exit = record_exit

    def start(self, attempt: Attempt) -> Execution:
        job = attempt.job
        argv, added = self.command(attempt)
        env = self._base_env.copy()
        env.update(added)
        user_kw = _user(job.user)
        piped = bool(attempt.redact)
        if not piped and not user_kw and (spawned := _spawn(argv, env, attempt)) is not None:
            return LocalExecution(attempt, spawned, [])
        import subprocess

        if piped:
            out = err = subprocess.PIPE
        else:
            out = os.open(attempt.stdout_path, _LOG_FLAGS, 0o666)
            try:
                err = os.open(attempt.stderr_path, _LOG_FLAGS, 0o666)
            except OSError:
                os.close(out)
                raise
        try:
            proc = subprocess.Popen(argv, cwd=attempt.cwd,
                                    env=env, stdin=_devnull(), stdout=out, stderr=err,
                                    start_new_session=True, **user_kw)
        except OSError as e:
            raise ActionError(f"cannot start {job.shell}: {e.strerror}",
                              hint="check 'shell' and 'cwd'") from None
        finally:
            if not piped:
                os.close(out)
                os.close(err)
        pumps: list[threading.Thread] = []
        if piped:
            secrets = list(attempt.redact)
            for stream, path in ((proc.stdout, attempt.stdout_path),
                                 (proc.stderr, attempt.stderr_path)):
                assert stream is not None
                t = threading.Thread(target=_pump, args=(stream, path, secrets), daemon=True)
                t.start()
                pumps.append(t)
        return LocalExecution(attempt, proc, pumps)

    def command(self, attempt: Attempt) -> tuple[list[str], dict[bytes, bytes]]:
        """The argv of the attempt's shell and the variables it adds to the environment;
        ActionError when it cannot run here."""
        job = attempt.job
        if not isinstance(job.action, RunAction):
            raise ActionError(f"the local executor cannot run a {job.kind!r} action")
        if not attempt.cwd.is_dir():
            raise ActionError(f"working directory {attempt.cwd} does not exist",
                              hint="fix 'cwd' or create the folder")
        env = {key.encode(_FS, "surrogateescape"): value.encode(_FS, "surrogateescape")
               for key, value in attempt.env.items()}   # (os.fsencode, without its checks)
        if "\0" in job.action.script or "\0" in job.shell or any(
                b"\0" in key or b"\0" in value for key, value in env.items()):
            raise ActionError("the job's script, shell or environment holds a NUL character",
                              hint="remove the \\u0000 from the jobnet file")
        if not self.record_exit:
            return [job.shell, "-c", job.action.script], env
        env[b"JAZ_EXIT_FILE"] = os.fsencode(exit_file(attempt.output_path))
        return recording_argv(job.shell, job.action.script), env


def _spawn(argv: list[str], env: dict[bytes, bytes], attempt: Attempt) -> Child | None:
    """The job started with posix_spawn, which costs less than a Popen: for a POSIX shell
    (which changes to the job's folder itself, posix_spawn having no cwd) or a job that
    runs in this process's folder; None to leave it to Popen."""
    cwd = str(attempt.cwd)
    if cwd != os.getcwd():
        if argv[1] != "-c" or os.path.basename(argv[0]) not in _POSIX_SHELLS:
            return None
        # on the script's first line, so that its line numbers stay as written
        argv = [argv[0], "-c", f"cd -P -- '{_squote(cwd)}' || exit 127; {argv[2]}",
                *argv[3:]]
    if "/" in argv[0]:
        spawn = os.posix_spawn
    elif b"PATH" in env and env[b"PATH"] == os.environb.get(b"PATH"):
        spawn = os.posix_spawnp   # which looks in this process's PATH: the job's too
    else:
        return None
    try:
        pid = spawn(argv[0], argv, env, setsid=True, setsigdef=_DEFAULT_SIGNALS,
                    file_actions=[
            (os.POSIX_SPAWN_DUP2, _devnull(), 0),
            (os.POSIX_SPAWN_OPEN, 1, str(attempt.stdout_path), _CHILD_LOG_FLAGS, 0o666),
            (os.POSIX_SPAWN_OPEN, 2, str(attempt.stderr_path), _CHILD_LOG_FLAGS, 0o666),
        ])
    except OSError as e:
        raise ActionError(f"cannot start {attempt.job.shell}: {e.strerror}",
                          hint="check 'shell' and 'cwd'") from None
    return Child(pid)


def _squote(text: str) -> str:
    """`text` for inside single quotes in a POSIX shell."""
    return text.replace("'", "'\\''")


def _devnull() -> int:
    """/dev/null for the jobs' stdin, opened once (subprocess.DEVNULL opens it per job)."""
    global _DEVNULL
    with _DEVNULL_LOCK:
        if _DEVNULL is None:
            _DEVNULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return _DEVNULL


_DEVNULL: int | None = None
_DEVNULL_LOCK = threading.Lock()


def _user(user: str | None) -> dict[str, Any]:
    if user is None:
        return {}
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ActionError(f"unknown user {user!r} on this host") from None
    if entry.pw_uid == os.getuid():
        return {}
    if os.getuid() != 0:
        raise ActionError(f"cannot run as user {user!r}: jaz is not running as root",
                          hint="run the job through an agent started as root, or drop 'user'")
    return {"user": entry.pw_uid, "group": entry.pw_gid}
