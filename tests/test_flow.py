"""The flow rules of SPEC §2 on the RunMachine, driven with a fake time and scripted outcomes.

A `Flow` plays the part of the runner: it steps the machine at instants the test
chooses, and answers every `Launch` with the outcome the test scripted for that job
(and every `Kill` with a killed outcome). Every check reads the store, so the same
tables prove that each transition was written through on both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jaz.engine.executors.base import Attempt, Outcome
from jaz.engine.loader import load_text
from jaz.engine.machine import Command, Kill, Launch, RunMachine, Settings, new_run
from jaz.engine.records import JobRecord, RunRecord
from jaz.engine.store import MemoryStore, SqliteStore, Store
from jaz.errors import StateError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
KILLED = Outcome(exit_code=143, stopped=True, error="killed by signal 15")

Script = int | Outcome | Sequence[int | Outcome]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def outcome(value: int | Outcome) -> Outcome:
    return value if isinstance(value, Outcome) else Outcome(exit_code=value)


def launched(commands: Sequence[Command]) -> list[str]:
    return [c.job for c in commands if isinstance(c, Launch)]


def kills(commands: Sequence[Command]) -> list[tuple[str, str]]:
    return [(c.job, c.reason) for c in commands if isinstance(c, Kill)]


class Flow:
    """One run of one jobnet on one machine, with the clock in the test's hands."""

    def __init__(self, store: Store, text: str, log_dir: Path, params: Mapping[str, str],
                 settings: Mapping[str, Any]) -> None:
        self.store = store
        self.jobnet = load_text(text)
        self.settings = Settings(log_dir=log_dir, **{"tz": UTC, **settings})
        self.now = T0
        self.run_id = new_run(store, self.jobnet, T0, params=params)
        self.transitions: dict[str, list[str]] = {name: [] for name in self.jobnet.jobs}
        self.machine = self.fresh_machine()
        self.machine.begin(T0)
        self.attempts: dict[str, Attempt] = {}  # jobs launched and not yet answered
        self.history: list[Launch] = []

    def fresh_machine(self) -> RunMachine:
        """A machine built from what the store holds, as a new process would build it."""
        self.machine = RunMachine(self.store, self.jobnet, self.run_id, self.settings,
                                  self._listen)
        return self.machine

    def _listen(self, kind: str, rec: RunRecord | JobRecord) -> None:
        if isinstance(rec, JobRecord):
            seen = self.transitions[rec.name]
            if not seen or seen[-1] != rec.status:
                seen.append(str(rec.status))

    # ------------------------------------------------------------ driving

    def step(self, seconds: float | None = None) -> list[Command]:
        if seconds is not None:
            self.now = at(seconds)
        commands = self.machine.step(self.now)
        for c in commands:
            if isinstance(c, Launch):
                assert c.job not in self.attempts, f"{c.job} launched while still running"
                self.attempts[c.job] = c.attempt
                self.history.append(c)
        return commands

    def finish(self, name: str, result: int | Outcome = 0, **outputs: str) -> None:
        self.attempts.pop(name, None)
        o = outcome(result)
        if outputs:
            o = Outcome(exit_code=o.exit_code, outputs=outputs, stdout_tail=o.stdout_tail,
                        stderr_tail=o.stderr_tail, error=o.error, stopped=o.stopped)
        self.machine.finished_job(name, o, self.now)

    def drive(self, script: Mapping[str, Script] | None = None, limit: int = 200) -> None:
        """Answer every Launch from `script` (default: exit 0) until the run settles.

        A list scripts successive attempts/iterations; its last entry repeats. When
        nothing is running the clock jumps to `next_deadline()`.
        """
        queues: dict[str, list[int | Outcome]] = {
            k: [v] if isinstance(v, int | Outcome) else list(v)
            for k, v in (script or {}).items()}
        for _ in range(limit):
            commands = self.step()
            killed = {job for job, _ in kills(commands)}
            if self.attempts:
                for name in list(self.attempts):
                    if name in killed:
                        self.finish(name, KILLED)
                        continue
                    q = queues.get(name, [0])
                    self.finish(name, q.pop(0) if len(q) > 1 else q[0])
                continue
            if self.machine.finished:
                return
            deadline = self.machine.next_deadline()
            if deadline is None:
                return  # blocked: waits for an operator
            self.now = max(self.now, deadline)
        raise AssertionError("the run did not settle")

    # ------------------------------------------------------------ looking

    def job(self, name: str) -> JobRecord:
        rec = self.store.get_job(self.run_id, name)
        assert rec == self.machine.jobs[name], "the machine and the store disagree"
        return rec

    def state(self, name: str) -> str:
        return str(self.job(name).status)

    def states(self) -> dict[str, str]:
        return {name: self.state(name) for name in self.jobnet.jobs}

    @property
    def run(self) -> RunRecord:
        return self.store.get_run(self.run_id)

    @property
    def status(self) -> str:
        return str(self.run.status)

    def launches_of(self, name: str) -> list[Attempt]:
        return [c.attempt for c in self.history if c.job == name]


@pytest.fixture(params=["memory", pytest.param("sqlite", marks=pytest.mark.sqlite)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "jaz.db")
    yield s
    s.close()


@pytest.fixture
def flow(store: Store, tmp_path: Path) -> Callable[..., Flow]:
    def make(text: str, params: Mapping[str, str] | None = None, **settings: Any) -> Flow:
        return Flow(store, text, tmp_path / "logs", params or {}, settings)
    return make


# ================================================================ outcomes of whole runs

IF_ELSE = """
[jobs.transform]
run = "t"
[jobs.big_load]
needs = ["transform"]
if = "transform.rows > 1000"
run = "big"
[jobs.small_load]
needs = ["transform"]
if = "transform.rows <= 1000"
run = "small"
[jobs.report]
needs = ["big_load", "small_load"]
run = "report"
"""

S, F, P, B, K = "succeeded", "failed", "pending", "bypassed", "skipped"

RUNS: list[tuple[str, str, dict[str, Script], dict[str, str], str]] = [
    ("one job succeeds", '[jobs.a]\nrun = "x"', {}, {"a": S}, "succeeded"),
    ("one job fails: halt ends in error", '[jobs.a]\nrun = "x"', {"a": 1}, {"a": F}, "error"),
    ("a failure blocks its downstream", """
        [jobs.a]
        run = "x"
        [jobs.b]
        needs = ["a"]
        run = "x"
        [jobs.c]
        needs = ["b"]
        run = "x"
     """, {"b": 3}, {"a": S, "b": F, "c": P}, "error"),
    ("halt: other branches go on", """
        [jobs.a]
        run = "x"
        [jobs.after_a]
        needs = ["a"]
        run = "x"
        [jobs.c]
        run = "x"
        [jobs.after_c]
        needs = ["c"]
        run = "x"
     """, {"a": 1}, {"a": F, "after_a": P, "c": S, "after_c": S}, "error"),
    ("stop: a failure ends the run failed", """
        on_failure = "stop"
        [jobs.a]
        run = "x"
        [jobs.b]
        needs = ["a"]
        run = "x"
     """, {"a": 1}, {"a": F, "b": P}, "failed"),
    ("enabled = false is skipped and the flow passes on", """
        [jobs.a]
        run = "x"
        enabled = false
        [jobs.b]
        needs = ["a"]
        run = "x"
     """, {}, {"a": K, "b": S}, "succeeded"),
    ("if false bypasses the job and what only needs it", """
        [jobs.a]
        run = "x"
        [jobs.b]
        needs = ["a"]
        if = "a.exit_code != 0"
        run = "x"
        [jobs.c]
        needs = ["b"]
        run = "x"
        [jobs.d]
        needs = ["c"]
        run = "x"
     """, {}, {"a": S, "b": B, "c": B, "d": B}, "succeeded"),
    ("if true runs the job", """
        [jobs.a]
        run = "x"
        [jobs.b]
        needs = ["a"]
        if = "a.exit_code == 0 and a.status == 'succeeded'"
        run = "x"
     """, {}, {"a": S, "b": S}, "succeeded"),
    ("if on a run param", """
        [params]
        DAY = "today"
        [jobs.a]
        if = "DAY == 'yesterday'"
        run = "x"
     """, {}, {"a": B}, "succeeded"),
    ("if/else join: the small branch", IF_ELSE,
     {"transform": Outcome(exit_code=0, outputs={"rows": "5"})},
     {"transform": S, "big_load": B, "small_load": S, "report": S}, "succeeded"),
    ("if/else join: the big branch", IF_ELSE,
     {"transform": Outcome(exit_code=0, outputs={"rows": "5000"})},
     {"transform": S, "big_load": S, "small_load": B, "report": S}, "succeeded"),
    ("a job after a bypassed and a skipped job runs", """
        [jobs.a]
        if = "1 > 2"
        run = "x"
        [jobs.b]
        enabled = false
        run = "x"
        [jobs.c]
        needs = ["a", "b"]
        run = "x"
     """, {}, {"a": B, "b": K, "c": S}, "succeeded"),
    ("every need bypassed: bypassed although its own if is true", """
        [jobs.a]
        if = "1 > 2"
        run = "x"
        [jobs.b]
        if = "false"
        run = "x"
        [jobs.c]
        needs = ["a", "b"]
        if = "true"
        run = "x"
     """, {}, {"a": B, "b": B, "c": B}, "succeeded"),
    ("a disabled job after a bypassed one is bypassed", """
        [jobs.a]
        if = "false"
        run = "x"
        [jobs.b]
        needs = ["a"]
        enabled = false
        run = "x"
     """, {}, {"a": B, "b": B}, "succeeded"),
    ("an if that cannot be evaluated fails the job", """
        [jobs.a]
        run = "x"
        [jobs.b]
        needs = ["a"]
        if = "a.rows > 1"
        run = "x"
     """, {}, {"a": S, "b": F}, "error"),
    ("stop_codes 2-255: exit 1 is success", """
        [jobs.a]
        stop_codes = "2-255"
        run = "x"
        [jobs.b]
        needs = ["a"]
        run = "x"
     """, {"a": 1}, {"a": S, "b": S}, "succeeded"),
    ("stop_codes 2-255: exit 2 is failure", """
        [jobs.a]
        stop_codes = "2-255"
        run = "x"
     """, {"a": 2}, {"a": F}, "error"),
    ("stop_codes: exit 0 outside the codes is success", """
        [jobs.a]
        stop_codes = "3"
        run = "x"
     """, {"a": 0}, {"a": S}, "succeeded"),
    ("an outcome with an error and no exit code fails", '[jobs.a]\nrun = "x"',
     {"a": Outcome(exit_code=None, error="host unreachable")}, {"a": F}, "error"),
    ("retries: fails twice then succeeds", """
        [jobs.a]
        retries = 2
        run = "x"
     """, {"a": [1, 1, 0]}, {"a": S}, "succeeded"),
    ("retries exhausted", """
        [jobs.a]
        retries = 1
        run = "x"
     """, {"a": [1, 1, 0]}, {"a": F}, "error"),
    ("sequence mode chains jobs in file order", """
        mode = "sequence"
        [jobs.one]
        run = "x"
        [jobs.two]
        run = "x"
        [jobs.three]
        run = "x"
     """, {"two": 1}, {"one": S, "two": F, "three": P}, "error"),
    ("hold = true parks the job; without an operator the run is error", """
        [jobs.a]
        hold = true
        run = "x"
        [jobs.b]
        run = "x"
     """, {}, {"a": "held", "b": S}, "error"),
]


@pytest.mark.parametrize(("text", "script", "states", "run_status"),
                         [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_run_outcome(flow: Callable[..., Flow], text: str, script: dict[str, Script],
                     states: dict[str, str], run_status: str) -> None:
    f = flow(text)
    f.drive(script)
    assert f.states() == states
    assert f.status == run_status
    assert f.machine.finished
    assert (f.run.ended_at is not None) == (run_status != "error")


def test_attempt_counts_follow_retries(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nretries = 2\nrun = "x"')
    f.drive({"a": [1, 1, 0]})
    assert [a.attempt for a in f.launches_of("a")] == [1, 2, 3]
    assert f.job("a").attempts == 3


# ================================================================ job state transitions

TRANSITIONS: list[tuple[str, str, dict[str, Script], str, list[str]]] = [
    ("success", '[jobs.a]\nrun = "x"', {}, "a", ["ready", "running", "succeeded"]),
    ("failure", '[jobs.a]\nrun = "x"', {"a": 1}, "a", ["ready", "running", "failed"]),
    ("retry", '[jobs.a]\nretries = 1\nrun = "x"', {"a": [1, 0]}, "a",
     ["ready", "running", "ready", "running", "succeeded"]),
    ("disabled", '[jobs.a]\nenabled = false\nrun = "x"', {}, "a", ["skipped"]),
    ("if false", '[jobs.a]\nif = "false"\nrun = "x"', {}, "a", ["bypassed"]),
    ("hold = true", '[jobs.a]\nhold = true\nrun = "x"', {}, "a", ["held"]),
    ("set", '[jobs.a]\nset = { X = "1" }', {}, "a", ["ready", "running", "succeeded"]),
    ("sleep", '[jobs.a]\nsleep = "5s"', {}, "a", ["ready", "running", "succeeded"]),
]


@pytest.mark.parametrize(("text", "script", "job", "expected"),
                         [t[1:] for t in TRANSITIONS], ids=[t[0] for t in TRANSITIONS])
def test_job_transitions(flow: Callable[..., Flow], text: str, script: dict[str, Script],
                         job: str, expected: list[str]) -> None:
    f = flow(text)
    f.drive(script)
    assert f.transitions[job] == expected


def test_pending_ready_running_seen_in_the_store(flow: Callable[..., Flow]) -> None:
    f = flow("""
        [jobs.a]
        run = "x"
        [jobs.b]
        run = "x"
        [jobs.c]
        needs = ["a"]
        run = "x"
    """, parallel=1)
    assert f.states() == {"a": "pending", "b": "pending", "c": "pending"}
    assert launched(f.step()) == ["a"]
    assert f.states() == {"a": "running", "b": "ready", "c": "pending"}
    assert f.job("a").started_at == T0 and f.job("a").attempts == 1
    f.now = at(7)
    f.finish("a", 0)
    assert f.job("a").ended_at == at(7) and f.job("a").exit_code == 0
    assert launched(f.step()) == ["b"]
    assert f.states() == {"a": "succeeded", "b": "running", "c": "ready"}
    assert f.status == "running"


def test_stopped_job(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"')
    f.step()
    with pytest.raises(StateError):
        f.machine.stop_job("b", f.now)  # pending, not running
    assert f.machine.stop_job("a", at(3), user="ops") == [Kill("a", "operator")]
    assert f.state("a") == "running"
    f.now = at(4)
    f.finish("a", KILLED)
    assert f.state("a") == "stopped"
    f.step()
    assert f.states() == {"a": "stopped", "b": "pending"}
    assert f.status == "error"
    assert "a" in f.run.message
    assert any(e.kind == "stop_job" and e.user == "ops"
               for e in f.store.list_events(run_id=f.run_id))


def test_a_job_that_exits_0_although_stopped_succeeds(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"')
    f.step()
    f.machine.stop_job("a", f.now)
    f.finish("a", Outcome(exit_code=0, stopped=True))
    assert f.state("a") == "succeeded"


# ================================================================ parallelism and order

def test_independent_jobs_launch_in_one_step(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n[jobs.c]\nrun = "x"')
    assert sorted(launched(f.step())) == ["a", "b", "c"]
    assert f.step() == []  # nothing launches twice


def test_needs_order(flow: Callable[..., Flow]) -> None:
    f = flow("""
        [jobs.a]
        run = "x"
        [jobs.b]
        run = "x"
        [jobs.c]
        needs = ["a", "b"]
        run = "x"
        [jobs.d]
        needs = ["c"]
        run = "x"
    """)
    assert sorted(launched(f.step())) == ["a", "b"]
    f.finish("a")
    assert launched(f.step()) == []  # c still waits for b
    assert f.state("c") == "pending"
    f.finish("b")
    assert launched(f.step()) == ["c"]
    f.finish("c")
    assert launched(f.step()) == ["d"]
    f.finish("d")
    f.step()
    assert f.status == "succeeded"


@pytest.mark.parametrize(("settings", "text", "first", "later"), [
    ({"parallel": 2}, '[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n[jobs.c]\nrun = "x"',
     ["a", "b"], ["c"]),
    ({"parallel": 1}, '[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"', ["a"], ["b"]),
    ({"queues": {"io": 1}}, """
        [jobs.a]
        queue = "io"
        run = "x"
        [jobs.b]
        queue = "io"
        run = "x"
        [jobs.c]
        run = "x"
     """, ["a", "c"], ["b"]),
    ({"queues": {"io": 2}, "parallel": 16}, """
        [jobs.a]
        queue = "io"
        run = "x"
        [jobs.b]
        queue = "io"
        run = "x"
        [jobs.c]
        queue = "io"
        run = "x"
     """, ["a", "b"], ["c"]),
    # set and sleep jobs take no slot
    ({"parallel": 1}, '[jobs.a]\nrun = "x"\n[jobs.b]\nsleep = "5s"\n[jobs.c]\nrun = "x"',
     ["a"], ["c"]),
], ids=["parallel 2", "parallel 1", "queue io=1", "queue io=2", "timers take no slot"])
def test_slot_limits(flow: Callable[..., Flow], settings: dict[str, Any], text: str,
                     first: list[str], later: list[str]) -> None:
    f = flow(text, **settings)
    assert launched(f.step()) == first
    assert launched(f.step(1)) == []
    f.finish(first[0])
    assert launched(f.step(2)) == later
    f.drive()
    assert f.status == "succeeded"


def test_sleep_runs_beside_a_full_parallel_limit(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nsleep = "5s"', parallel=1)
    f.step()
    assert f.states() == {"a": "running", "b": "running"}


# ================================================================ failure policies

def test_halt_lets_other_branches_finish_then_errors(flow: Callable[..., Flow]) -> None:
    f = flow("""
        [jobs.a]
        run = "x"
        [jobs.b]
        run = "x"
        [jobs.after_a]
        needs = ["a"]
        run = "x"
        [jobs.after_b]
        needs = ["b"]
        run = "x"
    """)
    f.step()
    f.finish("a", 1)
    assert f.step() == []  # b is not killed
    assert f.status == "running"
    f.finish("b", 0)
    assert launched(f.step()) == ["after_b"]
    assert f.status == "running"
    f.finish("after_b", 0)
    f.step()
    assert f.status == "error"
    assert f.run.message == "failed: a"
    assert f.states()["after_a"] == "pending"
    assert f.machine.next_deadline() is None
    assert f.step() == []


def test_stop_kills_running_jobs_and_fails_the_run(flow: Callable[..., Flow]) -> None:
    f = flow("""
        on_failure = "stop"
        [jobs.a]
        run = "x"
        [jobs.b]
        run = "x"
        [jobs.c]
        needs = ["a"]
        run = "x"
        [jobs.d]
        needs = ["b"]
        run = "x"
    """)
    f.step()
    f.finish("a", 1)
    commands = f.step(1)
    assert kills(commands) == [("b", "failure")]
    assert launched(commands) == []
    assert f.status == "running"  # until b is gone
    assert f.step(2) == []  # no second Kill
    f.finish("b", KILLED)
    f.step(3)
    assert f.states() == {"a": "failed", "b": "stopped", "c": "pending", "d": "pending"}
    assert f.status == "failed"
    assert f.run.ended_at == at(3)


def test_stop_does_not_retry_a_killed_job(flow: Callable[..., Flow]) -> None:
    f = flow('on_failure = "stop"\n[jobs.a]\nrun = "x"\n[jobs.b]\nretries = 3\nrun = "x"')
    f.step()
    f.finish("a", 1)
    f.step()
    f.finish("b", Outcome(exit_code=1))  # b fails on its own while being stopped
    assert launched(f.step(60)) == []
    assert f.state("b") == "failed"
    assert f.status == "failed"


# ================================================================ operator actions

HOLD_TEXT = '[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"'


def test_operator_hold_and_release(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.step()
    f.machine.hold("b", f.now, user="ops")
    assert f.state("b") == "held"
    f.finish("a")
    assert launched(f.step()) == []
    assert f.status == "error"
    assert "held: b" in f.run.message
    f.machine.release("b", at(10), user="ops")
    assert f.state("b") == "pending"
    assert f.status == "running"
    assert launched(f.step(10)) == ["b"]
    f.finish("b")
    f.step()
    assert f.status == "succeeded"


def test_hold_true_waits_for_release(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nhold = true\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"')
    f.drive()
    assert f.states() == {"a": "held", "b": "pending"}
    assert f.status == "error"
    f.now = at(60)
    f.machine.release("a", f.now)
    f.drive()
    assert [c.job for c in f.history] == ["a", "b"]
    assert f.status == "succeeded"


def test_hold_true_survives_a_new_machine_after_release(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nhold = true\nrun = "x"')
    f.step()
    f.machine.release("a", at(1))
    f.fresh_machine()  # the release is in the store, not only in memory
    assert launched(f.step(2)) == ["a"]


def test_wait_for_operator_keeps_a_held_run_running(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nhold = true\nrun = "x"\n[jobs.b]\nrun = "x"', wait_for_operator=True)
    f.drive()
    assert f.states() == {"a": "held", "b": "succeeded"}
    assert f.status == "running"
    assert not f.machine.finished
    f.machine.release("a", at(5))
    f.drive()
    assert f.status == "succeeded"


def test_wait_for_operator_does_not_wait_behind_a_failure(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nhold = true\nrun = "x"\n[jobs.b]\nrun = "x"', wait_for_operator=True)
    f.drive({"b": 1})
    assert f.status == "error"


def test_skip_a_failed_job_lets_the_flow_pass(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.drive({"a": 1})
    assert f.status == "error"
    f.machine.skip("a", at(30), user="ops")
    assert f.state("a") == "skipped"
    assert f.status == "running"
    f.drive()
    assert f.states() == {"a": "skipped", "b": "succeeded"}
    assert f.status == "succeeded"


def test_skip_ahead_of_time(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"\n'
             '[jobs.c]\nneeds = ["b"]\nrun = "x"')
    f.step()
    f.machine.skip("b", f.now)
    f.finish("a")
    assert launched(f.step()) == ["c"]
    assert f.state("b") == "skipped"


def test_unskip_puts_the_job_back(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.step()
    f.machine.skip("b", f.now)
    f.machine.unskip("b", f.now)
    assert f.state("b") == "pending"
    f.finish("a")
    assert launched(f.step()) == ["b"]


@pytest.mark.parametrize(("text", "script", "action"), [
    (HOLD_TEXT, {}, lambda m, now: m.hold("a", now)),  # succeeded
    (HOLD_TEXT, {}, lambda m, now: m.release("a", now)),  # not held
    (HOLD_TEXT, {}, lambda m, now: m.skip("a", now)),  # succeeded
    ('[jobs.a]\nif = "false"\nrun = "x"', {}, lambda m, now: m.skip("a", now)),  # bypassed
    ('[jobs.a]\nenabled = false\nrun = "x"', {}, lambda m, now: m.unskip("a", now)),
    (HOLD_TEXT, {}, lambda m, now: m.unskip("a", now)),  # never skipped
    (HOLD_TEXT, {}, lambda m, now: m.stop_job("a", now)),  # not running
    (HOLD_TEXT, {"a": 1}, lambda m, now: m.rerun("b", now)),  # pending: has not run
    (HOLD_TEXT, {}, lambda m, now: m.resume(now)),  # already succeeded
], ids=["hold succeeded", "release not held", "skip succeeded", "skip bypassed",
        "unskip disabled", "unskip not skipped", "stop not running", "rerun pending",
        "resume succeeded"])
def test_invalid_actions_after_the_run(flow: Callable[..., Flow], text: str,
                                       script: dict[str, Script],
                                       action: Callable[[RunMachine, datetime], Any]) -> None:
    f = flow(text)
    f.drive(script)
    before = (f.states(), f.status)
    with pytest.raises(StateError):
        action(f.machine, at(100))
    assert (f.states(), f.status) == before


@pytest.mark.parametrize("action", [
    lambda m, now: m.hold("a", now),
    lambda m, now: m.skip("a", now),
    lambda m, now: m.rerun("a", now),
    lambda m, now: m.unskip("a", now),
], ids=["hold", "skip", "rerun", "unskip"])
def test_invalid_actions_on_a_running_job(flow: Callable[..., Flow],
                                          action: Callable[[RunMachine, datetime], Any]) -> None:
    f = flow(HOLD_TEXT)
    f.step()
    with pytest.raises(StateError):
        action(f.machine, f.now)
    assert f.state("a") == "running"


def test_unskip_refused_once_downstream_moved(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.machine.skip("a", T0)
    f.step()  # b launches
    with pytest.raises(StateError):
        f.machine.unskip("a", f.now)
    assert f.state("a") == "skipped"


def test_rerun_refused_while_downstream_runs(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.step()
    f.finish("a")
    f.step()  # b runs
    with pytest.raises(StateError):
        f.machine.rerun("a", f.now, downstream=True)
    f.machine.rerun("a", f.now)  # without downstream it is allowed
    assert launched(f.step()) == ["a"]


def test_rerun_a_failed_job(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT.replace('run = "x"', 'retries = 1\nrun = "x"', 1))
    f.drive({"a": 1})
    assert f.status == "error"
    assert f.job("a").attempts == 2
    f.machine.rerun("a", at(100), user="ops")
    assert f.state("a") == "pending"
    assert f.job("a").attempts == 0 and f.job("a").exit_code is None
    assert f.status == "running"
    assert launched(f.step(100)) == ["a"]
    assert f.attempts["a"].env["JAZ_ATTEMPT"] == "1"
    f.finish("a")
    assert launched(f.step()) == ["b"]
    f.finish("b")
    f.step()
    assert f.status == "succeeded"


@pytest.mark.parametrize(("downstream", "relaunched"), [
    (False, ["a"]),
    (True, ["a", "b", "c"]),
])
def test_rerun_with_and_without_downstream(flow: Callable[..., Flow], downstream: bool,
                                           relaunched: list[str]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"\n'
             '[jobs.c]\nneeds = ["b"]\nrun = "x"\n[jobs.other]\nrun = "x"')
    f.drive()
    assert f.status == "succeeded"
    f.history.clear()
    f.now = at(100)
    f.machine.rerun("a", f.now, downstream=downstream)
    expected_states = {"a": "pending", "b": "succeeded", "c": "succeeded", "other": "succeeded"}
    if downstream:
        expected_states.update(b="pending", c="pending")
    assert f.states() == expected_states
    f.drive()
    assert [c.job for c in f.history] == relaunched
    assert f.status == "succeeded"
    assert f.run.ended_at is not None and f.run.ended_at >= at(100)


def test_rerun_with_downstream_reevaluates_if(flow: Callable[..., Flow]) -> None:
    f = flow(IF_ELSE)
    f.drive({"transform": Outcome(exit_code=0, outputs={"rows": "5"})})
    assert f.state("big_load") == "bypassed"
    f.machine.rerun("transform", at(100), downstream=True)
    f.drive({"transform": Outcome(exit_code=0, outputs={"rows": "5000"})})
    assert f.states() == {"transform": S, "big_load": S, "small_load": B, "report": S}


def test_resume_a_halted_run_from_a_new_machine(flow: Callable[..., Flow]) -> None:
    f = flow("""
        [jobs.a]
        run = "x"
        [jobs.b]
        needs = ["a"]
        run = "x"
        [jobs.c]
        needs = ["b"]
        run = "x"
    """)
    f.drive({"b": 1})
    assert f.status == "error"
    m = f.fresh_machine()
    m.resume(at(100), user="ops")
    assert f.states() == {"a": "succeeded", "b": "pending", "c": "pending"}
    assert f.status == "running"
    f.history.clear()
    f.drive()
    assert [c.job for c in f.history] == ["b", "c"]  # a is not run again
    assert f.status == "succeeded"


def test_resume_with_skip(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"')
    f.drive({"a": 1})
    f.machine.resume(at(100), skip=["a"])
    assert f.state("a") == "skipped"
    f.history.clear()
    f.drive()
    assert [c.job for c in f.history] == ["b"]
    assert f.status == "succeeded"


def test_resume_refuses_a_bad_skip_without_changing_anything(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"')
    f.drive({"b": 1})
    with pytest.raises(StateError):
        f.machine.resume(at(100), skip=["a"])  # a succeeded
    assert f.states() == {"a": "succeeded", "b": "failed"}  # also: machine == store
    assert f.status == "error"


def test_resume_with_release(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nhold = true\nrun = "x"')
    f.drive()
    assert f.status == "error"
    f.machine.resume(at(100), release=["a"])
    f.drive()
    assert f.status == "succeeded"


def test_resume_after_stop_on_failure(flow: Callable[..., Flow]) -> None:
    f = flow('on_failure = "stop"\n[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"')
    f.step()
    f.finish("a", 1)
    f.step()
    f.finish("b", KILLED)
    f.step()
    assert f.status == "failed"
    f.machine.resume(at(100))
    assert f.states() == {"a": "pending", "b": "pending"}
    f.drive()
    assert f.status == "succeeded"


def test_resume_an_interrupted_run_relaunches_running_jobs(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.step()  # a runs; then the process dies
    m = f.fresh_machine()
    m.resume(at(50))
    assert f.state("a") == "pending"
    f.attempts.clear()
    assert launched(f.step(50)) == ["a"]


def test_stop_run(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n[jobs.s]\nsleep = "1h"\n'
             '[jobs.c]\nneeds = ["a"]\nrun = "x"')
    f.step()
    f.machine.stop_run(at(5), user="ops")
    commands = f.step(5)
    assert sorted(kills(commands)) == [("a", "operator"), ("b", "operator")]
    assert f.state("s") == "stopped"  # a timer stops at once
    f.finish("a", KILLED)
    f.finish("b", KILLED)
    assert launched(f.step(6)) == []
    assert f.states() == {"a": "stopped", "b": "stopped", "s": "stopped", "c": "pending"}
    assert f.status == "stopped"
    with pytest.raises(StateError):
        f.machine.stop_run(at(7))


# ================================================================ retries, repeat, timers

def test_retry_waits_for_its_delay(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nretries = 1\nretry_delay = "30s"\nrun = "x"')
    f.step()
    f.now = at(1)
    f.finish("a", 1)
    assert f.state("a") == "ready"
    assert f.job("a").not_before == at(31)
    assert f.machine.next_deadline() == at(31)
    assert f.step(30) == []
    assert f.status == "running"
    assert launched(f.step(31)) == ["a"]
    assert f.attempts["a"].env["JAZ_ATTEMPT"] == "2"
    assert f.machine.next_deadline() is None
    f.finish("a", 0)
    f.step()
    assert f.status == "succeeded"


def test_repeat_until_own_output(flow: Callable[..., Flow]) -> None:
    f = flow("""
        [jobs.poll]
        repeat = { until = "poll.DONE == 'yes'", interval = "10s", max = 9 }
        run = "x"
        [jobs.after]
        needs = ["poll"]
        run = "x"
    """)
    assert launched(f.step()) == ["poll"]
    f.finish("poll", DONE="no")
    assert f.state("poll") == "ready"
    assert f.machine.next_deadline() == at(10)
    assert launched(f.step(9)) == []
    assert launched(f.step(10)) == ["poll"]
    f.finish("poll", DONE="yes")
    assert launched(f.step(10)) == ["after"]
    assert f.job("poll").iteration == 2
    assert f.job("poll").outputs == {"DONE": "yes"}


def test_repeat_until_sees_its_outputs_as_variables(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.poll]\nrepeat = { until = "LEFT == 0" }\nrun = "x"')
    f.drive({"poll": [Outcome(exit_code=0, outputs={"LEFT": str(n)}) for n in (3, 2, 1, 0)]})
    assert len(f.launches_of("poll")) == 4
    assert f.status == "succeeded"


def test_a_repeating_set_job_counts_with_its_previous_outputs(
        flow: Callable[..., Flow]) -> None:
    f = flow('[params]\nN = "0"\n[jobs.count]\nset = { N = "${N + 1}" }\n'
             'repeat = { until = "N >= 3", max = 10 }\n[jobs.show]\nneeds = ["count"]\n'
             'run = "x"')
    f.drive()
    assert f.job("count").outputs == {"N": "3"}
    assert f.job("count").iteration == 3
    assert f.launches_of("show")[0].env["N"] == "3"
    assert f.status == "succeeded"


def test_a_repeating_job_sees_its_previous_outputs_in_its_environment(
        flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.loop]\nrepeat = { max = 3 }\nrun = "x"')
    f.drive({"loop": [Outcome(exit_code=0, outputs={"I": str(n)}) for n in (1, 2, 3)]})
    envs = [attempt.env.get("I") for attempt in f.launches_of("loop")]
    assert envs == [None, "1", "2"]


def test_repeat_max(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrepeat = { max = 3, interval = "1m" }\nrun = "x"')
    f.drive()
    assert len(f.launches_of("a")) == 3
    assert f.job("a").iteration == 3
    assert f.status == "succeeded"
    assert f.run.ended_at == at(120)


def test_an_instant_job_repeats_once_per_step(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.calc]\nset = { X = "1" }\nrepeat = { max = 3 }')
    assert f.step() == []
    assert f.job("calc").iteration == 1
    assert f.state("calc") == "ready"
    assert f.machine.next_deadline() == f.now  # due again at once
    f.drive()
    assert f.job("calc").iteration == 3
    assert f.status == "succeeded"


def test_an_endless_instant_repeat_does_not_hang_step(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.calc]\nset = { X = "1" }\nrepeat = { until = "calc.X == 2" }')
    for i in (1, 2, 3):
        assert f.step() == []
        assert f.job("calc").iteration == i
    assert f.status == "running"
    f.machine.stop_run(f.now)
    f.step()
    assert f.status == "stopped"


def test_a_failing_set_job_retries_once_per_step(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.calc]\nretries = 2\nset = { X = "${1 / 0}" }')
    f.step()
    assert (f.state("calc"), f.job("calc").attempts) == ("ready", 1)
    f.drive()
    assert (f.state("calc"), f.job("calc").attempts) == ("failed", 3)


def test_a_failed_iteration_fails_the_repeat(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrepeat = { max = 5 }\nrun = "x"')
    f.drive({"a": [0, 1]})
    assert len(f.launches_of("a")) == 2
    assert f.state("a") == "failed"


@pytest.mark.parametrize(("late_result", "state"), [(KILLED, "failed"), (0, "failed")])
def test_timeout_stop(flow: Callable[..., Flow], late_result: int | Outcome,
                      state: str) -> None:
    f = flow('[jobs.a]\ntimeout = "60s"\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"')
    f.step()
    assert f.machine.next_deadline() == at(60)
    assert f.step(59) == []
    assert not f.job("a").timed_out
    assert kills(f.step(60)) == [("a", "timeout")]
    assert f.job("a").timed_out
    assert f.step(61) == []  # one Kill only
    f.finish("a", late_result)
    f.step()
    assert f.state("a") == state
    assert f.job("a").timed_out
    assert "timed out" in f.job("a").message
    assert f.states()["b"] == "pending"
    assert f.status == "error"


def test_timeout_warn(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\ntimeout = "60s"\non_timeout = "warn"\nrun = "x"')
    f.step()
    assert f.step(60) == []
    assert f.job("a").timed_out
    assert f.state("a") == "running"
    assert "a" in f.run.warning
    assert f.machine.next_deadline() is None
    f.now = at(90)
    f.finish("a", 0)
    f.step()
    assert f.state("a") == "succeeded"
    assert f.status == "succeeded"
    assert f.run.warning


def test_run_timeout(flow: Callable[..., Flow]) -> None:
    f = flow('timeout = "2m"\n[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"')
    f.step()
    assert f.machine.next_deadline() == at(120)
    assert f.step(119) == []
    assert kills(f.step(120)) == [("a", "timeout")]
    assert f.run.warning
    deadline = f.machine.next_deadline()
    assert deadline is None or deadline > f.now, "nothing left to time: no busy loop"
    f.now = at(121)
    f.finish("a", KILLED)
    f.step()
    assert f.states() == {"a": "stopped", "b": "pending"}
    assert f.status == "failed"
    assert "timed out" in f.run.message


def test_sleep_is_timed_by_the_machine(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.nap]\nsleep = "30s"\n[jobs.b]\nneeds = ["nap"]\nrun = "x"')
    assert f.step() == []  # no Launch: the machine does the sleeping
    assert f.state("nap") == "running"
    assert f.machine.next_deadline() == at(30)
    assert f.step(29) == []
    assert f.state("nap") == "running"
    assert launched(f.step(30)) == ["b"]
    assert f.state("nap") == "succeeded"
    assert f.job("nap").ended_at == at(30)


@pytest.mark.parametrize(("zone", "when", "ends"), [
    ("UTC", "09:30", at(30 * 60)),
    ("UTC", "09:00:20", at(20)),
    ("UTC", "08:00", T0),  # already past: done at once
    ("Asia/Tokyo", "18:30", at(30 * 60)),  # T0 is 18:00 in Tokyo
    ("Asia/Tokyo", "09:30", T0),
    ("America/New_York", "04:10", at(10 * 60)),  # T0 is 04:00 in New York
    ("UTC", "33:00", at(24 * 3600)),  # past 24:00: the next calendar day
])
def test_wait_until(flow: Callable[..., Flow], zone: str, when: str, ends: datetime) -> None:
    f = flow(f'[jobs.w]\nwait_until = "{when}"\n[jobs.b]\nneeds = ["w"]\nrun = "x"',
             tz=ZoneInfo(zone))
    commands = f.step()
    if ends > T0:
        assert commands == []
        assert f.state("w") == "running"
        assert f.machine.next_deadline() == ends
        assert f.step((ends - T0).total_seconds() - 1) == []
        f.now = ends
        commands = f.step()
    assert launched(commands) == ["b"]
    assert f.job("w").ended_at == ends


def test_a_sleep_with_a_shorter_timeout_fails(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.nap]\nsleep = "1h"\ntimeout = "10s"')
    f.step()
    assert f.machine.next_deadline() == at(10)
    f.step(10)
    assert f.state("nap") == "failed"
    assert f.job("nap").timed_out


def test_stop_job_on_a_sleep(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.nap]\nsleep = "1h"')
    f.step()
    assert f.machine.stop_job("nap", at(5)) == []
    assert f.state("nap") == "stopped"
    f.step(5)
    assert f.status == "error"


# ================================================================ variables

def test_set_job_renders_templates(flow: Callable[..., Flow]) -> None:
    f = flow("""
        [params]
        DAY = "2026-03-01"
        [jobs.count]
        run = "x"
        [jobs.calc]
        needs = ["count"]
        set = { NEXT = "${count.ROWS + 1}", TAG = "load-${DAY}", BOTH = "${NEXT}/${TAG}" }
        [jobs.use]
        needs = ["calc"]
        run = "x"
    """, params={"DAY": "2026-03-02"})
    f.step()
    f.finish("count", ROWS="41")
    assert launched(f.step()) == ["use"]  # calc ran inside the machine
    assert f.job("calc").outputs == {"NEXT": "42", "TAG": "load-2026-03-02",
                                     "BOTH": "42/load-2026-03-02"}
    env = f.attempts["use"].env
    assert (env["NEXT"], env["TAG"], env["ROWS"], env["DAY"]) == (
        "42", "load-2026-03-02", "41", "2026-03-02")


def test_set_job_with_a_bad_expression_fails(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.calc]\nneeds = ["a"]\nset = { N = "${a.MISSING}" }')
    f.drive()
    assert f.state("calc") == "failed"
    assert "set.N" in f.job("calc").message
    assert f.status == "error"


def test_jaz_environment(flow: Callable[..., Flow], tmp_path: Path) -> None:
    f = flow("""
        name = "env-net"
        [params]
        DAY = "yesterday"
        [jobs.first]
        run = "x"
        stop_codes = "2-255"
        [jobs.second]
        needs = ["first"]
        retries = 1
        env = { COLOR = "blue" }
        run = "x"
        [jobs.side]
        run = "x"
    """)
    f.step()
    first = f.attempts["first"].env
    assert first["JAZ_RUN_ID"] == str(f.run_id)
    assert first["JAZ_JOBNET"] == "env-net"
    assert first["JAZ_JOB"] == "first"
    assert first["JAZ_ATTEMPT"] == "1"
    assert first["JAZ_SCHEDULED_TIME"] == "2026-03-02T09:00:00+00:00"
    assert first["DAY"] == "yesterday"
    assert "JOB_EXIT_CD" not in first
    assert Path(first["JAZ_OUTPUT"]).is_relative_to(tmp_path / "logs")
    assert Path(first["JAZ_OUTPUT"]).parent.is_dir()
    assert f.attempts["first"].output_path == Path(first["JAZ_OUTPUT"])
    f.finish("first", Outcome(exit_code=1, outputs={"ROWS": "7"}, stdout_tail="hello\n",
                              stderr_tail="warn\n"))
    f.step()
    second = f.attempts["second"].env
    assert second["JAZ_JOB"] == "second"
    assert (second["JOB_EXIT_CD"], second["STD_OUT"], second["STD_ERR"]) == (
        "1", "hello\n", "warn\n")
    assert second["ROWS"] == "7"
    assert second["COLOR"] == "blue"
    f.finish("side", SIDE="x")  # ends before the retry, but is not upstream of second
    f.finish("second", 1)
    f.step()
    retry = f.attempts["second"]
    assert retry.env["JAZ_ATTEMPT"] == "2"
    assert retry.attempt == 2
    assert retry.output_path != f.launches_of("second")[0].output_path
    assert "SIDE" not in retry.env
    assert retry.env["ROWS"] == "7"


def test_job_exit_cd_comes_from_the_last_job_to_end(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\nstop_codes = "9"\n'
             '[jobs.c]\nneeds = ["a", "b"]\nrun = "x"')
    f.step()
    f.now = at(1)
    f.finish("a", Outcome(exit_code=0, stdout_tail="from a"))
    f.now = at(2)
    f.finish("b", Outcome(exit_code=3, stdout_tail="from b"))
    f.step()
    env = f.attempts["c"].env
    assert (env["JOB_EXIT_CD"], env["STD_OUT"]) == ("3", "from b")


def test_outputs_pass_through_a_chain(flow: Callable[..., Flow]) -> None:
    f = flow('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"\n'
             '[jobs.c]\nneeds = ["b"]\nrun = "x"')
    f.step()
    f.finish("a", X="1", Y="a")
    f.step()
    f.finish("b", Y="b")
    f.step()
    env = f.attempts["c"].env
    assert (env["X"], env["Y"]) == ("1", "b")  # the nearer job wins


def test_events_record_the_flow(flow: Callable[..., Flow]) -> None:
    f = flow(HOLD_TEXT)
    f.drive({"a": 1})
    f.machine.skip("a", at(9), user="alice")
    f.drive()
    kinds = [(e.kind, e.job, e.user) for e in f.store.list_events(run_id=f.run_id)]
    assert ("run_started", None, "system") in kinds
    assert ("job_failed", "a", "system") in kinds
    assert ("run_error", None, "system") in kinds
    assert ("skip", "a", "alice") in kinds
    assert ("run_succeeded", None, "system") in kinds
