"""`jaz agent`: the process. It listens on its port, closes at once every connection
from an address not in `servers` (before TLS, before a byte of request is read), runs
TLS on the rest, and answers framed requests that carry the right token (wire.py,
protocol.py). Jobs live in jobs.py; they do not depend on this process staying up.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jaz import __version__
from jaz.agent.config import AgentConfig, load_config
from jaz.agent.jobs import PURGE_EVERY, Jobs
from jaz.agent.protocol import FILE_OPS, BadRequest, check
from jaz.agent.store import AgentStore
from jaz.errors import NotFound, Refused, Unreachable
from jaz.hosts import files, wire

log = logging.getLogger("jaz.agent")
MAX_CONNECTIONS = 256
HANDSHAKE_SECONDS = 10.0
IDLE_SECONDS = 300.0
FILE_CHUNK = 2**20    # the most file bytes one `fread` answers with


def refuse_root(config: AgentConfig) -> None:
    """An agent as root runs whatever its server sends as root: only when asked to."""
    if os.geteuid() == 0 and not config.allow_root:
        raise Refused("jaz agent refuses to run as root",
                      hint="run it as an unprivileged user, or set allow_root = true in its "
                           "config (needed for jobs with `user = ...`)")


def setup_logging(verbose: bool, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("jaz")
    root.handlers[:] = [handler]
    root.setLevel("DEBUG" if verbose else level.upper())


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.store = AgentStore(config.database)
        self.jobs = Jobs(config, store=self.store)
        self._tls: ssl.SSLContext | None = None
        if not config.insecure:
            if not config.cert.exists() or not config.key.exists():
                raise NotFound(f"no certificate at {config.cert} (or no key at {config.key})",
                               hint="`jaz agent init` makes them")
            self._tls = wire.server_context(str(config.cert), str(config.key))
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.closing = threading.Event()
        self.sock: socket.socket | None = None
        self.started = time.time()   # with the boot id: a reboot's `wait` sees it change

    def bind(self) -> socket.socket:
        host, port = self.config.listen_host, self.config.listen_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise Unreachable(f"cannot listen on {host}:{port}: {e.strerror}",
                              hint="another agent may be running; change `listen`") from None
        sock.listen(128)
        self.sock = sock
        return sock

    def serve(self) -> None:
        """Accept until `closing` is set."""
        assert self.sock is not None
        self.sock.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        try:
            while not self.closing.is_set():
                if not sel.select(0.5):
                    continue
                try:
                    conn, peer = self.sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:   # out of descriptors: wait, do not spin
                    log.warning("accept failed: %s", e)
                    time.sleep(0.1)
                    continue
                if not self.config.allowed(peer[0]):
                    # closed before TLS and before any byte is read (Zabbix's Server=)
                    log.warning("connection from %s refused: not in `servers`", peer[0])
                    _abort(conn)
                    continue
                if not self._connections.acquire(blocking=False):
                    log.warning("connection from %s refused: %s connections open already",
                                peer[0], MAX_CONNECTIONS)
                    _abort(conn)
                    continue
                threading.Thread(target=self._connection, args=(conn, peer[0]),
                                 daemon=True, name=f"conn-{peer[0]}").start()
        finally:
            sel.close()
            self.sock.close()

    def _connection(self, conn: socket.socket, peer: str) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(HANDSHAKE_SECONDS)
            sock: socket.socket | ssl.SSLSocket = conn
            if self._tls is not None:
                try:
                    sock = self._tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    # a connection closed before TLS is a port probe: not worth a warning
                    quiet = isinstance(e, ssl.SSLEOFError | ConnectionResetError)
                    log.log(logging.DEBUG if quiet else logging.WARNING,
                            "TLS with %s failed: %s", peer, e)
                    return
            sock.settimeout(IDLE_SECONDS)
            self._requests(sock, peer)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            self._connections.release()

    def _requests(self, sock: socket.socket | ssl.SSLSocket, peer: str) -> None:
        while not self.closing.is_set():
            try:
                message = wire.receive(sock)
            except wire.ProtocolError as e:
                log.warning("bad frame from %s: %s", peer, e)
                _answer(sock, {"ok": False, "code": "bad_frame", "error": str(e)})
                return
            except (OSError, ssl.SSLError):
                return
            if message is None:
                return
            if not wire.token_matches(message.get("token"), self.config.token_sha256):
                log.warning("request from %s refused: %s token", peer,
                            "no" if "token" not in message else "a wrong")
                _answer(sock, {"ok": False, "code": "refused",
                               "error": "refused: no valid token for this agent"})
                return
            try:
                answer = self.handle(check(message))
            except (BadRequest, files.FileError) as e:
                answer = {"ok": False, "code": "bad_request", "error": str(e)}
            except KeyError as e:
                answer = {"ok": False, "code": "not_found", "error": f"no job {e.args[0]}"}
            except Exception as e:   # a bug: said, logged, and the agent stays up
                log.exception("request %r failed", message.get("op"))
                answer = {"ok": False, "code": "internal", "error": repr(e)}
            if not _answer(sock, answer):
                return

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op, owner = req["op"], req["owner"]
        jobs = self.jobs
        if op == "hello":
            return {"ok": True, "version": __version__, "protocol": wire.VERSION,
                    "hostname": socket.gethostname(), "running": jobs.running(),
                    "pid": os.getpid(), "started": self.started, "boot_id": _boot_id()}
        if op == "submit":
            row, new = jobs.submit(owner, req["id"], req["spec"])
            if row.owner != owner:
                raise BadRequest(f"job id {req['id']} is taken by another server")
            return {"ok": True, "accepted": True, "new": new, "job": row.view()}
        if op == "submit_many":
            views: list[dict[str, Any]] = []
            for row, new in jobs.submit_many(owner, req["jobs"]):
                if row.owner != owner:
                    views.append({"id": row.id, "error": "the id is taken by another server"})
                else:
                    views.append({"id": row.id, "job": row.view(), "new": new})
            return {"ok": True, "jobs": views}
        if op in FILE_OPS:
            return {"ok": True, **self._file_op(req)}
        if op == "list":
            return {"ok": True, "jobs": [r.view() for r in self.store.held(owner)]}
        if op == "wait":
            rows = jobs.wait(owner, req["timeout"], req["ids"])
            views = []
            for r in rows:
                view = r.view()
                view["sizes"] = jobs.log_sizes(r.id)
                views.append(view)
            return {"ok": True, "jobs": views, "sizes": jobs.sizes(owner)}
        if op == "ack":
            return {"ok": True, "acked": self.store.ack(owner, req["ids"])}
        found = self.store.get(req["id"])
        if found is None or found.owner != owner:
            raise KeyError(req["id"])
        row = found
        if op == "get":
            return {"ok": True, "job": row.view()}
        if op == "stop":
            stopped = jobs.stop(row.id)
            return {"ok": True, "job": stopped.view() if stopped else row.view()}
        assert op == "read"
        return {"ok": True, **jobs.read(row.id, req["stream"], req["offset"],
                                        min(req["limit"], wire.CHUNK))}

    def _file_op(self, req: dict[str, Any]) -> dict[str, Any]:
        work, op = self.config.work_dir, req["op"]
        if op == "files":
            return files.listing(work, req["path"], req["recursive"])
        if op == "fmkdir":
            return files.make_dirs(work, req["path"])
        if op == "frename":
            return files.rename(work, req["path"], req["to"])
        if op == "fdiscard":
            return files.discard(work, req["path"])
        if op == "fstat":
            return files.stat(work, req["path"])
        if op == "fread":
            return files.read(work, req["path"], req["offset"], min(req["limit"], FILE_CHUNK))
        if op == "fwrite":
            return files.write(work, req["path"], req["part"], req["offset"], req["data"])
        if op == "fcommit":
            return files.commit(work, req["path"], req["part"], req["size"], req["sha256"],
                                req["overwrite"])
        return files.checksum(work, req["path"])

    def purge_loop(self) -> None:
        # every 10 minutes, or every quarter of keep_days when that is shorter (a
        # keep_days of minutes, for tests and soaks, is kept to within a quarter)
        every = max(1.0, min(PURGE_EVERY, self.config.keep_days * 86400 / 4))
        while not self.closing.wait(every):
            try:
                n = self.jobs.purge(time.time())
                if n:
                    log.info("purged %s finished jobs older than %s days", n,
                             self.config.keep_days)
            except Exception:
                log.exception("purge failed")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _answer(sock: socket.socket | ssl.SSLSocket, message: dict[str, Any]) -> bool:
    try:
        wire.send(sock, message)
        return True
    except (OSError, ssl.SSLError, wire.ProtocolError):
        return False


def _abort(conn: socket.socket) -> None:
    """Close with a reset, reading nothing."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


def main(config_path: Path | None, *, verbose: bool = False) -> int:
    config = load_config(config_path)
    refuse_root(config)
    setup_logging(verbose, config.log_level)
    agent = Agent(config)
    sock = agent.bind()
    where = sock.getsockname()
    agent.jobs.purge(time.time())
    threading.Thread(target=agent.jobs.run_starter, args=(agent.closing,), daemon=True,
                     name="starter").start()
    agent.jobs.recover()

    def stop(signum: int, frame: Any) -> None:
        agent.closing.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=agent.purge_loop, daemon=True, name="purge").start()
    log.info("jaz agent %s listening on %s:%s (%s), servers: %s", __version__, where[0],
             where[1], "plaintext" if config.insecure else "TLS",
             ", ".join(str(n) for n in config.servers))
    print(f"jaz agent listening on {where[0]}:{where[1]}", file=sys.stderr, flush=True)
    agent.serve()
    log.info("jaz agent stopped; its jobs keep running and are found again at the next "
             "start")
    return 0
