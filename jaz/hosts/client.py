"""One connection to one agent: TLS with its pinned certificate fingerprint checked
before a byte is sent, then requests carrying the host's token (wire.py)."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

from jaz.errors import JazError, Refused, Unreachable
from jaz.hosts import wire
from jaz.hosts.config import Host

CONNECT_SECONDS = 5.0


class AgentError(JazError):
    """The agent answered, with an error (a bad request, an unknown job)."""

    exit_code = 1

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class FingerprintChanged(Refused):
    """The agent's certificate is not the one pinned: nothing was sent."""


class NotTrusted(Refused):
    """No fingerprint is pinned for the host yet: nothing was even tried."""


def probe(address: str, *, insecure: bool = False, timeout: float = CONNECT_SECONDS) -> str:
    """The fingerprint of the agent at `address`, sending nothing (`jaz hosts trust`)."""
    parsed = wire.split_address(address)
    if parsed is None:
        raise Unreachable(f"bad agent address {address!r}")
    try:
        raw = socket.create_connection(parsed, timeout=timeout)
    except OSError as e:
        raise Unreachable(f"cannot reach the agent at {address}: {e.strerror or e}",
                          hint="is `jaz agent` running there, and is this machine in its "
                               "`servers`?") from None
    sock = _wrap(raw, None)
    try:
        sock.do_handshake()
        return wire.peer_fingerprint(sock)
    except (ssl.SSLError, OSError, wire.ProtocolError) as e:
        raise Unreachable(f"no TLS from the agent at {address}: {e}",
                          hint="is this machine in the agent's `servers`?") from None
    finally:
        sock.close()


def _wrap(raw: socket.socket, host: Host | None) -> ssl.SSLSocket:
    """TLS on a connected socket. A reset that comes in while `wrap_socket` looks at the
    peer makes it raise with its half-made SSLSocket still open (CPython's ssl): that one
    is found in the traceback and closed, so nothing leaks."""
    try:
        return wire.client_context().wrap_socket(raw, do_handshake_on_connect=False)
    except OSError as e:
        tb = e.__traceback__
        while tb is not None:
            made = tb.tb_frame.f_locals.get("self")
            if isinstance(made, ssl.SSLSocket):
                made.close()
            tb = tb.tb_next
        raw.close()
        who = f"host {host.name!r}: the agent at {host.agent}" if host else "the agent"
        raise Unreachable(f"{who} closed the connection at once ({e.strerror or e})",
                          hint="is this machine in the agent's `servers`?") from None


class AgentClient:
    """Requests to one agent on one connection, made again when it breaks (every call
    is safe to repeat: submit is idempotent by job id). Thread-safe: one at a time."""

    def __init__(self, host: Host, owner: str, *, timeout: float = 40.0) -> None:
        self.host = host
        self.owner = owner
        self.timeout = timeout
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def abort(self) -> None:
        """Break the connection from another thread (a call blocked on it fails now)."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _connect(self) -> socket.socket | ssl.SSLSocket:
        host = self.host
        if not host.insecure and host.fingerprint is None:
            raise NotTrusted(f"host {host.name!r} is not trusted yet: no fingerprint pinned",
                          hint=f"check the agent's fingerprint and run `jaz hosts trust "
                               f"{host.name}`")
        try:
            raw = socket.create_connection(host.address, timeout=CONNECT_SECONDS)
        except OSError as e:
            raise Unreachable(f"host {host.name!r}: cannot reach the agent at {host.agent}: "
                              f"{e.strerror or e}") from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.getpeername()   # reset already (not in the agent's `servers`)?
        except OSError as e:
            raw.close()
            raise Unreachable(f"host {host.name!r}: the agent at {host.agent} closed the "
                              f"connection at once ({e.strerror or e})",
                              hint="is this machine in the agent's `servers`?") from None
        if host.insecure:
            raw.settimeout(self.timeout)
            return raw
        sock = _wrap(raw, host)
        try:
            sock.do_handshake()
            seen = wire.peer_fingerprint(sock)
        except (ssl.SSLError, OSError, wire.ProtocolError) as e:
            sock.close()
            raise Unreachable(f"host {host.name!r}: no TLS from the agent at {host.agent}: "
                              f"{e}") from None
        if seen != host.fingerprint:
            sock.close()
            raise FingerprintChanged(
                f"host {host.name!r}: the agent's certificate CHANGED (pinned "
                f"{host.fingerprint}, the agent at {host.agent} shows {seen}); nothing was "
                "sent", hint="if the agent was re-initialised on purpose, check the new "
                             f"fingerprint there (`jaz agent fingerprint`) and run `jaz hosts "
                             f"trust {host.name}` again; otherwise someone may be in between")
        sock.settimeout(self.timeout)
        return sock

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request and its answer; Unreachable when the connection fails (closed, to
        be made again by the next call), Refused or AgentError on the agent's no."""
        if not self.host.insecure and self.host.fingerprint is None:
            self._connect()   # NotTrusted, before the token is even read
        message = {"op": op, "token": self.host.token(), "owner": self.owner, **fields}
        with self._lock:
            # A kept connection may have died meanwhile (the agent restarted): then the
            # request goes once more on a new one (every request is safe to repeat).
            for reused in ((True, False) if self._sock is not None else (False,)):
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    wire.send(self._sock, message)
                    answer = wire.receive(self._sock)
                except (OSError, ssl.SSLError, wire.ProtocolError) as e:
                    self._drop()
                    if reused:
                        continue
                    raise Unreachable(f"host {self.host.name!r}: the connection to the agent "
                                      f"failed: {e}") from None
                if answer is not None:
                    break
                self._drop()
                if not reused:
                    raise Unreachable(f"host {self.host.name!r}: the agent closed the "
                                      "connection")
            assert answer is not None
        if answer.get("ok") is True:
            return answer
        code, error = str(answer.get("code", "")), str(answer.get("error", "no reason"))
        if code in ("refused", "bad_frame"):
            with self._lock:
                self._drop()
        if code == "refused":
            raise Refused(f"host {self.host.name!r}: the agent refused: {error}",
                          hint="check token_file against the token `jaz agent init` printed")
        raise AgentError(f"host {self.host.name!r}: {error}", code=code)
