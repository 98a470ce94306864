"""`/` on a table: the filter line at the bottom of the screen, and the small query
language it reads (`parse_filter`).

    nightly                    jobnet names containing "nightly" (any case)
    state:failed,running       these states (also `s:`)
    since:2h  since:3d         scheduled (else created) in the last 2 hours / 3 days
    since:2026-11-20           ... on or after that day (local time); ISO times too
    until:2026-11-20           ... up to the end of that day (or before an ISO time)
    trigger:schedule           how the run was started (also `t:`; commas for several)

Terms combine with AND; several words must all be in the jobnet's name. A filter is
parsed once, with "now" as an argument, so `since:2h` is a fixed moment afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

from jaz.engine.model import RunState

STATES = [str(s) for s in RunState]
KEYS = {"state": "state", "s": "state", "since": "since", "until": "until",
        "trigger": "trigger", "t": "trigger"}
AGE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
SYNTAX = ("words match the jobnet name; state:failed,running  since:2h|3d|2026-11-20  "
          "until:...  trigger:schedule")


class FilterError(ValueError):
    """A term of a filter that means nothing; the message says what would."""


@dataclass(frozen=True, kw_only=True)
class RunFilter:
    """A parsed filter; `matches(run)` on the API's run objects."""

    text: str = ""
    words: tuple[str, ...] = ()
    states: frozenset[str] = field(default_factory=frozenset)
    triggers: frozenset[str] = field(default_factory=frozenset)
    since: datetime | None = None
    until: datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.words or self.states or self.triggers or self.since or self.until)

    def matches(self, run: dict[str, Any]) -> bool:
        name = str(run.get("jobnet") or "").lower()
        if any(w not in name for w in self.words):
            return False
        if self.states and str(run.get("status")) not in self.states:
            return False
        if self.triggers and str(run.get("trigger") or "") not in self.triggers:
            return False
        if self.since is not None or self.until is not None:
            at = run_time(run)
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.until is not None and at >= self.until:
                return False
        return True


def run_time(run: dict[str, Any]) -> datetime | None:
    """The moment a run is filtered by: when it is (was) scheduled, else its creation."""
    iso = run.get("scheduled_at") or run.get("created_at")
    if not iso:
        return None
    t = datetime.fromisoformat(str(iso))
    return t if t.tzinfo else t.astimezone()


def parse_filter(text: str, now: datetime) -> RunFilter:
    """The filter `text` means at `now` (aware); FilterError for a term that means nothing."""
    words: list[str] = []
    states: set[str] = set()
    triggers: set[str] = set()
    since = until = None
    for term in text.split():
        key, colon, value = term.partition(":")
        if not colon:
            words.append(term.lower())
            continue
        what = KEYS.get(key.lower())
        if what is None:
            raise FilterError(f"unknown filter {key!r} in {term!r}: use state:, since:, "
                              f"until:, trigger: or plain words")
        values = [v for v in value.lower().split(",") if v]
        if not values:
            raise FilterError(f"{term!r} needs a value, like {key}:" + {
                "state": "failed", "trigger": "schedule"}.get(what, "2h"))
        if what == "state":
            unknown = [v for v in values if v not in STATES]
            if unknown:
                raise FilterError(f"unknown state {unknown[0]!r}: states are "
                                  + ", ".join(STATES))
            states.update(values)
        elif what == "trigger":
            triggers.update(values)
        elif what == "since":
            since = moment(value, now, term, end_of_day=False)
        else:
            until = moment(value, now, term, end_of_day=True)
    return RunFilter(text=" ".join(text.split()), words=tuple(words),
                     states=frozenset(states), triggers=frozenset(triggers),
                     since=since, until=until)


def moment(value: str, now: datetime, term: str, *, end_of_day: bool) -> datetime:
    """`2h`/`3d` ago, or a date (its start; its end for `until`), or an ISO time; naive
    dates and times are in the zone of `now`."""
    from jaz.engine.durations import parse_duration

    if re.fullmatch(r"\d+w", value):
        return now - timedelta(weeks=int(value[:-1]))
    if AGE.fullmatch(value):
        return now - timedelta(seconds=parse_duration(value))
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"bad time in {term!r}: write an age like 30m, 2h, 3d, 1w, a date "
                          f"like 2026-11-20 or a time like 2026-11-20T08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=now.tzinfo)
    if end_of_day and len(value) == 10:   # a bare date: through its last second
        t += timedelta(days=1)
    return t


class FilterInput(Input):
    """The filter line under a table, hidden until opened: `enter` applies (an empty
    line clears the filter), `esc` clears it and closes. It posts `Applied(text)` or
    `Cleared()`; the screen parses and says what is wrong, keeping the line open.
    NameFilter (name_filter.py) is the live variant of the Jobnets and Hosts screens."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter"),
    ]

    DEFAULT_CSS = """
    FilterInput {
        display: none;
    }
    FilterInput.-open {
        display: block;
    }
    """

    @dataclass
    class Applied(Message):
        text: str

    class Cleared(Message):
        pass

    def __init__(self, placeholder: str = "filter: " + SYNTAX, **kwargs: Any) -> None:
        super().__init__(placeholder=placeholder, **kwargs)

    def open(self, text: str) -> None:
        self.value = text
        self.add_class("-open")
        self.focus()
        self.cursor_position = len(text)

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    async def action_submit(self) -> None:
        self.post_message(self.Applied(self.value))

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())
