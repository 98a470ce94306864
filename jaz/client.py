"""The HTTP client of `jaz server`'s API (SPEC §3, §4), for the CLI (and later the TUI).

It finds the server as SPEC §3 says: `--server URL` / `$JAZ_SERVER` and `--token` /
`$JAZ_TOKEN`, else the local server's `$JAZ_HOME/server.url` and `admin.token`. The
local admin token is only ever sent to the local server's own address, never to a
server named on the command line, so a typo in `--server` cannot leak it.

Every answer that is not a 2xx becomes the `JazError` of the same meaning (the API
sends the message as `title` and the hint as `detail`), so the CLI prints one clear
line and exits with the code of SPEC §3. httpx is imported on first use: this module
is imported by commands whose `--help` must stay light.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jaz.errors import (
    JazError,
    JobnetInvalid,
    NotFound,
    Problem,
    Refused,
    StateError,
    Unreachable,
    UsageError,
)
from jaz.paths import ADMIN_TOKEN_FILE as TOKEN_FILE
from jaz.paths import SERVER_URL_FILE as URL_FILE
from jaz.paths import jaz_home

if TYPE_CHECKING:
    import httpx2 as httpx

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
START_HINT = "start it with `jaz server`, or name another with --server URL (or JAZ_SERVER)"


def server_configured(server: str | None) -> bool:
    """Whether a command should ask a server rather than read the embedded database:
    one was named, or the local one is running (its server.url exists)."""
    return bool(server or os.environ.get("JAZ_SERVER") or (jaz_home() / URL_FILE).exists())


def quoted(name: str) -> str:
    """A jobnet or job name as one path segment."""
    return quote(name, safe="")


def _normalise(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise Refused(f"cannot read {path}: {e.strerror}",
                      hint="it belongs to the user who runs `jaz server`") from None


class Client:
    """A connection to one server; use it as a context manager."""

    def __init__(self, url: str, token: str | None, *, local: bool = False,
                 admin_file: bool = False, timeout: float = READ_TIMEOUT) -> None:
        self.url = _normalise(url)
        self.token = token
        self.admin_file = admin_file    # the token is the local admin.token (for hints)
        self.local = local          # found through $JAZ_HOME/server.url
        self.timeout = timeout
        self._http: httpx.Client | None = None
        self._made = threading.Lock()   # the TUI's workers may make the first call at once

    @classmethod
    def find(cls, server: str | None = None, token: str | None = None) -> Client:
        """The server to talk to, from the options, the environment or $JAZ_HOME."""
        home = jaz_home()
        server = server or os.environ.get("JAZ_SERVER") or None
        token = token or os.environ.get("JAZ_TOKEN") or None
        local_url = _read(home / URL_FILE)
        if server is None:
            if local_url is None:
                raise Unreachable(
                    f"no jaz server is running here ({home / URL_FILE} does not exist)",
                    hint=START_HINT)
            server = local_url
        is_local = local_url is not None and _normalise(server) == _normalise(local_url)
        admin_file = token is None and is_local
        if admin_file:
            token = _read(home / TOKEN_FILE)
        return cls(server, token, local=is_local, admin_file=admin_file)

    # ------------------------------------------------------------ plumbing

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._made:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _client(self) -> httpx.Client:
        if self._http is not None:
            return self._http
        with self._made:
            if self._http is not None:
                return self._http
            import httpx2 as httpx  # httpx's maintained successor (what Starlette uses)

            headers = {"Accept": "application/json"}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            host = httpx.URL(self.url).host
            self._http = httpx.Client(
                base_url=self.url, headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=CONNECT_TIMEOUT),
                # a proxy from the environment must not swallow the loopback server
                trust_env=host not in ("127.0.0.1", "localhost", "::1"))
            return self._http

    def request(self, method: str, path: str, *, params: Any = None,
                body: Any = None) -> Any:
        """The decoded JSON of a 2xx answer to METHOD /api/v1/PATH; else a JazError."""
        import httpx2 as httpx

        try:
            response = self._client().request(method, "/api/v1" + path, params=params,
                                               json=body)
        except httpx.TimeoutException as e:
            what = "did not accept the connection" if isinstance(e, httpx.ConnectTimeout) \
                else f"did not answer within {self.timeout:g}s"
            raise Unreachable(f"the jaz server at {self.url} {what}",
                              hint=START_HINT if isinstance(e, httpx.ConnectTimeout)
                              else "it may be overloaded; try again") from None
        except httpx.TransportError as e:
            raise Unreachable(f"cannot reach the jaz server at {self.url}: {_reason(e)}",
                              hint=self._unreachable_hint()) from None
        if response.is_success:
            return response.json() if response.content else None
        raise self._error(response)

    def alive(self) -> bool:
        """Whether a jaz server answers at the URL (whatever it thinks of the token)."""
        try:
            self.runs(limit=1)
        except Unreachable:
            return False
        except JazError:
            return True
        return True

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def _unreachable_hint(self) -> str:
        if self.local:
            return (f"{jaz_home() / URL_FILE} names it, but nothing answers there: the server "
                    f"may have been killed; {START_HINT}")
        return START_HINT

    def _error(self, response: httpx.Response) -> JazError:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            problem = {}
        code = response.status_code
        title = str(problem.get("title") or response.reason_phrase or "error")
        detail = problem.get("detail")
        hint = str(detail) if detail else None
        if code in (401, 403):
            if code == 401 and not hint:
                if not self.token:
                    hint = ("pass a token with --token or JAZ_TOKEN (the local server's admin "
                            "token is in $JAZ_HOME/admin.token)")
                elif self.admin_file:
                    hint = (f"{jaz_home() / TOKEN_FILE} is not the token of the server at "
                            f"{self.url}: was it started with another JAZ_HOME?")
                else:
                    hint = "the token given with --token or JAZ_TOKEN is not one it knows"
            return Refused(f"the server refused: {title}", hint=hint)
        if code == 404:
            return NotFound(title, hint=hint)
        if code == 409:
            return StateError(title, hint=hint)
        if code in (400, 422):
            problems = problem.get("problems")
            if isinstance(problems, list) and problems:
                return JobnetInvalid([_problem(p) for p in problems if isinstance(p, dict)])
            return UsageError(title, hint=hint)
        return JazError(f"the jaz server at {self.url} answered {code}: {title}", hint=hint)

    # ------------------------------------------------------------ the API

    def whoami(self) -> dict[str, str]:
        """{"user", "role"} of this client's token."""
        result: dict[str, str] = self.get("/whoami")
        return result

    def run(self, run_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/runs/{run_id}")
        return result

    def runs(self, **filters: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/runs", **filters)
        return result

    def start(self, jobnet: str, *, params: dict[str, str], at: str | None = None,
              hold: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"jobnet": jobnet, "params": params, "hold": hold}
        if at is not None:
            body["at"] = at
        result: dict[str, Any] = self.post("/runs", body)
        return result

    def act(self, action: str, run_id: int, job: str | None = None, *,
            downstream: bool = False) -> dict[str, Any]:
        if job is None:
            result: dict[str, Any] = self.post(f"/runs/{run_id}/{action}")
        else:
            result = self.post(f"/runs/{run_id}/jobs/{quoted(job)}/{action}",
                               {"downstream": downstream} if downstream else None)
        return result

    def retime(self, run_id: int, at: str) -> dict[str, Any]:
        result: dict[str, Any] = self.post(f"/runs/{run_id}/retime", {"at": at})
        return result

    def logs(self, run_id: int, job: str | None = None, *, stream: str | None = None,
             offset: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(f"/runs/{run_id}/logs", job=job,
                                                stream=stream, offset=offset or None)
        return result

    def jobnets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/jobnets")
        return result

    def jobnet(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/jobnets/{quoted(name)}")
        return result

    def next_fires(self, name: str, n: int = 10, after: str | None = None) -> list[str]:
        result: list[str] = self.get(f"/jobnets/{quoted(name)}/next", n=n, after=after)
        return result

    def run_jobnet(self, run_id: int) -> dict[str, Any]:
        """The jobnet version a run started with: text, params and jobs (kind, needs...)."""
        result: dict[str, Any] = self.get(f"/runs/{run_id}/jobnet")
        return result

    def job_history(self, jobnet: str, job: str, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(
            f"/jobnets/{quoted(jobnet)}/jobs/{quoted(job)}/history", limit=limit)
        return result

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/events", **filters)
        return result

    def hosts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/hosts")
        return result

    def calendars(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/calendars")
        return result

    def calendar(self, name: str, year: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/calendars/{quoted(name)}", year=year)
        return result


def _problem(p: dict[str, Any]) -> Problem:
    return Problem(file=str(p.get("file") or "?"), message=str(p.get("message") or ""),
                   job=p.get("job"), field=p.get("field"), line=p.get("line"),
                   column=p.get("column"))


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    # "[Errno 111] Connection refused" -> "connection refused"
    if "] " in text:
        text = text.split("] ", 1)[1]
    return text[:1].lower() + text[1:]
