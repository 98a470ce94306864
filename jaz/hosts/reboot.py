"""`reboot = { host, mode, wait }` on an agent host: the agent runs its own
`reboot_command` (mode "force": now; "normal": once its running jobs have ended), and
with `wait` the job ends only when the agent answers again as a new process or after a
new boot (its boot id or its start time changed), or fails after `wait`."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from jaz.engine.durations import format_duration
from jaz.engine.executors.base import Execution, Outcome, Reported
from jaz.errors import JazError

LOOK_EVERY = 0.5   # seconds between hellos while the host is away


class Link(Protocol):
    """What a reboot needs of its host's link (executor.Link)."""

    def hello(self) -> tuple[str, float]: ...

    def start(self, execution: Any) -> None: ...


class RebootExecution(Reported):
    def __init__(self, inner: Execution, link: Link, wait: float) -> None:
        super().__init__()
        self._inner = inner
        self._link = link
        self._wait = wait
        self._stopping = threading.Event()
        self._before: tuple[str, float] | None = None
        inner.report(self._rebooting)
        # who the agent is before it reboots, asked off the driver's thread
        threading.Thread(target=self._send, daemon=True, name="reboot-send").start()

    def _send(self) -> None:
        try:
            self._before = self._link.hello()
        except JazError:
            self._before = None
        self._link.start(self._inner)

    def _rebooting(self) -> None:
        threading.Thread(target=self._come_back, daemon=True, name="reboot-wait").start()

    def _come_back(self) -> None:
        self.settle(self._back())

    def _back(self) -> Outcome:
        sent = self._inner.wait()
        if sent.exit_code != 0 or sent.stopped:
            return sent
        deadline = time.monotonic() + self._wait
        while not self._stopping.is_set():
            try:
                now = self._link.hello()
                if self._before is None or now != self._before:
                    return Outcome(exit_code=0, stdout_tail=f"{sent.stdout_tail}host is back\n",
                                   outputs=dict(sent.outputs))
            except JazError:
                pass   # away while it reboots
            if time.monotonic() >= deadline:
                return Outcome(exit_code=None, error=(
                    f"the host did not come back within {format_duration(self._wait)} "
                    "after its reboot command"))
            self._stopping.wait(LOOK_EVERY)
        return Outcome(exit_code=None, stopped=True,
                       error="stopped while waiting for the host to come back")

    def stop(self) -> None:
        self._stopping.set()
        self._inner.stop()
