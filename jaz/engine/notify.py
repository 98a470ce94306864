"""Notifications (SPEC §4 `[notify]`): a command and/or a Zabbix trapper, told about
failed runs and jobs, runs halted in `error`, and late runs.

```toml
[notify]
command = "/usr/local/bin/page-oncall"      # run with /bin/sh -c, the event in JAZ_* vars
zabbix = { server = "zbx:10051", host = "jaz", key = "jaz.event" }
events = ["run_failed", "run_error"]        # default: all four
timeout = "30s"                             # the command's; default 30 s
```

A notification is a side effect of the engine's work, never part of it: `send` logs
every failure on the "jaz.notify" logger and returns; nothing here raises into the
engine, and everything is bounded by a timeout. The event goes to the command in
environment variables only, never in argv, where any user could read it in `ps`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from jaz.engine.checks import (
    Collector,
    check_duration,
    check_str,
    check_table,
    check_unknown,
    did_you_mean,
    got,
    one_of,
    parse_toml,
    quote,
)
from jaz.errors import JazError, JobnetInvalid

log = logging.getLogger("jaz.notify")

DEFAULT_TIMEOUT = 30.0
OUTPUT_TAIL = 2048


class EventKind(StrEnum):
    RUN_FAILED = "run_failed"
    JOB_FAILED = "job_failed"
    RUN_ERROR = "run_error"
    LATE = "late"


ALL_EVENTS = frozenset(EventKind)
NOTIFY_KEYS = {"command", "zabbix", "events", "timeout"}


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something an operator should hear about; `job` is None for run-level events."""

    kind: EventKind
    jobnet: str
    run_id: int
    status: str
    message: str
    at: datetime
    job: str | None = None

    def as_json(self) -> str:
        """One line of JSON: what Zabbix receives as the item's value."""
        return json.dumps({"event": str(self.kind), "jobnet": self.jobnet, "run_id": self.run_id,
                           "job": self.job, "status": self.status, "message": self.message,
                           "time": self.at.isoformat(timespec="seconds")},
                          ensure_ascii=False, separators=(",", ":"))

    def environ(self) -> dict[str, str]:
        return {"JAZ_EVENT": str(self.kind), "JAZ_JOBNET": self.jobnet,
                "JAZ_RUN_ID": str(self.run_id), "JAZ_JOB": self.job or "",
                "JAZ_STATUS": self.status, "JAZ_MESSAGE": self.message,
                "JAZ_TIME": self.at.isoformat(timespec="seconds")}


@dataclass(frozen=True, kw_only=True)
class ZabbixTarget:
    server: str
    host: str
    key: str


@dataclass(frozen=True, kw_only=True)
class NotifyConfig:
    command: str | None = None
    zabbix: ZabbixTarget | None = None
    events: frozenset[EventKind] = field(default_factory=lambda: ALL_EVENTS)
    timeout: float = DEFAULT_TIMEOUT


# ------------------------------------------------------------------ parsing


def parse_notify(c: Collector, value: Any) -> NotifyConfig | None:
    """The `[notify]` table of a server config; None (with problems in `c`) if it is bad."""
    t = check_table(c, value, job=None, field="notify")
    if t is None:
        return None
    before = len(c.problems)
    check_unknown(c, t, NOTIFY_KEYS, job=None, where="[notify]", prefix="notify.")
    command = check_str(c, t["command"], job=None, field="notify.command") \
        if "command" in t else None
    zabbix = _zabbix_target(c, t["zabbix"]) if "zabbix" in t else None
    events = _events(c, t["events"]) if "events" in t else ALL_EVENTS
    timeout = DEFAULT_TIMEOUT
    if "timeout" in t:
        seconds = check_duration(c, t["timeout"], job=None, field="notify.timeout")
        if seconds is not None and seconds <= 0:
            c.add(f"must be longer than 0s, got {quote(t['timeout'])}", field="notify.timeout")
        timeout = seconds or timeout
    if "command" not in t and "zabbix" not in t:
        c.add("[notify] needs a command, a zabbix table or both", field="notify")
    if len(c.problems) > before:
        return None
    return NotifyConfig(command=command, zabbix=zabbix, events=events, timeout=timeout)


def load_notify(text: str, file: str = "<config>") -> NotifyConfig | None:
    """`[notify]` of a whole config file's text; None when it has none."""
    data = parse_toml(text, file)
    if "notify" not in data:
        return None
    c = Collector(file, text)
    config = parse_notify(c, data["notify"])
    if c.problems or config is None:
        raise JobnetInvalid(c.problems)
    return config


def _zabbix_target(c: Collector, value: Any) -> ZabbixTarget | None:
    from jaz.engine.zabbix import parse_server

    t = check_table(c, value, job=None, field="notify.zabbix")
    if t is None:
        return None
    check_unknown(c, t, {"server", "host", "key"}, job=None, where="notify.zabbix",
                  prefix="notify.zabbix.")
    missing = [k for k in ("server", "host", "key") if k not in t]
    if missing:
        c.add(f"notify.zabbix needs {', '.join(missing)}", field="notify.zabbix")
        return None
    server, host, key = (check_str(c, t[k], job=None, field=f"notify.zabbix.{k}")
                         for k in ("server", "host", "key"))
    if server is not None:
        try:
            parse_server(server)
        except JazError as e:
            c.add(e.message + (f" ({e.hint})" if e.hint else ""), field="notify.zabbix.server")
            return None
    if server is None or host is None or key is None:
        return None
    return ZabbixTarget(server=server, host=host, key=key)


def _events(c: Collector, value: Any) -> frozenset[EventKind]:
    names = one_of(str(k) for k in EventKind)
    if not isinstance(value, list):
        c.add(f"expected a list of events ({names}), got {got(value)}",
              field="notify.events")
        return ALL_EVENTS
    if not value:
        c.add(f"an empty list sends nothing; name some of {names}, or remove [notify]",
              field="notify.events")
    found: set[EventKind] = set()
    for i, item in enumerate(value):
        if isinstance(item, str) and item in ALL_EVENTS:
            found.add(EventKind(item))
            continue
        if not isinstance(item, str):
            c.add(f"expected event names ({names}), got {got(item)}",
                  field=f"notify.events[{i}]")
            continue
        c.add(f"unknown event {quote(item)}"
              + (did_you_mean(item, {str(k) for k in EventKind}) or f"; events are {names}"),
              field=f"notify.events[{i}]")
    return frozenset(found)


# ------------------------------------------------------------------ sending


class Notifier:
    """Sends events as configured. Safe to call from any thread; `send` blocks for at most
    the command's timeout plus the Zabbix timeouts, `submit` not at all."""

    def __init__(self, config: NotifyConfig, *, environ: Mapping[str, str] | None = None,
                 zabbix_connect_timeout: float = 5.0, zabbix_read_timeout: float = 5.0) -> None:
        self.config = config
        base = os.environ if environ is None else environ
        # the server's secrets and token are for jobs that ask for them, not for this command
        self._base_env = {k: v for k, v in base.items()
                          if not k.startswith("JAZ_SECRET_") and k != "JAZ_TOKEN"}
        self._connect_timeout = zabbix_connect_timeout
        self._read_timeout = zabbix_read_timeout

    def wants(self, event: Event) -> bool:
        return event.kind in self.config.events

    def send(self, event: Event) -> None:
        if not self.wants(event):
            return
        if self.config.command:
            try:
                self._run_command(self.config.command, event)
            except Exception:
                log.exception("notify command for %s of run %s failed", event.kind,
                              event.run_id)
        if self.config.zabbix is not None:
            try:
                self._send_zabbix(self.config.zabbix, event)
            except JazError as e:
                log.warning("notify: Zabbix did not get %s of run %s: %s", event.kind,
                            event.run_id, e)
            except Exception:
                log.exception("notify: sending %s of run %s to Zabbix failed", event.kind,
                              event.run_id)

    def submit(self, event: Event) -> threading.Thread:
        """`send` in a daemon thread, for callers that must not wait (the engine's driver)."""
        t = threading.Thread(target=self.send, args=(event,), daemon=True,
                             name=f"jaz-notify-{event.run_id}")
        t.start()
        return t

    def _run_command(self, command: str, event: Event) -> None:
        timeout = self.config.timeout
        env = {**self._base_env, **event.environ()}
        # output to a file, not a pipe: a grandchild that keeps a pipe open would hold us
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(["/bin/sh", "-c", command], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                log.warning("notify command for %s of run %s timed out after %gs and was "
                            "killed: %s", event.kind, event.run_id, timeout, command)
                return
            out.seek(0, os.SEEK_END)
            size = out.tell()
            out.seek(max(0, size - OUTPUT_TAIL))
            tail = out.read().decode("utf-8", errors="replace").strip()
        if code != 0:
            log.warning("notify command for %s of run %s exited %s: %s%s", event.kind,
                        event.run_id, code, command, f"\n{tail}" if tail else "")
        else:
            log.debug("notify command for %s of run %s done%s", event.kind, event.run_id,
                      f": {tail}" if tail else "")

    def _send_zabbix(self, target: ZabbixTarget, event: Event) -> None:
        from jaz.engine import zabbix

        item = zabbix.Item(host=target.host, key=target.key, value=event.as_json(),
                           clock=int(event.at.timestamp()))
        reply = zabbix.send(target.server, [item], connect_timeout=self._connect_timeout,
                            read_timeout=self._read_timeout)
        log.debug("notify: Zabbix got %s of run %s: %s", event.kind, event.run_id, reply.info)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
