"""`jobarg_exec`, `jobarg_get`, `jobarg_release`, `jobarg_joblogput` (the installed console
scripts, run as subprocesses) against a real `jaz server` with [users] tokens: JAZ's flags,
its output lines, and its exit codes, table-tested for every state a run can be in."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support import free_port, running_server, wait_for

BIN = Path(sys.executable).parent
OPS, VIEW = "ops-token-0123456789", "view-token-0123456789"
NETS = {
    "ok": 'params = { WHO = "" }\n[jobs.hello]\nrun = "echo hello $WHO; echo oops >&2"\n',
    "bad": '[jobs.b]\nrun = "exit 7"\n',
    "slow": '[jobs.s]\nrun = "sleep 60"\n',
    "failing": '[jobs.f]\nrun = "exit 1"\n[jobs.s]\nrun = "sleep 60"\n',
    "timing": '[jobs.t]\ntimeout = "0.3s"\nrun = "sleep 30"\n[jobs.s]\nrun = "sleep 60"\n',
    "held": '[jobs.h]\nhold = true\nrun = "true"\n',
    "stopping": 'on_failure = "stop"\n[jobs.b]\nrun = "exit 7"\n',
}


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("jobarg")
    users = (f'[users.ops]\nrole = "operator"\ntoken_sha256 = "{_sha(OPS)}"\n'
             f'[users.view]\nrole = "viewer"\ntoken_sha256 = "{_sha(VIEW)}"\n')
    with running_server(root, NETS, extra=users) as (url, token, env, home):
        yield url, token, env, root


def _cmd(name: str, server, *args: str, token: str = OPS, user: str = "ops",
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    url = server[0]
    port = url.rsplit(":", 1)[1]
    base = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    return subprocess.run([str(BIN / name), "-z", "127.0.0.1", "-p", port, "-U", user,
                           "-P", token, *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})})


# JAZ's logger with no log file (src/libs/zbxlog/log.c -> zbx_error): `PROG [PID]: `,
# then `Error: ` for an error; jobarg_exec logs the server's "Registry number :  [N]"
REGISTRY = re.compile(r"jobarg_exec \[(\d+)\]: Registry number :  \[(\d+)\]\n")


def _exec(server, *args: str, **kw) -> int:
    result = _cmd("jobarg_exec", server, *args, **kw)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""   # as JAZ: the registry number is a message, on stderr
    m = REGISTRY.fullmatch(result.stderr)
    assert m, result.stderr
    return int(m.group(2))


def test_messages_are_written_as_jazs_logger_writes_them(server):
    result = _cmd("jobarg_exec", server, "-j", "ok")
    m = REGISTRY.fullmatch(result.stderr)
    assert m, result.stderr
    assert int(m.group(1)) > 1   # the process id, as zbx_get_thread_id() gives it
    failed = _cmd("jobarg_exec", server, "-j", "ok", "-E", "JOBARG_UNSET_VAR")
    assert failed.returncode == 255 and failed.stdout == ""
    assert re.fullmatch(r"jobarg_exec \[\d+\]: Error: Env \[JOBARG_UNSET_VAR\] does not "
                        r"exist\.\n", failed.stderr), failed.stderr
    bad = _cmd("jobarg_get", server, "-r", "12x")
    assert bad.returncode == 255
    assert bad.stdout.startswith("usage: jobarg_get")   # JAZ's usage() is a printf
    assert re.fullmatch(r"jobarg_get \[\d+\]: Error: .*argument check error: 12x\n",
                        bad.stderr), bad.stderr
    # jobarg_get's fields: straight to stderr, no prefix, the labels as JAZ pads them
    get = _get(server, int(m.group(2)))
    assert get.stderr.startswith("\n\njobnetid                 : ok\n"
                                 "jobnetname               : ok\n"
                                 "Time of a schedule       : "), get.stderr
    for label in ("The run type of a jobnet : ", "Last job standard output : ",
                  "Last job standard error  : ", "Last job return value    : "):
        assert "\n" + label in get.stderr


def _get(server, run_id: int, *args: str) -> subprocess.CompletedProcess[str]:
    return _cmd("jobarg_get", server, "-r", str(run_id), *args)


def _api(server):
    from jaz.client import Client

    return Client(server[0], OPS)


def _status(server, run_id: int) -> dict:
    with _api(server) as c:
        return c.run(run_id)


def _until(server, run_id: int, check) -> dict:
    return wait_for(lambda: (lambda r: r if check(r) else None)(_status(server, run_id)),
                    f"run {run_id} to get there", timeout=30)


def _stop(server, run_id: int) -> None:
    with _api(server) as c:
        c.act("stop", run_id)


def _fields(text: str) -> dict[str, str]:
    """JAZ's `key   : value` lines (after its two empty lines) as a dict."""
    assert text.startswith("\n\n"), text
    return {line[:25].rstrip(): line[27:] for line in text[2:].splitlines()}


def test_exec_starts_a_run_and_get_follows_it_to_its_end(server):
    run_id = _exec(server, "-j", "ok", "-E", "WHO", env={"WHO": "from-env"})
    _until(server, run_id, lambda r: r["status"] == "succeeded")
    result = _get(server, run_id)
    assert result.returncode == 3, result.stderr   # ended
    assert result.stdout == ""                     # as JAZ: the status goes to stderr
    fields = _fields(result.stderr)
    assert list(fields) == ["jobnetid", "jobnetname", "Time of a schedule", "Time of a start",
                            "Time of a end", "The run type of a jobnet", "Status of a jobnet",
                            "Status of a job", "Last job return value",
                            "Last job standard output", "Last job standard error"]
    assert fields["jobnetid"] == "ok" and fields["Status of a jobnet"] == "END"
    assert fields["Status of a job"] == "NORMAL"
    assert fields["The run type of a jobnet"] == "IMMEDIATE"
    assert len(fields["Time of a start"]) == 14 and fields["Time of a end"] != "0"
    assert fields["Last job return value"] == "0"
    assert fields["Last job standard output"] == "hello from-env"
    assert fields["Last job standard error"] == "oops"

    variables = _get(server, run_id, "-e")
    assert variables.returncode == 3
    shell = subprocess.run(["sh", "-c", variables.stdout + 'printf "%s|%s|%s" '
                            '"$JA_JOBNETSTATUS" "$JA_LASTSTDOUT" "$JA_LASTEXITCD"'],
                           capture_output=True, text=True)
    assert shell.stdout == "END|hello from-env|0"


def _running(server, net: str) -> int:
    run_id = _exec(server, "-j", net)
    _until(server, run_id, lambda r: r["status"] == "running"
           and any(j["status"] == "running" for j in r["jobs"].values()))
    return run_id


def _scenario(server, name: str) -> tuple[int, int]:
    """(run id, the exit code jobarg_get must give) for one state of a run."""
    if name == "waiting":
        at = (datetime.now() + timedelta(days=1)).strftime("%Y%m%d%H%M")
        return _exec(server, "-j", "ok", "-t", at), 0
    if name == "held":   # due, but held: it waits for its release
        with _api(server) as c:
            view = c.start("ok", params={}, at=datetime.now().astimezone().isoformat(),
                           hold=True)
        return view["run_id"], 0
    if name == "running":
        return _running(server, "slow"), 2
    if name == "running_timeout":
        run_id = _running(server, "timing")
        _until(server, run_id, lambda r: r["jobs"]["t"]["timed_out"])
        return run_id, 21
    if name == "running_error":
        run_id = _running(server, "failing")
        _until(server, run_id, lambda r: r["jobs"]["f"]["status"] == "failed")
        return run_id, 22
    if name == "ended":
        run_id = _exec(server, "-j", "ok")
        _until(server, run_id, lambda r: r["status"] == "succeeded")
        return run_id, 3
    if name == "run_error":
        run_id = _exec(server, "-j", "bad")
        _until(server, run_id, lambda r: r["status"] == "error")
        return run_id, 4
    if name == "abnormal_end":   # on_failure = "stop": the run ends failed
        run_id = _exec(server, "-j", "stopping")
        _until(server, run_id, lambda r: r["status"] == "failed")
        return run_id, 5
    if name == "aborted":
        run_id = _running(server, "slow")
        _stop(server, run_id)
        _until(server, run_id, lambda r: r["status"] == "stopped")
        return run_id, 6
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["waiting", "held", "running", "running_timeout",
                                  "running_error", "ended", "run_error", "abnormal_end",
                                  "aborted"])
def test_get_exits_with_jazs_code_for_each_state(server, name: str):
    run_id, code = _scenario(server, name)
    try:
        result = _get(server, run_id)
        assert result.returncode == code, (result.stdout, result.stderr, _status(server, run_id))
        names = {0: "BEGIN", 2: "RUN", 21: "RUN", 22: "RUN", 3: "END", 4: "RUNERR",
                 5: "ENDERR", 6: "ABORT"}
        fields = _fields(result.stderr)
        assert fields["Status of a jobnet"] == names[code]
        if name == "held":
            assert fields["The run type of a jobnet"] == "WAIT"
        assert fields["Status of a job"] == {21: "TIMEOUT", 22: "ERROR", 4: "ERROR",
                                             5: "ERROR"}.get(code, "NORMAL")
    finally:
        if _status(server, run_id)["status"] in ("running", "scheduled", "held"):
            _stop(server, run_id)


def test_get_of_a_due_run_not_yet_started_is_preparing(server):
    """1 (preparing): a scheduled run whose time has come; the state is read from the API
    view, as the server answers it."""
    from jaz.jobarg.cli import PREPARING, WAITING, state_code

    past = (datetime.now().astimezone() - timedelta(seconds=1)).isoformat()
    future = (datetime.now().astimezone() + timedelta(hours=1)).isoformat()
    assert state_code({"status": "scheduled", "scheduled_at": past}) == PREPARING
    assert state_code({"status": "scheduled", "scheduled_at": future}) == WAITING


FAILURES = {
    "unknown registry number": (["jobarg_get", "-r", "999999"], "no run 999999"),
    "not a number": (["jobarg_get", "-r", "12x"], "argument check error: 12x"),
    "wrong token": (["jobarg_get", "-r", "1", "@token:wrong"], "refused"),
    "viewer cannot start": (["jobarg_exec", "-j", "ok", "@token:view", "@user:view"],
                            "refused"),
    "-U not the token's user": (["jobarg_get", "-r", "1", "@user:view"],
                                "the token given with -P belongs to user 'ops', not 'view'"),
    "unknown jobnet": (["jobarg_exec", "-j", "nope"], "nope"),
    "env not set": (["jobarg_exec", "-j", "ok", "-E", "JOBARG_UNSET_VAR"],
                    "Env [JOBARG_UNSET_VAR] does not exist."),
    "bad start time": (["jobarg_exec", "-j", "ok", "-t", "202602301200"], "no such date"),
    "short start time": (["jobarg_exec", "-j", "ok", "-t", "2026"], "YYYYMMDDHHMM"),
    "no jobnet": (["jobarg_exec"], "-j/--jobnet-id"),
    "server down": (["jobarg_get", "-r", "1", "@port:down"], "cannot"),
    "token from an unset JAZ_TOKEN": (["jobarg_get", "-r", "1", "@token:-"], "JAZ_TOKEN"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failures_exit_255_with_a_clear_message(server, case: str):
    args, message = FAILURES[case]
    name, rest = args[0], [a for a in args[1:] if not a.startswith("@")]
    token, port, user = OPS, None, "ops"
    for a in args[1:]:
        if a.startswith("@user:"):
            user = a[6:]
        if a.startswith("@token:"):
            token = {"wrong": "nope", "view": VIEW, "-": "-"}[a[7:]]
        if a == "@port:down":
            port = free_port()
        if a == "@ended":
            run_id = _exec(server, "-j", "ok")
            _until(server, run_id, lambda r: r["status"] == "succeeded")
            rest.append(str(run_id))
    target = server if port is None else (f"http://127.0.0.1:{port}",) + server[1:]
    result = _cmd(name, target, *rest, token=token, user=user)
    assert result.returncode == 255, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("user", "token", "owner"), [
    ("view", OPS, "ops"),        # another [users] entry's name
    ("Admin", OPS, "ops"),       # JAZ's default user, not in [users]
    ("ops", VIEW, "view"),       # a user's name with another's token
])
def test_a_user_that_is_not_the_tokens_is_refused_before_anything_is_done(
        server, user: str, token: str, owner: str):
    with _api(server) as c:
        before = len(c.runs(jobnet="ok", limit=1000))
    commands = {"jobarg_exec": ["-j", "ok"], "jobarg_get": ["-r", "1"],
                "jobarg_release": ["-j", "held/h", "-r", "1"],
                "jobarg_joblogput": ["-r", "1"]}
    for name, args in commands.items():
        result = _cmd(name, server, *args, token=token, user=user)
        assert result.returncode == 255, (name, result.stdout, result.stderr)
        assert f"]: Error: -U {user}: the token given with -P belongs to user {owner!r}, " \
               f"not {user!r}; give -U {owner} with it" in result.stderr, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"{name} [")
    with _api(server) as c:
        assert len(c.runs(jobnet="ok", limit=1000)) == before   # jobarg_exec started none


def test_tokens_come_from_jaz_token_or_a_file(server, tmp_path: Path):
    run_id = _exec(server, "-j", "ok", token="-", env={"JAZ_TOKEN": OPS})
    token_file = tmp_path / "token"
    token_file.write_text(OPS + "\n")
    _until(server, run_id, lambda r: r["status"] == "succeeded")
    assert _cmd("jobarg_get", server, "-r", str(run_id), token=f"@{token_file}").returncode == 3


def test_deterrence_refuses_a_second_run_due_at_the_same_time(server):
    at = (datetime.now() + timedelta(days=2)).strftime("%Y%m%d%H%M")
    first = _exec(server, "-j", "ok", "-t", at, "-D")
    try:
        again = _cmd("jobarg_exec", server, "-j", "ok", "-t", at, "-D")
        assert again.returncode == 255
        assert f"already registered for {at} (registry number {first}" in again.stderr
        other = (datetime.now() + timedelta(days=3)).strftime("%Y%m%d%H%M")
        second = _exec(server, "-j", "ok", "-t", other, "-D")   # another time: started
        _stop(server, second)
        without = _exec(server, "-j", "ok", "-t", at)   # no -D: JAZ registers it again
        _stop(server, without)
    finally:
        _stop(server, first)


def test_release_lets_a_held_job_go_by_registry_number_or_start_time(server):
    run_id = _exec(server, "-j", "held")
    _until(server, run_id, lambda r: r["jobs"]["h"]["status"] == "held")
    assert _get(server, run_id).returncode == 2                  # running, the job held
    result = _cmd("jobarg_release", server, "-j", "held/h", "-r", str(run_id))
    assert result.returncode == 0, result.stderr
    _until(server, run_id, lambda r: r["status"] == "succeeded")

    first, second = _exec(server, "-j", "held"), _exec(server, "-j", "held")
    for r in (first, second):
        _until(server, r, lambda v: v["jobs"]["h"]["status"] == "held")
    today = datetime.now().strftime("%Y%m%d")
    result = _cmd("jobarg_release", server, "-j", "held/h", "-t", today)
    assert result.returncode == 0, result.stderr
    for r in (first, second):
        _until(server, r, lambda v: v["status"] == "succeeded")

    for args, message in ((["-j", "held", "-r", str(run_id)], "jobid 'held' is not correct"),
                          (["-j", "held/h"], "give the run: -r"),
                          (["-j", "ok/hello", "-r", str(run_id)], "can not match the job"),
                          (["-j", "held/h", "-t", "2026"], "unknowed start_time 2026"),
                          (["-j", "held/h", "-r", str(run_id)], "")):   # not held any more
        result = _cmd("jobarg_release", server, *args)
        assert result.returncode == 255 and message in result.stderr, result.stderr


def test_joblogput_writes_the_run_log_as_jaz_does(server):
    run_id = _exec(server, "-j", "ok")
    bad = _exec(server, "-j", "bad")
    _until(server, run_id, lambda r: r["status"] == "succeeded")
    _until(server, bad, lambda r: r["status"] == "error")

    def rows(*args: str) -> list[dict[str, str]]:
        result = _cmd("jobarg_joblogput", server, *args)
        assert result.returncode == 0, result.stderr
        first = result.stdout.splitlines()[0]
        assert first == ('"log date","inner jobnet main id","inner jobnet id","run type",'
                         '"public flag","jobnet id","job id","message id","message",'
                         '"jobnet name","job name","user name","update date","return code"')
        return list(csv.DictReader(io.StringIO(result.stdout)))

    one = rows("-r", str(run_id))
    assert {r["inner jobnet main id"] for r in one} == {str(run_id)}
    kinds = [r["message id"] for r in one]
    assert kinds[0] == "run_created" and "job_started" in kinds and "job_succeeded" in kinds
    ended = next(r for r in one if r["message id"] == "job_succeeded")
    assert (ended["jobnet id"], ended["job id"], ended["return code"], ended["user name"],
            ended["run type"]) == ("ok", "hello", "0", "ops", "1")
    assert len(ended["log date"]) == len("2026/01/01 12:00:00.123")
    today = datetime.now().strftime("%Y%m%d")
    failed = [r for r in rows("-s", today, "-e", today, "-n", "^bad$")
              if r["message id"] == "job_failed"]
    assert {r["inner jobnet main id"] for r in failed} >= {str(bad)}
    assert {r["return code"] for r in failed} == {"7"}
    assert rows("-s", today, "-e", today, "-u", "^nobody$") == []
    assert {r["job id"] for r in rows("-s", today, "-e", today, "-j", "^b$")} == {"b"}
    yesterday = (datetime.now() - timedelta(days=1)).strftime("%Y%m%d")
    assert rows("-s", yesterday, "-e", yesterday) == []
    for args, message in ((["-s", today], "Can not get 'from_time' and 'to_time'"),
                          (["-s", "2026", "-e", today], "Unknowed time: 2026"),
                          (["-s", today, "-e", yesterday], "earlier than from_time")):
        result = _cmd("jobarg_joblogput", server, *args)
        assert result.returncode == 255 and message in result.stderr, result.stderr


def test_the_scripts_help_is_fast_and_imports_no_http_library():
    probe = ("import sys\nsys.argv = ['jobarg_get', '--help']\n"
             "from jaz.jobarg.cli import get_main\ntry:\n    get_main()\n"
             "except SystemExit:\n    pass\nprint('\\n'.join(sys.modules))")
    mods = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.split()
    assert "argparse" in mods
    assert not [m for m in mods if m.split(".")[0] in ("httpx", "httpx2", "typer", "rich")]
    result = subprocess.run([str(BIN / "jobarg_exec"), "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "-P" in result.stdout and "token" in result.stdout
    json.dumps(result.stdout)
