"""The store interface the engine and the service layer talk to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

from jaz.engine.model import RunState
from jaz.engine.records import EventRecord, JobRecord, RunRecord
from jaz.errors import NotFound


class Store(ABC):
    """Runs, jobs, events and jobnet versions.

    Every call that changes something is durable when it returns, except inside
    `batch()`, where the whole batch becomes durable at once when the block exits.
    Implementations are safe to call from several threads.

    `remote` says whether calls wait on a network (a database server): callers on an
    event loop hand those to a thread; a local store's calls are short and run inline.
    """

    remote: ClassVar[bool] = False

    @abstractmethod
    def save_version(self, hash: str, name: str, text: str, at: datetime) -> None: ...

    @abstractmethod
    def get_version(self, hash: str) -> str | None: ...

    @abstractmethod
    def create_run(self, run: RunRecord, jobs: Sequence[JobRecord]) -> int: ...

    @abstractmethod
    def update_run(self, run_id: int, **changes: Any) -> RunRecord: ...

    @abstractmethod
    def update_job(self, run_id: int, name: str, **changes: Any) -> None: ...

    @abstractmethod
    def get_run(self, run_id: int) -> RunRecord: ...

    def run_status(self, run_id: int) -> RunState:
        """A run's status alone (NotFound for no such run)."""
        return self.get_run(run_id).status

    def update_run_if(self, run_id: int, expect: RunState, triggers: Sequence[str],
                      **changes: Any) -> RunRecord | None:
        """`update_run` while the run is in status `expect` with one of `triggers`, checked and
        changed at once (one statement in SQL); None, and nothing changed, when it is
        not (or is gone): an operator held, skipped or re-timed it meanwhile."""
        with self.batch():
            try:
                run = self.get_run(run_id)
            except NotFound:
                return None
            if run.status != expect or run.trigger not in triggers:
                return None
            return self.update_run(run_id, **changes)

    @abstractmethod
    def get_jobs(self, run_id: int) -> list[JobRecord]: ...

    @abstractmethod
    def list_runs(self, *, jobnet: str | None = None, status: Sequence[RunState] = (),
                  since: datetime | None = None, parent_run: int | None = None,
                  top_level: bool = False, limit: int | None = None,
                  offset: int = 0, due_by: datetime | None = None) -> list[RunRecord]:
        """Newest first. `due_by`: only runs scheduled at or before it."""

    @abstractmethod
    def job_history(self, jobnet: str, job: str, limit: int | None = None) -> list[JobRecord]:
        """Every execution of one job definition across runs, newest first."""

    @abstractmethod
    def add_event(self, event: EventRecord) -> None: ...

    @abstractmethod
    def list_events(self, *, run_id: int | None = None, since: datetime | None = None,
                    until: datetime | None = None, limit: int | None = None
                    ) -> list[EventRecord]: ...

    @abstractmethod
    def get_state(self, key: str) -> str | None:
        """A value the server keeps between restarts (the scheduler's cursors)."""

    @abstractmethod
    def set_state(self, key: str, value: str) -> None: ...

    @abstractmethod
    def waiting(self, after: datetime) -> tuple[dict[str, int], datetime | None]:
        """Scheduled or held top-level runs for later than `after`: how many per jobnet,
        and the earliest time one is due (for the scheduler, without reading them all)."""

    @abstractmethod
    def count_runs(self) -> dict[RunState, int]:
        """How many top-level runs are in each state (for /metrics)."""

    @abstractmethod
    def delete_runs(self, run_ids: Sequence[int]) -> None:
        """Forget these runs and their jobs (retention: `keep_days`, `jaz purge`)."""

    @abstractmethod
    def delete_events(self, before: datetime) -> int:
        """Forget audit events older than `before`; returns how many."""

    @contextmanager
    def batch(self) -> Iterator[None]:
        yield

    def get_job(self, run_id: int, name: str) -> JobRecord:
        for job in self.get_jobs(run_id):
            if job.name == name:
                return job
        from jaz.errors import NotFound

        raise NotFound(f"run {run_id} has no job {name!r}")

    def progress(self, run_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Per run: (jobs finished, jobs in all), for the runs list's progress column."""
        out = {}
        for run_id in run_ids:
            jobs = self.get_jobs(run_id)
            out[run_id] = (sum(j.status.finished for j in jobs), len(jobs))
        return out

    def claim(self, run_id: int) -> bool:
        """Whether this process may drive the run. One server per database drives every
        run; where several share one (PostgreSQL), one drives each run at a time."""
        return True

    def unclaim(self, run_id: int) -> None:  # noqa: B027 - nothing to undo but where shared
        """This process no longer drives the run."""

    def resign(self) -> None:  # noqa: B027 - nothing to give up but where shared
        """This process no longer schedules (past max_memory): where several servers
        share the database, another one takes over at once."""

    def close(self) -> None:
        return None
