"""The scheduler loop: ticks of `jaz.engine.planner.plan`, applied to the store.

The planner decides; this module only reads the inputs (the registry's schedules, the
unfinished runs, the persisted cursors and last tick) and applies the decisions
through the core, so the policies stay a pure function with table tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from jaz.engine import planner
from jaz.engine.model import Jobnet, RunState
from jaz.engine.records import EventRecord, RunRecord
from jaz.engine.store import PostgresStore
from jaz.engine.store.postgres import LostLeadership
from jaz.errors import NotFound, StateError
from jaz.server.core import Core

log = logging.getLogger("jaz.server")


LAST_TICK = "scheduler.last_tick"
IDLE = timedelta(seconds=5)       # look again at least this often (reloads, deadlines)
QUIET = timedelta(minutes=10)     # how long a jobnet with nothing to do is left alone
AFTER_STARTS = timedelta(milliseconds=250)   # the rest of a tick that started runs waits
ADOPT_EVERY = 5.0                 # seconds between a leader's looks for runs nobody drives
FOLLOW = timedelta(seconds=1)     # how soon a server that does not schedule asks again
PART = 10     # jobnets planned per commit; due runs start in between (~20 ms at start-up)
ARM_LEAD = timedelta(milliseconds=150)   # how long before a fire its runs' runners are made
ARM_MAX = 100                     # runs armed per fire, at most (the rest start as usual)
ARM_MARGIN = timedelta(milliseconds=30)   # arming stops this long before the fire
SETTLE = 0.2                      # seconds a long pass may wait for runs it started to begin


class Scheduler:
    def __init__(self, core: Core, settings: planner.Settings | None = None) -> None:
        self.core = core
        self.settings = settings or planner.Settings()
        self._leading = False
        self._next_adoption = 0.0   # monotonic time of the next look for orphaned runs
        self._arming: datetime | None = None   # the fire whose runs the next tick arms
        self._armed_for: datetime | None = None   # the fire whose runs were armed last
        self._forget()

    def _forget(self) -> None:
        """What this scheduler knows beyond the store, read again when it takes over."""
        # each jobnet's cursor as last read or written: the scheduler is its only writer
        self._cursors: dict[str, datetime | None] = {}
        # jobnets with no unfinished run whose last plan created nothing: (planned at, quiet
        # until, the schedules it was planned with); skipped until then
        self._quiet: dict[str, tuple[datetime, datetime, object]] = {}
        # the version of each jobnet its runs were last planned with
        self._versions: dict[str, str | None] = {}
        self._snapshot: object = None   # the registry snapshot last checked for changes
        # runs started in this pass whose version is the one in force (spares a re-parse)
        self._versions_in_force: dict[int, Jobnet] = {}
        # the time of the last tick, as last read or written (read once: ~0.5 ms a tick)
        self._last_tick: datetime | None = None
        self._last_tick_read = False

    def tick(self, now: datetime, *, hurry: bool = False) -> datetime:
        """`_tick`; a tick whose fires were fenced off (another server leads now) ends
        there, having fired nothing, and the next one asks for the lock again."""
        try:
            return self._tick(now, hurry=hurry)
        except LostLeadership as e:
            log.warning("%s", e.message)
            self._leading = False
            return now + FOLLOW

    def _tick(self, now: datetime, *, hurry: bool = False) -> datetime:
        """One tick at `now`; returns when the next one is due.

        With `hurry` (the daemon's loop), a tick that started due runs ends there and
        asks to be called again AFTER_STARTS later for the rest: the runs just started
        get the CPU (their threads, their processes) before the scheduler counts and
        materialises the runs ahead, which nothing waits for. And the next fire's runs
        are armed ARM_LEAD before it (`Core.arm`: their runners made, nothing written),
        in a tick of its own that does nothing else, so that at the fire only their
        first turns are left; a tick woken between that one and the fire waits for
        the fire.

        Reads the unfinished runs once per pass. A jobnet with no unfinished run whose
        last plan created nothing is planned again only after QUIET (or at once when its
        schedules change): its next fire is more than `ahead` away, so planning it every
        tick would only move its cursor; this keeps an idle tick cheap with thousands of
        jobnets, at the price of materialising such a fire up to QUIET later than
        `ahead` before it."""
        if not self._leads():
            return now + FOLLOW
        arming = self._arming
        if arming is not None and arming - ARM_LEAD <= now < arming:
            if self._armed_for != arming:   # else woken again before the fire: wait for it
                self._armed_for = arming
                self._arm(now, arming)
            return arming
        self._arming = None
        store = self.core.store
        if not self._last_tick_read:   # then kept here: the scheduler is its only writer
            raw = store.get_state(LAST_TICK)
            self._last_tick = datetime.fromisoformat(raw) if raw else None
            self._last_tick_read = True
        last_tick = self._last_tick
        if any(isinstance(d, planner.Start) for d in self._start_due(now, last_tick)) \
                and hurry:
            return now + AFTER_STARTS
        runs, waiting, first = self._read(now)
        if self._replan_changed(now):
            runs, waiting, first = self._read(now)
        busy = self._busy(runs, waiting)
        entries = [planner.Entry(jobnet=loaded.name, schedules=loaded.schedules,
                                 cursor=self._cursor(loaded.name))
                   for loaded in self.core.registry.all()
                   if loaded.jobnet is not None and loaded.schedules
                   and (loaded.name in busy or not self._is_quiet(loaded.name,
                                                                  loaded.schedules, now))]
        created: list[planner.Create] = []
        planned: list[planner.Entry] = []
        for at in range(0, len(entries), PART):
            part = entries[at:at + PART]
            while True:
                decisions = planner.plan(now, last_tick, part, runs, self.settings, waiting)
                self._apply_all(decisions, now)
                created += [d for d in decisions if isinstance(d, planner.Create)]
                moved = {d.jobnet: d.at for d in decisions if isinstance(d, planner.Cursor)}
                self._cursors.update(moved)
                part = [replace(e, cursor=moved.get(e.jobnet, e.cursor)) for e in part]
                if not planner.needs_another_pass(decisions, now):
                    break
                runs, waiting, first = self._read(now)
                busy |= self._busy(runs, waiting)
            planned += part
            # a long pass (a first start materialising thousands of runs) must not hold
            # back what comes due meanwhile: the runs due by now start between parts
            if hurry and at + PART < len(entries) and \
                    self._start_due(self.core.clock.now(), last_tick):
                # the runs just started begin before the next part: planning holds the
                # GIL, and the driver waited for it at each of its calls (~0.1 s a part)
                self.core.driver.settle(SETTLE)
                runs, waiting, first = self._read(now)   # what was decided on is not again
                busy |= self._busy(runs, waiting)
        active = busy | {d.jobnet for d in created}
        for e in planned:
            if e.jobnet in active:
                self._quiet.pop(e.jobnet, None)
            else:
                self._quiet[e.jobnet] = (now, now + QUIET, e.schedules)
        self._start_manual(now, runs)
        latest = max(now, last_tick or now)
        store.set_state(LAST_TICK, latest.isoformat())
        self._last_tick = latest
        # the first run scheduled for later: as read, or just created
        upcoming = [d.at for d in created if d.at > now] + ([first] if first else [])
        due = min([now + IDLE, *upcoming])
        if hurry and upcoming and due == min(upcoming) and self.core.arms:
            later = self.core.clock.now()   # this pass took a while, maybe
            if due - later > ARM_LEAD:
                self._arming = due
                return due - ARM_LEAD
            if due - later > ARM_MARGIN:
                self._armed_for = due
                self._arm(later, due)
        return due

    def _arm(self, now: datetime, at: datetime) -> None:
        """Arm the runs scheduled for `at` (after `now`): those the next tick will
        likely start, until ARM_MARGIN before it. A run it does not start (held,
        skipped, missed, waiting) loses its runner after a while; one an operator
        changes meanwhile gets a new one."""
        until = time.monotonic() + (at - now - ARM_MARGIN).total_seconds()
        try:
            runs = [r for r in self.core.store.list_runs(status=[RunState.SCHEDULED],
                                                         top_level=True, due_by=at)
                    if r.scheduled_at is not None and r.scheduled_at > now][:ARM_MAX]
            self.core.arm([(r.id, self._in_force(r)) for r in runs], until=until)
        except Exception:   # only a head start: the runs start at their time all the same
            log.warning("the runs due at %s could not be armed", at.isoformat(),
                        exc_info=True)

    def _in_force(self, run: RunRecord) -> Jobnet | None:
        """The run's jobnet when its version is the one in force (spares a parse)."""
        try:
            loaded = self.core.registry.get(run.jobnet)
        except NotFound:
            return None
        net = loaded.jobnet
        return net if net is not None and net.hash == run.version else None

    def _fence(self) -> None:
        """In the batch of a fire: on a database several servers share, it commits only
        while this server still leads (`PostgresStore.fence`), so a server that lost
        its session (and with it the leader lock) while deciding fires nothing."""
        store = self.core.store
        if isinstance(store, PostgresStore):
            store.fence()

    def _leads(self) -> bool:
        """On a PostgreSQL database that several servers share, one plans and fires: the
        one holding the database's leader lock. The others serve the API and drive the
        runs started through them, and one takes over when the leader goes (the lock
        goes with its session). The leader before may have moved every cursor: a
        scheduler that takes over reads them again."""
        store = self.core.store
        if not isinstance(store, PostgresStore):
            return True
        leads = store.lead()
        if leads and not self._leading:
            self._forget()
            log.info("this server schedules now (it holds the database's leader lock)")
        self._leading = leads
        if time.monotonic() >= self._next_adoption:
            self._next_adoption = time.monotonic() + ADOPT_EVERY
            # the leader: the runs of a server that died; the others: their own runs,
            # driven before a restart, if their lock was not free yet at the start
            self.core.recover(own=not leads)
        return leads

    def _start_due(self, now: datetime, last_tick: datetime | None
                   ) -> Sequence[planner.Decision]:
        """The runs due now are decided on and started first, before the costlier part
        of a tick (counting the runs ahead of every jobnet, materialising new ones): only
        the jobnets with a due run are planned, with their runs ahead taken as full, and
        of the decisions only those on existing runs are applied (start, miss, skip,
        stop, late), and returned. The full pass that follows sees them. A jobnet with fires
        still to record (the server was down) gets no decision here: `plan` leaves its
        due runs to the pass after the recording, and so does this one."""
        runs = self._unfinished(now)
        names = {r.jobnet for r in runs if r.status == RunState.SCHEDULED
                 and r.trigger in planner.SCHEDULED_TRIGGERS}
        if not names:
            return []
        entries = []
        for name in sorted(names):
            try:
                loaded = self.core.registry.get(name)
            except NotFound:
                continue   # its file is gone: the full pass decides on its runs
            if loaded.jobnet is not None and loaded.schedules:
                entries.append(planner.Entry(jobnet=name, schedules=loaded.schedules,
                                             cursor=self._cursor(name)))
        full = dict.fromkeys(names, self.settings.max_ahead)
        decisions = [d for d in planner.plan(now, last_tick, entries, runs, self.settings, full)
                     if not isinstance(d, planner.Create | planner.Cursor)]
        self._apply_all(decisions, now)
        return decisions

    def _apply_all(self, decisions: Sequence[planner.Decision], now: datetime) -> None:
        """Apply decisions in one commit, then stop the runs they replace and drive the
        runs they started. A stop is asked for after the commit: one of a run being
        driven waits for the driver's turn, which waits for the store. On a database
        several servers share, the stop is an action for the run's driver instead,
        written in the fire's fenced commit (`_send_stop`)."""
        started: list[int] = []
        stops: list[planner.Stop] = []
        store = self.core.store
        with self.core.steer, store.batch():
            if decisions:
                self._fence()
            for decision in decisions:
                if self._apply(decision, now):
                    if isinstance(decision, planner.Start):
                        started.append(decision.run_id)
                    elif isinstance(decision, planner.Stop):
                        if isinstance(store, PostgresStore):
                            self._send_stop(store, decision)
                        else:
                            stops.append(decision)
        for stop in stops:   # the runs started are driven whatever becomes of these
            try:
                self.core.act("stop", stop.run_id, None, user="scheduler", reason=stop.reason)
            except StateError:
                pass   # it ended meanwhile
            except Exception:
                log.exception("run %s could not be stopped (%s)", stop.run_id, stop.reason)
        # the version in force when it is the run's
        self.core.drive_all([(run_id, self._versions_in_force.pop(run_id, None))
                             for run_id in started])

    def _send_stop(self, store: PostgresStore, stop: planner.Stop) -> None:
        """The stop of a run that a fire replaces, on a database several servers share:
        an action for the server that drives the run (or drove it last: its session may
        be being opened again, and whoever takes the run over takes its actions; this
        one when nobody did), in the fire's own transaction, so that it is sent only if
        the fire commits, while this server leads, and never lost if it does. Nobody
        waits for the answer: the driver records how it went in `jaz_actions`."""
        store.send_action(store.last_driver(stop.run_id) or store.server_id, stop.run_id,
                          None, "stop", user="scheduler", reason=stop.reason)

    def _read(self, now: datetime) -> tuple[list[RunRecord], dict[str, int],
                                             datetime | None]:
        """What a pass needs, without reading the runs planned ahead: the running and
        halted runs, the due ones, and per jobnet how many wait for later."""
        runs = self._unfinished(now)
        waiting, first = self.core.store.waiting(now)
        return runs, waiting, first

    def _unfinished(self, now: datetime) -> list[RunRecord]:
        """The running and halted runs, and the scheduled and held ones that are due."""
        store = self.core.store
        runs = store.list_runs(status=[RunState.RUNNING, RunState.ERROR], top_level=True)
        runs += store.list_runs(status=[RunState.SCHEDULED, RunState.HELD], top_level=True,
                                due_by=now)
        return runs

    def _replan_changed(self, now: datetime) -> bool:
        """A jobnet whose version in force changed is planned afresh from now: the runs
        materialised ahead for the old version that nobody held are dropped (they were
        only plans), so the new schedule and the new text apply to every fire to come.
        Held ones stay as the operator left them."""
        store = self.core.store
        changed = False
        snapshot = self.core.registry.snapshot
        if snapshot is self._snapshot:
            return False   # no reload changed anything since the last look
        self._snapshot = snapshot
        for loaded in self.core.registry.all():
            net = loaded.jobnet
            if net is None:
                continue
            key = f"scheduler.version.{loaded.name}"
            if loaded.name not in self._versions:
                self._versions[loaded.name] = store.get_state(key)
            seen = self._versions[loaded.name]
            if seen == net.hash:
                continue
            self._versions[loaded.name] = net.hash
            store.set_state(key, net.hash)
            if seen is None:
                continue   # first seen: nothing was planned from another version
            stale = [r.id for r in store.list_runs(jobnet=loaded.name,
                                                   status=[RunState.SCHEDULED],
                                                   top_level=True)
                     if r.trigger == "schedule" and r.scheduled_at is not None
                     and r.scheduled_at > now]
            with store.batch():
                store.delete_runs(stale)
                store.set_state(f"scheduler.cursor.{loaded.name}", now.isoformat())
                store.add_event(EventRecord(at=now, kind="replanned", jobnet=loaded.name,
                                            user="scheduler",
                                            detail=f"new version {net.hash[:12]}; "
                                                   f"{len(stale)} planned runs dropped"))
            self._cursors[loaded.name] = now
            self._quiet.pop(loaded.name, None)
            changed = True
            log.info("jobnet %s changed: planned again from now (%d planned runs dropped)",
                     loaded.name, len(stale))
        return changed

    def _busy(self, runs: list[RunRecord], waiting: dict[str, int]) -> set[str]:
        """Jobnets to plan whatever their quiet time: those with a running, halted or due
        run, and those with room for more runs ahead. One whose runs ahead fill its
        `max_ahead` has nothing to do until one of them is due."""
        return {r.jobnet for r in runs} | {name for name, count in waiting.items()
                                           if count < self.settings.max_ahead}

    def _is_quiet(self, jobnet: str, schedules: object, now: datetime) -> bool:
        quiet = self._quiet.get(jobnet)
        return quiet is not None and quiet[2] is schedules and quiet[0] <= now < quiet[1]

    def _cursor(self, jobnet: str) -> datetime | None:
        if jobnet not in self._cursors:
            raw = self.core.store.get_state(f"scheduler.cursor.{jobnet}")
            self._cursors[jobnet] = datetime.fromisoformat(raw) if raw else None
        return self._cursors[jobnet]

    def _apply(self, d: planner.Decision, now: datetime) -> bool:
        """Apply one decision; False when it no longer fits the run (an operator held,
        skipped, stopped or re-timed it after the runs were read)."""
        core, store = self.core, self.core.store
        if isinstance(d, planner.Miss | planner.Skip):
            current = store.get_run(d.run_id)
            if current.status != RunState.SCHEDULED or \
                    current.trigger not in planner.SCHEDULED_TRIGGERS:
                return False
        if isinstance(d, planner.Create):
            loaded = core.registry.get(d.jobnet)
            assert loaded.jobnet is not None
            run_id = core.service.create(loaded.jobnet, trigger="schedule", scheduled_at=d.at,
                                         user="scheduler", status=RunState.SCHEDULED)
            core._changed("run", store.get_run(run_id))
        elif isinstance(d, planner.Cursor):
            store.set_state(f"scheduler.cursor.{d.jobnet}", d.at.isoformat())
        elif isinstance(d, planner.Start):   # checked and started in one statement
            started = store.update_run_if(d.run_id, RunState.SCHEDULED,
                                          planner.SCHEDULED_TRIGGERS,
                                          status=RunState.RUNNING, trigger=d.trigger)
            if started is None:
                return False
            run = started
            in_force = self._in_force(run)
            if in_force is not None:
                self._versions_in_force[d.run_id] = in_force
            self._event(d.run_id, "run_started_by_schedule", now, d.trigger, run)
        elif isinstance(d, planner.Miss | planner.Skip):
            status = RunState.MISSED if isinstance(d, planner.Miss) else RunState.SKIPPED
            store.update_run(d.run_id, status=status, message=d.reason, ended_at=now)
            self._event(d.run_id, f"run_{status}", now, d.reason)
        elif isinstance(d, planner.Stop):   # stopped after the commit (`_apply_all`)
            pass
        elif isinstance(d, planner.Late):
            run = store.get_run(d.run_id)
            warning = f"{planner.LATE_MARK}{d.what} {d.deadline.isoformat()}"
            store.update_run(d.run_id, warning=(run.warning + "; " if run.warning else "")
                             + warning)
            self._event(d.run_id, "run_late", now, f"{d.what} {d.deadline.isoformat()}")
            log.warning("run %s (%s) is late: %s was %s", d.run_id, run.jobnet, d.what,
                        d.deadline.isoformat())
            from jaz.engine.notify import Event, EventKind

            core.notify(Event(kind=EventKind.LATE, jobnet=run.jobnet, run_id=d.run_id,
                              status=str(run.status), at=now,
                              message=f"{d.what} {d.deadline.isoformat()} passed"))
        return True

    def _event(self, run_id: int, kind: str, now: datetime, detail: str,
               run: RunRecord | None = None) -> None:
        run = run or self.core.store.get_run(run_id)
        self.core.store.add_event(EventRecord(at=now, kind=kind, run_id=run_id,
                                              jobnet=run.jobnet, user="scheduler",
                                              detail=detail))
        self.core._changed("run", run)

    def _start_manual(self, now: datetime, runs: list[RunRecord]) -> None:
        """Runs started for later with `jaz start --at` are started when due (the planner
        leaves them alone, so the runs read for it tell)."""
        for run in runs:
            if run.status != RunState.SCHEDULED or run.trigger in planner.SCHEDULED_TRIGGERS \
                    or run.scheduled_at is None or run.scheduled_at > now:
                continue
            with self.core.steer, self.core.store.batch():
                self._fence()
                current = self.core.store.get_run(run.id)   # as it is now, not as read
                if current.status != RunState.SCHEDULED or current.scheduled_at is None \
                        or current.scheduled_at > now:
                    continue
                # only if still scheduled: a stop takes no `steer` (retime and hold do)
                if self.core.store.update_run_if(run.id, RunState.SCHEDULED, [current.trigger],
                                                 status=RunState.RUNNING) is None:
                    continue
                self._event(run.id, "run_started_at_time", now,
                            current.scheduled_at.isoformat())
            self.core.drive(run.id)
