"""Secret values for `env = { NAME = { secret = "name" } }` (SPEC §1.2).

Looked up in `$JAZ_HOME/secrets.toml` (refused unless only its owner can read
it) and in `JAZ_SECRET_<NAME>` environment variables. Values go only into a job's
environment; everything stored or shown passes through `redact` first.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from jaz.errors import ActionError, Refused


class Secrets:
    def __init__(self, file: Path | None, environ: Mapping[str, str] | None = None) -> None:
        self.file = file
        self._environ = os.environ if environ is None else environ
        self._values: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._values is not None:
            return self._values
        values: dict[str, str] = {}
        if self.file is not None and self.file.exists():
            mode = self.file.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise Refused(f"{self.file} can be read by others (mode {stat.S_IMODE(mode):04o})",
                              hint=f"chmod 600 {self.file}")
            try:
                data = tomllib.loads(self.file.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise ActionError(f"{self.file}: TOML syntax error: {e}") from None
            for key, value in data.items():
                if isinstance(value, str):
                    values[key] = value
        self._values = values
        return values

    def get(self, name: str) -> str:
        env_name = "JAZ_SECRET_" + name.upper().replace("-", "_").replace(".", "_")
        if env_name in self._environ:
            return self._environ[env_name]
        values = self._load()
        if name in values:
            return values[name]
        where = f"{self.file}" if self.file is not None else "the secrets file"
        raise ActionError(f"secret {name!r} not found",
                          hint=f"add {name} = \"...\" to {where} (mode 0600) or set {env_name}")
