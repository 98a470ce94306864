"""`jaz import crontab`: a crontab (Vixie cron / cronie syntax) as jobnet files.

Cron's own rules are followed, not croniter's where they differ:
- a line is blank, a comment (`#` first), an environment setting (`NAME = value`, the
  value unquoted when it is quoted with matching quotes; no `$` expansion), or an entry:
  five time fields (numbers, month and weekday names, `*`, ranges, steps, lists) or an
  `@` macro, then (in a system crontab) a user, then the command;
- when the day-of-month and day-of-week fields are both restricted a day matching either
  fires -- unless one of them starts with `*` (`*/2`): then both must match (Vixie
  cron's DOM_STAR/DOW_STAR). jaz's cron reads `*/2` as a restriction and would take
  either, so such an entry gets a weekday calendar and `*` in its day-of-week field;
- `%` ends the command; what follows is the command's standard input, each further `%`
  a newline; `\\%` is a literal `%`;
- cron mails a job's output, when there is any, to MAILTO (to the crontab's owner with
  no MAILTO; to nobody with MAILTO=""): such jobs get cron-mail.sh as their `shell`, which
  runs the command with $SHELL -c as cron does and mails what it wrote.
A line cron would refuse makes the whole import fail (crontab(1) refuses such a file
too); what jaz cannot carry (`@reboot`) is left out and reported.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from jaz.errors import JobnetInvalid, Problem
from jaz.importers import Plan, basic, multiline, slug, toml_key, unique
from jaz.importers.cronmail import MAIL_SCRIPT, MAIL_WRAPPER
from jaz.importers.cronone import TIME_JOB, refusals, time_job, when

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_MONTH_NAMES = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                "dec"}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_WEEKDAY_WORDS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_POSIX_SHELLS = {"sh", "bash", "dash", "ksh", "mksh", "zsh", "ash", "busybox", "yash"}
_ENV = re.compile(r"""\s*("[^"]*"|'[^']*'|[^\s="']+)\s*=(.*)""")
_ATOM = r"(?:\d+|[A-Za-z]{3})"
_ITEM = re.compile(rf"(?:\*|{_ATOM}(?:-{_ATOM})?)(?:/\d+)?")
_WRAPPERS = {"cd", "sudo", "nice", "ionice", "env", "exec", "nohup", "time", "flock",
             "timeout", "test", "[", "run-parts", "if", "then", "sh", "bash", "-c"}


@dataclass
class Entry:
    line: int
    text: str                     # the line as written
    cron: str                     # five fields, as jaz will read them
    command: str                  # what the shell runs
    stdin: str | None             # after the first unescaped %
    env: dict[str, str]           # the settings in force at this line, in order
    user: str | None = None
    comment: str = ""
    calendar_weekdays: tuple[int, ...] | None = None   # the AND rule's weekday calendar
    notes: list[str] = field(default_factory=list)


class CrontabError(JobnetInvalid):
    """Lines cron itself would refuse (or --one cannot join); nothing is written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.hint = "nothing was written; fix these lines (crontab -e would refuse them too)"


def parse(text: str, source: str, *, system: bool = False,
          plan: Plan | None = None) -> list[Entry]:
    """The entries of a crontab's text, with the environment in force at each; lines
    cron refuses raise `CrontabError` naming every one; what cannot be carried over is
    noted in `plan`."""
    plan = plan if plan is not None else Plan()
    problems: list[Problem] = []
    env: dict[str, str] = {}
    entries: list[Entry] = []
    comment: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(_printable(stripped.lstrip("#").strip()))
            continue
        bad = _CONTROL.search(line)
        if bad:
            what = "is not UTF-8 text" if "\udc80" <= bad.group() <= "\udcff" else \
                f"holds a control character ({bad.group()!r})"
            problems.append(Problem(file=source, line=number, message=f"the line {what}"))
            comment = []
            continue
        m = _ENV.fullmatch(line)
        if m and not stripped.startswith("@"):
            name, value = _unquote(m.group(1)), _env_value(m.group(2))
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                plan.note(where, f"the setting {basic(name)} is not carried over: jaz takes "
                                 "environment names of letters, digits and _ only")
                comment = []
                continue
            env[name] = value
            _note_env(plan, where, name, value)
            comment = []
            continue
        try:
            entry = _entry(line, number, env, system)
        except ValueError as e:
            problems.append(Problem(file=source, line=number, message=f"{e}, in: "
                                    f"{_shown(stripped)}"))
            comment = []
            continue
        if entry is None:   # @reboot
            plan.note(where, "@reboot is not carried over: jaz has no 'at start-up' "
                             "trigger; run it from a systemd unit, or as a jobnet started "
                             "once with `jaz start` after the server is up")
            comment = []
            continue
        entry.comment = " ".join(c for c in comment if c)
        comment = []
        entries.append(entry)
    if problems:
        raise CrontabError(problems)
    return entries


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _printable(text: str) -> str:
    return _CONTROL.sub("?", text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _env_value(text: str) -> str:
    return _unquote(text.strip())


def _note_env(plan: Plan, where: str, name: str, value: str) -> None:
    if "$" in value and name in ("PATH", "HOME", "SHELL"):
        plan.note(where, f"{name} is carried over literally, {basic(value)}: cron does not "
                         "expand variables in crontab settings and neither does jaz")
    if name == "TZ":
        plan.note(where, "TZ is carried into the jobs' environment only; as in cronie, the "
                         "schedule's zone comes from CRON_TZ (else the server's zone)")
    if name == "MAILTO" and value:
        plan.note(where, f"MAILTO={value}: the jobs below mail their output as cron does "
                         "(stdout and stderr together, when there is any) through "
                         f"{MAIL_WRAPPER} and sendmail; their jaz logs get it as one "
                         "stream, on stdout")


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:79] + "…"


def _entry(line: str, number: int, env: dict[str, str], system: bool) -> Entry | None:
    rest = line.strip()
    if rest.startswith("@"):
        word, _, rest = rest.partition(" ") if " " in rest else rest.partition("\t")
        word = word.lower()
        if word == "@reboot":
            return None
        if word not in MACROS:
            raise ValueError(f"unknown macro {basic(word)}: cron knows @reboot, "
                             + ", ".join(MACROS))
        fields = MACROS[word].split()
        rest = rest.lstrip()
    else:
        parts = re.split(r"[ \t]+", rest, maxsplit=5)
        if len(parts) < 6:
            raise ValueError("an entry needs five time fields and a command")
        fields, rest = parts[:5], parts[5]
        for i, f in enumerate(fields):
            _check_field(f, i)
        fields = [_big_steps(f, i) for i, f in enumerate(fields)]
    user = None
    if system:
        m = re.match(r"(\S+)[ \t]+(.*)", rest, re.S)
        if m is None:
            raise ValueError("a system crontab entry needs a user and then the command")
        user, rest = m.group(1), m.group(2)
    if not rest.strip():
        raise ValueError("the entry has no command")
    command, stdin = split_percent(rest)
    cron = " ".join(fields)
    from jaz.engine.cron import CronError, parse_cron

    try:
        parsed = parse_cron(cron)
    except CronError as e:
        raise ValueError(str(e)) from None
    weekdays = None
    restricted = (parsed.days is not None or parsed.last_day) and parsed.weekdays is not None
    if restricted and (fields[2].startswith("*") or fields[4].startswith("*")):
        # Vixie cron: a day field starting with '*' makes the two day fields AND, not OR
        weekdays = tuple(sorted(parsed.weekdays or ()))
        cron = " ".join((*fields[:4], "*"))
    return Entry(line=number, text=line.strip(), cron=cron, command=command, stdin=stdin,
                 env=dict(env), user=user, calendar_weekdays=weekdays)


def _check_field(text: str, index: int) -> None:
    name = _FIELD_NAMES[index]
    for item in text.split(","):
        if not _ITEM.fullmatch(item):
            raise ValueError(f"bad {name} field {basic(text)}: cron takes numbers, *, "
                             "ranges a-b, steps */n and lists a,b"
                             + (" and names" if index in (3, 4) else ""))
        base, _, step = item.partition("/")
        if step and base != "*" and "-" not in base:
            raise ValueError(f"bad {name} field {basic(text)}: a step needs a range "
                             f"before it, like {basic(base + '-' + _last(index) + '/' + step)}"
                             " or */" + step)
        if step and int(step) == 0:
            raise ValueError(f"bad {name} field {basic(text)}: a step must be 1 or more")
        for atom in re.findall(r"[A-Za-z]+", item):
            known = _MONTH_NAMES if index == 3 else _DAY_NAMES if index == 4 else set()
            if atom.lower() not in known:
                raise ValueError(f"bad {name} field {basic(text)}: {basic(atom)} is not a "
                                 + ("month name" if index == 3 else "weekday name"
                                    if index == 4 else "number"))


_LOW = (0, 0, 1, 1, 0)
_HIGH = (59, 23, 31, 12, 7)


def _big_steps(text: str, index: int) -> str:
    """cron takes a step past its range (`*/60`: minute 0 only), jaz's cron does not:
    such an item is written as the one value it gives."""
    span = _HIGH[index] - _LOW[index]
    items = []
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and int(step) > span:
            item = str(_LOW[index]) if base == "*" else base.partition("-")[0]
        items.append(item)
    return ",".join(items)


def _last(index: int) -> str:
    return ("59", "23", "31", "12", "7")[index]


def split_percent(text: str) -> tuple[str, str | None]:
    """cron's `%`: (command, standard input or None); `\\%` is a literal `%` in both."""
    command: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "%":
            command.append("%")
            i += 2
            continue
        if ch == "%":
            break
        command.append(ch)
        i += 1
    else:
        return "".join(command), None
    data: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "%":
            data.append("%")
            i += 2
            continue
        data.append("\n" if ch == "%" else ch)
        i += 1
    return "".join(command), "".join(data)


def script(entry: Entry) -> str:
    """The job's shell script: the command, fed its `%` input on stdin as cron does."""
    if entry.stdin is None:
        return entry.command
    quoted = "'" + entry.stdin.replace("'", "'\\''") + "'"
    return f"printf '%s' {quoted} | {{\n{entry.command}\n}}"


def name_word(command: str) -> str:
    """A short name for a command: its program, past `cd x &&`, `sudo`, `VAR=x`."""
    try:
        words = shlex.split(command, comments=False)
    except ValueError:
        words = command.split()
    skip_next = False
    for w in words:
        if skip_next:
            skip_next = False
            continue
        if w in ("&&", "||", ";", "|") or "=" in w.split("/")[0] or w.startswith("-"):
            continue
        if w in _WRAPPERS:
            skip_next = w in ("cd", "timeout", "flock")
            continue
        if w.startswith(("$", ">", "<", "2>")) or re.fullmatch(r"\d+", w):
            continue
        base = os.path.basename(w.rstrip("/"))
        base = re.sub(r"\.(sh|py|pl|rb|php|bash)$", "", base)
        if re.search(r"[A-Za-z]", base):
            return base
    return ""


# ------------------------------------------------------------------ the jobnets


@dataclass
class Options:
    out: Path
    prefix: str
    one: bool = False
    system: bool = False
    home: str | None = None   # cron's working directory when HOME is not set
    mail: bool = True         # mail the jobs' output as cron does (MAILTO)


def plan_crontab(text: str, source: str, options: Options) -> Plan:
    """The files for a crontab's text (raises `CrontabError` on a line cron refuses)."""
    plan = Plan()
    entries = parse(text, source, system=options.system, plan=plan)
    for e in entries:
        _check_entry(plan, source, e)
    entries = [e for e in entries if not e.notes]
    if not entries:
        return plan
    named: list[tuple[str, list[Entry]]] = []
    if options.one:
        _one(entries, source)
        named.append((options.prefix, entries))
        if len({_key(e) for e in entries}) > 1:
            plan.note(f"{source}:{entries[0].line}", "--one: the entries fire at different "
                      "times; the jobnet has a schedule for each, and each job an `if` that "
                      f"runs it only at its own entry's times (from the job {TIME_JOB}). "
                      "Where that differs from cron: a run started by hand runs only the "
                      "entries due in that minute; on a daylight-saving day a time that "
                      "does not exist fires at the end of the gap, where its entry's `if` "
                      "no longer holds, so that entry does not run that day")
    else:
        taken: set[str] = set()
        for e in entries:
            word = slug(name_word(e.command), fallback=f"line{e.line}")
            named.append((unique(f"{options.prefix}-{word}", taken), [e]))
    for name, group in named:
        plan.add(f"{name}.toml", _jobnet(name, group, source, options, plan),
                 f"{source}:{group[0].line}")
    mailing = [e for e in entries if _mails(e, options)]
    if mailing:
        plan.add(MAIL_WRAPPER, MAIL_SCRIPT, source, executable=True)
    owner = next((e for e in mailing if "MAILTO" not in e.env), None)
    if owner is not None:
        plan.note(f"{source}:{owner.line}", "no MAILTO: cron mails a job's output to the "
                  "crontab's owner, and so do this and the later entries without MAILTO "
                  f"(to the user the job runs as, through {MAIL_WRAPPER}); set MAILTO=\"\" "
                  "in the crontab, or import with --no-mail, to keep the output in jaz's "
                  "logs only")
    if not options.mail and any(e.env.get("MAILTO") != "" for e in entries):
        first = next(e for e in entries if e.env.get("MAILTO") != "")
        plan.note(f"{source}:{first.line}", "--no-mail: cron would mail the jobs' output "
                  "(MAILTO, or the crontab's owner); the jobs keep it in jaz's logs only")
    plan.notes.sort(key=lambda n: int(n.where.rpartition(":")[2] or 0))
    return plan



def _mails(e: Entry, options: Options) -> bool:
    """Whether cron would mail this entry's output: unless MAILTO="" (or --no-mail)."""
    return options.mail and e.env.get("MAILTO") != ""


def _check_entry(plan: Plan, source: str, e: Entry) -> None:
    shell = e.env.get("SHELL", "/bin/sh")
    if e.stdin is not None and os.path.basename(shell) not in _POSIX_SHELLS:
        e.notes.append(f"not carried over: its % input needs a POSIX shell to feed the "
                       f"command, and SHELL is {basic(shell)}")
    zone = e.env.get("CRON_TZ")
    if zone:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(zone)
        except (ValueError, KeyError, OSError):
            e.notes.append(f"not carried over: CRON_TZ={basic(zone)} is no IANA time zone "
                           "(like \"Europe/Berlin\")")
    if e.calendar_weekdays is not None:
        days = ", ".join(_WEEKDAY_WORDS[d] for d in e.calendar_weekdays)
        plan.note(f"{source}:{e.line}", f"a day field starting with '*' makes cron match "
                  f"the day of month AND the day of week: the jobnet takes the weekdays "
                  f"({days}) from a calendar, so jaz fires on the same days")
    for n in e.notes:
        plan.note(f"{source}:{e.line}", n)


def _zone(e: Entry) -> str | None:
    return e.env.get("CRON_TZ") or None


def _calendar(plan: Plan, weekdays: tuple[int, ...]) -> str:
    words = [_WEEKDAY_WORDS[d] for d in weekdays]
    name = "cron-weekdays-" + "-".join(words) if words else "cron-weekdays-none"
    text = (f"# written by `jaz import crontab`: the weekdays of a cron entry whose day of\n"
            f"# month and day of week must both match (a day field starting with '*')\n"
            f"name = {basic(name)}\nweekdays = [{', '.join(basic(w) for w in words)}]\n")
    plan.add(f"calendars/{name}.toml", text, "calendar")
    return f"calendars/{name}.toml"


def _schedule(e: Entry, plan: Plan, *, table: str = "[schedule]") -> list[str]:
    lines = [table, f"cron = {basic(e.cron)}"]
    if _zone(e):
        lines.append(f"timezone = {basic(_zone(e) or '')}   # CRON_TZ")
    if e.calendar_weekdays is not None:
        lines.append(f"calendar = {basic(_calendar(plan, e.calendar_weekdays))}")
    lines += ['overlap = "allow"   # cron starts a job even while its last run goes on',
              'catchup = "none"    # and does not run what it missed while it was down']
    return lines


def _job(job: str, e: Entry, options: Options, *, header: bool, single: bool) -> list[str]:
    lines = [f"[jobs.{job}]"]
    if header:
        lines.insert(0, f"# {source_comment(e)}")
    if e.comment and not single:
        lines.append(f"description = {basic(e.comment)}")
    lines.append(f"run = {multiline(script(e))}")
    env = dict(e.env)
    if _mails(e, options):
        # runs `run` with $SHELL -c as cron does, and mails its output (MAILTO)
        wrapper = (options.out.resolve() / MAIL_WRAPPER).as_posix()
        lines.append(f"shell = {basic(wrapper)}   # cron's mail, then $SHELL -c")
        env.setdefault("SHELL", "/bin/sh")   # cron's default, and what the wrapper runs
    elif "SHELL" in env:
        lines.append(f"shell = {basic(env['SHELL'])}")
    home = env.get("HOME") or _home(e.user, options)
    if home:
        lines.append(f"cwd = {basic(home)}   # cron runs jobs in the home folder")
    if e.user:
        lines.append(f"user = {basic(e.user)}")
    if env:
        items = ", ".join(f"{toml_key(k)} = {basic(v)}" for k, v in env.items())
        lines.append(f"env = {{ {items} }}")
    return lines


def source_comment(e: Entry) -> str:
    return "from: " + _printable(e.text)


def _home(user: str | None, options: Options) -> str | None:
    if user:
        import pwd

        try:
            return pwd.getpwnam(user).pw_dir
        except KeyError:
            return None
    return options.home


def _jobnet(name: str, entries: list[Entry], source: str, options: Options,
            plan: Plan) -> str:
    first = entries[0]
    lines = [f"# imported by `jaz import crontab` from {source}"
             + (f":{first.line}" if len(entries) == 1 else ""),
             f"name = {basic(name)}"]
    if len(entries) == 1 and first.comment:
        lines.append(f"description = {basic(first.comment)}")
    distinct = list({_key(e): e for e in entries}.values())
    if len(distinct) == 1:
        lines += ["", *_schedule(first, plan), ""]
    else:   # --one over different times: each job runs at its own entry's times
        lines += ["# each [[schedule]] starts the whole jobnet; each job's `if` lets it run",
                  "# only at its own entry's times (the time the run was scheduled for)"]
        for e in distinct:
            lines += ["", *_schedule(e, plan, table="[[schedule]]")]
        lines += ["", *time_job(), ""]
    taken: set[str] = {TIME_JOB} if len(distinct) > 1 else set()
    for e in entries:
        job = unique(slug(name_word(e.command), job=True, fallback=f"line{e.line}"),
                     taken, sep="_")
        body = _job(job, e, options, header=True, single=len(entries) == 1)
        if len(distinct) > 1:
            at = body.index(f"[jobs.{job}]") + 1
            body[at:at] = [f"needs = [{basic(TIME_JOB)}]", f"if = {basic(when(e))}"]
        lines += body
        lines.append("")
    return "\n".join(lines)


def _key(e: Entry) -> tuple[object, ...]:
    """What makes two entries' schedules the same."""
    return (e.cron, _zone(e), e.calendar_weekdays)


def _one(entries: list[Entry], source: str) -> None:
    """--one: every entry in one jobnet; entries that fire at different times are told
    apart by the fire's time (cronone.py), which needs them in the server's zone."""
    if len({_key(e) for e in entries}) > 1:
        problems = refusals(entries, source)
        if problems:
            raise CrontabError(problems)


def read_source(path: str) -> tuple[str, str]:
    """(text, name for messages) of FILE or `-` (stdin)."""
    import sys

    from jaz.errors import NotFound, UsageError

    if path == "-":
        if sys.stdin.isatty():
            raise UsageError("no crontab on standard input",
                             hint="pipe one in (`crontab -l | jaz import crontab - --out "
                                  "DIR`) or name a file")
        return sys.stdin.buffer.read().decode("utf-8", "surrogateescape"), "<stdin>"
    p = Path(path)
    try:
        # undecodable bytes stay visible (as surrogates) so that their line is reported
        return p.read_text(encoding="utf-8", errors="surrogateescape"), path
    except FileNotFoundError:
        raise NotFound(f"{path}: no such crontab file",
                       hint="`crontab -l > my.crontab` saves yours") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read it: {e.strerror}") from None
