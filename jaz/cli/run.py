"""`jaz run`: run a jobnet now, in this process, with live progress.

Two faces: the typer command that `register` adds (help, completion, usage errors),
and `parse_argv`, a hand parser for the common case that `jaz.cli.app.main` tries
first so that `jaz run` does not pay ~50 ms for importing typer. Both call `run_now`.
Nothing here imports typer at module level, and annotations are evaluated eagerly
(no `from __future__ import annotations`) because the typer command is defined
inside `register`, after typer is imported.
"""

import gc
import os
import signal
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

from jaz.cli.helpers import make_service, open_store, parse_params
from jaz.errors import JobnetInvalid, UsageError

if TYPE_CHECKING:
    import typer

    from jaz.engine.model import Jobnet
    from jaz.engine.records import JobRecord, RunRecord
    from jaz.engine.runner import Runner
    from jaz.engine.service import Service
    from jaz.hosts.config import Host

PARALLEL = (1, 10000)  # the range --parallel accepts

# Every option of `jaz run` as `parse_argv` knows it: option -> (parameter, kind).
# tests/test_fastpath.py holds this table against the typer command, so an option
# added there and forgotten here fails the tests (at run time it would only make the
# hand parser give up and leave the command line to typer).
OPTIONS: dict[str, tuple[str, str]] = {
    "-p": ("param", "list"), "--param": ("param", "list"),
    "--parallel": ("parallel", "int"),
    "--dry-run": ("dry_run", "flag"),
    "--json": ("json_", "flag"),
    "--db": ("db", "file"),
    "--resume": ("resume", "int"),
    "--skip": ("skip", "list"),
    "--release": ("release", "list"),
    "--hosts": ("hosts", "file"),
}


def register(app: "typer.Typer") -> None:
    import typer

    from jaz.cli.common import DbOption, JsonOption

    def run(
        file: Annotated[Path | None, typer.Argument(help="The jobnet TOML file.",
                                                     show_default=False)] = None,
        param: Annotated[list[str] | None, typer.Option(
            "-p", "--param", help="Set a parameter: -p NAME=VALUE (repeatable).")] = None,
        parallel: Annotated[int, typer.Option(
            "--parallel", min=PARALLEL[0], max=PARALLEL[1],
            help="How many jobs may run at once.")] = 16,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Print the plan (order, parallel groups, hosts, commands); "
                              "run nothing.")] = False,
        json_: JsonOption = False,
        db: DbOption = None,
        resume: Annotated[int | None, typer.Option(
            "--resume", metavar="RUN",
            help="Continue a halted, stopped or interrupted run.")] = None,
        skip: Annotated[list[str] | None, typer.Option(
            "--skip", metavar="JOB", help="With --resume: skip this job (the flow passes on).")]
        = None,
        release: Annotated[list[str] | None, typer.Option(
            "--release", metavar="JOB", help="With --resume: release this held job.")] = None,
        hosts: Annotated[Path | None, typer.Option(
            "--hosts", metavar="FILE", dir_okay=False,
            help="The hosts file (agent and SSH hosts for `host = ...`); default "
                 "$JAZ_HOME/hosts.toml.")] = None,
    ) -> None:
        """Run a jobnet now, in-process, with live progress.

        Exit 0 when it succeeds, 1 when it fails, halts in error or is stopped (it stays
        resumable: --resume RUN)."""
        raise typer.Exit(run_now(file=file, param=param or [], parallel=parallel,
                                 dry_run=dry_run, json_=json_, db=db, resume=resume,
                                 skip=skip or [], release=release or [], hosts=hosts))

    app.command("run")(run)


def parse_argv(argv: Sequence[str]) -> dict[str, Any] | None:
    """`run FILE [OPTIONS]` parsed by hand into `run_now`'s arguments, or None.

    None means "let typer do it": anything but `run`, help, `--`, an unknown or
    abbreviated option, a missing, empty or dash-led value, a number typer would
    refuse or read differently, a second file, a path typer's checks would refuse.
    So whatever this returns, typer would have made the same of it, and every usage
    error is still typer's.
    """
    if not argv or argv[0] != "run":
        return None
    args: dict[str, Any] = {"file": None, "param": [], "parallel": 16, "dry_run": False,
                            "json_": False, "db": None, "resume": None, "skip": [],
                            "release": [], "hosts": None}
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-"):
            if args["file"] is not None or not _path_ok(arg, dir_okay=True):
                return None
            args["file"] = Path(arg)
            continue
        if arg.startswith("--"):
            option, eq, value = arg.partition("=")
            attached = bool(eq)
        else:  # -pNAME=VALUE, as click reads a short option with its value attached
            option, value = arg[:2], arg[2:]
            attached = bool(value)
        if option not in OPTIONS:
            return None
        name, kind = OPTIONS[option]
        if kind == "flag":
            if attached:
                return None
            args[name] = True
            continue
        if not attached:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        if kind == "list":
            args[name].append(value)
        elif kind == "int":
            if not (value.isascii() and value.isdigit()):
                return None
            number = int(value)
            if name == "parallel" and not PARALLEL[0] <= number <= PARALLEL[1]:
                return None
            args[name] = number
        elif kind == "file" and _path_ok(value, dir_okay=False):
            args[name] = Path(value)
        else:
            return None
    return args


def _path_ok(value: str, *, dir_okay: bool) -> bool:
    """What typer's path check lets through unchanged (it does not require existence)."""
    if not value:
        return False
    try:
        st = os.stat(value)
    except OSError:
        return True
    if stat.S_ISDIR(st.st_mode) and not dir_okay:
        return False
    return os.access(value, os.R_OK)


def run_now(*, file: Path | None, param: list[str], parallel: int, dry_run: bool,
            json_: bool, db: Path | None, resume: int | None, skip: list[str],
            release: list[str], hosts: Path | None = None) -> int:
    """Run a jobnet now (or resume a run) with live progress; the exit code: 0 when it
    succeeds, 1 when it fails, halts in error or is stopped."""
    from jaz.cli.progress import Progress
    from jaz.engine.loader import load_file, local_problems

    if resume is None and file is None:
        raise UsageError("give a jobnet file to run, like `jaz run examples/nightly-etl.toml`, "
                         "or --resume RUN")
    if resume is not None and (file is not None or param or dry_run):
        raise UsageError("--resume RUN takes no file, -p or --dry-run: the run keeps the "
                         "jobnet version and params it started with")
    if resume is None and (skip or release):
        raise UsageError("--skip and --release go with --resume RUN")

    params = parse_params(param)   # a bad -p is reported whatever the file holds
    known = _hosts(hosts)
    jobnet: Jobnet | None = None
    if file is not None:
        jobnet = load_file(file)
        problems = local_problems(jobnet, hosts={
            n: h.labels if h.agent or h.jaz_agent or h.ssh else None for n, h in known.items()})
        if problems:
            raise JobnetInvalid(problems)
        if dry_run:
            _plan(jobnet, params)
            return 0

    progress = Progress(quiet=json_)
    store = open_store(db)
    remote = None
    if known:
        from jaz.hosts.executor import AgentHosts, owner_of

        remote = AgentHosts(known, owner_of(str(getattr(store, "path", "jaz-run"))))
    service = make_service(store, parallel=parallel, listener=progress, remote=remote)
    runners = []

    signals: list[str] = []

    def on_runner(runner: "Runner") -> None:
        runners.append(runner)
        progress.seed(runner.machine.run, list(runner.machine.jobs.values()))
        # what is loaded lives as long as the run: out of the collector's passes, which
        # would otherwise walk it again and again as the jobs' records come and go
        gc.freeze()
        gc.enable()
        for who in signals:  # a Ctrl-C that came before the run was under way
            runner.stop(who)

    def on_signal(signum: int, frame: object) -> None:
        who = "operator (Ctrl-C)" if signum == signal.SIGINT else "operator (SIGTERM)"
        signals.append(who)
        for r in runners:
            r.stop(who)

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        with progress:
            if resume is not None:
                service.run(resume)  # not found: say so before locking anything
                claim = _claim(service, resume)
                record = service.resume(resume, skip=skip, release=release,
                                        on_runner=on_runner)
            else:
                assert jobnet is not None
                run_id = service.create(jobnet, params=params)
                claim = _claim(service, run_id)
                record = service.execute(run_id, jobnet, on_runner=on_runner)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        if remote is not None:
            remote.close()
    jobs = service.jobs(record.id)
    if json_:
        from jaz.cli.output import print_json
        from jaz.engine.service import run_view

        print_json(run_view(record, jobs))
    else:
        summary(record, jobs)
    store.close()
    claim.close()
    return 0 if record.status == "succeeded" else 1


def _hosts(path: Path | None) -> "dict[str, Host]":
    """The hosts file's hosts: only read when there is one (`--hosts`, or the default
    $JAZ_HOME/hosts.toml exists), so a plain `jaz run` pays nothing for it."""
    from jaz.paths import jaz_home

    if path is None and not (jaz_home() / "hosts.toml").exists():
        return {}
    from jaz.hosts.config import load_hosts

    return load_hosts(path)


def _claim(service: "Service", run_id: int) -> IO[bytes]:
    """Lock the run for this process while it drives it, so that `--resume` from a second
    shell cannot kill the jobs of a run that is still alive (it would take a crashed run's
    pids for stale ones). The kernel drops the lock when this process dies, kill -9 too."""
    import fcntl

    from jaz.errors import StateError

    folder = service.ctx.settings.log_dir / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / ".lock").open("ab")  # not inherited by jobs (O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StateError(f"run {run_id} is being run by another jaz process right now",
                         hint="wait for it to end, or stop that process (Ctrl-C) first") \
            from None
    return lock


def summary(run: "RunRecord", jobs: "list[JobRecord]") -> None:
    from jaz.cli.output import esc as escape
    from jaz.cli.output import print_table, say, state
    from jaz.engine.durations import format_duration

    interesting = jobs if len(jobs) <= 40 else [j for j in jobs if j.status != "succeeded"]
    rows = []
    for j in interesting:
        dur = format_duration((j.ended_at - j.started_at).total_seconds()) \
            if j.started_at and j.ended_at else ""
        note = j.message
        if j.timed_out:
            note = ("timed out; " + note) if note else "timed out"
        rows.append([j.name, str(j.status), "" if j.exit_code is None else str(j.exit_code),
                     str(j.attempts) if j.attempts else "", dur, note])
    print_table(["job", "state", "exit", "try", "time", "note"], rows, state_col=1,
                wrap=["note"])
    if len(interesting) < len(jobs):
        say(f"… and {len(jobs) - len(interesting)} more succeeded jobs")
    took = ""
    if run.started_at and run.ended_at:
        took = f" in {format_duration((run.ended_at - run.started_at).total_seconds())}"
    message = f": {escape(run.message)}" if run.message and run.status != "succeeded" else ""
    say(f"run {run.id} ([bold]{escape(run.jobnet)}[/]) {state(str(run.status))}{took}{message}")
    if run.warning:
        say(f"[yellow]warning:[/] {escape(run.warning)}")
    if run.status in ("error", "stopped", "failed"):
        failed = [j.name for j in jobs if j.status in ("failed", "stopped")]
        held = [j.name for j in jobs if j.status == "held"]
        hint = f"jaz run --resume {run.id}"
        if held:
            hint += "".join(f" --release {h}" for h in held)
        say(f"resume with: [bold]{hint}[/]"
            + (f"  (or add --skip {failed[0]} to pass over it)" if failed else ""))
        if failed:
            say(f"logs: jaz logs {run.id} {failed[0]} --local")


def _plan(jobnet: "Jobnet", params: dict[str, str]) -> None:
    from rich.table import Table

    from jaz.cli.output import out

    depth: dict[str, int] = {}
    for name in jobnet.order():
        needs = jobnet.jobs[name].needs
        depth[name] = 1 + max((depth[n] for n in needs), default=0)
    console = out()
    console.print(f"[bold]{jobnet.name}[/]: {len(jobnet.jobs)} jobs, "
                  f"on_failure = {jobnet.on_failure}, nothing will run (--dry-run)")
    merged = {**jobnet.params, **params}
    if merged:
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in merged.items()),
                      markup=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("step", "job", "host", "needs", "action"):
        table.add_column(col, overflow="fold")
    for level in sorted(set(depth.values())):
        names = [n for n in jobnet.order() if depth[n] == level]
        for i, name in enumerate(names):
            job = jobnet.jobs[name]
            step = (f"{level}" + (" ∥" if len(names) > 1 else "")) if i == 0 else ""
            notes = []
            if job.if_:
                notes.append(f"if {job.if_}")
            if not job.enabled:
                notes.append("disabled: skipped")
            if job.hold:
                notes.append("starts held")
            action = _describe(job)
            if notes:
                action += "  [" + "; ".join(notes) + "]"
            table.add_row(step, name, ", ".join(job.hosts) or job.host,
                          ", ".join(job.needs), action)
    console.print(table, markup=False)
    console.print("∥ = these jobs can run in parallel", style="dim")


def _describe(job: object) -> str:
    from jaz.engine.model import Job

    assert isinstance(job, Job)
    a = job.action
    text = {
        "run": lambda: f"run: {getattr(a, 'script', '')}",
        "sql": lambda: f"sql on {job.database}: {getattr(a, 'statements', '')}",
        "sleep": lambda: f"sleep {getattr(a, 'seconds', 0):g}s",
        "jobnet": lambda: f"jobnet {getattr(a, 'name', '')}",
        "set": lambda: "set " + ", ".join(f"{k}={v}" for k, v in getattr(a, 'values', {}).items()),
    }.get(job.kind, lambda: f"{job.kind}: {a}")()
    return " ".join(text.split()) if len(text) < 200 else " ".join(text.split())[:197] + "…"
