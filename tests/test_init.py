"""`jaz init` writes a starter that works: the jobnet validates against its calendar and
`jaz server` reads $JAZ_HOME/server.toml without -c."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def jaz(*args: str | Path, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_init_writes_a_valid_starter_and_never_overwrites(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = jaz("init", home=home, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for name in ("server.toml", "jobnets/hello.toml", "calendars/business-days.toml"):
        assert (home / name).is_file()
    checked = jaz("validate", home / "jobnets" / "hello.toml",
                  home / "calendars" / "business-days.toml", home=home, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    (home / "jobnets" / "hello.toml").write_text("# mine\n")
    again = jaz("init", home=home, cwd=tmp_path)
    assert again.returncode == 2 and "already exist" in again.stderr
    assert (home / "jobnets" / "hello.toml").read_text() == "# mine\n"
    forced = jaz("init", "--force", home=home, cwd=tmp_path)
    assert forced.returncode == 0 and "hello" in (home / "jobnets" / "hello.toml").read_text()


def test_init_into_a_folder(tmp_path: Path) -> None:
    result = jaz("init", tmp_path / "ops", home=tmp_path / "home", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ops" / "server.toml").is_file()
    assert "jaz server -c" in result.stdout


def test_the_server_reads_server_toml_in_jaz_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.toml").write_text('allow_root = true\nlisten = "nowhere"\n')
    result = jaz("server", "--once", home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert "server.toml" in result.stderr and "bad listen address" in result.stderr
