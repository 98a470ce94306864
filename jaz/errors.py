"""Every error jaz reports on purpose.

Each class maps to one exit code of SPEC §3, so the CLI can turn any `JazError`
into one clear message and the right code; the API will map the same classes to
HTTP problems and the TUI to notifications.
"""

from __future__ import annotations

from jaz.value import Value


class JazError(Exception):
    """Base of all expected errors; `exit_code` is the CLI exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(JazError):
    """Raised by the CLI and the service layer for a bad argument or option."""

    exit_code = 2


class Problem(Value):
    """One validation finding: where it is and what is wrong."""

    file: str
    message: str
    job: str | None = None
    field: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = []
        if self.job is not None:
            parts.append(f"job {self.job!r}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        loc = f" ({', '.join(parts)})" if parts else ""
        return f"{where}{loc}: {self.message}"


class JobnetInvalid(JazError):
    """Raised by the loader when a jobnet or calendar file has problems.

    It carries every problem found in the file, not just the first.
    """

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class NotFound(JazError):
    """Raised when a run, job, jobnet or file asked for does not exist."""

    exit_code = 4


class Unreachable(JazError):
    """Raised by clients when the server or an agent cannot be reached."""

    exit_code = 3


class Refused(JazError):
    """Raised on auth/permission failures, or a daemon started as root."""

    exit_code = 5


class ActionError(JazError):
    """Raised by executors when an action cannot be carried out (the job fails)."""

    exit_code = 1


class StoreError(JazError):
    """Raised by stores when the database cannot be opened: not a database, or written by
    a newer jaz. It is bad input (usually the --db path), hence exit 2."""

    exit_code = 2


class StateError(JazError):
    """Raised by the service layer when an operator action does not fit the
    current state (releasing a job that is not held, resuming a finished run)."""

    exit_code = 2
