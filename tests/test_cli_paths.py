"""Paths given relative to where `jaz` was started still work for jobs, which run in
their jobnet's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_outputs_work_with_a_relative_db_and_a_jobnet_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "here").mkdir()
    (tmp_path / "nets" / "net.toml").write_text(
        '[jobs.a]\nrun = \'echo "ROWS=3" >> "$JAZ_OUTPUT"\'\n'
        '[jobs.b]\nneeds = ["a"]\nif = "a.ROWS == 3"\nrun = "true"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(tmp_path / "home")
    result = subprocess.run(
        [sys.executable, "-m", "jaz", "run", "../nets/net.toml", "--db", "rel.db", "--json"],
        cwd=tmp_path / "here", env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    assert jobs["a"]["outputs"] == {"ROWS": "3"}
    assert jobs["b"]["status"] == "succeeded"
    assert (tmp_path / "here" / "rel.logs").is_dir()
