"""The HTTP JSON API under /api/v1 (SPEC §4), on FastAPI. Every route goes through
`Core` and the engine's service layer; errors become problem objects with a 4xx
status, never a 500 for bad input.

Imported only by `jaz server` (and tests): FastAPI is not loaded for other commands.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from jaz import __version__
from jaz.engine.model import Job, Jobnet, JobState, RunState
from jaz.engine.planner import LATE_MARK
from jaz.engine.records import JobRecord, RunRecord
from jaz.engine.service import job_view, run_view
from jaz.errors import (
    JazError,
    JobnetInvalid,
    NotFound,
    Refused,
    StateError,
    UsageError,
)
from jaz.server.auth import Principal, Tokens
from jaz.server.core import Change, Core

MAX_BODY = 1 << 20
T = TypeVar("T")
RunId = Annotated[int, PathParam(ge=1, le=2**62, description="a run id")]
STATUS = {UsageError: 400, JobnetInvalid: 422, StateError: 409, NotFound: 404, Refused: 403}


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jobnet: str = Field(min_length=1, max_length=200)
    params: dict[str, str] = Field(default_factory=dict, max_length=500)
    at: datetime | None = None
    hold: bool = False


class RetimeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: datetime


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_days: int = Field(ge=0, le=100_000)


class JobActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    downstream: bool = False


def create_app(core: Core, tokens: Tokens) -> FastAPI:
    app = FastAPI(title="jaz", version=__version__, openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None)

    # ------------------------------------------------------------ plumbing

    app.add_middleware(BodyLimit, limit=MAX_BODY)

    @app.exception_handler(JazError)
    async def jaz_error(request: Request, exc: JazError) -> JSONResponse:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        extra: dict[str, Any] = {}
        if isinstance(exc, JobnetInvalid):
            extra["problems"] = [_problem_view(p) for p in exc.problems]
        return _problem(status, exc.message, exc.hint, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _problem(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(str(x) for x in e.get("loc", ())), "message": e.get("msg")}
                  for e in exc.errors()]
        return _problem(422, "invalid request", "; ".join(
            f"{e['where']}: {e['message']}" for e in errors), errors=errors)

    # the checks are `async`: they do no I/O, and FastAPI runs a plain `def` dependency
    # in its thread pool, a hop there and back for each of them on every request
    async def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        who = tokens.who(token.strip()) if scheme.lower() == "bearer" and token else None
        if who is None:
            raise HTTPException(401, "a valid bearer token is needed",
                                headers={"WWW-Authenticate": "Bearer"})
        return who

    def role(needed: str) -> Any:
        async def check(who: Principal = Depends(principal)) -> Principal:  # noqa: B008
            if not who.may(needed):
                raise HTTPException(403, f"user {who.user!r} ({who.role}) may not do this; "
                                         f"it needs the {needed} role")
            return who
        return Depends(check)

    viewer, operator, admin = role("viewer"), role("operator"), role("admin")

    async def offload(work: Callable[[], T]) -> T:
        """`work()` for a busy route: inline on the event loop when the store is local
        (SQLite: short calls under the GIL either way, where a hop to the thread pool
        and back cost ~1 ms of CPU, more than creating a run), in the thread pool when
        its calls wait on a database server."""
        if not core.store.remote:
            return work()
        return await run_in_threadpool(work)

    def run_out(run_id: int, status: int = 200) -> JSONResponse:
        """A run with its jobs, as the routes that show or change one answer."""
        return _out(_run_view(core.service.run(run_id), core.service.jobs(run_id)), status)

    # ------------------------------------------------------------ health and metrics

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "draining" if core.draining else "ok", "version": __version__}

    @app.get("/metrics", include_in_schema=False, response_class=PlainTextResponse)
    def metrics() -> str:
        return _metrics(core)

    @app.get("/api/v1/whoami")
    async def whoami(who: Principal = viewer) -> dict[str, str]:
        """The user and role the token belongs to (jobarg_* check `-U` against it)."""
        return {"user": who.user, "role": who.role}

    # ------------------------------------------------------------ jobnets

    @app.get("/api/v1/jobnets")
    def jobnets(who: Principal = viewer) -> list[dict[str, Any]]:
        return [_jobnet_view(core, name=loaded.name, detail=False)
                for loaded in core.registry.all()]

    @app.get("/api/v1/jobnets/{name}")
    def jobnet(name: str, who: Principal = viewer) -> dict[str, Any]:
        return _jobnet_view(core, name=name, detail=True)

    @app.get("/api/v1/jobnets/{name}/next")
    def next_fires(name: str, n: Annotated[int, Query(ge=1, le=1000)] = 10,
                   after: datetime | None = None, who: Principal = viewer) -> list[str]:
        from jaz.engine.schedules import next_fires as fires

        loaded = core.registry.get(name)
        start = _aware(after, core) if after else core.clock.now()
        return [f.at.isoformat() for f in fires(loaded.schedules, start, n)]

    @app.get("/api/v1/jobnets/{name}/jobs/{job}/history")
    def job_history(name: str, job: str, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                    who: Principal = viewer) -> list[dict[str, Any]]:
        """One job definition's executions across runs, newest first."""
        core.registry.get(name)   # 404 for an unknown jobnet
        return [_job_view(j) for j in core.store.job_history(name, job, limit=limit)]

    # ------------------------------------------------------------ hosts

    @app.get("/api/v1/hosts")
    def hosts(who: Principal = viewer) -> list[dict[str, Any]]:
        """The local host and the configured agent and SSH hosts, with their running jobs."""
        running: dict[str, list[dict[str, Any]]] = {}
        for r in core.service.runs(status=[RunState.RUNNING]):
            for j in core.service.jobs(r.id):
                if j.status == JobState.RUNNING:
                    running.setdefault(j.host, []).append(
                        {"run_id": r.id, "jobnet": r.jobnet, "job": j.name,
                         "started_at": j.started_at.isoformat() if j.started_at else None})
        out = [{"name": "local", "kind": "local", "address": None, "description": "",
                "online": True, "last_seen": core.clock.now().isoformat(),
                "running": running.pop("local", [])}]
        links = core.remote.status() if core.remote is not None else {}
        for name, host in sorted(core.hosts.items()):
            link = links.get(name, {})
            entry: dict[str, Any] = {
                "name": name,
                "kind": "agent" if host.agent else "jaz-agent" if host.jaz_agent else "ssh",
                "address": host.agent or host.jaz_agent or host.ssh,
                "description": host.description,
                "labels": list(host.labels), "fingerprint": host.fingerprint,
                # None: not probed (SSH hosts; an agent not said hello to yet)
                "online": link.get("online"), "last_seen": link.get("last_seen"),
                "version": link.get("version"), "error": link.get("error", ""),
                "agent_running": link.get("agent_running"),
                "running": running.pop(name, [])}
            out.append(entry)
        return out

    # ------------------------------------------------------------ runs

    @app.get("/api/v1/runs", response_model=list[dict[str, Any]])
    def runs(jobnet: str | None = None,
             status: Annotated[list[RunState] | None, Query()] = None,
             since: datetime | None = None,
             sort: Annotated[str, Query(
                 pattern=r"^-?(id|jobnet|status|scheduled|started|ended|duration)$")]
             = "-id",
             limit: Annotated[int, Query(ge=1, le=1000)] = 50,
             offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
             who: Principal = viewer) -> JSONResponse:
        when = _aware(since, core) if since else None
        if sort == "-id":   # the store's own order: a page costs what the page holds
            page = core.service.runs(jobnet=jobnet, status=status or (), since=when,
                                     limit=limit, offset=offset)
        else:
            page = core.service.runs(jobnet=jobnet, status=status or (), since=when)
            key = sort.lstrip("-")
            page.sort(key=lambda r: _sort_key(r, key), reverse=sort.startswith("-"))
            page = page[offset:offset + limit]
        progress = core.store.progress([r.id for r in page])
        return _out([_run_view(r, None, progress.get(r.id)) for r in page])

    @app.post("/api/v1/runs", status_code=201, response_model=dict[str, Any])
    async def start(body: StartBody, who: Principal = operator) -> JSONResponse:
        def work() -> JSONResponse:
            at = _aware(body.at, core) if body.at else None
            run_id = core.start(body.jobnet, params=body.params, at=at, hold=body.hold,
                                user=who.user)
            return run_out(run_id, 201)
        return await offload(work)

    @app.get("/api/v1/runs/{run_id}", response_model=dict[str, Any])
    def run(run_id: RunId, who: Principal = viewer) -> JSONResponse:
        return run_out(run_id)

    @app.post("/api/v1/runs/{run_id}/rerun", status_code=201, response_model=dict[str, Any])
    def rerun_run(run_id: RunId, who: Principal = operator) -> JSONResponse:
        """A new run of the run's jobnet with the same params (the new run is answered)."""
        return run_out(core.rerun_run(run_id, user=who.user), 201)

    @app.post("/api/v1/runs/{run_id}/retime", response_model=dict[str, Any])
    def retime_run(run_id: RunId, body: RetimeBody,
                   who: Principal = operator) -> JSONResponse:
        """Another start time for a scheduled or held run."""
        core.retime(run_id, _aware(body.at, core), user=who.user)
        return run_out(run_id)

    @app.post("/api/v1/runs/{run_id}/{action}", response_model=dict[str, Any])
    def run_action(run_id: RunId, action: Literal["stop", "hold", "release", "skip", "resume"],
                   who: Principal = operator) -> JSONResponse:
        core.act(action, run_id, None, user=who.user)
        return run_out(run_id)

    @app.post("/api/v1/runs/{run_id}/jobs/{job}/{action}", response_model=dict[str, Any])
    def job_action(run_id: RunId, job: str,
                   action: Literal["hold", "release", "skip", "unskip", "stop", "rerun"],
                   body: JobActionBody | None = None,
                   who: Principal = operator) -> JSONResponse:
        core.service.jobs(run_id)  # 404 for an unknown run first
        core.act(action, run_id, job, user=who.user,
                 downstream=bool(body and body.downstream))
        return run_out(run_id)

    @app.get("/api/v1/runs/{run_id}/jobnet")
    def run_jobnet(run_id: RunId, who: Principal = viewer) -> dict[str, Any]:
        """The exact jobnet version the run started with: its text and its jobs."""
        net = core.service.jobnet_of(run_id)
        return {"name": net.name, "version": net.hash, "description": net.description,
                "params": dict(net.params), "text": net.text, "jobs": _jobs_view(net)}

    @app.get("/api/v1/runs/{run_id}/logs", response_model=list[dict[str, Any]])
    def logs(request: Request, run_id: RunId, job: str | None = None,
             stream: Literal["stdout", "stderr"] | None = None,
             offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
             who: Principal = viewer,
             authorization: Annotated[str | None, Header()] = None,
             forwarded: Annotated[str | None, Header(alias=FORWARDED)] = None
             ) -> JSONResponse:
        elsewhere = core.logs_elsewhere(run_id)
        if elsewhere:   # driven by another server (PostgreSQL): its logs are there
            core.service.logs(run_id, job)   # 404 for a job the run does not have
            if not forwarded:
                for server in elsewhere:
                    got = _fetch_logs(f"{server['url']}/api/v1/runs/{run_id}/logs?"
                                      f"{request.url.query}", authorization or "")
                    if got is not None:
                        return _out(got)
            where = "; ".join(f"{s['name']} ({s['url']})" for s in elsewhere)
            raise StateError(f"the logs of run {run_id} are on the server that drove it, "
                             f"which did not give them: {where}",
                             hint=f"ask it: jaz logs {run_id} --server {elsewhere[0]['url']}")
        out = []
        for chunk in core.service.logs(run_id, job, offset=offset):
            if stream is not None and chunk.stream != stream:
                continue
            out.append({"job": chunk.job, "attempt": chunk.attempt, "stream": chunk.stream,
                        "offset": offset, "next_offset": chunk.size, "text": chunk.text})
        return _out(out)

    @app.get("/api/v1/events", response_model=list[dict[str, Any]])
    def events(run: Annotated[int | None, Query(ge=1, le=2**62)] = None,
               since: datetime | None = None, until: datetime | None = None,
               jobnet: str | None = None, user: str | None = None,
               limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
               who: Principal = viewer) -> JSONResponse:
        """The audit/event log, oldest first (the last `limit` that match)."""
        found = core.store.list_events(run_id=run, since=_aware(since, core) if since else None,
                                       until=_aware(until, core) if until else None)
        found = [e for e in found if (jobnet is None or e.jobnet == jobnet)
                 and (user is None or e.user == user)][-limit:]
        return _out([{"at": e.at.isoformat(), "kind": e.kind, "run_id": e.run_id,
                      "jobnet": e.jobnet, "job": e.job, "user": e.user, "detail": e.detail}
                     for e in found])

    @app.get("/api/v1/stream")
    def stream(who: Principal = viewer) -> StreamingResponse:
        return StreamingResponse(_sse(core), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/api/v1/purge")
    def purge(body: PurgeBody, who: Principal = admin) -> dict[str, Any]:
        before = core.clock.now() - timedelta(days=body.keep_days)
        removed = core.service.purge(before, user=who.user)
        return {"removed": removed, "before": before.isoformat()}

    # ------------------------------------------------------------ calendars

    @app.get("/api/v1/calendars")
    def calendars(who: Principal = viewer) -> list[dict[str, Any]]:
        return [{"name": name, "path": str(path), "valid": cal is not None,
                 "problems": [_problem_view(p) for p in problems]}
                for name, path, cal, problems in core.registry.calendars()]

    @app.get("/api/v1/calendars/{name}")
    def calendar(name: str, year: Annotated[int | None, Query(ge=1900, le=2999)] = None,
                 who: Principal = viewer) -> dict[str, Any]:
        cal = core.registry.calendar(name)
        shown = year or core.clock.now().astimezone(core.zone).year
        return {"name": cal.name, "year": shown,
                "operating_days": sorted(d.isoformat() for d in cal.year(shown)),
                "holidays": {d.isoformat(): n for d, n in sorted(cal.holiday_names(shown)
                                                                 .items())}}

    return app


# ------------------------------------------------------------------ plumbing


class BodyLimit:
    """Refuse request bodies over `limit` bytes with a 413 problem, whether announced by
    Content-Length or sent in chunks; plain ASGI (Starlette's BaseHTTPMiddleware costs
    a task and a stream per request). Past the limit the app is told the client left,
    and whatever it answers to that is replaced by the 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        too_large = refused = False

        async def counted() -> Any:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                too_large = True
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Any) -> None:
            nonlocal refused
            if not too_large:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(scope, receive, send)

        await self.app(scope, counted, guarded)

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        response = _problem(413, "request body too large", f"at most {self.limit} bytes")
        await response(scope, receive, send)


# ------------------------------------------------------------------ views


FORWARDED = "X-Jaz-Forwarded"   # a request one server made of another: not passed on


def _fetch_logs(url: str, authorization: str) -> Any:
    """The logs as another server gives them (with the caller's token), or None when it
    does not (unreachable, or it does not take that token)."""
    import urllib.error
    import urllib.request

    if not url.startswith("http://"):   # what servers announce (`Core.announce`)
        return None
    req = urllib.request.Request(url, headers={  # noqa: S310 - http only, checked above
        "Authorization": authorization, FORWARDED: "1"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - our own servers
            return json.loads(r.read())
    except (OSError, ValueError):   # URLError and HTTPError are OSErrors
        return None


def _out(data: Any, status: int = 200) -> JSONResponse:
    """A view as JSON, as it is: the busy routes skip FastAPI's validation and encoding
    of every field against their (documented) response model, ~0.3 ms a run's view.
    Views hold only JSON types (times as ISO text)."""
    return JSONResponse(data, status_code=status)


def _problem(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body = {"status": status, "title": title, **({"detail": detail} if detail else {}), **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _problem_view(p: Any) -> dict[str, Any]:
    return {"file": p.file, "message": p.message, "job": p.job, "field": p.field,
            "line": p.line, "column": p.column}


def _run_view(run: RunRecord, jobs: Any,
              progress: tuple[int, int] | None = None) -> dict[str, Any]:
    """A run as the API shows it; `progress` (jobs finished, jobs in all) for lists, where
    the jobs themselves are not sent."""
    view = run_view(run, jobs)
    view.update(trigger=run.trigger, created_at=run.created_at.isoformat(),
                scheduled_at=run.scheduled_at.isoformat() if run.scheduled_at else None,
                message=run.message, warning=run.warning, version=run.version,
                late=LATE_MARK in run.warning)
    if jobs is not None:
        progress = (sum(j.status.finished for j in jobs), len(jobs))
    if progress is not None:
        view["progress"] = {"done": progress[0], "total": progress[1]}
    return view


def _job_view(j: JobRecord) -> dict[str, Any]:
    """One job with the run it belongs to (job events, a job's history)."""
    return {"run_id": j.run_id, "job": j.name, **job_view(j)}


def _what(job: Job) -> str:
    """A job's action on one line: the command, the statements, the jobnet started..."""
    from dataclasses import fields

    first = fields(job.action)[0].name
    value = getattr(job.action, first)
    if isinstance(value, Mapping):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    return " ".join(str(value).split())


def _jobs_view(net: Jobnet) -> dict[str, Any]:
    return {n: {"kind": j.kind, "needs": list(j.needs), "host": j.host, "what": _what(j),
                "description": j.description, "enabled": j.enabled, "hold": j.hold,
                "timeout": j.timeout, "retries": j.retries}
            for n, j in net.jobs.items()}


def _sort_key(run: RunRecord, key: str) -> Any:
    far = datetime.min.replace(tzinfo=run.created_at.tzinfo)
    return {"id": run.id, "jobnet": run.jobnet, "status": str(run.status),
            "scheduled": run.scheduled_at or far, "started": run.started_at or far,
            "ended": run.ended_at or far,
            "duration": (run.ended_at - run.started_at).total_seconds()
            if run.ended_at and run.started_at else -1.0}[key]


def _aware(t: datetime | None, core: Core) -> datetime:
    """A time from a request, in the server's zone when it has no offset. Times near the
    ends of what datetime holds overflow in any arithmetic (a zone, a day ahead): only
    the years 1900 to 9000 are taken, with a 400 for the rest."""
    assert t is not None
    aware = t if t.tzinfo is not None else t.replace(tzinfo=core.zone)
    try:
        fits = 1900 <= aware.astimezone(UTC).year <= 9000
    except (OverflowError, ValueError):
        fits = False
    if not fits:
        raise UsageError(f"time {t.isoformat()} is out of range",
                         hint="give a time between the years 1900 and 9000")
    return aware


def _jobnet_view(core: Core, *, name: str, detail: bool) -> dict[str, Any]:
    from jaz.engine.schedules import next_fires

    loaded = core.registry.get(name)
    net = loaded.jobnet
    view: dict[str, Any] = {
        "name": loaded.name, "path": str(loaded.path), "valid": not loaded.problems,
        "in_force": net is not None, "description": net.description if net else "",
        "version": net.hash if net else None,
        "schedules": [b.schedule.describe() for b in loaded.schedules],
        "problems": [_problem_view(p) for p in loaded.problems],
        "next": [f.at.isoformat() for f in next_fires(loaded.schedules, core.clock.now(),
                                                       10 if detail else 3)],
    }
    last = core.service.runs(jobnet=loaded.name, limit=1)
    view["last_run"] = _run_view(last[0], None) if last else None
    if detail and loaded.problems:   # the broken file as it is now, to show with them
        try:
            view["file_text"] = loaded.path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError:
            view["file_text"] = None
    if detail and net is not None:
        view["text"] = net.text
        view["params"] = dict(net.params)
        view["jobs"] = _jobs_view(net)
    return view


def _sse(core: Core) -> Iterator[str]:
    q = core.feed.subscribe()
    try:
        yield ": connected\n\n"
        quiet = 0.0
        while not core.closing.is_set():   # a stream must not hold up a shutdown
            try:
                change = q.get(timeout=0.5)
            except queue.Empty:
                quiet += 0.5
                if quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                continue
            quiet = 0.0
            if change.text is None:   # once per change, whatever the number of streams
                change.text = _event_text(core, change)
            yield change.text
    finally:
        core.feed.unsubscribe(q)


def _event_text(core: Core, change: Change) -> str:
    """A change as a server-sent event: the run's view, or the job's with its jobnet;
    both with the run's progress."""
    record = change.record
    done, total = core.store.progress([change.run_id])[change.run_id]
    if change.kind == "run":
        assert isinstance(record, RunRecord)
        data: dict[str, Any] = _run_view(record, None, (done, total))
    else:
        assert isinstance(record, JobRecord)
        data = {**_job_view(record), "jobnet": core.store.get_run(change.run_id).jobnet,
                "progress": {"done": done, "total": total}}
    return f"event: {change.kind}\ndata: {json.dumps(data, default=_json)}\n\n"


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _metrics(core: Core) -> str:
    """Prometheus text: runs by state, the engine's load, recent job durations and how
    late scheduled runs started (schedule lag)."""
    counts = core.store.count_runs()
    recent = core.store.list_runs(limit=200, top_level=True)
    lines = ["# HELP jaz_runs Runs by state.", "# TYPE jaz_runs gauge"]
    lines += [f'jaz_runs{{state="{state}"}} {counts.get(state, 0)}' for state in RunState]
    lines += ["# HELP jaz_running_runs Runs being driven now.", "# TYPE jaz_running_runs gauge",
              f"jaz_running_runs {len(core.running())}",
              "# HELP jaz_jobnets Jobnets loaded.", "# TYPE jaz_jobnets gauge",
              f"jaz_jobnets {len(core.registry.all())}",
              "# HELP jaz_jobnets_invalid Jobnet files with problems.",
              "# TYPE jaz_jobnets_invalid gauge",
              f"jaz_jobnets_invalid {sum(1 for x in core.registry.all() if x.problems)}"]
    queued = sum(1 for r in recent if r.status == RunState.SCHEDULED and r.scheduled_at
                 and r.scheduled_at <= core.clock.now())
    lines += ["# HELP jaz_due_runs Scheduled runs due but not started (queue depth).",
              "# TYPE jaz_due_runs gauge", f"jaz_due_runs {queued}"]
    lags = sorted((r.started_at - r.scheduled_at).total_seconds() for r in recent
                  if r.trigger == "schedule" and r.started_at and r.scheduled_at)
    lines += _summary("jaz_schedule_lag_seconds",
                      "Delay from a fire to its run's start, last 200 runs.", lags)
    durations: list[float] = []
    for run in recent[:50]:
        durations += [(j.ended_at - j.started_at).total_seconds()
                      for j in core.store.get_jobs(run.id) if j.started_at and j.ended_at]
    lines += _summary("jaz_job_duration_seconds", "Job durations in the last 50 runs.",
                      sorted(durations))
    if core.remote is not None:
        links = core.remote.status()
        lines += ["# HELP jaz_host_online Hosts of the hosts file (agent, JAZ agent, SSH): "
                  "1 online, 0 offline (absent: not probed yet).",
                  "# TYPE jaz_host_online gauge"]
        lines += [f'jaz_host_online{{host="{name}"}} {1 if link["online"] else 0}'
                  for name, link in sorted(links.items()) if link["online"] is not None]
        lines += ["# HELP jaz_host_jobs Jobs of this server in flight on each host.",
                  "# TYPE jaz_host_jobs gauge"]
        lines += [f'jaz_host_jobs{{host="{name}"}} {link["in_flight"]}'
                  for name, link in sorted(links.items())]
    return "\n".join(lines) + "\n"


def _summary(name: str, text: str, values: list[float]) -> list[str]:
    lines = [f"# HELP {name} {text}", f"# TYPE {name} summary"]
    for q in (0.5, 0.9, 0.99):
        value = values[min(len(values) - 1, int(q * len(values)))] if values else 0.0
        lines.append(f'{name}{{quantile="{q}"}} {value:.6f}')
    lines += [f"{name}_sum {sum(values):.6f}", f"{name}_count {len(values)}"]
    return lines
