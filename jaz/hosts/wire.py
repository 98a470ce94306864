"""The agent's wire protocol, shared by the agent (`jaz/agent/`) and the server side
(`jaz/hosts/`): TLS, and on it frames of one JSON object each, a 4-byte big-endian
length first. Every request names its operation (`op`) and carries the host's token;
every answer is `{"ok": true, ...}` or `{"ok": false, "error": "...", "code": "..."}`.

It lives here, below both, because the server side may not import the agent (a face).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import ssl
import struct
from typing import Any

VERSION = 1
MAX_FRAME = 4 * 2**20        # a request or answer; log chunks are read in smaller pieces
CHUNK = 256 * 2**10          # the most log bytes one `read` answers with
_HEADER = struct.Struct(">I")
_FINGERPRINT = re.compile(r"(?i)(?:sha256:)?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})")


class ProtocolError(Exception):
    """A frame that is not what the protocol says (too big, cut short, not JSON, not an
    object). The connection is closed after it is answered."""


def send(sock: socket.socket | ssl.SSLSocket, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(data)} bytes is over the limit of {MAX_FRAME}")
    sock.sendall(_HEADER.pack(len(data)) + data)


def receive(sock: socket.socket | ssl.SSLSocket) -> dict[str, Any] | None:
    """The next message, or None when the peer closed the connection between frames."""
    head = _exactly(sock, _HEADER.size, first=True)
    if head is None:
        return None
    (size,) = _HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is over the limit of {MAX_FRAME}")
    body = _exactly(sock, size, first=False)
    assert body is not None
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("the frame is not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("the frame is not a JSON object")
    return message


def _exactly(sock: socket.socket | ssl.SSLSocket, size: int, *, first: bool) -> bytes | None:
    parts: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            if first and left == size:
                return None
            raise ProtocolError(f"the connection closed in the middle of a frame "
                                f"({size - left} of {size} bytes)")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def fingerprint(der: bytes) -> str:
    """The fingerprint operators compare: SHA256 of the DER certificate, as hex."""
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def normal_fingerprint(text: str) -> str | None:
    """`SHA256:ab12...`, `AB:12:...` (openssl's way) or bare hex, as `fingerprint` writes
    it; None when it is none of these."""
    m = _FINGERPRINT.fullmatch(text.strip())
    return None if m is None else "SHA256:" + m.group(1).replace(":", "").lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: Any, stored_hash: str) -> bool:
    return isinstance(token, str) and bool(stored_hash) and \
        hmac.compare_digest(token_hash(token), stored_hash)


def client_context() -> ssl.SSLContext:
    """TLS to an agent: its self-signed certificate is checked by its pinned fingerprint
    (`peer_fingerprint`), not by a CA, so the usual verification is off on purpose."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # the fingerprint is pinned instead  # noqa: S503
    return ctx


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def peer_fingerprint(sock: ssl.SSLSocket) -> str:
    der = sock.getpeercert(binary_form=True)
    if not der:
        raise ProtocolError("the agent sent no certificate")
    return fingerprint(der)


def split_address(text: str) -> tuple[str, int] | None:
    """"host:port" or "[v6]:port" -> (host, port); None when it is neither."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text.strip())
    if m is None:
        return None
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return (host, int(port)) if int(port) <= 65535 else None


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
