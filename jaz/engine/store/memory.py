"""An in-memory store: real code, used to run the engine's tests fast."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from jaz.engine.model import RunState
from jaz.engine.records import (
    JOB_FIELDS,
    RUN_FIELDS,
    EventRecord,
    JobRecord,
    RunRecord,
    check_fields,
)
from jaz.engine.store.base import Store
from jaz.errors import NotFound


class MemoryStore(Store):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[int, RunRecord] = {}
        self._jobs: dict[int, dict[str, JobRecord]] = {}
        self._events: list[EventRecord] = []
        self._versions: dict[str, str] = {}
        self._state: dict[str, str] = {}

    def save_version(self, hash: str, name: str, text: str, at: datetime) -> None:
        with self._lock:
            self._versions.setdefault(hash, text)

    def get_version(self, hash: str) -> str | None:
        return self._versions.get(hash)

    def create_run(self, run: RunRecord, jobs: Sequence[JobRecord]) -> int:
        with self._lock:
            run_id = max(self._runs, default=0) + 1
            self._runs[run_id] = replace(run, id=run_id)
            self._jobs[run_id] = {j.name: replace(j, run_id=run_id) for j in jobs}
            return run_id

    def update_run(self, run_id: int, **changes: Any) -> RunRecord:
        check_fields(RUN_FIELDS, changes)
        with self._lock:
            run = replace(self.get_run(run_id), **changes)
            self._runs[run_id] = run
            return run

    def update_job(self, run_id: int, name: str, **changes: Any) -> None:
        check_fields(JOB_FIELDS, changes)
        with self._lock:
            self._jobs[run_id][name] = replace(self.get_job(run_id, name), **changes)

    def get_run(self, run_id: int) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound(f"no run {run_id}", hint="`jaz runs` lists the runs") from None

    def get_jobs(self, run_id: int) -> list[JobRecord]:
        self.get_run(run_id)
        return list(self._jobs[run_id].values())

    def get_job(self, run_id: int, name: str) -> JobRecord:
        try:
            return self._jobs[run_id][name]
        except KeyError:
            self.get_run(run_id)
            raise NotFound(f"run {run_id} has no job {name!r}") from None

    def list_runs(self, *, jobnet: str | None = None, status: Sequence[RunState] = (),
                  since: datetime | None = None, parent_run: int | None = None,
                  top_level: bool = False, limit: int | None = None,
                  offset: int = 0, due_by: datetime | None = None) -> list[RunRecord]:
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.id, reverse=True)
        out = [r for r in runs
               if (jobnet is None or r.jobnet == jobnet)
               and (not status or r.status in status)
               and (since is None or r.created_at >= since)
               and (parent_run is None or r.parent_run == parent_run)
               and (not top_level or r.parent_run is None)
               and (due_by is None or (r.scheduled_at is not None
                                       and r.scheduled_at <= due_by))][offset:]
        return out[:limit] if limit is not None else out

    def job_history(self, jobnet: str, job: str, limit: int | None = None) -> list[JobRecord]:
        with self._lock:
            out = [self._jobs[r.id][job] for r in self.list_runs(jobnet=jobnet)
                   if job in self._jobs[r.id]]
        return out[:limit] if limit is not None else out

    def waiting(self, after: datetime) -> tuple[dict[str, int], datetime | None]:
        counts: dict[str, int] = {}
        first: datetime | None = None
        with self._lock:
            for r in self._runs.values():
                if r.status in (RunState.SCHEDULED, RunState.HELD) and r.parent_run is None \
                        and r.scheduled_at is not None and r.scheduled_at > after:
                    counts[r.jobnet] = counts.get(r.jobnet, 0) + 1
                    first = r.scheduled_at if first is None else min(first, r.scheduled_at)
        return counts, first

    def count_runs(self) -> dict[RunState, int]:
        with self._lock:
            counts: dict[RunState, int] = {}
            for run in self._runs.values():
                if run.parent_run is None:
                    counts[run.status] = counts.get(run.status, 0) + 1
        return counts

    def delete_runs(self, run_ids: Sequence[int]) -> None:
        with self._lock:
            for run_id in run_ids:
                self._runs.pop(run_id, None)
                self._jobs.pop(run_id, None)

    def delete_events(self, before: datetime) -> int:
        with self._lock:
            kept = [e for e in self._events if e.at >= before]
            count = len(self._events) - len(kept)
            self._events = kept
        return count

    def add_event(self, event: EventRecord) -> None:
        with self._lock:
            self._events.append(replace(event, id=len(self._events) + 1))

    def list_events(self, *, run_id: int | None = None, since: datetime | None = None,
                    until: datetime | None = None, limit: int | None = None
                    ) -> list[EventRecord]:
        with self._lock:
            out = [e for e in self._events
                   if (run_id is None or e.run_id == run_id)
                   and (since is None or e.at >= since) and (until is None or e.at < until)]
        return out[-limit:] if limit is not None else out

    def get_state(self, key: str) -> str | None:
        return self._state.get(key)

    def set_state(self, key: str, value: str) -> None:
        with self._lock:
            self._state[key] = value
