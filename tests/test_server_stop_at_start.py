"""An operator's stop that lands while the driver takes a run up (after it read the run
as running, before the run's first turn) is kept: the run ends stopped and none of its
jobs starts. A real core, its real driver and store; the stop is sent at that very
moment from the store's `claim` (which the driver calls after it read the run, before
it makes its runner), while its runner loads the run, or, once the runner is registered,
from its first turn's `batch`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from support import real_core, wait_for

from jaz.engine.model import RunState
from jaz.server.core import Core
from jaz.server.scheduler import Scheduler


@pytest.fixture
def core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Core]:
    ran = tmp_path / "ran"
    core = real_core(tmp_path, monkeypatch, {"net": f'[jobs.a]\nrun = "touch {ran}"\n'})
    yield core
    core.close()


def stop_when_claimed(core: Core, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """From now on, the first run the driver claims is stopped by an operator right then;
    returns a function giving that run's id (0 while none was)."""
    claimed: list[int] = []
    claim = core.store.claim

    def stop_then_claim(run_id: int) -> bool:
        if not claimed:
            claimed.append(run_id)
            core.act("stop", run_id, None, user="operator")
        return claim(run_id)

    monkeypatch.setattr(core.store, "claim", stop_then_claim)
    return lambda: claimed[0] if claimed else 0


def assert_stopped_before_any_job(core: Core, run_id: int, tmp_path: Path,
                                  begun: bool = False) -> None:
    """Stopped, its job never started; and never begun unless `begun` (a stop posted to
    the run's runner comes in its first turn, which begins the run)."""
    assert core.driver.settle(10)
    wait_for(lambda: run_id not in core.driver.running(), "the driver to let the run go")
    run = core.service.run(run_id)
    assert run.status == RunState.STOPPED, run
    assert run.message in ("stopped by operator", "stopped by an operator"), run.message
    kinds = [e.kind for e in core.service.events(run_id)]
    assert "stop_run" in kinds and ("run_started" in kinds) == begun, kinds
    (job,) = core.service.jobs(run_id)
    assert job.started_at is None and job.executions == 0, job   # never started
    assert not (tmp_path / "ran").exists()


def test_a_stop_while_a_run_is_taken_up_is_kept(core: Core, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = stop_when_claimed(core, monkeypatch)
    run_id = core.start("net", user="test")
    wait_for(stopped, "the driver to claim the run")
    assert stopped() == run_id
    assert_stopped_before_any_job(core, run_id, tmp_path)


def test_a_stop_while_an_armed_run_is_taken_up_is_kept(core: Core, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = core.start("net", at=core.clock.now() + timedelta(milliseconds=300), user="test")
    assert core.arm([(run_id, None)]) == 1
    stopped = stop_when_claimed(core, monkeypatch)
    at = core.service.run(run_id).scheduled_at
    assert at is not None
    wait_for(lambda: core.clock.now() >= at, "the run's time")
    Scheduler(core).tick(core.clock.now())
    wait_for(stopped, "the driver to claim the run")
    assert stopped() == run_id
    assert_stopped_before_any_job(core, run_id, tmp_path)
    assert core.armed() == {}


def test_a_stop_before_a_runs_first_turn_comes_before_its_jobs(
        core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner is registered, so the stop is posted to it: its first turn takes it
    (before any job starts), not the turn after (which would start job `a`, then kill it)."""
    batch = core.store.batch
    stops: list[threading.Thread] = []

    def stop_then_batch() -> AbstractContextManager[None]:
        runner = core.service.ctx.active.get(1)
        if not stops and runner is not None and threading.current_thread().name == "driver":
            stop = threading.Thread(target=core.act, args=("stop", 1, None),
                                    kwargs={"user": "operator"})
            stop.start()
            stops.append(stop)
            wait_for(lambda: not runner._events.empty(), "the stop to be posted")
        return batch()

    monkeypatch.setattr(core.store, "batch", stop_then_batch)
    run_id = core.start("net", user="test")
    assert run_id == 1
    wait_for(lambda: stops, "the driver's first turn")
    stops[0].join(10)
    assert not stops[0].is_alive()
    assert core.driver.settle(10)
    run = core.service.run(run_id)
    assert run.status == RunState.STOPPED, run
    (job,) = core.service.jobs(run_id)
    assert job.started_at is None and job.executions == 0, job   # never started
    assert not (tmp_path / "ran").exists()


def test_a_stop_while_the_runner_loads_the_run_waits_and_reaches_it(
        core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop looks for the run's runner and writes the run stopped under the lock the
    runner loads and registers under: it cannot find no runner, then write its stop
    after the runner loaded the run running (whose first turn would begin it again).
    Here the stop is sent while the runner loads the run; if it can look meanwhile, it
    is held up (in its own read of the run) until the runner is registered. The first
    turn waits for the stop to be posted or done."""
    get_run, batch = core.store.get_run, core.store.batch
    checked, stopper, turned = threading.Event(), [], []

    def loading_or_stopping(run_id: int) -> object:
        me = threading.current_thread()
        if me.name == "driver" and not stopper:
            stop = threading.Thread(target=core.service.stop, args=(run_id,),
                                    kwargs={"user": "operator"}, name="stopper")
            stop.start()
            stopper.append(stop)
            checked.wait(1.0)       # it looked, found no runner (or waits for the lock)
        elif me.name == "stopper" and not checked.is_set():
            checked.set()
            wait_for(lambda: run_id in core.service.ctx.active, "the runner", timeout=2)
        return get_run(run_id)

    def first_turn() -> AbstractContextManager[None]:
        runner = core.service.ctx.active.get(1)
        if stopper and runner is not None and not turned \
                and threading.current_thread().name == "driver":
            turned.append(True)
            wait_for(lambda: not runner._events.empty() or not stopper[0].is_alive(),
                     "the stop to be posted or done")
        return batch()

    monkeypatch.setattr(core.store, "get_run", loading_or_stopping)
    monkeypatch.setattr(core.store, "batch", first_turn)
    run_id = core.start("net", user="test")
    assert run_id == 1
    wait_for(lambda: stopper, "the runner to load the run")
    stopper[0].join(10)
    assert not stopper[0].is_alive()
    assert_stopped_before_any_job(core, run_id, tmp_path, begun=True)
