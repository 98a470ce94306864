"""The engine imports no UI, CLI, HTTP or SSH library; `jaz --help` stays light."""

import subprocess
import sys

FORBIDDEN_IN_ENGINE = ["textual", "typer", "click", "rich", "paramiko", "fastapi", "starlette",
                       "uvicorn", "httpx", "httpx2", "jaz.cli", "jaz.tui", "jaz.server"]
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
