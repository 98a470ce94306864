"""What a run's params may be: they become environment variables of its jobs.

Every value must be text a process environment can hold: no NUL character, no lone
surrogate (which JSON can spell, and UTF-8 cannot). On the server, also: a param the
jobnet declares in `[params]` may be given any value (its author chose the
name). An undeclared one is a variable too (JAZ's `jobarg_exec -e`), but its name must
be a plain variable name, and not one that makes a shell, the dynamic loader or a
common interpreter run other code or find other programs (`LD_PRELOAD`, `PATH`,
`BASH_ENV`…): an operator may start jobnets, not change what their jobs execute.
`JAZ_*` names are jaz's own. `jaz run` takes any name: it runs as its user anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jaz.errors import UsageError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REFUSED = frozenset({
    "PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH",
    "GLOBIGNORE", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PERL5LIB", "PERL5OPT",
    "PERLLIB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS"})
REFUSED_PREFIXES = ("LD_", "DYLD_", "JAZ_")


def check_values(params: Mapping[str, str]) -> None:
    """Raise UsageError naming the first param whose value no environment can hold
    (every run, `jaz run` included)."""
    for name, value in params.items():
        if not isinstance(value, str) or "\0" in value or not _encodable(value) \
                or not _encodable(name) or "\0" in name:
            raise UsageError(f"param {ascii(name)} has a value an environment cannot hold "
                             f"(a NUL character or invalid Unicode)")


def check_names(params: Mapping[str, str], declared: Mapping[str, str]) -> None:
    """Raise UsageError naming the first undeclared param an operator may not give (the
    server's runs: `jaz run` is its user's own process, with nothing to guard)."""
    for name in params:
        if name in declared:
            continue
        if not NAME.fullmatch(name):
            raise UsageError(f"param {ascii(name)} is not a variable name",
                             hint="use letters, digits and _, not starting with a digit")
        if name in REFUSED or name.startswith(REFUSED_PREFIXES):
            raise UsageError(f"param {name} may not be set when starting a run: it would "
                             f"change what the jobs execute",
                             hint="declare it in the jobnet's [params] if the jobnet really "
                                  "takes it, or use another name")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
