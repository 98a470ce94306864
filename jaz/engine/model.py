"""Frozen value objects for jobnets, jobs and their actions (SPEC §1).

The loader builds them from TOML; everything else only reads them.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaz.engine.durations import StopCodes
from jaz.value import Value, field

if TYPE_CHECKING:
    from jaz.engine.schedules import Schedule


class RunState(StrEnum):
    SCHEDULED = "scheduled"
    HELD = "held"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    ERROR = "error"
    SKIPPED = "skipped"
    MISSED = "missed"

    @property
    def finished(self) -> bool:
        return self in _RUN_FINAL


_RUN_FINAL = {RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.SKIPPED,
              RunState.MISSED}


class JobState(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    HELD = "held"
    SKIPPED = "skipped"
    BYPASSED = "bypassed"

    @property
    def passes(self) -> bool:
        """True for the states that let the flow go on (SPEC §2.2)."""
        return self in _JOB_PASS

    @property
    def finished(self) -> bool:
        return self in _JOB_FINAL


_JOB_PASS = {JobState.SUCCEEDED, JobState.SKIPPED, JobState.BYPASSED}
_JOB_FINAL = _JOB_PASS | {JobState.FAILED, JobState.STOPPED}


class OnFailure(StrEnum):
    HALT = "halt"
    STOP = "stop"


class OnTimeout(StrEnum):
    STOP = "stop"
    WARN = "warn"


# ---------------------------------------------------------------- actions


class RunAction(Value):
    script: str
    kind = "run"


class SqlAction(Value):
    statements: str
    database: str
    kind = "sql"


class JobnetAction(Value):
    name: str
    kind = "jobnet"


class StartAction(Value):
    name: str
    kind = "start"


class SleepAction(Value):
    seconds: float
    kind = "sleep"


class WaitUntilAction(Value):
    hour: int
    minute: int
    second: int = 0
    kind = "wait_until"


class WaitFileAction(Value):
    path: str
    host: str | None = None
    timeout: float | None = None
    delete: bool = False
    check: bool = False
    interval: float = 1.0
    kind = "wait_file"


class TransferAction(Value):
    source: str
    dest: str
    overwrite: bool = False
    kind = "transfer"


class SetAction(Value):
    values: Mapping[str, str]
    kind = "set"


class ReleaseAction(Value):
    target: str
    kind = "release"


class ZabbixAction(Value):
    server: str
    host: str
    key: str
    value: str
    kind = "zabbix"


class RebootAction(Value):
    host: str | None
    mode: str = "normal"
    wait: float | None = None
    kind = "reboot"


class PluginAction(Value):
    """A job of a kind from another package (jaz/engine/kinds.py): `kind` is its action
    key, `options` its fields as checked, with defaults filled in. `options` comes first:
    the API shows a job's first field as what the job does."""

    options: Mapping[str, Any]
    kind: str  # a field here, where the built-in kinds have a constant

    def __str__(self) -> str:
        """The fields that are set, for `jaz run --dry-run`."""
        return ", ".join(f"{k}={v}" for k, v in self.options.items() if v not in (None, {}))


Action = (RunAction | SqlAction | JobnetAction | StartAction | SleepAction | WaitUntilAction
          | WaitFileAction | TransferAction | SetAction | ReleaseAction | ZabbixAction
          | RebootAction | PluginAction)

ACTION_KEYS = ("run", "sql", "jobnet", "start", "sleep", "wait_until", "wait_file", "transfer",
               "set", "release", "zabbix", "reboot")
# the keys every job may have, whatever its kind (a plugin kind may take none of these)
COMMON_KEYS = {"needs", "if", "host", "hosts", "fan_out", "user", "cwd", "env", "shell", "timeout",
               "on_timeout", "retries", "retry_delay", "repeat", "stop_codes", "hold", "enabled",
               "queue", "stop_command", "description", "database"}

# ---------------------------------------------------------------- jobs

FAN_OUT = 64   # a fan-out's instances running at once, unless the job says `fan_out`


class Secret(Value):
    """An environment value taken from the secrets store at run time."""

    name: str


class Repeat(Value):
    until: str | None = None
    max: int | None = None
    interval: float = 0.0


class Job(Value):
    name: str
    action: Action
    needs: tuple[str, ...] = ()
    if_: str | None = None
    host: str = "local"
    hosts: tuple[str, ...] = ()
    fan_out: int = FAN_OUT   # of `hosts`, how many instances run at once
    user: str | None = None
    cwd: str | None = None
    env: Mapping[str, str | Secret] = field(default_factory=dict)
    shell: str = "/bin/sh"
    timeout: float | None = None
    on_timeout: OnTimeout = OnTimeout.STOP
    retries: int = 0
    retry_delay: float = 0.0
    repeat: Repeat | None = None
    stop_codes: StopCodes | None = None
    hold: bool = False
    enabled: bool = True
    queue: str | None = None
    stop_command: str | None = None
    description: str = ""
    database: str | None = None

    @property
    def kind(self) -> str:
        return self.action.kind

    def failed_exit(self, code: int) -> bool:
        if self.stop_codes is None:
            return code != 0
        return self.stop_codes.failed(code)


class Jobnet(Value):
    name: str
    jobs: Mapping[str, Job]
    description: str = ""
    on_failure: OnFailure = OnFailure.HALT
    timeout: float | None = None
    mode: str = "graph"
    params: Mapping[str, str] = field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()
    path: Path | None = None
    text: str = ""
    hash: str = ""

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    @cached_property
    def _graph(self) -> tuple[list[str], dict[str, int], dict[str, list[str]]]:
        """Topological order (ties in file order), positions, and each job's dependents."""
        index = {name: i for i, name in enumerate(self.jobs)}
        indegree = {name: len(set(job.needs)) for name, job in self.jobs.items()}
        children: dict[str, list[str]] = {name: [] for name in self.jobs}
        for name, job in self.jobs.items():
            for need in set(job.needs):
                if need in children:
                    children[need].append(name)
        ready = [(index[n], n) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, name = heapq.heappop(ready)
            order.append(name)
            for child in children[name]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    heapq.heappush(ready, (index[child], child))
        if len(order) < len(self.jobs):  # a cycle; the loader refuses those: be defensive
            seen = set(order)
            order += [n for n in self.jobs if n not in seen]
        return order, {name: i for i, name in enumerate(order)}, children

    @cached_property
    def _closures(self) -> dict[tuple[str, str], list[str]]:
        return {}

    def _closure(self, name: str, direction: str) -> list[str]:
        key = (name, direction)
        cached = self._closures.get(key)
        if cached is None:
            _, position, children = self._graph
            step = (lambda n: children[n]) if direction == "down" \
                else (lambda n: self.jobs[n].needs)
            found: set[str] = set()
            frontier = list(step(name))
            while frontier:
                current = frontier.pop()
                if current not in found and current in position:
                    found.add(current)
                    frontier.extend(step(current))
            cached = self._closures[key] = sorted(found, key=position.__getitem__)
        return cached

    def order(self) -> list[str]:
        """Jobs in a topological order, ties broken by file order."""
        return list(self._graph[0])

    def children(self) -> dict[str, list[str]]:
        """The jobs that need each job directly."""
        return {name: list(kids) for name, kids in self._graph[2].items()}

    def downstream(self, name: str) -> list[str]:
        """Every job that depends on `name`, directly or not, in topological order."""
        return list(self._closure(name, "down"))

    def upstream(self, name: str) -> list[str]:
        """Every job `name` depends on, directly or not, in topological order."""
        return list(self._closure(name, "up"))
