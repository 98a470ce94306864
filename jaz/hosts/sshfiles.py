"""An SSH host's end of a `transfer` (jaz/hosts/transfer.py), through SFTP on a
connection of its own (a long copy blocks no job): the same operations as an agent's
(`files`, `fstat`, `fread`, `fwrite`, `fcommit`, `fsum`), so a copy goes between any two
of the local host, agent hosts and SSH hosts, streamed in chunks and renamed into place
only when the part file's size and SHA-256 match. Relative paths are relative to the
login user's home, as with scp. Checksums are taken on the host with `sha256sum` where
it exists (else the file is read back over SFTP)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import posixpath
import shlex
import stat as st
from typing import Any

from jaz.errors import ActionError, JazError
from jaz.hosts.config import Host
from jaz.hosts.ssh import Connection

CHUNK = 2**20


class SftpEnd:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.conn = Connection(host)
        self._sftp: Any = None
        self._writing: tuple[str, Any] | None = None   # (part path, open file)

    def _client(self) -> Any:
        if self._sftp is None:
            try:
                self._sftp = self.conn.sftp()
            except JazError as e:
                raise ActionError(e.message) from None
        return self._sftp

    def _path(self, path: str) -> str:
        return path if path.startswith("/") else posixpath.join(self._home(), path)

    def _home(self) -> str:
        return str(self._client().normalize("."))

    def call(self, op: str, **f: Any) -> dict[str, Any]:
        try:
            return getattr(self, f"_{op}")(**f)  # type: ignore[no-any-return]
        except OSError as e:
            raise ActionError(f"{self.host.name}: {f.get('path', '')}: "
                              f"{e.strerror or e}") from None
        except JazError as e:
            raise ActionError(e.message) from None

    def _files(self, path: str) -> dict[str, Any]:
        sftp = self._client()
        target = self._path(path)
        folder, name = posixpath.split(target)
        if any(c in name for c in "*?["):
            entries = [(posixpath.join(folder, a.filename), a)
                       for a in sftp.listdir_attr(folder) if fnmatch.fnmatch(a.filename, name)]
        else:
            try:
                entries = [(target, sftp.stat(target))]
            except FileNotFoundError:
                entries = []
        files, dirs = [], []
        for full, attr in sorted(entries, key=lambda e: e[0]):
            if st.S_ISDIR(attr.st_mode or 0):
                dirs.append(full)
            elif st.S_ISREG(attr.st_mode or 0):
                files.append({"path": full, "size": attr.st_size})
        return {"files": files, "dirs": dirs}

    def _fstat(self, path: str) -> dict[str, Any]:
        target = self._path(path)
        try:
            attr = self._client().stat(target)
        except FileNotFoundError:
            return {"exists": False, "dir": False, "path": target}
        return {"exists": True, "dir": st.S_ISDIR(attr.st_mode or 0), "path": target}

    def _fread(self, path: str, offset: int, limit: int) -> dict[str, Any]:
        sftp = self._client()
        with sftp.open(self._path(path), "rb") as f:
            size = f.stat().st_size
            f.seek(offset)
            want = max(0, min(limit, size - offset))
            chunks = f.readv([(offset + i, min(32768, want - i))
                              for i in range(0, want, 32768)]) if want else []
            data = b"".join(chunks)
        return {"data": base64.b64encode(data).decode("ascii"), "size": size,
                "next": offset + len(data)}

    def _part(self, target: str, part: str) -> str:
        folder, name = posixpath.split(target)
        return posixpath.join(folder, f".{name}.jaz-part-{part}")

    def _fwrite(self, path: str, part: str, offset: int, data: str) -> dict[str, Any]:
        raw = base64.b64decode(data, validate=True)
        piece = self._part(self._path(path), part)
        if self._writing is None or self._writing[0] != piece:
            self._close_writing()
            f = self._client().open(piece, "wb" if offset == 0 else "ab")
            f.set_pipelined(True)
            self._writing = (piece, f)
        f = self._writing[1]
        if f.tell() != offset:
            raise ActionError(f"{self.host.name}: the part file holds {f.tell()} bytes, not "
                              f"{offset}")
        f.write(raw)
        return {"next": offset + len(raw)}

    def _close_writing(self) -> None:
        if self._writing is not None:
            _, f = self._writing
            self._writing = None
            f.close()

    def _fcommit(self, path: str, part: str, size: int, sha256: str,
                 overwrite: bool) -> dict[str, Any]:
        self._close_writing()
        target = self._path(path)
        piece = self._part(target, part)
        sftp = self._client()
        got = self._fsum(piece)
        if got["size"] != size or got["sha256"] != sha256:
            sftp.remove(piece)
            raise ActionError(f"{self.host.name}:{target}: the copy does not match (size "
                              f"{got['size']} of {size}, or the checksum differs); nothing "
                              "was written")
        if not overwrite:
            try:
                sftp.stat(target)
                sftp.remove(piece)
                raise ActionError(f"{self.host.name}:{target} exists; set overwrite = true "
                                  "to replace it")
            except FileNotFoundError:
                pass
        sftp.posix_rename(piece, target)
        return {"path": target, "size": size}

    def _fsum(self, path: str) -> dict[str, Any]:
        target = self._path(path)
        size = self._client().stat(target).st_size
        code, out, _ = self.conn.run(f"sha256sum -- {shlex.quote(target)}", timeout=3600)
        digest = out.split(b" ", 1)[0].decode(errors="replace") if code == 0 else ""
        if len(digest) != 64:   # no sha256sum there: read it back
            h = hashlib.sha256()
            with self._client().open(target, "rb") as f:
                f.prefetch()
                for block in iter(lambda: f.read(CHUNK), b""):
                    h.update(block)
            digest = h.hexdigest()
        return {"sha256": digest, "size": size}

    def close(self) -> None:
        try:
            self._close_writing()
        except OSError:
            pass
        if self._sftp is not None:
            self._sftp.close()
        self.conn.close()
