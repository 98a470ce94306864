"""Each action kind of `jaz run`, run for real through the service layer."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from jaz.engine.loader import load_file
from jaz.engine.machine import Settings
from jaz.engine.service import Service
from jaz.engine.store import SqliteStore


def run(tmp_path: Path, text: str, name: str = "net", **params: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    service = Service(SqliteStore(tmp_path / "jaz.db"), Settings(log_dir=tmp_path / "logs",
                                                                 grace=1.0))
    jobnet = load_file(path)
    run_id = service.create(jobnet, params=params)
    record = service.execute(run_id, jobnet)
    return record, {j.name: j for j in service.jobs(run_id)}, service


def test_sql_on_sqlite_publishes_first_row_and_writes_rows_to_stdout(tmp_path):
    (tmp_path / "data").mkdir()
    record, jobs, service = run(tmp_path, '''
[jobs.load]
database = "sqlite:///data/w.db"
sql = """
CREATE TABLE t (id INTEGER, name TEXT);
INSERT INTO t VALUES (1, 'a'), (2, 'b; with semicolon');
SELECT COUNT(*) AS n, MAX(name) AS top FROM t;
"""
[jobs.use]
needs = ["load"]
if = "load.n == 2"
run = 'echo "n=$n top=$top"'
''')
    assert record.status == "succeeded"
    assert jobs["load"].outputs == {"ROWS": "1", "n": "2", "top": "b; with semicolon"}
    assert "n\ttop" in jobs["load"].stdout_tail
    assert jobs["use"].stdout_tail.strip() == "n=2 top=b; with semicolon"
    rows = sqlite3.connect(tmp_path / "data" / "w.db").execute("SELECT * FROM t").fetchall()
    assert rows == [(1, "a"), (2, "b; with semicolon")]


def test_sql_error_fails_the_job_and_rolls_back(tmp_path):
    record, jobs, _ = run(tmp_path, '''
[jobs.bad]
database = "sqlite:///w.db"
sql = "CREATE TABLE t (x); INSERT INTO t VALUES (1); INSERT INTO nope VALUES (2);"
''')
    assert record.status == "error"
    assert jobs["bad"].status == "failed"
    assert "no such table: nope" in jobs["bad"].message
    tables = sqlite3.connect(tmp_path / "w.db").execute(
        "SELECT name FROM sqlite_master").fetchall()
    assert tables == []  # the CREATE was rolled back with the rest


def test_postgres_without_psycopg_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)   # as if it were not installed
    record, jobs, _ = run(tmp_path, '''
[jobs.pg]
database = "postgresql://app@127.0.0.1/db"
sql = "SELECT 1"
''')
    assert jobs["pg"].status == "failed"
    assert "psycopg" in jobs["pg"].message and "jaz[postgres]" in jobs["pg"].message


def test_wait_file_waits_for_a_file_written_later_and_deletes_it(tmp_path):
    target = tmp_path / "in" / "ready.flag"
    target.parent.mkdir()

    def write_soon() -> None:
        deadline = time.monotonic() + 10
        while not (tmp_path / "logs").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        target.write_text("go")

    threading.Thread(target=write_soon, daemon=True).start()
    record, jobs, _ = run(tmp_path, '''
[jobs.wait]
wait_file = { path = "in/*.flag", interval = "0.05s", timeout = "20s", delete = true }
[jobs.after]
needs = ["wait"]
run = 'echo "got $FILE"'
''')
    assert record.status == "succeeded"
    assert jobs["wait"].outputs["FILE"] == str(target)
    assert not target.exists()
    assert jobs["after"].stdout_tail.strip() == f"got {target}"


@pytest.mark.parametrize("spec, message", [
    ('{ path = "missing.txt", check = true }', "does not exist"),
    ('{ path = "missing.txt", timeout = "0.2s", interval = "0.05s" }', "did not appear"),
])
def test_wait_file_fails_clearly(tmp_path, spec, message):
    record, jobs, _ = run(tmp_path, f"[jobs.w]\nwait_file = {spec}\n")
    assert jobs["w"].status == "failed"
    assert message in jobs["w"].message


def test_transfer_copies_into_a_folder_and_refuses_to_overwrite(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("a")
    (tmp_path / "src" / "b.csv").write_text("b")
    text = '''
[jobs.copy]
transfer = { from = "src/*.csv", to = "out/" }
'''
    record, jobs, _ = run(tmp_path, text)
    assert record.status == "succeeded"
    assert (tmp_path / "out" / "a.csv").read_text() == "a"
    assert jobs["copy"].outputs["FILES"] == "2"
    record, jobs, _ = run(tmp_path, text)
    assert jobs["copy"].status == "failed"
    assert "overwrite = true" in jobs["copy"].message
    record, jobs, _ = run(tmp_path, text.replace('to = "out/"', 'to = "local:out/", '
                                                  'overwrite = true'))
    assert record.status == "succeeded"


def test_sub_jobnet_takes_variables_in_and_gives_outputs_out(tmp_path):
    (tmp_path / "child.toml").write_text('''
[params]
GREETING = "default"
[jobs.inner]
run = 'echo "MSG=$GREETING from child, day $DAY" >> "$JAZ_OUTPUT"'
''')
    record, jobs, service = run(tmp_path, '''
[params]
DAY = "mon"
[jobs.first]
run = 'echo "GREETING=hello" >> "$JAZ_OUTPUT"'
[jobs.sub]
needs = ["first"]
jobnet = "child"
[jobs.last]
needs = ["sub"]
if = "sub.MSG matches 'hello from child'"
run = 'echo "$MSG"'
''')
    assert record.status == "succeeded", record.message
    assert jobs["sub"].outputs["MSG"] == "hello from child, day mon"
    assert jobs["last"].stdout_tail.strip() == "hello from child, day mon"
    children = service.children(record.id)
    assert [(c.jobnet, c.parent_job, c.status) for c in children] == [
        ("child", "sub", "succeeded")]


def test_failing_sub_jobnet_fails_its_job(tmp_path):
    (tmp_path / "child.toml").write_text('[jobs.boom]\nrun = "exit 3"\n')
    record, jobs, _ = run(tmp_path, '[jobs.sub]\njobnet = "child"\n')
    assert record.status == "error"
    assert jobs["sub"].status == "failed"
    assert "child" in jobs["sub"].message and "error" in jobs["sub"].message


def test_shell_cwd_and_env(tmp_path):
    (tmp_path / "work").mkdir()
    record, jobs, _ = run(tmp_path, '''
[defaults]
env = { A = "from-defaults", B = "b" }
[jobs.j]
shell = "/bin/bash"
cwd = "work"
env = { A = "from-job" }
run = 'echo "$BASH_VERSION" | cut -c1 ; pwd ; echo "$A $B"'
''')
    lines = jobs["j"].stdout_tail.splitlines()
    assert lines[0].isdigit()
    assert lines[1] == str(tmp_path / "work")
    assert lines[2] == "from-job b"


def test_missing_cwd_fails_with_a_clear_message(tmp_path):
    record, jobs, _ = run(tmp_path, '[jobs.j]\ncwd = "nowhere"\nrun = "true"\n')
    assert jobs["j"].status == "failed"
    assert "nowhere" in jobs["j"].message and "does not exist" in jobs["j"].message


def test_stop_command_runs_instead_of_a_signal(tmp_path):
    marker = tmp_path / "stopped-by-command"
    record, jobs, _ = run(tmp_path, f'''
[jobs.j]
timeout = "0.3s"
stop_command = 'echo "$JAZ_PID" > {marker}; kill -KILL -- -$JAZ_PID'
run = "trap '' TERM; sleep 30"
''')
    assert jobs["j"].status == "failed" and jobs["j"].timed_out
    assert marker.read_text().strip().isdigit()


def test_stop_codes_decide_failure(tmp_path):
    record, jobs, _ = run(tmp_path, '''
[jobs.warn_only]
stop_codes = "2-255"
run = "exit 1"
[jobs.real_failure]
stop_codes = "2-255"
run = "exit 2"
''')
    assert jobs["warn_only"].status == "succeeded" and jobs["warn_only"].exit_code == 1
    assert jobs["real_failure"].status == "failed" and jobs["real_failure"].exit_code == 2


def test_logs_are_kept_per_attempt(tmp_path):
    record, jobs, service = run(tmp_path, '''
[jobs.flaky]
retries = 1
run = 'if [ "$JAZ_ATTEMPT" = 1 ]; then echo first; exit 1; fi; echo second'
''')
    assert jobs["flaky"].status == "succeeded" and jobs["flaky"].attempts == 2
    chunks = service.logs(record.id, "flaky", all_attempts=True)
    stdout = [c.text.strip() for c in chunks if c.stream == "stdout"]
    assert stdout == ["first", "second"]
