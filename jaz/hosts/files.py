"""The file operations of `transfer` (docs/agent.md): files listed by a glob pattern,
read by offset, written into a part file by offset, and committed by checksum and size
(renamed into place only when both match). Relative paths are relative to `base` (an
agent's work_dir, or the jobnet's folder here). The agent serves them over the wire
(its `f*` operations); the server side uses them for its own end of a transfer."""

from __future__ import annotations

import base64
import glob
import hashlib
import os
from pathlib import Path
from typing import Any


class FileError(Exception):
    """A file operation that cannot be done; the message says which file and why."""


def where(work_dir: Path, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else work_dir / p


def listing(work_dir: Path, pattern: str) -> dict[str, Any]:
    """The regular files matching `pattern` (a path or a glob), with their sizes."""
    target = where(work_dir, pattern)
    names = sorted(glob.glob(str(target))) if any(c in target.name for c in "*?[") \
        else [str(target)]
    files, dirs = [], []
    for name in names:
        p = Path(name)
        if p.is_dir():
            dirs.append(name)
        elif p.is_file():
            files.append({"path": name, "size": p.stat().st_size})
    return {"files": files, "dirs": dirs}


def stat(work_dir: Path, path: str) -> dict[str, Any]:
    p = where(work_dir, path)
    return {"exists": p.exists(), "dir": p.is_dir(), "path": str(p)}


def read(work_dir: Path, path: str, offset: int, limit: int) -> dict[str, Any]:
    p = where(work_dir, path)
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            data = f.read(limit)
    except OSError as e:
        raise FileError(f"cannot read {p}: {e.strerror}") from None
    return {"data": base64.b64encode(data).decode("ascii"), "size": size,
            "next": offset + len(data)}


def _part(target: Path, part: str) -> Path:
    return target.with_name(f".{target.name}.jaz-part-{part}")


def write(work_dir: Path, path: str, part: str, offset: int, data: str) -> dict[str, Any]:
    target = where(work_dir, path)
    piece = _part(target, part)
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise FileError("'data' is not base64") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(piece, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if offset == 0 else 0),
                     0o644)
        try:
            if os.fstat(fd).st_size != offset:
                raise FileError(f"the part file holds {os.fstat(fd).st_size} bytes, not "
                                 f"{offset}: start again from 0")
            os.pwrite(fd, raw, offset)
        finally:
            os.close(fd)
    except OSError as e:
        raise FileError(f"cannot write {piece}: {e.strerror}") from None
    return {"next": offset + len(raw)}


def commit(work_dir: Path, path: str, part: str, size: int, sha256: str,
           overwrite: bool) -> dict[str, Any]:
    """Rename the part file into place if its size and SHA-256 are the ones sent."""
    target = where(work_dir, path)
    piece = _part(target, part)
    digest = hashlib.sha256()
    try:
        with piece.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        got = piece.stat().st_size
    except OSError as e:
        raise FileError(f"cannot read {piece}: {e.strerror}") from None
    if got != size or digest.hexdigest() != sha256:
        piece.unlink(missing_ok=True)
        raise FileError(f"{target}: the copy does not match (size {got} of {size}, or the "
                         "checksum differs); nothing was written")
    if target.exists() and not overwrite:
        piece.unlink(missing_ok=True)
        raise FileError(f"{target} exists; set overwrite = true to replace it")
    os.replace(piece, target)
    return {"path": str(target), "size": size}


def checksum(work_dir: Path, path: str) -> dict[str, Any]:
    p = where(work_dir, path)
    digest = hashlib.sha256()
    try:
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return {"sha256": digest.hexdigest(), "size": p.stat().st_size}
    except OSError as e:
        raise FileError(f"cannot read {p}: {e.strerror}") from None
