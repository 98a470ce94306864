"""Bearer tokens and roles (SPEC §4): `[users.NAME]` hold the SHA-256 of a token and
a role; the server also makes an admin token for the local user on first start.

viewer: read; operator: also start, stop, hold, release, skip, rerun; admin: everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from jaz.paths import ADMIN_TOKEN_FILE
from jaz.server.config import ServerConfig

ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    user: str
    role: str

    def may(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def admin_token(home: Path) -> str:
    """The local admin token in $JAZ_HOME (mode 0600), made on first start."""
    path = home / ADMIN_TOKEN_FILE
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


class Tokens:
    """Who a bearer token belongs to."""

    def __init__(self, config: ServerConfig, admin: str) -> None:
        self._by_digest = {u.token_sha256: Principal(u.name, u.role)
                           for u in config.users.values()}
        self._admin = digest(admin)

    def who(self, token: str) -> Principal | None:
        d = digest(token)
        if hmac.compare_digest(d, self._admin):
            return Principal("admin", "admin")
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(d, known):
                return principal
        return None
