"""The commands that script `jaz server` through its API (SPEC §3): `jaz start` (JAZ's
jobarg_exec), the operator actions stop/hold/release/skip/unskip/rerun, `jaz jobnets`
and `jaz show`; plus the server backend of `jaz runs`, `jaz status` and `jaz logs`
(jaz/cli/query.py sends them here when a server is named or running).

Waiting (`--wait`, `logs -f`) polls the API: a few small requests a second per waiting
client costs the server less than holding one of its threads per client on the
event stream.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jaz.cli.common import JsonOption, ServerOption, TokenOption, parse_params
from jaz.cli.helpers import quoted
from jaz.engine.when import parse_at
from jaz.errors import UsageError

if TYPE_CHECKING:
    from jaz.client import Client

POLL_FIRST, POLL_MAX = 0.05, 0.5     # seconds between looks at a run, growing


def register(app: typer.Typer) -> None:
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("hold")(hold)
    app.command("release")(release)
    app.command("skip")(skip)
    app.command("unskip")(unskip)
    app.command("rerun")(rerun)
    app.command("resume")(resume)
    app.command("retime")(retime)
    app.command("jobnets")(jobnets)
    app.command("show")(show)


def connect(server: str | None, token: str | None) -> Client:
    from jaz.client import Client

    return Client.find(server, token)


# ------------------------------------------------------------------ helpers


def env_params(names: list[str]) -> dict[str, str]:
    """`-e NAME`: the caller's environment variable NAME as a param (jobarg_exec -e)."""
    params = {}
    for name in names:
        if not name.isidentifier():
            raise UsageError(f"bad -e {quoted(name)}: give the name of an environment "
                             f"variable, like -e DAY")
        if name not in os.environ:
            raise UsageError(f"bad -e {quoted(name)}: the environment variable {name} is not "
                             f"set here; export it, or give -p {name}=VALUE")
        params[name] = os.environ[name]
    return params


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _duration(started: str | None, ended: str | None) -> str:
    from jaz.engine.durations import format_duration

    a, b = _time(started), _time(ended)
    return format_duration((b - a).total_seconds()) if a and b else ""


def poll(client: Client, run_id: int, sleep: Callable[[float], None] = time.sleep
         ) -> Iterator[dict[str, Any]]:
    """The run, again and again, until it ends (exit_code is set: succeeded, failed,
    stopped, or halted in error); the last one yielded is the ended run."""
    delay = POLL_FIRST
    while True:
        view = client.run(run_id)
        yield view
        if view.get("exit_code") is not None:
            return
        sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)


def wait_for_end(client: Client, run_id: int) -> dict[str, Any]:
    *_, last = poll(client, run_id)
    return last


def exit_for(view: dict[str, Any]) -> int:
    """0 when the run succeeded or has not ended, 1 when it failed, stopped or halted."""
    return 0 if view.get("exit_code") in (0, None) else 1


def summary(view: dict[str, Any]) -> None:
    """A run and its jobs for people, from the API's run object."""
    from jaz.cli.output import esc, print_table, say, state, when

    jobs: dict[str, dict[str, Any]] = view.get("jobs") or {}
    rows = []
    for name, j in jobs.items():
        rows.append([name, str(j.get("status")),
                     "" if j.get("exit_code") is None else str(j["exit_code"]),
                     str(j["attempts"]) if j.get("attempts") else "",
                     _duration(j.get("started_at"), j.get("ended_at")), j.get("host") or "",
                     "timed out" if j.get("timed_out") else ""])
    print_table(["job", "state", "exit", "try", "time", "host", "note"], rows, state_col=1,
                wrap=["note"])
    run_id, status = view["run_id"], str(view["status"])
    took = _duration(view.get("started_at"), view.get("ended_at"))
    line = f"run {run_id} ([bold]{esc(view['jobnet'])}[/]) {state(status)}"
    if took:
        line += f" in {took}"
    if status == "scheduled" and view.get("scheduled_at"):
        line += f" for {when(_time(view['scheduled_at']))}"
    if view.get("message") and status != "succeeded":
        line += f": {esc(view['message'])}"
    say(line)
    if view.get("warning"):
        say(f"[yellow]warning:[/] {esc(view['warning'])}")
    failed = [n for n, j in jobs.items() if j.get("status") in ("failed", "stopped")]
    held = [n for n, j in jobs.items() if j.get("status") == "held"]
    if status == "held":
        say(f"release it with: [bold]jaz release {run_id}[/]")
    if status in ("running", "error") and held:
        say(f"held: {esc(', '.join(held))}; release with: "
            f"[bold]jaz release {run_id} {esc(held[0])}[/]")
    if status == "error" and failed:
        say(f"go on with: [bold]jaz rerun {run_id} {esc(failed[0])}[/] or "
            f"[bold]jaz skip {run_id} {esc(failed[0])}[/] (or [bold]jaz stop {run_id}[/]); "
            f"logs: jaz logs {run_id} {esc(failed[0])}")


def _note(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# ------------------------------------------------------------------ start


def start(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The jobnet, as `jaz jobnets` "
                                                             "lists it.")],
    param: Annotated[list[str] | None, typer.Option(
        "-p", "--param", help="Set a parameter: -p NAME=VALUE (repeatable).")] = None,
    env: Annotated[list[str] | None, typer.Option(
        "-e", "--env", metavar="ENVVAR",
        help="Pass this environment variable of yours as a parameter of the same name "
             "(repeatable; -p wins over it).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME",
        help="Start later: HH:MM (the next one), an ISO date/time, or +DURATION like +10m. "
             "The run is `scheduled` until then.")] = None,
    hold_: Annotated[bool, typer.Option(
        "--hold", help="Create the run held: it starts when released (jaz release RUN).")]
    = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the run to end; exit 0 when it succeeded, 1 when it "
                       "failed, was stopped or halted in error.")] = False,
    json_: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Start a run of a jobnet on the server (jobarg_exec) and print its run id."""
    from jaz.cli.output import print_json

    params = {**env_params(env or []), **parse_params(param or [])}
    when_ = parse_at(at).isoformat() if at else None
    with connect(server, token) as client:
        view = client.start(name, params=params, at=when_, hold=hold_)
        run_id = view["run_id"]
        if not wait:
            if json_:
                print_json(view)
            else:
                print(run_id, flush=True)
                if view["status"] == "held":
                    _note(f"run {run_id} is held: start it with `jaz release {run_id}`")
                elif view["status"] == "scheduled" and view.get("scheduled_at"):
                    due = datetime.fromisoformat(view["scheduled_at"]).astimezone()
                    _note(f"run {run_id} is scheduled for {due:%Y-%m-%d %H:%M:%S %z}")
            return
        if not json_:
            print(run_id, flush=True)
        view = wait_for_end(client, run_id)
    if json_:
        print_json(view)
    else:
        summary(view)
    raise typer.Exit(exit_for(view))


# ------------------------------------------------------------------ operator actions

RunArg = Annotated[int, typer.Argument(metavar="RUN", help="The run id.")]
JobArg = Annotated[str, typer.Argument(metavar="JOB", help="The job's name.")]
MaybeJobArg = Annotated[str | None, typer.Argument(
    metavar="[JOB]", help="A job of the run; without one, the run itself.",
    show_default=False)]


def _act(action: str, run_id: int, job: str | None, *, json_: bool, server: str | None,
         token: str | None, downstream: bool = False) -> None:
    from jaz.cli.output import esc, print_json, say, state

    with connect(server, token) as client:
        view = client.act(action, run_id, job, downstream=downstream)
    if json_:
        print_json(view)
        return
    line = f"run {run_id} ([bold]{esc(view['jobnet'])}[/]) {state(str(view['status']))}"
    if job is not None:
        j = (view.get("jobs") or {}).get(job, {})
        line = f"job [bold]{esc(job)}[/] {state(str(j.get('status', '?')))}; " + line
    say(line)


def stop(run_id: RunArg, job: MaybeJobArg = None, json_: JsonOption = False,
         server: ServerOption = None, token: TokenOption = None) -> None:
    """Stop a run (every running job is killed, or runs its stop_command), or one job."""
    _act("stop", run_id, job, json_=json_, server=server, token=token)


def hold(run_id: RunArg, job: MaybeJobArg = None, json_: JsonOption = False,
         server: ServerOption = None, token: TokenOption = None) -> None:
    """Hold a job that has not started yet, or a scheduled run's start."""
    _act("hold", run_id, job, json_=json_, server=server, token=token)


def release(run_id: RunArg, job: MaybeJobArg = None, json_: JsonOption = False,
            server: ServerOption = None, token: TokenOption = None) -> None:
    """Release a held job, or a held run (it starts, or waits for its scheduled time)."""
    _act("release", run_id, job, json_=json_, server=server, token=token)


def skip(run_id: RunArg, job: MaybeJobArg = None, json_: JsonOption = False,
         server: ServerOption = None, token: TokenOption = None) -> None:
    """Skip a job (the flow passes on as if it had succeeded), or a scheduled or held run
    (it does not start; recorded as skipped)."""
    _act("skip", run_id, job, json_=json_, server=server, token=token)


def unskip(run_id: RunArg, job: JobArg, json_: JsonOption = False,
           server: ServerOption = None, token: TokenOption = None) -> None:
    """Undo a skip of a job that has not been passed over yet."""
    _act("unskip", run_id, job, json_=json_, server=server, token=token)


def rerun(run_id: RunArg, job: MaybeJobArg = None,
          downstream: Annotated[bool, typer.Option(
              "--downstream", help="Rerun everything after the job too.")] = False,
          json_: JsonOption = False, server: ServerOption = None,
          token: TokenOption = None) -> None:
    """Run a job of a run again (a failed one, usually): the run goes on from there.
    Without a job: start a new run of the jobnet with the same params, and print its id."""
    if job is not None:
        _act("rerun", run_id, job, json_=json_, server=server, token=token,
             downstream=downstream)
        return
    if downstream:
        raise UsageError("--downstream goes with a JOB: jaz rerun RUN JOB --downstream")
    from jaz.cli.output import print_json

    with connect(server, token) as client:
        view = client.act("rerun", run_id)
    if json_:
        print_json(view)
    else:
        print(view["run_id"], flush=True)
        _note(f"run {view['run_id']} reruns run {run_id} with the same params")


def resume(run_id: RunArg, json_: JsonOption = False, server: ServerOption = None,
           token: TokenOption = None) -> None:
    """Go on with a run that failed, was stopped or halted in error (rerun from
    failure): its failed and stopped jobs run again, the finished ones do not."""
    _act("resume", run_id, None, json_=json_, server=server, token=token)


def retime(run_id: RunArg,
           at: Annotated[str, typer.Argument(
               metavar="TIME", help="HH:MM (the next one), an ISO date/time, or +DURATION "
                                    "like +10m.")],
           json_: JsonOption = False, server: ServerOption = None,
           token: TokenOption = None) -> None:
    """Give a scheduled or held run another start time (it then starts at that time
    like `jaz start --at`: no overlap or deadline policy applies)."""
    from jaz.cli.output import esc, print_json, say

    when_ = parse_at(at, what="TIME").isoformat()   # a bad TIME before any connection
    with connect(server, token) as client:
        view = client.retime(run_id, when_)
    if json_:
        print_json(view)
        return
    due = datetime.fromisoformat(view["scheduled_at"]).astimezone()
    say(f"run {run_id} ([bold]{esc(view['jobnet'])}[/]) starts at "
        f"{due:%Y-%m-%d %H:%M:%S %z}")


# ------------------------------------------------------------------ definitions


def jobnets(json_: JsonOption = False, server: ServerOption = None,
            token: TokenOption = None) -> None:
    """List the server's jobnets: schedule, next fire, last result, problems.

    An invalid jobnet shows its first problem."""
    from jaz.cli.output import print_json, print_table, say, when

    with connect(server, token) as client:
        nets = client.jobnets()
    if json_:
        print_json(nets)
        return
    if not nets:
        say("no jobnets (the server reads the folder `jobnets` of its config)")
        return
    rows = []
    for n in nets:
        last = n.get("last_run")
        last_text = f"{last['status']} (run {last['run_id']})" if last else ""
        problems = n.get("problems") or []
        note = ""
        if problems:
            p = problems[0]
            note = (f"line {p['line']}: " if p.get("line") else "") + str(p.get("message"))
            if len(problems) > 1:
                note += f" (+{len(problems) - 1} more)"
            if n.get("in_force"):
                note += " [the last valid version is in force]"
        elif n.get("description"):
            note = n["description"]
        nxt = n.get("next") or []
        rows.append([n["name"], "yes" if n.get("valid") else "INVALID",
                     "; ".join(n.get("schedules") or []) or "-",
                     when(_time(nxt[0])) if nxt else "-", last_text, note])
    print_table(["jobnet", "valid", "schedule", "next", "last", "note"], rows,
                wrap=["note", "schedule"])


def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The jobnet.")],
    json_: JsonOption = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Show a jobnet: description, schedules, next fires, jobs, problems and its TOML."""
    from jaz.cli.output import esc, print_json, print_table, say, state, when

    with connect(server, token) as client:
        net = client.jobnet(name)
    if json_:
        print_json(net)
        return
    say(f"[bold]{esc(net['name'])}[/]  {esc(net.get('path') or '')}")
    if net.get("description"):
        say(esc(net["description"]))
    if not net.get("valid"):
        say("[red]INVALID[/]" + (": the last valid version is in force"
                                 if net.get("in_force") else ": nothing of it can run"))
    for text in net.get("problems") and [_problem_text(p) for p in net["problems"]] or []:
        say(f"  [red]✘[/] {esc(text)}")
    say("schedule: " + esc("; ".join(net.get("schedules") or []) or "none (start it by hand)"))
    if net.get("next"):
        say("next: " + ", ".join(when(_time(t)) for t in net["next"]))
    last = net.get("last_run")
    if last:
        say(f"last run: {last['run_id']} {state(str(last['status']))} "
            f"{when(_time(last.get('started_at') or last.get('created_at')))}")
    jobs = net.get("jobs") or {}
    if jobs:
        say("")
        print_table(["job", "kind", "needs", "host", "description"],
                    [[n, j.get("kind") or "", ", ".join(j.get("needs") or []),
                      j.get("host") or "", j.get("description") or ""]
                     for n, j in jobs.items()], wrap=["description"])
    if net.get("text"):
        say("")
        sys.stdout.write(net["text"] if net["text"].endswith("\n") else net["text"] + "\n")
        sys.stdout.flush()


def _problem_text(p: dict[str, Any]) -> str:
    from jaz.client import _problem

    return str(_problem(p))


# ------------------------------------------------------------------ runs, status, logs


def runs_remote(client: Client, *, jobnet: str | None, states: list[str],
                since: datetime | None, sort: str, limit: int, json_: bool) -> None:
    from jaz.cli.output import print_json, print_table, say, when

    found = client.runs(jobnet=jobnet, status=states or None,
                        since=since.isoformat() if since else None, sort=sort, limit=limit)
    if json_:
        print_json(found)
        return
    if not found:
        say("no runs")
        return
    rows = []
    for r in found:
        start_ = r.get("started_at") or r.get("scheduled_at")
        rows.append([str(r["run_id"]), r["jobnet"], str(r["status"]), r.get("trigger") or "",
                     when(_time(start_)), _duration(r.get("started_at"), r.get("ended_at")),
                     (r.get("message") or "") if r["status"] != "succeeded" else ""])
    print_table(["run", "jobnet", "state", "trigger", "start", "time", "note"], rows,
                state_col=2, wrap=["note"])


def status_remote(client: Client, run_id: int, *, wait: bool, json_: bool) -> int:
    from jaz.cli.output import print_json

    view = wait_for_end(client, run_id) if wait else client.run(run_id)
    if json_:
        print_json(view)
    else:
        summary(view)
    return exit_for(view)


def logs_remote(client: Client, run_id: int, job: str | None, *, follow: bool,
                sleep: Callable[[float], None] = time.sleep) -> None:
    """Print the logs of the jobs' latest attempts; with `follow`, keep polling each
    started job's streams from where the last read ended until the run ends."""
    chunks = client.logs(run_id, job)
    multi = len({c["job"] for c in chunks}) > 1
    if follow:    # headers from the start when more jobs may write later
        multi = multi or job is None and len(client.run(run_id).get("jobs") or {}) > 1
    # (job, stream) -> (attempt, bytes read)
    read: dict[tuple[str, str], tuple[str, int]] = {}
    shown: tuple[str, str] | None = None       # whose output was printed last
    for c in chunks:
        read[(c["job"], c["stream"])] = (c["attempt"], c["next_offset"])
        if not c["text"]:
            continue
        if multi or c["stream"] == "stderr":
            sys.stdout.write(f"==> {c['job']} (attempt {c['attempt']}) {c['stream']} <==\n")
        shown = (c["job"], c["stream"])
        if follow:   # the rest of a line comes with the next read
            sys.stdout.write(c["text"])
        else:
            sys.stdout.write(c["text"] if c["text"].endswith("\n") else c["text"] + "\n")
    sys.stdout.flush()
    if not follow:
        return
    # job -> (attempts, started_at) of the start whose end has been read; a rerun starts
    # the job again (a new started_at), so it is followed again
    done: dict[str, tuple[Any, Any]] = {}
    for view in poll(client, run_id, sleep):
        ended = view.get("exit_code") is not None
        for name, j in (view.get("jobs") or {}).items():
            if job is not None and name != job or not j.get("attempts"):
                continue
            start_ = (j["attempts"], j.get("started_at"))
            if done.get(name) == start_ and not ended:
                continue
            finished = j.get("status") not in ("running", "ready", "pending", "held")
            for stream in ("stdout", "stderr"):
                shown = _read_more(client, run_id, name, stream, read, shown, multi=multi)
            if finished:
                done[name] = start_
    sys.stdout.flush()


def _read_more(client: Client, run_id: int, job: str, stream: str,
               read: dict[tuple[str, str], tuple[str, int]], shown: tuple[str, str] | None,
               *, multi: bool) -> tuple[str, str] | None:
    attempt, offset = read.get((job, stream), ("", 0))
    got = client.logs(run_id, job, stream=stream, offset=offset)
    if got and got[0]["attempt"] != attempt and offset:   # a new attempt: from its start
        got = client.logs(run_id, job, stream=stream)
    for c in got:
        read[(job, stream)] = (c["attempt"], c["next_offset"])
        if c["text"]:
            if shown != (job, stream) and (multi or stream == "stderr" or shown is not None):
                sys.stdout.write(f"==> {job} (attempt {c['attempt']}) {stream} <==\n")
                shown = (job, stream)
            sys.stdout.write(c["text"])
            sys.stdout.flush()
    return shown
