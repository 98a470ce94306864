"""`hosts = ["web1", "label:web"]`: one job on several agent or SSH hosts (fan-out).

One instance per selected host (names and `label:NAME` selectors, resolved against
the hosts file when the job starts), at most the job's `fan_out` running at once; the job
succeeds when every instance succeeds. Each instance is an ordinary remote job (its own id,
logs `NAME.N@HOST.out/.err`, durable on its agent, adopted after a restart); the job's
own record carries the per-host results in its outputs:

- `HOST.status` (succeeded, failed, stopped, error), `HOST.exit_code`, and
  `HOST.NAME` for each output the instance published;
- a plain `NAME` for an output every instance published with the same value.

Its stdout gets one block per host as each ends (`==> HOST: exit 0 <==` and the
host's output), so `jaz logs -f` shows the hosts' results as they come.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from jaz.engine.executors.base import Attempt, Execution, Outcome, Reported
from jaz.errors import ActionError
from jaz.hosts.config import Host, select


class Hosts(Protocol):
    """What a fan-out needs of the executor that makes it (executor.AgentHosts)."""

    hosts: dict[str, Host]


def instance(attempt: Attempt, host: str) -> Attempt:
    """The attempt of one host's instance: the job's logs with @HOST in their names."""
    stem = str(attempt.output_path)[:-len(".vars")]
    return Attempt(run_id=attempt.run_id, jobnet=attempt.jobnet, job=attempt.job,
                   attempt=attempt.attempt, host=host, env=attempt.env, cwd=attempt.cwd,
                   base_dir=attempt.base_dir, stdout_path=Path(f"{stem}@{host}.out"),
                   stderr_path=Path(f"{stem}@{host}.err"),
                   output_path=Path(f"{stem}@{host}.vars"), redact=attempt.redact,
                   grace=attempt.grace)


def chosen(executor: Hosts, attempt: Attempt) -> list[str]:
    """The agent hosts the job's `hosts` select, in order; ActionError when none."""
    wanted = list(attempt.job.hosts)
    unknown = [w for w in wanted if not w.startswith("label:") and w not in executor.hosts]
    if unknown:
        raise ActionError(f"unknown host(s) {', '.join(map(repr, unknown))} in hosts "
                          f"(hosts known: {', '.join(sorted(executor.hosts)) or 'none'})")
    hosts = [h for h in select(executor.hosts, wanted) if h.agent or h.jaz_agent or h.ssh]
    if not hosts:
        raise ActionError(f"hosts = {wanted!r} selects no host")
    return [h.name for h in hosts]


class FanOutExecution(Reported):
    def __init__(self, attempt: Attempt, hosts: list[str],
                 start: Callable[[Attempt], Execution], *, fresh: bool = True) -> None:
        super().__init__()
        self.attempt = attempt
        self._start = start
        self._waiting: deque[str] = deque(hosts)
        self._order = hosts
        self._running: dict[str, Execution] = {}
        self._results: dict[str, Outcome] = {}
        self._stopping = False
        if fresh:   # (an adopted one goes on with the logs it has)
            attempt.stdout_path.write_text(f"on {len(hosts)} hosts: {', '.join(hosts)}\n")
            attempt.stderr_path.write_bytes(b"")

    def begin(self, adopted: dict[str, Execution] | None = None) -> FanOutExecution:
        """Start the first instances (or take those adopted after a restart)."""
        if adopted:
            with self._lock:
                self._waiting.clear()
                self._running.update(adopted)
            for host, execution in adopted.items():
                execution.report(lambda h=host: self._instance_ended(h))  # type: ignore[misc]
        else:
            self._more()
        return self

    def _more(self) -> None:
        while True:
            with self._lock:
                bound = self.attempt.job.fan_out
                if self._stopping or not self._waiting or len(self._running) >= bound:
                    return
                host = self._waiting.popleft()
            try:
                execution = self._start(instance(self.attempt, host))
            except ActionError as e:
                self._record(host, Outcome(exit_code=None, error=e.message))
                continue
            with self._lock:
                self._running[host] = execution
            execution.report(lambda h=host: self._instance_ended(h))  # type: ignore[misc]

    def _instance_ended(self, host: str) -> None:
        with self._lock:
            execution = self._running.pop(host, None)
        if execution is None:
            return
        self._record(host, execution.wait())
        self._more()

    def _record(self, host: str, outcome: Outcome) -> None:
        part = instance(self.attempt, host)
        code = "" if outcome.exit_code is None else f"exit {outcome.exit_code}"
        head = f"==> {host}: {code or outcome.error or 'no exit code'} <==\n"
        with self._lock:
            self._results[host] = outcome
            with open(self.attempt.stdout_path, "a", encoding="utf-8") as out:
                out.write(head + _read(part.stdout_path))
            text = _read(part.stderr_path)
            if text:
                with open(self.attempt.stderr_path, "a", encoding="utf-8") as err:
                    err.write(head + text)
            finished = not self._running and (not self._waiting or self._stopping) \
                and len(self._results) + len(self._waiting) >= len(self._order)
        if finished:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._done.is_set():
                return
            never = list(self._waiting) if self._stopping else []
            for host in never:
                self._results[host] = Outcome(exit_code=None, stopped=True,
                                              error="stopped before it was started")
            self._waiting.clear()
            outcome = combine(self.attempt, self._order, self._results)
        self.settle(outcome)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
        for execution in running:
            execution.stop()
        if not running:
            self._finish()


def combine(attempt: Attempt, order: list[str], results: dict[str, Outcome]) -> Outcome:
    """The job's outcome from its instances': success only when every one succeeded."""
    job = attempt.job
    outputs: dict[str, str] = {}
    failed: list[str] = []
    first_code: int | None = 0
    common: dict[str, str] | None = None
    for host in order:
        r = results[host]
        ok = r.exit_code is not None and not job.failed_exit(r.exit_code) and not r.stopped
        status = "succeeded" if ok else "stopped" if r.stopped else \
            "failed" if r.exit_code is not None else "error"
        outputs[f"{host}.status"] = status
        outputs[f"{host}.exit_code"] = "" if r.exit_code is None else str(r.exit_code)
        for key, value in r.outputs.items():
            outputs[f"{host}.{key}"] = value
        common = dict(r.outputs) if common is None else \
            {k: v for k, v in common.items() if r.outputs.get(k) == v}
        if not ok:
            failed.append(f"{host} ({status}" + (f", exit {r.exit_code}" if r.exit_code
                                                 is not None else "")
                          + (f": {r.error}" if r.error else "") + ")")
            if first_code == 0:
                first_code = r.exit_code
    outputs.update(common or {})
    summary = "".join(f"{h}: {outputs[f'{h}.status']}\n" for h in order)
    stopped = any(results[h].stopped for h in order)
    if not failed:
        return Outcome(exit_code=0, outputs=outputs, stdout_tail=summary)
    return Outcome(exit_code=first_code, outputs=outputs, stdout_tail=summary,
                   stopped=stopped, error=f"failed on {len(failed)} of {len(order)} hosts: "
                                          + "; ".join(failed))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
