"""Jobs on agent hosts, behind the engine's Executor/Execution interface.

`AgentHosts.start` hands a job to its host's `Link` and returns at once: the driver
thread never waits for a network. Each link has two threads, each with a connection
of its own to the agent:

- the sender delivers jobs (again and again, with backoff and jitter, until the agent
  answers that the job is committed), stops and acknowledgements, and says hello when
  idle (the host's online state, last-seen time, version and running jobs);
- the poller long-polls the agent for the ends of the jobs it holds, mirrors their
  output into the run's log files as it grows (so `jaz logs -f` and the TUI follow
  a remote job as a local one), and settles each ended job exactly once, then has
  the sender acknowledge it. On every (re)connection it first asks for every job the
  agent holds for this server (`list`) and settles those that ended meanwhile.

A host away for longer than its `offline_after` ends its jobs in error, with a message
naming the host; a changed certificate or a refused token fails the jobs not yet sent
at once: nothing is sent to an agent that does not prove it is the one pinned.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import re
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaz.engine.durations import format_duration
from jaz.engine.executors.base import Attempt, Ended, Execution, Executor, Outcome, Reported
from jaz.engine.model import Job, RebootAction, RunAction, TransferAction, WaitFileAction
from jaz.errors import ActionError, JazError, Refused, Unreachable
from jaz.hosts.client import AgentClient, AgentError, FingerprintChanged, NotTrusted
from jaz.hosts.config import Host
from jaz.hosts.wire import CHUNK

if TYPE_CHECKING:
    from jaz.hosts.jazagent import JazAgents

log = logging.getLogger("jaz.hosts")
HEARTBEAT = 5.0        # seconds between hellos to an idle agent
POLL = 1.0             # seconds one long poll waits for an end (output is mirrored as often)
BACKOFF = (0.05, 5.0)  # first and longest pause between delivery attempts
CLOSE_SECONDS = 5.0    # how long closing waits for a request in flight
SUBMIT_BATCH = 200     # jobs sent in one request (and committed at once by the agent)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def owner_of(database: str) -> str:
    """This side's identity towards agents: stable for one database on one machine, so
    that a restarted server (or `jaz run --resume`) is the same owner again."""
    import socket

    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    host = _UNSAFE.sub("_", socket.gethostname())[:60] or "host"
    return f"{host}:{digest}"


class AgentExecution(Reported):
    def __init__(self, link: Link, job_id: str, attempt: Attempt, spec: dict[str, Any]
                 ) -> None:
        super().__init__()
        self.link = link
        self.job_id = job_id
        self.attempt = attempt
        self.spec = spec
        self.accepted = False
        self.queued_at = time.monotonic()
        self.offsets = [0, 0]

    def stop(self) -> None:
        self.link.stop(self)


class Link:
    """Everything this side has in flight with one agent host."""

    def __init__(self, host: Host, owner: str) -> None:
        self.host = host
        self.ctl = AgentClient(host, owner)
        self.poll = AgentClient(host, owner)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._accepted = threading.Event()
        self._closing = threading.Event()
        self._jobs: dict[str, AgentExecution] = {}
        self._unsent: deque[str] = deque()
        self._stops: set[str] = set()
        self._acks: list[str] = []
        self.online: bool | None = None
        self.last_seen: float | None = None
        self.version: str | None = None
        self.identity: tuple[str, float] = ("", 0.0)   # boot id, agent start (`hello`)
        self.running: int | None = None
        self.error = ""
        self._away_since: float | None = None
        self._reconcile = True   # the poller asks for every job the agent holds first
        self._threads = [threading.Thread(target=self._send_loop, daemon=True,
                                          name=f"host-{host.name}-send"),
                         threading.Thread(target=self._poll_loop, daemon=True,
                                          name=f"host-{host.name}-poll")]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        """Stop the threads; results settled but not yet acknowledged are acknowledged
        now, if the agent answers (else it offers them again to the next link)."""
        self._closing.set()
        self._wake.set()
        self._accepted.set()
        self.poll.abort()   # out of its long poll now, not at its end
        self._threads[0].join(timeout=CLOSE_SECONDS)   # the sender's request in flight
        # the poller too, before its client is closed: between its look at `_closing` and
        # its next call it could open a connection that nobody would close
        self._threads[1].join(timeout=CLOSE_SECONDS)
        with self._lock:
            acks, self._acks = self._acks, []
        if acks:   # (a host just seen answers at once; one away costs a connect timeout)
            try:
                self.ctl.call("ack", ids=acks)
            except JazError:
                pass
        self.ctl.close()
        self.poll.close()

    def idle(self) -> bool:
        """Nothing in flight, no stop or acknowledgement left to send."""
        with self._lock:
            return not (self._jobs or self._stops or self._acks)

    def status(self) -> dict[str, Any]:
        with self._lock:
            jobs = len(self._jobs)
        seen = None if self.last_seen is None else \
            datetime.fromtimestamp(self.last_seen, UTC).astimezone().isoformat()
        return {"online": self.online, "last_seen": seen, "version": self.version,
                "agent_running": self.running, "in_flight": jobs, "error": self.error}

    # ------------------------------------------------------------ from the engine

    def start(self, execution: AgentExecution) -> None:
        with self._lock:
            self._jobs[execution.job_id] = execution
            self._unsent.append(execution.job_id)
        self._wake.set()

    def adopt(self, execution: AgentExecution) -> None:
        """A job sent by an earlier process: asked for at the next poll (`list` first)."""
        execution.accepted = True
        with self._lock:
            self._jobs[execution.job_id] = execution
            self._reconcile = True
        self._accepted.set()

    def stop(self, execution: AgentExecution) -> None:
        with self._lock:
            unsent = execution.job_id in self._unsent
            if unsent:
                self._unsent.remove(execution.job_id)
                self._jobs.pop(execution.job_id, None)
            else:
                self._stops.add(execution.job_id)
        if unsent:
            execution.settle(Outcome(exit_code=None, stopped=True,
                                     error="stopped before it was sent to the agent"))
        self._wake.set()

    # ------------------------------------------------------------ the sender

    def _send_loop(self) -> None:
        backoff = BACKOFF[0]
        greeted = False   # a hello first: the host's version and state from the start
        while not self._closing.is_set():
            woken = self._wake.wait(HEARTBEAT if greeted else 0)
            self._wake.clear()
            if self._closing.is_set():
                return
            try:
                did = self._flush()
                if not greeted or (not did and not woken):
                    self._hello()
                    greeted = True
                backoff = BACKOFF[0]
            except (FingerprintChanged, Refused) as e:
                self._away(e)
                self._fail_unsent(e)
                self._closing.wait(BACKOFF[1])
            except (Unreachable, AgentError) as e:
                self._away(e)
                self._closing.wait(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, BACKOFF[1])
                self._wake.set()   # try again
            except Exception:   # a bug: logged, and the loop goes on
                log.exception("host %s: the sender failed", self.host.name)
                self._closing.wait(BACKOFF[1])
            self._expire()

    def _flush(self) -> bool:
        """Send what waits to be sent; whether there was anything."""
        did = False
        while True:
            with self._lock:   # out of _unsent while in flight: a stop now goes to _stops
                batch = [self._unsent.popleft()
                         for _ in range(min(len(self._unsent), SUBMIT_BATCH))]
                sending = [(i, e) for i in batch if (e := self._jobs.get(i)) is not None]
            if not sending:
                break
            try:   # all in one request and one commit on the agent
                answer = self.ctl.call("submit_many", jobs=[
                    {"id": job_id, "spec": execution.spec} for job_id, execution in sending])
            except AgentError as e:   # a no to these jobs (not to the link): they fail
                with self._lock:
                    for job_id, _ in sending:
                        self._jobs.pop(job_id, None)
                for _, execution in sending:
                    execution.settle(Outcome(exit_code=None,
                                             error=f"the agent refused the job: {e.message}"))
                continue
            except JazError:
                with self._lock:   # not known to be there: sent again (idempotent by id)
                    self._unsent.extendleft(reversed(batch))
                raise
            self._seen()
            for (job_id, execution), view in zip(sending, answer.get("jobs", []),
                                                 strict=False):
                if "error" in view:
                    with self._lock:
                        self._jobs.pop(job_id, None)
                    execution.settle(Outcome(exit_code=None, error=(
                        f"the agent refused the job: {view['error']}")))
                    continue
                execution.pid = (view.get("job") or {}).get("pid")
                execution.accepted = True
            self._accepted.set()
            did = True
        with self._lock:
            stops, self._stops = self._stops, set()
        for job_id in stops:
            try:
                self.ctl.call("stop", id=job_id)
            except (Unreachable, Refused):
                with self._lock:
                    self._stops.add(job_id)
                raise
            except AgentError:
                pass   # unknown there: nothing to stop
            did = True
        with self._lock:
            acks, self._acks = self._acks, []
        if acks:
            try:
                self.ctl.call("ack", ids=acks)
            except (Unreachable, Refused):
                with self._lock:
                    self._acks.extend(acks)
                raise
            did = True
        return did

    def hello(self) -> tuple[str, float]:
        """Say hello now: the agent's identity (boot id, start time of its process)."""
        self._hello()
        return self.identity

    def _hello(self) -> None:
        answer = self.ctl.call("hello")
        self.identity = (str(answer.get("boot_id", "")), float(answer.get("started") or 0))
        self.version = str(answer.get("version", ""))
        running = answer.get("running")
        self.running = running if isinstance(running, int) else None
        self._seen()

    def _seen(self) -> None:
        if self.online is not True:
            log.info("host %s: online", self.host.name)
        self.online = True
        self.last_seen = time.time()
        self.error = ""
        self._away_since = None

    def _away(self, error: JazError) -> None:
        if self.online is not False or self.error != error.message:
            log.warning("host %s: %s", self.host.name, error.message)
        # not trusted yet: never asked, so neither online nor offline as far as we know
        self.online = None if isinstance(error, NotTrusted) else False
        self.error = error.message
        if self._away_since is None:
            self._away_since = time.monotonic()

    def _fail_unsent(self, error: JazError) -> None:
        with self._lock:
            failed = [self._jobs.pop(i) for i in self._unsent if i in self._jobs]
            self._unsent.clear()
        for execution in failed:
            execution.settle(Outcome(exit_code=None, error=f"{error.message}; the job was "
                                                           "not sent"))

    def _expire(self) -> None:
        """A host away past `offline_after`: its jobs end in error, naming it."""
        since = self._away_since
        if since is None or time.monotonic() - since < self.host.offline_after:
            return
        with self._lock:
            gone = list(self._jobs.values())
            self._jobs.clear()
            self._unsent.clear()
        away = format_duration(self.host.offline_after)
        for execution in gone:
            what = "its end is unknown (it may still run there)" if execution.accepted \
                else "the job was not sent"
            execution.settle(Outcome(exit_code=None, error=(
                f"host {self.host.name!r} unreachable for more than {away}: {what}; "
                f"last error: {self.error}")))

    # ------------------------------------------------------------ the poller

    def _poll_loop(self) -> None:
        backoff = BACKOFF[0]
        while not self._closing.is_set():
            with self._lock:
                ids = [i for i, e in self._jobs.items() if e.accepted]
            if not ids:
                self._accepted.wait(HEARTBEAT)
                self._accepted.clear()
                continue
            try:
                with self._lock:
                    fresh, self._reconcile = self._reconcile, False
                if fresh:
                    answer = self.poll.call("list")
                    held = {v["id"]: v for v in answer.get("jobs", [])}
                    for job_id in ids:
                        view = held.get(job_id)
                        if view is not None and view.get("state") == "ended":
                            self._ended(view)
                        elif view is None:
                            self._unheld(job_id)
                answer = self.poll.call("wait", ids=ids, timeout=POLL)
                self._seen()
                for view in answer.get("jobs", []):
                    self._ended(view)
                for job_id, sizes in (answer.get("sizes") or {}).items():
                    execution = self._jobs.get(job_id)
                    if execution is not None and isinstance(sizes, list):
                        self._mirror(execution, sizes)
                backoff = BACKOFF[0]
            except (Unreachable, Refused, AgentError) as e:
                self._reconcile = True   # a new connection: ask for everything again
                self._away(e)
                self._closing.wait(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, BACKOFF[1])
            except Exception:
                log.exception("host %s: the poller failed", self.host.name)
                self._reconcile = True
                self._closing.wait(BACKOFF[1])

    def _unheld(self, job_id: str) -> None:
        """Not among the jobs the agent holds for us: acknowledged already (by a process
        that died before its run recorded the result: the result is asked for again), or
        unknown to the agent."""
        try:
            view = self.poll.call("get", id=job_id).get("job") or {}
        except AgentError:
            view = {}
        if view.get("state") == "ended":
            view["sizes"] = [None, None]
            self._ended(view)
        else:
            self._lost(job_id)

    def _lost(self, job_id: str) -> None:
        """Unknown to the agent: never delivered (the process that sent it died first), or
        the agent's database was removed."""
        with self._lock:
            execution = self._jobs.pop(job_id, None)
        if execution is not None:
            execution.settle(Outcome(exit_code=None, error=(
                f"host {self.host.name!r}: the agent does not know this job (it was never "
                "delivered, or the agent's database was removed)")))

    def _ended(self, view: dict[str, Any]) -> None:
        job_id = str(view.get("id"))
        with self._lock:
            execution = self._jobs.get(job_id)
        if execution is not None:
            self._mirror(execution, view.get("sizes") or [None, None])
            result = view.get("result") or {}
            outputs = result.get("outputs") or {}
            outcome = Outcome(exit_code=result.get("exit_code"),
                              outputs={str(k): str(v) for k, v in outputs.items()},
                              stdout_tail=str(result.get("stdout_tail", "")),
                              stderr_tail=str(result.get("stderr_tail", "")),
                              error=str(result.get("error", "")),
                              stopped=bool(result.get("stopped")))
            with self._lock:
                self._jobs.pop(job_id, None)
                self._acks.append(job_id)   # before the engine hears: `close` sends it
            execution.settle(outcome)
        else:
            with self._lock:
                self._acks.append(job_id)
        self._wake.set()

    def _mirror(self, execution: AgentExecution, sizes: list[Any]) -> None:
        """Copy what is new in the job's output on the agent into the local log files."""
        paths = (execution.attempt.stdout_path, execution.attempt.stderr_path)
        for index, stream in enumerate(("stdout", "stderr")):
            size = sizes[index] if index < len(sizes) else None
            while size is None or execution.offsets[index] < size:
                chunk = self.poll.call("read", id=execution.job_id, stream=stream,
                                       offset=execution.offsets[index], limit=CHUNK)
                data = base64.b64decode(chunk.get("data", ""))
                if data:
                    with open(paths[index], "ab") as f:
                        f.write(data)
                step = int(chunk.get("next", execution.offsets[index]))
                if step <= execution.offsets[index]:
                    break
                execution.offsets[index] = step
                size = int(chunk.get("size", 0)) if size is None else size


class AgentHosts(Executor):
    """The executor of `run` jobs on agent hosts: one link per host, made with its first
    job (or all at once with `connect_all`, for a server's heartbeats)."""

    def __init__(self, hosts: dict[str, Host], owner: str) -> None:
        self.hosts = hosts
        self.owner = owner
        self._links: dict[str, Link] = {}
        self._lock = threading.Lock()
        self._ssh: Any = None   # jaz.hosts.sshexec.SshHosts, made with the first SSH job
        self._jaz: JazAgents | None = None   # JAZ agent hosts (jazagent.py), made on first use
        self._jaz_heartbeat = False
        self._retired: list[Link] = []   # of hosts changed or removed by a reload
        self._retirer: threading.Thread | None = None
        self._closing = threading.Event()

    def ssh(self) -> Any:
        """The SSH hosts' connections (paramiko is imported only now)."""
        with self._lock:
            if self._ssh is None:
                from jaz.hosts.sshexec import SshHosts

                self._ssh = SshHosts(self.hosts, self.job_id)
            return self._ssh

    def jaz(self) -> JazAgents:
        """The executor of the JAZ agent hosts, and its listener (bound on first use)."""
        with self._lock:
            if self._jaz is None:
                from jaz.hosts.jazagent import JazAgents

                self._jaz = JazAgents(self.hosts, self.owner, heartbeat=self._jaz_heartbeat)
            return self._jaz

    def link(self, name: str) -> Link:
        with self._lock:
            link = self._links.get(name)
            if link is None:
                link = self._links[name] = Link(self.hosts[name], self.owner)
            return link

    def connect_all(self) -> None:
        for name, host in self.hosts.items():
            if host.agent is not None:
                self.link(name)
        if any(h.ssh is not None for h in self.hosts.values()):
            self.ssh().connect_all()
        if any(h.jaz_agent for h in self.hosts.values()):
            self._jaz_heartbeat = True
            self.jaz().connect_all()

    def reload(self, hosts: dict[str, Host]) -> tuple[list[str], list[str], list[str]]:
        """Use `hosts` from now on (a reloaded hosts file): the names added, changed and
        removed. A job in flight keeps its link, with the host as it was defined when
        the job started, until it has ended and been acknowledged; new jobs use the new
        definition. The SSH and JAZ agent executors get the new hosts too: those added
        are connected now (what they keep of changed ones: docs/agent.md)."""
        with self._lock:
            old = dict(self.hosts)
            added = sorted(set(hosts) - set(old))
            removed = sorted(set(old) - set(hosts))
            changed = sorted(n for n in set(hosts) & set(old) if hosts[n] != old[n])
            for name in removed + changed:
                link = self._links.pop(name, None)
                if link is not None:
                    self._retired.append(link)
            self.hosts = dict(hosts)   # a new dict: readers never see one half changed
            if self._ssh is not None:
                self._ssh.hosts = self.hosts
            if self._jaz is not None:
                self._jaz.hosts = {n: h for n, h in hosts.items() if h.jaz_agent}
            retiring = bool(self._retired) and self._retirer is None
            if retiring:
                self._retirer = threading.Thread(target=self._retire, daemon=True,
                                                 name="hosts-retire")
        if retiring:
            assert self._retirer is not None
            self._retirer.start()
        self.connect_all()
        return added, changed, removed

    def _retire(self) -> None:
        """Close the links of hosts changed or removed once nothing is in flight on them."""
        while True:
            with self._lock:
                done = [link for link in self._retired if link.idle()]
                self._retired = [link for link in self._retired if link not in done]
                if not self._retired:
                    self._retirer = None
            for link in done:
                link.close()
            if not self._retired or self._closing.wait(1.0):
                return

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            links = list(self._links.values()) + self._retired
            ssh = self._ssh
            jaz = self._jaz
        for link in links:
            link.close()
        if ssh is not None:
            ssh.close()
        if jaz is not None:
            jaz.close()

    def status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            links = dict(self._links)
            ssh = self._ssh
            jaz = self._jaz
        out = {name: link.status() for name, link in links.items()}
        if ssh is not None:
            out.update(ssh.status())
        return out if jaz is None else {**out, **jaz.status()}

    def adopt(self, run_id: int, job: Job, host: str, stem: str) -> Execution | None:
        """A job sent before this process (a restarted server, `jaz run --resume`): its
        agent is asked for it and its result, as for one sent now (each host's instance
        of a fan-out job)."""
        output = Path(stem + ".vars")
        attempt = Attempt(run_id=run_id, jobnet="", job=job, attempt=0, host=host, env={},
                          cwd=output.parent, base_dir=output.parent,
                          stdout_path=Path(stem + ".out"), stderr_path=Path(stem + ".err"),
                          output_path=output)
        if fans_out(job):
            from jaz.hosts.fanout import FanOutExecution, chosen, instance

            try:
                names = chosen(self, attempt)
            except ActionError:
                return None
            parts: dict[str, Execution | None] = {
                h: self._adopt_one(instance(attempt, h)) for h in names}
            return FanOutExecution(attempt, names, self._start_one, fresh=False).begin(
                {h: e for h, e in parts.items() if e is not None})
        if host not in self.hosts:
            return None
        return self._adopt_one(attempt)

    def _adopt_one(self, attempt: Attempt) -> Execution | None:
        if attempt.host in self.hosts and self.hosts[attempt.host].jaz_agent:
            try:
                return self.jaz().adopt_one(attempt)
            except JazError as e:   # (its listener cannot listen)
                return Ended(Outcome(exit_code=None, error=(
                    f"{e.message}; the job may still run on host "
                    f"{attempt.host!r}: take it back once that is fixed (resume)")))
        if attempt.host not in self.hosts:
            return None
        if self.hosts[attempt.host].ssh is not None:   # followed from its files there
            execution: Execution = self.ssh().adopt(attempt)
            return execution
        agent = AgentExecution(self.link(attempt.host), self.job_id(attempt), attempt, {})
        for index, path in enumerate((attempt.stdout_path, attempt.stderr_path)):
            try:   # what was mirrored before (exact unless the job has secrets)
                agent.offsets[index] = path.stat().st_size
            except OSError:
                pass
        agent.link.adopt(agent)
        return agent

    def job_id(self, attempt: Attempt) -> str:
        """The job's id on its agent: the same for the same execution of the same job of
        the same database, whichever process asks."""
        digest = hashlib.sha256(f"{self.owner}\0{attempt.output_path}".encode()).hexdigest()
        stem = Path(str(attempt.output_path)).stem   # NAME.N: the job's execution
        return _UNSAFE.sub("_", f"{attempt.run_id}.{stem}")[:150] + "-" + digest[:12]

    def start(self, attempt: Attempt) -> Execution:
        if isinstance(attempt.job.action, TransferAction):
            from jaz.hosts.transfer import TransferExecution

            return TransferExecution(self.hosts, self.owner, attempt)
        if fans_out(attempt.job):
            from jaz.hosts.fanout import FanOutExecution, chosen

            return FanOutExecution(attempt, chosen(self, attempt), self._start_one).begin()
        return self._start_one(attempt)

    def _start_one(self, attempt: Attempt) -> Execution:
        job = attempt.job
        action = job.action
        name = (action.host or "local") if isinstance(action, WaitFileAction | RebootAction) \
            else attempt.host
        host = self.hosts.get(name)
        if host is None:
            known = ", ".join(sorted(self.hosts)) or "none"
            raise ActionError(f"unknown host {name!r} (hosts known: {known})",
                              hint="add it to the hosts file as [hosts.NAME] (docs/agent.md)")
        if host.ssh is not None:
            return self._start_ssh(attempt, host)
        if host.jaz_agent is not None:
            if not isinstance(action, RunAction):
                raise ActionError(f"{job.kind!r} jobs cannot run on JAZ agent host "
                                  f"{host.name!r}; only `run` jobs can (docs/migration.md)")
            return self.jaz().start(attempt)
        extra: dict[str, Any] = {}
        if isinstance(action, WaitFileAction):
            script, shell = wait_file_script(action), "/bin/sh"
        elif isinstance(action, RunAction):
            script, shell = action.script, job.shell
        elif isinstance(action, RebootAction):   # the agent runs its own reboot_command
            script, shell = "", "/bin/sh"
            extra["reboot"] = "now" if action.mode == "force" else "after_jobs"
        else:
            raise ActionError(f"{job.kind!r} jobs cannot run on agent host {host.name!r} "
                              "yet; `run`, `wait_file` and `reboot` jobs can")
        job_id = self.job_id(attempt)
        spec = {**extra, "script": script, "shell": shell, "cwd": job.cwd,
                "user": job.user, "stop_command": job.stop_command,
                "env": dict(attempt.env), "secrets": list(attempt.redact),
                "grace": attempt.grace, "run_id": attempt.run_id, "jobnet": attempt.jobnet,
                "job": job.name, "attempt": attempt.attempt}
        for path in (attempt.stdout_path, attempt.stderr_path):
            path.write_bytes(b"")   # there from the start, for `jaz logs -f`
        link = self.link(host.name)
        execution = AgentExecution(link, job_id, attempt, spec)
        if isinstance(action, RebootAction) and action.wait:
            from jaz.hosts.reboot import RebootExecution

            return RebootExecution(execution, link, action.wait)
        link.start(execution)
        return execution


    def _start_ssh(self, attempt: Attempt, host: Host) -> Execution:
        job = attempt.job
        action = job.action
        if isinstance(action, WaitFileAction):
            script, shell = wait_file_script(action), "/bin/sh"
        elif isinstance(action, RunAction):
            script, shell = action.script, job.shell
        elif isinstance(action, RebootAction):
            from jaz.hosts.sshreboot import SshRebootExecution

            reboot: Execution = SshRebootExecution(self.ssh().conn(host.name), attempt)
            return reboot
        else:
            raise ActionError(f"{job.kind!r} jobs cannot run on SSH host {host.name!r}; "
                              "`run`, `wait_file`, `reboot` and `transfer` jobs can")
        if job.user is not None:   # (why not sudo: docs/ssh.md)
            raise ActionError(
                f"user = {job.user!r}: jobs on SSH host {host.name!r} run as the user jaz "
                f"logs in as there; jaz does not switch users on SSH hosts. Add a "
                f"[hosts.NAME] that logs in as {job.user!r} (user = \"{job.user}\", or User "
                "in ~/.ssh/config) and run the job there, or use an agent host",
                hint="docs/ssh.md: `user = ...` on SSH hosts")
        execution: Execution = self.ssh().start(attempt, host, script, shell)
        return execution


def fans_out(job: Job) -> bool:
    """A `run` job with `hosts` naming any host but this one: one instance per host."""
    return job.kind == "run" and bool(job.hosts) and set(job.hosts) != {"local"}


def wait_file_script(action: WaitFileAction) -> str:
    """`wait_file` on an agent host, as a POSIX shell script run like any job there (so it
    is durable, stoppable and reported like one): the first file matching `path` (a glob
    pattern too), $FILE as its output, `delete` and `check` and `timeout` as here."""
    import shlex

    found = ('echo "found $f"; echo "FILE=$f" >> "$JAZ_OUTPUT"; '
             + ("IFS=; for d in $pat; do rm -f -- \"$d\"; done; " if action.delete else "")
             + "exit 0")
    lines = [f"pat={shlex.quote(action.path)}", "IFS="]
    if action.timeout is not None:
        lines.append(f"end=$(( $(date +%s) + {max(1, round(action.timeout))} ))")
    lines += ["while :; do",
              '  for f in $pat; do if [ -e "$f" ]; then ' + found + "; fi; done"]
    if action.check:
        lines.append('  echo "$pat does not exist" >&2; exit 1')
    if action.timeout is not None:
        lines.append(f'  if [ "$(date +%s)" -ge "$end" ]; then echo "$pat did not appear '
                     f'within {action.timeout:g}s" >&2; exit 1; fi')
    lines += [f"  sleep {action.interval:g}", "done"]
    return "\n".join(lines) + "\n"
