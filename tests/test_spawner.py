"""The server's local jobs start in a spawner process (`spawnd`): real processes, a real
helper, its real socket. What a job leaves (exit code, outputs, logs) must read as it
does for a job the server starts itself; a helper that dies must lose no job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jaz.engine.executors import spawnd
from jaz.engine.executors.base import Attempt, Execution, Outcome
from jaz.engine.executors.local import LocalExecution, LocalExecutor, group_alive
from jaz.engine.executors.spawner import SpawnedExecution, SpawningExecutor
from jaz.engine.model import Job, RunAction
from jaz.errors import ActionError
from tests.support import wait_for


@pytest.fixture
def executor() -> Iterator[SpawningExecutor]:
    spawning = SpawningExecutor(LocalExecutor(record_exit=True))
    yield spawning
    spawning.close()


def attempt(tmp_path: Path, script: str, n: int = 1, **job: object) -> Attempt:
    stem = tmp_path / "logs" / f"a.{n}"
    stem.parent.mkdir(exist_ok=True)
    return Attempt(run_id=1, jobnet="net", job=Job(name="a", action=RunAction(script=script),
                                                   **job),  # type: ignore[arg-type]
                   attempt=1, host="local", env={"GREETING": "hello", "JAZ_OUTPUT":
                                                 f"{stem}.vars"},
                   cwd=tmp_path, base_dir=tmp_path, stdout_path=Path(f"{stem}.out"),
                   stderr_path=Path(f"{stem}.err"), output_path=Path(f"{stem}.vars"),
                   grace=0.5)


def finish(execution: Execution) -> Outcome:
    """The outcome, after the execution reported its end exactly once."""
    told: list[int] = []
    ended = threading.Event()

    def tell() -> None:
        told.append(1)
        ended.set()

    assert execution.report(tell)
    assert ended.wait(15), "the end was never reported"
    outcome = execution.wait()
    assert told == [1]
    return outcome


def said(tmp_path: Path, n: int = 1) -> str:
    """What attempt `n`'s job has written to its stdout so far."""
    try:
        return (tmp_path / "logs" / f"a.{n}.out").read_text()
    except FileNotFoundError:
        return ""


def helper_pid(executor: SpawningExecutor) -> int:
    connection = executor._connection
    assert connection is not None
    return connection.proc.pid


def test_a_job_runs_in_the_spawner_and_leaves_what_a_local_job_leaves(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    script = ('echo "$GREETING from $(pwd)"; echo oops >&2; echo "pid=$$" >> "$JAZ_OUTPUT"; '
              'echo "parent=$PPID" >> "$JAZ_OUTPUT"; exit 3')
    execution = executor.start(attempt(tmp_path, script))
    assert isinstance(execution, SpawnedExecution)
    outcome = finish(execution)
    assert outcome.exit_code == 3 and not outcome.error and not outcome.stopped
    assert outcome.stdout_tail == f"hello from {tmp_path}\n"
    assert outcome.stderr_tail == "oops\n"
    assert outcome.outputs["pid"] == str(execution.pid)
    assert outcome.outputs["parent"] == str(helper_pid(executor))   # not the server's
    assert (tmp_path / "logs" / "a.1.exit").read_text().strip() == "3"   # survives a crash


def test_a_job_leads_its_own_session_with_stdin_on_dev_null(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    script = 'ps -o sid= -o pgid= -p $$; cat; echo "read:$?"'
    outcome = finish(executor.start(attempt(tmp_path, script)))
    sid, pgid = outcome.stdout_tail.split()[:2]
    assert outcome.stdout_tail.endswith("read:0\n")     # /dev/null: EOF at once
    assert sid == pgid and int(sid) != os.getsid(0)


def test_a_job_gets_the_signals_python_ignores_back(tmp_path: Path,
                                                    executor: SpawningExecutor) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; a job must not inherit that (`yes | head -1`
    # would print "Broken pipe" and its exit code would change).
    script = "grep SigIgn /proc/self/status; yes | head -1"
    outcome = finish(executor.start(attempt(tmp_path, script)))
    ignored = int(outcome.stdout_tail.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1))
    assert outcome.stdout_tail.endswith("y\n") and outcome.stderr_tail == ""


def test_a_job_killed_by_a_signal_says_so(tmp_path: Path, executor: SpawningExecutor) -> None:
    outcome = finish(executor.start(attempt(tmp_path, "kill -9 $$")))
    assert outcome.exit_code == 137 and outcome.error == "killed by signal 9"


def test_a_shell_that_is_not_there_fails_the_job_not_the_server(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    outcome = finish(executor.start(attempt(tmp_path, "true", shell="/no/such/sh")))
    assert outcome.exit_code is None
    assert outcome.error.startswith("cannot start /no/such/sh: No such file or directory")
    assert "hint: check 'shell'" in outcome.error
    # the spawner goes on taking jobs
    assert finish(executor.start(attempt(tmp_path, "true", 2))).exit_code == 0


def test_a_shell_is_looked_for_in_the_jobs_path(tmp_path: Path,
                                                executor: SpawningExecutor) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "myshell").write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
    (bin_dir / "myshell").chmod(0o755)
    a = attempt(tmp_path, "echo via-my-shell", shell="myshell")
    a = replace(a, env={**a.env, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    outcome = finish(executor.start(a))
    assert (outcome.exit_code, outcome.stdout_tail) == (0, "via-my-shell\n"), outcome


def test_a_missing_working_directory_is_refused_before_anything_starts(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    a = replace(attempt(tmp_path, "true"), cwd=tmp_path / "nowhere")
    with pytest.raises(ActionError, match="working directory .*nowhere does not exist"):
        executor.start(a)


def test_a_nul_character_is_refused_with_a_clear_error(tmp_path: Path,
                                                       executor: SpawningExecutor) -> None:
    with pytest.raises(ActionError, match="NUL character"):
        executor.start(attempt(tmp_path, "echo a\0b"))


def test_a_stop_ends_the_whole_group(tmp_path: Path, executor: SpawningExecutor) -> None:
    execution = executor.start(attempt(tmp_path, "sleep 30 & echo started; wait"))
    wait_for(lambda: said(tmp_path) == "started\n",
             "the job to start")
    assert execution.pid is not None
    execution.stop()
    outcome = finish(execution)
    assert outcome.stopped and outcome.exit_code == 128 + signal.SIGTERM
    wait_for(lambda: not group_alive(execution.pid or 0), "the background sleep to end")


def test_a_stop_asked_before_the_spawner_answered_still_stops(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    executor.warm()
    execution = executor.start(attempt(tmp_path, "exec sleep 30"))
    execution.stop()   # most likely before the pid came back; either way it must end
    outcome = finish(execution)
    assert outcome.stopped and outcome.exit_code == 128 + signal.SIGTERM


def test_a_second_stop_kills_at_once(tmp_path: Path, executor: SpawningExecutor) -> None:
    execution = executor.start(attempt(tmp_path, "trap '' TERM; echo up; sleep 30"))
    wait_for(lambda: said(tmp_path) == "up\n", "the job")
    execution.stop()
    execution.stop()
    assert finish(execution).stopped


def test_jobs_it_cannot_start_as_asked_start_inline(tmp_path: Path,
                                                    executor: SpawningExecutor) -> None:
    secret = executor.start(replace(attempt(tmp_path, "echo s3cret"), redact=("s3cret",)))
    stopper = executor.start(attempt(tmp_path, "true", 2, stop_command="true"))
    huge = executor.start(attempt(tmp_path, "true #" + "x" * 100_000, 3))
    for execution in (secret, stopper, huge):
        assert isinstance(execution, LocalExecution)
        execution.wait()
    assert said(tmp_path) == "***\n"


def test_jobs_survive_a_helper_that_dies_and_the_next_job_gets_a_new_one(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    gate = tmp_path / "gate"
    execution = executor.start(attempt(
        tmp_path, f'echo up; while [ ! -e {gate} ]; do sleep 0.02; done; '
                  'echo "done=yes" >> "$JAZ_OUTPUT"; exit 5'))
    wait_for(lambda: said(tmp_path) == "up\n", "the job")
    first = helper_pid(executor)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: executor._connection is None, "the server to see the helper gone")
    gate.touch()
    outcome = finish(execution)   # watched through a pidfd, read from the exit file
    assert outcome.exit_code == 5 and outcome.outputs == {"done": "yes"}
    assert finish(executor.start(attempt(tmp_path, "true", 2))).exit_code == 0
    assert helper_pid(executor) != first


def test_closing_ends_the_helper_and_leaves_the_jobs_running(
        tmp_path: Path, executor: SpawningExecutor) -> None:
    gate = tmp_path / "gate"
    execution = executor.start(attempt(
        tmp_path, f'echo up; while [ ! -e {gate} ]; do sleep 0.02; done'))
    wait_for(lambda: said(tmp_path) == "up\n", "the job")
    helper = executor._connection
    assert helper is not None and execution.pid is not None
    executor.close()
    assert helper.proc.wait(timeout=10) == 0
    assert group_alive(execution.pid)   # a restarted server adopts it
    gate.touch()
    wait_for(lambda: (tmp_path / "logs" / "a.1.exit").exists(), "the job to end")
    with pytest.raises(ActionError, match="shutting down"):
        executor.start(attempt(tmp_path, "true", 2))


@pytest.mark.parametrize("command", [
    [sys.executable, "-c", "pass"],                      # ends at once, says nothing
    [sys.executable, "-c", "import time; time.sleep(60)"],   # runs, never says it is ready
    ["/no/such/python"],                                 # cannot even start
])
def test_a_spawner_that_cannot_start_leaves_the_jobs_to_the_server(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        command: list[str]) -> None:
    monkeypatch.setattr("jaz.engine.executors.spawner.READY_WAIT", 0.5)
    spawning = SpawningExecutor(LocalExecutor(record_exit=True), command=command)
    try:
        with caplog.at_level("ERROR", logger="jaz.engine"):
            first = spawning.start(attempt(tmp_path, "echo one"))
            second = spawning.start(attempt(tmp_path, "echo two", 2))
        assert isinstance(first, LocalExecution) and isinstance(second, LocalExecution)
        assert first.wait().exit_code == 0 and second.wait().exit_code == 0
        assert (said(tmp_path), said(tmp_path, 2)) == ("one\n", "two\n")
        errors = [r.getMessage() for r in caplog.records]
        assert len(errors) == 1, errors   # said once, not at every job
        assert "the spawner process did not start" in errors[0]
        assert spawning.broken
    finally:
        spawning.close()


# ---------------------------------------------------------------- the helper's protocol


@pytest.fixture
def helper() -> Iterator[socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([sys.executable, "-I", "-S", spawnd.__file__,
                             str(theirs.fileno())], pass_fds=[theirs.fileno()])
    theirs.close()
    ours.settimeout(15)
    kind, _, pid = spawnd.ANSWER.unpack_from(ours.recv(64))
    assert (kind, pid) == (spawnd.READY, proc.pid)   # the first thing it says
    yield ours
    ours.close()
    assert proc.wait(timeout=10) == 0   # ends when the server's side closes


@pytest.mark.parametrize("fields", [
    b"",                                       # nothing at all
    b"/\0/dev/null\0/dev/null",                # too few fields
    b"/\0/dev/null\0/dev/null\0two\0/bin/true",   # the count is no number
    b"/\0/dev/null\0/dev/null\x000",           # no argument at all
    b"/\0/dev/null\0/dev/null\x003\0/bin/true",   # fewer arguments than counted
    b"/\0/dev/null\0/dev/null\x001\0/bin/true\0NOEQUALSIGN",   # a variable without =
])
def test_a_malformed_request_is_answered_with_a_failure(helper: socket.socket,
                                                        fields: bytes) -> None:
    helper.send((7).to_bytes(8, "little") + fields)
    answer = helper.recv(1024)
    kind, rid, _ = spawnd.ANSWER.unpack_from(answer)
    assert (kind, rid) == (spawnd.FAILED, 7)
    assert answer[spawnd.ANSWER.size:].startswith(b"a malformed request")
    # and it still serves
    helper.send((8).to_bytes(8, "little")
                + spawnd.request([b"/bin/sh", b"-c", b"exit 4"], b"/", {}, b"/dev/null",
                                 b"/dev/null"))
    started = spawnd.ANSWER.unpack_from(helper.recv(1024))
    exited = spawnd.ANSWER.unpack_from(helper.recv(1024))
    assert started[:2] == (spawnd.STARTED, 8) and started[2] > 0
    assert exited[:2] == (spawnd.EXITED, 8) and os.waitstatus_to_exitcode(exited[2]) == 4


def test_a_request_round_trips() -> None:
    fields = spawnd.request([b"/bin/sh", b"-c", b"echo a=b"], b"/tmp",
                            {b"A": b"x=y", b"EMPTY": b""}, b"/o", b"/e")
    assert spawnd.parse(fields) == ([b"/bin/sh", b"-c", b"echo a=b"], b"/tmp",
                                    {b"A": b"x=y", b"EMPTY": b""}, b"/o", b"/e")


def test_a_working_directory_that_is_gone_fails_that_start_alone(
        tmp_path: Path, helper: socket.socket) -> None:
    """The server checks `cwd` before it asks, but the folder may go in between."""
    out = tmp_path / "out"
    helper.send((1).to_bytes(8, "little") + spawnd.request(
        [b"/bin/sh", b"-c", b"pwd"], os.fsencode(tmp_path / "gone"), {}, b"/dev/null",
        b"/dev/null"))
    answer = helper.recv(1024)
    assert spawnd.ANSWER.unpack_from(answer)[:2] == (spawnd.FAILED, 1)
    assert answer[spawnd.ANSWER.size:] == b"No such file or directory"
    helper.send((2).to_bytes(8, "little") + spawnd.request(
        [b"/bin/sh", b"-c", b"pwd"], os.fsencode(tmp_path), {}, os.fsencode(out),
        b"/dev/null"))
    assert spawnd.ANSWER.unpack_from(helper.recv(1024))[:2] == (spawnd.STARTED, 2)
    assert spawnd.ANSWER.unpack_from(helper.recv(1024))[:2] == (spawnd.EXITED, 2)
    assert out.read_text() == f"{tmp_path}\n"
