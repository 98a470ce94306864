"""Runs armed ahead of their start (`Core.arm`, the scheduler's next fire): a real core,
its real driver, real jobs. An armed run starts with the runner made for it; a run an
operator changed after it was armed starts as changed; a run that does not start loses
its runner and the log folder made for it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support import real_core, wait_for

from jaz.engine.model import JobState, RunState
from jaz.server.core import Core
from jaz.server.scheduler import Scheduler

NET = '''[jobs.a]
run = "echo a"
[jobs.b]
needs = ["a"]
run = "echo b"
'''


@pytest.fixture
def core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Core]:
    core = real_core(tmp_path, monkeypatch, {"net": NET})
    yield core
    core.close()


def start_soon(core: Core) -> tuple[int, Scheduler]:
    """A run of `net` scheduled a moment from now, and the scheduler that starts it."""
    run_id = core.start("net", at=core.clock.now() + timedelta(milliseconds=300), user="test")
    assert core.service.run(run_id).status == RunState.SCHEDULED
    return run_id, Scheduler(core)


def start_when_due(core: Core, scheduler: Scheduler, run_id: int) -> None:
    at = core.service.run(run_id).scheduled_at
    assert at is not None
    wait_for(lambda: core.clock.now() >= at, "the run's time")
    scheduler.tick(core.clock.now())


def log_folder(core: Core, run_id: int) -> Path:
    return core.settings.log_dir / str(run_id)


def test_an_armed_run_starts_with_the_runner_made_ahead(core: Core) -> None:
    run_id, scheduler = start_soon(core)
    assert core.arm([(run_id, None)]) == 1
    runner = core.armed()[run_id]
    assert log_folder(core, run_id).is_dir()            # made ahead
    assert [e.kind for e in core.service.events(run_id)] == ["run_created"]   # nothing written
    start_when_due(core, scheduler, run_id)
    wait_for(lambda: core.service.run(run_id).status == RunState.SUCCEEDED, "the run")
    assert runner.machine.run.status == RunState.SUCCEEDED   # the armed runner drove it
    assert core.armed() == {}
    jobs = {j.name: j for j in core.service.jobs(run_id)}
    assert all(j.status == JobState.SUCCEEDED for j in jobs.values())
    assert jobs["b"].stdout_tail == "b\n"


def test_a_run_changed_after_it_was_armed_starts_as_changed(core: Core) -> None:
    """A job held between arming and the start: the armed runner, which loaded the job
    before the hold, must not be the one that drives the run (it would start `a`)."""
    run_id, scheduler = start_soon(core)
    core.arm([(run_id, None)])
    runner = core.armed()[run_id]
    core.act("hold", run_id, "a", user="test")
    start_when_due(core, scheduler, run_id)
    wait_for(lambda: core.service.run(run_id).status == RunState.RUNNING
             and core.running() == [run_id], "the run to be driven")
    core.act("release", run_id, "a", user="test")
    wait_for(lambda: core.service.run(run_id).status == RunState.SUCCEEDED, "the run")
    assert runner.machine.run.status == RunState.SCHEDULED   # never used
    events = [(e.kind, e.job) for e in core.service.events(run_id)]
    assert events.index(("hold", "a")) < events.index(("release", "a")) \
        < events.index(("job_started", "a"))


def test_an_armed_run_that_does_not_start_loses_its_runner(core: Core) -> None:
    run_id, _ = start_soon(core)
    core.arm([(run_id, None)], ttl=0.0)
    assert log_folder(core, run_id).is_dir()
    core.act("skip", run_id, None, user="test")
    core.arm([])   # the next fire's arming drops what the last one left
    assert core.armed() == {} and core.service.ctx.armed == {}
    assert not log_folder(core, run_id).exists()
    assert core.service.run(run_id).status == RunState.SKIPPED


def test_arming_stops_at_its_deadline_and_a_runner_past_its_time_is_not_taken(
        core: Core) -> None:
    """Arming must not hold up the start it prepares (`until`); and an armed runner
    loaded too long ago (past `ttl`) is dropped when its run starts, not trusted."""
    run_id, scheduler = start_soon(core)
    assert core.arm([(run_id, None)], until=time.monotonic()) == 0
    assert core.armed() == {} and not log_folder(core, run_id).exists()
    assert core.arm([(run_id, None)], ttl=0.0) == 1
    runner = core.armed()[run_id]
    start_when_due(core, scheduler, run_id)
    wait_for(lambda: core.service.run(run_id).status == RunState.SUCCEEDED, "the run")
    assert runner.machine.run.status == RunState.SCHEDULED   # a new runner drove it
    assert core.armed() == {} and core.service.ctx.armed == {}
