"""How jobs of plugin kinds (jaz/engine/kinds.py) run: each kind's executor, made once,
guarded so that a plugin's bug fails its job and never the run's driver; and the
options of an attempt with their templates filled in."""

from __future__ import annotations

import threading
from typing import Any

from jaz.engine.executors.base import Attempt, Execution, Executor
from jaz.engine.kinds import Installed, error_text, installed
from jaz.engine.model import PluginAction
from jaz.errors import ActionError

_lock = threading.Lock()
_executors: dict[str, tuple[Installed, Executor]] = {}


def executor_for(name: str) -> Executor:
    """The executor of kind `name`, made on first use (and again if the kinds were read
    again since, `kinds.forget`); ActionError if it cannot be."""
    registry = installed()
    item = registry.kinds.get(name)
    with _lock:
        made = _executors.get(name)
    if made is not None and made[0] is item:
        return made[1]
    if item is None:
        broken = registry.broken_kind(name)
        raise ActionError(f"no installed kind {name!r}"
                          + (f": its plugin is broken ({broken.describe()})" if broken else ""),
                          hint="`jaz kinds` lists the installed kinds")
    try:
        inner = item.kind.executor()
        if not isinstance(inner, Executor):
            raise TypeError(f"it gave {type(inner).__name__}, not a jaz.kinds.Executor")
    except Exception as e:
        raise ActionError(f"kind {name!r} ({item.package} {item.version}) could not make its "
                          f"executor: {error_text(e)}") from None
    with _lock:
        made = _executors.get(name)
        if made is None or made[0] is not item:
            made = _executors[name] = (item, _Guarded(name, item, inner))
        return made[1]


class _Guarded(Executor):
    """A plugin's executor whose unexpected errors fail the job instead of the driver."""

    def __init__(self, name: str, item: Installed, inner: Executor) -> None:
        self.name = name
        self.item = item
        self.inner = inner

    def start(self, attempt: Attempt) -> Execution:
        try:
            execution = self.inner.start(attempt)
        except ActionError:
            raise
        except Exception as e:
            raise ActionError(f"kind {self.name!r} ({self.item.package} {self.item.version}) "
                              f"failed to start: {error_text(e)}") from None
        if not isinstance(execution, Execution):
            raise ActionError(f"kind {self.name!r} ({self.item.package}) started "
                              f"{type(execution).__name__}, not a jaz.kinds.Execution")
        return execution


def options(attempt: Attempt) -> dict[str, Any]:
    """The attempt's fields, `template` ones filled in from the job's variables
    (params, jobnet variables, upstream outputs, `JAZ_*`); ActionError if one fails."""
    from datetime import datetime

    from jaz.engine import expr

    action = attempt.job.action
    if not isinstance(action, PluginAction):
        raise ActionError(f"a {attempt.job.kind!r} job has no plugin options")
    kind = installed().kinds.get(action.kind)
    specs = kind.kind.fields if kind is not None else {}
    scope = expr.Scope(variables=dict(attempt.env), jobs={}, now=datetime.now().astimezone())
    out = dict(action.options)

    def fill(key: str, text: Any) -> Any:
        if not isinstance(text, str) or "${" not in text:
            return text
        try:
            return expr.parse_template(text).render(scope)
        except expr.ExprError as e:
            raise ActionError(f"{action.kind}.{key}: {e}") from None

    for key, spec in specs.items():
        if not spec.template or out.get(key) is None:
            continue
        value = out[key]
        if isinstance(value, dict):
            out[key] = {k: fill(key, v) for k, v in value.items()}
        elif isinstance(value, list):
            out[key] = [fill(key, v) for v in value]
        else:
            out[key] = fill(key, value)
    return out
