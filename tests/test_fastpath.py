"""The hot path of `jaz run`: a hand parser that skips importing typer.

It must never read a command line differently from typer. Two guards: the parser's
option table is held against the typer command itself, and a matrix of command
lines (good ones, run-level mistakes, malformed ones) runs through both paths in
real processes, which must answer alike: exit code, stdout and stderr.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jaz.cli.run import OPTIONS, PARALLEL, parse_argv

PROBE = ("import sys\nsys.argv[0] = 'jaz'\nfrom jaz.cli.app import main\n"
         "main(hot_path={hot})")


def typer_run_command():
    import typer

    from jaz.cli import app

    return typer.main.get_command(app._build()).commands["run"]


def test_the_hand_parser_knows_every_option_of_the_typer_command() -> None:
    from typer._click import types as click_types
    from typer.models import TyperPath

    command = typer_run_command()
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"]
    assert [(a.name, a.nargs, a.multiple) for a in arguments] == [("file", 1, False)]
    file_type = arguments[0].type
    assert isinstance(file_type, TyperPath)
    assert (file_type.exists, file_type.dir_okay, file_type.resolve_path) == (False, True, False)

    seen = {opt for p in options for opt in [*p.opts, *p.secondary_opts]}
    assert seen == set(OPTIONS), "an option of `jaz run` is missing from run.OPTIONS"
    for p in options:
        for opt in [*p.opts, *p.secondary_opts]:
            name, kind = OPTIONS[opt]
            assert name == p.name, opt
            assert p.nargs == 1 and not p.count and p.envvar is None, opt
            if kind == "flag":
                assert p.is_flag and not p.secondary_opts and p.default is False, opt
            elif kind == "list":
                assert p.multiple and p.type is click_types.STRING, opt
            elif kind == "int":
                assert not p.multiple and isinstance(p.type, click_types.IntParamType), opt
                if isinstance(p.type, click_types.IntRange):
                    assert (p.type.min, p.type.max) == PARALLEL and name == "parallel"
                    assert not (p.type.min_open or p.type.max_open or p.type.clamp)
            elif kind == "file":
                assert not p.multiple and isinstance(p.type, TyperPath), opt
                assert (p.type.exists, p.type.dir_okay, p.type.resolve_path) == (
                    False, False, False)
            else:
                raise AssertionError(f"unknown kind {kind!r}")
    defaults = {p.name: p.default for p in command.params}
    parsed = parse_argv(["run"])
    assert parsed is not None
    for name, value in parsed.items():
        assert value == (defaults[name] if defaults[name] is not None
                         else [] if isinstance(value, list) else None), name


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "a.toml"], {"file": Path("a.toml")}),
    (["run", "--json", "a.toml", "--db", "x.db"],
     {"file": Path("a.toml"), "json_": True, "db": Path("x.db")}),
    (["run", "a.toml", "-p", "A=1", "--param=B=2", "-pC=3", "--param", "D="],
     {"file": Path("a.toml"), "param": ["A=1", "B=2", "C=3", "D="]}),
    (["run", "a.toml", "--parallel", "2", "--parallel=10000"],
     {"file": Path("a.toml"), "parallel": 10000}),
    (["run", "--resume", "7", "--skip", "x", "--release=y", "--skip", "z"],
     {"resume": 7, "skip": ["x", "z"], "release": ["y"]}),
    (["run", "a.toml", "--dry-run", "-p", "bad"],
     {"file": Path("a.toml"), "dry_run": True, "param": ["bad"]}),
])
def test_the_hand_parser_reads_the_common_command_lines(argv: list[str],
                                                         expected: dict[str, object]) -> None:
    defaults = parse_argv(["run"])
    assert defaults is not None
    assert parse_argv(argv) == {**defaults, **expected}


@pytest.mark.parametrize("argv", [
    [], ["runs"], ["validate", "a.toml"], ["-V", "run"], ["run", "-h"], ["run", "--help"],
    ["run", "a.toml", "--bogus"], ["run", "a.toml", "--para", "2"], ["run", "a.toml", "-x"],
    ["run", "a.toml", "--parallel"], ["run", "a.toml", "-p"], ["run", "a.toml", "--parallel", "0"],
    ["run", "a.toml", "--parallel", "10001"], ["run", "a.toml", "--parallel", "x"],
    ["run", "a.toml", "--parallel", "+2"], ["run", "a.toml", "--parallel", "٣"],
    ["run", "--resume", "-1"], ["run", "a.toml", "--json=1"], ["run", "a.toml", "--dry-run=no"],
    ["run", "a.toml", "b.toml"], ["run", "a.toml", "--", "b"], ["run", "-"], ["run", ""],
    ["run", "a.toml", "--db", "."], ["run", "a.toml", "--db="], ["run", "a.toml", "--skip", "-x"],
    ["run", "a.toml", "-p", "--json"],
])
def test_the_hand_parser_leaves_everything_else_to_typer(argv: list[str]) -> None:
    assert parse_argv(argv) is None


# ---------------------------------------------------------------- both paths, real processes

OK = '[jobs.a]\nrun = "echo hello; echo N=$N >> $JAZ_OUTPUT"\n\n[jobs.b]\nneeds = ["a"]\n' \
     'run = "echo b"\n'
FAIL = '[jobs.a]\nrun = "echo oops >&2; exit 3"\n'
INVALID = '[jobs.a]\nrun = "true"\nneeds = ["nowhere"]\n'

GOOD = [
    ["run", "ok.toml", "--db", "x.db"],
    ["run", "--db=x.db", "ok.toml", "-p", "N=1", "--param=M=2", "-pK=3", "--parallel", "2",
     "--json"],
    ["run", "fail.toml", "--db", "x.db"],
    ["run", "fail.toml", "--json"],
    ["run", "ok.toml", "--dry-run", "-p", "N=2"],
    ["run", "--resume", "1", "--db", "x.db"],
    ["run", "ok.toml", "--resume", "1"],
    ["run", "--skip", "a"],
    ["run"],
    ["run", "ok.toml", "-p", "bad"],
    ["run", "ok.toml", "-p", "1x=2"],
    ["run", "missing.toml"],
    ["run", "invalid.toml", "--json"],
]
MALFORMED = [
    ["run", "ok.toml", "--bogus"],
    ["run", "ok.toml", "--parallel"],
    ["run", "ok.toml", "--parallel", "0"],
    ["run", "ok.toml", "--parallel", "many"],
    ["run", "ok.toml", "-p"],
    ["run", "ok.toml", "other.toml"],
    ["run", "ok.toml", "--json=yes"],
    ["run", "ok.toml", "--db", "."],
    ["run", "--resume", "one"],
]


def _normalise(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+([+-]\d\d:\d\d)?", "<iso>", text)
    text = re.sub(r"\b\d\d:\d\d:\d\d\b", "<hh:mm:ss>", text)
    return re.sub(r"\b\d+(\.\d+)?(ms|s|m|h)\b", "<dur>", text)


def _jaz(tmp_path: Path, argv: list[str], *, hot: bool) -> tuple[int, str, str]:
    where = tmp_path / ("hot" if hot else "typer")
    where.mkdir()
    (where / "ok.toml").write_text(OK)
    (where / "fail.toml").write_text(FAIL)
    (where / "invalid.toml").write_text(INVALID)
    (where / "other.toml").write_text(OK)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JAZ_") and not k.endswith("_COMPLETE")}
    env.update(JAZ_HOME=str(where / "home"), COLUMNS="100", TERM="dumb")
    result = subprocess.run([sys.executable, "-c", PROBE.format(hot=hot), *argv], cwd=where,
                            env=env, capture_output=True, text=True, timeout=30)
    return result.returncode, _normalise(result.stdout), _normalise(result.stderr)


@pytest.mark.parametrize("argv", GOOD, ids=" ".join)
def test_command_lines_the_hot_path_takes_end_as_through_typer(tmp_path: Path,
                                                               argv: list[str]) -> None:
    assert parse_argv(argv) is not None  # this line really takes the hot path
    hot = _jaz(tmp_path, argv, hot=True)
    assert hot == _jaz(tmp_path, argv, hot=False)
    assert "Traceback" not in hot[2]


@pytest.mark.parametrize("argv", MALFORMED, ids=" ".join)
def test_malformed_command_lines_get_typers_usage_error_and_exit_2(tmp_path: Path,
                                                                    argv: list[str]) -> None:
    assert parse_argv(argv) is None
    code, out, err = _jaz(tmp_path, argv, hot=True)
    assert (code, out, err) == _jaz(tmp_path, argv, hot=False)
    assert code == 2
    assert err.startswith("jaz: error: ") and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_a_plain_jaz_run_never_imports_typer(tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(OK)
    probe = PROBE.format(hot=True).replace(
        "main(hot_path=True)",
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('typer' in sys.modules, code)")
    env = {**os.environ, "JAZ_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", probe, "run", "ok.toml", "--json"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines()[-1] == "False 0"
    result = subprocess.run([sys.executable, "-c", probe, "run", "--help"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.stdout.splitlines()[-1] == "True 0"


def test_the_collector_is_off_while_jaz_run_loads_and_back_on_once_the_run_is_under_way(
        tmp_path: Path) -> None:
    net = tmp_path / "net.toml"
    net.write_text('[jobs.a]\nrun = "true"\n')
    probe = ("import gc, sys\nsys.argv = ['jaz', 'run', sys.argv[1], '--db', sys.argv[2]]\n"
             "from jaz.cli.app import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n"
             "    print(gc.isenabled(), gc.get_freeze_count() > 0, e.code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(net), str(tmp_path / "j.db")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "JAZ_HOME": str(tmp_path)})
    assert done.stderr.splitlines()[-1] == "True True 0", done.stderr
