"""What the TUI tests share: a real `jaz server` subprocess with an API client beside
the app (`tui_server`), the app under Pilot on it (`tui`), and `until`, the Pilot form
of `support.wait_for`.

Each test module makes its own module-scoped fixture from `tui_server`, with its own
jobnets, so modules stay independent and parallel-safe."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
from support import running_server, wait_for
from textual.pilot import Pilot

from jaz.client import Client
from jaz.tui.app import JazApp


@dataclass
class Server:
    """A running server: where it is, its admin token, and an API client for the test's
    own requests (to set up states and to check what the TUI did)."""

    home: Path
    url: str
    token: str
    api: httpx.Client
    env: dict[str, str]

    def start(self, jobnet: str, **body: Any) -> int:
        response = self.api.post("/api/v1/runs", json={"jobnet": jobnet, "params": {},
                                                        **body})
        response.raise_for_status()
        return int(response.json()["run_id"])

    def run(self, run_id: int) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/runs/{run_id}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def finished(self, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = wait_for(
            lambda: (r := self.run(run_id))["status"] not in ("running", "scheduled", "held")
            and r, f"run {run_id} to end")
        return result

    def client(self, token: str | None = None) -> Client:
        return Client(self.url, token or self.token)


@contextmanager
def tui_server(root: Path, jobnets: dict[str, str], config: str = "") -> Iterator[Server]:
    """A real server on a free loopback port, with `jobnets` (name -> TOML text) and
    `config`, extra lines of server config."""
    with running_server(root, jobnets, config) as (url, token, env, home), \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                         timeout=10, trust_env=False) as api:
        yield Server(home=home, url=url, token=token, api=api, env=env)


@asynccontextmanager
async def tui(server: Server, size: tuple[int, int] = (80, 24), *, mode: str = "runs",
              token: str | None = None) -> AsyncIterator[tuple[JazApp, Pilot[None]]]:
    """`jaz tui` on `server` (as `token`, else the admin) in a terminal of `size`, under
    Pilot: `async with tui(server, (120, 30)) as (app, pilot): ...`."""
    with server.client(token) as client:
        app = JazApp(client, mode=mode)
        async with app.run_test(size=size) as pilot:
            yield app, pilot


async def until(pilot: Pilot[Any], check: Callable[[], Any], what: str,
                within: float = 10.0) -> Any:
    """Poll `check` between the app's own steps until it is truthy, or fail after
    `within` seconds saying what was awaited."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")
