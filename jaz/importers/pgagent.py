"""`jaz import pgagent`: pgAgent's jobs (its own tables in the `pgagent` schema) as
jobnet files.

- A job becomes a jobnet with `mode = "sequence"`: its steps in pgAgent's order
  (`ORDER BY jstname, jstid`, in the database's collation) as a chain, and
  `on_failure = "stop"`: a failed step ends the run failed, as it ends a pgAgent job.
- A SQL step becomes a `sql` job with `database` (the step's own database on the same
  server, or its connection string as a URL, a password dropped: ~/.pgpass); a batch
  step becomes a `run` job (a `#!` line other than a POSIX shell's is honoured by running
  the script from a file, as pgAgent does).
- On error: "fail" is jaz's default; "success" and "ignore" let the chain go on: the
  step runs inside a wrapper that reports the failure and ends 0 (a SQL step then runs
  through psql, which keeps pgAgent's one-transaction-per-step).
- A disabled step is `enabled = false` (skipped, the chain passes on); a disabled job
  or schedule is written without its schedule, and said so.
- Schedules: see `jaz.importers.pgschedule`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import quote as urlquote

from jaz.errors import NotFound, Refused, Unreachable, UsageError
from jaz.importers import Plan, basic, multiline, slug, unique
from jaz.importers.pgschedule import PgSchedule, translate

_TABLES = ("pga_job", "pga_jobstep", "pga_schedule", "pga_exception", "pga_jobclass")
_POSIX_SHELLS = {"sh", "bash", "dash", "ksh", "mksh", "zsh", "ash"}


@dataclass(frozen=True)
class Step:
    id: int
    name: str
    desc: str
    enabled: bool
    kind: str          # 's' sql, 'b' batch
    code: str
    connstr: str
    dbname: str
    onerror: str       # 'f' fail, 's' success, 'i' ignore


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    desc: str
    hostagent: str
    enabled: bool
    jobclass: str


def redact(dsn: str) -> str:
    """A URL or conninfo without its password, for messages."""
    dsn = re.sub(r"(postgres(?:ql)?://[^/@:]*):[^/@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


def connect(dsn: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise UsageError("importing from pgAgent needs psycopg",
                         hint="pip install 'jaz[postgres]'") from None
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"expected a postgresql:// URL, got {basic(redact(dsn))}",
                         hint="like postgresql://postgres@db.example:5432/postgres")
    # the schedules are in the TimeZone pgAgent's own sessions get: the database's (or
    # role's, or server's) setting, which a PGTZ in our environment would override
    pgtz = os.environ.pop("PGTZ", None)
    try:
        return psycopg.connect(dsn, connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as e:
        text = " ".join(str(e).split())
        if re.search(r"password authentication failed|no password supplied|"
                     r"authentication failed|not permitted|pg_hba\.conf|"
                     r"role \"[^\"]*\" does not exist", text):
            raise Refused(f"the database refused the connection: {text}",
                          hint="check the user, and its password in ~/.pgpass") from None
        if "does not exist" in text:
            raise NotFound(f"{redact(dsn)}: {text}") from None
        raise Unreachable(f"cannot reach {redact(dsn)}: {text}",
                          hint="check host and port, and that PostgreSQL is running") from None
    except psycopg.Error as e:
        raise UsageError(f"bad database URL {basic(redact(dsn))}: {e}") from None
    finally:
        if pgtz is not None:
            os.environ["PGTZ"] = pgtz


def read(conn: Any) -> tuple[list[Job], dict[int, list[Step]], dict[int, list[PgSchedule]],
                             dict[int, bool], str]:
    """Jobs, steps by job in pgAgent's order, schedules by job, whether each schedule
    is enabled (by id), and the server's TimeZone."""
    import psycopg

    try:
        return _read(conn)
    except psycopg.errors.InsufficientPrivilege as e:
        raise Refused(f"cannot read pgAgent's tables: {' '.join(str(e).split())}",
                      hint="connect as a user that may read the pgagent schema (pgAgent's "
                           "own user, or a superuser)") from None
    except psycopg.Error as e:
        raise Unreachable(f"reading pgAgent's tables failed: {' '.join(str(e).split())}"
                          ) from None


def _read(conn: Any) -> tuple[list[Job], dict[int, list[Step]], dict[int, list[PgSchedule]],
                              dict[int, bool], str]:
    missing = [t for t in _TABLES if conn.execute(
        "SELECT to_regclass(%s)", (f"pgagent.{t}",)).fetchone()[0] is None]
    if missing:
        raise NotFound(f"no pgAgent schema in database {conn.info.dbname!r}: "
                       f"missing {', '.join('pgagent.' + t for t in missing)}",
                       hint="connect to the database pgAgent uses (usually postgres), "
                            "where `CREATE EXTENSION pgagent` installed it")
    jobs = [Job(*r) for r in conn.execute(
        "SELECT jobid, jobname, jobdesc, jobhostagent, jobenabled, "
        "coalesce(jclname, '') FROM pgagent.pga_job "
        "LEFT JOIN pgagent.pga_jobclass ON jclid = jobjclid ORDER BY jobname, jobid")]
    steps: dict[int, list[Step]] = {}
    for r in conn.execute(
            "SELECT jstjobid, jstid, jstname, jstdesc, jstenabled, jstkind, jstcode, "
            "jstconnstr, jstdbname, jstonerror FROM pgagent.pga_jobstep "
            "ORDER BY jstjobid, jstname, jstid"):   # pgAgent's own order
        steps.setdefault(r[0], []).append(Step(*r[1:]))
    exceptions: dict[int, list[Any]] = {}
    for r in conn.execute("SELECT jexscid, jexdate, jextime FROM pgagent.pga_exception "
                          "ORDER BY jexid"):
        exceptions.setdefault(r[0], []).append((r[1], r[2]))
    schedules: dict[int, list[PgSchedule]] = {}
    enabled: dict[int, bool] = {}
    for r in conn.execute(
            "SELECT jscjobid, jscid, jscname, jscenabled, jscstart, jscend, jscminutes, "
            "jschours, jscweekdays, jscmonthdays, jscmonths FROM pgagent.pga_schedule "
            "ORDER BY jscjobid, jscname, jscid"):
        s = PgSchedule(id=r[1], name=r[2], start=r[4], end=r[5],
                       minutes=tuple(r[6]), hours=tuple(r[7]), weekdays=tuple(r[8]),
                       monthdays=tuple(r[9]), months=tuple(r[10]),
                       exceptions=tuple(exceptions.get(r[1], ())))
        schedules.setdefault(r[0], []).append(s)
        enabled[s.id] = r[3]
    zone = conn.execute("SHOW TimeZone").fetchone()[0]
    return jobs, steps, schedules, enabled, zone


def plan_pgagent(dsn: str, *, only: list[str], now: datetime) -> Plan:
    conn = connect(dsn)
    try:
        jobs, steps, schedules, enabled, zone_name = read(conn)
        info = {"host": conn.info.host, "port": conn.info.port, "user": conn.info.user}
    finally:
        conn.close()
    if only:
        wanted = set(only)
        chosen = [j for j in jobs if j.name in wanted or str(j.id) in wanted]
        unknown = wanted - {j.name for j in chosen} - {str(j.id) for j in chosen}
        if unknown:
            names = ", ".join(f"{j.name!r} ({j.id})" for j in jobs) or "none"
            raise NotFound(f"no pgAgent job {', '.join(map(repr, sorted(unknown)))}",
                           hint=f"the jobs are: {names}")
        jobs = chosen
    zone, zone_note = _zone(zone_name)
    plan = Plan()
    taken: set[str] = set()
    for job in jobs:
        where = f"pgagent job {job.id} {basic(job.name)}"
        if zone_note:
            plan.note(where, zone_note)
        job_steps = steps.get(job.id, [])
        if not job_steps:
            plan.note(where, "not carried over: it has no steps (pgAgent runs nothing)")
            continue
        name = unique(slug(job.name, fallback=f"pgagent-{job.id}"), taken)
        text = _jobnet(plan, name, job, job_steps, schedules.get(job.id, []), enabled,
                       zone, zone_name if zone_note is None else None, info, now, where)
        plan.add(f"{name}.toml", text, where)
    return plan


def _zone(name: str) -> tuple[tzinfo | None, str | None]:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name), None
    except (ValueError, KeyError, OSError):
        return None, (f"the database's TimeZone {basic(name)} is no IANA zone: the "
                      "schedules are written in the jaz server's zone instead")


def _jobnet(plan: Plan, name: str, job: Job, steps: list[Step], schedules: list[PgSchedule],
            enabled: dict[int, bool], zone: tzinfo | None, zone_name: str | None,
            info: dict[str, Any], now: datetime, where: str) -> str:
    from jaz.engine.clock import local_zone

    desc = job.desc.strip()
    about = f"pgAgent job {job.id}" + (f" ({job.jobclass})" if job.jobclass else "")
    lines = [f"# imported by `jaz import pgagent` from {about}: {job.name}",
             f"name = {basic(name)}",
             f"description = {basic(desc or about)}",
             'mode = "sequence"     # the steps in pgAgent\'s order, one after the other',
             'on_failure = "stop"   # a failed step fails the run, as it fails the pgAgent job',
             ""]
    if job.hostagent:
        plan.note(where, f"pgAgent runs it only on the agent host {basic(job.hostagent)}: "
                         "set `host` on its jobs (or [defaults]) to the jaz host for it")
    tables: list[str] = []
    for s in schedules:
        swhere = f"{where} schedule {s.id} {basic(s.name)}"
        if not job.enabled or not enabled.get(s.id, True):
            plan.note(swhere, "not scheduled: the " + ("job" if not job.enabled else
                      "schedule") + " is disabled in pgAgent; start it with `jaz start`, "
                      "or add the schedule when you enable it")
            continue
        prefix = f"pgagent-{name}-{s.id}"
        t = translate(s, zone or local_zone(), now, prefix)
        for n in t.notes:
            plan.note(swhere, n)
        for cal, text in t.calendars.items():
            plan.add(f"calendars/{cal}.toml", text, swhere)
        for item in t.schedules:
            tables += ["[[schedule]]", f"# pgAgent schedule {s.id}: {s.name}",
                       f"cron = {basic(item['cron'])}"]
            if "calendar" in item:
                tables.append(f"calendar = {basic(item['calendar'])}")
            if zone_name:
                tables.append(f"timezone = {basic(zone_name)}   # the database's TimeZone")
            tables += ['overlap = "skip"     # pgAgent does not start a job that is running',
                       'catchup = "latest"   # after downtime it runs a missed job once', ""]
    if not tables and schedules and job.enabled:
        plan.note(where, "none of its schedules fires again: written without [schedule]")
    lines += tables
    jobs: set[str] = set()
    for step in steps:
        lines += _step(plan, step, jobs, info, f"{where} step {step.id} {basic(step.name)}")
        lines.append("")
    return "\n".join(lines)


def _step(plan: Plan, step: Step, taken: set[str], info: dict[str, Any],
          where: str) -> list[str]:
    job = unique(slug(step.name, job=True, fallback=f"step{step.id}"), taken, sep="_")
    lines = [f"# pgAgent step {step.id}: {step.name}", f"[jobs.{job}]"]
    if step.desc.strip():
        lines.append(f"description = {basic(step.desc.strip())}")
    code = step.code
    if "\r\n" in code:
        code = code.replace("\r\n", "\n")
        plan.note(where, "its Windows line ends (CRLF) are written as LF")
    go_on = step.onerror in ("s", "i")
    tail: list[str] = []
    if step.kind == "s":
        url = _database(plan, step, info, where)
        if go_on:
            plan.note(where, f"on error '{_ONERROR[step.onerror]}': the SQL runs through "
                             "psql (which must be installed where the job runs), so that a "
                             "failure can let the chain go on")
            lines.append(f"run = {multiline(_go_on(step, _PSQL))}")
            tail = [f"[jobs.{job}.env]", f"PGAGENT_DATABASE = {basic(url)}",
                    f"PGAGENT_SQL = {multiline(code)}"]
        else:
            lines.append(f"sql = {multiline(code)}")
            lines.append(f"database = {basic(url)}")
    else:
        shell, body = _batch(code)
        lines.append(f"run = {multiline(_go_on(step, body) if go_on else body)}")
        if shell:
            lines.append(f"shell = {basic(shell)}")
    if not step.enabled:
        lines.append("enabled = false   # disabled in pgAgent: skipped, the chain goes on")
    return lines + tail


_ONERROR = {"f": "fail", "s": "success", "i": "ignore"}
_PSQL = 'psql -X -q -v ON_ERROR_STOP=1 -d "$PGAGENT_DATABASE" -c "$PGAGENT_SQL"'


def _go_on(step: Step, body: str) -> str:
    """The script in a subshell whose failure is reported and does not stop the chain."""
    word = "ignored" if step.onerror == "i" else "counted as success"
    return (f"(\n{body}\n)\nstatus=$?\nif [ \"$status\" -ne 0 ]; then\n"
            f"  echo \"pgAgent on-error: the step failed (exit $status), {word}; "
            f"the chain goes on\" >&2\nfi\nexit 0")


def _batch(code: str) -> tuple[str | None, str]:
    """(shell, script): pgAgent runs a batch step as a file, so a `#!` line picks its
    interpreter; a POSIX shell without arguments becomes `shell`, anything else runs the
    script from a temporary file as pgAgent does."""
    first = code.split("\n", 1)[0]
    if not first.startswith("#!"):
        return None, code
    interp = first[2:].strip().split()
    if len(interp) == 1 and os.path.basename(interp[0]) in _POSIX_SHELLS:
        return interp[0], code
    delim = "JAZ_PGAGENT_STEP"
    while delim in code:
        delim += "_"
    body = (f"step=$(mktemp) || exit 1\ntrap 'rm -f \"$step\"' EXIT\n"
            f"cat > \"$step\" <<'{delim}'\n{code}{'' if code.endswith(chr(10)) else chr(10)}"
            f"{delim}\nchmod 700 \"$step\"\n\"$step\"")
    return None, body


def _database(plan: Plan, step: Step, info: dict[str, Any], where: str) -> str:
    """The step's database as a URL without a password."""
    if step.connstr.strip():
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = {k: str(v) for k, v in conninfo_to_dict(step.connstr).items()}
        except Exception:   # psycopg's ProgrammingError: a connection string it cannot read
            plan.note(where, "its connection string cannot be read; the step's database "
                             "is the one pgAgent's own connection uses")
            params = {}
        if params.pop("password", None) is not None:
            plan.note(where, "its connection string holds a password, which is not written: "
                             "put it in ~/.pgpass of the user the jobs run as")
        host = params.pop("host", info["host"]) or "localhost"
        port = params.pop("port", str(info["port"]))
        user = params.pop("user", info["user"])
        dbname = params.pop("dbname", step.dbname or "postgres")
    else:
        params = {}
        host, port, user, dbname = info["host"], str(info["port"]), info["user"], step.dbname
    netloc = (f"{urlquote(user, safe='')}@" if user else "") + urlquote(host or "", safe="") \
        + (f":{port}" if port else "")
    query = "&".join(f"{urlquote(k, safe='')}={urlquote(v, safe='')}"
                     for k, v in params.items())
    return f"postgresql://{netloc}/{urlquote(dbname, safe='')}" + (f"?{query}" if query else "")
