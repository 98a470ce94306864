"""What the store keeps: runs, jobs, events and jobnet versions.

Records are frozen; a change is `store.update_job(run, name, status=...)`, so
every state change passes through the store (and is committed) before it is acted on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jaz.engine.model import JobState, RunState
from jaz.value import Value, field


class RunRecord(Value):
    """One run of a jobnet, as the store keeps it."""

    id: int = 0
    jobnet: str
    status: RunState
    params: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    path: str | None = None
    trigger: str = "manual"
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    parent_run: int | None = None
    parent_job: str | None = None
    message: str = ""
    warning: str = ""


class JobRecord(Value):
    """One job of one run, as the store keeps it."""

    run_id: int = 0
    name: str
    kind: str
    status: JobState = JobState.PENDING
    host: str = "local"
    attempts: int = 0
    iteration: int = 0
    executions: int = 0  # every start of this job in this run, never reset: names its logs
    exit_code: int | None = None
    timed_out: bool = False
    outputs: Mapping[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    not_before: datetime | None = None
    pid: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    message: str = ""


class EventRecord(Value):
    """One line of the audit/event log: who did what to which run or job."""

    id: int = 0
    at: datetime
    kind: str
    run_id: int | None = None
    jobnet: str | None = None
    job: str | None = None
    user: str = "system"
    detail: str = ""


def evolve(record: JobRecord, **changes: Any) -> JobRecord:
    """`dataclasses.replace` for the engine's hot path, without its checks: copying the
    instance dict is the same thing, ten times faster."""
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    new.__dict__.update(changes)
    return new


RUN_FIELDS = {f for f in RunRecord._fields if f != "id"}
JOB_FIELDS = {f for f in JobRecord._fields if f not in ("run_id", "name")}


def check_fields(allowed: set[str], changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"unknown record fields: {sorted(unknown)}")
