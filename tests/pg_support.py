"""A throwaway PostgreSQL server for the tests: Debian's binaries, a data folder in /tmp,
loopback only, trust authentication, no fsync.

One server per test process (each pytest-xdist worker starts its own on a free port),
started on first use and stopped at exit; every test gets a database of its own from
`fresh_database()`. As root (CI), initdb and postgres run as the `postgres` user, since
PostgreSQL refuses root.

Without the binaries the tests that need them skip locally and fail in CI (`CI` set),
where `make test` installs them.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import free_port, wait_for


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def require() -> Path:
    """The folder of initdb and postgres, or skip (fail in CI) saying how to get them."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        reason = ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                  "`apt-get install postgresql`, or run `make test`, which does")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is missing: pip install -e '.[dev]'")
    return bin_dir


class PgServer:
    def __init__(self, bin_dir: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jaz-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._log = (self.root / "server.log").open("ab")
        # as root: run as `postgres`, set by Popen itself (a `runuser` in between would
        # not pass our signals on)
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:   # the data folder must belong to the user the server runs as
            self._as = {"user": "postgres", "group": "postgres", "extra_groups": []}
            shutil.chown(self.root, "postgres", "postgres")
        self._run([str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        for _ in range(5):   # a free port may be taken by someone else before we bind it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(self.data),
                 "-p", str(self.port), "-k", str(self.root), "-h", "127.0.0.1",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "shared_buffers=16MB",
                 "-c", "max_connections=60", "-c", "log_min_messages=fatal"],
                stdout=subprocess.DEVNULL, stderr=self._log,
                **self._as)
            if self._ready():
                return
        raise AssertionError("PostgreSQL did not start:\n" + self.log())

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, **self._as)
        assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}{done.stderr}"

    def _ready(self) -> bool:
        import psycopg

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return True
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        wait_for(up, "PostgreSQL to accept connections", timeout=30, every=0.05)
        assert self.proc is not None
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)    # "fast" shutdown: ends the sessions
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


_server: PgServer | None = None


def server() -> PgServer:
    """This process's PostgreSQL server, started on first use."""
    global _server
    if _server is None:
        _server = PgServer(require())
        atexit.register(_server.stop)
    return _server


def fresh_database() -> str:
    """The URL of a new, empty database on this process's server."""
    return server().create_database()


@contextlib.contextmanager
def jaz_server(root: Path, database: str, jobnets: dict[str, str] | None = None,
               extra: str = ""
               ) -> Iterator[tuple[str, str, dict[str, str], subprocess.Popen[bytes]]]:
    """A real `jaz server` on `database` (a URL) with its own JAZ_HOME under `root`, and
    `root/jobnets` (written from `jobnets` if given; `extra` is added to its config):
    yields (API URL, admin token, environment, process); SIGTERM at the end. Started
    again on the same `root`, it is the same server (its JAZ_HOME)."""
    home, nets = root / "home", root / "jobnets"
    nets.mkdir(parents=True, exist_ok=True)
    for name, text in (jobnets or {}).items():
        (nets / f"{name}.toml").write_text(text)
    config = root / "jaz.toml"
    config.write_text(f'listen = "127.0.0.1:0"\njobnets = "jobnets"\n'
                      f'database = "{database}"\n'
                      + ("allow_root = true\n" if os.geteuid() == 0 else "") + extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(home)
    log_path = root / "server.log"
    (home / "server.url").unlink(missing_ok=True)   # a server killed before left its own
    with log_path.open("a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jaz", "server", "-c", str(config)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url_file = home / "server.url"

            def up() -> bool:
                assert proc.poll() is None, log_path.read_text()
                return url_file.exists() and url_file.read_text().endswith("\n")

            wait_for(up, "the server to write server.url", timeout=30)
            yield (url_file.read_text().strip(), (home / "admin.token").read_text().strip(),
                   env, proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)



def call(base: str, token: str, method: str, path: str, body: object = None) -> Any:
    """One API call to a server as `token`: the decoded JSON answer."""
    import json
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())


class Stream:
    """A server's /stream, read event by event (each read bounded by the timeout)."""

    def __init__(self, base: str, token: str, timeout: float = 20) -> None:
        import urllib.request

        req = urllib.request.Request(base + "/api/v1/stream",
                                     headers={"Authorization": f"Bearer {token}"})
        self._r = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - 127.0.0.1
        assert self._r.readline() == b": connected\n"
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def until(self, check: Any, what: str, timeout: float = 30
              ) -> tuple[str, dict[str, Any]]:
        """Read events until one (kind, data) passes `check`; it. A stream that says
        nothing for the read timeout, or nothing that passes within `timeout`, fails."""
        import json
        import time

        kind = ""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting on the stream for {what}: "
                                     f"{self.seen[-5:]}")
            try:
                line = self._r.readline().decode().rstrip("\n")
            except TimeoutError:
                raise AssertionError(f"the stream said nothing more waiting for {what}: "
                                     f"{self.seen[-5:]}") from None
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                event = (kind, json.loads(line[6:]))
                self.seen.append(event)
                if check(*event):
                    return event

    def close(self) -> None:
        self._r.close()
