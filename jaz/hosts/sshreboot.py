"""`reboot = { host, mode, wait }` on an SSH host: the host's `reboot_command` (default
`sudo -n /sbin/shutdown -r now`) is started detached there (so its channel answers before
the host goes down); mode "normal" first waits until this process runs no job of its
own there. With `wait`, the job ends only once the connection has dropped and sshd
answers (and authenticates) again, or fails after `wait`."""

from __future__ import annotations

import shlex
import threading
import time

from jaz.engine.durations import format_duration
from jaz.engine.executors.base import Attempt, Outcome, Reported
from jaz.engine.model import RebootAction
from jaz.errors import JazError
from jaz.hosts.ssh import Connection

DEFAULT_COMMAND = "sudo -n /sbin/shutdown -r now"
LOOK_EVERY = 0.5


class SshRebootExecution(Reported):
    def __init__(self, conn: Connection, attempt: Attempt) -> None:
        super().__init__()
        action = attempt.job.action
        assert isinstance(action, RebootAction)
        self.conn = conn
        self.action = action
        self.attempt = attempt
        self._stopping = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="ssh-reboot").start()

    def _run(self) -> None:
        try:
            self.settle(self._reboot())
        except JazError as e:
            self.settle(Outcome(exit_code=None, error=e.message))

    def _reboot(self) -> Outcome:
        name = self.conn.host.name
        command = self.conn.host.reboot_command or DEFAULT_COMMAND
        if self.action.mode != "force":
            while self.conn.busy() > 0 and not self._stopping.is_set():
                self._stopping.wait(LOOK_EVERY)
        if self._stopping.is_set():
            return Outcome(exit_code=None, stopped=True, error="stopped before the reboot")
        # detached, so that its channel answers before the host goes down (a command that
        # fails there shows as a connection that never drops)
        detached = (f"nohup /bin/sh -c {shlex.quote('sleep 1; ' + command)} "
                    ">/dev/null 2>&1 </dev/null &")
        from jaz.hosts.sshexec import boot

        script = (detached + "\n").encode()
        code, _, err = self.conn.run(boot(self.conn, script), stdin=script, timeout=30)
        text = f"{name}: started {command!r}\n"
        self.attempt.stdout_path.write_text(text)
        if code != 0:
            return Outcome(exit_code=code, error=f"the reboot command failed on {name!r}: "
                                                 f"{err.decode(errors='replace').strip()}")
        if not self.action.wait:
            return Outcome(exit_code=0, stdout_tail=text)
        deadline = time.monotonic() + self.action.wait
        dropped = False
        while not self._stopping.is_set():
            if not dropped and not self.conn.alive():
                dropped = True
            if dropped:
                try:
                    self.conn.transport()
                    text += f"{name}: sshd is back\n"
                    self.attempt.stdout_path.write_text(text)
                    return Outcome(exit_code=0, stdout_tail=text)
                except JazError:
                    pass   # still away
            if time.monotonic() >= deadline:
                return Outcome(exit_code=None, error=(
                    f"host {name!r} did not come back within "
                    f"{format_duration(self.action.wait)} after its reboot command"
                    + ("" if dropped else " (its connection never dropped)")))
            self._stopping.wait(LOOK_EVERY)
        return Outcome(exit_code=None, stopped=True,
                       error="stopped while waiting for the host to come back")

    def stop(self) -> None:
        self._stopping.set()
