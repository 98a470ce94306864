"""`--resume` kills what a crashed `jaz run` left running even when no pid was recorded.

A job's pid is committed with the turn after it started (or ~10 ms later), so a crash
in between leaves a running job without one; `kill_stale` then finds the job's
processes by their environment in /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from jaz.engine.machine import kill_stale

CHILDREN = "sleep 300 & sleep 300; wait"


def _job(output: Path, run_id: int = 1, job: str = "a") -> subprocess.Popen[bytes]:
    env = {**os.environ, "JAZ_RUN_ID": str(run_id), "JAZ_JOB": job,
           "JAZ_OUTPUT": str(output)}
    return subprocess.Popen(["/bin/sh", "-c", CHILDREN], env=env, start_new_session=True)


def _members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid and \
                        Path(f"/proc/{entry}/stat").read_text().split(")")[-1].split()[0] != "Z":
                    found.append(int(entry))
            except (OSError, IndexError):
                pass
    return found


def _wait(check, what: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)  # poll interval, not a wait for state


def test_a_job_without_a_recorded_pid_is_found_by_its_environment(tmp_path: Path) -> None:
    ours = tmp_path / "runs.logs" / "1" / "a.1.vars"
    other_db = tmp_path / "other.logs" / "1" / "a.1.vars"  # run 1, job a of another database
    job, other = _job(ours), _job(other_db)
    try:
        _wait(lambda: len(_members(job.pid)) >= 3 and len(_members(other.pid)) >= 3,
              "both jobs and their children to start")
        kill_stale(1, {"a": (None, str(ours))})
        job.wait(timeout=5)
        _wait(lambda: not _members(job.pid), "the job's whole process group to end")
        assert job.returncode == -signal.SIGKILL
        assert other.poll() is None and len(_members(other.pid)) >= 3
    finally:
        for proc in (job, other):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def test_a_recorded_pid_that_is_not_the_job_is_left_alone(tmp_path: Path) -> None:
    stranger = _job(tmp_path / "x.logs" / "2" / "b.1.vars", run_id=2, job="b")
    try:
        _wait(lambda: len(_members(stranger.pid)) >= 3, "the process to start")
        kill_stale(1, {"a": (stranger.pid, str(tmp_path / "runs.logs" / "1" / "a.1.vars"))})
        assert stranger.poll() is None and len(_members(stranger.pid)) >= 3
    finally:
        os.killpg(stranger.pid, signal.SIGKILL)
        stranger.wait()
