"""The wire of Job Arranger for Zabbix (JAZ) v3 agents, as a recorded real agent shows it
(`../shared/jaz-agent/`): Zabbix framing, `ZBXD` + 0x01 + the body's length as 8 bytes
little-endian + a JSON body, both ways, one request and one answer a connection.

Plaintext, and no authentication but the connecting address: it is for migration
(docs/migration.md). Everything the record does not show is treated as unknown: a
frame is read by its declared length (never by one `recv`), refused when it is too big,
cut short, not UTF-8 JSON or not an object, and nothing in it is trusted to have a type
until it is checked.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAGIC = b"ZBXD\x01"
HEADER = struct.Struct("<5sQ")   # 13 bytes
MAX_BODY = 8 * 2**20             # far above what a JAZ agent sends (it cuts a job's output)
VERSION = 1

# data.method of a jobrun
RUN, TEST, ABORT, KILL = 0, 1, 2, 3
# data.result of a jobrun-res
ACCEPTED, REFUSED, ALREADY_RUNNING = 0, 2, 3


class FrameError(Exception):
    """A frame that is not what the protocol says; the connection is closed after it."""


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    return HEADER.pack(MAGIC, len(body)) + body


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(frame(message))


def receive(sock: socket.socket, *, limit: int = MAX_BODY) -> dict[str, Any]:
    """One framed message: FrameError when the peer sends anything else (or closes)."""
    head = _exactly(sock, HEADER.size)
    magic, size = HEADER.unpack(head)
    if magic != MAGIC:
        raise FrameError(f"not a ZBXD frame (it starts with {head[:5]!r})")
    if size > limit:
        raise FrameError(f"a frame of {size} bytes is over the limit of {limit}")
    return decode(_exactly(sock, size))


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FrameError("the frame's body is not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise FrameError("the frame's body is not a JSON object")
    return message


def _exactly(sock: socket.socket, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 2**20))
        if not chunk:
            got = size - left
            raise FrameError(f"the connection closed after {got} of {size} bytes")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def text_field(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)


def int_field(data: dict[str, Any], key: str) -> int | None:
    """An integer field, which JAZ may send as a number or a string of digits."""
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
