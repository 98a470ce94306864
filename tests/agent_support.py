"""Real `jaz agent` processes on loopback ports for the agent tests: made with the real
`jaz agent init`, started as subprocesses, killed with SIGKILL or SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def jaz(*args: Any, home: Path, cwd: Path | None = None, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, input=input)


class Agent:
    """One agent: its folder, config, token, fingerprint and process."""

    def __init__(self, folder: Path, *, servers: tuple[str, ...] = ("127.0.0.1",),
                 extra: str = "") -> None:
        self.folder = folder
        self.port = free_port()
        self.config = folder / "agent.toml"
        self.home = folder / "home"
        result = jaz("agent", "init", "-c", self.config, "--listen",
                     f"127.0.0.1:{self.port}", *[a for s in servers for a in ("--server", s)],
                     home=self.home)
        assert result.returncode == 0, result.stderr
        self.fingerprint = re.search(r"fingerprint: (SHA256:[0-9a-f]{64})",
                                     result.stdout).group(1)  # type: ignore[union-attr]
        self.token = re.search(r"token: (\S+)", result.stdout).group(1)  # type: ignore[union-attr]
        text = self.config.read_text()
        if os.geteuid() == 0:
            text = text.replace("allow_root = false", "allow_root = true")
        self.config.write_text(text + extra)
        self.token_file = folder / "token"
        self.token_file.write_text(self.token + "\n")
        self.token_file.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "agent.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Agent:
        env = dict(os.environ, JAZ_HOME=str(self.home))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jaz", "agent", "-c",
                                          str(self.config), "-v"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(up, f"the agent on port {self.port} to listen")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)

    def jobs(self) -> list[tuple[Any, ...]]:
        """The rows of the agent's database: (id, state, acked, result)."""
        db = self.folder / "agent.db"
        if not db.exists():
            return []
        with sqlite3.connect(db) as conn:
            try:
                return conn.execute("SELECT id, state, acked, result FROM jobs").fetchall()
            except sqlite3.OperationalError:
                return []

    def hosts_entry(self, name: str, *, fingerprint: str | None = None,
                    labels: str = "") -> str:
        return (f'[hosts.{name}]\nagent = "{self.address}"\n'
                f'fingerprint = "{fingerprint or self.fingerprint}"\n'
                f'token_file = "{self.token_file}"\n{labels}\n')
