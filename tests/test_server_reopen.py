"""A job rerun (or skipped, released...) in a run that had ended (failed, stopped or
succeeded) reopens the run, and the server drives it again from where it is: the
rerun job runs, then what waits for it, and the run ends anew. A real core, its real
driver and store, real jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import real_core, wait_for

from jaz.engine.model import JobState, RunState
from jaz.server.core import Core


@pytest.fixture
def core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Core]:
    ok = tmp_path / "ok"
    core = real_core(tmp_path, monkeypatch, {
        # `a` fails until the file `ok` exists; with on_failure = "stop" the run ends failed
        "stops": f'on_failure = "stop"\n[jobs.a]\nrun = "test -e {ok}"\n'
                 '[jobs.b]\nneeds = ["a"]\nrun = "echo b"\n',
        "parent": '[jobs.child]\njobnet = "stops"\n',
        "gated": f'[jobs.gate]\nhold = true\nrun = "echo once >> {tmp_path / "count"}"\n'
                 '[jobs.after]\nneeds = ["gate"]\nrun = "echo after"\n',
        "outer": '[jobs.inner]\njobnet = "gated"\n',
        "slow": f'[jobs.a]\nrun = "test -e {ok} || sleep 30"\n'
                '[jobs.b]\nneeds = ["a"]\nrun = "echo b"\n'})
    yield core
    core.close()


def ended(core: Core, run_id: int) -> RunState:
    return wait_for(lambda: (s := core.service.run(run_id).status).finished and s, "the run")


def assert_driven_to_the_end(core: Core, run_id: int, action: str, job: str) -> None:
    before = core.service.run(run_id)
    assert before.ended_at is not None
    after = core.act(action, run_id, job, user="operator")
    # reopened; it may have ended again already (its jobs are quick)
    assert after.status in (RunState.RUNNING, RunState.SUCCEEDED)
    assert after.ended_at is None or after.ended_at > before.ended_at
    assert ended(core, run_id) == RunState.SUCCEEDED
    jobs = {j.name: j for j in core.service.jobs(run_id)}
    assert jobs["b"].status == JobState.SUCCEEDED and jobs["b"].stdout_tail == "b\n"


def test_a_failed_run_whose_job_is_rerun_goes_on(core: Core, tmp_path: Path) -> None:
    run_id = core.start("stops", user="test")
    assert ended(core, run_id) == RunState.FAILED
    (tmp_path / "ok").touch()
    assert_driven_to_the_end(core, run_id, "rerun", "a")
    assert core.service.jobs(run_id)[0].executions == 2


def test_a_stopped_run_whose_job_is_rerun_goes_on(core: Core, tmp_path: Path) -> None:
    run_id = core.start("slow", user="test")
    wait_for(lambda: core.service.jobs(run_id)[0].status == JobState.RUNNING, "a running")
    core.act("stop", run_id, None, user="operator")
    assert ended(core, run_id) == RunState.STOPPED
    (tmp_path / "ok").touch()
    assert_driven_to_the_end(core, run_id, "rerun", "a")


def test_a_failed_run_whose_job_is_skipped_goes_on(core: Core) -> None:
    run_id = core.start("stops", user="test")
    assert ended(core, run_id) == RunState.FAILED
    assert_driven_to_the_end(core, run_id, "skip", "a")
    assert core.service.jobs(run_id)[0].status == JobState.SKIPPED


def test_a_succeeded_run_whose_last_job_is_rerun_runs_it_again(core: Core,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "ok").touch()
    run_id = core.start("stops", user="test")
    assert ended(core, run_id) == RunState.SUCCEEDED
    assert_driven_to_the_end(core, run_id, "rerun", "b")
    assert {j.name: j.executions for j in core.service.jobs(run_id)} == {"a": 1, "b": 2}


# ---------------------------------------------------------------- resume (rerun from failure)


def test_a_failed_run_is_resumed_from_its_failed_job(core: Core, tmp_path: Path) -> None:
    run_id = core.start("stops", user="test")
    assert ended(core, run_id) == RunState.FAILED
    (tmp_path / "ok").touch()
    after = core.act("resume", run_id, None, user="operator")
    assert after.status in (RunState.RUNNING, RunState.SUCCEEDED)   # quick jobs
    assert ended(core, run_id) == RunState.SUCCEEDED
    assert {j.name: j.executions for j in core.service.jobs(run_id)} == {"a": 2, "b": 1}
    resumed = [e for e in core.service.events(run_id) if e.kind == "resume"]
    assert [e.user for e in resumed] == ["operator"]


def test_a_stopped_run_is_resumed_and_its_stopped_job_runs_again(core: Core,
                                                                  tmp_path: Path) -> None:
    run_id = core.start("slow", user="test")
    wait_for(lambda: core.service.jobs(run_id)[0].status == JobState.RUNNING, "a running")
    core.act("stop", run_id, None, user="operator")
    assert ended(core, run_id) == RunState.STOPPED
    (tmp_path / "ok").touch()
    core.act("resume", run_id, None, user="operator")
    assert ended(core, run_id) == RunState.SUCCEEDED
    jobs = {j.name: j for j in core.service.jobs(run_id)}
    assert jobs["a"].executions == 2 and jobs["b"].stdout_tail == "b\n"


@pytest.mark.parametrize("when", ["running", "succeeded", "scheduled"])
def test_only_failed_stopped_or_halted_runs_are_resumed(core: Core, tmp_path: Path,
                                                        when: str) -> None:
    from datetime import timedelta

    from jaz.errors import StateError

    if when == "scheduled":
        run_id = core.start("slow", user="test", at=core.clock.now() + timedelta(hours=1))
    elif when == "succeeded":
        (tmp_path / "ok").touch()
        run_id = core.start("slow", user="test")
        assert ended(core, run_id) == RunState.SUCCEEDED
    else:
        run_id = core.start("slow", user="test")
        wait_for(lambda: core.service.jobs(run_id)[0].status == JobState.RUNNING, "a running")
    def state() -> tuple[object, ...]:   # not the whole records: a pid comes in later
        return (core.service.run(run_id).status, core.service.run(run_id).message,
                [(j.name, j.status, j.executions) for j in core.service.jobs(run_id)])

    before = state()
    with pytest.raises(StateError, match=f"run {run_id} is {when}; only a failed"):
        core.act("resume", run_id, None, user="operator")
    assert state() == before
    assert "resume" not in [e.kind for e in core.service.events(run_id)]
    if when == "running":
        core.act("stop", run_id, None, user="test")
        ended(core, run_id)


def test_a_sub_jobnets_run_is_resumed_through_its_parent(core: Core, tmp_path: Path) -> None:
    from jaz.errors import StateError

    parent = core.start("parent", user="test")   # halts (error) when its child failed
    wait_for(lambda: core.service.run(parent).status == RunState.ERROR, "the parent halted")
    (child,) = core.service.children(parent)
    assert child.status == RunState.FAILED
    with pytest.raises(StateError, match=f"run {child.id} is part of run {parent}"):
        core.act("resume", child.id, None, user="operator")
    (tmp_path / "ok").touch()
    core.act("resume", parent, None, user="operator")
    assert ended(core, parent) == RunState.SUCCEEDED
    assert core.service.children(parent)[0].status == RunState.SUCCEEDED


def test_a_job_released_in_a_running_sub_jobnet_is_run_once_by_its_own_runner(
        core: Core, tmp_path: Path) -> None:
    """The sub-jobnet's run is driven by its parent's job; the release must not give it
    a second runner (its jobs would run twice)."""
    outer = core.start("outer", user="test")
    child = wait_for(lambda: core.service.children(outer), "the child run")[0]
    wait_for(lambda: {j.name: j.status for j in core.service.jobs(child.id)}["gate"]
             == JobState.HELD, "the gate held")
    assert core.act("release", child.id, "gate", user="operator").status in (
        RunState.RUNNING, RunState.SUCCEEDED)
    assert ended(core, outer) == RunState.SUCCEEDED
    assert core.service.run(child.id).status == RunState.SUCCEEDED
    assert (tmp_path / "count").read_text() == "once\n"
    wait_for(lambda: child.id not in core.driver.running(),   # no second runner, waiting
             "the driver to have no runner of the child run")
