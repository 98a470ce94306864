"""How an `http` job runs: one request through http.client, on a thread of its own.

`wait` (which jaz calls on a worker thread) waits for that thread, for `stop`, or for
the request's timeout, whichever comes first. A stop or timeout closes the connection
and `wait` returns at once: a request stuck in connect or in a slow read never holds
the job. The thread writes nothing once `wait` has returned; the logs are written by
`wait` alone.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from typing import Any
from urllib.parse import quote, urlsplit

from jaz.kinds import ActionError, Attempt, Execution, Executor, Outcome, options, redact
from jaz_http import __version__, check_url

LOG_LIMIT = 1 << 20        # bytes of the body kept in the stdout log
CHUNK = 64 * 1024


class _Response:
    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.more = 0          # bytes of the body read past LOG_LIMIT, not kept
        self.error = ""


class HttpExecution(Execution):
    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.opts = options(attempt)      # ${...} filled in; ActionError fails the job
        self.url = check_url_now(self.opts["url"])
        self.method: str = self.opts["method"]
        self._wake = threading.Event()    # the request ended, or stop was asked
        self._finished = threading.Event()  # the request ended
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._over = False                # wait has returned: the thread keeps quiet

    # -- the engine's side

    def wait(self) -> Outcome:
        a = self.attempt
        a.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        response = _Response()
        worker = threading.Thread(target=self._fetch, args=(response,), daemon=True,
                                  name=f"jaz-http-{a.job.name}")
        worker.start()
        self._wake.wait(self.opts["timeout"] or None)
        with self._lock:
            self._over = True
            done = self._finished.is_set()
            conn = self._conn
        if not done:
            _abort(conn)
            worker.join(0.5)
        return self._outcome(response, done)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        with self._lock:
            conn = self._conn
        _abort(conn)

    # -- the request's thread

    def _fetch(self, response: _Response) -> None:
        try:
            self._request(response)
        except (OSError, http.client.HTTPException, ValueError) as e:
            response.error = str(e) or type(e).__name__
        finally:
            self._finished.set()
            self._wake.set()

    def _request(self, response: _Response) -> None:
        parts = urlsplit(self.url)
        timeout = self.opts["timeout"] or None
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            if not self.opts["verify"]:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                               timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                              timeout=timeout)
        with self._lock:
            if self._over:
                return
            self._conn = conn
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path = quote(path, safe="!#$%&'()*+,/:;=?@[]~")   # a variable's spaces, non-ASCII
        body = self.opts["body"].encode() if self.opts["body"] is not None else None
        headers = {"User-Agent": f"jaz-http/{__version__}", **self.opts["headers"]}
        try:
            conn.connect()
            with self._lock:
                if self._over:   # stopped or timed out while connecting: send nothing
                    return
            conn.request(self.method, path, body=body, headers=headers)
            reply = conn.getresponse()
            response.status, response.reason = reply.status, reply.reason
            response.headers = list(reply.getheaders())
            kept: list[bytes] = []
            size = 0
            while chunk := reply.read(CHUNK):
                room = LOG_LIMIT - size
                kept.append(chunk[:room])
                size += min(len(chunk), max(room, 0))
                response.more += max(len(chunk) - max(room, 0), 0)
            response.body = b"".join(kept)
        finally:
            conn.close()

    # -- the result

    def _outcome(self, response: _Response, done: bool) -> Outcome:
        a = self.attempt
        secrets = a.redact
        shown_url = redact(self.url, secrets)
        request = f"{self.method} {shown_url}"
        lines = [f"> {request}"]
        lines += [f"> {k}: {redact(v, secrets)}"
                  for k, v in {"User-Agent": f"jaz-http/{__version__}",
                               **self.opts["headers"]}.items()]
        if response.status:
            lines.append(f"< {response.status} {response.reason}")
            lines += [f"< {k}: {redact(v, secrets)}" for k, v in response.headers]
        text = response.body.decode("utf-8", errors="replace")
        if secrets:
            text = redact(text, secrets)
        error = ""
        if not done:
            error = (f"stopped during {request}" if self._stopped.is_set()
                     else f"no response to {request} within {self.opts['timeout']:g}s")
        elif response.error:
            error = f"{request}: {redact(response.error, secrets)}"
        elif not any(lo <= response.status <= hi for lo, hi in self.opts["status"]):
            error = (f"expected status {_expected(self.opts['status'])}, got "
                     f"{response.status} {response.reason} from {request}")
        if response.more:
            lines.append(f"(the body's last {response.more} bytes are not in the log)")
        if error:
            lines.append(error)
        log = "\n".join(lines) + "\n"
        a.stdout_path.write_text(text, encoding="utf-8")
        a.stderr_path.write_text(log, encoding="utf-8")
        outputs: dict[str, str] = {}
        if response.status:
            outputs["HTTP_STATUS"] = str(response.status)
            outputs["HTTP_BODY"] = _cut(response.body, self.opts["max_output"], secrets)
            content_type = next((v for k, v in response.headers
                                 if k.lower() == "content-type"), None)
            if content_type is not None:
                outputs["HTTP_CONTENT_TYPE"] = content_type
        tail = text[-4096:]
        if error:
            return Outcome(exit_code=None if not response.status else 1, error=error,
                           outputs=outputs, stdout_tail=tail, stderr_tail=log[-4096:],
                           stopped=self._stopped.is_set())
        return Outcome(exit_code=0, outputs=outputs, stdout_tail=tail,
                       stderr_tail=log[-4096:])


def check_url_now(url: str) -> str:
    """The URL once its variables are in: checked again, as a job's error."""
    try:
        return check_url(url)
    except ValueError as e:
        raise ActionError(f"http.url: {e}") from None


def _abort(conn: http.client.HTTPConnection | None) -> None:
    """Close a connection from another thread: a blocked read returns at once."""
    sock: Any = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _cut(body: bytes, limit: int, secrets: Any) -> str:
    """The first `limit` bytes of the body as text, whole characters only, no NULs (an
    environment variable cannot hold them)."""
    text = body[:limit].decode("utf-8", errors="ignore").replace("\x00", "")
    return redact(text, secrets) if secrets else text


def _expected(ranges: list[list[int]]) -> str:
    words = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges]
    return words[0] if len(words) == 1 else "one of " + ", ".join(words)


class HttpExecutor(Executor):
    def start(self, attempt: Attempt) -> Execution:
        return HttpExecution(attempt)
