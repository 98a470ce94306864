"""Importers: crontabs and pgAgent jobs become jobnet files (`jaz import ...`).

Each importer turns its source into a `Plan`: the files to write (jobnets, the
calendars their schedules need, the script cron's mail goes through) and the notes that
say, line by line, what could not be carried over. A fatal problem (a crontab line cron itself would
refuse, a database without pgAgent's schema) raises before anything is written;
`write_plan` validates every jobnet with the engine's own loader in a scratch folder
first and moves the files into place only when all of them load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jaz.errors import JazError, JobnetInvalid, Problem, UsageError

__all__ = ["Note", "Plan", "basic", "multiline", "slug", "toml_key", "write_plan"]


@dataclass(frozen=True)
class Note:
    """Something the source says that the jobnets do not (or not exactly) carry."""

    where: str          # "crontab:12", "pgagent job 3 'nightly' step 'vacuum'"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Plan:
    """What an import writes: relative path -> text, in writing order, and its notes."""

    files: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)   # relative path -> where from
    notes: list[Note] = field(default_factory=list)
    executable: set[str] = field(default_factory=set)

    def note(self, where: str, message: str) -> None:
        self.notes.append(Note(where, message))

    def add(self, path: str, text: str, source: str, *, executable: bool = False) -> None:
        if path in self.files and self.files[path] != text:
            raise AssertionError(f"two different texts for {path}")
        self.files[path] = text
        self.sources.setdefault(path, source)
        if executable:
            self.executable.add(path)


# ------------------------------------------------------------------ TOML text


def basic(text: str) -> str:
    """A TOML basic string (a JSON string is one)."""
    return json.dumps(text, ensure_ascii=False)


def multiline(text: str) -> str:
    """A script as TOML: a literal ''' block when it can be one (what people write), else
    a basic string with escapes."""
    if "\n" in text and "'''" not in text and not text.endswith("'") and \
            not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text):
        # a newline right after ''' is dropped by TOML, so the text starts on the next line
        return "'''\n" + text + "'''"
    return basic(text)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else basic(key)


def slug(text: str, *, job: bool = False, fallback: str = "job") -> str:
    """A jobnet name (letters, digits, `_ - .`) or, with `job`, a job name (letters,
    digits, `_`, not starting with a digit) made from arbitrary text."""
    allowed = r"[^A-Za-z0-9_]+" if job else r"[^A-Za-z0-9_.\-]+"
    out = re.sub(allowed, "_" if job else "-", text.strip()).strip("_-.")
    out = re.sub(r"[_]{2,}", "_", out) if job else re.sub(r"-{2,}", "-", out)
    if not out:
        out = fallback
    if job and out[0].isdigit():
        out = "_" + out
    return out[:60].rstrip("_-.") or fallback


def unique(name: str, taken: set[str], sep: str = "-") -> str:
    candidate, n = name, 2
    while candidate.lower() in taken:
        candidate, n = f"{name}{sep}{n}", n + 1
    taken.add(candidate.lower())
    return candidate


# ------------------------------------------------------------------ writing


def write_plan(plan: Plan, out: Path, *, force: bool = False) -> list[Path]:
    """Write the plan's files into `out`, or nothing at all.

    Every file is written to a scratch folder beside `out` first; every jobnet there is
    loaded with the engine's loader and its schedules bound to their calendars (so what
    is written is exactly what `jaz validate` and `jaz next` accept). Only then are the
    files moved into `out`. An existing file is refused unless `force`."""
    from jaz.engine.calendars import CalendarLibrary, looks_like_calendar
    from jaz.engine.checks import parse_toml
    from jaz.engine.clock import local_zone
    from jaz.engine.loader import load_text
    from jaz.engine.schedules import bind_jobnet

    if not plan.files:
        raise UsageError("nothing to import: the source has no job that can be carried over",
                         hint="see the notes above for what was left out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a folder")
    clashes = [str(out / rel) for rel in plan.files if (out / rel).exists()]
    if clashes and not force:
        raise UsageError(f"{len(clashes)} file(s) exist already, first {clashes[0]}; "
                         "nothing was written",
                         hint="choose another --out folder, or --force to overwrite them")
    parent = out.resolve().parent if not out.exists() else out.resolve()
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".jaz-import-", dir=parent))
    try:
        for rel, text in plan.files.items():
            p = scratch / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
            if rel in plan.executable:
                p.chmod(0o755)
        library = CalendarLibrary()
        problems: list[Problem] = []
        for rel, text in plan.files.items():
            if not rel.endswith(".toml"):
                continue
            p = scratch / rel
            try:
                data = parse_toml(text, str(p))
                if looks_like_calendar(data, p):
                    library.load(p)
                    continue
                bind_jobnet(load_text(text, path=p), local_zone(), library)
            except JobnetInvalid as e:
                problems.extend(e.problems)
        if problems:   # a bug of the importer, said plainly rather than written
            raise JazError("the import produced files that do not validate; nothing was "
                           "written:\n" + "\n".join(f"  {p} (from {_source(plan, p)})"
                                                    for p in problems),
                           hint="please report this with the input line it names")
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for rel in plan.files:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / rel, target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _source(plan: Plan, problem: Problem) -> str:
    name = Path(problem.file).name
    for rel, source in plan.sources.items():
        if Path(rel).name == name:
            return source
    return "?"
