"""`jaz server -c FILE`: the server's TOML configuration (SPEC §4), validated like a
jobnet: every problem is reported with the file and the field.

Everything has a default, so the server runs with no file at all: it listens on
127.0.0.1:10061, keeps its database in $JAZ_HOME, and reads jobnets and calendars
from $JAZ_HOME/jobnets and $JAZ_HOME/calendars. Relative paths in a file are relative
to the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaz.engine.checks import (
    Collector,
    check_bool,
    check_enum,
    check_str,
    check_table,
    check_unknown,
    got,
    parse_toml,
    quote,
    read_text_file,
)
from jaz.engine.notify import NotifyConfig, parse_notify
from jaz.errors import JobnetInvalid
from jaz.hosts.config import Host, parse_hosts

DEFAULT_LISTEN = "127.0.0.1:10061"
TOP_KEYS = {"listen", "database", "jobnets", "calendars", "allow_root", "keep_days",
            "log_level", "max_memory", "hosts", "hosts_file", "queues", "users", "notify",
            "jaz_listen"}
ROLES = ("viewer", "operator", "admin")
LOG_LEVELS = ("debug", "info", "warning", "error")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, kw_only=True)
class User:
    name: str
    role: str
    token_sha256: str


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    path: Path | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 10061
    database: str = ""                       # "" = $JAZ_HOME/jaz.db
    jobnets: Path | None = None              # None = $JAZ_HOME/jobnets
    calendars: Path | None = None            # None = $JAZ_HOME/calendars
    allow_root: bool = False
    keep_days: int | None = None             # None: keep everything
    log_level: str = "info"
    max_memory: int | None = None            # bytes of resident memory
    hosts: dict[str, Host] = field(default_factory=dict)   # [hosts.NAME] of this file
    hosts_file: Path | None = None           # None = $JAZ_HOME/hosts.toml (if it exists)
    queues: dict[str, int] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    notify: NotifyConfig | None = None
    jaz_listen: str | None = None            # JAZ agents' results (docs/migration.md)

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


def load_config(path: Path | None) -> ServerConfig:
    """The configuration in `path`, or the defaults when there is none."""
    if path is None:
        return ServerConfig()
    text = read_text_file(path, missing="no such config file",
                          hint="give an existing file with -c, or leave -c out for defaults")
    return parse_config(text, path=path)


def parse_config(text: str, *, path: Path | None = None) -> ServerConfig:
    file = str(path) if path is not None else "<config>"
    data = parse_toml(text, file)
    c = Collector(file, text)
    check_unknown(c, data, TOP_KEYS, job=None, where="the server config")
    base = path.parent if path is not None else Path.cwd()
    kw: dict[str, Any] = {"path": path.resolve() if path is not None else None}
    if "listen" in data:
        listen = check_str(c, data["listen"], job=None, field="listen")
        if listen is not None:
            parsed = parse_listen(listen)
            if parsed is None:
                c.add(f"bad listen address {quote(listen)}: write it as \"HOST:PORT\" with a "
                      f"port from 0 to 65535, like \"{DEFAULT_LISTEN}\" or \"[::1]:10061\"",
                      field="listen")
            else:
                kw["listen_host"], kw["listen_port"] = parsed
    if "database" in data:
        db = check_str(c, data["database"], job=None, field="database")
        if db is not None:
            kw["database"] = _database(c, db, base)
    for key in ("jobnets", "calendars"):
        if key in data:
            folder = check_str(c, data[key], job=None, field=key)
            if folder is not None:
                kw[key] = (base / Path(folder).expanduser()).resolve()
    if "allow_root" in data:
        kw["allow_root"] = check_bool(c, data["allow_root"], job=None, field="allow_root")
    if "keep_days" in data:
        kw["keep_days"] = _whole(c, data["keep_days"], "keep_days", low=1)
    if "log_level" in data:
        level = data["log_level"]
        if isinstance(level, str) and level.lower() in LOG_LEVELS:
            kw["log_level"] = level.lower()
        else:
            check_enum(c, level, LOG_LEVELS, job=None, field="log_level")
    if "max_memory" in data:
        kw["max_memory"] = _size(c, data["max_memory"], "max_memory")
    kw["hosts"] = parse_hosts(c, data.get("hosts", {}), base=base,
                              source=path.resolve() if path is not None else None)
    if "jaz_listen" in data:
        from jaz.hosts.jazconfig import with_listen

        kw["hosts"] = with_listen(c, kw["hosts"], data["jaz_listen"])
        if isinstance(data["jaz_listen"], str):
            kw["jaz_listen"] = data["jaz_listen"]
    if "hosts_file" in data:
        hosts_file = check_str(c, data["hosts_file"], job=None, field="hosts_file")
        if hosts_file is not None:
            kw["hosts_file"] = (base / Path(hosts_file).expanduser()).resolve()
    kw["queues"] = _queues(c, data.get("queues", {}))
    kw["users"] = _users(c, data.get("users", {}))
    if "notify" in data:
        kw["notify"] = parse_notify(c, data["notify"])
    if c.problems:
        raise JobnetInvalid(c.problems)
    return ServerConfig(**{k: v for k, v in kw.items() if v is not None or k == "path"})


def parse_listen(text: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9_.\-]+):(\d{1,5})",
                     text.strip())
    if m is None:
        return None
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port < 65536:   # 0: any free port (the server writes its URL to server.url)
        return None
    return host, port


def _database(c: Collector, db: str, base: Path) -> str:
    from jaz.engine.store.postgres import has_password, is_postgres_url

    if is_postgres_url(db):
        if has_password(db):   # the URL ends up in logs, `ps` and the config's history
            c.add("the database URL carries a password: put the password in ~/.pgpass or "
                  "PGPASSWORD, not in the URL", field="database")
        return db
    path = Path(db.removeprefix("sqlite:///")).expanduser()
    return str((base / path).resolve())


def _whole(c: Collector, value: Any, field: str, *, low: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        c.add(f"expected a whole number >= {low}, got {quote(value)}", field=field)
        return None
    return value


def _size(c: Collector, value: Any, field: str) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.fullmatch(value) if isinstance(value, str) else None
    unit = (m.group(2) or "").lower() if m else ""
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        c.add(f"bad size {quote(value)}: write it like \"512MiB\", \"1GiB\", \"2G\" or a "
              f"number of bytes (more than 0)", field=field)
        return None
    return int(float(m.group(1)) * _UNITS[unit])


def _queues(c: Collector, raw: Any) -> dict[str, int]:
    table = check_table(c, raw, job=None, field="queues") or {}
    out: dict[str, int] = {}
    for name, value in table.items():
        n = _whole(c, value, f"queues.{name}", low=1)
        if n is not None:
            out[name] = n
    return out


def _users(c: Collector, raw: Any) -> dict[str, User]:
    table = check_table(c, raw, job=None, field="users") or {}
    out: dict[str, User] = {}
    for name, value in table.items():
        where = f"users.{name}"
        user = check_table(c, value, job=None, field=where)
        if user is None:
            continue
        check_unknown(c, user, {"role", "token_sha256"}, job=None, where=f"[{where}]",
                      prefix=f"{where}.")
        role = check_enum(c, user.get("role"), ROLES, job=None, field=f"{where}.role")
        digest = user.get("token_sha256")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            # a string is not echoed: it may be the token itself, pasted in the wrong place
            shown = "nothing" if digest is None else got(digest) \
                if not isinstance(digest, str) else \
                f"a string of {len(digest)} characters (not shown: it may be the token)"
            c.add(f"expected the hex SHA-256 of the user's token (64 characters), got "
                  f"{shown}; make one with: printf %s \"$TOKEN\" | sha256sum",
                  field=f"{where}.token_sha256")
            continue
        if role is not None:
            out[name] = User(name=name, role=role, token_sha256=digest.lower())
    return out
