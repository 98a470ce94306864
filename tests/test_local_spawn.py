"""Local jobs start with posix_spawn where they can (a POSIX shell, the job's PATH the
same as jaz's) and with Popen otherwise: both must run the job in its folder, with its
line numbers, its signals at their defaults and its output in the log files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from jaz.engine.executors.base import Execution, Outcome
from jaz.engine.executors.local import Child, LocalExecutor
from jaz.errors import ActionError
from tests.support import wait_for
from tests.test_spawner import attempt


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "it's here"   # a quote, for the `cd` the shell is given
    path.mkdir()
    return path


def finish(execution: Execution) -> Outcome:
    return execution.wait()


def at(folder: Path, script: str, **job: object):   # type: ignore[no-untyped-def]
    a = attempt(folder, script, **job)
    assert a.cwd == folder and str(folder) != os.getcwd()
    return a


def test_a_shell_job_starts_with_posix_spawn_in_its_own_folder(folder: Path) -> None:
    execution = LocalExecutor().start(at(folder, "pwd; nosuch"))
    assert isinstance(execution.proc, Child)   # type: ignore[attr-defined]
    outcome = finish(execution)
    assert outcome.stdout_tail == f"{folder}\n"
    assert ": 1: nosuch: not found" in outcome.stderr_tail   # the script's own line 1
    assert outcome.exit_code == 127


def test_the_scripts_line_numbers_stay_as_written(folder: Path) -> None:
    execution = LocalExecutor().start(at(folder, 'echo "line $LINENO"\necho "line $LINENO"',
                                         shell="bash"))
    assert isinstance(execution.proc, Child)   # type: ignore[attr-defined]
    assert finish(execution).stdout_tail == "line 1\nline 2\n"


@pytest.mark.parametrize("record_exit", [False, True])
def test_a_job_gets_the_signals_python_ignores_back(folder: Path, record_exit: bool) -> None:
    script = "grep SigIgn /proc/self/status; yes | head -1"
    outcome = finish(LocalExecutor(record_exit=record_exit).start(at(folder, script)))
    ignored = int(outcome.stdout_tail.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1))
    assert outcome.stdout_tail.endswith("y\n") and outcome.stderr_tail == ""


def test_exit_codes_and_signals_read_as_from_popen(folder: Path) -> None:
    executor = LocalExecutor()
    assert finish(executor.start(at(folder, "exit 7"))).exit_code == 7
    killed = finish(executor.start(at(folder, "kill -TERM $$")))
    assert killed.exit_code == 128 + signal.SIGTERM and killed.error == "killed by signal 15"


def test_a_stop_ends_a_spawned_job_and_its_group(folder: Path) -> None:
    execution = LocalExecutor().start(at(folder, "sleep 300 & sleep 300; wait"))
    assert isinstance(execution.proc, Child)   # type: ignore[attr-defined]
    execution.stop()
    outcome = finish(execution)
    assert outcome.stopped
    # killed: its orphans stay zombies until init reaps them (which a container's init
    # may never do), so the group is gone when none of its processes still runs
    wait_for(lambda: not running_in_group(execution.pid),  # type: ignore[arg-type]
             "the stopped job's group to be gone", timeout=10)


def running_in_group(pgid: int) -> list[int]:
    """The pids of the processes of group `pgid` that are not zombies (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue   # gone meanwhile
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_job_with_its_own_path_finds_its_commands_there(folder: Path) -> None:
    bin_ = folder / "bin"
    bin_.mkdir()
    (bin_ / "hello-jaz").write_text("#!/bin/sh\necho hello from bin\n")
    (bin_ / "hello-jaz").chmod(0o755)
    a = at(folder, "hello-jaz")
    a = replace(a, env={**a.env, "PATH": f"{bin_}:/usr/bin:/bin"})
    outcome = finish(LocalExecutor().start(a))
    assert outcome.stdout_tail == "hello from bin\n", outcome.stderr_tail


def test_a_shell_that_is_not_posix_runs_in_its_folder_too(folder: Path) -> None:
    script = "import os; print(os.getcwd())"
    execution = LocalExecutor().start(at(folder, script, shell=sys.executable))
    assert isinstance(execution.proc, subprocess.Popen)   # type: ignore[attr-defined]
    assert finish(execution).stdout_tail == f"{folder}\n"


def test_a_shell_that_is_not_there_is_a_clear_error(folder: Path) -> None:
    with pytest.raises(ActionError, match="cannot start no-such-shell: No such file"):
        LocalExecutor().start(at(folder, "true", shell="no-such-shell"))
    with pytest.raises(ActionError, match="cannot start /no/such/sh: No such file"):
        LocalExecutor().start(at(folder, "true", shell="/no/such/sh"))
