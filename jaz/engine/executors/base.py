"""The small interface between the run engine and whatever runs a job."""

from __future__ import annotations

import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from jaz.engine.model import Job
from jaz.value import Value, field

TAIL_BYTES = 4096


class Attempt(Value):
    """Everything an executor needs to run one attempt of one job."""

    run_id: int
    jobnet: str
    job: Job
    attempt: int
    host: str
    env: Mapping[str, str]
    cwd: Path
    base_dir: Path
    stdout_path: Path
    stderr_path: Path
    output_path: Path
    redact: Sequence[str] = ()
    grace: float = 5.0


class Outcome(Value):
    """How an attempt ended. `error` explains a failure that has no exit code."""

    exit_code: int | None
    outputs: Mapping[str, str] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""
    error: str = ""
    stopped: bool = False


class Execution(ABC):
    """A started attempt. `wait` blocks (the engine calls it in a worker thread)."""

    pid: int | None = None

    @abstractmethod
    def wait(self) -> Outcome: ...

    def fileno(self) -> int | None:
        """A descriptor that turns readable when the attempt has ended, or None.

        With one, the driver waits for the attempt in its own select loop, and
        `wait` is only called once it returns at once; without, a thread waits.
        """
        return None

    def report(self, ended: Callable[[], None]) -> bool:
        """Have `ended()` called, from any thread, once the attempt has ended; False
        when this execution cannot tell (then `fileno` or a thread of its own waits).

        With True, `wait` returns at once after `ended`, and `pid` may still be None
        when `start` returns: it is set, from another thread, once the process runs."""
        return False

    @abstractmethod
    def stop(self) -> None:
        """Ask the attempt to end now (stop_command, or SIGTERM, grace, SIGKILL)."""


class Reported(Execution):
    """An execution whose end is told from another thread, by `settle`, exactly once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._outcome: Outcome | None = None
        self._ended: Callable[[], None] | None = None

    def report(self, ended: Callable[[], None]) -> bool:
        with self._lock:
            self._ended = ended
            done = self._done.is_set()
        if done:
            ended()
        return True

    def wait(self) -> Outcome:
        self._done.wait()
        assert self._outcome is not None
        return self._outcome

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def settle(self, outcome: Outcome) -> bool:
        """The attempt's end, once: False when it was settled already."""
        with self._lock:
            if self._done.is_set():
                return False
            self._outcome = outcome
            self._done.set()
            ended = self._ended
        self._settled()
        if ended is not None:
            ended()
        return True

    def _settled(self) -> None:
        """Called once the end is recorded, before `ended` is."""


class Ended(Execution):
    """An attempt that has ended before anyone waits for it (its outcome known)."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def report(self, ended: Callable[[], None]) -> bool:
        ended()
        return True

    def wait(self) -> Outcome:
        return self.outcome

    def stop(self) -> None:
        pass


class Executor(ABC):
    @abstractmethod
    def start(self, attempt: Attempt) -> Execution:
        """Start the attempt; raise `ActionError` if it cannot even start."""

    def adopt(self, run_id: int, job: Job, host: str, stem: str) -> Execution | None:
        """The execution of a job this executor started before the process driving its
        run was interrupted (logs at `stem`.out/.err/.vars), found again; None when it
        cannot tell (remote executors can: their hosts keep the job)."""
        return None


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a log file, cut at a line start where possible."""
    try:  # this runs twice for every job that ends, and many jobs leave a log empty
        if os.stat(path).st_size == 0:
            return ""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, limit, max(0, size - limit))
        finally:
            os.close(fd)
    except OSError:
        return ""
    if size > limit:
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:
            data = data[nl + 1:]
    return data.decode("utf-8", errors="replace")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_outputs(text: str) -> dict[str, str]:
    """`NAME=value` lines and `NAME<<DELIM` … `DELIM` blocks, as GitHub Actions writes them.

    Lines that are neither are ignored; the last value of a name wins.
    """
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            if _NAME.fullmatch(name.strip()) and delim.strip():
                block: list[str] = []
                while i < len(lines) and lines[i] != delim.strip():
                    block.append(lines[i])
                    i += 1
                i += 1  # the closing delimiter
                out[name.strip()] = "\n".join(block)
                continue
        if "=" in line:
            name, value = line.split("=", 1)
            if _NAME.fullmatch(name.strip()):
                out[name.strip()] = value
    return out


def read_outputs(path: Path) -> dict[str, str]:
    try:  # usually missing: a job that sets no outputs never creates its $JAZ_OUTPUT
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    with open(fd, encoding="utf-8", errors="replace") as f:
        return parse_outputs(f.read())
