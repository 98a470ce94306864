"""A Zabbix sender (the trapper protocol of `zabbix_sender`) in the standard library.

One request, one reply: `ZBXD`, a flags byte (0x01), the body length as 4 bytes
little-endian plus 4 reserved zero bytes, then the JSON body. Those 8 bytes are
also the 8-byte little-endian length of the pre-4.0 framing, so every server
version since 2.x reads what we send. Replies may come in either framing, and in
the 8+8 "large packet" (0x04) or zlib-compressed (0x02) forms of newer servers.

Everything is bounded: connect and read have timeouts, a reply larger than
`MAX_REPLY` is refused unread, and every failure is an `ActionError` that says
what to check, because a job or a notification must fail, not hang.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jaz.engine.tomltext import quote
from jaz.errors import ActionError

DEFAULT_PORT = 10051
HEADER = b"ZBXD"
FLAG_PROTOCOL = 0x01
FLAG_COMPRESSED = 0x02
FLAG_LARGE = 0x04
MAX_REPLY = 64 * 1024  # a trapper's reply is a line of text; more is not a trapper
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0

_INFO = re.compile(r"processed:?\s*(\d+);\s*failed:?\s*(\d+)(?:;\s*total:?\s*(\d+))?", re.I)
_HOSTNAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True, kw_only=True)
class Item:
    """One value for one trapper item; `clock` (Unix seconds) defaults to the server's."""

    host: str
    key: str
    value: str
    clock: int | None = None


@dataclass(frozen=True, kw_only=True)
class Reply:
    """What the trapper said: its `info` line and the counts read from it."""

    info: str
    processed: int
    failed: int
    total: int


def parse_server(server: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address (default port).

    Raises `ActionError` naming the address, so both the loader and the sender can use it.
    """
    text = server.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ActionError(f"bad Zabbix server address {quote(server)}: missing ']'",
                              hint='write IPv6 addresses as "[2001:db8::1]:10051"')
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ActionError(f"bad Zabbix server address {quote(server)}: "
                              f"unexpected {quote(rest)} after ']'")
        port_text = rest[1:] if rest else ""
        if rest == ":":
            port_text = "?"  # "[::1]:" has an empty port
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not port_text:
            port_text = "?"
    if not host or (":" not in host and not _HOSTNAME.fullmatch(host)):
        raise ActionError(f"bad Zabbix server address {quote(server)}: expected \"host\" or "
                          f"\"host:port\"", hint='for example "zabbix.example.com:10051"')
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ActionError(f"bad Zabbix server address {quote(server)}: the port must be a "
                              f"number from 1 to 65535")
        port = int(port_text)
    return host, port


def encode(items: Sequence[Item]) -> bytes:
    """The whole request: header, length, `{"request": "sender data", "data": [...]}`."""
    data: list[dict[str, Any]] = []
    for item in items:
        entry: dict[str, Any] = {"host": item.host, "key": item.key, "value": item.value}
        if item.clock is not None:
            entry["clock"] = item.clock
        data.append(entry)
    body = json.dumps({"request": "sender data", "data": data},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HEADER + bytes([FLAG_PROTOCOL]) + struct.pack("<II", len(body), 0) + body


def send(server: str, items: Sequence[Item], *, connect_timeout: float = CONNECT_TIMEOUT,
         read_timeout: float = READ_TIMEOUT) -> Reply:
    """Send the items; return the reply if every item was processed, else `ActionError`.

    `read_timeout` bounds the whole reply, not each `recv`, so a server that trickles
    bytes cannot hold a job for longer than that.
    """
    host, port = parse_server(server)
    where = f"Zabbix server {host}:{port}" if ":" not in host else f"Zabbix server [{host}]:{port}"
    request = encode(items)
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except TimeoutError:
        raise ActionError(f"{where}: no connection within {connect_timeout:g}s",
                          hint="check the address and that no firewall drops the port") from None
    except socket.gaierror as e:
        raise ActionError(f"{where}: cannot resolve {host!r}: {e.strerror}") from None
    except OSError as e:
        raise ActionError(f"{where}: cannot connect: {e.strerror or e}",
                          hint="check that the server (or proxy) listens on that port") from None
    with sock:
        deadline = time.monotonic() + read_timeout
        try:
            sock.settimeout(max(0.001, read_timeout))
            sock.sendall(request)
            raw = _read_reply(sock, deadline, where)
        except TimeoutError:
            raise ActionError(f"{where}: no reply within {read_timeout:g}s") from None
        except OSError as e:
            raise ActionError(f"{where}: connection failed: {e.strerror or e}") from None
    return _check(_decode(raw, where), len(items), where, items)


def _recv_exactly(sock: socket.socket, n: int, deadline: float, where: str) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(min(n - len(buf), 65536))
        if not chunk:
            got = f"after {len(buf)} bytes" if buf else "without a reply"
            raise ActionError(f"{where}: the connection was closed {got}",
                              hint="the server may refuse this address: check "
                                   "'Allowed hosts' of the trapper item")
        buf += chunk
    return bytes(buf)


def _read_reply(sock: socket.socket, deadline: float, where: str) -> bytes:
    head = _recv_exactly(sock, 5, deadline, where)
    if head[:4] != HEADER:
        raise ActionError(f"{where}: the reply is not Zabbix protocol "
                          f"(starts with {head!r})",
                          hint="is this the trapper port (10051) of a Zabbix server or proxy?")
    flags = head[4]
    if not flags & FLAG_PROTOCOL or flags & ~(FLAG_PROTOCOL | FLAG_COMPRESSED | FLAG_LARGE):
        raise ActionError(f"{where}: the reply has unknown protocol flags 0x{flags:02x}")
    if flags & FLAG_LARGE:
        length, original = struct.unpack("<QQ", _recv_exactly(sock, 16, deadline, where))
    else:
        length, original = struct.unpack("<II", _recv_exactly(sock, 8, deadline, where))
    size = original if flags & FLAG_COMPRESSED else length
    if length > MAX_REPLY or size > MAX_REPLY:
        raise ActionError(f"{where}: the reply announces {max(length, size)} bytes, more than "
                          f"the {MAX_REPLY} a trapper sends; refusing to read it")
    body = _recv_exactly(sock, length, deadline, where)
    if flags & FLAG_COMPRESSED:
        try:
            d = zlib.decompressobj()
            body = d.decompress(body, MAX_REPLY + 1)
        except zlib.error as e:
            raise ActionError(f"{where}: the compressed reply is corrupt: {e}") from None
        if len(body) > MAX_REPLY:
            raise ActionError(f"{where}: the reply is larger than {MAX_REPLY} bytes")
    return body


def _decode(raw: bytes, where: str) -> dict[str, Any]:
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ActionError(f"{where}: the reply is not JSON: {_short(raw)}") from None
    if not isinstance(reply, dict):
        raise ActionError(f"{where}: the reply is not a JSON object: {_short(raw)}")
    return reply


def _check(reply: dict[str, Any], sent: int, where: str, items: Sequence[Item]) -> Reply:
    response = reply.get("response")
    info = reply.get("info", "")
    info = info if isinstance(info, str) else json.dumps(info)
    if response != "success":
        why = info or str(reply.get("error", "")) or "no reason given"
        raise ActionError(f"{where} refused the data ({response or 'no response'}): {why}")
    m = _INFO.search(info)
    if m is None:
        raise ActionError(f"{where}: cannot read the reply's info {info!r}")
    processed, failed = int(m.group(1)), int(m.group(2))
    total = int(m.group(3)) if m.group(3) else processed + failed
    if failed or processed < sent:
        names = ", ".join(f"{i.host}:{i.key}" for i in items[:3])
        raise ActionError(
            f"{where} did not accept the value ({info}) for {names}",
            hint="check that the host exists with exactly this name, that it has a Zabbix "
                 "trapper item with this key, that the value fits the item's type, and that "
                 "this machine is in the item's 'Allowed hosts'")
    return Reply(info=info, processed=processed, failed=failed, total=total)


def _short(raw: bytes) -> str:
    text = raw[:80].decode("utf-8", errors="replace")
    return repr(text + ("…" if len(raw) > 80 else ""))
