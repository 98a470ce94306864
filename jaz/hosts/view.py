"""How a host of `GET /api/v1/hosts` is put into words, the same in `jaz hosts` and on
the TUI's Hosts screen: its kind, its state and the note beside it."""

from __future__ import annotations

from typing import Any

KIND_LABELS = {"jaz-agent": "jaz-agent (plaintext)"}   # JAZ's protocol: no TLS, no token
STATES = {True: "online", False: "OFFLINE", None: "?"}


def kind_label(host: dict[str, Any]) -> str:
    kind = str(host.get("kind") or "")
    return KIND_LABELS.get(kind, kind or "-")


def state(host: dict[str, Any]) -> str:
    """online, OFFLINE, or ? (not probed: not trusted yet, or not said hello to yet)."""
    return STATES[host.get("online")]


def note(host: dict[str, Any]) -> str:
    """The host's last error while it is away (or why it is not contacted), for any kind."""
    if host.get("error"):
        return str(host["error"])
    if host.get("kind") == "agent" and not host.get("fingerprint"):
        return f"not trusted yet: jaz hosts trust {host['name']}"
    return ""
