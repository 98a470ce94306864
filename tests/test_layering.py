"""The layering is a contract (pyproject's [tool.importlinter], checked by import-linter):
the jaz command > the faces > hosts > the API client > the engine > the base, the faces
independent of each other, no import cycle in any package, and no UI, CLI, HTTP or SSH
library in the engine. The contract is checked as it is, and shown to catch what it is
for on a copy of the package with one bad import added. What is imported at run time
(`jaz --help` stays light) is checked in a subprocess, since a library can pull in
another that no source line names."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

FORBIDDEN_IN_ENGINE = ["textual", "typer", "click", "rich", "paramiko", "fastapi", "starlette",
                       "uvicorn", "httpx", "httpx2", "jaz.cli", "jaz.tui", "jaz.server",
                       "jaz.agent", "jaz.hosts", "ssl", "cryptography"]
HEAVY = ["textual", "paramiko", "fastapi", "starlette", "uvicorn", "httpx", "httpx2", "psycopg",
         "holidays", "croniter"]


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    return set(result.stdout.split())


def _top(mods: set[str], names: list[str]) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in mods))


def test_engine_imports_no_ui_http_or_ssh_library():
    mods = _modules_after(
        "import jaz.engine.service, jaz.engine.loader, jaz.engine.machine, jaz.engine.runner,"
        " jaz.engine.store, jaz.engine.expr, jaz.engine.executors.sql,"
        " jaz.engine.executors.files, jaz.engine.executors.local, jaz.engine.planner,"
        " jaz.engine.schedules, jaz.engine.calendars, jaz.engine.notify, jaz.engine.zabbix,"
        " jaz.engine.executors.zabbix")
    assert _top(mods, FORBIDDEN_IN_ENGINE) == []


def test_help_does_not_import_heavy_libraries():
    mods = _modules_after(
        "import sys\nsys.argv = ['jaz', '--help']\nfrom jaz.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass")
    assert "typer" in mods  # the probe really ran the CLI
    assert _top(mods, HEAVY) == []


def test_version_flag_prints_version():
    from jaz import __version__

    result = subprocess.run([sys.executable, "-m", "jaz", "-V"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"jaz {__version__}"


def test_server_modules_other_than_the_api_do_not_load_the_web_stack():
    mods = _modules_after("import jaz.server.core, jaz.server.scheduler, jaz.server.config")
    assert _top(mods, ["fastapi", "starlette", "uvicorn", "textual", "paramiko"]) == []


def _lint_imports(package_parent: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=package_parent,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent)})


def test_the_layering_contract_holds() -> None:
    result = _lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "bad_import", "broken"), [
    # a face imports the command; the engine a face; the base the engine; the engine the client
    ("tui/format.py", "import jaz.cli.output", "layers:"),
    ("engine/loader.py", "import jaz.server.config", "layers:"),
    ("errors.py", "import jaz.engine.model", "layers:"),
    ("engine/runner.py", "import jaz.client", "layers:"),
    # the hosts layer imports neither a face nor the command; the engine not the hosts
    ("hosts/config.py", "import jaz.agent.config", "layers:"),
    ("hosts/executor.py", "import jaz.server.config", "layers:"),
    ("engine/runner.py", "import jaz.hosts.executor", "layers:"),
    # face to face
    ("tui/format.py", "import jaz.server.config", "the faces"),
    ("server/config.py", "import jaz.tui.format", "the faces"),
    ("agent/daemon.py", "import jaz.server.config", "the faces"),
    # the importers sit with the faces: below the command, above the engine, beside the rest
    ("importers/crontab.py", "import jaz.cli.output", "layers:"),
    ("engine/cron.py", "import jaz.importers", "layers:"),
    ("importers/pgagent.py", "import jaz.server.config", "the faces"),
    ("jobarg/cli.py", "import jaz.importers.crontab", "the faces"),
    # and need no UI library: jobarg_* must start fast
    ("importers/crontab.py", "import rich", "the importers and JAZ's scripts"),
    ("jobarg/cli.py", "import typer", "the importers and JAZ's scripts"),
    # the network stays out of the engine
    ("engine/cron.py", "import ssl", "the engine imports"),
    # a cycle inside a package
    ("engine/durations.py", "import jaz.engine.schedules", "no import cycles"),
    ("tui/screens/start.py", "import jaz.tui.screens.runs", "no import cycles"),
    # a UI library in the engine
    ("engine/cron.py", "import rich", "the engine imports"),
])
def test_the_contract_catches(tmp_path: Path, module: str, bad_import: str, broken: str) -> None:
    shutil.copytree(ROOT / "jaz", tmp_path / "jaz",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", config)
    target = tmp_path / "jaz" / module
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    result = _lint_imports(tmp_path, config)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(broken) for line in lines), result.stdout
