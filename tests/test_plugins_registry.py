"""Installed job kinds (the `jaz.kinds` entry points): `jaz kinds`, broken plugins
reported by name while the others work, bad declarations refused, kind fields checked
with file/job/field messages like the built-in kinds', and nothing read until needed."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
from plugin_support import Site, http_site, jaz, jaz_env, make_dist

from jaz.engine import kinds
from jaz.engine.loader import load_text
from jaz.errors import JobnetInvalid

# A kind of its own for the throwaway packages: `echo = { text }`, text to the log and
# to the TEXT output; `fail_start = true` raises in start, the way a buggy plugin would.
GOOD = """
from jaz.kinds import Executor, Execution, Field, Kind, Outcome

class Run(Execution):
    def __init__(self, attempt):
        self.attempt = attempt
    def wait(self):
        a = self.attempt
        text = a.job.action.options["text"]
        a.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        a.stdout_path.write_text(text + "\\n")
        a.stderr_path.write_text("")
        return Outcome(exit_code=0, outputs={{"TEXT": text}}, stdout_tail=text + "\\n")
    def stop(self):
        pass

class Echo(Executor):
    def start(self, attempt):
        if attempt.job.action.options["fail_start"]:
            raise RuntimeError("the echo plugin has a bug")
        return Run(attempt)

KIND = Kind(name="{name}", executor=Echo, shorthand="text",
            fields={{"text": Field(required=True), "fail_start": Field(type="boolean",
                                                                     default=False)}})
"""

BROKEN = {
    "jaz-ghost": ({"ghost": "jaz_ghost:KIND"},
                  {"jaz_ghost": "import jaz_no_such_module_anywhere\n"},
                  "ModuleNotFoundError: No module named 'jaz_no_such_module_anywhere'"),
    "jaz-boom": ({"boom": "jaz_boom:make"},
                 {"jaz_boom": "def make():\n    raise RuntimeError('boom while loading')\n"},
                 "RuntimeError: boom while loading"),
    "jaz-clash": ({"run": "jaz_clash:KIND"},
                  {"jaz_clash": GOOD.format(name="run")},
                  "kind name 'run' is a built-in key of jaz jobs: choose another name"),
    "jaz-weird": ({"weird": "jaz_weird:KIND"},
                  {"jaz_weird": "from jaz.kinds import Field, Kind\n"
                                "KIND = Kind(name='weird', executor=object,\n"
                                "            fields={'day': Field(type='date')})\n"},
                  "field 'day': type 'date' is none of string, integer"),
    "jaz-notkind": ({"notkind": "jaz_notkind:KIND"}, {"jaz_notkind": "KIND = 'hello'\n"},
                    "jaz_notkind:KIND is str, not a jaz.kinds.Kind"),
    "jaz-quits": ({"quits": "jaz_quits:KIND"},
                  {"jaz_quits": "import sys\nsys.exit(3)\n"}, "SystemExit(3) at import"),
}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A folder of installed packages: one good (`echo`) and every kind of broken one."""
    root = tmp_path / "site"
    make_dist(root, "jaz-echo", {"echo": "jaz_echo:KIND"},
              {"jaz_echo": GOOD.format(name="echo")}, version="2.5.0")
    for package, (entry_points, modules, _) in BROKEN.items():
        make_dist(root, package, entry_points, modules)
    return root


@pytest.fixture
def site() -> object:
    with http_site() as s:
        yield s


def test_jaz_kinds_lists_built_in_and_plugin_kinds_and_broken_ones_by_name(
        tmp_path: Path, plugins: Path) -> None:
    result = jaz(jaz_env(tmp_path / "home", plugins), "kinds", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    ok = {r["name"]: r for r in rows if r["status"] == "ok"}
    assert ok["run"]["source"] == "built-in" and ok["start"]["local"] is False
    assert (ok["http"]["package"], ok["http"]["version"]) == ("jaz-http", "0.1.0")
    assert ok["http"]["fields"]["url"]["required"] is True
    assert ok["http"]["fields"]["method"]["default"] == "GET"
    assert (ok["echo"]["package"], ok["echo"]["version"]) == ("jaz-echo", "2.5.0")
    assert ok["echo"]["entry_point"] == "echo = jaz_echo:KIND"
    broken = {r["package"]: r for r in rows if r["status"] == "broken"}
    assert set(broken) == set(BROKEN)
    for package, (entry_points, _, error) in BROKEN.items():
        (name, value), = entry_points.items()
        assert broken[package]["name"] == name
        assert broken[package]["entry_point"] == f"{name} = {value}"
        assert error in broken[package]["error"], broken[package]
        assert f"plugin {package} 0.1.0 is broken: entry point {name} = {value}" in \
            result.stderr
    assert [r["name"] for r in rows if r["name"] == "run"] == ["run", "run"]  # the clash too

    human = jaz(jaz_env(tmp_path / "home", plugins), "kinds", cwd=tmp_path)
    assert human.returncode == 0
    line = next(x for x in human.stdout.splitlines() if x.startswith("http "))
    assert "jaz-http 0.1.0" in line and "ok" in line
    line = next(x for x in human.stdout.splitlines() if x.startswith("ghost "))
    assert "broken" in line and "jaz_no_such_module_anywhere" in line


def test_with_broken_plugins_installed_the_other_kinds_still_run(tmp_path: Path,
                                                                 plugins: Path,
                                                                 site: Site) -> None:
    (tmp_path / "net.toml").write_text(f"""
[jobs.say]
echo = "hi there"

[jobs.get]
needs = ["say"]
http = "{site.url}/x?said=${{TEXT}}"

[jobs.last]
needs = ["get"]
run = 'echo "$TEXT $HTTP_STATUS"'
""")
    result = jaz(jaz_env(tmp_path / "home", plugins), "run", "net.toml", "--json",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["jobs"]["say"]["outputs"] == {"TEXT": "hi there"}
    assert site.paths() == ["/x?said=hi%20there"]
    assert out["jobs"]["last"]["status"] == "succeeded"


def test_a_jobnet_using_a_broken_kind_names_the_kind_the_plugin_and_its_error(
        tmp_path: Path, plugins: Path) -> None:
    (tmp_path / "net.toml").write_text('[jobs.a]\nghost = "boo"\n\n[jobs.b]\nrun = "true"\n')
    for command in ("validate", "run"):
        result = jaz(jaz_env(tmp_path / "home", plugins), command, "net.toml", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "net.toml:2 (job 'a', field 'ghost'): kind \"ghost\" cannot be used: its plugin " \
               "is broken (package jaz-ghost 0.1.0, entry point ghost = jaz_ghost:KIND: " \
               "ModuleNotFoundError: No module named 'jaz_no_such_module_anywhere')" \
               in result.stderr
        assert result.stderr.count("net.toml") == 1    # one problem, not a cascade


def test_a_kind_that_is_not_installed_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "net.toml").write_text('[jobs.a]\ngopher = { url = "x" }\n')
    result = jaz(jaz_env(tmp_path / "home"), "validate", "net.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "net.toml:2 (job 'a', field 'gopher'): unknown key \"gopher\" in [jobs.a]: no " \
           "built-in or installed kind has this action key" in result.stderr
    assert "found none" not in result.stderr


def test_a_job_with_no_action_key_is_told_the_installed_kinds_too() -> None:
    # jaz-http is installed in the test environment (the Makefile's venv step)
    with pytest.raises(JobnetInvalid) as e:
        load_text('[jobs.a]\nneeds = []\n', path=Path("/jobnets/net.toml"))
    message, = [p.message for p in e.value.problems]
    assert "found none: add one of run, " in message
    assert ", http" in message


def test_a_misspelt_plugin_action_key_is_one_problem_not_two() -> None:
    with pytest.raises(JobnetInvalid) as e:
        load_text('[jobs.a]\nhtp = "http://x/"\n', path=Path("/jobnets/net.toml"))
    assert [p.message for p in e.value.problems] == \
        ['unknown key "htp" in [jobs.a] (did you mean "http"?)']


def test_a_plugin_that_raises_in_start_fails_its_job_not_the_run(tmp_path: Path,
                                                                 plugins: Path) -> None:
    (tmp_path / "net.toml").write_text(
        '[jobs.bad]\necho = { text = "x", fail_start = true }\n\n'
        '[jobs.good]\nrun = "echo fine"\n')
    result = jaz(jaz_env(tmp_path / "home", plugins), "run", "net.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert "kind 'echo' (jaz-echo 2.5.0) failed to start: RuntimeError: the echo plugin " \
           "has a bug" in result.stdout
    assert "good  ✔ succeeded" in result.stdout


def test_a_plugin_whose_executor_cannot_be_made_fails_its_jobs(tmp_path: Path) -> None:
    root = tmp_path / "site"
    make_dist(root, "jaz-nomake", {"nomake": "jaz_nomake:KIND"}, {"jaz_nomake": """
        from jaz.kinds import Kind
        def make():
            raise OSError("no socket for you")
        KIND = Kind(name="nomake", executor=make)
        """})
    (tmp_path / "net.toml").write_text("[jobs.a]\nnomake = {}\nretries = 1\n")
    result = jaz(jaz_env(tmp_path / "home", root), "run", "net.toml", "--json", cwd=tmp_path)
    assert result.returncode == 1
    job = json.loads(result.stdout)["jobs"]["a"]
    assert (job["status"], job["attempts"]) == ("failed", 2)
    status = jaz(jaz_env(tmp_path / "home"), "status", "1", "--local", cwd=tmp_path)
    assert "kind 'nomake' (jaz-nomake 0.1.0) could not make its executor: OSError: no " \
           "socket for you" in status.stdout


def test_two_packages_with_one_kind_are_both_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "site"
    for package in ("jaz-dup-a", "jaz-dup-b"):
        module = package.replace("-", "_")
        make_dist(root, package, {"dupkind": f"{module}:KIND"},
                  {module: GOOD.format(name="dupkind")})
    monkeypatch.syspath_prepend(str(root))
    eps = [ep for d in distributions(path=[str(root)]) for ep in d.entry_points
           if ep.group == kinds.GROUP]
    registry = kinds.load(eps, {"run"})
    assert "dupkind" not in registry.kinds
    errors = sorted((b.package, b.error) for b in registry.broken)
    assert errors == [
        ("jaz-dup-a", "kind 'dupkind' is declared by jaz-dup-b 0.1.0 too: uninstall one of "
                      "them"),
        ("jaz-dup-b", "kind 'dupkind' is declared by jaz-dup-a 0.1.0 too: uninstall one of "
                      "them")]


def _executor() -> object:
    return object()


@pytest.mark.parametrize(("declare", "problem"), [
    ("Kind(name='Bad-Name', executor=E)", "kind name 'Bad-Name': use lower-case letters"),
    ("Kind(name='timeout', executor=E)", "kind name 'timeout' is a built-in key of jaz jobs"),
    ("Kind(name='k', executor='no')", "executor must be a callable"),
    ("Kind(name='k', executor=E, fields=[1])", "fields must be a mapping"),
    ("Kind(name='k', executor=E, fields={'x': 'string'})",
     "field 'x' is str, not a jaz.kinds.Field"),
    ("Kind(name='k', executor=E, fields={'x-y': Field()})", "field name 'x-y'"),
    ("Kind(name='k', executor=E, fields={'x': Field(type='string', items='integer')})",
     "field 'x': items 'integer' needs type list or table"),
    ("Kind(name='k', executor=E, fields={'x': Field(type='integer', template=True)})",
     "field 'x': template needs strings"),
    ("Kind(name='k', executor=E, fields={'x': Field(type='integer', default='3')})",
     'field \'x\': default "3": expected a whole number, got "3" (a string)'),
    ("Kind(name='k', executor=E, fields={'x': Field(choices=('a',), default='b')})",
     'field \'x\': default "b": expected one of "a", got "b"'),
    ("Kind(name='k', executor=E, shorthand='url')", "shorthand 'url' is not one of the fields"),
])
def test_a_bad_declaration_is_refused_with_what_is_wrong(declare: str, problem: str) -> None:
    from jaz.kinds import Field, Kind

    kind = eval(declare, {"Kind": Kind, "Field": Field, "E": _executor})  # noqa: S307
    found = kinds.declaration_problems(kind, {"run", "timeout"})
    assert any(problem in p for p in found), found


def test_an_entry_point_named_unlike_its_kind_is_refused(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    root = tmp_path / "site"
    make_dist(root, "jaz-misnamed", {"fetch": "jaz_misnamed:KIND"},
              {"jaz_misnamed": GOOD.format(name="grab")})
    monkeypatch.syspath_prepend(str(root))
    eps = [ep for d in distributions(path=[str(root)]) for ep in d.entry_points]
    (broken,) = kinds.load(eps, set()).broken
    assert (broken.name, broken.package) == ("fetch", "jaz-misnamed")
    assert "the entry point is named 'fetch' but its kind is 'grab'" in broken.error


# ------------------------------------------------------------------ the http kind's fields

HTTP_CASES = [
    ('http = { url = "ftp://x" }', "http.url",
     "expected an http:// or https:// URL with a host, got 'ftp://x'"),
    ('http = { url = "http://u:pw@x/" }', "http.url", "a user or password in the URL"),
    ('http = { url = "http://x/", method = "FETCH" }', "http.method",
     "expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got 'FETCH'"),
    ('http = { url = "http://x/", status = "abc" }', "http.status",
     'expected a status code (200), a range ("2xx", "200-299") or a list of them, each within '
     "100-599; got 'abc'"),
    ('http = { url = "http://x/", status = [200, 99] }', "http.status", "got 99"),
    ('http = { url = "http://x/", headers = "x" }', "http.headers",
     'expected a table, got "x" (a string)'),
    ('http = { url = "http://x/", headers = { A = 1 } }', "http.headers.A",
     "expected a string, got 1 (an integer)"),
    ('http = { url = "http://x/", headers = { "X Y" = "1" } }', "http.headers",
     "bad header name 'X Y'"),
    ('http = { url = "http://x/", body = 5 }', "http.body",
     "expected a string, got 5 (an integer)"),
    ('http = { url = "http://x/", timeout = "soon" }', "http.timeout", 'bad duration "soon"'),
    ('http = { url = "http://x/", verify = "yes" }', "http.verify",
     'expected true or false (without quotes), got "yes" (a string)'),
    ('http = { url = "http://x/", max_output = -1 }', "http.max_output",
     "expected a whole number >= 0, got -1"),
    ('http = { url = "http://x/", max_output = 1.5 }', "http.max_output",
     "expected a whole number, got 1.5"),
    ('http = { url = "http://x/", metod = "GET" }', "http.metod",
     'unknown key "metod" in http (did you mean "method"?)'),
    ('http = { method = "GET" }', "http.url", 'http needs "url"'),
    ('http = []', "http", "expected a table, got [] (a list)"),
    ('http = { url = "http://x/", method = "HEAD", body = "x" }', "http.body",
     "a HEAD request has no body"),
    ('http = { url = "http://x/${DAY" }', "http.url", 'bad expression in "http://x/${DAY"'),
    ('http = { url = "http://x/${prev.ID}" }', "http.url",
     'http.url sees variables, not jobs: write ${NAME} for an output of "prev"'),
    ('htp = "http://x/"', "htp", 'unknown key "htp" in [jobs.a] (did you mean "http"?)'),
    ('http = "http://x/"\nrun = "true"', None,
     "a job needs exactly one action key, found 2: run, http"),
]


@pytest.mark.parametrize(("body", "field", "message"), HTTP_CASES)
def test_bad_fields_of_a_plugin_kind_name_the_file_job_and_field(body: str, field: str | None,
                                                                 message: str) -> None:
    text = f"[jobs.prev]\nrun = 'true'\n\n[jobs.a]\nneeds = ['prev']\n{body}\n"
    with pytest.raises(JobnetInvalid) as e:
        load_text(text, path=Path("/jobnets/net.toml"))
    found = [(p.file, p.job, p.field, p.message) for p in e.value.problems]
    assert any(f == "/jobnets/net.toml" and j == "a" and fl == field and message in m
               for f, j, fl, m in found), found


def test_a_good_http_job_loads_with_its_defaults() -> None:
    net = load_text('[jobs.a]\nhttp = "https://example.com/health"\n')
    action = net.jobs["a"].action
    assert action.kind == net.jobs["a"].kind == "http"
    assert dict(action.options) == {  # type: ignore[union-attr]
        "url": "https://example.com/health", "method": "GET", "status": [[200, 200]],
        "headers": {}, "body": None, "timeout": 30.0, "verify": True, "max_output": 4096}


def test_a_toml_syntax_error_in_a_plugin_job_has_its_line(tmp_path: Path) -> None:
    (tmp_path / "net.toml").write_text('[jobs.a]\nhttp = { url = "http://x/",\n'
                                       '  method = "GET" }\n')
    result = jaz(jaz_env(tmp_path / "home"), "validate", "net.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "net.toml:2:" in result.stderr and "TOML syntax error" in result.stderr


def test_the_entry_points_are_read_only_when_a_job_needs_a_kind_no_built_in_has() -> None:
    probe = """
import sys
from jaz.engine.loader import load_text
load_text('[jobs.a]\\nrun = "true"\\n[jobs.b]\\nsleep = 1\\n')
print("jaz.engine.kinds" in sys.modules, "jaz_http" in sys.modules)
load_text('[jobs.a]\\nhttp = "http://x/"\\n')
print("jaz.engine.kinds" in sys.modules, "jaz_http" in sys.modules,
      "jaz_http.request" in sys.modules, "http.client" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split("\n")[:2] == ["False False", "True True False False"]


def test_the_plugin_interface_imports_no_ui_http_or_ssh_library_and_help_reads_no_plugins(
        ) -> None:
    probe = """
import sys
import jaz.kinds, jaz.engine.kinds
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in (
    "textual", "typer", "click", "rich", "paramiko", "fastapi", "starlette", "uvicorn",
    "httpx", "httpx2") or m.startswith(("jaz.cli", "jaz.tui", "jaz.server")))) or "-")
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "-"
    probe = ("import sys\nsys.argv = ['jaz', '--help']\nfrom jaz.cli.app import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('KINDS', 'jaz.engine.kinds' in sys.modules, 'jaz_http' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert "kinds" in result.stdout               # the help lists the command
    assert result.stdout.splitlines()[-1] == "KINDS False False"
