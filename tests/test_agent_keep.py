"""A running agent purges the finished, acknowledged jobs older than keep_days on its
own, every quarter of keep_days when that is under 10 minutes (a soak's short
keep_days stays bounded: bench/agent_bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

from agent_support import Agent, jaz
from support import wait_for


def test_a_short_keep_days_purges_jobs_and_their_folders_while_the_agent_runs(
        tmp_path: Path) -> None:
    agent = Agent(tmp_path / "agent").start()
    agent.stop()   # (a keep_days of 2 seconds, set in its config)
    text = agent.config.read_text()
    agent.config.write_text(text.replace("\nkeep_days = 7", f"\nkeep_days = {2 / 86400!r}"))
    assert f"keep_days = {2 / 86400!r}" in agent.config.read_text()
    agent.start()
    try:
        (tmp_path / "hosts.toml").write_text(agent.hosts_entry("a1"))
        (tmp_path / "net.toml").write_text('[jobs.j]\nhost = "a1"\nrun = "echo hi"\n')
        result = jaz("run", tmp_path / "net.toml", "--hosts", tmp_path / "hosts.toml",
                     "--db", tmp_path / "r.db", "--json", home=tmp_path / "home")
        assert json.loads(result.stdout)["status"] == "succeeded", result.stderr
        jobs = agent.folder / "work" / "jobs"
        assert [row[2] for row in agent.jobs()] == [1]          # acknowledged
        wait_for(lambda: not agent.jobs() and not any(jobs.iterdir()),
                 "the job and its folder purged", timeout=30)
    finally:
        agent.stop()
