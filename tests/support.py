"""Helpers shared by the test modules (importable as `support`: pytest puts tests/ on
the path)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0,
             every: float = 0.02) -> Any:
    """Poll `check` until it returns something true, with a deadline: the value, or an
    AssertionError naming what never happened. The pause is a polling interval, not a
    wait for state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def real_core(tmp_path: Path, monkeypatch: Any, jobnets: dict[str, str],
              clock: Any = None) -> Any:
    """A server's `Core` (its real driver, store and executors) in `tmp_path`, with the
    jobnets given (name -> TOML text) in its jobnets folder; the caller closes it."""
    from jaz.server.config import parse_config
    from jaz.server.core import Core

    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    for name, text in jobnets.items():
        (nets / f"{name}.toml").write_text(text)
    return Core(parse_config(f'jobnets = "{nets}"\ndatabase = "{tmp_path / "jaz.db"}"\n'),
                clock=clock)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(root: Path, jobnets: dict[str, str], extra: str = ""
                   ) -> Iterator[tuple[str, str, dict[str, str], Path]]:
    """A real `jaz server` subprocess on a free loopback port, with these jobnets in
    `root/jobnets` and `extra` lines of config (TOML tables such as [hosts.x]): yields
    (url, admin token, environment, JAZ_HOME); SIGTERM at the end, and the server must
    have forgotten its address."""
    home, nets = root / "home", root / "jobnets"
    nets.mkdir()
    (root / "calendars").mkdir()
    for name, text in jobnets.items():
        (nets / f"{name}.toml").write_text(text)
    config = root / "jaz.toml"
    config.write_text(f'listen = "127.0.0.1:{free_port()}"\njobnets = "jobnets"\n'
                      f'calendars = "calendars"\n'
                      + ("allow_root = true\n" if os.geteuid() == 0 else "") + extra)
    env = {k: v for k, v in os.environ.items() if k not in ("JAZ_SERVER", "JAZ_TOKEN")}
    env["JAZ_HOME"] = str(home)
    with (root / "server.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url_file = home / "server.url"

            def up() -> bool:
                assert proc.poll() is None, (root / "server.log").read_text()
                return url_file.exists() and url_file.read_text().endswith("\n")

            wait_for(up, "the server to write server.url")
            yield (url_file.read_text().strip(), (home / "admin.token").read_text().strip(),
                   env, home)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    assert not (home / "server.url").exists()   # the server forgets its address on exit
