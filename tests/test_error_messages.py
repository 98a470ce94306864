"""Every error quotes the value as written, says where it is and how to fix it.

Four tables of bad values and the text each message must hold: jobnet fields,
calendar keys, server config keys (each through the real loader, with the file, the
TOML line and the field of the place) and command-line options (through the real
`jaz` command in a subprocess: exit 2, one line on stderr, no traceback). A string
value is quoted as TOML writes it ("5 minutes", in double quotes); numbers, booleans,
arrays and tables as TOML writes them too (5, true, [], { secret = 1 }).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaz.engine.calendars import CalendarLibrary, load_calendar_text
from jaz.engine.loader import load_text
from jaz.errors import JobnetInvalid, Problem
from jaz.server.config import parse_config

OK = '[jobs.a]\nrun = "x"\n'


def only_problem(load: object, text: str, path: Path) -> Problem:
    with pytest.raises(JobnetInvalid) as info:
        load(text, path=path)  # type: ignore[operator]
    assert len(info.value.problems) == 1, "\n".join(map(str, info.value.problems))
    return info.value.problems[0]


def check(p: Problem, path: Path, place: str, fragments: tuple[str, ...]) -> None:
    """`place` is what follows the file name: ":LINE (job 'J', field 'F')"."""
    shown = str(p)
    assert shown.startswith(f"{path}{place}: "), shown
    for fragment in fragments:
        assert fragment in p.message, f"{fragment!r} not in {p.message!r}"


# ------------------------------------------------------------------ jobnets

JOBNET_CASES = [
    # top level
    ('name = 5\n' + OK, ":1 (field 'name')", ("got 5 (an integer)", 'in quotes, "5"')),
    ('name = "a b"\n' + OK, ":1 (field 'name')",
     ('bad jobnet name "a b"', 'letters, digits, "_", "-" and "."')),
    ('nmae = "x"\n' + OK, ":1 (field 'nmae')",
     ('unknown key "nmae" in the jobnet', '(did you mean "name"?)')),
    ('colour = "red"\n' + OK, ":1 (field 'colour')",
     ('unknown key "colour"', "known keys are defaults, description, jobs, mode, name, "
      "on_failure, params, schedule, timeout")),
    ('on_failure = "continue"\n' + OK, ":1 (field 'on_failure')",
     ('expected one of "halt", "stop", got "continue"',)),
    ('mode = "Sequence"\n' + OK, ":1 (field 'mode')",
     ('got "Sequence"', '(did you mean "sequence"?)')),
    ('timeout = "5 minutes"\n' + OK, ":1 (field 'timeout')",
     ('bad duration "5 minutes"', 'write it like "90s", "30m"', "units are ms, s, m, h")),
    ('[params]\nDAY = ["x"]\n' + OK, ":2 (field 'params.DAY')",
     ('expected a string or number, got ["x"] (a list)',)),
    ('[defaults]\nretries = -1\n[jobs.a]\nrun = "x"\n[jobs.b]\nrun = "x"\n',
     ":2 (field 'defaults.retries')", ("expected a whole number >= 0, got -1",)),
    ('[defaults]\nrun = "x"\n' + OK, ":2 (field 'defaults.run')",
     ('key "run" cannot be a default (an action)', "defaults take: cwd, database")),
    ('[jobs.my-job]\nrun = "x"\n', ":1 (job 'my-job')",
     ('bad job name "my-job"', "in expressions as my_job.NAME")),
    ('jobs.a.run = 5\n', ":1 (job 'a', field 'run')", ("got 5 (an integer)",)),
    ('jobs = { a = 1 }\n', ":1 (job 'a')", ("expected a table [jobs.a], got 1 (an integer)",)),
    # job fields, each on its own line
    ('[jobs.extract]\nrun = "x"\n[jobs.load]\nrun = "x"\nneeds = ["extrakt"]\n',
     ":5 (job 'load', field 'needs')",
     ('unknown job "extrakt" in needs', '(did you mean "extract"?)')),
    ('[jobs.a]\nrun = "x"\nneeds = ["zz"]\n', ":3 (job 'a', field 'needs')",
     ('unknown job "zz" in needs; the jobs are a',)),
    ('[jobs.a]\nrun = "x"\nneeds = 5\n', ":3 (job 'a', field 'needs')",
     ('expected a list of job names like ["extract"], got 5 (an integer)',)),
    ('[jobs.a]\nrun = "x"\nhosts = []\n', ":3 (job 'a', field 'hosts')",
     ('like ["web1", "web2"], got [] (a list)',)),
    ('[jobs.a]\nrun = "x"\nhost = 5\n', ":3 (job 'a', field 'host')",
     ("expected a string, got 5 (an integer)",)),
    ('[jobs.a]\nrun = "x"\nenv = { "A-B" = "1" }\n', ":3 (job 'a', field 'env.A-B')",
     ('bad environment variable name "A-B"', 'letters, digits and "_"')),
    ('[jobs.a]\nrun = "x"\nenv = { T = { secret = 1 } }\n', ":3 (job 'a', field 'env.T')",
     ('expected { secret = "name" }, got { secret = 1 }',)),
    ('[jobs.a]\nrun = "x"\ntimeout = "5M"\n', ":3 (job 'a', field 'timeout')",
     ('bad duration "5M"', "in lower case")),
    ('[jobs.a]\nrun = "x"\nretry_delay = -1\n', ":3 (job 'a', field 'retry_delay')",
     ("a duration cannot be negative, got -1", '"90s"')),
    ('[jobs.a]\nrun = "x"\non_timeout = "kill"\n', ":3 (job 'a', field 'on_timeout')",
     ('expected one of "stop", "warn", got "kill"',)),
    ('[jobs.a]\nrun = "x"\nretries = 1.5\n', ":3 (job 'a', field 'retries')",
     ("expected a whole number >= 0, got 1.5",)),
    ('[jobs.a]\nrun = "x"\nrepeat = { max = 0 }\n', ":3 (job 'a', field 'repeat.max')",
     ("expected a whole number >= 1, got 0",)),
    ('[jobs.a]\nrun = "x"\nrepeat = { max = 2, untill = "1 == 1" }\n',
     ":3 (job 'a', field 'repeat.untill')",
     ('unknown key "untill" in repeat', '(did you mean "until"?)')),
    ('[jobs.a]\nrun = "x"\nstop_codes = "1-256"\n', ":3 (job 'a', field 'stop_codes')",
     ('stop codes go from 0 to 255, got "1-256"',)),
    ('[jobs.a]\nrun = "x"\nstop_codes = "1,9-3"\n', ":3 (job 'a', field 'stop_codes')",
     ('reversed range "9-3" in "1,9-3"', 'as in "3-9"')),
    ('[jobs.a]\nrun = "x"\nstop_codes = true\n', ":3 (job 'a', field 'stop_codes')",
     ('expected exit codes, got true', 'like "1-255" or "1,3,5-9"')),
    ('[jobs.a]\nrun = "x"\nhold = "yes"\n', ":3 (job 'a', field 'hold')",
     ('expected true or false (without quotes), got "yes" (a string)',)),
    ('[jobs.a]\nrun = "x"\nenabled = 0\n', ":3 (job 'a', field 'enabled')",
     ("got 0 (an integer)",)),
    ('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"\nif = "zz.rows > 1"\n',
     ":6 (job 'b', field 'if')",
     ('the expression refers to unknown job "zz"; the jobs are a, b',)),
    ('[jobs.a]\nrun = "x"\n[jobs.b]\nneeds = ["a"]\nrun = "x"\nif = "a.rows >> 3"\n',
     ":6:15 (job 'b', field 'if')",
     ('bad expression "a.rows >> 3"', "found '>' (at column 9 of the expression)")),
    ('[jobs.a]\nsql = "select 1"\ndatabase = "mysql://h/db"\n',
     ":3 (job 'a', field 'database')",
     ('unsupported database "mysql://h/db"', '"sqlite:///path" or "postgresql://')),
    ('[jobs.a]\nwait_until = "7pm"\n', ":2 (job 'a', field 'wait_until')",
     ('got "7pm"', '"HH:MM" or "HH:MM:SS"')),
    ('[jobs.a]\nrelease = "a b"\n', ":2 (job 'a', field 'release')",
     ('expected "job" or "jobnet/job", got "a b"',)),
    ('[jobs.a]\nsleep = true\n', ":2 (job 'a', field 'sleep')",
     ("expected a duration, got true",)),
    ('[jobs.a]\nwait_file = { path = "f", delete = "yes" }\n',
     ":2 (job 'a', field 'wait_file.delete')", ('got "yes" (a string)',)),
    ('[jobs.a]\ntransfer = { from = "x", to = "y", overwrite = 1 }\n',
     ":2 (job 'a', field 'transfer.overwrite')", ("got 1 (an integer)",)),
    ('[jobs.a]\nreboot = { mode = "soft" }\n', ":2 (job 'a', field 'reboot.mode')",
     ('expected one of "normal", "force", got "soft"',)),
    ('[jobs.a]\nzabbix = { server = "zbx:0", host = "h", key = "k", value = "v" }\n',
     ":2 (job 'a', field 'zabbix.server')",
     ('bad Zabbix server address "zbx:0"', "from 1 to 65535")),
    ('[jobs.a]\nset = { "a-b" = "1" }\n', ":2 (job 'a', field 'set.a-b')",
     ('bad variable name "a-b"',)),
    ('[jobs.a]\nset = { X = "${1 +}" }\n', ":2:19 (job 'a', field 'set.X')",
     ('bad expression in "${1 +}"',)),
    ('[jobs.a]\nrun = "x"\n\n[jobs.a.env]\nOK = "1"\n"B C" = "2"\n',
     ":6 (job 'a', field 'env.B C')", ('bad environment variable name "B C"',)),
    # schedules
    ('[schedule]\ncron = "61 * * * *"\n' + OK, ":2 (field 'schedule.cron')",
     ('bad cron "61 * * * *"', "out of range in the minute field (0-59)")),
    ('[schedule]\ncron = "@dialy"\n' + OK, ":2 (field 'schedule.cron')",
     ('unknown shortcut "@dialy"', '(did you mean "@daily"?)')),
    ('[schedule]\ncron = "@daily"\ntimezone = "Asia/Tokio"\n' + OK,
     ":3 (field 'schedule.timezone')",
     ('unknown time zone "Asia/Tokio"', '(nearest: "Asia/Tokyo"')),
    ('[[schedule]]\ncron = "@daily"\n[[schedule]]\nevery = "1h"\noverlap = "never"\n' + OK,
     ":5 (field 'schedule[1].overlap')",
     ('expected one of "allow", "skip", "wait", "replace", got "never"',)),
    ('[schedule]\ntimes = [\n  "02:30",\n  "9.30",\n]\n' + OK,
     ":4 (field 'schedule.times[1]')", ('bad time "9.30"', 'write it as "HH:MM"')),
    ('[schedule]\ncron = "@daily"\nwindow = "08:00-25:00"\n' + OK,
     ":3 (field 'schedule.window')",
     ('time "25:00" is too late', '(in window "08:00-25:00")')),
    ('[schedule]\nevery = "2d"\n' + OK, ":2 (field 'schedule.every')",
     ('from "1s" to "24h", got "2d"',)),
    ('[schedule]\ncron = "@daily"\ncatchup_window = "a while"\n' + OK,
     ":3 (field 'schedule.catchup_window')", ('bad duration "a while"',)),
    ('[schedule]\ncron = "@daily"\n[schedule.deadline]\nstart_by = "25:99"\n' + OK,
     ":4 (field 'schedule.deadline.start_by')", ('bad time "25:99"', "up to 59")),
    ('schedule = "daily"\n' + OK, ":1 (field 'schedule')",
     ('expected a table like { cron = "30 2 * * *" }, got "daily" (a string)',)),
]


@pytest.mark.parametrize(("text", "place", "fragments"), JOBNET_CASES,
                         ids=[c[1].split(" ", 1)[-1] + " " + c[2][0][:30] for c in JOBNET_CASES])
def test_jobnet_messages_quote_the_value_and_name_the_line(
        tmp_path: Path, text: str, place: str, fragments: tuple[str, ...]) -> None:
    path = tmp_path / "net.toml"
    check(only_problem(load_text, text, path), path, place, fragments)


def test_a_database_password_is_never_quoted_back(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    p = only_problem(load_text, '[jobs.a]\nsql = "select 1"\n'
                                'database = "postgresql://u:hunter2@h/db"\n', path)
    check(p, path, ":3 (job 'a', field 'database')", ("~/.pgpass",))
    assert "hunter2" not in str(p)


def test_crlf_files_get_their_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    text = '[jobs.a]\r\nrun = "x"\r\n# a comment\r\ntimeout = "soon"\r\n'
    check(only_problem(load_text, text, path), path, ":4 (job 'a', field 'timeout')",
          ('bad duration "soon"',))


# ------------------------------------------------------------------ calendars

CALENDAR_CASES = [
    ('weekdays = "mon"\n', ":1 (field 'weekdays')",
     ('like ["mon", "tue"], got "mon" (a string)',)),
    ('weekdays = [\n  "mon",\n  "tues",\n]\n', ":3 (field 'weekdays[1]')",
     ('unknown weekday "tues"', '(did you mean "tue"?)')),
    ('holidays = "XX-NOPE"\n', ":1 (field 'holidays')",
     ('unknown holidays code "XX-NOPE"', 'the holidays package has no country "XX"',
      '(nearest: "')),
    ('holidays = "US-NYC"\n', ":1 (field 'holidays')",
     ('unknown holidays code "US-NYC"', 'US has no subdivision "NYC"', '"US-NY"',
      "subdivisions are AK, AL")),
    ('holidays = ["DE", "germany"]\n', ":1 (field 'holidays[1]')",
     ('bad holidays code "germany"', 'a country code like "JP"', '(nearest: "DE"')),
    ('holidays = 81\n', ":1 (field 'holidays')",
     ('expected a country code like "JP"', "got 81 (an integer)")),
    ('include = ["2026-02-30"]\n', ":1 (field 'include[0]')",
     ('bad date "2026-02-30"', '"YYYY-MM-DD"')),
    ('exclude = ["2026-12-31..2026-12-01"]\n', ":1 (field 'exclude[0]')",
     ('range "2026-12-31..2026-12-01" ends before it starts',)),
    ('include = [5]\n', ":1 (field 'include[0]')",
     ('like "2026-12-26", got 5 (an integer)',)),
    ('description = "x"\ncolour = "red"\n', ":2 (field 'colour')",
     ('unknown key "colour" in the calendar', "known keys are description, exclude")),
    ('name = "bad name!"\n', ":1 (field 'name')", ('bad calendar name "bad name!"',)),
    ('base = "b"\nday_of_month = [0]\n', ":2 (field 'day_of_month[0]')",
     ("expected a day number 1..31 or -1..-31", "got 0")),
    ('base = "b"\nday_of_month = [1]\nshift = "later"\n', ":3 (field 'shift')",
     ('expected one of "previous", "next", "none", got "later"',)),
    ('base = "nowhere"\nday_of_month = [1]\n', ":1 (field 'base')",
     ('unknown base calendar "nowhere"', 'calendar "nowhere" not found')),
]


@pytest.mark.parametrize(("text", "place", "fragments"), CALENDAR_CASES,
                         ids=[c[2][0][:40] for c in CALENDAR_CASES])
def test_calendar_messages_quote_the_value_and_name_the_line(
        tmp_path: Path, text: str, place: str, fragments: tuple[str, ...]) -> None:
    (tmp_path / "b.toml").write_text('weekdays = ["mon"]\n')
    path = tmp_path / "cal.toml"
    library = CalendarLibrary()

    def load(text: str, *, path: Path) -> object:
        return load_calendar_text(text, path=path, resolve=library.get)

    check(only_problem(load, text, path), path, place, fragments)


# ------------------------------------------------------------------ server config

DIGEST = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
CONFIG_CASES = [
    ('listen = "localhost"\n', ":1 (field 'listen')",
     ('bad listen address "localhost"', '"HOST:PORT"', '"127.0.0.1:10061"')),
    ('listen = 10061\n', ":1 (field 'listen')", ("got 10061 (an integer)",)),
    ('lisen = "127.0.0.1:1"\n', ":1 (field 'lisen')",
     ('unknown key "lisen" in the server config', '(did you mean "listen"?)')),
    ('keep_days = 0\n', ":1 (field 'keep_days')", ("expected a whole number >= 1, got 0",)),
    ('keep_days = "30"\n', ":1 (field 'keep_days')", ('got "30"',)),
    ('log_level = "LOUD"\n', ":1 (field 'log_level')",
     ('expected one of "debug", "info", "warning", "error", got "LOUD"',)),
    ('max_memory = "lots"\n', ":1 (field 'max_memory')",
     ('bad size "lots"', '"512MiB"')),
    ('allow_root = "yes"\n', ":1 (field 'allow_root')",
     ('expected true or false (without quotes), got "yes"',)),
    ('[hosts.db]\ndescription = "the database"\nagent = "db"\n', ":3 (field 'hosts.db.agent')",
     ('bad agent address "db"', '"HOST:PORT"')),
    ('[hosts.local]\nssh = "x@y"\n', ":1 (field 'hosts.local')",
     ('bad host name "local"', "built in")),
    ('[hosts.web]\ndescription = "x"\n', ":1 (field 'hosts.web')", ("found neither",)),
    ('[hosts.web]\nssh = "x@y"\nport = 22\nuser = "x"\nidentity_file = "k"\nsshh = 1\n',
     ":6 (field 'hosts.web.sshh')", ('unknown key "sshh"', '(did you mean "ssh"?)')),
    ('[queues]\nio = 2\ncpu = 0\n', ":3 (field 'queues.cpu')",
     ("expected a whole number >= 1, got 0",)),
    (f'[users.bob]\nrole = "god"\ntoken_sha256 = "{DIGEST}"\n', ":2 (field 'users.bob.role')",
     ('expected one of "viewer", "operator", "admin", got "god"',)),
    ('[notify]\ncommand = "x"\nevents = ["late", "boom"]\n',
     ":3 (field 'notify.events[1]')", ('unknown event "boom"', '"run_failed"')),
    ('[notify]\ncommand = "x"\ntimeout = 0\n', ":3 (field 'notify.timeout')",
     ("must be longer than 0s, got 0",)),
]


@pytest.mark.parametrize(("text", "place", "fragments"), CONFIG_CASES,
                         ids=[c[1] for c in CONFIG_CASES])
def test_server_config_messages_quote_the_value_and_name_the_line(
        tmp_path: Path, text: str, place: str, fragments: tuple[str, ...]) -> None:
    path = tmp_path / "server.toml"
    check(only_problem(parse_config, text, path), path, place, fragments)


def test_a_token_in_the_wrong_place_is_not_quoted_back(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    p = only_problem(parse_config, '[users.bob]\nrole = "admin"\n'
                                   'token_sha256 = "my-secret-token"\n', path)
    check(p, path, ":3 (field 'users.bob.token_sha256')",
          ("a string of 15 characters (not shown", "sha256sum"))
    assert "my-secret-token" not in str(p)


# ------------------------------------------------------------------ the command line

NET = '[jobs.a]\nrun = "touch ran"\n'
CLI_CASES = [
    (["run", "net.toml", "-p", "DAY"], ('bad -p "DAY"', "-p NAME=VALUE")),
    (["run", "net.toml", "-p", "1x=2"], ('bad -p "1x=2"', 'the name "1x" must be')),
    (["run", "net.toml", "--parallel", "0"],
     ("jaz run: --parallel: expected a whole number from 1 to 10000, got \"0\"",
      "(see `jaz run -h`)")),
    (["run", "net.toml", "--parallel", "many"], ('--parallel', 'got "many"')),
    (["run", "--resume", "one"], ('--resume: expected a whole number, got "one"',)),
    (["run", "net.toml", "--bogus"], ("No such option: --bogus",)),
    (["runs", "--status", "runing"],
     ('bad --status "runing"', "use one of", '(did you mean "running"?)')),
    (["runs", "--sort", "-strated"],
     ('bad --sort "-strated"', "id, jobnet, status", '(did you mean "started"?)')),
    (["runs", "--since", "whenever"], ('bad --since "whenever"', "2026-11-20T08:00", "2h")),
    (["runs", "--limit", "0"], ('--limit / -n: expected a whole number >= 1, got "0"',)),
    (["log", "--since", "yesterday"], ('bad --since "yesterday"',)),
    (["log", "--until", "soon"], ('bad --until "soon"',)),
    (["start", "net", "--at", "25:00"], ('bad --at "25:00"', "hours go from 0 to 23")),
    (["start", "net", "--at", "+soon"], ('bad --at "+soon"', "+10m")),
    (["start", "net", "--at", "tomorrow"], ('bad --at "tomorrow"', "HH:MM", "+DURATION")),
    (["start", "net", "-e", "1X"], ('bad -e "1X"', "-e DAY")),
    (["start", "net", "-e", "JAZ_TEST_NOT_SET"],
     ('bad -e "JAZ_TEST_NOT_SET"', "is not set", "-p JAZ_TEST_NOT_SET=VALUE")),
    (["start", "net", "-p", "x"], ('bad -p "x"',)),
    (["retime", "1", "99:00"], ('bad TIME "99:00"',)),
    (["next", "net.toml", "--after", "next tuesday"], ('bad --after "next tuesday"',)),
    (["next", "net.toml", "-n", "0"], ('-n / --count: expected a whole number from 1 to',)),
    (["calendar", "show", "cal.toml", "--year", "1"], ('from 1900 to 2999, got "1"',)),
    (["purge", "--keep-days", "-1"], ('--keep-days: expected a whole number >= 0, got "-1"',)),
    (["status", "abc"], ('RUN: expected a whole number, got "abc"',)),
    (["tui", "--config", "x.toml"], ("--config goes with --local",)),
    (["bogus"], ("No such command 'bogus'",)),
    (["server", "-c", "bad-server.toml"],
     ("bad-server.toml:2 (field 'listen'): bad listen address \"localhost\"",)),
]


def jaz(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env.update(JAZ_HOME=str(cwd / "home"), COLUMNS="200", TERM="dumb")
    env["JAZ_SERVER"] = "http://127.0.0.1:9"   # never a real server: options fail first
    return subprocess.run([sys.executable, "-m", "jaz", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("argv", "fragments"), CLI_CASES, ids=" ".join)
def test_command_line_errors_are_one_line_quoting_the_option_and_value(
        tmp_path: Path, argv: list[str], fragments: tuple[str, ...]) -> None:
    (tmp_path / "net.toml").write_text(NET)
    (tmp_path / "cal.toml").write_text('weekdays = ["mon"]\n')
    (tmp_path / "bad-server.toml").write_text('keep_days = 3\nlisten = "localhost"\n')
    result = jaz(argv, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaz: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "ran").exists()


def test_jaz_validate_names_a_bad_holidays_code_as_written(tmp_path: Path) -> None:
    """The case of the issue: it said `unknown country 'XX'`."""
    path = tmp_path / "cal.toml"
    path.write_text('name = "ops"\nweekdays = ["mon", "tue"]\nholidays = "XX-NOPE"\n')
    result = jaz(["validate", str(path)], tmp_path)
    assert result.returncode == 2
    problem, summary = result.stderr.splitlines()
    assert problem.startswith(f"{path}:3 (field 'holidays'): unknown holidays code "
                              '"XX-NOPE": the holidays package has no country "XX"; use an '
                              'ISO 3166 code (nearest: "')
    assert summary == "1 of 1 file invalid"


def test_a_long_key_is_quoted_whole_where_a_long_value_is_cut() -> None:
    from jaz.engine.tomltext import QUOTE_LIMIT, quote, quote_key

    key = "a key " * 30
    assert quote_key(key) == f'"{key}"'
    assert len(quote(key)) == QUOTE_LIMIT and quote(key).endswith("…")
