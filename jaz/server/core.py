"""The server's core: the engine's service, the registry of jobnets and calendars, the
threads that drive runs, and a feed of changes, behind the operations the API offers.

Everything the API (and so the CLI and the TUI) does goes through here and through
the engine's `Service`: there is no second path to the database.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jaz.engine.clock import Clock, SystemClock, local_zone
from jaz.engine.executors.local import LocalExecutor
from jaz.engine.executors.spawner import SpawningExecutor
from jaz.engine.machine import RunMachine, Settings
from jaz.engine.model import Jobnet, RunState
from jaz.engine.params import check_names
from jaz.engine.records import EventRecord, JobRecord, RunRecord
from jaz.engine.runner import Driver, Loop, Runner
from jaz.engine.secrets import Secrets
from jaz.engine.service import Service, default_executors
from jaz.engine.store import PostgresStore, SqliteStore
from jaz.engine.store.postgres import is_postgres_url
from jaz.errors import JazError, JobnetInvalid, Refused, StateError
from jaz.paths import SERVER_ID_FILE, default_db, ensure_home, secrets_file
from jaz.server.actions import ReleaseExecutor, StartExecutor
from jaz.server.cluster import Cluster
from jaz.server.config import ServerConfig
from jaz.server.registry import Registry

if TYPE_CHECKING:
    from jaz.engine.notify import Notifier
    from jaz.hosts.config import Host
    from jaz.hosts.executor import AgentHosts

log = logging.getLogger("jaz.server")
ARM_TTL = 5.0   # seconds an armed runner waits for its run to start (`Core.arm`)
RESUMABLE = (RunState.FAILED, RunState.STOPPED, RunState.ERROR)   # `jaz resume`


@dataclass
class Change:
    """One change for the server-sent-events stream: a run or a job of a run. `text`
    is its event as sent, made by the first stream that sends it and reused by the
    others (api.py)."""

    kind: str                      # "run" | "job"
    run_id: int
    record: RunRecord | JobRecord
    text: str | None = None


class Feed:
    """Fans changes out to subscribers (SSE clients); a slow one loses old changes,
    never blocks the engine."""

    def __init__(self, size: int = 1000) -> None:
        self._subs: set[queue.Queue[Change]] = set()
        self._lock = threading.Lock()
        self._size = size

    def subscribe(self) -> queue.Queue[Change]:
        q: queue.Queue[Change] = queue.Queue(self._size)
        with self._lock:
            self._subs.add(q)
        return q

    def unsubscribe(self, q: queue.Queue[Change]) -> None:
        with self._lock:
            self._subs.discard(q)

    def publish(self, change: Change) -> None:
        with self._lock:
            subs = list(self._subs)
        for q in subs:
            try:
                q.put_nowait(change)
            except queue.Full:
                try:
                    q.get_nowait()
                    q.put_nowait(change)
                except (queue.Empty, queue.Full):
                    pass


class Core:
    def __init__(self, config: ServerConfig, *, clock: Clock | None = None,
                 interactive: bool = True) -> None:
        home = ensure_home()
        self.config = config
        self.zone = local_zone()
        self.clock = clock or SystemClock()
        self.store: SqliteStore | PostgresStore
        self._identity: IO[str] | None = None
        if is_postgres_url(config.database):   # logs stay on this machine, in $JAZ_HOME
            self._identity, server_id = _identity(home)
            try:
                self.store = PostgresStore(config.database, server_id=server_id)
            except BaseException:
                self._identity.close()
                raise
            log_dir = home / "logs"
        else:
            db = Path(config.database) if config.database else default_db()
            self.store = SqliteStore(db, background_checkpoints=True)
            log_dir = home / "logs" if not config.database else db.parent / f"{db.stem}.logs"
        self.registry = Registry(config.jobnets or home / "jobnets",
                                 config.calendars or home / "calendars", self.zone)
        self.registry.reload()
        self.settings = Settings(log_dir=log_dir, secrets=Secrets(secrets_file()),
                                 queues=config.queues, wait_for_operator=interactive, tz=self.zone,
                                 calendars=self.registry.library, adopt_running=True)
        self.feed = Feed()
        self.notifier: Notifier | None = None
        if config.notify is not None:
            from jaz.engine.notify import Notifier

            self.notifier = Notifier(config.notify)
        self._notified: set[tuple[int, str, str | None]] = set()
        executors = default_executors()
        # results survive a crash (exit files); processes start in the spawner process
        self.spawning = SpawningExecutor(LocalExecutor(record_exit=True))
        executors["run"] = self.spawning
        executors["start"] = StartExecutor(self)
        executors["release"] = ReleaseExecutor(self)
        self.hosts, self.remote = _hosts(config, home)
        self._hosts_seen = _signature(config.hosts_file)   # the hosts file as read
        self._hosts_lock = threading.Lock()
        self.service = Service(self.store, self.settings, clock=self.clock,
                               executors=executors, listener=self._changed,
                               remote=self.remote)
        self._lock = threading.Lock()
        self.driver = Driver(self.store, self._ended)
        # runners made ahead of their runs' start (`arm`): run id -> (runner, expiry)
        self._armed: dict[int, tuple[Runner, float]] = {}
        self.wake = threading.Event()      # the scheduler looks again at once when set
        # held while the scheduler applies its decisions and while an operator changes an
        # upcoming run: each sees the other's change, never a run read before it
        self.steer = threading.RLock()
        self.draining = False              # max_memory reached: take no new work
        self.closing = threading.Event()   # the server is shutting down
        # several servers on one PostgreSQL database: actions for the runs others drive,
        # the changes they make (for /stream), this server's heartbeat
        self.cluster: Cluster | None = None
        if isinstance(self.store, PostgresStore):
            self.store.register(self.store.server_name, "")
            self.cluster = Cluster(self.store, apply=self._apply_sent, relay=self._relayed)
            self.cluster.start()

    def announce(self, url: str) -> None:
        """Where this server's API listens, for the other servers (PostgreSQL)."""
        if isinstance(self.store, PostgresStore):
            self.store.register(f"{socket.gethostname()} {url}", url)

    # ------------------------------------------------------------ feed

    def _changed(self, kind: str, record: RunRecord | JobRecord) -> None:
        run_id = record.id if isinstance(record, RunRecord) else record.run_id
        is_run = isinstance(record, RunRecord)
        self.feed.publish(Change("run" if is_run else "job", run_id, record))
        if self.cluster is not None:
            self.cluster.changed("run" if is_run else "job", run_id,
                                 None if isinstance(record, RunRecord) else record.name)
        if self.notifier is not None:
            self._notify(record)

    def _notify(self, record: RunRecord | JobRecord) -> None:
        """Tell operators of failures (once per run, job and kind), through [notify]."""
        from jaz.engine.model import JobState
        from jaz.engine.notify import Event, EventKind

        if isinstance(record, RunRecord):
            kinds = {RunState.FAILED: EventKind.RUN_FAILED, RunState.ERROR: EventKind.RUN_ERROR}
            kind, job, jobnet = kinds.get(record.status), None, record.jobnet
            run_id, status, message = record.id, str(record.status), record.message
        else:
            kind = EventKind.JOB_FAILED if record.status == JobState.FAILED else None
            job, run_id, status = record.name, record.run_id, str(record.status)
            message = record.message or f"exit code {record.exit_code}"
            jobnet = ""
        if kind is None:
            return
        key = (run_id, str(kind), job)
        with self._lock:
            if key in self._notified:
                return
            self._notified.add(key)
        if not jobnet:
            jobnet = self.store.get_run(run_id).jobnet
        self.notify(Event(kind=kind, jobnet=jobnet, run_id=run_id, status=status,
                          message=message, at=self.clock.now(), job=job))

    def notify(self, event: Any) -> None:
        if self.notifier is not None:
            self.notifier.submit(event)   # on a thread of its own: never blocks a run

    # ------------------------------------------------------------ runs

    def start(self, name: str, *, params: Mapping[str, str] | None = None,
              at: datetime | None = None, hold: bool = False, user: str = "system",
              trigger: str = "manual") -> int:
        """Create a run of the jobnet's version in force; start it unless held or later."""
        loaded = self.registry.get(name)
        if loaded.jobnet is None:
            raise JobnetInvalid(list(loaded.problems))
        if self.draining:
            raise StateError("the server is restarting (max_memory reached); try again soon")
        check_names(params or {}, loaded.jobnet.params)   # operators: not what jobs execute
        run_id = self.service.create(loaded.jobnet, params=params, trigger=trigger, hold=hold,
                                     user=user, scheduled_at=at)
        status = self.store.run_status(run_id)
        if status == RunState.RUNNING:
            self.drive(run_id, loaded.jobnet)     # the driver tells the event streams
            return run_id
        self._changed("run", self.store.get_run(run_id))
        if status == RunState.SCHEDULED:
            self.wake.set()        # the scheduler starts it at its time
        return run_id

    def drive(self, run_id: int, jobnet: Jobnet | None = None, *,
              resume: bool = False) -> None:
        """Have the driver drive a run until it ends or waits for an operator.

        A run driven already is left to its runner; one whose runner has left (it found
        nothing more to do, and an action reopened the run after) is driven again."""
        self.drive_all([(run_id, jobnet)], resume=resume)

    def drive_all(self, runs: Sequence[tuple[int, Jobnet | None]], *,
                  resume: bool = False) -> None:
        """`drive` for runs that start together, handed to the driver at once."""
        self.driver.add(*((run_id, functools.partial(self._runner, run_id, jobnet, resume))
                          for run_id, jobnet in runs))

    @property
    def arms(self) -> bool:
        """Whether runs are armed ahead of their start (`arm`): not on PostgreSQL, where
        another server may change a run's jobs meanwhile (an operator's hold through its
        API), which this one would not hear of."""
        return not isinstance(self.store, PostgresStore)

    def arm(self, runs: Sequence[tuple[int, Jobnet | None]], *, ttl: float = ARM_TTL,
            until: float | None = None) -> int:
        """Make the runners of runs about to start (the scheduler's next fire) ahead of
        their start: loaded, and their log folders made, so that at the instant only their
        first turn is left. Nothing is written to the store: each run starts as it would
        without (`_runner` takes the runner if nothing changed the run's jobs meanwhile),
        and a runner not taken within `ttl` seconds is dropped. Arming stops at `until`
        (monotonic seconds): it must not hold up the start it prepares. How many were
        armed."""
        self.disarm(expired_only=True)
        if not self.arms:
            return 0
        armed = 0
        for run_id, jobnet in runs:
            if until is not None and time.monotonic() >= until:
                break
            with self._lock:
                if run_id in self._armed:
                    continue
            try:
                runner = Runner(self.service.ctx, jobnet or self.service.jobnet_of(run_id),
                                run_id, self.driver.loop, armed=True)
            except JazError as e:   # it starts, or fails, as it would have without
                log.debug("run %s not armed: %s", run_id, e)
                continue
            try:
                runner.machine.make_log_folder()
            except OSError:
                pass   # made (or reported) when its first job starts
            with self._lock:
                self._armed[run_id] = (runner, time.monotonic() + ttl)
            armed += 1
        return armed

    def disarm(self, *, expired_only: bool = False) -> None:
        """Drop the armed runners (those past their time only, with `expired_only`)."""
        now = time.monotonic()
        with self._lock:
            dropped = [runner for runner, until in self._armed.values()
                       if until <= now or not expired_only]
            for runner in dropped:
                del self._armed[runner.run_id]
        for runner in dropped:
            runner.disarm()

    def armed(self) -> dict[int, Runner]:
        """The runs whose runners are armed, not taken yet."""
        with self._lock:
            return {run_id: runner for run_id, (runner, _) in self._armed.items()}

    def _runner(self, run_id: int, jobnet: Jobnet | None, resume: bool,
                loop: Loop) -> tuple[Runner, Callable[[RunMachine], None] | None] | None:
        """On the driver thread, with no runner of the run: its runner, if it is running
        and no other server drives it (the one armed for it, when it still fits)."""
        with self._lock:
            armed, until = self._armed.pop(run_id, (None, 0.0))
        if armed is not None and until <= time.monotonic():
            armed.disarm()   # past its time: loaded too long ago to be trusted
            armed = None
        taken = False
        try:
            if run_id in self.service.ctx.active:
                return None   # a runner here drives it (a sub-jobnet's, its parent's job)
            run = self.store.get_run(run_id) if armed is not None else None
            if (run.status if run else self.store.run_status(run_id)) != RunState.RUNNING:
                return None   # nothing reopened it: the runner that left was right
            if not self.store.claim(run_id):
                log.info("run %s is driven by another server", run_id)
                return None
            try:
                if armed is not None and run is not None and not resume:
                    taken = armed.enlist(run)
                    if taken:
                        return armed, None
                    armed.disarm()   # before a new runner makes the log folder again
                    armed = None
                apply = self.service.resumer(run_id, user="server") if resume else None
                jobnet = jobnet or self.service.jobnet_of(run_id)
                runner = Runner(self.service.ctx, jobnet, run_id, loop, if_running=True)
                if not runner.taken:
                    # stopped since it was read (`Service.stop` before the runner was
                    # made: its first turn would begin it again), or driven already
                    self._ended(runner.machine.run)
                    return None
                return runner, apply
            except BaseException:
                self.store.unclaim(run_id)
                raise
        finally:
            if armed is not None and not taken:
                armed.disarm()

    def _ended(self, run: RunRecord) -> None:
        """The run's runner has left the driver."""
        self.store.unclaim(run.id)
        if self._may_be_awaited(run.jobnet):
            self.wake.set()

    def _may_be_awaited(self, jobnet: str) -> bool:
        """Whether a scheduled run may be waiting for a run of this jobnet to end
        (`overlap = wait`): only then does the scheduler look again at once, not after
        every run."""
        try:
            schedules = self.registry.get(jobnet).schedules
        except JazError:     # gone from the registry: look anyway
            return True
        return any(b.schedule.overlap == "wait" for b in schedules)

    def running(self) -> list[int]:
        return self.driver.running()

    def recover(self, *, own: bool = False) -> None:
        """After a restart (or kill -9): runs that were running go on where they were.
        On a database several servers share, only the runs no other server drives (the
        claim in `_drive` decides), so the leader calls this again now and then to take
        over the runs of a server that died (`adopt`), and the others (`own`) to take
        back the runs they drove before a restart whose lock was not free yet."""
        if own:
            if not isinstance(self.store, PostgresStore):
                return
            mine = set(self.store.own_runs())
            if not mine - set(self.running()):
                return
        for run in self.store.list_runs(status=[RunState.RUNNING], top_level=True):
            if own and run.id not in mine:
                continue
            if run.id in self.running() or not self.store.claim(run.id):
                continue
            log.info("run %s (%s) was running with no server driving it: resuming it",
                     run.id, run.jobnet)
            self.drive(run.id, resume=True)

    def logs_elsewhere(self, run_id: int) -> list[dict[str, Any]]:
        """The other servers that keep the logs of a run this one has none of (they
        drove it; PostgreSQL): id, name, url. Empty when the logs are here, or nobody
        else has them."""
        if not isinstance(self.store, PostgresStore) or \
                (self.settings.log_dir / str(run_id)).exists():
            return []
        top = self.store.get_run(run_id)
        while top.parent_run is not None:   # a sub-jobnet's logs are where its parent ran
            top = self.store.get_run(top.parent_run)
        return [s for s in self.store.log_servers(top.id)
                if s["id"] != self.store.server_id and s["url"]]

    def _relayed(self, kind: str, run_id: int, job: str | None) -> None:
        """A change another server made (PostgreSQL), for this server's feed."""
        record: RunRecord | JobRecord = self.store.get_run(run_id) if job is None \
            else self.store.get_job(run_id, job)
        self.feed.publish(Change(kind, run_id, record))

    def _apply_sent(self, row: Mapping[str, Any]) -> None:
        """An operator action another server sent here, to the run this one drives."""
        self._act(str(row["action"]), int(row["run_id"]), row["job"], user=str(row["user"]),
                  downstream=bool(row["downstream"]), reason=str(row["reason"]))

    def _driven_elsewhere(self, run_id: int) -> dict[str, Any] | None:
        """The other server that drives the run (its top-level run's driver); None when
        this one does, or none does and the action may apply here. A run that is
        running with no server driving it (its server died or lost the database, and
        nobody took it over yet) is refused."""
        assert isinstance(self.store, PostgresStore)
        top = self.store.get_run(run_id)
        while top.parent_run is not None:
            top = self.store.get_run(top.parent_run)
        if top.id in self.service.ctx.active or top.id in self.running():
            return None
        driver = self.store.driver(top.id)
        if driver is not None:
            return None if driver["id"] == self.store.server_id else driver
        if self.store.run_status(top.id) == RunState.RUNNING and \
                top.id not in self.service.ctx.active and top.id not in self.running():
            raise StateError(f"run {top.id} is running but no server drives it now (the one "
                             f"that drove it stopped or lost the database)",
                             hint="the server that schedules takes it over within about "
                                  "15 s; try again then")
        return None

    def act(self, action: str, run_id: int, job: str | None, *, user: str,
            downstream: bool = False, reason: str = "") -> RunRecord:
        """An operator action on a run or one of its jobs (SPEC §2.4); `reason`: the
        message of a run stopped other than by an operator (the scheduler's replace).
        On a database several servers share, an action on a run another server drives
        is sent to that server, which applies it (`Cluster.send`)."""
        if self.cluster is not None:
            driver = self._driven_elsewhere(run_id)
            if driver is not None:
                self.cluster.send(driver, run_id, job, action, user=user,
                                  downstream=downstream, reason=reason)
                return self.service.run(run_id)
        return self._act(action, run_id, job, user=user, downstream=downstream,
                         reason=reason)

    def _act(self, action: str, run_id: int, job: str | None, *, user: str,
             downstream: bool = False, reason: str = "") -> RunRecord:
        """`act`, here."""
        run = self.service.run(run_id)
        if job is None:
            if action == "stop":
                self.service.stop(run_id, user=user, reason=reason)
            elif action == "hold":
                self._hold_run(run, user)
            elif action == "release":
                self._release_run(run, user)
            elif action == "skip":
                self._skip_run(run, user)
            elif action == "resume":
                self._resume_run(run, user)
            else:
                raise StateError(f"{action} needs a job: {action} RUN JOB"
                                 + (" (or rerun RUN: a new run with the same params)"
                                    if action == "rerun" else ""))
            after = self.service.run(run_id)
            if action == "resume" and after.status == RunState.RUNNING:
                self.drive(run_id)
            if action == "stop":
                # told whether or not a driver tells too: a running run stopped while the
                # driver took it up is let go without a turn (`_runner`)
                self._changed("run", after)
            return after
        if action == "stop":
            self.service.stop(run_id, job, user=user)
        elif action == "rerun":
            self.service.rerun(run_id, job, downstream=downstream, user=user)
        else:
            getattr(self.service, action)(run_id, job, user=user)
        after = self.service.run(run_id)
        # an action that reopens a run no runner drives (a rerun or skip in a halted,
        # failed, stopped or even succeeded run) drives it again from where it is: not
        # as a resume, which would run every failed or stopped job again (a job just
        # stopped among them). Whatever the status read before: a runner may have left
        # just before the action; one that drives the run keeps it (`_runner`)
        if action not in ("stop", "hold") and after.status == RunState.RUNNING:
            self.drive(run_id)
        return self.service.run(run_id)

    def _hold_run(self, run: RunRecord, user: str) -> None:
        if run.status != RunState.SCHEDULED:
            raise StateError(f"run {run.id} is {run.status}; only a scheduled run can be held "
                             f"(hold one of its jobs instead)")
        self._set_run(run, RunState.HELD, "hold_run", user)

    def _release_run(self, run: RunRecord, user: str) -> None:
        if run.status != RunState.HELD:
            raise StateError(f"run {run.id} is {run.status}, not held")
        now = self.clock.now()
        if run.scheduled_at is not None and run.trigger in ("schedule", "catch-up") or \
                run.scheduled_at is not None and run.scheduled_at > now:
            self._set_run(run, RunState.SCHEDULED, "release_run", user)  # the scheduler starts it
            self.wake.set()
            return
        self._set_run(run, RunState.RUNNING, "release_run", user)
        self.drive(run.id)

    def _skip_run(self, run: RunRecord, user: str) -> None:
        """A scheduled or held run that is not to start: recorded as `skipped`."""
        if run.status not in (RunState.SCHEDULED, RunState.HELD):
            raise StateError(f"run {run.id} is {run.status}; only a scheduled or held run "
                             f"can be skipped (skip one of its jobs instead)")
        self._set_run(run, RunState.SKIPPED, "skip_run", user, ended_at=self.clock.now(),
                      message=f"skipped by {user}")

    def _resume_run(self, run: RunRecord, user: str) -> None:
        """Rerun from failure: a run that failed, was stopped or halted in `error` goes on
        (`jaz run --resume`): its failed and stopped jobs run again, finished ones do not.
        `act` drives it once it is running again."""
        if run.parent_run is not None:
            raise StateError(f"run {run.id} is part of run {run.parent_run}; resume that one")
        if run.status not in RESUMABLE:
            raise StateError(f"run {run.id} is {run.status}; only a failed, stopped or halted "
                             f"(error) run can be resumed"
                             + (" (jaz rerun RUN starts a new one)"
                                if run.status == RunState.SUCCEEDED else ""))
        self.service.resume_ended(run.id, RESUMABLE, user=user)

    def retime(self, run_id: int, at: datetime, *, user: str) -> RunRecord:
        """Move a scheduled or held run's start. The operator owns its time from then on:
        it starts then like `jaz start --at` (no overlap or deadline policy, and a new
        version of its jobnet does not drop it). A time already past starts it now."""
        run = self.service.run(run_id)
        if run.status not in (RunState.SCHEDULED, RunState.HELD):
            raise StateError(f"run {run_id} is {run.status}; only a scheduled or held run "
                             f"can be given another start time")
        at = max(at, self.clock.now())
        before = run.scheduled_at.isoformat() if run.scheduled_at else "none"
        self._set_run(run, run.status, "retime_run", user, scheduled_at=at,
                      trigger="manual", detail=f"{before} -> {at.isoformat()}")
        self.wake.set()
        return self.service.run(run_id)

    def rerun_run(self, run_id: int, *, user: str) -> int:
        """A new run of the run's jobnet (the version in force) with the run's params."""
        run = self.service.run(run_id)
        new = self.start(run.jobnet, params=run.params, user=user, trigger="rerun")
        self.store.add_event(EventRecord(at=self.clock.now(), kind="rerun_run", run_id=new,
                                         jobnet=run.jobnet, user=user,
                                         detail=f"a rerun of run {run_id}"))
        return new

    def _set_run(self, run: RunRecord, status: RunState, kind: str, user: str, *,
                 detail: str = "", **fields: Any) -> None:
        now = self.clock.now()
        with self.steer, self.store.batch():
            # checked against the status the caller decided on, with the scheduler held
            # off: a run it started meanwhile is not to be held, skipped or re-timed
            current = self.store.run_status(run.id)
            if current != run.status:
                raise StateError(f"run {run.id} is {current} now (it was {run.status}); "
                                 f"look again and retry")
            record = self.store.update_run(run.id, status=status, **fields)
            self.store.add_event(EventRecord(at=now, kind=kind, run_id=run.id,
                                             jobnet=run.jobnet, user=user, detail=detail))
        self._changed("run", record)

    # ------------------------------------------------------------ the hosts file

    def reload_hosts(self, *, always: bool = True) -> bool:
        """Read the hosts file again (on SIGHUP; without `always`, only when it changed
        since it was last read): hosts added, changed or removed are used from now on,
        and jobs in flight keep the host they started with. A bad file is refused with a
        log message, and the hosts stay as they were. Whether the hosts were replaced."""
        from jaz.hosts.config import default_hosts_file

        path = self.config.hosts_file or default_hosts_file()
        with self._hosts_lock:
            seen = _signature(self.config.hosts_file)
            if not always and seen == self._hosts_seen:
                return False
            self._hosts_seen = seen
            try:
                hosts = _read_hosts(self.config)
            except JazError as e:
                log.error("hosts file %s NOT reloaded, the hosts stay as they were; fix it "
                          "and send SIGHUP again (or save it again):\n%s", path, e)
                return False
            if self.remote is None:
                hosts, self.remote = _remote(self.config, ensure_home(), hosts)
                self.service.ctx.remote = self.remote
                added, removed = sorted(hosts), sorted(set(self.hosts) - set(hosts))
                changed: list[str] = []
            else:
                added, changed, removed = self.remote.reload(hosts)
            self.hosts = dict(hosts)
        if added or changed or removed:
            log.info("hosts file %s reloaded: %s", path, "; ".join(
                f"{what} {', '.join(names)}" for what, names in
                (("added", added), ("changed", changed), ("removed", removed)) if names))
        else:
            log.info("hosts file %s reloaded: no change", path)
        return True

    # ------------------------------------------------------------ housekeeping

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        self.disarm()
        self.spawning.close()
        if self.remote is not None:
            self.remote.close()
        self.store.close()
        if self._identity is not None:
            self._identity.close()


def _identity(home: Path) -> tuple[IO[str], str]:
    """This server's id among those sharing a PostgreSQL database, kept in
    $JAZ_HOME/server.id (made on first start): a server started again is the same
    one, and takes back at once the runs it drove (their job logs and exit files are
    in this $JAZ_HOME). The file stays locked while the server runs: two servers on
    one $JAZ_HOME would be one server twice."""
    import fcntl
    import os
    import re
    import secrets

    path = home / SERVER_ID_FILE
    file = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+")  # noqa: SIM115
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        file.close()
        raise Refused(f"another jaz server runs with this JAZ_HOME ({home}): {path} is "
                      f"locked", hint="give each server on the database its own JAZ_HOME"
                      ) from None
    server_id = file.read().strip()
    if not re.fullmatch(r"[0-9a-z]{4,32}", server_id):
        server_id = secrets.token_hex(6)
        file.seek(0)
        file.truncate()
        file.write(server_id + "\n")
        file.flush()
    return file, server_id


def _read_hosts(config: ServerConfig) -> dict[str, Host]:
    """The hosts of the hosts file and of the config's own [hosts.NAME] tables (which
    win); JobnetInvalid for a bad hosts file."""
    from jaz.hosts.config import load_hosts

    hosts = {**load_hosts(config.hosts_file), **config.hosts}
    if config.jaz_listen:   # the config's jaz_listen wins over the hosts file's
        from dataclasses import replace

        hosts = {n: replace(h, jaz_listen=config.jaz_listen) if h.jaz_agent else h
                 for n, h in hosts.items()}
    return hosts


def _hosts(config: ServerConfig, home: Path) -> tuple[dict[str, Host], AgentHosts | None]:
    """The hosts, and the executor of the remote hosts among them (agent, JAZ agent and
    SSH hosts), already saying hello to each (their online state for `jaz hosts`); None
    without any."""
    return _remote(config, home, _read_hosts(config))


def _remote(config: ServerConfig, home: Path, hosts: dict[str, Host]
            ) -> tuple[dict[str, Host], AgentHosts | None]:
    if not any(h.agent or h.jaz_agent or h.ssh for h in hosts.values()):
        return hosts, None
    from jaz.hosts.executor import AgentHosts, owner_of

    database = config.database or str(home / "jaz.db")
    remote = AgentHosts(hosts, owner_of(database))
    remote.connect_all()
    return hosts, remote


def _signature(hosts_file: Path | None) -> tuple[int, int, int, int] | None:
    """What tells a changed hosts file: (mtime, size, inode, device); None when missing."""
    from jaz.hosts.config import default_hosts_file

    try:
        st = (hosts_file or default_hosts_file()).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
