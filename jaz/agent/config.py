"""The agent's TOML configuration, validated like the server's: every problem with its
file and field. `jaz agent init` writes one (`render`).

Relative paths are relative to the config file; the defaults keep everything in
$JAZ_HOME/agent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaz.engine.checks import (
    Collector,
    check_bool,
    check_str,
    check_unknown,
    got,
    parse_toml,
    quote,
    read_text_file,
)
from jaz.errors import JobnetInvalid, NotFound
from jaz.hosts.wire import is_loopback, split_address
from jaz.paths import jaz_home

DEFAULT_PORT = 10055
DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_PORT}"
KEYS = {"listen", "servers", "token_sha256", "database", "work_dir", "cert", "key",
        "allow_root", "max_jobs", "keep_days", "max_output", "reboot_command", "insecure",
        "log_level"}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"\s*(\d+)\s*(b|kib|mib|gib|tib|kb|mb|gb|tb|k|m|g|t)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    path: Path | None = None
    listen_host: str = "0.0.0.0"   # noqa: S104 - an agent is reached from its server
    listen_port: int = DEFAULT_PORT
    servers: tuple[Network, ...] = ()
    token_sha256: str = ""
    database: Path = field(default_factory=lambda: jaz_home() / "agent" / "agent.db")
    work_dir: Path = field(default_factory=lambda: jaz_home() / "agent" / "work")
    cert: Path = field(default_factory=lambda: jaz_home() / "agent" / "agent.crt")
    key: Path = field(default_factory=lambda: jaz_home() / "agent" / "agent.key")
    allow_root: bool = False
    max_jobs: int = 64
    keep_days: float = 7.0
    max_output: int = 2**30            # bytes per stream of one job
    reboot_command: str = "systemctl reboot"
    insecure: bool = False
    log_level: str = "info"

    def allowed(self, address: str) -> bool:
        """Whether a peer at `address` may talk to this agent at all."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.servers)

    @property
    def jobs_dir(self) -> Path:
        return self.work_dir / "jobs"


def load_config(path: Path | None) -> AgentConfig:
    if path is None:
        path = jaz_home() / "agent" / "agent.toml"
        if not path.exists():
            raise NotFound(f"{path}: no agent config",
                           hint="run `jaz agent init` first, or give one with -c FILE")
    text = read_text_file(path, missing="no such config file",
                          hint="run `jaz agent init -c FILE` to write one")
    return parse_config(text, path=path)


def parse_config(text: str, *, path: Path | None = None) -> AgentConfig:
    file = str(path) if path is not None else "<agent config>"
    data = parse_toml(text, file)
    c = Collector(file, text)
    check_unknown(c, data, KEYS, job=None, where="the agent config")
    base = path.parent if path is not None else Path.cwd()
    kw: dict[str, Any] = {"path": path.resolve() if path is not None else None}
    if "listen" in data:
        listen = check_str(c, data["listen"], job=None, field="listen")
        parsed = split_address(listen) if listen is not None else None
        if listen is not None and parsed is None:
            c.add(f"bad listen address {quote(listen)}: write it as \"HOST:PORT\", like "
                  f"\"{DEFAULT_LISTEN}\" or \"[::]:{DEFAULT_PORT}\"", field="listen")
        elif parsed is not None:
            kw["listen_host"], kw["listen_port"] = parsed
    kw["servers"] = _servers(c, data.get("servers"))
    if "token_sha256" in data:
        token = check_str(c, data["token_sha256"], job=None, field="token_sha256")
        if token is not None and not _HEX64.fullmatch(token):
            c.add(f"bad token_sha256 {quote(token)}: expected the 64 lower-case hex digits "
                  "of a SHA-256 (`jaz agent init` writes it)", field="token_sha256")
        elif token is not None:
            kw["token_sha256"] = token
    else:
        c.add("no token_sha256: the agent accepts nothing without a token "
              "(`jaz agent init` makes one)", field=None)
    for key in ("database", "work_dir", "cert", "key"):
        if key in data:
            value = check_str(c, data[key], job=None, field=key)
            if value is not None:
                kw[key] = (base / Path(value).expanduser()).resolve()
    for key in ("allow_root", "insecure"):
        if key in data:
            kw[key] = check_bool(c, data[key], job=None, field=key)
    if "max_jobs" in data:
        value = data["max_jobs"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
            c.add(f"expected a whole number from 1 to 10000, got {got(value)}",
                  field="max_jobs")
        else:
            kw["max_jobs"] = value
    if "keep_days" in data:
        value = data["keep_days"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            c.add(f"expected a number of days above 0, like 7, got {got(value)}",
                  field="keep_days")
        else:
            kw["keep_days"] = float(value)
    if "max_output" in data:
        kw["max_output"] = _size(c, data["max_output"], "max_output")
    if "reboot_command" in data:
        value = check_str(c, data["reboot_command"], job=None, field="reboot_command")
        if value is not None:
            kw["reboot_command"] = value
    if "log_level" in data:
        value = check_str(c, data["log_level"], job=None, field="log_level")
        if value is not None and value.lower() in ("debug", "info", "warning", "error"):
            kw["log_level"] = value.lower()
        elif value is not None:
            c.add(f"bad log_level {quote(value)}: expected \"debug\", \"info\", \"warning\" "
                  "or \"error\"", field="log_level")
    if kw.get("insecure") and not is_loopback(kw.get("listen_host", "0.0.0.0")):  # noqa: S104
        c.add("insecure = true (no TLS) works only on a loopback listen address, like "
              "\"127.0.0.1:10055\": everything else is TLS", field="insecure")
    if c.problems:
        raise JobnetInvalid(c.problems)
    return AgentConfig(**{k: v for k, v in kw.items() if v is not None})


def _servers(c: Collector, raw: Any) -> tuple[Network, ...]:
    if raw is None:
        c.add("no servers: list the addresses (or networks) of the servers that may send "
              "jobs, like servers = [\"192.0.2.10\", \"10.1.0.0/16\"]", field=None)
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        c.add(f"expected a list of addresses or networks like [\"192.0.2.10\", "
              f"\"10.1.0.0/16\"], got {got(raw)}", field="servers")
        return ()
    out: list[Network] = []
    for item in raw:
        text = "127.0.0.1" if item == "localhost" else item
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            c.add(f"bad server address {quote(item)}: expected an IP address or a network "
                  f"like \"10.1.0.0/16\" (names are not looked up)", field="servers")
    return tuple(out)


def _size(c: Collector, value: Any, where: str) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) <= 0:
        c.add(f"bad size {quote(value)}: write it like \"1GiB\", \"200MiB\" or a number of "
              "bytes (more than 0)", field=where)
        return None
    return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]


def render(*, listen: str, servers: list[str], token_sha256: str) -> str:
    """The config `jaz agent init` writes; paths are next to it."""
    quoted = ", ".join(f'"{s}"' for s in servers)
    return f"""\
# jaz agent config (docs/agent.md). Relative paths are relative to this file.
listen = "{listen}"
# the servers that may send jobs: addresses or networks; anything else is closed at once
servers = [{quoted}]
# SHA-256 of the enrolment token (the token itself is shown once by `jaz agent init`)
token_sha256 = "{token_sha256}"
database = "agent.db"
work_dir = "work"
cert = "agent.crt"
key = "agent.key"
allow_root = false
max_jobs = 64            # jobs running at once; more wait their turn
keep_days = 7            # finished jobs (and their logs) are purged after this
max_output = "1GiB"      # per stream of one job; more is cut, and the cut is said
reboot_command = "systemctl reboot"
"""
