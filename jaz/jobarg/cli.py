"""`jobarg_exec`, `jobarg_get`, `jobarg_release`, `jobarg_joblogput`: JAZ's commands with
JAZ's flags and exit codes, mapped onto the jaz server's HTTP API (jaz.client).

- `-z SERVER -p PORT` name the jaz server (`http://SERVER:PORT`; a `-z` with `://` is
  taken as a whole URL). The port defaults to 10061, JAZ's and jaz's own.
- `-U USER -P PASSWORD`: jaz has no passwords. `-P` is the bearer token of the
  `[users.USER]` entry of the server's config (SPEC §4); `-P -` (or an empty `-P ""`)
  takes the token from `$JAZ_TOKEN`, and `-P @FILE` reads it from FILE, so that it does
  not show in `ps`. The server knows the user by the token; `-U` must name that user
  (a mismatch fails with 255 before anything is done, as JAZ's login would).
- A registry number is a jaz run id.
- Exit codes as JAZ's: 0 on success, 255 on any failure (JAZ's FAIL, -1); `jobarg_get`
  exits with the run's state (STATES below).
- Output as JAZ's (its sources: src/jobarg_exec, src/jobarg_get, src/jobarg_joblogput,
  src/jobarg_server/jatrapper/jatrapjoblogput.c and src/libs/zbxlog/log.c): messages,
  the registry number included, go to stderr as `PROG [PID]: ...` (`PROG [PID]: Error:
  ...` for a failure); jobarg_get's fields go to stderr, its `-e` lines and
  jobarg_joblogput's CSV to stdout.

Only the standard library is imported until the server is asked (httpx, lazily).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from jaz.client import Client

FAIL = 255
DEFAULT_PORT = 10061
# jobarg_get's exit codes (JAZ's): the run's state
WAITING, PREPARING, RUNNING, RUNNING_TIMEOUT, RUNNING_ERROR = 0, 1, 2, 21, 22
ENDED, RUN_ERROR, ABNORMAL_END, ABORT = 3, 4, 5, 6
STATUS_NAMES = {WAITING: "BEGIN", PREPARING: "READY", RUNNING: "RUN",
                RUNNING_TIMEOUT: "RUN", RUNNING_ERROR: "RUN", ENDED: "END",
                RUN_ERROR: "RUNERR", ABNORMAL_END: "ENDERR", ABORT: "ABORT"}
LAST_OUTPUT = 64 * 1024   # characters of the last job's output jobarg_get shows (its end)
# jobarg_joblogput's header, as JAZ's server writes it
JOBLOG_COLUMNS = ["log date", "inner jobnet main id", "inner jobnet id", "run type",
                  "public flag", "jobnet id", "job id", "message id", "message", "jobnet name",
                  "job name", "user name", "update date", "return code"]


class Failed(Exception):
    """A failure: its message goes to stderr and the command exits 255."""


def say(prog: str, message: str, *, error: bool = False) -> None:
    """A message as JAZ's commands write them: Zabbix's logger with no log file, which
    writes `PROG [PID]: ` and, for an error, `Error: ` before the message, on stderr
    (zabbix_log -> zbx_error in JAZ's src/libs/zbxlog/log.c). Success lines too: JAZ's
    jobarg_exec logs its `Registry number :  [N]` at the INFORMATION level there."""
    sys.stderr.write(f"{prog} [{os.getpid()}]: {'Error: ' if error else ''}{message}\n")
    sys.stderr.flush()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:   # JAZ: usage and FAIL, never argparse's 2
        self.print_usage(sys.stdout)   # JAZ's usage() is a printf
        say(self.prog, message, error=True)
        raise SystemExit(FAIL)


def _parser(prog: str, text: str, *, server_required: bool = True) -> _Parser:
    from jaz import __version__

    p = _Parser(prog=prog, description=text, add_help=True,
                epilog="-P is the token of the [users.USER] entry of the jaz server's "
                       "config (\"-\": $JAZ_TOKEN; @FILE: read from FILE). Exit: 0 on "
                       "success, 255 on failure (docs/migration.md).")
    p.add_argument("-V", "--version", action="version", version=f"{prog} (jaz {__version__})")
    p.add_argument("-z", "--jobarranger-server", "--zabbix-server", "--jobarg-server",
                   dest="server", required=server_required,
                   default=None if server_required else "localhost", metavar="SERVER",
                   help="The jaz server's host name or address (or its URL).")
    p.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                   help=f"The jaz server's port (default {DEFAULT_PORT}).")
    p.add_argument("-U", "--user-name", dest="user", required=True, metavar="USER")
    p.add_argument("-P", "--password", dest="password", required=True, metavar="TOKEN",
                   help="The user's token (not a password: jaz keeps none).")
    return p


def _url(server: str, port: int) -> str:
    if "://" in server:
        return server
    host = f"[{server}]" if ":" in server and not server.startswith("[") else server
    return f"http://{host}:{port}"


def _token(user: str, value: str) -> str:
    if value in ("", "-"):
        token = os.environ.get("JAZ_TOKEN", "").strip()
        if not token:
            shown = value or '""'
            raise Failed(f"-P {shown}: the token of user {user!r} is taken from "
                         "$JAZ_TOKEN, which is not set")
        return token
    if value.startswith("@"):
        try:
            token = Path(value[1:]).expanduser().read_text(encoding="utf-8").strip()
        except OSError as e:
            raise Failed(f"-P {value}: cannot read the token file: {e.strerror}") from None
        if not token:
            raise Failed(f"-P {value}: the token file is empty")
        return token
    return value


def _client(args: argparse.Namespace) -> Client:
    """A client of the server, its token checked to be `-U`'s: JAZ logs in as -U with
    -P, so a script that names one user and holds another's token is refused (255)
    before anything is done, rather than acting as whoever the token belongs to."""
    from jaz.client import Client

    if not 1 <= args.port <= 65535:
        raise Failed(f"Incorrect port number [{args.port}]. Allowed [1:65535]")
    client = Client(_url(args.server, args.port), _token(args.user, args.password))
    try:
        _check_user(client, args.user)
    except BaseException:
        client.close()
        raise
    return client


def _check_user(client: Client, user: str) -> None:
    who = client.whoami()
    if who.get("user") != user:
        raise Failed(f"-U {user}: the token given with -P belongs to user "
                     f"{who.get('user')!r}, not {user!r}; give -U {who.get('user')} with it, "
                     f"or the token of [users.{user}] in the server's config")


def _run(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body: JazError and Failed become a message on stderr and 255."""
    from jaz.errors import JazError

    try:
        return body()
    except Failed as e:
        say(prog, str(e), error=True)
    except JazError as e:
        hint = f" ({e.hint})" if getattr(e, "hint", None) else ""
        say(prog, f"{e.message}{hint}", error=True)
    except KeyboardInterrupt:
        say(prog, "interrupted", error=True)
    return FAIL


def _registry(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"argument check error: {text}")
    return int(text)


# ------------------------------------------------------------ times

def _start_time(text: str) -> datetime:
    """-t YYYYMMDDHHMM, checked as JAZ checks it, in this machine's time zone."""
    if len(text) != 12 or not text.isdigit():
        raise argparse.ArgumentTypeError(f"start_time {text!r}: expected YYYYMMDDHHMM")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M").astimezone()
    except ValueError:
        raise argparse.ArgumentTypeError(f"start_time {text!r}: no such date or time") from None


def _stamp(iso: str | None) -> str:
    """An API time as JAZ prints times: YYYYMMDDHHMMSS in local time, 0 when none."""
    if not iso:
        return "0"
    return datetime.fromisoformat(iso).astimezone().strftime("%Y%m%d%H%M%S")


# ------------------------------------------------------------ jobarg_exec

def exec_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("jobarg_exec", "Start a jobnet on the jaz server; prints its registry "
                "number (the jaz run id).")
    p.add_argument("-j", "--jobnet-id", dest="jobnet", required=True, metavar="JOBNET")
    p.add_argument("-t", "--start-time", dest="at", type=_start_time, metavar="YYYYMMDDHHMM",
                   help="Start it then instead of now.")
    p.add_argument("-E", "--environment-variables", dest="env", metavar="ENV,...",
                   help="Pass these environment variables of yours as the run's params.")
    p.add_argument("-D", "--deterrence", action="store_true",
                   help="Do not start it when a run of the jobnet is already due at the "
                        "same -t time (without -t: already running or due).")
    args = p.parse_args(argv)

    def body() -> int:
        params: dict[str, str] = {}
        for name in (args.env or "").split(","):
            name = name.strip()
            if not name:
                continue
            if name not in os.environ:
                raise Failed(f"Env [{name}] does not exist.")
            params[name] = os.environ[name]
        with _client(args) as client:
            if args.deterrence:
                _deter(client, args.jobnet, args.at)
            view = client.start(args.jobnet, params=params,
                                at=args.at.isoformat() if args.at else None)
        # JAZ's server answers this text and jobarg_exec logs it, on stderr
        say("jobarg_exec", f"Registry number :  [{view['run_id']}]")
        return 0

    return _run("jobarg_exec", body)


def _deter(client: Client, jobnet: str, at: datetime | None) -> None:
    waiting = client.runs(jobnet=jobnet, status=["scheduled", "held", "running"], limit=1000)
    for run in waiting:
        due = run.get("scheduled_at")
        if at is None or (due and datetime.fromisoformat(due).astimezone()
                          .replace(second=0, microsecond=0) == at):
            when = f" for {at:%Y%m%d%H%M}" if at is not None else ""
            raise Failed(f"jobnet {jobnet!r} is already registered{when} (registry number "
                         f"{run['run_id']}, {run['status']}); -D: not started again")


# ------------------------------------------------------------ jobarg_get

def state_code(run: dict[str, Any]) -> int:
    """JAZ's jobarg_get exit code for a run (as the API shows it, with its jobs)."""
    status = run.get("status")
    jobs = list((run.get("jobs") or {}).values())
    if status in ("scheduled", "held"):
        due = run.get("scheduled_at")
        if status == "scheduled" and due and \
                datetime.fromisoformat(due) <= datetime.now().astimezone():
            return PREPARING   # due: being started
        return WAITING
    if status == "running":
        if any(j.get("timed_out") for j in jobs):
            return RUNNING_TIMEOUT
        if any(j.get("status") == "failed" for j in jobs):
            return RUNNING_ERROR
        return RUNNING
    if status in ("succeeded", "skipped"):
        return ENDED
    if status == "error":   # halted on a job's failure; it can be resumed
        return RUN_ERROR
    if status == "stopped":
        return ABORT
    return ABNORMAL_END     # failed (on_failure = "stop", a run timeout), missed


def get_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("jobarg_get", "Show a run's state (on stderr, or with -e as shell variables "
                "on stdout); the exit code is the state: 0 waiting, 1 preparing, 2 running, "
                "21 running with a timed-out job, 22 running with a failed job, 3 ended, "
                "4 run error, 5 abnormal end, 6 aborted, 255 failure.")
    p.add_argument("-r", "--registry-number", dest="run_id", type=_registry, required=True,
                   metavar="NUMBER")
    p.add_argument("-e", "--variable-format", dest="variables", action="store_true",
                   help="Print `export JA_...=\"...\"` lines for a shell, on stdout.")
    args = p.parse_args(argv)

    def body() -> int:
        with _client(args) as client:
            run = client.run(args.run_id)
            code = state_code(run)
            jobs = run.get("jobs") or {}
            job_state = "NORMAL"
            if any(j.get("timed_out") for j in jobs.values()):
                job_state = "TIMEOUT"
            elif any(j.get("status") == "failed" for j in jobs.values()):
                job_state = "ERROR"
            last = _last_job(client, args.run_id, jobs)
        fields = [("JOBNETID", "jobnetid", run["jobnet"]),
                  ("JOBNETNAME", "jobnetname", run["jobnet"]),
                  ("SCHEDULEDTIME", "Time of a schedule", _stamp(run.get("scheduled_at"))),
                  ("STARTTIME", "Time of a start", _stamp(run.get("started_at"))),
                  ("ENDTIME", "Time of a end", _stamp(run.get("ended_at"))),
                  ("JOBNETRUNTYPE", "The run type of a jobnet", _run_type(run)),
                  ("JOBNETSTATUS", "Status of a jobnet", STATUS_NAMES[code]),
                  ("JOBSTATUS", "Status of a job", job_state),
                  ("LASTEXITCD", "Last job return value", last[0]),
                  ("LASTSTDOUT", "Last job standard output", last[1]),
                  ("LASTSTDERR", "Last job standard error", last[2])]
        if args.variables:
            for var, _, value in fields:
                quoted = value.replace("\\", "\\\\").replace('"', '\\"') \
                    .replace("$", "\\$").replace("`", "\\`")
                print(f'export JA_{var}="{quoted}"')
        else:   # as JAZ: on stderr, after two empty lines
            sys.stderr.write("\n\n" + "".join(f"{label:<25}: {value}\n"
                                               for _, label, value in fields))
        return code

    return _run("jobarg_get", body)


def _run_type(run: dict[str, Any]) -> str:
    if run.get("status") == "held":
        return "WAIT"
    if run.get("trigger") == "schedule":
        return "NORMAL"
    if run.get("scheduled_at") and run.get("trigger") == "manual":
        return "TIME"
    return "IMMEDIATE"


def _last_job(client: Client, run_id: int, jobs: dict[str, Any]) -> tuple[str, str, str]:
    """The return code, stdout and stderr of the run's last ended job ("" when none)."""
    ended = [(j.get("ended_at") or "", name) for name, j in jobs.items() if j.get("ended_at")]
    if not ended:
        return "", "", ""
    name = max(ended)[1]
    texts = {"stdout": "", "stderr": ""}
    for chunk in client.logs(run_id, name):
        if chunk.get("stream") in texts:
            texts[chunk["stream"]] += chunk.get("text", "")
    code = jobs[name].get("exit_code")
    return ("" if code is None else str(code), texts["stdout"][-LAST_OUTPUT:].rstrip("\n"),
            texts["stderr"][-LAST_OUTPUT:].rstrip("\n"))


# ------------------------------------------------------------ jobarg_release

def release_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("jobarg_release", "Release the held job JOBNET/JOB of run -r NUMBER, or of "
                "every run of JOBNET started at -t (a YYYYMMDD or YYYYMMDDHHMM prefix).",
                server_required=False)
    p.add_argument("-j", "--job-id", dest="job", required=True, metavar="JOBNET/JOB")
    p.add_argument("-t", "--start-time", dest="start", metavar="YYYYMMDD[HHMM]")
    p.add_argument("-r", "--management-id", "--registry-number", dest="run_id",
                   type=_registry, metavar="NUMBER")
    args = p.parse_args(argv)

    def body() -> int:
        jobnet, slash, job = args.job.partition("/")
        if not slash or not jobnet or not job:
            raise Failed(f"jobid '{args.job}' is not correct: write it as JOBNET/JOB")
        if args.run_id is None and args.start is None:
            raise Failed("give the run: -r REGISTRY_NUMBER, or -t YYYYMMDD[HHMM] (its start)")
        if args.run_id is None and not (args.start.isdigit() and len(args.start) in (8, 12)):
            raise Failed(f"unknowed start_time {args.start}: expected YYYYMMDD or "
                         "YYYYMMDDHHMM")
        with _client(args) as client:
            if args.run_id is not None:
                runs = [client.run(args.run_id)]
            else:
                runs = [r for r in client.runs(jobnet=jobnet, limit=1000)
                        if _stamp(r.get("started_at") or r.get("scheduled_at"))
                        .startswith(args.start)]
            runs = [r for r in runs if r.get("jobnet") == jobnet]
            if args.run_id is None:   # by start time: the runs where the job is held
                runs = [client.run(r["run_id"]) for r in runs]
                runs = [r for r in runs if (r.get("jobs") or {}).get(job, {})
                        .get("status") == "held"]
            if not runs:
                raise Failed(f"can not match the job {args.job}: no run of jobnet "
                             f"{jobnet!r} " + ("with it held" if args.run_id is None
                                               else f"numbered {args.run_id}"))
            for run in runs:
                client.act("release", run["run_id"], job)
        return 0

    return _run("jobarg_release", body)


# ------------------------------------------------------------ jobarg_joblogput

def _log_time(text: str, *, end: bool) -> datetime:
    """-s/-e as JAZ reads them: YYYYMMDD (from 00:00:00 / to 23:59:59.999) or
    YYYYMMDDHHMM (from :00 / to :59.999), local time."""
    forms = {8: "%Y%m%d", 12: "%Y%m%d%H%M"}
    if not text.isdigit() or len(text) not in forms:
        raise argparse.ArgumentTypeError(f"Unknowed time: {text} (expected YYYYMMDD or "
                                          "YYYYMMDDHHMM)")
    try:
        at = datetime.strptime(text, forms[len(text)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"Unknowed time: {text} (no such date or "
                                          "time)") from None
    if end:
        at += timedelta(days=1) if len(text) == 8 else timedelta(minutes=1)
    return at.astimezone()


def _match(pattern: str | None, value: str | None) -> bool:
    """JAZ's filters are regular expressions, matched anywhere in the value."""
    if pattern is None:
        return True
    if value is None:
        return False
    try:
        return re.search(pattern, value) is not None
    except re.error as e:
        raise Failed(f"bad regular expression {pattern!r}: {e}") from None


def _quoted(values: Sequence[object]) -> str:
    """A line as JAZ writes it: every field in double quotes (doubled inside)."""
    return ",".join('"' + str(v).replace('"', '""') + '"' for v in values)


def joblogput_main(argv: Sequence[str] | None = None) -> int:
    p = _parser("jobarg_joblogput", "Write the run log (JAZ's job log) of the runs that "
                "match as CSV: JAZ's header line, then one line per event.")
    p.add_argument("-s", "--from-time", dest="since", metavar="YYYYMMDD[HHMM]",
                   type=lambda t: _log_time(t, end=False), help="Events from this time.")
    p.add_argument("-e", "--to-time", dest="until", metavar="YYYYMMDD[HHMM]",
                   type=lambda t: _log_time(t, end=True), help="Events up to this time "
                   "(YYYYMMDD: that whole day).")
    p.add_argument("-n", "--jobnet-id", dest="jobnet", metavar="REGEX")
    p.add_argument("-j", "--job-id", dest="job", metavar="REGEX")
    p.add_argument("-u", "--target-user", dest="target", metavar="REGEX",
                   help="Runs started by this user (system: by the scheduler).")
    p.add_argument("-r", "--registry-number", dest="run_id", type=_registry,
                   metavar="NUMBER", help="One run's log (then -s and -e are not needed).")
    args = p.parse_args(argv)

    def body() -> int:
        if args.run_id is None and (args.since is None or args.until is None):
            raise Failed("Can not get 'from_time' and 'to_time': give -s and -e, or -r")
        if args.since and args.until and args.since >= args.until:
            raise Failed("to_time is earlier than from_time")
        with _client(args) as client:
            if args.run_id is not None:
                client.run(args.run_id)   # an unknown registry number is an error
                events = client.events(run=args.run_id)
            else:
                events = client.events(since=args.since.isoformat(),
                                       until=args.until.isoformat())
            runs: dict[int, tuple[dict[str, Any], str]] = {}

            def run_of(run_id: int) -> tuple[dict[str, Any], str]:
                """A run's view and who started it (JAZ's user name of its log lines)."""
                if run_id not in runs:
                    mine = events if args.run_id is not None else client.events(run=run_id)
                    starter = next((str(x.get("user", "")) for x in mine
                                    if x.get("kind") == "run_created"
                                    and x.get("run_id") == run_id), "system")
                    runs[run_id] = (client.run(run_id), starter)
                return runs[run_id]

            lines = [_quoted(JOBLOG_COLUMNS)]
            for e in sorted((e for e in events if e.get("run_id") is not None),
                            key=lambda e: (int(e["run_id"]), e["at"])):
                if not (_match(args.jobnet, e.get("jobnet")) and
                        _match(args.job, e.get("job") or None)):
                    continue
                run, starter = run_of(int(e["run_id"]))
                if not _match(args.target, starter):
                    continue
                lines.append(_quoted(_log_row(e, run, starter)))
        sys.stdout.write("\n".join(lines) + "\n")
        return 0

    return _run("jobarg_joblogput", body)


RUN_TYPES = {"NORMAL": 0, "IMMEDIATE": 1, "WAIT": 2, "TEST": 3, "TIME": 4}


def _log_row(e: dict[str, Any], run: dict[str, Any], user: str) -> list[object]:
    at = datetime.fromisoformat(e["at"]).astimezone()
    job = e.get("job") or ""
    code: object = ""
    if job and e.get("kind") in ("job_succeeded", "job_failed", "job_timeout"):
        exit_code = (run.get("jobs") or {}).get(job, {}).get("exit_code")
        code = "" if exit_code is None else exit_code
    message = e.get("detail") or str(e.get("kind", "")).replace("_", " ")
    return [at.strftime("%Y/%m/%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}",
            e["run_id"], e["run_id"], RUN_TYPES[_run_type(run)], 1, e.get("jobnet") or "",
            job, e.get("kind", ""), message, e.get("jobnet") or "", job, user,
            at.strftime("%Y/%m/%d %H:%M:%S"), code]
