"""`jaz server`: the process. Wires the core, the scheduler loop, the folder watcher
and the HTTP API together, and handles signals, root, `--once` and `max_memory`.

Threads: uvicorn serves the API on the main thread; one thread runs the scheduler
(it sleeps until the next fire, or until woken); one watches the folders (inotify,
`jaz.server.watch`) and keeps house (max_memory, keep_days); one drives every run
(`jaz.engine.runner.Driver`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from jaz.engine.model import RunState
from jaz.errors import Refused, UsageError
from jaz.paths import SERVER_URL_FILE, ensure_home
from jaz.server.config import ServerConfig
from jaz.server.watch import FolderWatch

log = logging.getLogger("jaz.server")

RELOAD_EVERY = 2.0          # without inotify: seconds between looks at the folders…
RELOAD_SHARE = 200          # …or longer, so that looking takes at most 1/200 of a CPU…
RELOAD_MAX = 10.0           # …but never longer than this (10,000 files: ~30 ms a look)
FULL_LOOK = 60.0            # with inotify: a look anyway (symlinked files, network mounts)
CHECK_EVERY = 2.0           # seconds between looks at the resident size (max_memory)
PURGE_EVERY = 3600.0        # seconds between purges when keep_days is set


def refuse_root(config: ServerConfig) -> None:
    """Only the long-running daemon refuses root: a server left running as root runs every
    jobnet dropped into its folders as root. The local modes (`jaz run`, `jaz tui
    --local`) are a person trying things, often as root in a container: they warn."""
    if os.geteuid() == 0 and not config.allow_root:
        raise Refused("jaz server refuses to run as root",
                      hint="run it as an unprivileged user, or set allow_root = true in its "
                           "config if you really mean it")


def warn_root(what: str) -> None:
    """One line on stderr when a local mode runs as root (see `refuse_root`)."""
    if os.geteuid() == 0:
        print(f"jaz: warning: {what} runs as root, and so do its jobs", file=sys.stderr)


def setup_logging(verbose: bool, level: str) -> None:
    handler: logging.Handler
    if verbose and sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("jaz")
    root.handlers[:] = [handler]
    root.setLevel("DEBUG" if verbose else level.upper())


def reload_pause(spent: float) -> float:
    """Seconds until the next look at the folders, after one that took `spent` seconds of
    CPU: every RELOAD_EVERY seconds while looking is cheap; with thousands of files
    (a stat each) less often, so that an idle server stays idle."""
    return min(RELOAD_MAX, max(RELOAD_EVERY, spent * RELOAD_SHARE))


def settle() -> None:
    """Move what is loaded (jobnets, calendars, schedules, the API) out of the garbage
    collector's way: a full collection walks every object, ~50 ms with 1,000 jobnets,
    and it fell on fire instants. Called after loading and after each reload."""
    import gc

    gc.collect()
    gc.freeze()


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Daemon:
    def __init__(self, config: ServerConfig, *, once: bool = False,
                 home: Path | None = None) -> None:
        from jaz.server.auth import Tokens, admin_token
        from jaz.server.core import Core
        from jaz.server.scheduler import Scheduler

        self.home = home or ensure_home()
        self.config = config
        self.core = Core(config, interactive=not once)
        self.scheduler = Scheduler(self.core)
        self.token = admin_token(self.home)
        self.tokens = Tokens(config, self.token)
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._uvicorn: Any = None     # the uvicorn.Server while serving
        self._folders: FolderWatch | None = None   # the watch thread's, while it runs
        self._next_purge = 0.0
        self._next_check = time.monotonic() + CHECK_EVERY
        self.url = ""

    # ------------------------------------------------------------ loops

    def _schedule_loop(self) -> None:
        while not self.stopping.is_set():
            if self.core.draining:
                # past max_memory: the runs due now are for another server (PostgreSQL)
                # or the one that follows (restarted, it starts them, late if need be,
                # as `catchup` says)
                self.stopping.wait(1.0)
                continue
            try:
                due = self.scheduler.tick(self.core.clock.now(), hurry=True)
            except Exception:
                log.exception("scheduler tick failed; trying again in a second")
                self.stopping.wait(1.0)
                continue
            wait = max(0.0, (due - self.core.clock.now()).total_seconds())
            self.core.wake.wait(wait)
            self.core.wake.clear()

    def _watch_loop(self) -> None:
        """Reload the folders when inotify says a file in them changed, and every
        FULL_LOOK seconds anyway; a folder not there yet is watched as soon as it is
        (asked every CHECK_EVERY seconds). Without inotify, look every few seconds.
        Between looks, keep house."""
        watch = self._folders = FolderWatch.open()
        pause = RELOAD_EVERY
        try:
            while not self.stopping.is_set():
                try:
                    pause = self._look(watch, pause)
                except Exception:   # never leave the folders and max_memory unwatched
                    log.exception("watching the folders failed; trying again in a second")
                    self.stopping.wait(1.0)
        finally:
            self._folders = None
            if watch is not None:
                watch.close()

    def _look(self, watch: FolderWatch | None, pause: float) -> float:
        """Wait for a change (keeping house meanwhile), then reload; the next pause."""
        due = time.monotonic() + (FULL_LOOK if watch is not None else pause)
        while (left := due - time.monotonic()) > 0:
            if watch is None:
                self.stopping.wait(min(CHECK_EVERY, left))
            # a new watch: what changed in its folder before is not known
            elif watch.follow(self.core.registry.folders()) or \
                    watch.wait(min(CHECK_EVERY, left)):
                break
            if self.stopping.is_set():
                return pause
            self._keep_house()
        spent = time.thread_time()
        self.reload()
        self._keep_house()
        return reload_pause(time.thread_time() - spent)

    def _keep_house(self) -> None:
        """At most every CHECK_EVERY seconds (the first time CHECK_EVERY after the
        start), however often the folders change."""
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + CHECK_EVERY
        self._check_memory()
        if self.config.keep_days and time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY
            self.purge()

    def purge(self) -> None:
        assert self.config.keep_days is not None
        before = self.core.clock.now() - timedelta(days=self.config.keep_days)
        try:
            removed = self.core.service.purge(before, user="keep_days")
        except Exception:
            log.exception("purging old runs failed")
            return
        if removed:
            log.info("purged %d runs that ended before %s (keep_days = %d)", len(removed),
                     before.isoformat(timespec="seconds"), self.config.keep_days)

    def reload(self, signalled: bool = False) -> None:
        """The folders, and the hosts file (on SIGHUP, or when it changed)."""
        try:
            self.core.reload_hosts(always=signalled)
        except Exception:
            log.exception("reloading the hosts file failed")
        try:
            changed = self.core.registry.reload()
        except Exception:
            log.exception("reloading the folders failed")
            return
        if changed:
            settle()
            self.core.wake.set()

    def _check_memory(self) -> None:
        limit = self.config.max_memory
        if limit and not self.core.draining and resident_bytes() > limit:
            log.warning("resident memory %d bytes passed max_memory %d: taking no new work, "
                        "exiting when the running runs end", resident_bytes(), limit)
            self.core.draining = True
            self.core.store.resign()   # PostgreSQL: another server schedules from now on
            threading.Thread(target=self._drain, name="drain", daemon=True).start()

    def _drain(self) -> None:
        while self.core.running() and not self.stopping.wait(0.5):
            pass
        self.stop()

    def start_threads(self) -> None:
        for target, name in ((self._schedule_loop, "scheduler"), (self._watch_loop, "watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        self.core.closing.set()
        self.core.wake.set()
        if self._folders is not None:
            self._folders.wake()
        server = self._uvicorn
        if server is not None:
            server.should_exit = True
            server.wake()

    # ------------------------------------------------------------ serve

    def serve(self) -> int:
        import uvicorn

        from jaz.server.api import create_app
        from jaz.server.http import Server

        sock = self._listen()
        self.core.recover()
        self.core.spawning.warm()
        app = create_app(self.core, self.tokens)
        server = Server(uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=5), closing=self.core.closing)
        # before the threads start: a stop() from one of them (max_memory) must reach it
        self._uvicorn = server
        self.start_threads()
        settle()
        originals = {sig: signal.getsignal(sig)
                     for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(
            target=self.reload, args=(True,)).start())
        # uvicorn takes SIGTERM/SIGINT while it serves and, once shut down, raises the
        # signal again for the handler in place before it: ours, so that we clean up
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        log.info("jaz server listening on %s (%d jobnets, database %s)", self.url,
                 len(self.core.registry.all()), self.core.store.path)
        try:
            server.run(sockets=[sock])   # returns on SIGINT/SIGTERM (uvicorn's handlers)
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
            self.stop()
            self._forget_url()
            sock.close()
        log.info("jaz server stopped")
        return 0

    def serve_in_thread(self) -> threading.Thread:
        """Serve from a thread, with no signal handlers (`jaz tui --local`): `stop()`
        ends it. Returns once the API answers."""
        import uvicorn

        from jaz.server.api import create_app
        from jaz.server.http import Server

        sock = self._listen()
        self.core.recover()
        self.core.spawning.warm()
        server = Server(uvicorn.Config(
            create_app(self.core, self.tokens), log_config=None, access_log=False,
            lifespan="off", timeout_graceful_shutdown=2))
        self._uvicorn = server
        self.start_threads()

        def run() -> None:
            try:
                server.run(sockets=[sock])
            finally:
                sock.close()

        thread = threading.Thread(target=run, name="api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)   # uvicorn has no event for "started"
        if not server.started:
            self.stop()
            raise UsageError("the in-process server did not start",
                             hint="run `jaz server -v` to see why")
        return thread

    def _listen(self) -> socket.socket:
        host, port = self.config.listen_host, self.config.listen_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP spelt out: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP, and without it a keep-alive client waits ~40 ms (Nagle + delayed ACK) for
        # every response that uvicorn writes in two parts
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise UsageError(f"cannot listen on {self.config.listen}: {e.strerror}",
                             hint="another jaz server may be running; stop it, or set "
                                  "another `listen` address in the config") from None
        sock.listen(128)
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        local = host in ('0.0.0.0', '')  # noqa: S104 - only to say where clients go
        self.url = f"http://{'127.0.0.1' if local else shown}:{port}"
        path = self.home / SERVER_URL_FILE
        self.core.announce(self.url)   # for the other servers on the database
        path.write_text(self.url + "\n")
        os.chmod(path, 0o600)
        return sock

    def _forget_url(self) -> None:
        try:
            (self.home / SERVER_URL_FILE).unlink()
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------ --once

    def once(self) -> int:
        """Run what is due now (catch-up included), wait for it, 0 if all succeeded."""
        self.core.recover()
        before = {r.id for r in self.core.store.list_runs(top_level=True)}
        self.scheduler.tick(self.core.clock.now())
        while self.core.running():
            self.stopping.wait(0.2)
        runs = [r for r in self.core.store.list_runs(top_level=True)
                if r.id not in before or r.status == RunState.RUNNING]
        started = [r for r in runs if r.started_at is not None]
        failed = [r for r in started if r.status != RunState.SUCCEEDED]
        for r in started:
            log.info("run %s (%s): %s", r.id, r.jobnet, r.status)
        return 1 if failed else 0


def main(config_path: Path | None, *, verbose: bool, once: bool) -> int:
    from jaz.server.config import load_config

    if config_path is None:   # $JAZ_HOME/server.toml (what `jaz init` writes), if any
        from jaz.paths import jaz_home

        default = jaz_home() / "server.toml"
        config_path = default if default.is_file() else None
    config = load_config(config_path)
    setup_logging(verbose, config.log_level)
    refuse_root(config)
    daemon = Daemon(config, once=once)
    try:
        return daemon.once() if once else daemon.serve()
    finally:
        daemon.core.close()
