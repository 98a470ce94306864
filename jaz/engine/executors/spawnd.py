"""The spawner: a small helper process that starts the server's local jobs.

Run as `python -I -S spawnd.py FD` by `jaz.engine.executors.spawner` (stdlib only, so
it starts in a few milliseconds), it reads requests from the SOCK_SEQPACKET socket FD
and answers on it:

    request: id, cwd, stdout, stderr, argv, env  ->  started: id, pid
                                                 or failed: id, errno, strerror
    ... and once that process has ended          ->  exited: id, wait status

(and `ready` once, when it is.)
A request is its id (8 bytes, little-endian), then NUL-separated fields: the working
directory, the two log files, the number of arguments, the arguments, and NAME=value
for each variable (none of them can hold a NUL: exec takes C strings). An answer is
`ANSWER` packed (a kind byte, the id, a number), and for a failure the error's text.
The variables are those added to the helper's own environment (the server's,
inherited). Each job leads a new session (its own process group) with stdin on
/dev/null and its output in the two log files, as `LocalExecutor` starts it.
Starting processes here keeps the fork and exec off the server's GIL and lets a burst
of starts run on the other core.

The helper ends when the server closes the socket (or dies): jobs still running go on
(they are in sessions of their own) and a restarted server adopts them.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys

MAX_MESSAGE = 1 << 20   # a request's size limit (the server sends scripts, env, paths)
ANSWER = struct.Struct("<cQq")
STARTED, FAILED, EXITED, READY = b"s", b"f", b"x", b"r"
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
# Python ignores these at start-up and an ignored signal stays ignored across exec: a
# job must get them back as subprocess.Popen gives them back (`yes | head -1` ends quietly).
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def find(shell: bytes, env: dict[bytes, bytes]) -> bytes:
    """The path of `shell` as execvpe would find it with the job's PATH."""
    if b"/" in shell:
        return shell
    for folder in os.get_exec_path(env):   # type: ignore[arg-type]
        path = os.path.join(os.fsencode(folder), shell)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    raise FileNotFoundError(2, os.strerror(2))


def request(argv: list[bytes], cwd: bytes, env: dict[bytes, bytes], stdout: bytes,
            stderr: bytes) -> bytes:
    """A request's fields (all but its id), as `parse` reads them."""
    return b"\0".join([cwd, stdout, stderr, b"%d" % len(argv), *argv,
                       *(key + b"=" + value for key, value in env.items())])


def parse(data: bytes) -> tuple[list[bytes], bytes, dict[bytes, bytes], bytes, bytes]:
    """argv, cwd, env, stdout and stderr from a request's fields; ValueError if malformed."""
    fields = data.split(b"\0")
    if len(fields) < 5 or not fields[3].isdigit():
        raise ValueError("too few fields")
    cwd, stdout, stderr, argc = fields[0], fields[1], fields[2], int(fields[3])
    argv, pairs = fields[4:4 + argc], fields[4 + argc:]
    if not argc or len(argv) < argc or not all(b"=" in pair for pair in pairs):
        raise ValueError("bad arguments or variables")
    env = dict(pair.split(b"=", 1) for pair in pairs)
    return argv, cwd, env, stdout, stderr


def spawn(argv: list[bytes], cwd: bytes, env: dict[bytes, bytes], stdout: bytes,
          stderr: bytes, devnull: int) -> int:
    home = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)   # posix_spawn has no cwd of its own; this process has one thread
        return os.posix_spawn(find(argv[0], env), argv, env, setsid=True,
                              setsigdef=_DEFAULT_SIGNALS, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_OPEN, 1, stdout, _LOG_FLAGS, 0o666),
            (os.POSIX_SPAWN_OPEN, 2, stderr, _LOG_FLAGS, 0o666),
        ])
    finally:
        os.fchdir(home)
        os.close(home)


def serve(sock: socket.socket) -> None:
    base = dict(os.environb)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}   # pid -> request id
    while True:
        readable, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in readable:
            while _drained(wake_r):
                pass
        # every request waiting is started before any answer goes back or any job
        # ended is reaped: in a burst, the CPU goes to the starts first
        answers: list[bytes] = []
        while sock.fileno() in readable:
            try:
                data = sock.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data:
                return   # the server is gone or done
            answers.append(answer(data, base, devnull, children))
        for reply in answers:
            sock.send(reply)
        _reap(sock, children)   # a job may be over before its SIGCHLD is looked at


def answer(data: bytes, base: dict[bytes, bytes], devnull: int,
           children: dict[int, int]) -> bytes:
    """Start the job a request asks for; the answer to send back."""
    rid = int.from_bytes(data[:8], "little")
    try:
        argv, cwd, env, stdout, stderr = parse(data[8:])
        pid = spawn(argv, cwd, {**base, **env}, stdout, stderr, devnull)
    except ValueError as e:   # only the server writes here: never expected
        return ANSWER.pack(FAILED, rid, 0) + f"a malformed request ({e})".encode()
    except OSError as e:
        return ANSWER.pack(FAILED, rid, e.errno or 0) + (e.strerror or str(e)).encode()
    children[pid] = rid
    return ANSWER.pack(STARTED, rid, pid)


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False


def _reap(sock: socket.socket, children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        rid = children.pop(pid, None)
        if rid is not None:
            sock.send(ANSWER.pack(EXITED, rid, status))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the server's to handle
    fd = int(sys.argv[1])
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    try:
        sock.send(ANSWER.pack(READY, 0, os.getpid()))
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        pass


if __name__ == "__main__":
    main()
