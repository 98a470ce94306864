"""Job kinds from other packages: the `jaz.kinds` entry point group (docs/plugins.md).

A package adds a kind by naming a `Kind` (or a function returning one) in its entry
points. The declaration says the kind's action key, its TOML fields and how it runs:
an `Executor` of the same small interface the built-in kinds use, so stop, timeouts,
retries, outputs and logs work alike.

Nothing is loaded at import: the entry points are read once, the first time a jobnet
uses a key that no built-in kind has (or `jaz kinds` asks). A plugin that cannot be
imported, declares its kind badly or raises while loading is kept as `Broken`, with
its package and the error, and every other kind goes on working.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field  # only jobnets with plugin kinds pay for it
from typing import TYPE_CHECKING, Any

from jaz.engine.checks import (
    Collector,
    check_bool,
    check_duration,
    check_str,
    check_table,
    close_match,
    type_name,
)
from jaz.engine.checks import check_unknown as _unknown
from jaz.engine.model import ACTION_KEYS, COMMON_KEYS, PluginAction
from jaz.engine.tomltext import quote

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "jaz.kinds"
API = 1   # the version of this interface; raised only by a change that breaks plugins
TYPES = ("string", "integer", "number", "boolean", "duration", "list", "table", "any")
NAME = re.compile(r"[a-z][a-z0-9_]*")


class FieldError(ValueError):
    """Raised by a `Kind.check` to blame one field (`field` is its name in the table)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class Field:
    """One key of a kind's table, checked by the loader like the built-in kinds' keys.

    `type` is one of `TYPES`; `items` the type of each item of a list or each value of
    a table. A missing key takes `default` (None when there is none) unless `required`.
    `choices` limits the value; `template` strings may hold `${expression}` parts,
    checked at load and filled in by `options(attempt)` from the job's variables.
    `check(value)` runs last: it returns the value to keep or raises ValueError with
    the message to show."""

    type: str = "string"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    items: str | None = None
    template: bool = False
    check: Callable[[Any], Any] | None = None
    help: str = ""


@dataclass(frozen=True, kw_only=True)
class Kind:
    """A job kind: `name` is its action key in a job's table (`[jobs.x] name = {...}`).

    `executor` makes the kind's `Executor` (jaz.kinds.Executor), once per process, at
    the first job of the kind (jaz/engine/executors/plugins.py). `shorthand` names the
    field a plain value fills (`http = "https://…"` for `http = { url = "https://…" }`);
    `check(options)` sees every field once each is valid, and raises ValueError (or
    FieldError to blame one field)."""

    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    executor: Callable[[], Any]   # -> Executor: the engine's executors import this module
    description: str = ""
    shorthand: str | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None


@dataclass(frozen=True, kw_only=True)
class Installed:
    """A kind that loaded, and where it came from."""

    kind: Kind
    package: str
    version: str
    entry_point: str   # as written in the package: "http = jaz_http:KIND"


@dataclass(frozen=True, kw_only=True)
class Broken:
    """An entry point of the group that gave no usable kind."""

    name: str
    package: str
    version: str
    entry_point: str
    error: str

    def describe(self) -> str:
        return (f"package {self.package} {self.version}, entry point {self.entry_point}: "
                f"{self.error}")


@dataclass(frozen=True, kw_only=True)
class Registry:
    kinds: Mapping[str, Installed]
    broken: tuple[Broken, ...] = ()

    def broken_kind(self, name: str) -> Broken | None:
        return next((b for b in self.broken if b.name == name), None)


# ------------------------------------------------------------------ loading


def load(entry_points: Iterable[EntryPoint], reserved: Iterable[str]) -> Registry:
    """The kinds of these entry points; `reserved` are the keys a kind may not take
    (the built-in action keys and a job's common keys)."""
    taken = set(reserved)
    found: list[Installed] = []
    broken: list[Broken] = []
    for ep in entry_points:
        dist = getattr(ep, "dist", None)
        package = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        where = f"{ep.name} = {ep.value}"
        try:
            kind = _declared(ep, taken)
        except Exception as e:   # any error of someone else's code, reported by name
            broken.append(Broken(name=ep.name, package=package, version=version,
                                 entry_point=where, error=error_text(e)))
            continue
        except SystemExit as e:  # noqa: B036 - a plugin calling sys.exit() at import
            broken.append(Broken(name=ep.name, package=package, version=version,
                                 entry_point=where, error=f"SystemExit({e.code!r}) at import"))
            continue
        found.append(Installed(kind=kind, package=package, version=version, entry_point=where))
    kinds: dict[str, Installed] = {}
    names = [i.kind.name for i in found]
    for item in found:
        if names.count(item.kind.name) > 1:
            others = sorted({f"{i.package} {i.version}" for i in found
                             if i.kind.name == item.kind.name} - {f"{item.package} "
                                                                  f"{item.version}"})
            broken.append(Broken(name=item.kind.name, package=item.package,
                                 version=item.version, entry_point=item.entry_point,
                                 error=f"kind {item.kind.name!r} is declared by "
                                       f"{', '.join(others) or 'this package'} too: "
                                       "uninstall one of them"))
        else:
            kinds[item.kind.name] = item
    return Registry(kinds=dict(sorted(kinds.items())),
                    broken=tuple(sorted(broken, key=lambda b: (b.name, b.package))))


def error_text(e: BaseException) -> str:
    """An exception as one line: its type and message."""
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _declared(ep: EntryPoint, reserved: set[str]) -> Kind:
    value = ep.load()
    if not isinstance(value, Kind) and callable(value) and not isinstance(value, type):
        value = value()
    if not isinstance(value, Kind):
        raise TypeError(f"{ep.value} is {type(value).__name__}, not a jaz.kinds.Kind "
                        "(or a function returning one)")
    problems = declaration_problems(value, reserved)
    if value.name != ep.name:
        problems.insert(0, f"the entry point is named {ep.name!r} but its kind is "
                           f"{value.name!r}: give both the action key's name")
    if problems:
        raise ValueError("; ".join(problems))
    return value


def declaration_problems(kind: Kind, reserved: Iterable[str] = ()) -> list[str]:
    """What is wrong with a kind's declaration (a plugin's test may call this)."""
    out: list[str] = []
    name = kind.name
    if not isinstance(name, str) or not NAME.fullmatch(name):
        out.append(f"kind name {name!r}: use lower-case letters, digits and '_'")
    elif name in set(reserved):
        out.append(f"kind name {name!r} is a built-in key of jaz jobs: choose another name")
    if not callable(kind.executor):
        out.append("executor must be a callable that returns an Executor")
    if not isinstance(kind.fields, Mapping):
        return [*out, "fields must be a mapping of name to jaz.kinds.Field"]
    for key, spec in kind.fields.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out.append(f"field name {key!r}: use letters, digits and '_'")
            continue
        if not isinstance(spec, Field):
            out.append(f"field {key!r} is {type(spec).__name__}, not a jaz.kinds.Field")
            continue
        if spec.type not in TYPES:
            out.append(f"field {key!r}: type {spec.type!r} is none of {', '.join(TYPES)}")
        if spec.items is not None and (spec.type not in ("list", "table")
                                       or spec.items not in TYPES):
            out.append(f"field {key!r}: items {spec.items!r} needs type list or table and "
                       f"one of {', '.join(TYPES)}")
        if spec.template and "string" not in (spec.type, spec.items):
            out.append(f"field {key!r}: template needs strings (type or items 'string')")
        if spec.default is not None and spec.type in TYPES:
            c = Collector("<declaration>")
            _value(c, "<default>", name, key, spec, spec.default)
            out.extend(f"field {key!r}: default {quote(spec.default)}: {p.message}"
                       for p in c.problems)
    if kind.shorthand is not None and kind.shorthand not in kind.fields:
        out.append(f"shorthand {kind.shorthand!r} is not one of the fields")
    return out


_lock = threading.Lock()
_registry: Registry | None = None


def installed(*, reserved: Iterable[str] | None = None) -> Registry:
    """The kinds installed in this Python, read from the entry points once."""
    global _registry
    with _lock:
        if _registry is None:
            from importlib.metadata import entry_points

            if reserved is None:
                reserved = {*ACTION_KEYS, *COMMON_KEYS}
            _registry = load(entry_points(group=GROUP), reserved)
        return _registry


def forget() -> None:
    """Read the entry points again on next use (after installing a plugin in-process)."""
    global _registry
    with _lock:
        _registry = None


# ------------------------------------------------------------------ validation


def claim(c: Collector, job: str, keys: list[str], known: set[str], *,
          has_action: bool) -> dict[str, Kind | None]:
    """The keys of a job's table that no built-in kind knows (`known`: the keys it does):
    those naming installed kinds come back with their `Kind`; a key naming a broken kind
    comes back with None once its problem is reported; every other key is reported as
    unknown, and when the job has no action key (`has_action`: no built-in one), the
    first unknown key like no other is taken for the action key of a missing kind."""
    registry = installed()
    out: dict[str, Kind | None] = {}
    unknown: list[str] = []
    for key in keys:
        if key in registry.kinds:
            out[key] = registry.kinds[key].kind
            continue
        broken = registry.broken_kind(key)
        if broken is not None:
            c.add(f"kind {quote(key)} cannot be used: its plugin is broken ({broken.describe()}); "
                  "fix or reinstall that package (`jaz kinds` lists the installed kinds)",
                  job=job, field=key)
            out[key] = None
        else:
            unknown.append(key)
    allowed = known | set(registry.kinds)
    has_action = has_action or bool(out)
    for key in unknown:
        if not has_action and close_match(key, allowed) is None:
            c.add(f"unknown key {quote(key)} in [jobs.{job}]: no built-in or installed kind has "
                  f"this action key (`jaz kinds` lists them; install the package that adds "
                  f"{quote(key)})", job=job, field=key)
            out.setdefault(key, None)
            has_action = True
        else:
            _unknown(c, [key], allowed, job=job, where=f"[jobs.{job}]")
            if not has_action:      # a misspelt action key: its problem is this one
                out.setdefault(key, None)
                has_action = True
    return out


def build(c: Collector, job: str, kind: Kind, value: Any) -> PluginAction | None:
    """The job's action from its table under the kind's key, every problem reported."""
    name = kind.name
    if not isinstance(value, dict | list) and kind.shorthand is not None:
        value = {kind.shorthand: value}
    table = check_table(c, value, job=job, field=name)
    if table is None:
        return None
    before = len(c.problems)
    _unknown(c, table, set(kind.fields), job=job, where=name, prefix=f"{name}.")
    options: dict[str, Any] = {}
    for key, spec in kind.fields.items():
        if key not in table:
            if spec.required:
                c.add(f"{name} needs {quote(key)}" + (f": {spec.help}" if spec.help else ""),
                      job=job, field=f"{name}.{key}")
            # a default goes through the same check as a value (a declaration's default
            # passed it when the kind loaded), so the executor sees one shape of value
            options[key] = None if spec.default is None else \
                _value(c, job, name, key, spec, _copy(spec.default))
            continue
        options[key] = _value(c, job, name, key, spec, table[key])
    if len(c.problems) > before:
        return None
    if kind.check is not None:
        try:
            kind.check(options)
        except FieldError as e:
            c.add(str(e), job=job, field=f"{name}.{e.field}")
        except ValueError as e:
            c.add(str(e), job=job, field=name)
        except Exception as e:
            c.add(f"the {quote(name)} kind's check failed: {error_text(e)} (a bug in its plugin)",
                  job=job, field=name)
        if len(c.problems) > before:
            return None
    return PluginAction(kind=name, options=options)


_BAD: Any = object()


def _copy(value: Any) -> Any:
    """A default's own copy for one job: a list or table default is not shared."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _value(c: Collector, job: str, kind: str, key: str, spec: Field, value: Any) -> Any:
    where = f"{kind}.{key}"
    checked = _typed(c, job, where, spec.type, value, not spec.required)
    if checked is _BAD:
        return None
    if spec.items is not None:
        if isinstance(checked, list):
            items = [_typed(c, job, f"{where}[{i}]", spec.items, v, True)
                     for i, v in enumerate(checked)]
            if any(v is _BAD for v in items):
                return None
            checked = items
        elif isinstance(checked, dict):
            values = {k: _typed(c, job, f"{where}.{k}", spec.items, v, True)
                      for k, v in checked.items()}
            if any(v is _BAD for v in values.values()):
                return None
            checked = values
    if spec.choices and checked not in spec.choices:
        c.add(f"expected one of {', '.join(map(quote, spec.choices))}, got {quote(value)}",
              job=job, field=where)
        return None
    if spec.template and not _templates(c, job, where, checked):
        return None
    if spec.check is not None:
        try:
            checked = spec.check(checked)
        except ValueError as e:
            c.add(str(e) or f"bad value {quote(value)}", job=job, field=where)
            return None
        except Exception as e:
            c.add(f"the {quote(kind)} kind's check of this field failed: {error_text(e)} "
                  "(a bug in its plugin)", job=job, field=where)
            return None
    return checked


def _typed(c: Collector, job: str, where: str, type_: str, value: Any,
           allow_empty: bool) -> Any:
    bad = len(c.problems)
    out: Any = value
    if type_ == "string":
        out = check_str(c, value, job=job, field=where, allow_empty=allow_empty)
    elif type_ == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            c.add(f"expected a whole number, got {quote(value)} ({type_name(value)})",
                  job=job, field=where)
    elif type_ == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            c.add(f"expected a number, got {quote(value)} ({type_name(value)})",
                  job=job, field=where)
    elif type_ == "boolean":
        out = check_bool(c, value, job=job, field=where)
    elif type_ == "duration":
        out = check_duration(c, value, job=job, field=where)
    elif type_ == "list":
        if not isinstance(value, list):
            c.add(f"expected a list, got {type_name(value)}", job=job, field=where)
    elif type_ == "table":
        out = check_table(c, value, job=job, field=where)
    return _BAD if len(c.problems) > bad else out


def _templates(c: Collector, job: str, where: str, value: Any) -> bool:
    from jaz.engine import expr

    texts = value.values() if isinstance(value, dict) else \
        value if isinstance(value, list) else [value]
    for text in texts:
        if not isinstance(text, str):
            continue
        try:
            refs = expr.parse_template(text).job_references()
        except expr.ExprError as e:
            c.add(f"bad expression in {quote(text)}: {e}", job=job, field=where, column=e.column)
            return False
        if refs:
            ref = sorted(refs)[0]
            c.add(f"{where} sees variables, not jobs: write ${{NAME}} for an output of "
                  f"{quote(ref)}, not ${{{ref}.NAME}}", job=job, field=where)
            return False
    return True
