"""The server's `Driver`: many runs on one thread, with real processes and a real
SQLite file. Runs that start together are all driven to their end by that one thread,
an action reaches a run it drives, and a run whose turn fails is dropped (logged)
without stopping the others."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

from jaz.engine.loader import load_file
from jaz.engine.machine import RunMachine, Settings
from jaz.engine.model import JobState, RunState
from jaz.engine.runner import Driver, Make, Runner
from jaz.engine.service import Service
from jaz.engine.store import SqliteStore

NET = '''[jobs.a]
run = "echo a"
[jobs.b]
needs = ["a"]
run = "echo b"
[jobs.c]
needs = ["a"]
run = "echo c"
'''
SLOW = '''[jobs.wait]
run = "sleep 30"
'''


class Bench:
    def __init__(self, tmp_path: Path) -> None:
        self.store = SqliteStore(tmp_path / "jaz.db")
        self.service = Service(self.store, Settings(log_dir=tmp_path / "logs", grace=1.0))
        self.ended: list[int] = []
        self.failed: list[int] = []
        self.driver = Driver(self.store, lambda run: self.ended.append(run.id),
                             self.failed.append)
        self.tmp = tmp_path

    def jobnet(self, name: str, text: str) -> Any:
        path = self.tmp / f"{name}.toml"
        path.write_text(text)
        return load_file(path)

    def drive(self, jobnet: Any, resume: Callable[[RunMachine], None] | None = None) -> int:
        return self.drive_all(jobnet, 1, resume)[0]

    def drive_all(self, jobnet: Any, n: int,
                  resume: Callable[[RunMachine], None] | None = None) -> list[int]:
        """n runs handed to the driver in one call, as a schedule's burst is."""
        runs = [self.service.create(jobnet) for _ in range(n)]

        def make(run_id: int) -> Make:
            return lambda loop: (Runner(self.service.ctx, jobnet, run_id, loop), resume)

        self.driver.add(*((run_id, make(run_id)) for run_id in runs))
        return runs


def test_many_runs_started_together_are_all_driven_by_one_thread(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    net = bench.jobnet("net", NET)
    threads = threading.active_count()
    runs = [bench.drive(net) for _ in range(40)]
    wait_for(lambda: sorted(bench.ended) == sorted(runs), "every run to end", timeout=60)
    assert threading.active_count() <= threads + 1     # no thread per run
    for run_id in runs:
        assert bench.service.run(run_id).status == RunState.SUCCEEDED
        jobs = {j.name: j for j in bench.service.jobs(run_id)}
        assert all(j.status == JobState.SUCCEEDED for j in jobs.values())
        assert jobs["b"].started_at >= jobs["a"].ended_at
    assert bench.driver.running() == [] and bench.failed == []


def test_a_burst_handed_over_at_once_is_all_driven(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    runs = bench.drive_all(bench.jobnet("net", NET), 40)
    wait_for(lambda: sorted(bench.ended) == sorted(runs), "every run to end", timeout=60)
    assert all(bench.service.run(r).status == RunState.SUCCEEDED for r in runs)
    assert bench.driver.running() == [] and bench.failed == []


def test_a_burst_begins_in_rounds_so_its_first_job_runs_before_the_last_run_is_made(
        tmp_path: Path) -> None:
    """A burst's runs begin in rounds of 1, 2, 4...: the first run's job has started (in
    the process it wrote its marker from) before the burst's last run is even made.
    Begun all in one round, the last run would be made before any job started."""
    bench = Bench(tmp_path)
    marker = tmp_path / "first-job-ran"
    first = bench.jobnet("first", f'[jobs.a]\nrun = "touch {marker}"\n')
    rest = bench.jobnet("net", NET)
    runs = [bench.service.create(first)] + [bench.service.create(rest) for _ in range(7)]
    seen: list[bool] = []

    def make(run_id: int, jobnet: Any, last: bool) -> Make:
        def runner(loop: Any) -> tuple[Runner, None]:
            if last:   # on the driver's thread: poll with a deadline
                deadline = time.monotonic() + 10
                while not marker.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                seen.append(marker.exists())
            return Runner(bench.service.ctx, jobnet, run_id, loop), None
        return runner

    bench.driver.add(*((run_id, make(run_id, first if i == 0 else rest, i == len(runs) - 1))
                       for i, run_id in enumerate(runs)))
    wait_for(lambda: sorted(bench.ended) == sorted(runs), "every run to end", timeout=60)
    assert seen == [True]
    assert all(bench.service.run(r).status == RunState.SUCCEEDED for r in runs)


def test_an_action_reaches_a_run_the_driver_drives(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    run_id = bench.drive(bench.jobnet("slow", SLOW))
    wait_for(lambda: bench.service.jobs(run_id)[0].status == JobState.RUNNING, "the job")
    assert bench.driver.running() == [run_id]
    bench.service.stop(run_id, user="test")
    wait_for(lambda: bench.ended == [run_id], "the run to end")
    assert bench.service.run(run_id).status == RunState.STOPPED


def test_a_run_whose_turn_fails_is_dropped_and_the_others_go_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="jaz.engine")
    bench = Bench(tmp_path)
    net = bench.jobnet("net", NET)

    def broken(m: RunMachine) -> None:
        raise RuntimeError("a bug in a turn")

    good = [bench.drive(net) for _ in range(5)]
    bad = bench.drive(net, resume=broken)
    good += [bench.drive(net) for _ in range(5)]
    wait_for(lambda: len(bench.ended) == 11, "every run to leave the driver", timeout=60)
    assert bench.failed == [bad]
    # logged with its error, as a failed pass would be
    assert f"run {bad}: the run's driver failed" in caplog.text
    assert "RuntimeError: a bug in a turn" in caplog.text
    assert all(bench.service.run(r).status == RunState.SUCCEEDED for r in good)
    # the failed turn changed nothing: the run is as created, for a restart to resume
    assert all(j.status == JobState.PENDING for j in bench.service.jobs(bad))


def test_settle_waits_until_the_runs_asked_for_have_begun(tmp_path: Path) -> None:
    """`settle` (a long scheduler pass lets the runs it started begin): False while a run
    asked for is not made yet, True once every one has taken its first turn."""
    bench = Bench(tmp_path)
    net = bench.jobnet("net", NET)
    gate = threading.Event()
    run_id = bench.service.create(net)

    def make(loop: Any) -> tuple[Runner, None]:
        gate.wait(10)   # on the driver's thread
        return Runner(bench.service.ctx, net, run_id, loop), None

    bench.driver.add((run_id, make))
    assert bench.driver.settle(0.05) is False
    gate.set()
    assert bench.driver.settle(10) is True
    jobs = {j.name: j for j in bench.service.jobs(run_id)}
    assert jobs["a"].status != JobState.PENDING   # begun: its first job went out
    wait_for(lambda: bench.ended == [run_id], "the run to end")
