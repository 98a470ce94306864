"""Waiting for changes in the server's folders with Linux inotify.

Without it the server finds a change by looking: a `stat` of every file in the jobnets
and calendars folders every few seconds, ~30 ms of CPU a look with 10,000 files, the
largest part of an idle server's cost. With it the folders are only read again when
the kernel says something in them changed (a `*.toml` file written, created, moved
in or out, removed, or the folder itself moved or removed).

What inotify does not see, the server still finds by looking, less often
(`Daemon`'s FULL_LOOK): a change in the target of a symlinked file, and changes made
by another machine on a network filesystem. Where inotify cannot be had (not Linux,
no free watches), `FolderWatch.open()` says so and the server looks as before.

The standard library has no inotify, and its three calls are simple enough for
ctypes: no dependency for it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("jaz.server")

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
        | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
# the folder itself went away or moved: its watch no longer stands for its path
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED
HEADER = struct.Struct("iIII")            # wd, mask, cookie, len (struct inotify_event)
QUIET = 0.1       # after a change, wait until the folder was quiet this long…
SETTLE_MAX = 1.0  # …but no longer than this: an editor's save is several events


class FolderWatch:
    """inotify watches on a set of folders. `wait(timeout)` tells whether a jobnet or
    calendar file in one of them changed; `wake()` (from another thread) ends a wait."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        self.fd: int = fd
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closing = threading.Lock()
        self._folders: dict[Path, int] = {}      # folder → watch descriptor
        self._on: dict[Path, tuple[int, int] | None] = {}   # folder → (st_dev, st_ino)
        self._warned: set[Path] = set()

    @classmethod
    def open(cls) -> FolderWatch | None:
        """A watch, or None where inotify cannot be had (the caller then looks)."""
        try:
            return cls()
        except (OSError, AttributeError) as e:     # AttributeError: a libc without it
            log.info("folders are looked at every few seconds (no inotify here: %s)", e)
            return None

    def follow(self, folders: Iterable[Path]) -> bool:
        """Watch these folders and no others; whether a watch was added (what changed
        in that folder before is not known: the caller looks once). A folder that is
        not there cannot be watched: called again, it is watched once it is there."""
        want = set(folders)
        for folder in list(self._folders):
            # a folder no longer wanted, or whose path now leads elsewhere (a symlink
            # swapped to a new release): the watch is on what the path was
            if folder not in want or _identity(folder) != self._on.get(folder):
                self._rm(self.fd, self._folders.pop(folder))
        added = False
        for folder in want - self._folders.keys():
            identity = _identity(folder)
            wd = self._add(self.fd, os.fsencode(folder), MASK)
            if wd < 0:
                code = ctypes.get_errno()
                if code != errno.ENOENT and folder not in self._warned:
                    self._warned.add(folder)
                    log.warning("cannot watch %s (%s%s); changes in it are seen by the "
                                "server's look every minute", folder, os.strerror(code),
                                ": fs.inotify.max_user_watches" if code == errno.ENOSPC
                                else "")
                continue
            self._folders[folder], self._on[folder] = wd, identity
            added = True
        return added

    def wait(self, timeout: float) -> bool:
        """Whether a watched file changed within `timeout` seconds (or a `wake()`). After
        a change it waits for the folder to be quiet for a moment, so that a save made
        in several steps is read once, whole."""
        ready, _, _ = select.select([self.fd, self._wake_r], [], [], max(0.0, timeout))
        if self._wake_r in ready:
            self._drain_wake()
            return False
        if not ready or not self._read():
            return False
        until = time.monotonic() + SETTLE_MAX
        while (left := until - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], min(QUIET, left))
            if not ready:
                break
            self._read()
        return True

    def wake(self) -> None:
        with self._closing:     # never into a closed descriptor, whose number is reused
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass      # full: a wake is pending anyway

    def close(self) -> None:
        with self._closing:
            fds, self.fd, self._wake_r, self._wake_w = \
                (self.fd, self._wake_r, self._wake_w), -1, -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def _read(self) -> bool:
        """Read every pending event; whether one of them matters."""
        matters = False
        known = set(self._folders.values())
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return matters
            pos = 0
            while pos + HEADER.size <= len(data):
                wd, mask, _cookie, size = HEADER.unpack_from(data, pos)
                name = data[pos + HEADER.size:pos + HEADER.size + size].rstrip(b"\0")
                pos += HEADER.size + size
                if mask & IN_Q_OVERFLOW:
                    matters = True           # events were lost: look at everything,
                    for folder in list(self._folders):   # and watch everything anew
                        self._rm(self.fd, self._folders.pop(folder))
                elif wd not in known:
                    continue                 # a folder no longer watched (its last word)
                elif mask & GONE and not name:
                    matters = True           # the folder moved or went: follow() again
                    self._forget(wd)
                elif name.endswith(b".toml") and not name.startswith(b"."):
                    matters = True

    def _forget(self, wd: int) -> None:
        for folder, known in list(self._folders.items()):
            if known == wd:
                del self._folders[folder]
                self._rm(self.fd, wd)   # a moved folder's watch would go on (a removed
                #                         folder's is gone already: an error, ignored)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino
