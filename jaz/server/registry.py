"""The server's jobnets and calendars (SPEC §1.4, §1.5, §4), reloaded on change.

`reload()` rescans both folders. A file whose (mtime, size, inode) did not change is not
read again. A valid new version of a jobnet is in force for runs created after it; a
file that became invalid is reported and the last valid version stays in force, as do
the `Calendar` objects of a calendar file that broke. Runs keep what they started
with: every reload builds new objects and never changes old ones.

Calendar names are looked up in the calendars folder only (by file name, then by the
`name` key), for schedules and for expressions in runs alike, so that what the server
uses is exactly what it watches; a reference ending in `.toml` is a path relative to
the referring file, and such files are watched too. A calendar-looking file in the
jobnets folder is reported as being in the wrong place.

Readers never wait: each reload builds a new immutable snapshot and swaps it in.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

from jaz.engine.calendars import Calendar, CalendarLibrary, looks_like_calendar
from jaz.engine.checks import parse_toml
from jaz.engine.clock import Clock, SystemClock
from jaz.engine.loader import JOBNET_NAME, load_file
from jaz.engine.model import Jobnet
from jaz.engine.schedules import BoundSchedule, bind_jobnet
from jaz.errors import JobnetInvalid, NotFound, Problem

log = logging.getLogger("jaz.server")

Stat = tuple[int, int, int, int]     # st_mtime_ns, st_size, st_ino, racy look (or 0)
# A file changed less than this before it is looked at is "racy", as git calls it: a
# second change of the same size within the filesystem's timestamp tick (a few ms)
# would leave the same stat. Each look at such a file gives a stat unequal to any other,
# so it is read again at every reload until it has settled. (File times come from the
# kernel's coarse clock, a tick behind the fine one at most: 100 ms is ten ticks.)
RACY_NS = 100_000_000
_looks = itertools.count(1)


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """One jobnet as the server knows it."""

    name: str                      # the jobnet's name (file stem or its `name` key)
    path: Path
    jobnet: Jobnet | None          # the version in force: the last valid one
    problems: tuple[Problem, ...]  # of the file as it is now; () when valid
    schedules: tuple[BoundSchedule, ...]  # bound to the registry's calendars and zone
    loaded_at: datetime            # when the version in force was loaded


@dataclass(frozen=True)
class _File:
    """One jobnet file as last read."""

    stat: Stat
    name: str
    jobnet: Jobnet | None
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class _CalendarFile:
    stat: Stat
    name: str
    calendar: Calendar | None      # in force: the last valid one
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class _State:
    library: _Library
    files: Mapping[Path, _File] = field(default_factory=dict)
    entries: Mapping[str, Loaded] = field(default_factory=dict)
    calendar_files: Mapping[Path, _CalendarFile] = field(default_factory=dict)
    calendar_stats: Mapping[Path, Stat] = field(default_factory=dict)  # the folder's files
    watched: Mapping[Path, Stat] = field(default_factory=dict)  # used calendars outside it
    in_force: Mapping[Path, Calendar] = field(default_factory=dict)  # every one used, by path
    scan: Mapping[str, Stat] = field(default_factory=dict)  # the jobnets folder, as last seen


class _Library(CalendarLibrary):
    """A snapshot of the calendars folder: names resolve from the scan, unchanged
    calendars are reused, and a file that fails to load yields its previous calendar."""

    def __init__(self, folder: Path, *, by_name: Mapping[str, Path] | None = None,
                 keep: Mapping[Path, Calendar] | None = None,
                 previous: Mapping[Path, Calendar] | None = None) -> None:
        super().__init__((folder,))
        self.by_name = dict(by_name or {})
        self._keep = dict(keep or {})
        self._previous = dict(previous or {})
        self.failed: dict[Path, tuple[Problem, ...]] = {}
        self._stack: list[Path] = []
        self._lock = threading.RLock()   # runs look calendars up from their own threads

    def find(self, ref: str, relative_to: Path | None = None) -> Path:
        if ref.endswith(".toml"):
            return super().find(ref, relative_to)
        path = self.by_name.get(ref)
        if path is None:
            close = difflib.get_close_matches(ref, sorted(self.by_name), n=3)
            raise NotFound(f"calendar {ref!r} is not in the calendars folder {self.folders[0]}",
                           hint=f"did you mean {', '.join(map(repr, close))}?" if close else
                           f"add {ref}.toml to {self.folders[0]}")
        return path

    def load(self, path: Path) -> Calendar:
        path = path.resolve()
        with self._lock:
            kept = self._keep.get(path)
            if kept is not None:
                return kept
            if path in self._stack:
                return super().load(path)     # raises: the bases form a cycle
            if path not in self.failed:
                self._stack.append(path)
                try:
                    return super().load(path)
                except JobnetInvalid as e:
                    self.failed[path] = tuple(e.problems)
                finally:
                    self._stack.pop()
            previous = self._previous.get(path)
            if previous is None:
                raise JobnetInvalid(list(self.failed[path]))
            return previous


class Registry:
    """The jobnets and calendars folders, loaded and reloaded on change."""

    def __init__(self, jobnets: Path, calendars: Path, zone: tzinfo, *,
                 clock: Clock | None = None) -> None:
        self.jobnets_folder = jobnets
        self.calendars_folder = calendars
        self.zone = zone
        self._clock = clock or SystemClock()
        self._reload_lock = threading.Lock()
        self._state = _State(library=_Library(calendars))
        self._sorted: tuple[_State, list[Loaded]] | None = None

    # ------------------------------------------------------------ queries

    def get(self, name: str) -> Loaded:
        entries = self._state.entries
        loaded = entries.get(name)
        if loaded is None:
            close = difflib.get_close_matches(name, sorted(entries), n=3)
            raise NotFound(f"no jobnet {name!r} in {self.jobnets_folder}",
                           hint=(f"did you mean {', '.join(map(repr, close))}? " if close
                                 else "") + "`jaz jobnets` lists the known ones")
        return loaded

    def folders(self) -> set[Path]:
        """What to watch for changes: both folders, and the folders of the calendar
        files in use outside the calendars folder."""
        return {self.jobnets_folder, self.calendars_folder} | \
            {path.parent for path in self._state.watched}

    def all(self) -> list[Loaded]:
        """Every jobnet, by name (one sorted list per snapshot: do not change it)."""
        state = self._state
        cached = self._sorted
        if cached is None or cached[0] is not state:
            cached = self._sorted = (state, sorted(state.entries.values(),
                                                   key=lambda e: e.name))
        return cached[1]

    @property
    def snapshot(self) -> object:
        """Changes (to an object that is not `is` the previous one) whenever a reload
        changed anything: a cheap way to notice changes."""
        return self._state

    def calendar(self, name: str) -> Calendar:
        """The calendar in force under this name; `JobnetInvalid` when its file has never
        been valid."""
        state = self._state
        path = state.library.by_name.get(name)
        record = state.calendar_files.get(path) if path is not None else None
        if record is None:
            close = difflib.get_close_matches(name, sorted(state.library.by_name), n=3)
            raise NotFound(f"no calendar {name!r} in {self.calendars_folder}",
                           hint=(f"did you mean {', '.join(map(repr, close))}? " if close
                                 else f"add {name}.toml to that folder"))
        if record.calendar is None:
            raise JobnetInvalid(list(record.problems))
        return record.calendar

    def calendars(self) -> list[tuple[str, Path, Calendar | None, tuple[Problem, ...]]]:
        files = self._state.calendar_files
        return sorted(((f.name, p, f.calendar, f.problems) for p, f in files.items()),
                      key=lambda t: (t[0], t[1]))

    @property
    def library(self) -> CalendarLibrary:
        """The calendars in force, for expressions in runs (`Settings.calendars`)."""
        return self._state.library

    # ------------------------------------------------------------ reload

    def reload(self) -> list[str]:
        """Rescan both folders; the names of the jobnets whose entry changed."""
        with self._reload_lock:
            old = self._state
            now = self._clock.now()
            state, rebind = self._reload_calendars(old)
            scan = _scan_names(self.jobnets_folder)
            if not rebind and scan == old.scan and old.files:
                return []     # nothing changed: no new snapshot (cheap with 10,000 files)
            files: dict[Path, _File] = {}
            for name, st in scan.items():
                path = self.jobnets_folder / name
                before = old.files.get(path)
                found = before if before is not None and before.stat == st else \
                    self._read_jobnet(path, st, before.name if before else path.stem)
                if found is not None:
                    files[path] = found
            groups: dict[str, list[Path]] = {}
            for path in sorted(files):
                groups.setdefault(files[path].name, []).append(path)
            entries: dict[str, Loaded] = {}
            changed: list[str] = []
            for name, paths in groups.items():
                prev = old.entries.get(name)
                winner, clash = _pick(name, paths, files, prev)
                unchanged = prev is not None and prev.path == winner and not rebind and \
                    old.files.get(winner) is files[winner] and \
                    prev.problems == files[winner].problems + clash
                entry = prev if unchanged and prev is not None else self._settle(
                    name, winner, files[winner], clash, prev, state.library, now)
                entries[name] = entry
                if entry is not prev:
                    changed.append(name)
                    _log_jobnet(entry, prev)
            for name, prev in old.entries.items():
                if name not in entries:
                    changed.append(name)
                    log.info("jobnet %s removed (%s is gone or declares another name)",
                             name, prev.path)
            self._state = _State(
                library=state.library, files=files, entries=entries,
                calendar_files=state.calendar_files, calendar_stats=state.calendar_stats,
                watched=_watch(state, entries.values()),
                in_force=_in_force(state.calendar_files.values(), entries.values()),
                scan=scan)
            return sorted(changed)

    def _read_jobnet(self, path: Path, st: Stat, fallback: str) -> _File | None:
        try:
            jobnet = load_file(path)
        except NotFound:
            return None        # removed since the scan
        except JobnetInvalid as e:
            return _File(st, _declared_name(path, fallback), None,
                         self._misplaced(path) or tuple(e.problems))
        return _File(st, jobnet.name, jobnet, ())

    def _misplaced(self, path: Path) -> tuple[Problem, ...]:
        """One clear problem for a calendar put in the jobnets folder, instead of a list of
        unknown keys."""
        try:
            data = parse_toml(path.read_text(encoding="utf-8-sig"), str(path))
        except (OSError, UnicodeDecodeError, JobnetInvalid):
            return ()
        if not looks_like_calendar(data, None):
            return ()
        return (Problem(file=str(path), message=(
            f"this looks like a calendar, not a jobnet: the server reads calendars from "
            f"{self.calendars_folder}; move it there")),)

    def _settle(self, name: str, path: Path, file: _File, clash: tuple[Problem, ...],
                prev: Loaded | None, library: _Library, now: datetime) -> Loaded:
        """The entry for one name: the file's version when it is valid and binds, else the
        previous version (re-bound if the calendars allow, else with its old binding)."""
        before = prev.jobnet if prev is not None else None
        candidate = file.jobnet
        if candidate is not None and before is not None and candidate.hash == before.hash \
                and candidate.path == before.path:
            candidate = before             # touched, not changed: the same version
        problems = file.problems
        if candidate is not None:
            try:
                bound = bind_jobnet(candidate, self.zone, library)
            except JobnetInvalid as e:
                problems = tuple(e.problems)
            else:
                if prev is not None and candidate is before and bound == prev.schedules:
                    bound = prev.schedules
                return _same_or_new(prev, Loaded(
                    name=name, path=path, jobnet=candidate, problems=clash, schedules=bound,
                    loaded_at=prev.loaded_at if prev is not None and candidate is before
                    else now))
        if prev is None or before is None:
            return _same_or_new(prev, Loaded(name=name, path=path, jobnet=None,
                                             problems=problems + clash, schedules=(),
                                             loaded_at=now))
        schedules = prev.schedules
        if candidate is not before:        # the version in force may bind where this did not
            try:
                bound = bind_jobnet(before, self.zone, library)
            except JobnetInvalid as e:
                problems += tuple(p for p in e.problems if p not in problems)
            else:
                schedules = prev.schedules if bound == prev.schedules else bound
        return _same_or_new(prev, Loaded(name=name, path=path, jobnet=before,
                                         problems=problems + clash, schedules=schedules,
                                         loaded_at=prev.loaded_at))

    def _reload_calendars(self, old: _State) -> tuple[_State, bool]:
        """The calendars part of the next state, and whether anything there changed (then
        every jobnet is bound again)."""
        folder = _scan(self.calendars_folder)
        watched = {p: _stat(p) for p in old.watched}
        if folder == old.calendar_stats and watched == old.watched:
            return old, False
        same = {p.resolve() for p, st in folder.items() if old.calendar_stats.get(p) == st}
        same |= {p for p, st in watched.items() if st is not None and old.watched[p] == st}
        names: dict[Path, str] = {}
        for path in folder:
            before = old.calendar_files.get(path)
            fallback = before.name if before is not None else path.stem
            names[path] = fallback if path.resolve() in same and before is not None \
                else _declared_name(path, fallback)
        by_name = {names[p]: p for p in sorted(folder, reverse=True)}  # first file wins
        by_name.update({p.stem: p for p in folder})   # a file name beats a `name` key
        # reused: calendars whose files (bases' too) are unchanged and loaded well, unless
        # a base name may now mean another file
        broken = {p.resolve() for p, f in old.calendar_files.items() if f.problems}
        moved = by_name != old.library.by_name
        keep = {p: c for p, c in old.in_force.items() if p not in broken
                and all(q.path in same for q in c.chain() if q.path is not None)
                and not (moved and c.base is not None)}
        library = _Library(self.calendars_folder, by_name=by_name, keep=keep,
                           previous=old.in_force)
        records: dict[Path, _CalendarFile] = {}
        for path, st in sorted(folder.items()):
            calendar: Calendar | None
            try:
                calendar = library.load(path)
                problems = library.failed.get(path.resolve(), ())
            except JobnetInvalid as e:
                calendar, problems = None, tuple(e.problems)
            except NotFound:
                continue                             # removed since the scan
            record = _CalendarFile(st, names[path], calendar, problems)
            before = old.calendar_files.get(path)
            if before is not None and (before.name, before.calendar, before.problems) == \
                    (record.name, calendar, problems):
                record = before
            records[path] = record
            _log_calendar(path, record, before)
        for path, before in old.calendar_files.items():
            if path not in records:
                log.info("calendar %s removed (%s is gone)", before.name, path)
        return _State(library=library, calendar_files=records, calendar_stats=folder), True


# ------------------------------------------------------------------ helpers


def _stat(path: Path) -> Stat | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _key(st, time.time_ns()) if stat.S_ISREG(st.st_mode) else None


def _key(st: os.stat_result, now: int) -> Stat:
    mtime = st.st_mtime_ns
    return (mtime, st.st_size, st.st_ino, next(_looks) if now - mtime < RACY_NS else 0)


def _scan(folder: Path) -> dict[Path, Stat]:
    """Regular, visible `*.toml` files directly in `folder` (symlinks followed); a missing
    folder has none."""
    return {folder / name: st for name, st in _scan_names(folder).items()}


def _scan_names(folder: Path) -> dict[str, Stat]:
    """`_scan` by file name: no Path objects, so that looking at a folder of 10,000
    unchanged files every few seconds costs little more than the stat calls."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return {}
    out: dict[str, Stat] = {}
    now = time.time_ns()
    with entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".toml"):
                continue
            try:
                st = entry.stat()       # follows symlinks, like Path.stat
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[name] = _key(st, now)
    return out


def _declared_name(path: Path, fallback: str) -> str:
    """The `name` key of a file, or `fallback` when the file cannot tell (unreadable, not
    TOML, no usable name): a file that broke keeps the name it had."""
    try:
        data = parse_toml(path.read_text(encoding="utf-8-sig"), str(path))
    except (OSError, UnicodeDecodeError, JobnetInvalid):
        return fallback
    name = data.get("name", path.stem)
    return name if isinstance(name, str) and JOBNET_NAME.fullmatch(name) else fallback


def _pick(name: str, paths: list[Path], files: Mapping[Path, _File], prev: Loaded | None
          ) -> tuple[Path, tuple[Problem, ...]]:
    """Which of the files declaring one name is used, and the clash reported on each: the
    one in force stays; else the first valid one by path."""
    if len(paths) == 1:
        return paths[0], ()
    if prev is not None and prev.jobnet is not None and prev.path in paths:
        winner = prev.path
    else:
        winner = next((p for p in paths if files[p].jobnet is not None), paths[0])
    others = [p for p in paths if p != winner]
    clash = [Problem(file=str(winner), field="name", message=(
        f"jobnet name {name!r} is also declared by {', '.join(map(str, others))}; "
        f"this file stays in force until one of them is renamed"))]
    clash += [Problem(file=str(p), field="name", message=(
        f"jobnet name {name!r} is already used by {winner}, which stays in force; "
        f"rename one of them")) for p in others]
    return winner, tuple(clash)


def _same_or_new(prev: Loaded | None, new: Loaded) -> Loaded:
    """`prev` itself when nothing a reader can see changed, so unchanged is cheap to tell."""
    if prev is not None and prev.jobnet is new.jobnet and prev.path == new.path and \
            prev.problems == new.problems and prev.schedules == new.schedules:
        return prev
    return new


def _in_force(files: Iterable[_CalendarFile], entries: Iterable[Loaded]) -> dict[Path, Calendar]:
    """Every calendar in use by path, bases included: what a broken file falls back to."""
    roots = [f.calendar for f in files if f.calendar is not None]
    roots += [b.calendar for e in entries for b in e.schedules if b.calendar is not None]
    return {c.path: c for root in roots for c in root.chain() if c.path is not None}


def _watch(state: _State, entries: Iterable[Loaded]) -> dict[Path, Stat]:
    """Stats of the calendar files in use outside the calendars folder (`.toml`
    references), so that a change to one of them is noticed too."""
    inside = {p.resolve() for p in state.calendar_stats}
    stats = {p: st for p, st in state.watched.items() if p not in inside}
    for path in _in_force(state.calendar_files.values(), entries):
        if path not in inside and path not in stats:
            st = _stat(path)
            if st is not None:
                stats[path] = st
    return stats


def _log_jobnet(entry: Loaded, prev: Loaded | None) -> None:
    if entry.problems and (prev is None or prev.problems != entry.problems):
        kept = "no version is in force" if entry.jobnet is None else \
            f"version {entry.jobnet.hash[:12]} stays in force"
        log.warning("jobnet %s invalid (%s; %s):\n  %s", entry.name, entry.path, kept,
                    "\n  ".join(map(str, entry.problems)))
    if entry.jobnet is None:
        return
    if prev is None or prev.jobnet is None:
        log.info("jobnet %s loaded from %s (version %s)", entry.name, entry.path,
                 entry.jobnet.hash[:12])
    elif prev.jobnet is not entry.jobnet:
        log.info("jobnet %s updated from %s (version %s)", entry.name, entry.path,
                 entry.jobnet.hash[:12])
    elif prev.schedules != entry.schedules:
        log.info("jobnet %s: schedules bound again to changed calendars", entry.name)
    if prev is not None and prev.problems and not entry.problems:
        log.info("jobnet %s is valid again", entry.name)


def _log_calendar(path: Path, record: _CalendarFile, before: _CalendarFile | None) -> None:
    if record is before:
        return
    if record.problems and (before is None or before.problems != record.problems):
        kept = "no version is in force" if record.calendar is None else \
            "the previous version stays in force"
        log.warning("calendar %s invalid (%s; %s):\n  %s", record.name, path, kept,
                    "\n  ".join(map(str, record.problems)))
    elif before is None or before.calendar is None:
        log.info("calendar %s loaded from %s", record.name, path)
    elif before.calendar is not record.calendar:
        log.info("calendar %s updated from %s", record.name, path)
