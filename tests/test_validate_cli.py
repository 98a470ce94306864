"""`jaz validate` and the input checks of `jaz run`, through the real command line.

Each case runs `python -m jaz` in a subprocess and checks what a person sees: the
message on stderr (naming file, job and field) and the exit code of SPEC §3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = '[jobs.a]\nrun = "true"\n[jobs.b]\nneeds = ["a"]\nrun = "true"\n'
BAD = """\
[jobs.extract]
run = "./extract.sh"
timeout = "5 minutes"

[jobs.load]
needs = ["extrct"]
run = "./load.sh"
stop_codes = "5-1"

[jobs.report]
needs = ["load"]
run = "./report.sh"
if = "load.rows >> 3"
"""


def jaz(*args: str | Path, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(home)
    env["COLUMNS"] = "200"  # keep rich from wrapping messages
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_good_files_exits_0(tmp_path: Path, home: Path) -> None:
    a = write(tmp_path, "one.toml", GOOD)
    b = write(tmp_path, "two.toml", '[jobs.only]\nsleep = "1s"\n')
    result = jaz("validate", a, b, home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"ok  {a} (2 jobs)" in result.stdout
    assert f"ok  {b} (1 job)" in result.stdout


def test_validate_reports_every_problem_of_only_the_bad_file(tmp_path: Path, home: Path) -> None:
    good = write(tmp_path, "good.toml", GOOD)
    bad = write(tmp_path, "bad.toml", BAD)
    result = jaz("validate", good, bad, home=home, cwd=tmp_path)
    assert result.returncode == 2
    *lines, summary = result.stderr.splitlines()
    assert summary == "1 of 2 files invalid"
    assert sorted(lines) == sorted([
        f"{bad}:3 (job 'extract', field 'timeout'): bad duration \"5 minutes\": write it like "
        '"90s", "30m", "4h", "1d", "1h30m" or a number of seconds (the units are ms, s, m, h '
        "and d, in lower case)",
        f"{bad}:8 (job 'load', field 'stop_codes'): reversed range \"5-1\": write it "
        'low-high, as in "1-5"',
        f"{bad}:13:18 (job 'report', field 'if'): bad expression \"load.rows >> 3\": expected "
        "an expression, found '>' (at column 12 of the expression)",
        f"{bad}:6 (job 'load', field 'needs'): unknown job \"extrct\" in needs (did you mean "
        '"extract"?)',
    ])
    assert str(good) not in result.stderr
    assert f"ok  {good}" in result.stdout
    assert str(bad) not in result.stdout


def test_validate_json_lists_each_file_and_its_problems(tmp_path: Path, home: Path) -> None:
    good = write(tmp_path, "good.toml", GOOD)
    bad = write(tmp_path, "bad.toml", BAD)
    result = jaz("validate", "--json", good, bad, home=home, cwd=tmp_path)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert [(r["file"], r["valid"], r["jobs"]) for r in report] == \
        [(str(good), True, 2), (str(bad), False, 0)]
    assert report[0]["problems"] == []
    assert {(p["job"], p["field"], p["line"], p["column"])
            for p in report[1]["problems"]} == {
        ("extract", "timeout", 3, None), ("load", "stop_codes", 8, None),
        ("report", "if", 13, 18), ("load", "needs", 6, None),
    }


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('name = "x"\n[jobs.a]\nrun = "echo\n',
                 "{file}:3:12: TOML syntax error: ", id="toml-syntax"),
    pytest.param('[jobs.a]\nrun = "x"\nneeds = ["c"]\n[jobs.b]\nrun = "x"\nneeds = ["a"]\n'
                 '[jobs.c]\nrun = "x"\nneeds = ["b"]\n',
                 "{file}:3 (job 'a', field 'needs'): the needs form a cycle: a -> c -> b -> a",
                 id="cycle"),
])
def test_validate_points_at_the_place(tmp_path: Path, home: Path, text: str,
                                      expected: str) -> None:
    path = write(tmp_path, "net.toml", text)
    result = jaz("validate", path, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(expected.format(file=path))
    assert "Traceback" not in result.stderr


def test_validate_missing_file_exits_2_and_says_so(tmp_path: Path, home: Path) -> None:
    good = write(tmp_path, "good.toml", GOOD)
    missing = tmp_path / "nope.toml"
    result = jaz("validate", good, missing, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{missing}: no such file", "1 of 2 files invalid"]


def test_run_refuses_server_only_jobs_before_running_anything(tmp_path: Path,
                                                             home: Path) -> None:
    path = write(tmp_path, "net.toml", """\
[jobs.first]
run = "touch ran"

[jobs.task]
start = "other"

[jobs.free]
release = "other/job"

[jobs.boot]
reboot = { host = "web1" }

[jobs.far]
run = "true"
host = "otherhost"
""")
    result = jaz("run", path, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("jaz: error: ")
    for job, field, line in (("task", "start", 5), ("free", "release", 8)):
        assert (f"{path}:{line} (job {job!r}, field {field!r}): the \"{field}\" action needs "
                "the server") in result.stderr
    assert (f"{path}:11 (job 'boot', field 'reboot.host'): host \"web1\" is not in the "
            "hosts file") in result.stderr
    assert f"{path}:15 (job 'far', field 'host'): host \"otherhost\" is not in the hosts " \
        "file" in result.stderr
    assert "first" not in result.stderr
    assert not (tmp_path / "ran").exists()
    assert not (home / "jaz.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["-p", "BAD"], 'jaz: error: bad -p "BAD": write it as -p NAME=VALUE',
                 id="param-without-value"),
    pytest.param(["-p", "1X=2"], 'jaz: error: bad -p "1X=2": the name "1X" must be',
                 id="param-bad-name"),
])
def test_run_with_a_bad_param_exits_2_and_runs_nothing(tmp_path: Path, home: Path,
                                                       args: list[str], message: str) -> None:
    path = write(tmp_path, "net.toml", '[jobs.a]\nrun = "touch ran"\n')
    result = jaz("run", path, *args, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert not (tmp_path / "ran").exists()


def test_run_of_an_invalid_file_exits_2_with_all_problems(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path, "bad.toml", BAD)
    result = jaz("run", path, home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"jaz: error: {path}:3 (job 'extract', field 'timeout')")
    for place in ("(job 'load', field 'stop_codes')", "(job 'report', field 'if')",
                  "(job 'load', field 'needs')"):
        assert place in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "jaz.db").exists()
