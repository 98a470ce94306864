"""Helpers of the plugin tests: a real HTTP server on 127.0.0.1 for the `http` kind of
examples/plugins/jaz-http, and throwaway installed packages (a dist-info with entry
points, on a folder put on PYTHONPATH) for plugins that break."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Site:
    """What the server saw: every request, and whether a client left a slow one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.requests: list[dict[str, Any]] = []
        self.aborted = threading.Event()   # a client closed a /slow request unanswered
        self.release = threading.Event()   # ends every /slow request (at teardown)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            with site.lock:
                site.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers.items()), "body": body})
                site.counts[self.path] = count = site.counts.get(self.path, 0) + 1
            if self.path == "/slow":
                return self._slow()
            if self.path.startswith("/status/"):
                code = int(self.path.rsplit("/", 1)[1])
                return self._send(code, f"status {code}\n".encode(), "text/plain")
            if self.path == "/flaky":
                return self._send(503 if count <= 2 else 200, f"try {count}\n".encode(),
                                  "text/plain")
            if self.path == "/echo":
                return self._send(200, json.dumps({"method": self.command, "body": body,
                                                   "headers": dict(self.headers.items())}
                                                  ).encode(), "application/json")
            if self.path == "/big":
                return self._send(200, b"x" * (2 << 20), "application/octet-stream")
            return self._send(200, b"hello from the site\n", "text/plain; charset=utf-8")

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _slow(self) -> None:
            """Answer nothing; note when the client hangs up (the socket reads EOF)."""
            deadline = time.monotonic() + 60
            conn = self.connection
            while not site.release.is_set() and time.monotonic() < deadline:
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable:
                    try:
                        if conn.recv(1, socket.MSG_PEEK) == b"":
                            site.aborted.set()
                            self.close_connection = True
                            return
                    except OSError:
                        site.aborted.set()
                        return
            self.close_connection = True

    return Handler


@contextmanager
def http_site() -> Iterator[Site]:
    """A real `http.server` on a free loopback port, served by a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    site = Site(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(site)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.release.set()
        server.shutdown()
        server.server_close()


def make_dist(root: Path, package: str, entry_points: dict[str, str],
              modules: dict[str, str], version: str = "0.1.0") -> None:
    """An installed package as pip leaves one: `root/<package>-<version>.dist-info` with
    its METADATA and entry_points.txt (group jaz.kinds), and its modules in `root`."""
    dist = root / f"{package.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\n"
                                   f"Version: {version}\n")
    (dist / "entry_points.txt").write_text(
        "[jaz.kinds]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


def jaz_env(home: Path, pythonpath: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(home)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(extra)
    return env


def jaz(env: dict[str, str], *args: str | Path, cwd: Path, timeout: float = 30
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
