"""`transfer` of a directory with agent hosts (docs/agent.md): recursive, every file
checksummed at both ends, non-ASCII names, empty files and folders, agent -> agent
(through this process), local -> agent and agent -> local; a new target appears whole or
not at all, an existing one needs overwrite = true. Real agents on loopback TLS."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from agent_support import Agent, jaz


def _tree(top: Path) -> dict[str, str]:
    """Every file and folder under `top`: relative path -> SHA-256 (or "dir")."""
    return {p.relative_to(top).as_posix(): "dir" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(top.rglob("*"))}


def _run(tmp_path: Path, name: str, text: str, hosts: str) -> dict:
    (tmp_path / f"{name}.toml").write_text(text)
    (tmp_path / "hosts.toml").write_text(hosts)
    result = jaz("run", tmp_path / f"{name}.toml", "--hosts", tmp_path / "hosts.toml",
                 "--db", tmp_path / f"{name}.db", "--json", home=tmp_path / "home")
    assert result.stdout, result.stderr
    view: dict = json.loads(result.stdout)
    view["stderr"] = result.stderr
    return view


def test_directories_between_agents_and_here(tmp_path: Path) -> None:
    a1, a2 = Agent(tmp_path / "a1").start(), Agent(tmp_path / "a2").start()
    hosts = a1.hosts_entry("a1") + a2.hosts_entry("a2")
    try:
        src = tmp_path / "src" / "récolte"
        (src / "año 2026" / "深い").mkdir(parents=True)
        (src / "vide").mkdir()                                  # an empty folder
        (src / "big.bin").write_bytes(os.urandom(2 * 2**20 + 7))   # several chunks
        (src / "año 2026" / "ñandú.csv").write_text("a,b\n")
        (src / "año 2026" / "深い" / "空.txt").write_text("")      # an empty file
        (src / "link.csv").symlink_to(src / "año 2026" / "ñandú.csv")   # the file it names
        out, back, mine = tmp_path / "out", tmp_path / "back", tmp_path / "mine"
        out.mkdir()
        (mine / "récolte").mkdir(parents=True)      # an older copy: merged into
        (mine / "récolte" / "big.bin").write_text("old")
        (mine / "récolte" / "old.txt").write_text("kept")
        view = _run(tmp_path, "dirs", f"""
[jobs.across]
transfer = {{ from = "a1:{src}", to = "a2:{out}/" }}
[jobs.renamed]
transfer = {{ from = "{src}", to = "a2:{out}/copie" }}
[jobs.home]
needs = ["across"]
transfer = {{ from = "a2:{out}/récolte", to = "{back}" }}
[jobs.refused]
needs = ["home"]
transfer = {{ from = "a1:{src}", to = "a2:{out}/" }}
[jobs.merged]
needs = ["home"]
transfer = {{ from = "a1:{src}", to = "{mine}/", overwrite = true }}
""", hosts)
        jobs = view["jobs"]
        expected = _tree(src)
        assert expected["link.csv"] == expected["año 2026/ñandú.csv"]
        assert expected["vide"] == "dir" and "año 2026/深い/空.txt" in expected
        for name in ("across", "renamed", "home", "merged"):
            assert jobs[name]["status"] == "succeeded", (name, view)
        assert _tree(out / "récolte") == expected           # agent -> agent
        assert _tree(out / "copie") == expected             # local -> agent, renamed
        assert _tree(back) == expected                      # agent -> local
        merged = _tree(mine / "récolte")
        assert merged.pop("old.txt") == hashlib.sha256(b"kept").hexdigest()
        assert merged == expected                           # replaced, file by file
        assert jobs["across"]["outputs"] == {"FILES": "4"}  # files copied (folders not)
        assert jobs["refused"]["status"] == "failed"        # exists; overwrite is false
        assert not [p for p in tmp_path.rglob("*") if ".jaz-part-" in p.name]
        logs = jaz("logs", view["run_id"], "across", "--db", tmp_path / "dirs.db",
                   home=tmp_path / "home").stdout
        assert f"-> a2:{out}/récolte/año 2026/深い/空.txt (0 bytes" in logs
        assert expected["big.bin"] in logs

    finally:
        a1.stop()
        a2.stop()


def test_a_folder_copy_that_fails_half_way_leaves_nothing_in_place(tmp_path: Path) -> None:
    """The source end fails on the second file (as an agent that went away would): the
    first file was already copied into the hidden folder, which is removed, and the
    target never appears."""
    import threading

    import pytest

    from jaz.errors import ActionError
    from jaz.hosts import files, transfer

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("first")
    (src / "b.txt").write_text("second")

    class Failing(transfer.LocalEnd):
        def call(self, op: str, **f: object) -> dict:
            if op == "fread" and str(f["path"]).endswith("b.txt"):
                raise ActionError("the agent went away")
            return super().call(op, **f)

    end = transfer.LocalEnd(tmp_path)
    with pytest.raises(ActionError, match="went away"):
        transfer._folder(Failing(tmp_path), end, ("a1", "a2"), files.tree(src),
                         str(tmp_path / "out"), False, threading.Event())
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
