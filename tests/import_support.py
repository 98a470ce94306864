"""Helpers of the importer tests: the real `jaz` command line, and fire times of written
jobnets from the engine's own loader and schedule code."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def jaz(*args: str | Path, home: Path, cwd: Path, stdin: str | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(home)
    env["COLUMNS"] = "200"
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], cwd=cwd, env=env,
                          input=stdin if stdin is not None else "", capture_output=True,
                          text=True, timeout=120)


def fires(path: Path, after: datetime, n: int) -> list[datetime]:
    """The next `n` fires of a jobnet file after `after`, as `jaz next` computes them."""
    from jaz.engine.clock import local_zone
    from jaz.engine.loader import load_file
    from jaz.engine.schedules import bind_jobnet, next_fires

    bound = bind_jobnet(load_file(path), local_zone())
    return [f.at for f in next_fires(bound, after, n)]


def files_in(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
