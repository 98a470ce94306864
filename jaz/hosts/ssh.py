"""SSH hosts (`[hosts.NAME] ssh = "user@addr[:port]"` or an `~/.ssh/config` alias):
where to connect and how, checked host keys, and one pooled connection per host.

paramiko is imported here only, and only when an SSH host is used (`jaz --help` and the
engine never load it). Host keys are checked with paramiko's RejectPolicy against
`~/.ssh/known_hosts` (hashed entries too), `/etc/ssh/ssh_known_hosts` and jaz's own
`$JAZ_HOME/known_hosts` (what `jaz hosts trust` writes): a host whose key is unknown or
changed is refused after the key exchange, before any authentication, so no credential
is ever sent to it. paramiko's policies that add unknown keys or only warn about them
are never used (tests/test_ssh.py forbids them in the source).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jaz.errors import JazError, Refused, Unreachable
from jaz.hosts.config import Host
from jaz.paths import jaz_home

log = logging.getLogger("jaz.hosts.ssh")
CONNECT_TIMEOUT = 10.0   # seconds: TCP connect, then banner and key exchange (ConnectTimeout)
KEEPALIVE = 15.0         # seconds between keepalives (ServerAliveInterval)
KEEPALIVE_MAX = 3        # unanswered in a row before the connection is given up (…CountMax)
SESSIONS = 8             # job channels in flight on one connection (sshd's MaxSessions is 10)
CONTROL_SESSIONS = 2     # and channels kept for stops and file checks
POSIX_SHELLS = frozenset({"sh", "dash", "bash", "ash", "ksh", "mksh", "ksh93"})
CONNECTING = threading.BoundedSemaphore(16)   # connections being made at once (fan-out)
SPENT_BATCH = 32         # read jobs whose files are removed with one command
JOB_FILES = ("out", "err", "st", "vars")   # a job's files (jaz.hosts.sshjob)
JOB_FILES_DAYS = 7       # job files older than this are removed at each connection
# run once per connection: the job folder (0700: jobs' output and outputs are kept there
# until read), else a private temp folder
PREPARE = ('umask 077; if [ "$1" = 1 ] && cd 2>/dev/null && mkdir -p .jaz/jobs 2>/dev/null '
           '&& chmod 700 .jaz/jobs 2>/dev/null; then '
           f'find .jaz/jobs -type f -mtime +{JOB_FILES_DAYS} -exec rm -f {{}} + 2>/dev/null; '
           'echo "jobs $(pwd)/.jaz/jobs"; '
           'else echo "tmp $(mktemp -d "${TMPDIR:-/tmp}/jaz.XXXXXXXXXX")"; fi')


class HostKeyError(Refused):
    """The host's key is not one we accepted: nothing was sent to it."""

    def __init__(self, message: str, *, fingerprint: str, key_type: str,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.fingerprint = fingerprint
        self.key_type = key_type


class HostKeyUnknown(HostKeyError):
    pass


class HostKeyChanged(HostKeyError):
    pass


def fingerprint(key: Any) -> str:
    """A key's fingerprint as OpenSSH prints it: SHA256:base64, no padding."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_file() -> Path:
    """jaz's own known_hosts (written by `jaz hosts trust`)."""
    return jaz_home() / "known_hosts"


def _user_ssh(name: str) -> Path:
    return Path(os.path.expanduser("~/.ssh")) / name


@dataclass(frozen=True)
class Target:
    """Where and how to connect, as OpenSSH would for `ssh DEST`."""

    host: str                  # the jaz host name (for messages)
    alias: str                 # what `ssh` was given
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    proxy_jump: str | None = None
    proxy_command: str | None = None   # ProxyCommand (when there is no ProxyJump)
    connect_timeout: float = CONNECT_TIMEOUT
    keepalive: float = KEEPALIVE
    keepalive_max: int = KEEPALIVE_MAX
    key_alias: str | None = None   # HostKeyAlias

    @property
    def key_name(self) -> str:
        """The name its key has in known_hosts: "host" or "[host]:port"."""
        name = self.key_alias or self.hostname
        return name if self.port == 22 else f"[{name}]:{self.port}"

    @property
    def where(self) -> str:
        via = f" via {self.proxy_jump}" if self.proxy_jump else \
            " via ProxyCommand" if self.proxy_command else ""
        return f"{self.user}@{self.hostname}:{self.port}{via}"


def split_destination(text: str) -> tuple[str | None, str, int | None]:
    """"user@addr:port" → (user, addr, port); "[::1]:22" and plain aliases too."""
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
    port = None
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        return user, addr, port
    if text.count(":") == 1:
        addr, _, p = text.partition(":")
        if p.isdigit():
            return user, addr, int(p)
    return user, text, port


def ssh_config() -> Any:
    """~/.ssh/config, as paramiko reads it (empty when there is none)."""
    import paramiko

    path = _user_ssh("config")
    if path.is_file():
        try:
            return paramiko.SSHConfig.from_path(str(path))
        except Exception as e:   # paramiko raises assorted errors for bad lines
            raise Refused(f"cannot read {path}: {e}") from None
    return paramiko.SSHConfig()


def target(host: Host, destination: str | None = None, config: Any = None) -> Target:
    """The host's (or a ProxyJump hop's) connection settings: what the hosts file says
    wins over the destination string, which wins over ~/.ssh/config."""
    config = config if config is not None else ssh_config()
    dest = destination if destination is not None else (host.ssh or "")
    user, alias, port = split_destination(dest)
    found = config.lookup(alias)
    own = destination is None   # the host itself, not a jump host
    hosts_user = getattr(host, "user", None) if own else None
    hosts_port = getattr(host, "port", None) if own else None
    identity = getattr(host, "identity_file", None) if own else None
    if identity:
        files: tuple[str, ...] = (os.path.expanduser(str(identity)),)
    else:
        files = tuple(os.path.expanduser(f) for f in found.get("identityfile", []))
    import getpass

    jump = found.get("proxyjump") if str(found.get("proxyjump", "none")).lower() != "none" \
        else None
    command = found.get("proxycommand")
    if jump or str(command or "none").lower() == "none":
        command = None   # (OpenSSH takes the first of the two; jaz prefers ProxyJump)
    return Target(
        host=host.name, alias=alias, hostname=str(found.get("hostname", alias)),
        port=int(hosts_port or port or found.get("port", 22)),
        user=str(hosts_user or user or found.get("user") or getpass.getuser()),
        identity_files=files,
        identities_only=str(found.get("identitiesonly", "no")).lower() == "yes",
        proxy_jump=jump, proxy_command=command,
        connect_timeout=float(found.get("connecttimeout", CONNECT_TIMEOUT)),
        keepalive=float(found.get("serveraliveinterval", KEEPALIVE)) or KEEPALIVE,
        keepalive_max=max(1, int(found.get("serveralivecountmax", KEEPALIVE_MAX))),
        key_alias=found.get("hostkeyalias"))


def _known_hosts(client: Any) -> None:
    for path in (_user_ssh("known_hosts"), Path("/etc/ssh/ssh_known_hosts"),
                 known_hosts_file()):
        if path.is_file():
            try:
                client.load_system_host_keys(str(path))
            except Exception as e:
                log.warning("cannot read known hosts %s: %s", path, e)


def _policy(t: Target) -> Any:
    import paramiko

    class Reject(paramiko.RejectPolicy):  # type: ignore[misc]
        """paramiko's RejectPolicy, raising our error with the key's fingerprint."""

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            fp = fingerprint(key)
            raise HostKeyUnknown(
                f"host {t.host!r} ({t.where}): its host key {key.get_name()} {fp} is not "
                f"known; nothing was sent to it", fingerprint=fp, key_type=key.get_name(),
                hint=f"check the fingerprint with the host's owner (ssh-keygen -lf "
                     f"/etc/ssh/ssh_host_*_key.pub), then `jaz hosts trust {t.host}`")

    return Reject()


def _socket(t: Target, via: Any | None) -> Any:
    """The connection's socket: TCP with TCP_NODELAY, a channel of the jump host, or the
    pipes of a ProxyCommand (run without a shell, as paramiko.ProxyCommand does: split
    like a shell's words, its tokens expanded by paramiko.SSHConfig)."""
    if via is None and t.proxy_command:
        import paramiko

        try:
            return paramiko.ProxyCommand(t.proxy_command)
        except Exception as e:   # (not found, not executable...)
            raise Unreachable(f"host {t.host!r}: ProxyCommand {t.proxy_command!r} "
                              f"cannot start: {e}",
                              hint="check ProxyCommand in ~/.ssh/config") from None
    if via is not None:
        try:
            return via.get_transport().open_channel(
                "direct-tcpip", (t.hostname, t.port), ("127.0.0.1", 0),
                timeout=t.connect_timeout)
        except Exception as e:
            raise Unreachable(f"host {t.host!r}: the jump host could not reach "
                              f"{t.hostname}:{t.port}: {e}") from None
    try:
        sock = socket.create_connection((t.hostname, t.port), timeout=t.connect_timeout)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise Unreachable(f"host {t.host!r}: cannot connect to {t.hostname}:{t.port}: "
                          f"{reason}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # no 40 ms Nagle waits
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


def connect(host: Host, *, destination: str | None = None, config: Any = None,
            _hops: int = 0) -> Any:
    """A connected, authenticated paramiko SSHClient for the host (through its ProxyJump
    hops, each checked the same way); a JazError naming the host when it cannot be."""
    import paramiko

    config = config if config is not None else ssh_config()
    t = target(host, destination, config)
    via = None
    if t.proxy_jump:
        if _hops > 8:
            raise Refused(f"host {t.host!r}: ProxyJump loops")
        hops = [h.strip() for h in t.proxy_jump.split(",") if h.strip()]
        for hop in hops:
            via = connect(host, destination=hop, config=config, _hops=_hops + 1) \
                if via is None else _through(via, host, hop, config, _hops)
    _quiet()
    client = paramiko.SSHClient()
    _known_hosts(client)
    client.set_missing_host_key_policy(_policy(t))
    sock = _socket(t, via)
    began = time.monotonic()
    own = destination is None
    try:   # (with `sock` given, the name only picks the known_hosts entry: HostKeyAlias)
        client.connect(
            t.key_alias or t.hostname, port=t.port, username=t.user, sock=sock,
            password=_secret(host, "password_secret") if own else None,
            passphrase=_secret(host, "passphrase_secret") if own else None,
            key_filename=list(t.identity_files) or None,
            allow_agent=not t.identities_only, look_for_keys=not t.identity_files,
            timeout=t.connect_timeout, banner_timeout=t.connect_timeout,
            auth_timeout=t.connect_timeout, channel_timeout=t.connect_timeout)
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as e:
        client.close()
        fp = fingerprint(e.key)
        raise HostKeyChanged(
            f"host {t.host!r} ({t.where}): its host key CHANGED: it shows "
            f"{e.key.get_name()} {fp}, not the key on record ({fingerprint(e.expected_key)}); "
            "someone may be in between, or the host was reinstalled; nothing was sent to it",
            fingerprint=fp, key_type=e.key.get_name(),
            hint="find out why; if the new key is right, remove the old one from your "
                 f"known_hosts files and `jaz hosts trust {t.host}`") from None
    except (paramiko.AuthenticationException, paramiko.SSHException) as e:
        if not isinstance(e, paramiko.AuthenticationException) and \
                "authentication" not in str(e).lower():
            client.close()
            raise Unreachable(f"host {t.host!r} ({t.where}): SSH connection failed: "
                              f"{_reason(e, t, began)}") from None
        client.close()
        keys = ", ".join(t.identity_files) or "the default keys and the ssh-agent"
        raise Refused(f"host {t.host!r} ({t.where}): authentication failed for user "
                      f"{t.user!r} ({e}; tried {keys})",
                      hint="check User and IdentityFile (~/.ssh/config or the hosts file) "
                           "and that the key is in the user's authorized_keys") from None
    except (OSError, EOFError) as e:
        client.close()
        raise Unreachable(f"host {t.host!r} ({t.where}): SSH connection failed: "
                          f"{_reason(e, t, began)}") from None
    client._jaz_target = t
    if via is not None:
        client._jaz_via = via   # keep the jump hosts alive with it
    return client


def _secret(host: Host, key: str) -> str | None:
    """A password or passphrase from jaz's secrets (JAZ_SECRET_NAME, or
    $JAZ_HOME/secrets.toml), named by the hosts file; never from the hosts file itself."""
    name = getattr(host, key, None)
    if not name:
        return None
    from jaz.engine.secrets import Secrets

    try:
        return Secrets(jaz_home() / "secrets.toml").get(name)
    except JazError as e:
        raise Refused(f"host {host.name!r}: {key} {name!r}: {e.message}", hint=e.hint) \
            from None


def _reason(e: BaseException, t: Target, began: float) -> str:
    reason = str(e) or type(e).__name__
    if isinstance(e, TimeoutError | socket.timeout) or "timeout" in reason.lower() \
            or time.monotonic() - began >= t.connect_timeout * 0.9:
        reason = f"no answer within {t.connect_timeout:g}s"
    return reason


def _quiet() -> None:
    """paramiko logs each failed connection with a traceback: jaz reports it itself."""
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def _through(via: Any, host: Host, hop: str, config: Any, hops: int) -> Any:
    """The next ProxyJump hop, reached through the previous one."""
    import paramiko

    t = target(host, hop, config)
    _quiet()
    client = paramiko.SSHClient()
    _known_hosts(client)
    client.set_missing_host_key_policy(_policy(t))
    sock = _socket(t, via)
    try:
        client.connect(t.key_alias or t.hostname, port=t.port, username=t.user, sock=sock,
                       key_filename=list(t.identity_files) or None,
                       allow_agent=not t.identities_only,
                       look_for_keys=not t.identity_files, timeout=t.connect_timeout,
                       banner_timeout=t.connect_timeout, auth_timeout=t.connect_timeout)
    except Exception as e:
        client.close()
        if isinstance(e, JazError):
            raise
        raise Unreachable(f"host {host.name!r}: jump host {hop}: {e}") from None
    client._jaz_via = via
    return client


def probe_key(host: Host) -> tuple[str, Any]:
    """Connect far enough to see the host's key (no authentication, nothing sent but the
    key exchange): its name in known_hosts and the key."""
    import paramiko

    config = ssh_config()
    t = target(host, None, config)
    via = None
    if t.proxy_jump:
        for hop in [h.strip() for h in t.proxy_jump.split(",") if h.strip()]:
            via = connect(host, destination=hop, config=config) if via is None \
                else _through(via, host, hop, config, 1)
    sock = _socket(t, via)
    _quiet()
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = t.connect_timeout
        transport.start_client(timeout=t.connect_timeout)
        return t.key_name, transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise Unreachable(f"host {host.name!r} ({t.where}): SSH key exchange failed: "
                          f"{e or type(e).__name__}") from None
    finally:
        transport.close()
        if via is not None:
            via.close()


def _exec(transport: Any, command: str, *, stdin: bytes = b"", timeout: float,
          host: str) -> tuple[int, bytes, bytes]:
    """Run a command on its own channel: exit status, stdout, stderr."""
    import select

    try:
        chan = transport.open_session(timeout=timeout)
    except Exception as e:
        raise Unreachable(f"host {host!r}: cannot open an SSH channel: "
                          f"{e or type(e).__name__}") from None
    try:
        chan.exec_command(command)
        if stdin:   # (the command reads it to its end: an EOF after the command ended
            chan.sendall(stdin)   # could reach a channel sshd has freed already)
            chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if chan.eof_received and chan.exit_status_ready():
                break
            if chan.closed:
                break
            if time.monotonic() > deadline:
                raise Unreachable(f"host {host!r}: `{command[:40]}` did not end within "
                                  f"{timeout:g}s")
            if chan.eof_received:
                chan.status_event.wait(0.2)
            else:
                select.select([chan], [], [], 0.2)
        status = chan.recv_exit_status()
        if status < 0 and not transport.is_active():
            raise Unreachable(f"host {host!r}: the SSH connection was lost")
        return status, bytes(out), bytes(err)
    except JazError:
        raise
    except Exception as e:   # (OSError, EOFError, SSHException: the connection broke)
        raise Unreachable(f"host {host!r}: the SSH connection broke: "
                          f"{e or type(e).__name__}") from None
    finally:
        chan.close()


def _host_keys() -> Any:
    import paramiko

    keys = paramiko.HostKeys()
    for path in (_user_ssh("known_hosts"), Path("/etc/ssh/ssh_known_hosts"),
                 known_hosts_file()):
        if path.is_file():
            try:
                keys.load(str(path))
            except Exception as e:
                log.warning("cannot read known hosts %s: %s", path, e)
    return keys


def has_known_key(t: Target) -> bool:
    """Whether any known_hosts file has a key for the host (no network)."""
    return _host_keys().lookup(t.key_name) is not None


def known_key(name: str, key: Any) -> str | None:
    """'known' when this key is on record for `name`, 'changed' when another key of the
    same type is, None when none is."""
    entry = _host_keys().lookup(name)
    if entry is None:
        return None
    ours = entry.get(key.get_name())
    if ours is None:
        return None
    return "known" if ours == key else "changed"


def record_key(name: str, key: Any) -> Path:
    """Add the key to jaz's own known_hosts (mode 0600)."""
    path = known_hosts_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(line)
    return path


@dataclass
class Connection:
    """One pooled connection to one SSH host: many channels at once, reconnected when it
    breaks; its state (online, last seen, last error) for `jaz hosts`."""

    host: Host
    online: bool | None = None
    last_seen: float | None = None
    error: str = ""
    running: int = 0
    closing: bool = False
    executions: set[Any] = field(default_factory=set)   # the jobs running on it
    orphans: set[int] = field(default_factory=set)   # jobs' pids to kill at the next connect
    workdir: str = ""    # a private folder (0700) of this connection's on the host
    jobs_dir: str = ""   # ~/.jaz/jobs there, when jobs can outlive the connection
    spent: list[str] = field(default_factory=list)   # jobs' files to remove (`spend`)
    on_free: Any = None  # called when a job's slot is freed (the host's pool waits on it)
    pool: list[Connection] = field(default_factory=list)   # the host's (SshHosts)
    posix: bool = False  # the login shell runs POSIX sh (sh, dash, bash, ksh...)
    _client: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _files: Any = None   # an SFTP session for the jobs' files (holds a control slot)
    _files_lock: threading.Lock = field(default_factory=threading.Lock)
    _spent_lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(SESSIONS))
    _control: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CONTROL_SESSIONS))

    def transport(self) -> Any:
        """The live transport, connecting (again) when there is none."""
        with self._lock:
            client = self._client
            if client is not None and client.get_transport() is not None and \
                    client.get_transport().is_active():
                return client.get_transport()
            if client is not None:
                client.close()
                self._client = None
            try:
                with CONNECTING:
                    self._client = connect(self.host)
                self.workdir = self._workdir(self._client.get_transport())
                self._reap(self._client.get_transport())
            except JazError as e:
                if self._client is not None:
                    self._client.close()
                    self._client = None
                self._away(e)
                raise
            self._seen()
            threading.Thread(target=self._watch, args=(self._client,), daemon=True,
                             name=f"ssh-{self.host.name}-keepalive").start()
            return self._client.get_transport()

    def _watch(self, client: Any) -> None:
        """Keepalives, as OpenSSH's ServerAliveInterval/CountMax: a host that answers none
        for interval × count (a network gone silent) has its connection closed, so its
        jobs end instead of hanging on a dead TCP connection."""
        t: Target = client._jaz_target
        transport = client.get_transport()
        while transport is not None and transport.is_active():
            time.sleep(t.keepalive)
            if not transport.is_active():
                return
            replied = threading.Event()

            threading.Thread(target=self._ask, args=(transport, replied),
                             daemon=True).start()
            if not replied.wait(t.keepalive * t.keepalive_max):
                message = (f"no answer to keepalives for {t.keepalive * t.keepalive_max:g}s"
                           "; the connection was closed")
                log.warning("host %s: %s", self.host.name, message)
                self.lost(message)
                transport.close()
                return
            if self.online:
                self.last_seen = time.time()
            if self.spent:
                self.clean()

    def _ask(self, transport: Any, replied: threading.Event) -> None:
        try:
            transport.global_request("keepalive@openssh.com", wait=True)
        except Exception:   # (the transport died: the watcher sees it)
            log.debug("host %s: keepalive failed", self.host.name)
        replied.set()

    def _reap(self, transport: Any) -> None:
        """Kill the jobs a lost connection left running there (known by pid; only if the
        process is still one of jaz's wrappers)."""
        for pid in list(self.orphans):
            check = (f"ps -o args= -p {int(pid)} 2>/dev/null | grep -q -e _jaz_s -e "
                     f"'/bin/sh -s' && kill -KILL -{int(pid)} 2>/dev/null; true")
            try:
                _exec(transport, check, timeout=CONNECT_TIMEOUT, host=self.host.name)
                self.orphans.discard(pid)
            except JazError:
                pass

    def _workdir(self, transport: Any) -> str:
        """The folder on the host for the jobs' files, and whether the login shell is a
        POSIX one (then a job's wrapper needs no /bin/sh of its own). jaz's job folder
        `~/.jaz/jobs` (0700; files older than JOB_FILES_DAYS, left by a jaz that never
        came back, removed): jobs outlive their connection. With `job_folder = false`,
        or where the login user's home cannot hold it, a private folder (`mktemp -d`) for
        $JAZ_OUTPUT only: jobs end with their connection, as before."""
        prepare = f"/bin/sh -c {shlex.quote(PREPARE)} jaz {int(self.host.job_folder)}"
        code, out, err = _exec(transport, 'echo "$0"; exec ' + prepare,
                               timeout=CONNECT_TIMEOUT, host=self.host.name)
        lines = out.decode(errors="replace").splitlines()
        if code == 0 and len(lines) == 2 and " " in lines[1]:
            self.posix = lines[0].rsplit("/", 1)[-1].lstrip("-") in POSIX_SHELLS
            found = lines[1]
        else:   # csh, fish...: through /bin/sh
            self.posix = False
            code, out, err = _exec(transport, f"exec {prepare}",
                                   timeout=CONNECT_TIMEOUT, host=self.host.name)
            found = out.decode(errors="replace").strip()
        kind, _, folder = found.partition(" ")
        if code != 0 or not folder.startswith("/"):
            raise Refused(f"host {self.host.name!r}: cannot make a private folder there "
                          f"(~/.jaz/jobs, or with mktemp -d): "
                          f"{err.decode(errors='replace').strip()}")
        self.jobs_dir = folder if kind == "jobs" else ""
        return folder

    def spend(self, prefix: str) -> bool:
        """A job's files whose result was read: removed with the next batch (one `rm` for
        SPENT_BATCH jobs, or at the next keepalive or close), not one command a job.
        Whether the batch is full (the caller then calls `clean`)."""
        with self._spent_lock:   # (not _lock: a connect in progress holds that one)
            self.spent.append(prefix)
            return len(self.spent) >= SPENT_BATCH

    def clean(self) -> None:
        with self._spent_lock:
            names, self.spent = self.spent, []
        if not names or not self.alive():
            with self._spent_lock:
                self.spent[:0] = names
            return
        files = " ".join(shlex.quote(f"{p}.{x}") for p in names for x in JOB_FILES)
        try:
            self.run(f"rm -f -- {files}", timeout=30)
        except JazError as e:   # (at worst removed after JOB_FILES_DAYS)
            log.warning("host %s: removing %d job(s)' files: %s", self.host.name,
                        len(names), e.message)

    def alive(self) -> bool:
        client = self._client
        return client is not None and client.get_transport() is not None and \
            client.get_transport().is_active()

    def check(self) -> None:
        """For heartbeats: connected (or reconnected), or the error why not. A host with
        no key on record is not contacted (as an agent without a pinned fingerprint):
        neither online nor offline as far as we know."""
        try:
            if not self.alive() and not has_known_key(target(self.host)):
                self.online = None
                self.error = (f"not trusted yet: no host key on record; "
                              f"jaz hosts trust {self.host.name}")
                return
            self.transport()
            self._seen()
        except JazError:
            pass

    def _seen(self) -> None:
        if self.online is not True:
            log.info("host %s: online (SSH)", self.host.name)
        self.online = True
        self.last_seen = time.time()
        self.error = ""

    def _away(self, error: JazError) -> None:
        if self.error != error.message:
            log.warning("host %s: %s", self.host.name, error.message)
        self.online = None if isinstance(error, HostKeyUnknown) else False
        self.error = error.message

    def lost(self, message: str) -> None:
        self.online = False
        self.error = message

    def take_slot(self) -> bool:
        """A job's slot on this connection, if one is free now (for `open(held=True)`)."""
        return self._slots.acquire(blocking=False)

    def free_slot(self) -> None:
        self._slots.release()
        if self.on_free is not None:
            self.on_free()

    def busy(self) -> int:
        """Jobs running on this host's connections."""
        return sum(c.running for c in self.pool) if self.pool else self.running

    def open(self, *, control: bool = False, timeout: float | None = None,
             held: bool = False) -> Any:
        """A new session channel (waiting for a free one of the host's slots, unless
        `held`: taken already with `take_slot`); the caller releases it with `release`."""
        slots = self._control if control else self._slots
        if not held and not slots.acquire(timeout=timeout if timeout is not None else -1):
            raise Unreachable(f"host {self.host.name!r}: no free SSH channel")
        try:
            transport = self.transport()
            chan = transport.open_session(timeout=CONNECT_TIMEOUT)
        except Exception as e:
            if control:
                slots.release()
            else:
                self.free_slot()
            if isinstance(e, JazError):
                raise
            self.lost(f"cannot open an SSH channel: {e}")
            raise Unreachable(f"host {self.host.name!r}: cannot open an SSH channel: "
                              f"{e or type(e).__name__}") from None
        chan._jaz_control = control
        self.last_seen = time.time()
        return chan

    def release(self, chan: Any) -> None:
        try:
            chan.close()
        finally:
            if chan._jaz_control:
                self._control.release()
            else:
                self.free_slot()

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 30.0
            ) -> tuple[int, bytes, bytes]:
        """Run a short command (on a control channel): exit status, stdout, stderr."""
        if not self._control.acquire(timeout=timeout):
            raise Unreachable(f"host {self.host.name!r}: no free SSH channel")
        try:
            return _exec(self.transport(), command, stdin=stdin, timeout=timeout,
                         host=self.host.name)
        finally:
            self._control.release()

    def copy(self, path: str, offset: int, feed: Any) -> int:
        """What a file there holds past `offset`, given to `feed` in chunks: the new
        offset (the same when the file is missing). One SFTP session of this
        connection's serves every job's files, one call at a time."""
        import errno

        with self._files_lock:
            try:
                files = self._job_files()
                try:   # (one request when nothing is new: the usual case of a tick)
                    if (files.stat(path).st_size or 0) <= offset:
                        return offset
                    f = files.open(path, "rb")
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        return offset
                    raise
                try:
                    f.seek(offset)
                    while data := f.read(1 << 20):
                        feed(data)
                        offset += len(data)
                finally:
                    f.close()
                return offset
            except JazError:
                raise
            except Exception as e:   # (the connection broke, or the file cannot be read)
                self._drop_files()
                raise Unreachable(f"host {self.host.name!r}: reading {path}: "
                                  f"{e or type(e).__name__}") from None

    def _job_files(self) -> Any:
        transport = self.transport()
        files = self._files
        if files is not None and files.get_channel().get_transport() is transport and \
                not files.get_channel().closed:
            return files
        self._drop_files()
        if not self._control.acquire(timeout=30):
            raise Unreachable(f"host {self.host.name!r}: no free SSH channel")
        try:
            self._files = self.sftp()
        except BaseException:
            self._control.release()
            raise
        return self._files

    def _drop_files(self) -> None:
        if self._files is not None:
            try:
                self._files.close()
            except Exception:   # (its connection is gone already)
                log.debug("host %s: closing the jobs' SFTP session", self.host.name)
            self._files = None
            self._control.release()

    def sftp(self) -> Any:
        """An SFTP session on the pooled connection (the caller closes it)."""
        import paramiko

        try:
            return paramiko.SFTPClient.from_transport(self.transport())
        except paramiko.SSHException as e:
            raise Unreachable(f"host {self.host.name!r}: no SFTP: {e}") from None

    def close(self) -> None:
        with self._files_lock:
            self._drop_files()
        with self._lock:
            if self._client is not None:
                via = getattr(self._client, "_jaz_via", None)
                self._client.close()
                while via is not None:
                    nxt = getattr(via, "_jaz_via", None)
                    via.close()
                    via = nxt
                self._client = None

    def status(self) -> dict[str, Any]:
        if self.online and not self.alive():
            self.online = False
            self.error = self.error or "the SSH connection is closed"
        seen = None if self.last_seen is None else \
            datetime.fromtimestamp(self.last_seen, UTC).astimezone().isoformat()
        return {"online": self.online, "last_seen": seen, "version": self._version(),
                "agent_running": None, "in_flight": self.running, "error": self.error}

    def _version(self) -> str | None:
        client = self._client
        transport = client.get_transport() if client is not None else None
        version = getattr(transport, "remote_version", None) if transport else None
        return str(version) if version else None
