"""Secrets (SPEC §1.2): the job gets the value; nothing jaz writes or prints holds it.

The real CLI runs real shell jobs that do their worst with a secret (echo it to
stdout, stderr and $JAZ_OUTPUT, then fail); afterwards every byte jaz left on disk
(database, WAL, logs) and every byte it printed is searched for the value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-value"  # never written whole into a jobnet: jaz keeps jobnet texts

JOBNET = f"""
[jobs.ok]
env = {{ TOKEN = {{ secret = "api" }} }}
run = '''
echo "out $TOKEN"
echo "err $TOKEN" >&2
echo "T=$TOKEN" >> "$JAZ_OUTPUT"
printf 'BLOCK<<EOF\\nfirst %s\\nEOF\\n' "$TOKEN" >> "$JAZ_OUTPUT"
[ "$TOKEN" = "{SECRET[:6]}""{SECRET[6:]}" ] && echo MATCH
'''

[jobs.bad]
env = {{ TOKEN = {{ secret = "api" }} }}
run = '''
echo "about to fail with $TOKEN"
echo "failing: $TOKEN" >&2
exit 7
'''

[jobs.next]
needs = ["ok"]
run = 'echo "next sees $T and $STD_OUT"'
"""


def jaz_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(home)
    env["COLUMNS"] = "1000"  # no wrapped lines: a split secret would hide from the search
    env.update(extra or {})
    return env


def jaz(tmp_path: Path, *args: str, extra: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jaz", *args],
                          env=jaz_env(tmp_path / "home", extra), cwd=tmp_path,
                          capture_output=True, text=True, timeout=20)


def files_holding(folder: Path, needle: bytes, *, spare: set[Path]) -> list[Path]:
    return [p for p in folder.rglob("*")
            if p.is_file() and p not in spare and needle in p.read_bytes()]


def write_secrets_file(home: Path, mode: int) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "secrets.toml"
    path.write_text(f'api = "{SECRET}"\n')
    path.chmod(mode)
    return path


@pytest.mark.parametrize("source", ["environment", "secrets-file"])
def test_a_secret_reaches_the_job_and_nothing_else(tmp_path: Path, source: str) -> None:
    home = tmp_path / "home"
    extra: dict[str, str] = {}
    spare: set[Path] = set()
    if source == "environment":
        extra["JAZ_SECRET_API"] = SECRET
    else:
        spare.add(write_secrets_file(home, 0o600))
    db = tmp_path / "runs.db"
    file = tmp_path / "leaky.toml"
    file.write_text(JOBNET)

    printed: list[str] = []
    people = jaz(tmp_path, "run", str(file), "--db", str(db), extra=extra)
    printed += [people.stdout, people.stderr]
    assert people.returncode == 1, people.stderr  # 'bad' fails, the run halts in error
    machine = jaz(tmp_path, "run", str(file), "--db", str(db), "--json", extra=extra)
    printed += [machine.stdout, machine.stderr]
    assert machine.returncode == 1, machine.stderr

    view = json.loads(machine.stdout)
    assert view["status"] == "error"
    ok, bad, after = view["jobs"]["ok"], view["jobs"]["bad"], view["jobs"]["next"]
    assert (ok["status"], bad["status"], bad["exit_code"], after["status"]) == \
        ("succeeded", "failed", 7, "succeeded")
    assert ok["outputs"] == {"T": "***", "BLOCK": "first ***"}

    shown = {}
    for args in (["logs", "2"], ["logs", "2", "ok"], ["logs", "2", "bad"], ["logs", "2", "next"],
                 ["status", "2", "--json"], ["status", "2"], ["runs", "--json"]):
        result = jaz(tmp_path, *args, "--db", str(db))
        shown[" ".join(args)] = result.stdout
        printed += [result.stdout, result.stderr]
    assert "out ***" in shown["logs 2 ok"] and "err ***" in shown["logs 2 ok"]
    assert "MATCH" in shown["logs 2 ok"]  # the job itself saw the real value
    assert "about to fail with ***" in shown["logs 2 bad"]
    assert "failing: ***" in shown["logs 2 bad"]
    assert "next sees *** and out ***" in shown["logs 2 next"]

    assert all(SECRET not in text for text in printed), \
        [text for text in printed if SECRET in text]
    # the database, its WAL and every log and output file, byte for byte
    assert db.exists() and list((tmp_path / "runs.logs").rglob("*.out"))
    assert files_holding(tmp_path, SECRET.encode(), spare=spare) == []


def test_a_secret_in_the_wal_before_the_checkpoint_is_redacted_too(tmp_path: Path) -> None:
    """Read the WAL while a run is still open, before SQLite folds it into the file."""
    import sqlite3

    db = tmp_path / "runs.db"
    file = tmp_path / "leaky.toml"
    file.write_text(JOBNET)
    assert jaz(tmp_path, "run", str(file), "--db", str(db),
               extra={"JAZ_SECRET_API": SECRET}).returncode == 1
    # a reader that keeps the WAL from being checkpointed away on the next close
    keeper = sqlite3.connect(db)
    try:
        keeper.execute("PRAGMA wal_autocheckpoint=0")
        keeper.execute("SELECT count(*) FROM jobs").fetchall()
        result = jaz(tmp_path, "run", "--resume", "1", "--skip", "bad", "--db", str(db),
                     extra={"JAZ_SECRET_API": SECRET})
        assert result.returncode == 0, result.stderr + result.stdout
        wal = Path(str(db) + "-wal")
        assert wal.exists() and wal.stat().st_size > 0
        assert SECRET.encode() not in wal.read_bytes()
        assert SECRET.encode() not in db.read_bytes()
    finally:
        keeper.close()


@pytest.mark.parametrize(("setup", "words"), [
    ("world-readable", ["chmod 600", "secrets.toml"]),
    ("missing", ["JAZ_SECRET_API", "'api'"]),
])
def test_a_secret_that_cannot_be_had_fails_the_job_clearly(
        tmp_path: Path, setup: str, words: list[str]) -> None:
    home = tmp_path / "home"
    if setup == "world-readable":
        write_secrets_file(home, 0o644)
    db = tmp_path / "runs.db"
    file = tmp_path / "needs-secret.toml"
    file.write_text('[jobs.use]\nenv = { TOKEN = { secret = "api" } }\n'
                    'run = \'echo ran > "$JAZ_JOB.ran"\'\n')

    people = jaz(tmp_path, "run", str(file), "--db", str(db))
    assert people.returncode == 1, people.stderr
    text = people.stdout + people.stderr
    for word in words:
        assert word in text, text
    assert "Traceback" not in text
    assert not (tmp_path / "use.ran").exists()  # the job never started

    status = jaz(tmp_path, "status", "1", "--db", str(db), "--json")
    job = json.loads(status.stdout)["jobs"]["use"]
    assert (job["status"], job["exit_code"]) == ("failed", None)
    assert SECRET.encode() not in db.read_bytes()


def test_a_job_with_a_secret_ends_with_its_shell_even_if_a_child_keeps_its_output(
        tmp_path: Path) -> None:
    """Redacting means piping; a background child holding the pipe must not hold the job
    (a job without secrets writes its log file directly and ends with its shell too)."""
    import signal
    import time

    db = tmp_path / "runs.db"
    file = tmp_path / "daemon.toml"
    file.write_text("""[jobs.daemon]
env = { TOKEN = { secret = "api" } }
run = '''
echo $$ > daemon.pid
echo "first $TOKEN"
sleep 300 &
'''
""")
    try:
        started = time.monotonic()
        result = jaz(tmp_path, "run", str(file), "--db", str(db), "--json",
                     extra={"JAZ_SECRET_API": SECRET})
        assert time.monotonic() - started < 10
        assert result.returncode == 0, result.stderr
        log = next((tmp_path / "runs.logs").rglob("daemon.*.out"))
        assert log.read_text() == "first ***\n"
    finally:
        pid_file = tmp_path / "daemon.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
