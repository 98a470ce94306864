"""Jobnet TOML → frozen `Jobnet`, collecting every problem in the file (SPEC §1, §1.5).

Nothing is half-loaded: either a whole `Jobnet` comes back or `JobnetInvalid`
with all the problems found, each naming the file, job and field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaz.engine.checks import Collector as _Collector
from jaz.engine.checks import check_bool as _bool
from jaz.engine.checks import check_duration as _duration
from jaz.engine.checks import check_enum as _enum
from jaz.engine.checks import check_str as _str
from jaz.engine.checks import check_table as _table
from jaz.engine.checks import check_unknown as _unknown
from jaz.engine.checks import close_match as _close
from jaz.engine.checks import did_you_mean as _did_you_mean
from jaz.engine.checks import got as _got
from jaz.engine.checks import parse_toml
from jaz.engine.checks import quote as _quote
from jaz.engine.checks import scalar_str as _scalar_str
from jaz.engine.durations import DurationError, parse_stop_codes
from jaz.engine.model import (
    ACTION_KEYS,
    COMMON_KEYS,
    Action,
    Job,
    Jobnet,
    JobnetAction,
    OnFailure,
    OnTimeout,
    PluginAction,
    RebootAction,
    ReleaseAction,
    Repeat,
    RunAction,
    Secret,
    SetAction,
    SleepAction,
    SqlAction,
    StartAction,
    TransferAction,
    WaitFileAction,
    WaitUntilAction,
    ZabbixAction,
)
from jaz.errors import ActionError, JobnetInvalid, NotFound, Problem

try:  # the builtin SHA-256: `import hashlib` loads OpenSSL first (~2.5 ms of start-up)
    from _sha256 import sha256
except ImportError:  # Python 3.12 renamed it
    from hashlib import sha256

if TYPE_CHECKING:
    from jaz.engine.schedules import Schedule

TOP_KEYS = {"name", "description", "on_failure", "timeout", "mode", "params", "schedule",
            "defaults", "jobs"}
DEFAULTABLE = COMMON_KEYS - {"needs", "if", "description", "repeat"}
JOB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
JOBNET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def load_file(path: str | Path) -> Jobnet:
    """Read and validate one jobnet file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # editors may add a BOM
    except FileNotFoundError:
        raise NotFound(f"{p}: no such jobnet file",
                       hint="check the path, or run `jaz jobnets` to list known ones") from None
    except (OSError, UnicodeDecodeError) as e:
        raise JobnetInvalid([Problem(file=str(p), message=f"cannot read file: {e}")]) from None
    return load_text(text, path=p)


def load_text(text: str, *, path: Path | None = None, name: str | None = None) -> Jobnet:
    file = str(path) if path is not None else "<jobnet>"
    data = parse_toml(text, file)
    c = _Collector(file, text)
    jobnet = _build(data, c, text=text, path=path, default_name=name)
    if c.problems or jobnet is None:
        raise JobnetInvalid(c.problems)
    return jobnet


# ------------------------------------------------------------------ helpers


def _expr(c: _Collector, source: Any, *, job: str, field: str) -> str | None:
    from jaz.engine import expr

    text = _str(c, source, job=job, field=field)
    if text is None:
        return None
    try:
        expr.parse(text)
    except expr.ExprError as e:
        c.add(f"bad expression {_quote(text)}: {_expr_error(e)}", job=job, field=field,
              column=e.column)
        return None
    return text


def _expr_error(e: Any) -> str:
    """An ExprError for a message: its column is one of the expression, not of the file."""
    message: str = e.message
    return message + (f" (at column {e.column} of the expression)" if e.column else "")


# ------------------------------------------------------------------ build


def _build(data: dict[str, Any], c: _Collector, *, text: str, path: Path | None,
           default_name: str | None) -> Jobnet | None:
    _unknown(c, data, TOP_KEYS, job=None, where="the jobnet")
    name = default_name or (path.stem if path is not None else "jobnet")
    if "name" in data:
        name = _str(c, data["name"], job=None, field="name") or name
    if not JOBNET_NAME.fullmatch(name):
        source = "" if "name" in data else " (from the file name; set name = \"...\" or " \
            "rename the file)"
        c.add(f"bad jobnet name {_quote(name)}{source}: use letters, digits, \"_\", \"-\" "
              f"and \".\", not starting with \"-\" or \".\"", field="name")
    description = _str(c, data.get("description", ""), job=None, field="description",
                       allow_empty=True) or ""
    on_failure = _enum(c, data.get("on_failure", "halt"), ("halt", "stop"), job=None,
                       field="on_failure") or "halt"
    timeout = _duration(c, data["timeout"], job=None, field="timeout") if "timeout" in data \
        else None
    mode = _enum(c, data.get("mode", "graph"), ("graph", "sequence"), job=None,
                 field="mode") or "graph"

    params: dict[str, str] = {}
    for key, value in (_table(c, data.get("params", {}), job=None, field="params") or {}).items():
        s = _scalar_str(c, value, job=None, field=f"params.{key}")
        if s is not None:
            params[key] = s

    schedules = _schedules(c, data.get("schedule"))

    defaults = _table(c, data.get("defaults", {}), job=None, field="defaults") or {}
    for key in defaults:
        if key not in DEFAULTABLE:
            why = "an action" if key in ACTION_KEYS else (
                "per job" if key in COMMON_KEYS else "unknown")
            c.add(f"key {_quote(key)} cannot be a default ({why}){_did_you_mean(key, DEFAULTABLE)}"
                  f"; defaults take: {', '.join(sorted(DEFAULTABLE))}", field=f"defaults.{key}")

    raw_jobs = _table(c, data.get("jobs", {}), job=None, field="jobs") or {}
    if not raw_jobs:
        c.add("a jobnet needs at least one job: add a [jobs.NAME] table", field="jobs")

    jobs: dict[str, Job] = {}
    declared: dict[str, tuple[str, ...]] = dict.fromkeys(raw_jobs, ())  # every job's needs
    previous: str | None = None
    for job_name, raw in raw_jobs.items():
        if not JOB_NAME.fullmatch(job_name):
            c.add(f"bad job name {_quote(job_name)}: use letters, digits and \"_\", not "
                  f"starting with a digit (it is used in expressions as "
                  f"{_job_name_hint(job_name)}.NAME)", job=job_name)
        if not isinstance(raw, dict):
            c.add(f"expected a table [jobs.{job_name}], got {_got(raw)}", job=job_name)
            continue
        merged = {k: v for k, v in defaults.items() if k in DEFAULTABLE}
        if "env" in defaults and "env" in raw and isinstance(defaults["env"], dict) \
                and isinstance(raw["env"], dict):
            merged["env"] = {**defaults["env"], **raw["env"]}
            raw = {**raw, "env": merged["env"]}
        merged.update(raw)
        needs = merged.get("needs", [])
        if isinstance(needs, str):
            needs = [needs]
        if mode == "sequence" and previous is not None and isinstance(needs, list) \
                and previous not in needs:
            merged["needs"] = needs = [previous, *needs]
        if isinstance(needs, list) and all(isinstance(n, str) for n in needs):
            declared[job_name] = tuple(needs)
        inherited = {k for k in defaults if k in DEFAULTABLE and k not in raw}
        start = len(c.problems)
        job = _job(c, job_name, merged)
        _blame_defaults(c, start, inherited)
        if job is not None:
            jobs[job_name] = job
        previous = job_name

    _check_graph(c, jobs, declared)
    if c.problems:
        return None
    return Jobnet(name=name, description=description, on_failure=OnFailure(on_failure),
                  timeout=timeout, mode=mode, params=params, schedules=schedules, jobs=jobs,
                  path=path.resolve() if path is not None else None, text=text,
                  hash=sha256(text.encode()).hexdigest())


def _blame_defaults(c: _Collector, start: int, inherited: set[str]) -> None:
    """A bad value a job inherits is reported once, at defaults.KEY, not once per job."""
    kept = c.problems[:start]
    for p in c.problems[start:]:
        if p.field is not None and p.field.split(".")[0] in inherited:
            p = Problem(file=p.file, message=p.message, field=f"defaults.{p.field}",
                        line=c.line(None, f"defaults.{p.field}"))
            if p in kept:
                continue
        kept.append(p)
    c.problems[:] = kept


def _schedules(c: _Collector, raw: Any) -> tuple[Schedule, ...]:
    if raw is None:
        return ()
    from jaz.engine.schedules import parse_schedules  # only jobnets with schedules pay

    return parse_schedules(c, raw)


def _job(c: _Collector, name: str, raw: dict[str, Any]) -> Job | None:
    before = len(c.problems)
    plugins = _plugin_kinds(c, name, raw)   # and reports the keys that are no kind's
    actions = [k for k in (*ACTION_KEYS, *plugins) if k in raw]
    if not actions:
        from jaz.engine import kinds  # an error's path: the installed kinds are named too

        c.add(f"a job needs exactly one action key, found none: add one of "
              f"{', '.join((*ACTION_KEYS, *kinds.installed().kinds))}", job=name)
    elif len(actions) > 1:
        c.add(f"a job needs exactly one action key, found {len(actions)}: "
              f"{', '.join(actions)}; split it into separate jobs", job=name)
    action = _action(c, name, actions[0], raw[actions[0]], raw) if len(actions) == 1 else None

    needs: tuple[str, ...] = ()
    if "needs" in raw:
        value = raw["needs"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            c.add(f"expected a list of job names like [\"extract\"], got {_got(raw['needs'])}",
                  job=name, field="needs")
        else:
            needs = tuple(dict.fromkeys(value))

    kw: dict[str, Any] = {}
    if "if" in raw:
        kw["if_"] = _expr(c, raw["if"], job=name, field="if")
    for key in ("host", "user", "cwd", "shell", "queue", "stop_command", "database"):
        if key in raw:
            kw[key] = _str(c, raw[key], job=name, field=key)
    if "description" in raw:
        kw["description"] = _str(c, raw["description"], job=name, field="description",
                                 allow_empty=True) or ""
    if "hosts" in raw:
        hosts = raw["hosts"]
        if not isinstance(hosts, list) or not hosts or \
                not all(isinstance(h, str) and h for h in hosts):
            c.add(f"expected a non-empty list of host names like [\"web1\", \"web2\"], got "
                  f"{_got(hosts)}", job=name, field="hosts")
        else:
            kw["hosts"] = tuple(hosts)
    if "env" in raw:
        kw["env"] = _env(c, name, raw["env"])
    for key in ("timeout", "retry_delay"):
        if key in raw:
            kw[key] = _duration(c, raw[key], job=name, field=key)
    if "on_timeout" in raw:
        value = _enum(c, raw["on_timeout"], ("stop", "warn"), job=name, field="on_timeout")
        kw["on_timeout"] = OnTimeout(value) if value else None
    if "fan_out" in raw:
        n = raw["fan_out"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            c.add(f"expected a whole number >= 1 (how many of its hosts run the job at once), "
                  f"got {_quote(n)}", job=name, field="fan_out")
        elif "hosts" not in raw:
            c.add("fan_out goes with hosts = [...] (how many of them run the job at once); "
                  "remove it or add hosts", job=name, field="fan_out")
        else:
            kw["fan_out"] = n
    if "retries" in raw:
        r = raw["retries"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            c.add(f"expected a whole number >= 0, got {_quote(r)}", job=name, field="retries")
        else:
            kw["retries"] = r
    if "repeat" in raw:
        kw["repeat"] = _repeat(c, name, raw["repeat"])
    if "stop_codes" in raw:
        try:
            kw["stop_codes"] = parse_stop_codes(raw["stop_codes"])
        except DurationError as e:
            c.add(str(e), job=name, field="stop_codes")
    for key in ("hold", "enabled"):
        if key in raw:
            kw[key] = _bool(c, raw[key], job=name, field=key)
    if action is not None and action.kind == "sql" and not kw.get("database"):
        c.add("a sql job needs 'database' (sqlite:///path or postgresql://…), "
              "on the job or in [defaults]", job=name, field="database")
    if kw.get("database"):
        _check_database(c, name, kw["database"])

    if len(c.problems) > before or action is None:
        return None
    kw = {k: v for k, v in kw.items() if v is not None}
    return Job(name=name, action=action, needs=needs, **kw)


def _check_database(c: _Collector, job: str, url: str) -> None:
    if url.startswith("sqlite:///"):
        return
    if url.startswith(("postgresql://", "postgres://")):
        if re.match(r"postgres(?:ql)?://[^/@]*:[^/@]*@", url) or \
                re.search(r"[?&]password=", url):
            c.add("a password in the database URL would leak into history: put it in "
                  "~/.pgpass instead", job=job, field="database")
        return
    c.add(f"unsupported database {_quote(url)}: use \"sqlite:///path\" or "
          f"\"postgresql://user@host/db\"", job=job, field="database")


def _env(c: _Collector, job: str, raw: Any) -> dict[str, str | Secret]:
    table = _table(c, raw, job=job, field="env") or {}
    env: dict[str, str | Secret] = {}
    for key, value in table.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            c.add(f"bad environment variable name {_quote(key)}: use letters, digits and "
                  f"\"_\", not starting with a digit", job=job, field=f"env.{key}")
            continue
        if isinstance(value, dict):
            if set(value) != {"secret"} or not isinstance(value["secret"], str) \
                    or not value["secret"]:
                c.add(f"expected {{ secret = \"name\" }}, got {_quote(value)}", job=job,
                      field=f"env.{key}")
                continue
            env[key] = Secret(name=value["secret"])
        else:
            s = _scalar_str(c, value, job=job, field=f"env.{key}")
            if s is not None:
                env[key] = s
    return env


def _repeat(c: _Collector, job: str, raw: Any) -> Repeat | None:
    table = _table(c, raw, job=job, field="repeat")
    if table is None:
        return None
    _unknown(c, table, {"until", "max", "interval"}, job=job, where="repeat",
             prefix="repeat.")
    until = _expr(c, table["until"], job=job, field="repeat.until") if "until" in table else None
    max_ = table.get("max")
    if max_ is not None and (isinstance(max_, bool) or not isinstance(max_, int) or max_ < 1):
        c.add(f"expected a whole number >= 1, got {_quote(max_)}", job=job, field="repeat.max")
        max_ = None
    if "until" not in table and "max" not in table:
        c.add("repeat needs 'until' (an expression) or 'max' (a count), or both",
              job=job, field="repeat")
    interval = _duration(c, table.get("interval", 0), job=job, field="repeat.interval") or 0.0
    return Repeat(until=until, max=max_, interval=interval)


def _action(c: _Collector, job: str, key: str, value: Any, raw: dict[str, Any]) -> Action | None:
    if key == "run":
        s = _str(c, value, job=job, field="run")
        return RunAction(script=s) if s else None
    if key == "sql":
        s = _str(c, value, job=job, field="sql")
        return SqlAction(statements=s, database=str(raw.get("database", ""))) if s else None
    if key in ("jobnet", "start"):
        s = _str(c, value, job=job, field=key)
        if s is None:
            return None
        return JobnetAction(name=s) if key == "jobnet" else StartAction(name=s)
    if key == "release":
        s = _str(c, value, job=job, field=key)
        if s is not None and "/" not in s and not JOB_NAME.fullmatch(s):
            c.add(f"expected \"job\" or \"jobnet/job\", got {_quote(s)}", job=job, field=key)
            return None
        return ReleaseAction(target=s) if s else None
    if key == "sleep":
        d = _duration(c, value, job=job, field="sleep")
        return SleepAction(seconds=d) if d is not None else None
    if key == "wait_until":
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", str(value)) \
            if isinstance(value, str) else None
        if not m or int(m.group(1)) > 47 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
            c.add(f"expected a time of day \"HH:MM\" or \"HH:MM:SS\" (up to \"47:59\" for the "
                  f"next day), got {_quote(value)}", job=job, field="wait_until")
            return None
        return WaitUntilAction(hour=int(m.group(1)), minute=int(m.group(2)),
                               second=int(m.group(3) or 0))
    if key == "wait_file":
        return _wait_file(c, job, value)
    if key == "transfer":
        return _transfer(c, job, value)
    if key == "set":
        return _set(c, job, value)
    if key == "zabbix":
        return _zabbix(c, job, value)
    if key == "reboot":
        t = _table(c, value, job=job, field="reboot")
        if t is None:
            return None
        _unknown(c, t, {"host", "mode", "wait"}, job=job, where="reboot", prefix="reboot.")
        mode = _enum(c, t.get("mode", "normal"), ("normal", "force"), job=job,
                     field="reboot.mode") or "normal"
        wait = _duration(c, t["wait"], job=job, field="reboot.wait") if "wait" in t else None
        return RebootAction(host=t.get("host"), mode=mode, wait=wait)
    return _plugin_action(c, job, key, value)


def _wait_file(c: _Collector, job: str, value: Any) -> Action | None:
    if isinstance(value, str):
        value = {"path": value}
    t = _table(c, value, job=job, field="wait_file")
    if t is None:
        return None
    _unknown(c, t, {"path", "host", "timeout", "delete", "check", "interval"}, job=job,
             where="wait_file", prefix="wait_file.")
    path = _str(c, t.get("path"), job=job, field="wait_file.path") if "path" in t else None
    if "path" not in t:
        c.add("wait_file needs 'path'", job=job, field="wait_file.path")
    timeout = _duration(c, t["timeout"], job=job, field="wait_file.timeout") \
        if "timeout" in t else None
    interval = _duration(c, t.get("interval", 1), job=job, field="wait_file.interval") or 1.0
    host = _str(c, t["host"], job=job, field="wait_file.host") if "host" in t else None
    flags = {k: _bool(c, t[k], job=job, field=f"wait_file.{k}")
             for k in ("delete", "check") if k in t}
    if path is None:
        return None
    return WaitFileAction(path=path, host=host, timeout=timeout, interval=max(interval, 0.01),
                          **flags)


def _transfer(c: _Collector, job: str, value: Any) -> Action | None:
    t = _table(c, value, job=job, field="transfer")
    if t is None:
        return None
    _unknown(c, t, {"from", "to", "overwrite"}, job=job, where="transfer", prefix="transfer.")
    src = _str(c, t.get("from"), job=job, field="transfer.from") if "from" in t else None
    dst = _str(c, t.get("to"), job=job, field="transfer.to") if "to" in t else None
    for k in ("from", "to"):
        if k not in t:
            c.add(f"transfer needs '{k}' (\"host:/path\" or a local path)", job=job,
                  field=f"transfer.{k}")
    overwrite = _bool(c, t["overwrite"], job=job, field="transfer.overwrite") \
        if "overwrite" in t else False
    if src is None or dst is None:
        return None
    return TransferAction(source=src, dest=dst, overwrite=overwrite)


def _zabbix(c: _Collector, job: str, value: Any) -> Action | None:
    from jaz.engine import expr
    from jaz.engine.zabbix import parse_server

    t = _table(c, value, job=job, field="zabbix")
    if t is None:
        return None
    _unknown(c, t, {"server", "host", "key", "value"}, job=job, where="zabbix",
             prefix="zabbix.")
    missing = [k for k in ("server", "host", "key", "value") if k not in t]
    if missing:
        c.add(f"zabbix needs {', '.join(missing)}", job=job, field="zabbix")
        return None
    server, host, key = (_str(c, t[k], job=job, field=f"zabbix.{k}")
                         for k in ("server", "host", "key"))
    text = _scalar_str(c, t["value"], job=job, field="zabbix.value")
    if server is not None:
        try:
            parse_server(server)
        except ActionError as e:
            c.add(e.message + (f" ({e.hint})" if e.hint else ""), job=job,
                  field="zabbix.server")
            server = None
    if text is not None:
        try:
            refs = expr.parse_template(text).job_references()
        except expr.ExprError as e:
            c.add(f"bad expression in {_quote(text)}: {_expr_error(e)}", job=job,
                  field="zabbix.value", column=e.column)
            return None
        if refs:
            c.add(f"zabbix values see variables, not jobs: write ${{NAME}} for an output "
                  f"of {sorted(refs)[0]!r}, not ${{{sorted(refs)[0]}.NAME}}", job=job,
                  field="zabbix.value")
            return None
    if server is None or host is None or key is None or text is None:
        return None
    return ZabbixAction(server=server, host=host, key=key, value=text)


def _set(c: _Collector, job: str, value: Any) -> Action | None:
    from jaz.engine import expr

    t = _table(c, value, job=job, field="set")
    if t is None:
        return None
    if not t:
        c.add("set needs at least one NAME = \"value\"", job=job, field="set")
    values: dict[str, str] = {}
    for key, v in t.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            c.add(f"bad variable name {_quote(key)}: use letters, digits and \"_\", not "
                  f"starting with a digit", job=job, field=f"set.{key}")
            continue
        s = _scalar_str(c, v, job=job, field=f"set.{key}")
        if s is None:
            continue
        try:
            expr.parse_template(s)
        except expr.ExprError as e:
            c.add(f"bad expression in {_quote(s)}: {_expr_error(e)}", job=job,
                  field=f"set.{key}", column=e.column)
            continue
        values[key] = s
    return SetAction(values=values)


def _check_graph(c: _Collector, jobs: Mapping[str, Job],
                 declared: Mapping[str, tuple[str, ...]]) -> None:
    """`jobs` holds the jobs that built; `declared` every job in the file with its needs, so
    that needs are checked on every job, and a job with its own problems does not also
    make each job that needs it 'unknown'."""
    for name, needs in declared.items():
        for need in dict.fromkeys(needs):
            if need == name:
                c.add("a job cannot need itself", job=name, field="needs")
            elif need not in declared:
                c.add(f"unknown job {_quote(need)} in needs{_known_jobs(need, declared)}",
                      job=name, field="needs")
    graph = {name: tuple(n for n in job.needs if n != name and n in jobs)
             for name, job in jobs.items()}
    cycle = find_cycle(graph)
    if cycle:
        c.add(f"the needs form a cycle: {' -> '.join(cycle)}; remove one of these needs",
              job=cycle[0], field="needs")
        return
    if not any(j.if_ or (j.repeat and j.repeat.until) or isinstance(j.action, SetAction)
               for j in jobs.values()):
        return
    from jaz.engine import expr

    refs: dict[str, list[tuple[str, set[str]]]] = {}
    for name, job in jobs.items():
        found: list[tuple[str, set[str]]] = []
        if job.if_:
            found.append(("if", expr.parse(job.if_).job_references()))
        if job.repeat and job.repeat.until:
            found.append(("repeat.until", expr.parse(job.repeat.until).job_references()
                          - {name}))
        if isinstance(job.action, SetAction):
            for key, template in job.action.values.items():
                found.append((f"set.{key}", expr.parse_template(template).job_references()))
        if any(names for _, names in found):
            refs[name] = found
    if not refs:
        return
    # `complete`: every job upstream was built, so "does not run before" can be judged
    ancestors: dict[str, set[str]] = {}
    complete: dict[str, bool] = {}
    for name in _topo(graph):
        ancestors[name] = set(graph[name])
        complete[name] = all(n in jobs for n in jobs[name].needs)
        for need in graph[name]:
            ancestors[name] |= ancestors[need]
            complete[name] = complete[name] and complete[need]
    for name, found in refs.items():
        for field, names in found:
            for ref in sorted(names):
                if ref not in declared:
                    c.add(f"the expression refers to unknown job {_quote(ref)}"
                          f"{_known_jobs(ref, declared)}", job=name, field=field)
                elif ref not in ancestors[name] and complete[name]:
                    c.add(f"the expression refers to job {_quote(ref)}, which does not run "
                          f"before {_quote(name)}: add it to needs", job=name, field=field)


def _known_jobs(name: str, declared: Mapping[str, object]) -> str:
    """` (did you mean "extract"?)`, else the jobs there are (the first few)."""
    hint = _close(name, set(declared))
    if hint:
        return f" (did you mean {_quote(hint)}?)"
    names = sorted(declared)
    shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
    return f"; the jobs are {shown}" if names else ""


def _job_name_hint(name: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return fixed if JOB_NAME.fullmatch(fixed) else f"_{fixed}"


def _topo(graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Post-order of an acyclic graph; iterative, so a long chain cannot hit the recursion
    limit."""
    done: list[str] = []
    seen: set[str] = set()
    for root in graph:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(graph[root]))]
        while stack:
            node, rest = stack[-1]
            for m in rest:
                if m not in seen:
                    seen.add(m)
                    stack.append((m, iter(graph[m])))
                    break
            else:
                stack.pop()
                done.append(node)
    return done


def find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None (iterative depth-first search)."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for root in graph:
        if color[root] != white:
            continue
        color[root] = grey
        path = [root]
        pending = [iter(graph.get(root, ()))]
        while pending:
            for nxt in pending[-1]:
                state = color.get(nxt)
                if state == grey:
                    return path[path.index(nxt):] + [nxt]
                if state == white:
                    color[nxt] = grey
                    path.append(nxt)
                    pending.append(iter(graph.get(nxt, ())))
                    break
            else:
                color[path.pop()] = black
                pending.pop()
    return None


# ------------------------------------------------------------------ references

Resolver = Callable[[str, Path], Path]


def resolve_jobnet(ref: str, base: Path) -> Path:
    """A jobnet reference: a name looked up next to the referring file, or a relative path."""
    if ref.endswith(".toml"):
        p = (base / ref)
    else:
        p = base / f"{ref}.toml"
    if not p.is_file():
        raise NotFound(f"jobnet {_quote(ref)} not found (looked for {p})",
                       hint="put the file next to the jobnet that uses it, or give a path "
                            "ending in .toml")
    return p


LOCAL_KINDS = {"run", "set", "sleep", "wait_until", "jobnet", "wait_file", "transfer", "sql",
               "zabbix"}


def local_problems(jobnet: Jobnet, *, seen: tuple[Path, ...] = (),
                   hosts: Mapping[str, tuple[str, ...] | None] | None = None) -> list[Problem]:
    """What stops `jaz run` (no server) from running this jobnet.

    `hosts` are the hosts of the hosts file (agent, JAZ agent and SSH hosts alike): the
    labels of each host jobs can run on, None for one they cannot.
    Checked before anything runs, so that a server-only action never fails halfway.
    Sub-jobnets are loaded and checked too (their problems carry their own file).
    """
    hosts = hosts or {}
    file = str(jobnet.path) if jobnet.path else "<jobnet>"
    c = _Collector(file, jobnet.text)
    for name, job in jobnet.jobs.items():
        if isinstance(job.action, RebootAction) and job.action.host not in (None, "local"):
            problem = _host_problem(job.action.host or "", hosts)
            if problem is not None:
                c.add(problem, job=name, field="reboot.host")
        elif job.kind not in LOCAL_KINDS and not _is_plugin(job):
            c.add(f"the {_quote(job.kind)} action needs the server; it is not available in "
                  f"`jaz run` (run this jobnet with `jaz server` / `jaz start`)", job=name,
                  field=job.kind)
        if job.hosts and set(job.hosts) != {"local"}:
            for message in _fan_out_problems(job, hosts):
                c.add(message, job=name, field="hosts")
        elif job.host != "local":
            problem = _host_problem(job.host, hosts)
            if problem is None and job.kind != "run":
                problem = (f"host {_quote(job.host)}: only `run` jobs go to the hosts of the "
                           f"hosts file so far; a {_quote(job.kind)} job runs here (drop its "
                           "host)")
            if problem is not None:
                c.add(problem, job=name, field="host")
        if isinstance(job.action, WaitFileAction) and job.action.host not in (None, "local") \
                and hosts.get(job.action.host or "") is None:
            c.add(f"host {_quote(job.action.host)}: `jaz run` waits for files here or on the "
                  "hosts of the hosts file (docs/agent.md, docs/ssh.md)", job=name,
                  field="wait_file.host")
        if isinstance(job.action, TransferAction):
            for field, where in (("transfer.from", job.action.source),
                                 ("transfer.to", job.action.dest)):
                host, _ = split_host_path(where)
                if host != "local" and hosts.get(host) is None:
                    c.add(f"host {_quote(host)} in {_quote(where)}: `jaz run` copies between "
                          "local paths and the hosts of the hosts file", job=name,
                          field=field)
        if isinstance(job.action, JobnetAction) and jobnet.path is not None:
            try:
                sub = resolve_jobnet(job.action.name, jobnet.directory)
            except NotFound as e:
                c.add(e.message + (f"; {e.hint}" if e.hint else ""), job=name, field="jobnet")
                continue
            if sub.resolve() in seen or sub.resolve() == jobnet.path:
                c.add(f"jobnet {_quote(job.action.name)} includes itself", job=name,
                      field="jobnet")
                continue
            try:
                child = load_file(sub)
            except JobnetInvalid as e:
                c.problems.extend(e.problems)
                continue
            c.problems.extend(local_problems(child, seen=(*seen, jobnet.path),
                                             hosts=hosts))
    return c.problems


def _host_problem(host: str, hosts: Mapping[str, tuple[str, ...] | None]) -> str | None:
    if host not in hosts:
        known = ", ".join(sorted(hosts)) or "none"
        return (f"host {_quote(host)} is not in the hosts file (hosts known: {known}); "
                "define it there as [hosts.NAME] with agent = \"addr:10055\" "
                "(docs/agent.md) or ssh = \"user@addr\" (docs/ssh.md), or use "
                "host = \"local\"")
    if hosts[host] is None:
        return (f"host {_quote(host)} cannot run jobs from `jaz run` (see its kind in the "
                "hosts file)")
    return None


def _fan_out_problems(job: Job, hosts: Mapping[str, tuple[str, ...] | None]) -> list[str]:
    """`hosts = [...]`: hosts of the hosts file and `label:NAME` selectors of them, `run`
    jobs."""
    if job.kind != "run":
        return [f"hosts: only `run` jobs fan out to hosts so far, not a "
                f"{_quote(job.kind)} job"]
    out: list[str] = []
    for item in job.hosts:
        if item == "local":
            out.append("hosts: \"local\" cannot be one of the hosts of a fan-out yet; "
                       "use hosts of the hosts file only")
        elif item.startswith("label:"):
            label = item[len("label:"):]
            if not any(labels is not None and label in labels for labels in hosts.values()):
                out.append(f"hosts: no host in the hosts file has the label "
                           f"{_quote(label)} (labels = [...] in [hosts.NAME])")
        else:
            problem = _host_problem(item, hosts)
            if problem is not None:
                out.append(problem)
    return out


def split_host_path(spec: str) -> tuple[str, str]:
    """"host:/path" → ("host", "/path"); a plain path is on "local"."""
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+):(.+)", spec)
    if m and not re.fullmatch(r"[A-Za-z]", m.group(1)):
        return m.group(1), m.group(2)
    return "local", spec


# ------------------------------------------------------------------ plugin kinds
# Keys no built-in kind has may be the action keys of kinds from other packages (the
# `jaz.kinds` entry points, jaz/engine/kinds.py): looked up only when a job has such a
# key, so that loading a jobnet of built-in kinds never reads the entry points.


def _plugin_kinds(c: _Collector, job: str, raw: dict[str, Any]) -> dict[str, Any]:
    """{key: Kind or None (reported already)} for the keys of `raw` no built-in kind
    knows; empty, and nothing reported, when there are none."""
    known = COMMON_KEYS | set(ACTION_KEYS)
    extra = [k for k in raw if k not in known]
    if not extra:
        return {}
    from jaz.engine import kinds  # the entry points are read here, on first need

    return kinds.claim(c, job, extra, known, has_action=any(k in raw for k in ACTION_KEYS))


def _plugin_action(c: _Collector, job: str, key: str, value: Any) -> Action | None:
    from jaz.engine import kinds

    kind = kinds.installed().kinds.get(key)
    return kinds.build(c, job, kind.kind, value) if kind is not None else None


def _is_plugin(job: Job) -> bool:
    return isinstance(job.action, PluginAction)
