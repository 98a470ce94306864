"""What the agent benches share (bench/agent_bench.py, bench/jazagent_bench.py): a free
port, a real `jaz agent` made with `jaz agent init`, `true` jobs sent through an
executor with N in flight and timed, the floor of the same processes spawned directly,
and /proc readings of a process's CPU and resident size."""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IN_FLIGHT = 8
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class AgentProcess:
    """One real agent on a loopback port in its own folder: its fingerprint, token file,
    config and process."""

    def __init__(self, folder: Path, settings: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = folder / "agent.toml"
        self.env = dict(os.environ, JAZ_HOME=str(folder / "home"))
        init = subprocess.run([sys.executable, "-m", "jaz", "agent", "init", "-c",
                               str(self.config), "--listen", f"127.0.0.1:{self.port}"],
                              env=self.env, capture_output=True, text=True, check=True)
        self.fingerprint = _found(r"fingerprint: (\S+)", init.stdout)
        self.token_file = folder / "token"
        self.token_file.write_text(_found(r"token: (\S+)", init.stdout))
        text = self.config.read_text()
        if os.geteuid() == 0:
            text = text.replace("allow_root = false", "allow_root = true")
        for key, value in (settings or {}).items():   # `key = value` lines of the config
            text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
            text += "" if found else f"{key} = {value}\n"
        self.config.write_text(text)
        self.proc = subprocess.Popen([sys.executable, "-m", "jaz", "agent", "-c",
                                      str(self.config)], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("agent bench: the agent did not start") from None
                time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def host(self, name: str) -> Any:
        from jaz.hosts.config import Host

        return Host(name=name, agent=self.address, fingerprint=self.fingerprint,
                    token_file=self.token_file)

    def hosts_entry(self, name: str) -> str:
        return (f'[hosts.{name}]\nagent = "{self.address}"\n'
                f'fingerprint = "{self.fingerprint}"\ntoken_file = "{self.token_file}"\n')

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"agent bench: `jaz agent init` printed no {pattern!r}")
    return match.group(1)


@dataclass
class Timed:
    """`true` jobs sent one by one through `executor` (`start(attempt)`), timed from
    the start to the reported end."""

    executor: Any
    host: str
    folder: Path
    latencies: list[float] = field(default_factory=list)

    def one(self, i: int) -> None:
        from jaz.engine.executors.base import Attempt
        from jaz.engine.model import Job, RunAction

        stem = self.folder / f"t.{i}".replace("-", "m")
        attempt = Attempt(run_id=1, jobnet="bench", job=Job(name="t", action=RunAction(
            script="true")), attempt=1, host=self.host, env={}, cwd=self.folder,
            base_dir=self.folder, stdout_path=Path(f"{stem}.out"),
            stderr_path=Path(f"{stem}.err"), output_path=Path(f"{stem}.vars"))
        done = threading.Event()
        t0 = time.perf_counter()
        execution = self.executor.start(attempt)
        execution.report(done.set)
        done.wait()
        self.latencies.append(time.perf_counter() - t0)
        outcome = execution.wait()
        assert outcome.exit_code == 0, outcome

    def alone(self, n: int) -> list[float]:
        """`n` jobs one at a time (after one to warm up): their latencies, sorted."""
        self.one(0)
        self.latencies = []
        for i in range(1, n + 1):
            self.one(-i)
        return sorted(self.latencies)

    def in_flight(self, n: int, at_once: int = IN_FLIGHT) -> float:
        """`n` jobs, `at_once` in flight: the wall time (latencies in `latencies`)."""
        self.latencies = []
        t0 = time.perf_counter()
        with ThreadPoolExecutor(at_once) as pool:
            list(pool.map(self.one, range(1, n + 1)))
        return time.perf_counter() - t0


def spawn_floor(n: int, at_once: int = IN_FLIGHT) -> float:
    """Jobs/s of `/bin/sh -c true` spawned directly, `at_once` at a time."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(at_once) as pool:
        list(pool.map(lambda _: subprocess.run(["/bin/sh", "-c", "true"],
                                               start_new_session=True), range(n)))
    return n / (time.perf_counter() - t0)


def spawn_ms() -> float:
    """The median time of one `/bin/sh -c true`, in ms."""
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", "true"], start_new_session=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
