"""Several servers on one PostgreSQL database: what they tell each other, through it.

- An operator action on a run that another server drives is written to `jaz_actions`
  for that server, which hears of it (NOTIFY), takes it exactly once and applies it
  through its own driver, then writes how it went and tells the sender (NOTIFY); the
  sender waits for that answer (`send`).
- Every change this server makes to a run or a job is announced (NOTIFY, a few per
  notification); the other servers read the record and put it on their own feed, so
  /stream shows the runs of every server live.
- A heartbeat every second (`jaz_servers.seen_at`): a run whose driver still beats is
  not taken over while that driver opens its database session again.

One connection of its own LISTENs (`Listener`), on a thread; the actions sent here are
applied on a second thread, the changes of the others read on a third, so that neither
waits for the other. The core gives what to do with them (`apply`, `relay`): this
module does not import it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from jaz.engine.store.postgres import ACTIONS, CHANGES, DONE, PostgresStore
from jaz.errors import JazError, NotFound, Refused, StateError, UsageError

log = logging.getLogger("jaz.server")

ANSWER_WAIT = 10.0   # seconds a sender waits for the driving server to answer
PUMP = 0.1           # seconds between two sends of this server's changes, at most
BEAT = 1.0           # seconds between two heartbeats
LOOK = 2.0           # seconds between two looks for actions whose NOTIFY was missed
MOST_BYTES = 7000    # per notification (PostgreSQL takes up to 8000)
_ERRORS: dict[str, type[JazError]] = {cls.__name__: cls for cls in
                                      (StateError, NotFound, Refused, UsageError)}

Key = tuple[str, int, str | None]   # ("run" | "job", run id, job name)


class Cluster:
    def __init__(self, store: PostgresStore, *, apply: Callable[[dict[str, Any]], None],
                 relay: Callable[[str, int, str | None], None]) -> None:
        self.store = store
        self._apply = apply
        self._relay = relay
        self._listener = store.listener()
        self._stop = threading.Event()
        self._out: dict[Key, None] = {}          # changes to announce, in order
        self._out_lock = threading.Lock()
        self._answers = threading.Condition()
        self._answered: set[int] = set()         # actions sent from here, answered
        self._due = threading.Event()            # actions were sent to this server
        self._relayed: queue.Queue[Key] = queue.Queue(10_000)
        self._threads = [threading.Thread(target=target, name=f"jaz-cluster-{name}",
                                          daemon=True)
                         for name, target in (("listen", self._listen),
                                              ("actions", self._take),
                                              ("relay", self._read_changes))]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        self._due.set()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=2)
        self._listener.close()

    # ------------------------------------------------------------ changes

    def changed(self, kind: str, run_id: int, job: str | None) -> None:
        """A change made here, for the other servers' feeds (sent within PUMP)."""
        with self._out_lock:
            self._out[(kind, run_id, job)] = None

    def _packed(self, keys: list[Key]) -> list[str]:
        out: list[str] = []
        part: list[Key] = []
        size = 0
        for key in keys:
            size += len(key[2] or "") + 24
            part.append(key)
            if size > MOST_BYTES - 200:
                out.append(json.dumps({"s": self.store.server_id, "c": part}))
                part, size = [], 0
        if part:
            out.append(json.dumps({"s": self.store.server_id, "c": part}))
        return out

    def _listen(self) -> None:
        next_beat = 0.0
        failing = False
        while not self._stop.is_set():
            with self._out_lock:
                keys, self._out = list(self._out), {}
            fresh = self._listener.fresh
            beat = time.monotonic() >= next_beat
            try:
                notes = self._listener.pump(PUMP, [(CHANGES, p) for p in self._packed(keys)],
                                            beat=beat)
            except Exception as e:
                with self._out_lock:   # sent once the connection is back
                    self._out = {**dict.fromkeys(keys), **self._out}
                if not failing:
                    log.warning("lost the database connection that listens to the other "
                                "servers (%s); opening it again", str(e).strip() or e)
                failing = True
                self._stop.wait(1.0)
                continue
            if failing:
                log.info("listening to the other servers again")
            failing = False
            if beat:
                next_beat = time.monotonic() + BEAT
            if fresh:   # what was sent while nobody listened
                self._due.set()
                with self._answers:
                    self._answers.notify_all()
            for channel, payload in notes:
                self._heard(channel, payload)

    def _heard(self, channel: str, payload: str) -> None:
        me = self.store.server_id
        if channel == ACTIONS:
            if payload == me:
                self._due.set()
        elif channel == DONE:
            sender, _, action_id = payload.partition(" ")
            if sender == me and action_id.isdigit():
                with self._answers:
                    self._answered.add(int(action_id))
                    self._answers.notify_all()
        elif channel == CHANGES:
            try:
                data = json.loads(payload)
                if data["s"] == me:
                    return
                for kind, run_id, job in data["c"]:
                    self._relayed.put_nowait((str(kind), int(run_id), job))
            except queue.Full:
                pass   # a feed loses old changes rather than fall behind
            except (ValueError, KeyError, TypeError):
                log.debug("a change notification not understood: %r", payload[:200])

    def _read_changes(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._relayed.get(timeout=0.5)
            except queue.Empty:
                continue
            keys = {first: None}
            while True:   # the same record changed twice is read once
                try:
                    keys[self._relayed.get_nowait()] = None
                except queue.Empty:
                    break
            for kind, run_id, job in keys:
                try:
                    self._relay(kind, run_id, job)
                except NotFound:
                    pass   # gone meanwhile (purged)
                except Exception:
                    log.warning("a change of run %s made by another server could not be "
                                "read", run_id, exc_info=True)

    # ------------------------------------------------------------ actions

    def _take(self) -> None:
        """Apply the actions sent to this server, each once, in the order sent."""
        while not self._stop.is_set():
            self._due.wait(LOOK)
            self._due.clear()
            while not self._stop.is_set():
                try:
                    row = self.store.take_action()
                except Exception:
                    log.warning("could not look for actions sent to this server",
                                exc_info=True)
                    break
                if row is None:
                    break
                self._answer(row)

    def _answer(self, row: dict[str, Any]) -> None:
        error = message = hint = ""
        try:
            self._apply(row)
        except JazError as e:
            error, message, hint = type(e).__name__, e.message, e.hint or ""
        except Exception as e:
            log.exception("the %s of run %s sent by another server failed", row["action"],
                          row["run_id"])
            error, message = "JazError", f"the {row['action']} failed on the server that " \
                                         f"drives run {row['run_id']}: {e}"
        log.info("%s of run %s%s by %s, sent through %s: %s", row["action"],
                 row["run_id"], f" job {row['job']}" if row["job"] else "", row["user"],
                 "the database" if row["sender"] == self.store.server_id
                 else "another server", message or "done")
        for attempt in range(5):   # its sender waits for this
            try:
                self.store.finish_action(int(row["id"]), error=error, message=message,
                                         hint=hint)
                return
            except Exception:
                if attempt == 4:
                    log.exception("could not record how action %s went", row["id"])
                self._stop.wait(0.5)

    def send(self, server: dict[str, Any], run_id: int, job: str | None, action: str, *,
             user: str, downstream: bool = False, reason: str = "",
             wait: float = ANSWER_WAIT) -> None:
        """Have `server` (the run's driver) apply an operator action, and wait for its
        answer: raises what it raised there; StateError if it does not answer."""
        action_id = self.store.send_action(server["id"], run_id, job, action, user=user,
                                           downstream=downstream, reason=reason)
        deadline = time.monotonic() + wait
        who = f"server {server['name']}" + (f" ({server['url']})" if server["url"] else "")
        while True:
            with self._answers:
                if action_id not in self._answered:
                    self._answers.wait(max(0.0, min(0.5, deadline - time.monotonic())))
                self._answered.discard(action_id)
            row = self.store.action(action_id)
            if row["status"] in ("done", "refused"):
                break
            if time.monotonic() >= deadline:
                if self.store.withdraw_action(action_id):
                    raise StateError(f"{who} drives run {run_id} but did not answer within "
                                     f"{wait:g} s: nothing was done",
                                     hint="try again; a server that is gone has its runs "
                                          "taken over by the one that schedules")
                raise StateError(f"{who}, which drives run {run_id}, took the {action} but "
                                 f"has not said how it went",
                                 hint=f"look at the run (jaz status {run_id}) before "
                                      f"trying again")
        if row["status"] == "refused":
            cls = _ERRORS.get(row["error"], JazError)
            raise cls(row["message"], hint=row["hint"] or None)
