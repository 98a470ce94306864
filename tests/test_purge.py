"""`jaz purge` and the API's purge: old finished runs go with their logs; recent and
unfinished ones stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def jaz(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(cwd / "home")
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_purge_removes_old_runs_and_their_logs(tmp_path: Path) -> None:
    (tmp_path / "net.toml").write_text('[jobs.a]\nrun = "echo hi"\n')
    db = tmp_path / "j.db"
    for _ in range(2):
        assert jaz("run", "net.toml", "--db", db, cwd=tmp_path).returncode == 0
    logs = tmp_path / "j.logs"
    assert sorted(p.name for p in logs.iterdir()) == ["1", "2"]
    kept = jaz("purge", "--keep-days", "30", "--db", db, "--json", cwd=tmp_path)
    assert json.loads(kept.stdout)["removed"] == []
    gone = jaz("purge", "--keep-days", "0", "--db", db, "--json", cwd=tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert sorted(json.loads(gone.stdout)["removed"]) == [1, 2]
    assert list(logs.iterdir()) == []
    runs = jaz("runs", "--db", db, "--json", cwd=tmp_path)
    assert json.loads(runs.stdout) == []


def test_purge_without_a_database_is_not_found(tmp_path: Path) -> None:
    result = jaz("purge", "--db", tmp_path / "none.db", cwd=tmp_path)
    assert result.returncode == 4 and "no database" in result.stderr
    bad = jaz("purge", "--keep-days", "-1", "--db", tmp_path / "none.db", cwd=tmp_path)
    assert bad.returncode == 2
