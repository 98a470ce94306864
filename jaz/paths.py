"""Where jaz keeps its state: `$JAZ_HOME`, default `~/.local/state/jaz` (SPEC §3)."""

from __future__ import annotations

import os
from pathlib import Path

SERVER_URL_FILE = "server.url"    # where a running `jaz server` says it listens
SERVER_ID_FILE = "server.id"      # a server's id among those sharing a PostgreSQL database
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 - a file name: the local admin's token (0600)


def jaz_home() -> Path:
    env = os.environ.get("JAZ_HOME")
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state).expanduser() if state else Path.home() / ".local" / "state"
    return base / "jaz"


def ensure_home() -> Path:
    home = jaz_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def default_db() -> Path:
    return jaz_home() / "jaz.db"


def log_dir() -> Path:
    return jaz_home() / "logs"


def secrets_file() -> Path:
    return jaz_home() / "secrets.toml"
