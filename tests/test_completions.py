"""The shell completion scripts in completions/ are what `make completions` writes now,
and completing through them (a real bash, the real console script) offers `jaz import`'s
commands and options: a command added to the app is completed without regenerating, and
a change in how typer writes the scripts shows up here as a stale file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_completions  # noqa: E402


@pytest.mark.parametrize("shell", sorted(gen_completions.FILES))
def test_completion_scripts_are_up_to_date(shell: str) -> None:
    committed = (ROOT / "completions" / gen_completions.FILES[shell]).read_text()
    assert committed == gen_completions.generate(shell), \
        f"completions/{gen_completions.FILES[shell]} is stale: run `make completions`"


def _complete_in_bash(words: str) -> list[str]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    script = ROOT / "completions" / "jaz.bash"
    # the word being completed is the last one ('' for a new word), as bash sets it
    probe = (f"source {script}\nCOMP_WORDS=({words})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
             "_jaz_completion jaz\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", probe], env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


def test_bash_completes_the_import_commands() -> None:
    assert "import" in _complete_in_bash("jaz ''")
    assert {"crontab", "pgagent"} <= set(_complete_in_bash("jaz import ''"))


def test_bash_completes_import_crontab_options() -> None:
    options = set(_complete_in_bash("jaz import crontab --"))
    assert {"--out", "--one", "--system", "--prefix", "--force", "--json"} <= options
