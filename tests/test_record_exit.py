"""The server's jobs leave their exit status in $JAZ_EXIT_FILE, so that a server that
crashed meanwhile still learns how they ended: through a trap in the job's own shell
when that is a POSIX shell and the script has no trap or exec of its own, else through
a wrapper shell. Each form is run for real here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jaz.engine.executors.local import recording_argv

SCRIPTS = [
    ("echo hi", 0),
    ("exit 3", 3),
    ("false", 1),
    ("echo a\nexit 7\necho never", 7),
    ("set -e\nfalse\necho never", 1),
    ("trap 'echo mine' EXIT; exit 4", 4),     # its own trap: the wrapper records
    ("exec sh -c 'exit 5'", 5),               # an exec: the wrapper records
]


@pytest.mark.parametrize("script,code", SCRIPTS)
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_the_exit_status_is_recorded(tmp_path: Path, shell: str, script: str,
                                     code: int) -> None:
    exit_file = tmp_path / "job.exit"
    argv = recording_argv(shell, script)
    done = subprocess.run(argv, env={**os.environ, "JAZ_EXIT_FILE": str(exit_file)},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == code, done.stderr
    assert exit_file.read_text().strip() == str(code)
    assert "never" not in done.stdout


def test_the_trap_form_spares_a_process_and_keeps_line_numbers(tmp_path: Path) -> None:
    assert recording_argv("/bin/sh", "true")[0] == "/bin/sh"         # one shell
    assert recording_argv("/bin/sh", "trap x EXIT")[2] != "trap x EXIT"
    assert recording_argv("/usr/bin/python3", "print(1)")[:2] == ["/bin/sh", "-c"]
    done = subprocess.run(recording_argv("/bin/sh", "true\nno-such-command-here"),
                          env={**os.environ, "JAZ_EXIT_FILE": str(tmp_path / "x")},
                          capture_output=True, text=True, timeout=10)
    assert " 2: " in done.stderr, done.stderr      # the error names the script's line 2
