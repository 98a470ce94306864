"""What an SSH job sends and receives on its channel (docs/ssh.md): the POSIX sh wrapper
the channel's stdin carries, and the parsing of what comes back.

The wrapper runs in the session sshd made for the channel (a session and process group
of its own, which outlives the connection: sshd signals no process of a session without
a terminal when the connection drops; tests/test_ssh_follow.py kills that sshd process).
With a *job folder* on the host (jaz's `~/.jaz/jobs`), the job's stdout and stderr go
into files there (read with SFTP while it runs, jaz.hosts.sshexec) and its status into
`ID.st` when its shell ends; the channel only tells that end at once. So a job whose
connection drops, or whose jaz process ends, runs on, and is followed from its files
once the host answers again. Without one (a home that cannot hold it), the job's output
goes onto the channel, and the job dies when it next writes after a drop.
"""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from jaz.engine.executors.base import Attempt, redact

BOOT = "exec /bin/sh -s"   # the command sshd runs: nothing of the job (it comes on stdin)
# where the login shell is POSIX sh: read stdin to its end with builtins, then run it
# (one exec fewer a job; payloads past READ_LIMIT go through /bin/sh -s)
READ_EVAL = ('_jaz_s=; while IFS= read -r _jaz_l; do _jaz_s="$_jaz_s$_jaz_l\n"; done; '
             'eval "$_jaz_s"')
READ_LIMIT = 1 << 16
_ENV_NAME = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def boot_for(posix: bool, payload: bytes) -> str:
    return READ_EVAL if posix and len(payload) < READ_LIMIT else BOOT


def wrapper(attempt: Attempt, nonce: str, script: str, shell: str, prefix: str,
            detached: bool) -> bytes:
    """The POSIX sh text the channel's stdin carries: it runs the job, then reports.
    `prefix` is the job's files on the host (PREFIX.vars is its $JAZ_OUTPUT); with
    `detached`, its stdout, stderr, process group and status are written there
    (PREFIX.out, .err, .st), and the report says which of .out and .err the job wrote to.
    Each file costs (about 0.5 ms a file created, here): hence one .st for two things."""
    job = attempt.job
    p = shlex.quote(prefix)
    lines = ["printf '%s\\n' \"$$\""]
    if detached:
        # Files new to the folder: truncating one that holds data makes ext4 write it
        # out at once (auto_da_alloc: ~5 ms a job here); only files left by an earlier
        # job of the same id (a database made again) are emptied.
        # PREFIX.st: the job's process group, then (a line more) its status.
        lines.append(f"if [ -e {p}.vars ]; then : >{p}.vars; fi; "
                     f"printf '%s\\n' \"$$\" >{p}.st")
    env = {**attempt.env, "JAZ_HOST": attempt.host}
    for key, value in env.items():
        if key != "JAZ_OUTPUT" and key and not key[0].isdigit() and set(key) <= _ENV_NAME:
            lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(f"JAZ_OUTPUT={p}.vars; export JAZ_OUTPUT")
    run = f"{shlex.quote(shell)} -c {shlex.quote(script)} </dev/null"
    # The wrapper never calls `exit`: it ends at the EOF of its stdin, with the status
    # of its last command, so it cannot end (and sshd close the channel) before this side
    # has sent that EOF (an EOF on a channel sshd has freed makes it drop the connection).
    # A stop's SIGTERM goes to the whole group: the wrapper outlives it (a handler, not
    # an ignore, so the job's shell gets it as usual) to report how the job ended.
    lines += ["_jaz_rc() { return \"$1\"; }", "trap : TERM",
              f"if {'cd -- ' + shlex.quote(job.cwd) if job.cwd else ':'}; then"]
    if detached:
        lines += [f"{run} >{p}.out 2>{p}.err", "rc=$?", f"printf '%s\\n' \"$rc\" >>{p}.st",
                  f"o=0; e=0; if [ -s {p}.out ]; then o=1; fi; if [ -s {p}.err ]; then e=1; fi",
                  f"printf '\\036JAZ-{nonce}\\036\\n%s%s\\n' \"$o\" \"$e\""]
    else:
        lines += [run, "rc=$?", f"printf '\\036JAZ-{nonce}\\036\\n'"]
    lines += ['if [ -s "$JAZ_OUTPUT" ]; then cat "$JAZ_OUTPUT"'
              + ('' if detached else '; rm -f "$JAZ_OUTPUT"') + '; fi',
              "else rc=1; fi",
              '_jaz_rc "$rc"']
    return ("\n".join(lines) + "\n").encode()


class Sink:
    """A log file fed as data arrives; with secrets, line by line through the redactor.
    `fed` counts the bytes given (the offset of what follows in the job's file there)."""

    def __init__(self, path: Path, secrets_: list[str], *, append: bool = False) -> None:
        self.f = path.open("ab" if append else "wb")
        self.secrets = secrets_
        self.pending = b""
        self.fed = 0

    def feed(self, data: bytes) -> None:
        self.fed += len(data)
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

    def note(self, data: bytes) -> None:
        """Not the job's output file's (the wrapper's own stderr): not counted in `fed`."""
        fed = self.fed
        self.feed(data)
        self.fed = fed

    def close(self) -> None:
        if self.f.closed:
            return
        if self.pending:
            self.f.write(redact(self.pending.decode("utf-8", errors="replace"),
                                self.secrets).encode())
            self.pending = b""
        self.f.close()


class Stdout:
    """The channel's stdout: the pid line, the job's output, the marker and outputs."""

    def __init__(self, sink: Sink, nonce: str, *, note: bool = False) -> None:
        self.sink = sink
        self.note = note   # the job's output is in files: what comes here is the wrapper's
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
            self._sink(self.buf[:at])
            self.trailer = bytearray(self.buf[at + len(self.marker):])
            self.buf = b""
            return
        keep = self._partial()
        if len(self.buf) > keep:
            self._sink(self.buf[:len(self.buf) - keep])
            self.buf = self.buf[len(self.buf) - keep:]

    def _partial(self) -> int:
        """How many bytes at the end may be the start of the marker (held back)."""
        at = self.buf.rfind(b"\x1e", max(0, len(self.buf) - len(self.marker)))
        if at >= 0 and self.marker.startswith(self.buf[at:]):
            return len(self.buf) - at
        return 0

    def _sink(self, data: bytes) -> None:
        if data:
            (self.sink.note if self.note else self.sink.feed)(data)

    def close(self) -> None:
        if self.buf:
            self._sink(self.buf)
            self.buf = b""
        self.sink.close()
