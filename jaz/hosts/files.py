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
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

_STAGED = re.compile(r"\..+\.jaz-part-[A-Za-z0-9_-]{1,64}")


class FileError(Exception):
    """A file operation that cannot be done; the message says which file and why."""


def where(work_dir: Path, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else work_dir / p


def listing(work_dir: Path, pattern: str, recursive: bool = False) -> dict[str, Any]:
    """The regular files matching `pattern` (a path or a glob), with their sizes; with
    `recursive`, also what each matching directory holds (`trees`)."""
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
    out: dict[str, Any] = {"files": files, "dirs": dirs}
    if recursive:
        out["trees"] = [tree(Path(d)) for d in dirs]
    return out


def tree(top: Path) -> dict[str, Any]:
    """Everything under the directory `top`: its regular files (a symlink to a file is
    the file) with their paths relative to `top` and sizes, and its folders (for the
    empty ones). Symlinks to folders are not followed (no loops)."""
    files, dirs = [], []
    for folder, subdirs, names in os.walk(top):
        subdirs.sort()
        base = Path(folder)
        for d in subdirs:
            if not (base / d).is_symlink():
                dirs.append(_rel(base / d, top))
        for n in sorted(names):
            p = base / n
            if p.is_file():
                files.append({"path": str(p), "rel": _rel(p, top), "size": p.stat().st_size})
    return {"path": str(top), "files": files, "dirs": dirs}


def _rel(p: Path, top: Path) -> str:
    rel = p.relative_to(top).as_posix()
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise FileError(f"{os.fsdecode(bytes(p))!r}: the name is not UTF-8; rename it to "
                        "copy it") from None
    return rel


def make_dirs(work_dir: Path, path: str) -> dict[str, Any]:
    p = where(work_dir, path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileError(f"cannot make the folder {p}: {e.strerror}") from None
    return {"path": str(p)}


def staging(target: str, part: str) -> str:
    """The hidden folder beside `target` a directory is copied into before it is renamed
    into place."""
    t = PurePosixPath(target)
    return str(t.with_name(f".{t.name}.jaz-part-{part}"))


def rename(work_dir: Path, path: str, to: str) -> dict[str, Any]:
    """Put the staged folder `path` in place as `to`, which must not exist."""
    src, dst = where(work_dir, path), where(work_dir, to)
    if not _STAGED.fullmatch(src.name):
        raise FileError(f"{src} is not a folder staged by a transfer")
    if dst.exists() or dst.is_symlink():
        raise FileError(f"{dst} exists; set overwrite = true to copy into it")
    try:
        os.rename(src, dst)
    except OSError as e:
        raise FileError(f"cannot rename {src} to {dst}: {e.strerror}") from None
    return {"path": str(dst)}


def discard(work_dir: Path, path: str) -> dict[str, Any]:
    """Remove a staged folder that was not put in place (a transfer that failed)."""
    p = where(work_dir, path)
    if not _STAGED.fullmatch(p.name):
        raise FileError(f"{p} is not a folder staged by a transfer")
    shutil.rmtree(p, ignore_errors=True)
    return {"path": str(p)}


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
