"""`transfer = { from = "web1:/data/*.csv", to = "db1:/in/" }` between hosts: each file
streamed through this process in chunks (memory stays flat, any size), written on the
far side into a part file and renamed into place only when its size and SHA-256 match
the source's (checked again at the source's end, so a file changed during the copy is
refused). Either end may be "local" (relative paths: the jobnet's folder), an agent
host (relative paths: its work_dir) or an SSH host (SFTP; relative paths: the login
user's home; jaz/hosts/sshfiles.py). Files only: a directory is refused, saying so."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from pathlib import PurePosixPath
from typing import Any, Protocol

from jaz.engine.executors.base import Attempt, Execution, Outcome
from jaz.engine.loader import split_host_path
from jaz.engine.model import TransferAction
from jaz.errors import ActionError, JazError
from jaz.hosts import files
from jaz.hosts.client import AgentClient
from jaz.hosts.config import Host

CHUNK = 2**20


class End(Protocol):
    def call(self, op: str, **fields: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalEnd:
    """This machine's end, with the same operations as an agent's."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def call(self, op: str, **f: Any) -> dict[str, Any]:
        b = self.base
        ops: dict[str, Any] = {
            "files": lambda: files.listing(b, f["path"], bool(f.get("recursive"))),
            "fstat": lambda: files.stat(b, f["path"]),
            "fread": lambda: files.read(b, f["path"], f["offset"], f["limit"]),
            "fwrite": lambda: files.write(b, f["path"], f["part"], f["offset"], f["data"]),
            "fcommit": lambda: files.commit(b, f["path"], f["part"], f["size"], f["sha256"],
                                            f["overwrite"]),
            "fsum": lambda: files.checksum(b, f["path"]),
            "fmkdir": lambda: files.make_dirs(b, f["path"]),
            "frename": lambda: files.rename(b, f["path"], f["to"]),
            "fdiscard": lambda: files.discard(b, f["path"])}
        try:
            return ops[op]()  # type: ignore[no-any-return]
        except files.FileError as e:
            raise ActionError(str(e)) from None

    def close(self) -> None:
        pass


class AgentEnd:
    """An agent's end, on a connection of its own (a long copy blocks no other job)."""

    def __init__(self, host: Host, owner: str) -> None:
        self.client = AgentClient(host, owner)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return self.client.call(op, **fields)
        except JazError as e:
            raise ActionError(e.message) from None

    def close(self) -> None:
        self.client.close()


def end(hosts: dict[str, Host], owner: str, name: str, attempt: Attempt) -> End:
    if name == "local":
        return LocalEnd(attempt.base_dir)
    host = hosts.get(name)
    if host is None:
        raise ActionError(f"transfer: {name!r} is not a host of the hosts file "
                          f"(hosts known: {', '.join(sorted(hosts)) or 'none'})")
    if host.ssh is not None:
        from jaz.hosts.sshfiles import SftpEnd  # (SFTP: paramiko only now)

        return SftpEnd(host)
    return AgentEnd(host, owner)


class TransferExecution(Execution):
    def __init__(self, hosts: dict[str, Host], owner: str, attempt: Attempt) -> None:
        self._stop = threading.Event()
        self._args = (hosts, owner, attempt)

    def wait(self) -> Outcome:
        try:
            return copy(*self._args, stop=self._stop)
        except ActionError as e:
            return Outcome(exit_code=1, error=e.message, stopped=self._stop.is_set())

    def stop(self) -> None:
        self._stop.set()


def copy(hosts: dict[str, Host], owner: str, attempt: Attempt, *,
         stop: threading.Event) -> Outcome:
    action = attempt.job.action
    assert isinstance(action, TransferAction)
    src_host, src_path = split_host_path(action.source)
    dst_host, dst_path = split_host_path(action.dest)
    src = end(hosts, owner, src_host, attempt)
    dst = end(hosts, owner, dst_host, attempt)
    try:
        deep = isinstance(src, LocalEnd | AgentEnd)   # (an SSH end lists no folders)
        found = src.call("files", path=src_path, **({"recursive": True} if deep else {}))
        sources = found.get("files") or []
        trees = found.get("trees") or []
        if found.get("dirs") and (found.get("trees") is None or
                                  not isinstance(dst, LocalEnd | AgentEnd)):
            raise ActionError(f"transfer: {found['dirs'][0]} is a directory; directories "
                              "are copied between this machine and agent hosts only (not "
                              "SSH hosts, nor agents older than this jaz): copy its files "
                              "with a glob")
        if not sources and not trees:
            raise ActionError(f"transfer source {action.source} does not exist")
        into_dir = dst_path.endswith("/") or len(sources) + len(trees) > 1 or \
            bool(dst.call("fstat", path=dst_path).get("dir"))
        copied = []
        where = (src_host, dst_host)
        for source in sources:
            name = PurePosixPath(str(source["path"])).name
            target = str(PurePosixPath(dst_path) / name) if into_dir else dst_path
            if dst.call("fstat", path=target).get("exists") and not action.overwrite:
                raise ActionError(f"{dst_host}:{target} exists; set overwrite = true to "
                                  "replace it")
            copied.append(_file(src, dst, where, str(source["path"]), target, target,
                                action.overwrite, stop))
        for t in trees:
            name = PurePosixPath(str(t["path"])).name
            target = str(PurePosixPath(dst_path) / name) if into_dir else dst_path
            copied += _folder(src, dst, where, t, target, action.overwrite, stop)
    finally:
        src.close()
        dst.close()
    text = "\n".join(copied) + "\n"
    try:   # what `jaz logs` shows of the job
        attempt.stdout_path.write_text(text, encoding="utf-8")
    except OSError:
        pass
    return Outcome(exit_code=0, stdout_tail=text, outputs={"FILES": str(len(copied))})


def _file(src: End, dst: End, where: tuple[str, str], path: str, target: str, shown: str,
          overwrite: bool, stop: threading.Event) -> str:
    """Copy the file `path` to `target` (`shown` in the log), checked at both ends; the
    log line."""
    if stop.is_set():
        raise ActionError("stopped during transfer")
    part = secrets.token_hex(8)
    size, digest = _stream(src, dst, path, target, part, stop)
    check = src.call("fsum", path=path)
    if check.get("sha256") != digest or check.get("size") != size:
        raise ActionError(f"{where[0]}:{path} changed while it was copied; nothing was "
                          "written")
    dst.call("fcommit", path=target, part=part, size=size, sha256=digest, overwrite=overwrite)
    return f"{where[0]}:{path} -> {where[1]}:{shown} ({size} bytes, sha256 {digest})"


def _folder(src: End, dst: End, where: tuple[str, str], t: dict[str, Any], target: str,
            overwrite: bool, stop: threading.Event) -> list[str]:
    """Copy the directory `t` (a tree of the source's listing) to `target`. A new target
    is built in a hidden folder beside it and renamed into place at the end, so it is
    there whole or not at all; an existing one (overwrite = true) gets each file
    replaced in place, each whole."""
    there = dst.call("fstat", path=target)
    staged = None
    if there.get("exists"):
        if not overwrite:
            raise ActionError(f"{where[1]}:{target} exists; set overwrite = true to copy "
                              "into it")
        if not there.get("dir"):
            raise ActionError(f"{where[1]}:{target} is a file, not a folder: the folder "
                              f"{where[0]}:{t['path']} cannot replace it")
    else:
        staged = files.staging(target, secrets.token_hex(8))
    root = PurePosixPath(staged or target)
    copied = []
    try:
        dst.call("fmkdir", path=str(root))
        for rel in t.get("dirs") or []:
            dst.call("fmkdir", path=str(root / rel))
        for f in t.get("files") or []:
            copied.append(_file(src, dst, where, str(f["path"]), str(root / f["rel"]),
                                str(PurePosixPath(target) / f["rel"]), True, stop))
        if staged is not None:
            dst.call("frename", path=staged, to=target)
    except BaseException:
        if staged is not None:
            try:
                dst.call("fdiscard", path=staged)
            except ActionError:
                pass   # (the agent went away: the hidden folder stays)
        raise
    return copied


def _stream(src: End, dst: End, path: str, target: str, part: str,
            stop: threading.Event) -> tuple[int, str]:
    """Copy one file chunk by chunk into the part file `part` beside `target`; its size
    and SHA-256."""
    digest = hashlib.sha256()
    offset = 0
    while True:
        if stop.is_set():
            raise ActionError("stopped during transfer")
        chunk = src.call("fread", path=path, offset=offset, limit=CHUNK)
        data = str(chunk.get("data", ""))
        raw = base64.b64decode(data)
        if offset == 0 or raw:   # an empty file still gets its (empty) part file
            dst.call("fwrite", path=target, part=part, offset=offset, data=data)
        digest.update(raw)
        offset += len(raw)
        if not raw:
            return offset, digest.hexdigest()
