"""Jobs on unmodified Job Arranger for Zabbix (JAZ) v3 agents: `[hosts.NAME] jaz_agent =
"addr:10055"`, behind the engine's Executor/Execution interface (docs/migration.md).

What the agent's protocol gives (jazwire.py): a `jobrun` request on a connection to the
agent, answered on the same connection (`jobrun-res`: 0 accepted, 2 refused with a
message, 3 already running), and later a `jobresult` the agent sends, on a connection
of its own, to the server's port (here: the JAZ listener, `jaz_listen`), answered with
`{"kind":"response","version":1,"data":{"result":0}}`. A stop is a `jobrun` with
method 3 (kill). There is no way to ask an agent how a job ended, so:

- each job in flight is looked for on its agent every `check_every` (and at once when
  the agent answers again after being away, or when this process adopts the job): a
  `jobrun` with method 1 (test: it runs nothing) and the job's own id answers "already
  running" while the agent still holds the job. When it answers "accepted" instead, the
  agent no longer has the job and its result did not come: the agent dropped it after
  `JaSendRetry` failed sends. After a short grace for a result in flight, the job ends
  in `error` with a message saying so; it is never rerun on its own.
- a host away for longer than its `offline_after` ends its jobs in error, naming it.

The listener accepts connections only from the configured JAZ agents' addresses (a
connection from anywhere else is closed before a byte is read), understands only
`jobresult`, and refuses a malformed frame by closing the connection: nothing in it is
acted on, and the listener goes on.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaz.engine.durations import format_duration
from jaz.engine.executors.base import (
    Attempt,
    Execution,
    Executor,
    Outcome,
    Reported,
    read_tail,
    redact,
)
from jaz.engine.model import Job, RunAction
from jaz.errors import ActionError, UsageError
from jaz.hosts import jazwire as wire
from jaz.hosts.config import Host
from jaz.hosts.jazconfig import listen_of
from jaz.hosts.wire import split_address

log = logging.getLogger("jaz.hosts.jaz")
CONNECT_TIMEOUT = 3.0
REPLY_TIMEOUT = 10.0     # an agent answers a jobrun at once (it only records the job)
RECEIVE_TIMEOUT = 10.0   # a result's frame must arrive within this
LOST_GRACE = 2.0         # after "not held any more": how long a result in flight may take
BACKOFF = (0.2, 5.0)     # pause between attempts to reach an agent that is away
HEARTBEAT = 60.0         # an idle agent is connected to this often (server only)
SENDERS = 4              # requests in flight to one agent at once
MAX_CONNECTIONS = 32     # results being received at once; more are closed at once
STASH = (3600.0, 10000, 64 * 2**20)   # results of jobs not (yet) known here: kept this
                                      # long, this many, this many bytes of output


def serverid_of(owner: str) -> str:
    """This side's `serverid` (the agent keeps 17 characters of it): digits, stable."""
    return str(int(hashlib.sha256(owner.encode()).hexdigest(), 16))[:17]


# ------------------------------------------------------------ one job

class JazExecution(Reported):
    def __init__(self, link: JazLink, jobid: str, attempt: Attempt, script: str,
                 env: dict[str, str]) -> None:
        super().__init__()
        self.link = link
        self.jobid = jobid
        self.attempt = attempt
        self.script = script
        self.env = env
        self.sent = False        # the agent accepted it (or may have: `unsure`)
        self.unsure = False
        self.stopping = False
        self.check_at = 0.0      # monotonic time of the next look on the agent
        self.lost_at: float | None = None
        self.refused_since: float | None = None   # looks answered with a refusal since

    def stop(self) -> None:
        self.link.stop(self)

    def _settled(self) -> None:
        self.link.owner.forget(self)


class _Down(Exception):
    """The agent could not be reached; `sent` tells whether the request may have got
    there (then resending could run the job twice)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent


# ------------------------------------------------------------ one agent

class JazLink:
    """Everything this side has in flight with one JAZ agent: a few sender threads that
    deliver jobs, kills and looks (`check_every`), and the host's online state."""

    def __init__(self, owner: JazAgents, host: Host, *, heartbeat: bool) -> None:
        assert host.jaz_agent is not None
        self.owner = owner
        self.host = host
        self.address = split_address(host.jaz_agent) or ("", 0)
        self.hostname = host.hostname or host.name
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._unsent: deque[JazExecution] = deque()
        self._kills: deque[JazExecution] = deque()
        self._jobs: dict[str, JazExecution] = {}   # sent (or maybe sent), not settled
        self.online: bool | None = None
        self.last_seen: float | None = None
        self.error = ""
        self._away_since: float | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF[0]
        self._pinged = 0.0
        self._threads = [threading.Thread(target=self._loop, daemon=True,
                                          name=f"jaz-{host.name}-{i}") for i in range(SENDERS)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout=CONNECT_TIMEOUT + REPLY_TIMEOUT)

    def status(self) -> dict[str, Any]:
        with self._lock:
            jobs = len(self._jobs) + len(self._unsent)
        from datetime import UTC, datetime

        seen = None if self.last_seen is None else \
            datetime.fromtimestamp(self.last_seen, UTC).astimezone().isoformat()
        return {"online": self.online, "last_seen": seen, "version": None,
                "agent_running": None, "in_flight": jobs, "error": self.error}

    # ------------------------------------------------------------ from the engine

    def start(self, execution: JazExecution) -> None:
        with self._lock:
            self._unsent.append(execution)
            self._wake.notify()

    def adopt(self, execution: JazExecution) -> None:
        execution.sent = True
        execution.check_at = 0.0   # look for it at once
        with self._lock:
            self._jobs[execution.jobid] = execution
            self._wake.notify()

    def stop(self, execution: JazExecution) -> None:
        with self._lock:
            execution.stopping = True
            if execution in self._unsent:
                self._unsent.remove(execution)
                unsent = True
            else:
                unsent = False
                self._kills.append(execution)
                self._wake.notify()
        if unsent:
            execution.settle(Outcome(exit_code=None, stopped=True,
                                     error="stopped before it was sent to the JAZ agent"))

    def ended(self, execution: JazExecution) -> None:
        with self._lock:
            self._jobs.pop(execution.jobid, None)

    # ------------------------------------------------------------ the senders

    def _next(self) -> tuple[str, JazExecution | None] | None:
        """The next thing to do (with the lock held), or None to wait."""
        now = time.monotonic()
        if now < self._retry_at:   # away: kills too wait for the next try
            return None
        if self._kills:
            return "kill", self._kills.popleft()
        if self._unsent:
            return "send", self._unsent.popleft()
        for execution in self._jobs.values():
            if execution.lost_at is not None:
                if now >= execution.lost_at:
                    execution.lost_at = None
                    return "lost", execution
            elif now >= execution.check_at:
                execution.check_at = now + self.host.check_every
                return "check", execution
        if self.heartbeat and not self._jobs and now - self._pinged >= HEARTBEAT:
            self._pinged = now
            return "ping", None
        return None

    def _pause(self) -> float:
        now = time.monotonic()
        due = [self._retry_at - now] if self._retry_at > now else []
        for e in self._jobs.values():
            due.append((e.lost_at if e.lost_at is not None else e.check_at) - now)
        if self.heartbeat and not self._jobs:
            due.append(self._pinged + HEARTBEAT - now)
        if self._away_since is not None and (self._jobs or self._unsent):
            due.append(self._away_since + self.host.offline_after - now)
        return max(0.01, min(due, default=HEARTBEAT))

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._closing:
                    work = self._next()
                    if work is not None:
                        break
                    self._expire()
                    self._wake.wait(self._pause())
                else:
                    return
            what, execution = work
            try:
                if what == "send":
                    assert execution is not None
                    self._send(execution)
                elif what == "kill":
                    assert execution is not None
                    self._kill(execution)
                elif what == "check":
                    assert execution is not None
                    self._check(execution)
                elif what == "lost":
                    assert execution is not None
                    self._lost(execution)
                else:
                    self._ping()
            except Exception:
                log.exception("JAZ agent host %s: %s failed", self.host.name, what)

    def _request(self, jobid: str, method: int, script: str = "",
                 env: dict[str, str] | None = None) -> dict[str, Any]:
        """One jobrun and its answer's data; _Down when the agent cannot be reached."""
        message = {"kind": "jobrun", "version": wire.VERSION, "serverid": self.owner.serverid,
                   "hostname": self.hostname,
                   "data": {"jobid": jobid, "type": "command", "method": method,
                            "script": script, "argument": {}, "env": env or {},
                            "run_user": "", "run_user_password": ""}}
        try:
            sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT)
        except OSError as e:
            self._away(f"cannot connect to the JAZ agent at {self.host.jaz_agent}: "
                       f"{e.strerror or e}")
            raise _Down(self.error, sent=False) from None
        try:
            sock.settimeout(REPLY_TIMEOUT)
            try:
                wire.send(sock, message)
            except OSError as e:   # the agent may have read it all the same
                self._away(f"the JAZ agent at {self.host.jaz_agent} broke the connection: "
                           f"{e.strerror or e}")
                raise _Down(self.error, sent=True) from None
            try:
                answer = wire.receive(sock)
            except (OSError, wire.FrameError) as e:
                # an empty close is what an agent does to an address not in its Server=
                text = str(e) if isinstance(e, wire.FrameError) else (e.strerror or str(e))
                self._away(f"no answer from the JAZ agent at {self.host.jaz_agent} ({text}); "
                           "is this machine's address in the agent's Server=?")
                raise _Down(self.error, sent=True) from None
        finally:
            sock.close()
        self._seen()
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    def _send(self, execution: JazExecution) -> None:
        if execution.done:
            return
        try:
            data = self._request(execution.jobid, wire.RUN, execution.script, execution.env)
        except _Down as e:
            if e.sent:   # it may run there: look for it, never send it again
                execution.unsure = True
                self._track(execution)
            else:
                with self._lock:
                    self._unsent.appendleft(execution)
            return
        result = wire.int_field(data, "result")
        if result in (wire.ACCEPTED, wire.ALREADY_RUNNING):   # 3: this very job, sent before
            self._track(execution)
            return
        message = wire.text_field(data, "message") or f"result {result}"
        hint = ""
        if "does not match Hostname" in message:
            hint = (f"; set hostname = \"...\" under [hosts.{self.host.name}] to the agent's "
                    "Hostname=")
        execution.settle(Outcome(exit_code=None, error=(
            f"the JAZ agent on host {self.host.name!r} refused the job: {message}{hint}")))

    def _track(self, execution: JazExecution) -> None:
        execution.sent = True
        execution.check_at = time.monotonic() + self.host.check_every
        with self._lock:
            if not execution.done:
                self._jobs[execution.jobid] = execution
            stop = execution.stopping
        if stop:
            with self._lock:
                self._kills.append(execution)
                self._wake.notify()

    def _kill(self, execution: JazExecution) -> None:
        if execution.done:
            return
        try:
            data = self._request(execution.jobid, wire.KILL)
        except _Down:
            with self._lock:   # again once it answers (the job goes on meanwhile)
                if not execution.done:
                    self._kills.append(execution)
            return
        if wire.int_field(data, "result") != wire.ACCEPTED:
            # not running there: ended (its result on the way) or lost: look now
            execution.check_at = 0.0
            with self._lock:
                self._wake.notify()

    def _check(self, execution: JazExecution) -> None:
        if execution.done:
            return
        try:
            data = self._request(execution.jobid, wire.TEST)
        except _Down:
            return
        result = wire.int_field(data, "result")
        if result == wire.ALREADY_RUNNING:
            execution.unsure = False
        elif result == wire.ACCEPTED:   # not held there any more
            execution.lost_at = time.monotonic() + LOST_GRACE
            with self._lock:
                self._wake.notify()
        else:   # refused: never waits for ever on an agent that will not say
            message = wire.text_field(data, "message") or f"result {result}"
            log.warning("JAZ agent host %s: looking for job %s: %s", self.host.name,
                        execution.jobid, message)
            now = time.monotonic()
            if execution.refused_since is None:
                execution.refused_since = now
            elif now - execution.refused_since >= self.host.offline_after:
                execution.settle(Outcome(exit_code=None, error=(
                    f"the JAZ agent on host {self.host.name!r} has refused for more than "
                    f"{format_duration(self.host.offline_after)} to say whether it still "
                    f"runs this job ({message}); how it ended is unknown: check on the "
                    "host, then rerun the job")))
            return
        execution.refused_since = None

    def _lost(self, execution: JazExecution) -> None:
        if execution.done:
            return
        listen = self.owner.listen
        if execution.unsure:
            why = ("it may never have got the job (the connection broke as it was sent), or "
                   "it dropped the result")
        else:
            why = ("a JAZ agent drops a result after JaSendRetry failed sends, for example "
                   f"while nothing listened on {listen}")
        execution.settle(Outcome(exit_code=None, error=(
            f"the JAZ agent on host {self.host.name!r} lost this job's result: the job no "
            f"longer runs there and its result never came ({why}); how it ended is unknown: "
            "check on the host, then rerun the job")))

    def _ping(self) -> None:
        try:
            socket.create_connection(self.address, timeout=CONNECT_TIMEOUT).close()
        except OSError as e:
            self._away(f"cannot connect to the JAZ agent at {self.host.jaz_agent}: "
                       f"{e.strerror or e}")
            return
        self._seen()

    # ------------------------------------------------------------ the host's state

    def _seen(self) -> None:
        with self._lock:
            back = self.online is not True
            self.online = True
            self.last_seen = time.time()
            self.error = ""
            self._away_since = None
            self._retry_at = 0.0
            self._backoff = BACKOFF[0]
            if back:   # reachable again: look for every job in flight at once
                for e in self._jobs.values():
                    if e.lost_at is None:
                        e.check_at = 0.0
                self._wake.notify_all()
        if back:
            log.info("JAZ agent host %s: online", self.host.name)

    def _away(self, error: str) -> None:
        with self._lock:
            if self.online is not False or self.error != error:
                log.warning("JAZ agent host %s: %s", self.host.name, error)
            self.online = False
            self.error = error
            if self._away_since is None:
                self._away_since = time.monotonic()
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF[1])

    def _expire(self) -> None:
        """(lock held) A host away past `offline_after`: its jobs end in error."""
        since = self._away_since
        if since is None or time.monotonic() - since < self.host.offline_after:
            return
        gone = list(self._jobs.values()) + list(self._unsent)
        self._jobs.clear()
        self._unsent.clear()
        if not gone:
            return
        away = format_duration(self.host.offline_after)
        error = self.error

        def settle() -> None:
            for e in gone:
                what = "its end is unknown (it may still run there)" if e.sent \
                    else "the job was not sent"
                e.settle(Outcome(exit_code=None, error=(
                    f"host {self.host.name!r} (JAZ agent) unreachable for more than {away}: "
                    f"{what}; last error: {error}")))

        threading.Thread(target=settle, daemon=True).start()   # not with the lock held


# ------------------------------------------------------------ the results' listener

class ResultListener:
    """The JAZ listener: receives `jobresult`s from the allowed addresses, nothing else."""

    def __init__(self, listen: str, allowed: Callable[[str], bool],
                 on_result: Callable[[str, dict[str, Any]], bool], serverid: str) -> None:
        parsed = split_address(listen)
        if parsed is None:
            raise ActionError(f"bad jaz_listen address {listen!r}")
        host, port = parsed
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.create_server((host, port), family=family, backlog=128)
        except OSError as e:
            raise UsageError(
                f"cannot listen on {listen} for JAZ agents' results: {e.strerror or e}",
                hint="another process (a jaz server or `jaz run` with JAZ agent hosts) may "
                     "listen there; set jaz_listen to a free port (and the agents' "
                     "JaServerPort to it)") from None
        self.address = self.sock.getsockname()[:2]
        self.allowed = allowed
        self.on_result = on_result
        self.serverid = serverid
        self.refused = 0       # connections closed unread (address not allowed)
        self.malformed = 0     # frames refused
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closing = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="jaz-listener")
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                if self._closing:
                    return
                time.sleep(0.05)   # (EMFILE and the like: do not spin)
                continue
            ip = str(peer[0])
            if ip.startswith("::ffff:"):
                ip = ip[7:]
            if not self.allowed(ip):
                self.refused += 1
                log.warning("JAZ listener: refused a connection from %s (not a configured "
                            "JAZ agent's address)", ip)
                conn.close()
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("JAZ listener: too many connections at once; closed one from %s",
                            ip)
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn, ip), daemon=True).start()

    def _serve(self, conn: socket.socket, ip: str) -> None:
        try:
            conn.settimeout(RECEIVE_TIMEOUT)
            try:
                message = wire.receive(conn)
            except (OSError, wire.FrameError) as e:
                self.malformed += 1
                log.warning("JAZ listener: refused what %s sent: %s", ip, e)
                return
            data = message.get("data")
            if message.get("kind") != "jobresult" or not isinstance(data, dict):
                self.malformed += 1
                log.warning("JAZ listener: %s sent a %r message, not a jobresult; ignored",
                            ip, message.get("kind"))
                return
            if not self.on_result(ip, data):
                return
            try:
                wire.send(conn, {"kind": "response", "version": wire.VERSION,
                                 "serverid": self.serverid, "data": {"result": 0}})
            except OSError:
                pass
        finally:
            conn.close()
            self._slots.release()


# ------------------------------------------------------------ the executor

class JazAgents(Executor):
    """The executor of `run` jobs on JAZ agent hosts (made by AgentHosts), with the JAZ
    listener its results come to."""

    def __init__(self, hosts: dict[str, Host], owner: str, *, heartbeat: bool = False) -> None:
        self.hosts = {n: h for n, h in hosts.items() if h.jaz_agent}
        self.owner = owner
        self.serverid = serverid_of(owner)
        self.listen = listen_of(self.hosts)
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._links: dict[str, JazLink] = {}
        self._jobs: dict[str, JazExecution] = {}
        self._stash: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self._stashed = 0   # bytes of output in the stash
        self._addresses: dict[str, set[str]] = {}
        self._resolved = 0.0
        self._resolve()
        self.listener = ResultListener(self.listen, self._allowed, self._result, self.serverid)
        log.info("JAZ listener on %s for %d JAZ agent host(s)", self.listen, len(self.hosts))

    def link(self, name: str) -> JazLink:
        with self._lock:
            link = self._links.get(name)
            if link is None:
                link = self._links[name] = JazLink(self, self.hosts[name],
                                                   heartbeat=self.heartbeat)
            return link

    def connect_all(self) -> None:
        for name in self.hosts:
            self.link(name)

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            links = list(self._links.values())
        for link in links:
            link.close()

    def status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            links = dict(self._links)
        return {name: link.status() for name, link in links.items()}

    # ------------------------------------------------------------ addresses

    def _resolve(self) -> None:
        found: dict[str, set[str]] = {}
        for name, host in self.hosts.items():
            addr = split_address(host.jaz_agent or "")
            names = ([addr[0]] if addr is not None else []) + list(host.result_addresses)
            ips: set[str] = set()
            for who in names:
                try:
                    ips |= {str(i[4][0]) for i in socket.getaddrinfo(who, None)}
                except OSError as e:
                    log.warning("JAZ agent host %s: cannot resolve %s: %s", name, who, e)
            found[name] = ips
        self._addresses = found
        self._resolved = time.monotonic()

    def _allowed(self, ip: str) -> bool:
        if any(ip in ips for ips in self._addresses.values()):
            return True
        if time.monotonic() - self._resolved > 30:   # an agent's address may have changed
            self._resolve()
            return any(ip in ips for ips in self._addresses.values())
        return False

    # ------------------------------------------------------------ jobs

    def job_id(self, attempt: Attempt) -> str:
        """The job's id on its agent (a number, as JAZ's are): the same for the same
        execution of the same job of the same database, whichever process asks."""
        digest = hashlib.sha256(f"{self.owner}\0{attempt.output_path}".encode()).hexdigest()
        return str(int(digest[:13], 16) or 1)

    def start(self, attempt: Attempt) -> Execution:
        job = attempt.job
        host = self.hosts[attempt.host]
        if not isinstance(job.action, RunAction):
            raise ActionError(f"{job.kind!r} jobs cannot run on JAZ agent host {host.name!r}; "
                              "only `run` jobs can (docs/migration.md)")
        if job.user:
            raise ActionError(f"user = {job.user!r}: a JAZ agent runs a job as another user "
                              "only with that user's password, and jaz keeps no passwords",
                              hint="drop `user` (the job runs as the agent's user), or move "
                                   "the host to `jaz agent` (docs/agent.md)")
        if job.stop_command:
            raise ActionError("stop_command does not work on a JAZ agent host (a stop kills "
                              "the job there)", hint="drop stop_command for this host")
        script = job.action.script
        if job.cwd:
            import shlex

            script = f"cd {shlex.quote(str(job.cwd))} || exit 1\n{script}"
        if job.shell and job.shell != "/bin/sh":
            script = f"#!{job.shell}\n{script}"
        env = {k: v for k, v in attempt.env.items() if k != "JAZ_OUTPUT"}
        for path in (attempt.stdout_path, attempt.stderr_path):
            path.write_bytes(b"")   # there from the start, for `jaz logs -f`
        link = self.link(host.name)
        execution = JazExecution(link, self.job_id(attempt), attempt, script, env)
        with self._lock:
            self._jobs[execution.jobid] = execution
        link.start(execution)
        return execution

    def adopt_one(self, attempt: Attempt) -> JazExecution:
        link = self.link(attempt.host)
        execution = JazExecution(link, self.job_id(attempt), attempt, "", {})
        with self._lock:
            self._jobs[execution.jobid] = execution
            kept = self._stash.pop(execution.jobid, None)
            if kept is not None:
                self._stashed -= _size(kept[2])
        if kept is not None and self._from_host(kept[1], link.host):
            self._settle(execution, kept[2])
        else:
            link.adopt(execution)
        return execution

    def adopt(self, run_id: int, job: Job, host: str, stem: str) -> Execution | None:
        output = Path(stem + ".vars")
        attempt = Attempt(run_id=run_id, jobnet="", job=job, attempt=0, host=host, env={},
                          cwd=output.parent, base_dir=output.parent,
                          stdout_path=Path(stem + ".out"), stderr_path=Path(stem + ".err"),
                          output_path=output)
        return self.adopt_one(attempt)

    def forget(self, execution: JazExecution) -> None:
        with self._lock:
            if self._jobs.get(execution.jobid) is execution:
                del self._jobs[execution.jobid]
        execution.link.ended(execution)

    def _from_host(self, ip: str, host: Host) -> bool:
        return ip in self._addresses.get(host.name, set())

    def _result(self, ip: str, data: dict[str, Any]) -> bool:
        """A jobresult from `ip` (an allowed address): True to answer it."""
        jobid = wire.int_field(data, "jobid")
        if jobid is None:
            log.warning("JAZ listener: a result from %s without a usable jobid; ignored", ip)
            return False
        key = str(jobid)
        with self._lock:
            execution = self._jobs.get(key)
        if wire.int_field(data, "method") == wire.TEST:
            return True   # the answer to a look (`_check`): it ran nothing
        if execution is None:
            self._keep(key, ip, data)
            return True
        if not self._from_host(ip, execution.link.host):
            log.warning("JAZ listener: %s sent the result of job %s, which was sent to host "
                        "%s; ignored", ip, key, execution.link.host.name)
            return False
        self._settle(execution, data)
        return True

    def _keep(self, key: str, ip: str, data: dict[str, Any]) -> None:
        """A result of a job not known here (yet): a restarted process adopts it soon."""
        now = time.monotonic()
        size = _size(data)
        with self._lock:
            for k in [k for k, (at, _, _) in self._stash.items() if now - at > STASH[0]]:
                self._stashed -= _size(self._stash.pop(k)[2])
            while self._stash and (len(self._stash) >= STASH[1]
                                   or self._stashed + size > STASH[2]):
                self._stashed -= _size(self._stash.pop(next(iter(self._stash)))[2])
            if size <= STASH[2]:
                old = self._stash.pop(key, None)
                if old is not None:
                    self._stashed -= _size(old[2])
                self._stash[key] = (now, ip, data)
                self._stashed += size

    def _settle(self, execution: JazExecution, data: dict[str, Any]) -> None:
        a = execution.attempt
        streams = ((a.stdout_path, "std_out"), (a.stderr_path, "std_err"))
        for path, key in streams:
            text = redact(wire.text_field(data, key), a.redact)
            try:
                path.write_text(text, encoding="utf-8", errors="replace")
            except OSError as e:
                log.warning("JAZ agent job %s: cannot write %s: %s", execution.jobid, path, e)
        result = wire.int_field(data, "result")
        code = wire.int_field(data, "return_code")
        sig = wire.int_field(data, "signal")
        error = ""
        exit_code: int | None = code
        if result not in (0, None):
            message = wire.text_field(data, "message")
            exit_code, error = None, (f"the JAZ agent could not run the job (result {result})"
                                      + (f": {message}" if message else ""))
        elif sig:
            exit_code = 128 + code if code is not None and 0 < code < 128 else None
            error = f"killed by signal {code}" if code else "killed by a signal"
        elif code is None:
            error = "the JAZ agent's result carries no return_code"
        execution.settle(Outcome(exit_code=exit_code, error=error,
                                 stopped=execution.stopping and bool(sig),
                                 stdout_tail=read_tail(a.stdout_path),
                                 stderr_tail=read_tail(a.stderr_path)))


def _size(data: dict[str, Any]) -> int:
    return len(wire.text_field(data, "std_out")) + len(wire.text_field(data, "std_err"))
