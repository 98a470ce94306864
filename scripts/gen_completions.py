"""Write shell completion scripts for jaz into completions/ (`make completions`).

They are generated from the typer app itself, so they follow every new command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = {"bash": "jaz.bash", "zsh": "_jaz", "fish": "jaz.fish"}


def generate(shell: str) -> str:
    env = {**os.environ, "_JAZ_COMPLETE": f"source_{shell}"}
    jaz = Path(sys.executable).parent / "jaz"  # the console script: its name keys completion
    result = subprocess.run([str(jaz)], env=env, capture_output=True, text=True, check=True)
    return result.stdout


def main() -> None:
    out = ROOT / "completions"
    out.mkdir(exist_ok=True)
    for shell, name in FILES.items():
        (out / name).write_text(generate(shell))
        print(f"wrote completions/{name}")


if __name__ == "__main__":
    main()
