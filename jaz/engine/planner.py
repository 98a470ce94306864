"""What the server's scheduler does on each tick, as one pure function of time.

`plan(now, last_tick, entries, runs)` looks at the jobnets' schedules and at the runs
that are not finished, and returns decisions for the server to apply: materialise the
coming fires as `scheduled` runs, start the due ones, and apply the policies of
SPEC §1/§4 — `overlap`, `catchup` + `catchup_window`, `window` and `deadline`.

Two instants keep it exact across restarts and clock jumps:
- each jobnet's *cursor*: every fire up to it has been materialised. It never moves
  back, and fires are keyed by their instant, so a clock stepping back never fires a
  schedule twice.
- `last_tick`: when the scheduler last looked. A run due after it and late by more
  than `grace` was missed while nobody was looking (the server was down, the machine
  slept, the clock jumped forward): the catch-up policy decides. A run due before it
  that is still scheduled was seen on time and held back (overlap = wait, or held and
  since released): it starts now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from jaz.engine.model import RunState
from jaz.engine.records import RunRecord
from jaz.engine.schedules import (
    BoundSchedule,
    Fire,
    deadlines,
    fires_between,
    in_window,
    iter_fires,
)

SCHEDULED_TRIGGERS = ("schedule", "catch-up")
LATE_MARK = "late:"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One jobnet as the scheduler sees it."""

    jobnet: str
    schedules: tuple[BoundSchedule, ...]
    cursor: datetime | None = None      # None: never planned; fires from `now` on


@dataclass(frozen=True, kw_only=True)
class Settings:
    ahead: timedelta = timedelta(hours=24)  # materialise fires this far ahead…
    max_ahead: int = 10                      # …but at most this many per jobnet
    max_past: int = 1000                     # missed fires recorded per jobnet and tick
    grace: timedelta = timedelta(seconds=60)  # later than this after last_tick: missed


@dataclass(frozen=True)
class Create:
    jobnet: str
    at: datetime


@dataclass(frozen=True)
class Start:
    run_id: int
    trigger: str = "schedule"               # "catch-up" for a missed fire run late


@dataclass(frozen=True)
class Miss:
    run_id: int
    reason: str


@dataclass(frozen=True)
class Skip:
    run_id: int
    reason: str


@dataclass(frozen=True)
class Stop:
    run_id: int
    reason: str


@dataclass(frozen=True)
class Late:
    run_id: int
    what: str                                # "start_by" | "finish_by"
    deadline: datetime


@dataclass(frozen=True)
class Cursor:
    jobnet: str
    at: datetime


Decision = Create | Start | Miss | Skip | Stop | Late | Cursor


def plan(now: datetime, last_tick: datetime | None, entries: Iterable[Entry],
         runs: Sequence[RunRecord], settings: Settings = Settings(),
         waiting: Mapping[str, int] | None = None) -> list[Decision]:
    """The decisions of one pass. `runs` are the unfinished runs of these jobnets.

    A tick applies them, then plans again while `needs_another_pass` says so (after a
    downtime, missed fires are recorded as runs first, in batches, and only then is
    catch-up decided over all of them).

    `waiting` (runs scheduled or held for later, per jobnet) spares the caller reading
    those runs: then `runs` need only hold the running, halted and due ones."""
    by_jobnet: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_jobnet.setdefault(run.jobnet, []).append(run)
    seen = last_tick if last_tick is not None else now
    out: list[Decision] = []
    for entry in entries:
        mine = by_jobnet.get(entry.jobnet, [])
        ahead = waiting.get(entry.jobnet, 0) if waiting is not None else sum(
            1 for r in mine if r.status in (RunState.SCHEDULED, RunState.HELD)
            and r.scheduled_at is not None and r.scheduled_at > now)
        created = _materialise(now, entry, ahead, settings)
        out.extend(created)
        if any(isinstance(d, Create) and d.at <= now for d in created):
            continue   # missed fires are being recorded: decide on them all in the next pass
        out.extend(_due(now, seen, entry, mine, settings))
        out.extend(_late(now, entry, mine))
    return out


def needs_another_pass(decisions: Iterable[Decision], now: datetime) -> bool:
    """Whether the server must apply these decisions and plan again at once, with the
    same `now` and `last_tick`: runs were created for fires already past."""
    return any(isinstance(d, Create) and d.at <= now for d in decisions)


def _materialise(now: datetime, entry: Entry, waiting: int,
                 settings: Settings) -> list[Decision]:
    if not entry.schedules:
        return []
    cursor = entry.cursor if entry.cursor is not None else now
    until = now + settings.ahead
    if cursor >= until:
        return []
    # fires already past (missed while down) are all recorded, a bounded batch a tick;
    # future ones up to the cap
    past = list(islice(iter_fires(entry.schedules, cursor, now), settings.max_past)) \
        if cursor < now else []
    if len(past) == settings.max_past:
        until = past[-1].at
        fires = past
    else:
        room = settings.max_ahead - waiting
        if room <= 0 and not past:
            return []
        # one more than there is room for tells whether the horizon was reached
        future = list(islice(iter_fires(entry.schedules, max(cursor, now), until),
                             max(room, 0) + 1))
        if len(future) > max(room, 0):
            future = future[:max(room, 0)]
            until = future[-1].at if future else max(cursor, now)
        fires = past + future
    out: list[Decision] = [Create(entry.jobnet, f.at) for f in fires]
    out.append(Cursor(entry.jobnet, until))
    return out


def _due(now: datetime, seen: datetime, entry: Entry, runs: list[RunRecord],
         settings: Settings) -> list[Decision]:
    due = sorted((r for r in runs if r.status == RunState.SCHEDULED
                  and r.trigger in SCHEDULED_TRIGGERS and r.scheduled_at is not None
                  and r.scheduled_at <= now), key=lambda r: (_at(r), r.id))
    if not due:
        return []
    active = [r for r in runs if r.status == RunState.RUNNING]
    # which schedule each due run is a fire of: with one schedule, that one (computing
    # the fires only to find it cost a tick ~0.07 ms per due jobnet)
    fires = {f.at: f for f in fires_between(
        entry.schedules, _at(due[0]) - timedelta(microseconds=1), _at(due[-1]))} \
        if len(entry.schedules) > 1 else {}
    out: list[Decision] = []
    missed = [r for r in due if _at(r) > seen and now - _at(r) > settings.grace]
    missed_ids = {r.id for r in missed}   # by id: a list look-up compares whole records
    keep = _catch_up(now, entry, missed, due, fires, out)
    for run in due:
        if run.id not in keep:
            continue
        bound = _schedule_of(entry, fires.get(_at(run)))
        delayed = run.id in missed_ids or now - _at(run) > settings.grace
        if bound is not None and bound.schedule.windows and delayed and \
                not _inside(bound, now):
            out.append(Miss(run.id, "its window had closed when it could start"))
            continue
        policy = bound.schedule.overlap if bound is not None else "skip"
        if active and policy == "skip":
            out.append(Skip(run.id, f"run {active[0].id} of {entry.jobnet} was still running "
                                    f"(overlap = skip)"))
            continue
        if active and policy == "wait":
            continue   # stays scheduled; seen by this tick, so never taken for missed
        if active and policy == "replace":
            out.extend(Stop(r.id, f"replaced by run {run.id} (overlap = replace)")
                       for r in active)
            active = []
        out.append(Start(run.id, "catch-up" if run.id in missed_ids else run.trigger))
        active.append(run)
    return out


def _at(run: RunRecord) -> datetime:
    assert run.scheduled_at is not None
    return run.scheduled_at


def _catch_up(now: datetime, entry: Entry, missed: list[RunRecord], due: list[RunRecord],
              fires: Mapping[datetime, Fire], out: list[Decision]) -> set[int]:
    """Apply `catchup` to the missed runs; returns the ids of the due runs to go on with."""
    missed_ids = {r.id for r in missed}
    keep = {r.id for r in due if r.id not in missed_ids}
    groups: dict[int, list[RunRecord]] = {}
    for run in missed:
        fire = fires.get(_at(run))
        groups.setdefault(fire.schedule if fire else -1, []).append(run)
    newer_on_time = bool(keep)
    for index, group in groups.items():
        bound = _schedule_of(entry, None, index)
        policy = bound.schedule.catchup if bound is not None else "none"
        window = bound.schedule.catchup_window if bound is not None else None
        fresh = [r for r in group
                 if window is None or now - _at(r) <= timedelta(seconds=window)]
        chosen: set[int] = set()
        if policy == "all":
            chosen = {r.id for r in fresh}
        elif policy == "latest" and fresh and not newer_on_time:
            chosen = {fresh[-1].id}
        fresh_ids = {r.id for r in fresh}
        for run in group:
            if run.id in chosen:
                keep.add(run.id)
            elif policy != "none" and run.id not in fresh_ids:
                out.append(Miss(run.id, "missed while the server was not running, and older "
                                        "than catchup_window"))
            elif policy == "latest":
                out.append(Miss(run.id, "missed while the server was not running; a later "
                                        "fire runs instead (catchup = latest)"))
            else:
                out.append(Miss(run.id, "missed while the server was not running "
                                        "(catchup = none)"))
    return keep


def _late(now: datetime, entry: Entry, runs: list[RunRecord]) -> list[Decision]:
    if not any(b.schedule.start_by or b.schedule.finish_by for b in entry.schedules):
        return []
    out: list[Decision] = []
    for run in runs:
        at = run.scheduled_at
        if at is None or run.trigger not in SCHEDULED_TRIGGERS:
            continue
        # each deadline once: a run late to start may also be late to finish
        flagged = {what for what in ("start_by", "finish_by")
                   if f"{LATE_MARK}{what}" in run.warning}
        if len(flagged) == 2 or (flagged and run.status in (RunState.SCHEDULED,
                                                            RunState.HELD)):
            continue
        fire = next(iter(fires_between(entry.schedules, at - timedelta(microseconds=1), at)),
                    None)
        bound = _schedule_of(entry, fire)
        if fire is None or bound is None:
            continue
        start_by, finish_by = deadlines(bound, fire)
        if run.status in (RunState.SCHEDULED, RunState.HELD) and start_by is not None \
                and now > start_by:
            out.append(Late(run.id, "start_by", start_by))
        elif run.status in (RunState.RUNNING, RunState.ERROR) and finish_by is not None \
                and now > finish_by and "finish_by" not in flagged:
            out.append(Late(run.id, "finish_by", finish_by))
    return out


def _schedule_of(entry: Entry, fire: Fire | None,
                 index: int | None = None) -> BoundSchedule | None:
    wanted = fire.schedule if fire is not None else index
    for bound in entry.schedules:
        if bound.schedule.index == wanted:
            return bound
    return entry.schedules[0] if entry.schedules else None


def _inside(bound: BoundSchedule, now: datetime) -> bool:
    return in_window(bound.schedule.windows, now.astimezone(bound.zone))
