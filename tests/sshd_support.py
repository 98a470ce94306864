"""Real OpenSSH `sshd` servers on free loopback ports for the SSH tests: each with its own
host key, an authorised test key, its log in a file, logging in as a test user whose
shell is /bin/sh (made with useradd when the tests run as root; the running user
otherwise). `make test` and `.ci/run` install openssh-server when it is missing; in CI
(`CI` set) a missing sshd fails the tests instead of skipping them."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port, wait_for

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
TEST_USER = "jaztest"
TEST_PASSWORD = "jaz-test-password-7f3e"


def need_sshd() -> str:
    if SSHD is None or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail("OpenSSH's sshd is not installed (apt-get install openssh-server); "
                        "in CI the SSH tests must run")
        pytest.skip("OpenSSH's sshd is not installed (make test installs openssh-server)")
    return SSHD


def test_user() -> str:
    """The user the tests log in as: `jaztest` (shell /bin/sh, no rc files to slow each
    command) when running as root, else the running user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", TEST_USER], check=True,
                       capture_output=True)
    # not "locked" ('!'), which sshd without PAM refuses: the tests' password (its
    # tests alone use it; the others log in with keys)
    shadow = Path("/etc/shadow").read_text()
    if f"\n{TEST_USER}:!" in "\n" + shadow or f"\n{TEST_USER}:*" in "\n" + shadow:
        subprocess.run(["chpasswd"], input=f"{TEST_USER}:{TEST_PASSWORD}\n", text=True,
                       check=True, capture_output=True)
    return TEST_USER


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "jaz-test", "-f",
                    str(path)], check=True, capture_output=True)
    return path


def public(path: Path) -> str:
    return Path(str(path) + ".pub").read_text().strip()


class Sshd:
    """One sshd: `start()`, `stop()`, `log()`; `host_key_line(name)` for known_hosts."""

    def __init__(self, folder: Path, client_keys: list[Path], *, extra: str = "",
                 host_key: Path | None = None) -> None:
        need_sshd()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.user = test_user()
        self.host_key = host_key or keygen(folder / "host_ed25519")
        # sshd reads authorized_keys as the user: a folder that user can reach
        self.shared = Path(tempfile.mkdtemp(prefix="jaz-sshd-"))
        self.shared.chmod(0o755)
        self.authorized = self.shared / "authorized_keys"
        self.authorized.write_text("".join(public(k) + "\n" for k in client_keys))
        self.authorized.chmod(0o644)
        self.logfile = folder / "sshd.log"
        self.config = folder / "sshd_config"
        self.config.write_text(   # `extra` first: in sshd_config the first value wins
            extra + f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {self.authorized}\n"
            "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nLogLevel DEBUG1\nPermitRootLogin prohibit-password\n"
            "AllowTcpForwarding yes\nSubsystem sftp internal-sftp\nPrintMotd no\n"
            "UseDNS no\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sshd:
        assert SSHD is not None
        if os.geteuid() == 0:   # sshd as root wants its privilege separation folder
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config), "-E",
                                      str(self.logfile)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    return s.recv(4).startswith(b"SSH-")
            except OSError:
                return False

        wait_for(listening, "sshd to listen", timeout=20)
        return self

    def stop(self) -> None:
        self._stop()
        shutil.rmtree(self.shared, ignore_errors=True)

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def host_key_line(self, name: str = "127.0.0.1") -> str:
        """A known_hosts line for this server's key under `name` ("[127.0.0.1]:PORT")."""
        kind, b64 = public(self.host_key).split()[:2]
        return f"[{name}]:{self.port} {kind} {b64}\n"

    def crash(self) -> None:
        """Kill this sshd and every process of its (a host going down): the listener,
        its per-connection processes and their sessions."""
        assert self.proc is not None
        kids: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(entry.name))
        todo, mine = [self.proc.pid], []
        while todo:
            pid = todo.pop()
            mine.append(pid)
            todo.extend(kids.get(pid, []))
        for pid in mine:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None

    def restart(self) -> Sshd:
        """The same server (port, host key) again, after `crash`."""
        return self.start()

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-lf", str(self.host_key) + ".pub"],
                             capture_output=True, text=True, check=True).stdout
        return out.split()[1]


class Cutter:
    """A TCP forwarder on a free loopback port to `port`, whose connections can be cut
    (a dropped network) or which can hold them unanswered."""

    def __init__(self, port: int) -> None:
        import threading

        self.target = port
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.frozen: set[socket.socket] = set()   # sockets whose data goes nowhere
        self.freeze_next = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                a, _ = self.server.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.pairs.append((a, b))
                if self.freeze_next > 0:
                    self.freeze_next -= 1
                    self.frozen.update((a, b))
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def _pump(self, x: socket.socket, y: socket.socket) -> None:
        try:
            while data := x.recv(65536):
                if x not in self.frozen:
                    y.sendall(data)
        except OSError:
            pass
        for s in (x, y):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def freeze(self, new: int = 0) -> None:
        """A network gone silent: the open connections (and the next `new` ones) stay up
        but carry nothing more, either way."""
        with self.lock:
            for a, b in self.pairs:
                self.frozen.update((a, b))
            self.freeze_next = new

    def cut(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.server.close()
        self.cut()


ROOT = Path(__file__).resolve().parent.parent


class Lab:
    """A client side (HOME with ~/.ssh, JAZ_HOME) and one sshd that knows its key."""

    def __init__(self, root: Path, sshd: Sshd, key: Path) -> None:
        self.root = root
        self.sshd = sshd
        self.key = key
        self.home = root / "userhome"
        (self.home / ".ssh").mkdir(parents=True, exist_ok=True)
        self.jaz_home = root / "jazhome"
        self.jaz_home.mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("JAZ_SERVER", "JAZ_TOKEN", "SSH_AUTH_SOCK")}
        self.env.update(HOME=str(self.home), JAZ_HOME=str(self.jaz_home))

    def ssh_config(self, text: str) -> None:
        (self.home / ".ssh" / "config").write_text(text)

    def know(self, line: str | None = None) -> None:
        (self.home / ".ssh" / "known_hosts").write_text(line or self.sshd.host_key_line())

    def alias(self, name: str, sshd: Sshd | None = None, extra: str = "") -> str:
        s = sshd or self.sshd
        return (f"Host {name}\n  HostName 127.0.0.1\n  Port {s.port}\n  User {s.user}\n"
                f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n  ConnectTimeout 3\n"
                + extra)

    def hosts(self, text: str) -> Path:
        path = self.root / "hosts.toml"
        path.write_text(text)
        return path

    def jaz(self, *args: object, timeout: float = 60, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=timeout, input=input,
                              cwd=self.root)

    def run(self, net: str, hosts: str, *args: object, timeout: float = 60
            ) -> tuple[subprocess.CompletedProcess[str], dict]:
        path = self.root / "net.toml"
        path.write_text(net)
        result = self.jaz("run", path, "--hosts", self.hosts(hosts), "--db",
                          self.root / "r.db", "--json", *args, timeout=timeout)
        try:
            view = json.loads(result.stdout)
        except ValueError:
            view = {}
        return result, view

    def message(self, run_id: int, job: str) -> str:
        from jaz.engine.store.sqlite import SqliteStore

        store = SqliteStore(self.root / "r.db")
        try:
            return str(store.get_job(run_id, job).message)
        finally:
            store.close()

    def popen(self, net: str, hosts: str) -> subprocess.Popen[str]:
        path = self.root / "net.toml"
        path.write_text(net)
        return subprocess.Popen([sys.executable, "-m", "jaz", "run", str(path), "--hosts",
                                 str(self.hosts(hosts)), "--db", str(self.root / "r.db"),
                                 "--json"], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.root)


def make_lab(tmp_path: Path) -> Iterator[Lab]:
    """A client side whose ~/.ssh/config names `box` (the sshd), which it knows."""
    need_sshd()
    key = keygen(tmp_path / "id_ed25519")
    sshd = Sshd(tmp_path / "sshd", [key]).start()
    lab = Lab(tmp_path, sshd, key)
    lab.ssh_config(lab.alias("box"))
    lab.know()
    yield lab
    sshd.stop()
