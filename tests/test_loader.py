"""Every input boundary of a jobnet file, at the loader (SPEC §1, §1.5).

Each malformed case must name the file, the job and the field, and carry a message
that says what is wrong; a file with many problems reports all of them at once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from jaz.engine.durations import (
    DurationError,
    format_duration,
    parse_duration,
    parse_stop_codes,
)
from jaz.engine.loader import load_file, load_text, local_problems
from jaz.engine.model import (
    JobnetAction,
    OnFailure,
    OnTimeout,
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
from jaz.errors import JobnetInvalid, NotFound, Problem

FILE = Path("nets/nightly.toml")
OK = '[jobs.a]\nrun = "true"\n'


def problems(text: str) -> list[Problem]:
    with pytest.raises(JobnetInvalid) as info:
        load_text(text, path=FILE)
    assert info.value.exit_code == 2
    assert info.value.problems, "JobnetInvalid without problems"
    return info.value.problems


def where(ps: list[Problem]) -> set[tuple[str | None, str | None]]:
    return {(p.job, p.field) for p in ps}


# ------------------------------------------------------------------ TOML syntax


@pytest.mark.parametrize(("text", "line", "column"), [
    pytest.param('name = "x"\n[jobs.a]\nrun = "echo\n', 3, 12, id="unterminated-string"),
    pytest.param('[jobs.a]\nrun = = 1\n', 2, 7, id="missing-value"),
    pytest.param('[jobs.a]\nrun = "x"\n[jobs.a]\nrun = "y"\n', 3, 8, id="table-twice"),
    pytest.param('[jobs.a]\nrun = "x"\nrun = "y"\n', 3, 10, id="key-twice"),
    pytest.param('[jobs.a\nrun = "x"\n', 1, 8, id="unclosed-table-header"),
])
def test_toml_syntax_error_names_file_line_and_column(text: str, line: int, column: int) -> None:
    [p] = problems(text)
    assert p.message.startswith("TOML syntax error: ")
    assert "(at line" not in p.message  # the position moved into line/column, not repeated
    assert (p.file, p.line, p.column) == (str(FILE), line, column)
    assert str(p).startswith(f"{FILE}:{line}:{column}: TOML syntax error")


# ------------------------------------------------------------------ one problem each

CASES = [
    # top level
    ('nmae = "x"\n' + OK, None, "nmae", 'unknown key "nmae" in the jobnet (did you mean "name"?)'),
    ('on_failure = "continue"\n' + OK, None, "on_failure",
     'expected one of "halt", "stop", got "continue"'),
    ('mode = "parallel"\n' + OK, None, "mode", 'expected one of "graph", "sequence"'),
    ('timeout = "5 minutes"\n' + OK, None, "timeout", 'bad duration "5 minutes"'),
    ('timeout = -5\n' + OK, None, "timeout", "cannot be negative"),
    ('name = "a b"\n' + OK, None, "name", 'bad jobnet name "a b"'),
    ('name = 5\n' + OK, None, "name", "expected a string, got 5 (an integer)"),
    ('description = 5\n' + OK, None, "description", "expected a string, got 5 (an integer)"),
    ('[params]\nDAY = ["x"]\n' + OK, None, "params.DAY",
     'expected a string or number, got ["x"] (a list)'),
    ('params = 1\n' + OK, None, "params", "expected a table, got 1 (an integer)"),
    ('name = "x"\n', None, "jobs", "a jobnet needs at least one job"),
    ('jobs = { a = 1 }\n', "a", None, "expected a table [jobs.a], got 1 (an integer)"),
    ('[defaults]\nrun = "x"\n' + OK, None, "defaults.run", "cannot be a default (an action)"),
    ('[defaults]\nneeds = ["a"]\n' + OK, None, "defaults.needs", "cannot be a default (per job)"),
    ('[defaults]\nhots = "x"\n' + OK, None, "defaults.hots", "cannot be a default (unknown)"),
    # a bad default is reported once, at the default, not once per job
    ('[defaults]\ntimeout = "zz"\n[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n', None,
     "defaults.timeout", 'bad duration "zz"'),
    ('[defaults]\nenv = { T = { secret = 1 } }\n[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n',
     None, "defaults.env.T", 'expected { secret = "name" }'),
    # job keys and actions
    ('[jobs.a]\nrun = "x"\ntimout = "5m"\n', "a", "timout",
     'unknown key "timout" in [jobs.a] (did you mean "timeout"?)'),
    ('[jobs.a]\nrun = "x"\nneed = ["b"]\n[jobs.b]\nrun = "x"\n', "a", "need",
     '(did you mean "needs"?)'),
    ('[jobs.a]\nhost = "local"\n', "a", None, "a job needs exactly one action key, found none"),
    ('[jobs.a]\nrun = "x"\nsleep = "1s"\n', "a", None,
     "exactly one action key, found 2: run, sleep; split it"),
    ('[jobs.a]\nrun = 5\n', "a", "run",
     'expected a string, got 5 (an integer): write it in quotes, "5"'),
    ('[jobs.a]\nrun = "  "\n', "a", "run", "must not be empty"),
    ('[jobs.my-job]\nrun = "x"\n', "my-job", None, 'bad job name "my-job"'),
    ('[jobs.1st]\nrun = "x"\n', "1st", None, 'bad job name "1st"'),
    ('[jobs."a.b"]\nrun = "x"\n', "a.b", None, 'bad job name "a.b"'),
    # needs and the graph
    ('[jobs.extract]\nrun = "x"\n[jobs.load]\nrun = "x"\nneeds = ["extrakt"]\n', "load", "needs",
     'unknown job "extrakt" in needs (did you mean "extract"?)'),
    ('[jobs.a]\nrun = "x"\nneeds = ["zzz"]\n', "a", "needs", 'unknown job "zzz" in needs'),
    ('[jobs.a]\nrun = "x"\nneeds = 5\n', "a", "needs", "expected a list of job names"),
    ('[jobs.a]\nrun = "x"\nneeds = ["a"]\n', "a", "needs", "a job cannot need itself"),
    ('[jobs.a]\nrun = "x"\nneeds = ["b"]\n[jobs.b]\nrun = "x"\nneeds = ["c"]\n'
     '[jobs.c]\nrun = "x"\nneeds = ["a"]\n', "a", "needs", "cycle: a -> b -> c -> a"),
    ('[jobs.a]\nrun = "x"\nneeds = ["b"]\n[jobs.b]\nrun = "x"\nneeds = ["a"]\n', "a", "needs",
     "cycle: a -> b -> a"),
    ('[jobs.start]\nrun = "x"\n[jobs.b]\nrun = "x"\nneeds = ["start", "c"]\n'
     '[jobs.c]\nrun = "x"\nneeds = ["b"]\n', "b", "needs", "cycle: b -> c -> b"),
    # durations
    ('[jobs.a]\nrun = "x"\ntimeout = "5 minutes"\n', "a", "timeout", 'bad duration "5 minutes"'),
    ('[jobs.a]\nrun = "x"\nretry_delay = -1\n', "a", "retry_delay",
     "a duration cannot be negative, got -1"),
    ('[jobs.a]\nsleep = "abc"\n', "a", "sleep", 'bad duration "abc"'),
    ('[jobs.a]\nsleep = ""\n', "a", "sleep", 'bad duration ""'),
    ('[jobs.a]\nsleep = "5M"\n', "a", "sleep", 'bad duration "5M"'),
    ('[jobs.a]\nsleep = true\n', "a", "sleep", "expected a duration"),
    ('[jobs.a]\nsleep = nan\n', "a", "sleep", "finite"),
    ('[jobs.a]\nsleep = inf\n', "a", "sleep", "finite"),
    ('[jobs.a]\nrun = "x"\nrepeat = { max = 2, interval = "soon" }\n', "a", "repeat.interval",
     'bad duration "soon"'),
    # stop codes
    ('[jobs.a]\nrun = "x"\nstop_codes = "5-1"\n', "a", "stop_codes", 'reversed range "5-1"'),
    ('[jobs.a]\nrun = "x"\nstop_codes = "x"\n', "a", "stop_codes", 'bad stop code "x"'),
    ('[jobs.a]\nrun = "x"\nstop_codes = 300\n', "a", "stop_codes",
     "stop codes go from 0 to 255, got 300"),
    ('[jobs.a]\nrun = "x"\nstop_codes = "1-256"\n', "a", "stop_codes", "from 0 to 255"),
    ('[jobs.a]\nrun = "x"\nstop_codes = "1,,3"\n', "a", "stop_codes", 'bad stop code ""'),
    ('[jobs.a]\nrun = "x"\nstop_codes = -1\n', "a", "stop_codes", "bad stop code -1:"),
    ('[jobs.a]\nrun = "x"\nstop_codes = [1, 2]\n', "a", "stop_codes", "expected exit codes"),
    ('[jobs.a]\nrun = "x"\nstop_codes = true\n', "a", "stop_codes", "expected exit codes"),
    # enumerations and plain types
    ('[jobs.a]\nrun = "x"\non_timeout = "kill"\n', "a", "on_timeout",
     'expected one of "stop", "warn", got "kill"'),
    ('[jobs.a]\nrun = "x"\nretries = -1\n', "a", "retries", "whole number >= 0"),
    ('[jobs.a]\nrun = "x"\nretries = true\n', "a", "retries", "whole number >= 0"),
    ('[jobs.a]\nrun = "x"\nretries = 1.5\n', "a", "retries", "whole number >= 0"),
    ('[jobs.a]\nrun = "x"\nhold = "yes"\n', "a", "hold", "expected true or false"),
    ('[jobs.a]\nrun = "x"\nenabled = 0\n', "a", "enabled", "expected true or false"),
    ('[jobs.a]\nrun = "x"\nhost = 5\n', "a", "host", "expected a string"),
    ('[jobs.a]\nrun = "x"\nhosts = []\n', "a", "hosts", "non-empty list of host names"),
    ('[jobs.a]\nrun = "x"\nhosts = ["h", ""]\n', "a", "hosts", "non-empty list of host names"),
    ('[jobs.a]\nrun = "x"\nhosts = ["h"]\nfan_out = 0\n', "a", "fan_out", "whole number >= 1"),
    ('[jobs.a]\nrun = "x"\nhosts = ["h"]\nfan_out = "8"\n', "a", "fan_out",
     'whole number >= 1 (how many of its hosts run the job at once), got "8"'),
    ('[jobs.a]\nrun = "x"\nfan_out = 8\n', "a", "fan_out", "fan_out goes with hosts = [...]"),
    # expressions
    ('[jobs.a]\nrun = "x"\nif = true\n', "a", "if", "expected a string, got true (a boolean)"),
    ('[jobs.a]\nrun = "x"\nif = ""\n', "a", "if", "must not be empty"),
    ('[jobs.a]\nrun = "x"\nif = "zz.rows > 3"\n', "a", "if",
     'the expression refers to unknown job "zz"'),
    ('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\nif = "a.rows > 3"\n', "b", "if",
     'refers to job "a", which does not run before "b": add it to needs'),
    ('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\nneeds = ["a"]\n[jobs.c]\nrun = "x"\n'
     'needs = ["a"]\nif = "b.exit_code == 0"\n', "c", "if", 'refers to job "b", which does not'),
    ('[jobs.a]\nrun = "x"\nif = "a.exit_code == 0"\n', "a", "if",
     'refers to job "a", which does not run before "a"'),
    ('[jobs.a]\nrun = "x"\nrepeat = { until = "zz.done == 1" }\n', "a", "repeat.until",
     'unknown job "zz"'),
    ('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\nrepeat = { until = "a.x == 1" }\n', "b",
     "repeat.until", 'refers to job "a", which does not run before "b"'),
    ('[jobs.a]\nset = { X = "${zz.y}" }\n', "a", "set.X", 'unknown job "zz"'),
    ('[jobs.a]\nrun = "x"\n[jobs.b]\nset = { X = "${a.y}" }\n', "b", "set.X",
     'refers to job "a", which does not run before "b"'),
    ('[jobs.a]\nset = { X = "${1 + 2" }\n', "a", "set.X", "unclosed '${'"),
    ('[jobs.a]\nset = {}\n', "a", "set", "set needs at least one"),
    ('[jobs.a]\nset = { "a-b" = "1" }\n', "a", "set.a-b", 'bad variable name "a-b"'),
    ('[jobs.a]\nset = { X = [1] }\n', "a", "set.X", "expected a string or number"),
    ('[jobs.a]\nset = "X=1"\n', "a", "set", 'expected a table, got "X=1" (a string)'),
    # repeat
    ('[jobs.a]\nrun = "x"\nrepeat = { interval = "1s" }\n', "a", "repeat",
     "repeat needs 'until' (an expression) or 'max' (a count)"),
    ('[jobs.a]\nrun = "x"\nrepeat = {}\n', "a", "repeat", "repeat needs 'until'"),
    ('[jobs.a]\nrun = "x"\nrepeat = { max = 0 }\n', "a", "repeat.max",
     "expected a whole number >= 1, got 0"),
    ('[jobs.a]\nrun = "x"\nrepeat = { max = true }\n', "a", "repeat.max", "whole number >= 1"),
    ('[jobs.a]\nrun = "x"\nrepeat = { max = 2, untill = "1 == 1" }\n', "a", "repeat.untill",
     'unknown key "untill" in repeat (did you mean "until"?)'),
    ('[jobs.a]\nrun = "x"\nrepeat = 3\n', "a", "repeat", "expected a table, got 3 (an integer)"),
    # env and secrets
    ('[jobs.a]\nrun = "x"\nenv = { T = { secret = 1 } }\n', "a", "env.T",
     'expected { secret = "name" }'),
    ('[jobs.a]\nrun = "x"\nenv = { T = { secret = "" } }\n', "a", "env.T",
     'expected { secret = "name" }'),
    ('[jobs.a]\nrun = "x"\nenv = { T = { secret = "t", x = 1 } }\n', "a", "env.T",
     'expected { secret = "name" }'),
    ('[jobs.a]\nrun = "x"\nenv = { T = { name = "t" } }\n', "a", "env.T",
     'expected { secret = "name" }'),
    ('[jobs.a]\nrun = "x"\nenv = { "A-B" = "1" }\n', "a", "env.A-B",
     'bad environment variable name "A-B"'),
    ('[jobs.a]\nrun = "x"\nenv = { T = ["x"] }\n', "a", "env.T", "expected a string or number"),
    ('[jobs.a]\nrun = "x"\nenv = "T=1"\n', "a", "env", 'expected a table, got "T=1" (a string)'),
    # sql and databases
    ('[jobs.a]\nsql = "select 1"\n', "a", "database", "a sql job needs 'database'"),
    ('[jobs.a]\nsql = "select 1"\ndatabase = "postgresql://u:pw@h/db"\n', "a", "database",
     "password in the database URL"),
    ('[jobs.a]\nsql = "select 1"\ndatabase = "postgres://:pw@h/db"\n', "a", "database",
     "~/.pgpass"),
    ('[jobs.a]\nsql = "select 1"\ndatabase = "postgresql://u@h/db?sslmode=require&password=pw"\n',
     "a", "database", "password in the database URL"),
    ('[jobs.a]\nsql = "select 1"\ndatabase = "mysql://h/db"\n', "a", "database",
     'unsupported database "mysql://h/db"'),
    ('[defaults]\ndatabase = "postgresql://u:pw@h/db"\n[jobs.a]\nsql = "select 1"\n', None,
     "defaults.database", "password in the database URL"),
    # wait_until
    ('[jobs.a]\nwait_until = "25:99"\n', "a", "wait_until", "expected a time of day"),
    ('[jobs.a]\nwait_until = "48:00"\n', "a", "wait_until", 'up to "47:59"'),
    ('[jobs.a]\nwait_until = "23:30:60"\n', "a", "wait_until", "expected a time of day"),
    ('[jobs.a]\nwait_until = "7pm"\n', "a", "wait_until", 'got "7pm"'),
    ('[jobs.a]\nwait_until = 2330\n', "a", "wait_until", "got 2330"),
    # other actions
    ('[jobs.a]\nrelease = "a b"\n', "a", "release", "expected \"job\" or \"jobnet/job\""),
    ('[jobs.a]\nzabbix = { server = "s" }\n', "a", "zabbix", "zabbix needs host, key, value"),
    ('[jobs.a]\nzabbix = { server = "s", host = "h", key = "k", value = 1, hots = 2 }\n', "a",
     "zabbix.hots", 'unknown key "hots" in zabbix'),
    ('[jobs.a]\nreboot = { mode = "soft" }\n', "a", "reboot.mode",
     'expected one of "normal", "force", got "soft"'),
    ('[jobs.a]\nreboot = { wait = "long" }\n', "a", "reboot.wait", 'bad duration "long"'),
    ('[jobs.a]\nwait_file = { timeout = "1m" }\n', "a", "wait_file.path", "wait_file needs 'path'"),
    ('[jobs.a]\nwait_file = { path = "f", timeout = "x" }\n', "a", "wait_file.timeout",
     'bad duration "x"'),
    ('[jobs.a]\nwait_file = { path = "f", delete = "yes" }\n', "a", "wait_file.delete",
     "expected true or false"),
    ('[jobs.a]\nwait_file = { path = "f", pth = "g" }\n', "a", "wait_file.pth",
     '(did you mean "path"?)'),
    ('[jobs.a]\ntransfer = { from = "x" }\n', "a", "transfer.to", "transfer needs 'to'"),
    ('[jobs.a]\ntransfer = { from = "x", to = "y", overwrite = 1 }\n', "a", "transfer.overwrite",
     "expected true or false"),
    ('[jobs.a]\njobnet = ""\n', "a", "jobnet", "must not be empty"),
    ('[jobs.a]\nstart = 1\n', "a", "start", "expected a string"),
    # schedules (more cases in test_schedules.py)
    ('[schedule]\ncron = "30 2 * * *"\ntimezon = "UTC"\n' + OK, None, "schedule.timezon",
     'unknown key "timezon" in schedule (did you mean "timezone"?)'),
    ('[schedule]\ncron = "30 2 * * *"\ntimezone = "Mars/Olympus"\n' + OK, None,
     "schedule.timezone", 'unknown time zone "Mars/Olympus"'),
    ('[schedule]\ncron = "30 2 * * *"\ntimezone = "../../etc/passwd"\n' + OK, None,
     "schedule.timezone", "unknown time zone"),
    ('[schedule]\ncron = "30 2 * * *"\ntimezone = "America"\n' + OK, None,
     "schedule.timezone", 'unknown time zone "America"'),
    ('[schedule]\ncron = "30 2 * * *"\ntimezone = 9\n' + OK, None, "schedule.timezone",
     "expected a string, got 9 (an integer)"),
    ('[schedule]\ncalendar = "business-days"\n' + OK, None, "schedule",
     "a schedule needs one of 'cron', 'times' or 'every'"),
    ('[schedule]\ncron = "* * * * *"\noverlap = "never"\n' + OK, None, "schedule.overlap",
     'got "never"'),
    ('[schedule]\ncron = "* * * * *"\ncatchup = "some"\n' + OK, None, "schedule.catchup",
     'expected one of "none", "latest", "all"'),
    ('[schedule]\ncron = "* * * * *"\ncatchup_window = "a while"\n' + OK, None,
     "schedule.catchup_window", 'bad duration "a while"'),
    ('[schedule]\nevery = "often"\n' + OK, None, "schedule.every", 'bad duration "often"'),
    ('[[schedule]]\ncron = "* * * * *"\n[[schedule]]\nevery = "15m"\novrlap = "skip"\n' + OK,
     None, "schedule[1].ovrlap", 'unknown key "ovrlap" in schedule[1] (did you mean "overlap"?)'),
    ('schedule = "daily"\n' + OK, None, "schedule",
     'expected a table like { cron = "30 2 * * *" }, got "daily" (a string)'),
]


@pytest.mark.parametrize(("text", "job", "field", "message"), CASES,
                         ids=[f"{c[1]}.{c[2]}:{c[3][:30]}" for c in CASES])
def test_each_malformed_input_is_one_problem_naming_file_job_and_field(
        text: str, job: str | None, field: str | None, message: str) -> None:
    ps = problems(text)
    assert len(ps) == 1, "\n".join(map(str, ps))
    [p] = ps
    assert (p.file, p.job, p.field) == (str(FILE), job, field)
    assert message in p.message
    shown = str(p)
    assert shown.startswith(str(FILE))
    if job is not None:
        assert f"job {job!r}" in shown
    if field is not None:
        assert f"field {field!r}" in shown


@pytest.mark.parametrize(("text", "job", "field", "line", "file_column", "column", "message"), [
    pytest.param('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"\n'
                 'if = "a.rows >> 3"\n', "b", "if", 6, 15, 9, "found '>'", id="if-operator"),
    pytest.param('[jobs.a]\nrun = "x"\nif = "(1 + 2"\n', "a", "if", 3, 13, 7,
                 'bad expression "(1 + 2"', id="if-unclosed"),
    pytest.param('[jobs.a]\nrun = "x"\nif = "DAY = 1"\n', "a", "if", 3, 11, 5,
                 'bad expression "DAY = 1"', id="if-assign"),
    pytest.param('[jobs.a]\nrun = "x"\nrepeat = { until = "a.x ==" }\n', "a", "repeat.until",
                 3, 27, 7, "found end of expression", id="repeat-until"),
    pytest.param('[jobs.a]\nset = { X = "n=${1 +}" }\n', "a", "set.X", 2, 21, 8,
                 "found end of expression", id="set-template"),
    pytest.param('[jobs.a]\nrun = "x"\nif = \'\'\'\n(1 + 2\'\'\'\n', "a", "if", 3, None, 7,
                 'bad expression "(1 + 2"', id="multi-line-string"),
    pytest.param('[jobs.a]\nrun = "x"\nif = "\\"a\\" ==="\n', "a", "if", 3, None, 7,
                 "unexpected character '='", id="escapes-before-the-error"),
])
def test_bad_expression_reports_its_line_and_column(
        text: str, job: str, field: str, line: int, file_column: int | None, column: int,
        message: str) -> None:
    [p] = problems(text)
    assert (p.job, p.field, p.line, p.column) == (job, field, line, file_column)
    assert message in p.message
    # the column in the file where it can be told, and always the one in the expression
    assert str(p).startswith(f"{FILE}:{line}:{file_column} " if file_column else f"{FILE}:{line} ")
    assert f"(at column {column} of the expression)" in str(p)


# ------------------------------------------------------------------ many problems at once


def test_every_problem_in_a_file_is_reported_together() -> None:
    text = """
nmae = "typo"
on_failure = "continue"

[schedule]
cron = "* * * * *"
timezone = "Nowhere/City"

[jobs.extract]
run = "./extract.sh"
timeout = "5 minutes"

[jobs.transform]
run = "./t.sh"
sleep = "1s"

[jobs.load]
needs = ["transform", "extrct"]
run = "./load.sh"
stop_codes = "x"
if = "transform.rows >"

[jobs.a]
run = "x"
needs = ["b"]

[jobs.b]
run = "x"
needs = ["a"]

[jobs.my-job]
sql = "select 1"
"""
    ps = problems(text)
    assert where(ps) == {
        (None, "nmae"), (None, "on_failure"), (None, "schedule.timezone"),
        ("extract", "timeout"), ("transform", None), ("load", "needs"),
        ("load", "stop_codes"), ("load", "if"), ("a", "needs"),
        ("my-job", None), ("my-job", "database"),
    }
    assert len(ps) == len(where(ps))
    assert all(p.file == str(FILE) for p in ps)
    messages = "\n".join(p.message for p in ps)
    assert 'unknown job "extrct" in needs (did you mean "extract"?)' in messages
    assert "cycle: a -> b -> a" in messages


def test_a_job_with_its_own_problem_does_not_make_its_dependents_fail_too() -> None:
    text = ('[jobs.a]\nrun = "x"\ntimeout = "zz"\n'
            '[jobs.b]\nrun = "x"\nneeds = ["a"]\n'
            '[jobs.c]\nrun = "x"\nneeds = ["b"]\nif = "a.rows > 1"\n')
    ps = problems(text)
    assert where(ps) == {("a", "timeout")}


def test_a_bad_default_is_reported_once_not_per_job() -> None:
    jobs = "".join(f'[jobs.j{i}]\nrun = "x"\n' for i in range(5))
    ps = problems('[defaults]\ntimeout = "soon"\nretries = -1\n' + jobs)
    assert where(ps) == {(None, "defaults.timeout"), (None, "defaults.retries")}
    assert len(ps) == 2


def test_a_job_overriding_a_bad_default_is_not_blamed() -> None:
    ps = problems('[defaults]\ntimeout = "soon"\n[jobs.a]\nrun = "x"\ntimeout = "1m"\n'
                  '[jobs.b]\nrun = "x"\ntimeout = "later"\n')
    assert where(ps) == {("b", "timeout")}


def chain(n: int, *, closed: bool) -> str:
    """j0 needs j1 needs ... j{n-1}, declared bottom-up; `closed` makes j{n-1} need j0."""
    return "".join(
        f'[jobs.j{i}]\nrun = "x"\n'
        + (f'needs = ["j{i + 1}"]\n' if i < n - 1 else ('needs = ["j0"]\n' if closed else ""))
        for i in range(n))


def test_a_long_dependency_chain_declared_bottom_up_loads() -> None:
    # deeper than the recursion limit: a recursive graph walk would crash here
    n = 1500
    jobnet = load_text(chain(n, closed=False)
                       + f'[jobs.last]\nrun = "x"\nneeds = ["j0"]\nif = "j{n - 1}.x == 1"\n')
    assert len(jobnet.jobs) == n + 1
    assert jobnet.jobs["j0"].needs == ("j1",)
    assert jobnet.jobs["last"].if_ == f"j{n - 1}.x == 1"


def test_a_long_cycle_is_reported_not_crashed_on() -> None:
    n = 1500
    [p] = problems(chain(n, closed=True))
    assert (p.job, p.field) == ("j0", "needs")
    assert p.message.count(" -> ") == n
    assert "j0 -> j1 -> j2" in p.message and f"j{n - 1} -> j0;" in p.message


# ------------------------------------------------------------------ good files


def test_defaults_are_inherited_env_is_merged_and_jobs_override() -> None:
    jobnet = load_text("""
[defaults]
host = "local"
timeout = "30m"
retries = 2
shell = "/bin/bash"
env = { A = "1", B = "2", TOKEN = { secret = "api" } }

[jobs.plain]
run = "x"

[jobs.custom]
run = "x"
timeout = 45
retries = 0
env = { B = "3", C = 4 }
""")
    plain, custom = jobnet.jobs["plain"], jobnet.jobs["custom"]
    assert (plain.host, plain.timeout, plain.retries, plain.shell) == ("local", 1800.0, 2,
                                                                      "/bin/bash")
    assert plain.env == {"A": "1", "B": "2", "TOKEN": Secret(name="api")}
    assert (custom.timeout, custom.retries, custom.shell) == (45.0, 0, "/bin/bash")
    assert custom.env == {"A": "1", "B": "3", "C": "4", "TOKEN": Secret(name="api")}


def test_job_fields_without_defaults_take_the_model_defaults() -> None:
    job = load_text(OK).jobs["a"]
    assert (job.host, job.hosts, job.timeout, job.retries, job.retry_delay, job.on_timeout,
            job.stop_codes, job.hold, job.enabled, job.env, job.needs, job.if_) == \
        ("local", (), None, 0, 0.0, OnTimeout.STOP, None, False, True, {}, (), None)
    assert job.failed_exit(1) and job.failed_exit(255) and not job.failed_exit(0)


def test_mode_sequence_chains_jobs_in_file_order() -> None:
    jobnet = load_text("""
mode = "sequence"
[jobs.first]
run = "x"
[jobs.second]
run = "x"
[jobs.side]
run = "x"
needs = "first"
[jobs.last]
run = "x"
needs = ["first", "second"]
""")
    assert {n: j.needs for n, j in jobnet.jobs.items()} == {
        "first": (), "second": ("first",), "side": ("second", "first"),
        "last": ("side", "first", "second"),
    }
    assert jobnet.order() == ["first", "second", "side", "last"]


def test_mode_graph_adds_no_needs() -> None:
    jobnet = load_text('[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n')
    assert [j.needs for j in jobnet.jobs.values()] == [(), ()]


@pytest.mark.parametrize(("value", "seconds"), [
    ('"90s"', 90.0), ('"30m"', 1800.0), ('"4h"', 14400.0), ('"1d"', 86400.0),
    ('"1h30m"', 5400.0), ("45", 45.0), ('"45"', 45.0), ('"1h 30m"', 5400.0), ('"500ms"', 0.5),
    ('"1.5s"', 1.5), ("1.5", 1.5), ("0", 0.0), ('"1d2h3m4s"', 93784.0),
])
def test_durations_in_a_file(value: str, seconds: float) -> None:
    jobnet = load_text(f"timeout = {value}\n[jobs.a]\nsleep = {value}\n"
                       f"[jobs.b]\nrun = \"x\"\ntimeout = {value}\nretry_delay = {value}\n")
    a, b = jobnet.jobs["a"], jobnet.jobs["b"]
    assert a.action == SleepAction(seconds=seconds)
    assert (jobnet.timeout, b.timeout, b.retry_delay) == (seconds, seconds, seconds)


@pytest.mark.parametrize(("source", "failing", "passing"), [
    ('"1-255"', [1, 100, 255], [0]),
    ('"1-9,255"', [1, 5, 9, 255], [0, 10, 254]),
    ('"2"', [2], [0, 1, 3]),
    ("3", [3], [0, 1, 4]),
    ('"0"', [0], [1, 255]),
    ('" 1 - 3 , 7 "', [1, 2, 3, 7], [0, 4, 8]),
])
def test_stop_codes_in_a_file(source: str, failing: list[int], passing: list[int]) -> None:
    job = load_text(f'[jobs.a]\nrun = "x"\nstop_codes = {source}\n').jobs["a"]
    assert job.stop_codes is not None
    assert [c for c in failing if not job.failed_exit(c)] == []
    assert [c for c in passing if job.failed_exit(c)] == []


def test_every_action_kind_builds_its_model() -> None:
    jobnet = load_text("""
[jobs.run]
run = "echo hi"
[jobs.sql]
sql = "select 1"
database = "sqlite:///data.db"
[jobs.pg]
sql = "select 1"
database = "postgresql://etl@db.example:5432/dw?sslmode=require"
[jobs.sub]
jobnet = "child"
[jobs.task]
start = "other"
[jobs.nap]
sleep = "30s"
[jobs.clock]
wait_until = "25:30:15"
[jobs.file]
wait_file = "in/ready.flag"
[jobs.file2]
wait_file = { path = "/x", host = "h", timeout = "5m", delete = true, check = true }
[jobs.copy]
transfer = { from = "h1:/a", to = "/b/", overwrite = true }
[jobs.vars]
set = { NEXT = "${N + 1}", TAG = "load-${today()}", PLAIN = 3 }
[jobs.rel]
release = "nightly/load"
[jobs.rel2]
release = "run"
[jobs.zbx]
zabbix = { server = "zbx", host = "web1", key = "jaz.done", value = 1 }
[jobs.boot]
reboot = { host = "web1", mode = "force", wait = "10m" }
""")
    actions = {n: j.action for n, j in jobnet.jobs.items()}
    assert actions == {
        "run": RunAction(script="echo hi"),
        "sql": SqlAction(statements="select 1", database="sqlite:///data.db"),
        "pg": SqlAction(statements="select 1",
                        database="postgresql://etl@db.example:5432/dw?sslmode=require"),
        "sub": JobnetAction(name="child"),
        "task": StartAction(name="other"),
        "nap": SleepAction(seconds=30.0),
        "clock": WaitUntilAction(hour=25, minute=30, second=15),
        "file": WaitFileAction(path="in/ready.flag"),
        "file2": WaitFileAction(path="/x", host="h", timeout=300.0, delete=True, check=True),
        "copy": TransferAction(source="h1:/a", dest="/b/", overwrite=True),
        "vars": SetAction(values={"NEXT": "${N + 1}", "TAG": "load-${today()}", "PLAIN": "3"}),
        "rel": ReleaseAction(target="nightly/load"),
        "rel2": ReleaseAction(target="run"),
        "zbx": ZabbixAction(server="zbx", host="web1", key="jaz.done", value="1"),
        "boot": RebootAction(host="web1", mode="force", wait=600.0),
    }
    assert {j.kind for j in jobnet.jobs.values()} >= {"run", "sql", "reboot", "set"}


def test_common_fields_are_parsed() -> None:
    job = load_text("""
[jobs.up]
run = "x"
[jobs.a]
run = "x"
needs = ["up", "up"]
if = "up.rows > 1000 and DAY != ''"
hosts = ["web1", "web2"]
user = "etl"
cwd = "/srv"
shell = "/bin/bash"
on_timeout = "warn"
retries = 3
retry_delay = "10s"
repeat = { until = "a.exit_code == 0", max = 5, interval = "30s" }
hold = true
enabled = false
queue = "io"
stop_command = "kill-it"
description = "the job"
""").jobs["a"]
    assert job.needs == ("up",)
    assert job.if_ == "up.rows > 1000 and DAY != ''"
    assert job.hosts == ("web1", "web2")
    assert (job.user, job.cwd, job.shell, job.queue, job.stop_command, job.description) == \
        ("etl", "/srv", "/bin/bash", "io", "kill-it", "the job")
    assert (job.on_timeout, job.retries, job.retry_delay, job.hold, job.enabled) == \
        (OnTimeout.WARN, 3, 10.0, True, False)
    assert job.repeat == Repeat(until="a.exit_code == 0", max=5, interval=30.0)


def test_top_level_fields_are_parsed() -> None:
    jobnet = load_text("""
name = "nightly-etl.v2"
description = "Load orders"
on_failure = "stop"
timeout = "4h"
[params]
DAY = "yesterday"
COUNT = 3
FLAG = true
[[schedule]]
cron = "30 2 * * *"
timezone = "Asia/Tokyo"
overlap = "skip"
catchup = "latest"
catchup_window = "6h"
[[schedule]]
every = "15m"
window = "08:00-18:00"
[jobs.a]
run = "x"
""", path=FILE)
    assert (jobnet.name, jobnet.description, jobnet.on_failure, jobnet.timeout) == \
        ("nightly-etl.v2", "Load orders", OnFailure.STOP, 14400.0)
    assert jobnet.params == {"DAY": "yesterday", "COUNT": "3", "FLAG": "true"}
    assert [(s.cron.text if s.cron else None, s.every) for s in jobnet.schedules] == \
        [("30 2 * * *", None), (None, 900)]
    assert jobnet.schedules[1].windows == ((8 * 3600, 18 * 3600),)
    assert jobnet.path == FILE.resolve()


@pytest.mark.parametrize(("text", "kwargs", "name"), [
    (OK, {"path": Path("dir/nightly-etl.toml")}, "nightly-etl"),
    ('name = "given"\n' + OK, {"path": Path("dir/nightly-etl.toml")}, "given"),
    (OK, {}, "jobnet"),
    (OK, {"name": "from-caller"}, "from-caller"),
])
def test_name_defaults_to_the_file_stem(text: str, kwargs: dict[str, object], name: str) -> None:
    assert load_text(text, **kwargs).name == name  # type: ignore[arg-type]


def test_load_file_reads_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "nightly-etl.toml"
    path.write_text(OK, encoding="utf-8")
    jobnet = load_file(path)
    other = load_file(str(path))
    assert (jobnet.name, jobnet.path, jobnet.text) == ("nightly-etl", path.resolve(), OK)
    assert jobnet.hash == other.hash and len(jobnet.hash) == 64
    assert jobnet.directory == tmp_path.resolve()


def test_load_file_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "win.toml"
    path.write_bytes(b"\xef\xbb\xbf" + OK.encode())
    assert list(load_file(path).jobs) == ["a"]


def test_load_file_names_the_file_in_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[jobs.a]\nrun = "x"\ntimeout = "soon"\n[jobs.b]\nrun = 1\n')
    with pytest.raises(JobnetInvalid) as info:
        load_file(path)
    assert [(p.file, p.job, p.field) for p in info.value.problems] == \
        [(str(path), "a", "timeout"), (str(path), "b", "run")]
    assert str(info.value).count(str(path)) == 2


def test_load_file_missing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        load_file(tmp_path / "nope.toml")
    assert info.value.exit_code == 4
    assert "nope.toml: no such jobnet file" in info.value.message


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8"], ids=["directory", "binary"])
def test_load_file_unreadable_is_invalid(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(JobnetInvalid) as info:
        load_file(path)
    [p] = info.value.problems
    assert p.file == str(path) and "cannot read file" in p.message


def test_load_file_through_a_symlink_keeps_the_name_of_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text(OK)
    link = tmp_path / "alias.toml"
    os.symlink(real, link)
    assert load_file(link).name == "alias"


# ------------------------------------------------------------------ graph queries

DIAMOND = """
[jobs.report]
run = "x"
needs = ["big", "small"]
[jobs.small]
run = "x"
needs = ["transform"]
[jobs.big]
run = "x"
needs = ["transform"]
[jobs.transform]
run = "x"
needs = ["extract"]
[jobs.extract]
run = "x"
[jobs.lonely]
run = "x"
"""


def test_order_is_topological_with_ties_in_file_order() -> None:
    jobnet = load_text(DIAMOND)
    order = jobnet.order()
    assert sorted(order) == sorted(jobnet.jobs)
    for name, job in jobnet.jobs.items():
        assert all(order.index(need) < order.index(name) for need in job.needs), name
    assert order.index("small") < order.index("big")  # both ready together: file order
    flat = load_text("".join(f'[jobs.{n}]\nrun = "x"\n' for n in ("c", "a", "b")))
    assert flat.order() == ["c", "a", "b"]


@pytest.mark.parametrize(("job", "upstream", "downstream"), [
    ("extract", [], ["transform", "small", "big", "report"]),
    ("transform", ["extract"], ["small", "big", "report"]),
    ("big", ["extract", "transform"], ["report"]),
    ("report", ["extract", "transform", "small", "big"], []),
    ("lonely", [], []),
])
def test_upstream_and_downstream(job: str, upstream: list[str], downstream: list[str]) -> None:
    jobnet = load_text(DIAMOND)
    assert jobnet.upstream(job) == upstream
    assert jobnet.downstream(job) == downstream


def test_expressions_may_refer_to_any_job_upstream() -> None:
    jobnet = load_text(DIAMOND.replace('needs = ["big", "small"]',
                                       'needs = ["big", "small"]\nif = "extract.rows > 1"'))
    assert jobnet.jobs["report"].if_ == "extract.rows > 1"


# ------------------------------------------------------------------ what `jaz run` refuses


@pytest.mark.parametrize(("job_toml", "field", "message"), [
    ('start = "other"', "start", 'the "start" action needs the server'),
    ('release = "other/job"', "release", 'the "release" action needs the server'),
    ('reboot = { host = "web1" }', "reboot.host", 'host "web1" is not in the hosts file'),
    ('reboot = { mode = "force" }', "reboot", 'the "reboot" action needs the server'),
    ('run = "x"\nhost = "otherhost"', "host", 'host "otherhost" is not in the hosts file'),
    ('run = "x"\nhosts = ["web2"]', "hosts", 'host "web2" is not in the hosts'),
    ('wait_file = { path = "/f", host = "web1" }', "wait_file.host", "waits for files here or"),
    ('transfer = { from = "web1:/a", to = "/b" }', "transfer.from", 'host "web1"'),
    ('transfer = { from = "/a", to = "web2:/b" }', "transfer.to", 'host "web2"'),
])
def test_local_problems_name_server_only_jobs(tmp_path: Path, job_toml: str, field: str,
                                              message: str) -> None:
    path = tmp_path / "net.toml"
    path.write_text(f'[jobs.ok]\nrun = "x"\n[jobs.far]\n{job_toml}\n')
    [p] = local_problems(load_file(path))
    assert (p.file, p.job, p.field) == (str(path.resolve()), "far", field)
    assert message in p.message


def test_local_problems_accept_a_local_jobnet(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    path.write_text('[jobs.a]\nrun = "x"\nhost = "local"\n[jobs.b]\nsleep = 1\n'
                    '[jobs.c]\ntransfer = { from = "C:/a", to = "./b" }\n'
                    '[jobs.d]\nwait_file = { path = "f", host = "local" }\n'
                    '[jobs.e]\nsql = "select 1"\ndatabase = "sqlite:///x.db"\n'
                    '[jobs.f]\nzabbix = { server = "zbx", host = "h", key = "k", value = 1 }\n')
    assert local_problems(load_file(path)) == []


def test_local_problems_follow_sub_jobnets(tmp_path: Path) -> None:
    (tmp_path / "parent.toml").write_text(
        '[jobs.child]\njobnet = "child"\n[jobs.gone]\njobnet = "missing"\n'
        '[jobs.bad]\njobnet = "broken.toml"\n[jobs.me]\njobnet = "parent"\n')
    (tmp_path / "child.toml").write_text('[jobs.kick]\nstart = "x"\n')
    (tmp_path / "broken.toml").write_text('[jobs.b]\nsleep = "zz"\n')
    ps = local_problems(load_file(tmp_path / "parent.toml"))
    parent, child, broken = (str((tmp_path / f).resolve()) for f in
                             ("parent.toml", "child.toml", "broken.toml"))
    assert {(p.file, p.job, p.field) for p in ps} == {
        (child, "kick", "start"), (parent, "gone", "jobnet"),
        (str(tmp_path / "broken.toml"), "b", "sleep"), (parent, "me", "jobnet"),
    }
    assert broken.endswith("broken.toml")
    msgs = {p.job: p.message for p in ps}
    assert 'jobnet "missing" not found' in msgs["gone"]
    assert "includes itself" in msgs["me"]


# ------------------------------------------------------------------ durations module


@pytest.mark.parametrize(("value", "seconds"), [
    ("90s", 90.0), ("30m", 1800.0), ("4h", 14400.0), ("1d", 86400.0), ("1h30m", 5400.0),
    (45, 45.0), (0, 0.0), (2.5, 2.5), ("45", 45.0), (" 10s ", 10.0), ("1h 30m", 5400.0),
    ("250ms", 0.25), ("0.5m", 30.0), ("1m1m", 120.0),
])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(("value", "message"), [
    ("5 minutes", 'bad duration "5 minutes"'), ("abc", "bad duration"), ("", 'bad duration ""'),
    ("-1s", "bad duration"), (-1, "cannot be negative"), (-0.5, "cannot be negative"),
    ("5M", "bad duration"), ("1e3s", "bad duration"), ("s", "bad duration"), ("1.s", "bad"),
    (True, "expected a duration"), (None, "bad duration None"), ([1], "bad duration"),
    (math.inf, "finite"), (math.nan, "finite"),
])
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0.0s"), (0.4, "0.4s"), (9.94, "9.9s"), (12, "12s"), (59.4, "59s"), (60, "1m00s"),
    (185, "3m05s"), (3599, "59m59s"), (3600, "1h00m"), (7800, "2h10m"), (86399, "23h59m"),
    (86400, "1d00h"), (90000, "1d01h"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("value", "ranges"), [
    ("1-255", ((1, 255),)), ("1,3,10-20", ((1, 1), (3, 3), (10, 20))), (5, ((5, 5),)),
    ("0", ((0, 0),)), ("255", ((255, 255),)), (" 1 - 2 ", ((1, 2),)), ("7-7", ((7, 7),)),
])
def test_parse_stop_codes(value: object, ranges: tuple[tuple[int, int], ...]) -> None:
    codes = parse_stop_codes(value)
    assert codes.ranges == ranges
    assert codes.source == str(value)


@pytest.mark.parametrize(("value", "message"), [
    ("5-1", 'reversed range "5-1"'), ("x", 'bad stop code "x"'), (300, "from 0 to 255"),
    ("1-300", "from 0 to 255"), ("", "expected exit codes"), ("  ", "expected exit codes"),
    (True, "expected exit codes"), (1.5, "expected exit codes"), (None, "expected exit codes"),
    ("1;2", 'bad stop code "1;2"'), ("-3", 'bad stop code "-3"'), ("1-", 'bad stop code "1-"'),
])
def test_parse_stop_codes_rejects(value: object, message: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_stop_codes(value)
    assert message in str(info.value)
