"""The interface for packages that add job kinds to jaz (docs/plugins.md).

Import what a plugin needs from here, not from `jaz.engine`: these names stay as they
are within one `API` version. A package declares its kind in its `pyproject.toml`:

    [project.entry-points."jaz.kinds"]
    http = "jaz_http:KIND"

where `KIND` is a `Kind` (or a function returning one) whose `name` is the entry
point's name: the action key of its jobs (`[jobs.x] http = { url = "…" }`).
"""

from __future__ import annotations

from jaz.engine.executors.base import (
    TAIL_BYTES,
    Attempt,
    Execution,
    Executor,
    Outcome,
    parse_outputs,
    read_outputs,
    read_tail,
    redact,
)
from jaz.engine.executors.plugins import options
from jaz.engine.kinds import API, GROUP, TYPES, Field, FieldError, Kind, declaration_problems
from jaz.errors import ActionError

__all__ = [
    "API", "GROUP", "TAIL_BYTES", "TYPES", "ActionError", "Attempt", "Execution", "Executor",
    "Field", "FieldError", "Kind", "Outcome", "declaration_problems", "options",
    "parse_outputs", "read_outputs", "read_tail", "redact",
]
