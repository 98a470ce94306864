"""SSH hosts against a real OpenSSH sshd on loopback (tests/sshd_support.py): more jobs at
once than one connection's channels (a second pooled connection, bounded by the host's
`connections`), ProxyCommand from ~/.ssh/config through a second sshd with `ssh -W`,
and `user = "..."` on an SSH host refused with a clear message."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_support import Lab, Sshd, make_lab
from support import wait_for

HOSTS = '[hosts.box]\nssh = "box"\n'


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path)


def _logins(sshd: Sshd) -> int:
    return sshd.log().count("Accepted publickey")


def _gated_jobs(n: int, gate: Path) -> str:
    return "".join(f'[jobs.j{i}]\nhost = "box"\nrun = \'\'\'\necho started\n'
                   f'while [ ! -e {gate} ]; do sleep 0.05; done\necho done\n\'\'\'\n'
                   for i in range(n))


def _started(lab: Lab) -> int:
    return sum(1 for p in lab.root.rglob("j*.out") if "started" in p.read_text())


def test_more_jobs_than_one_connections_channels_open_a_second_connection(lab: Lab):
    """12 jobs at once on one host: 8 channels on the first connection, the rest on a
    second one; all run at the same time."""
    gate = Path("/tmp") / f"jaz-ssh-pool-{os.getpid()}-{time.monotonic_ns()}"
    proc = lab.popen(_gated_jobs(12, gate), HOSTS)
    try:
        wait_for(lambda: _started(lab) == 12, "12 jobs running at once on the host",
                 timeout=30)
        # (2 needed; under load a connection that broke is made again: never past 4)
        assert 2 <= _logins(lab.sshd) <= 4, lab.sshd.log()[-3000:]
        gate.write_text("")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)


def test_the_hosts_connections_limit_bounds_the_pool(lab: Lab):
    """`connections = 1`: the jobs past 8 wait for a free channel on the one connection."""
    gate = Path("/tmp") / f"jaz-ssh-pool1-{os.getpid()}-{time.monotonic_ns()}"
    proc = lab.popen(_gated_jobs(10, gate), HOSTS + "connections = 1\n")
    try:
        wait_for(lambda: _started(lab) == 8, "8 jobs running", timeout=30)
        gate.write_text("")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert _started(lab) == 10
        assert _logins(lab.sshd) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)


def test_a_bad_connections_value_is_a_clear_error(lab: Lab):
    result, _ = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS + "connections = 0\n")
    assert result.returncode == 2, result.stderr
    assert "connections" in result.stderr and "1-64" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH's ssh client is needed")
def test_proxy_command_through_a_second_sshd_with_ssh_w(lab: Lab, tmp_path: Path):
    """ProxyCommand `ssh -W %h:%p hop` (run without a shell; its tokens expanded): the
    target's key is still checked by jaz under its own name."""
    jump = Sshd(tmp_path / "jump", [lab.key]).start()
    try:
        known = tmp_path / "ossh_known_hosts"
        known.write_text(jump.host_key_line())
        ossh = tmp_path / "ossh_config"
        ossh.write_text(f"Host hop\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {jump.user}\n"
                        f"  IdentityFile {lab.key}\n  IdentitiesOnly yes\n"
                        f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n"
                        "  BatchMode yes\n")
        lab.ssh_config(lab.alias("box", extra=f"  ProxyCommand ssh -F {ossh} -W %h:%p hop\n"))
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo through"\n', HOSTS)
        assert result.returncode == 0, (view, result.stderr)
        assert "Accepted publickey" in jump.log()
        assert f"target 127.0.0.1 port {lab.sshd.port}" in jump.log(), jump.log()
        # the target's key is checked by jaz: unknown under its name, refused
        lab.know(jump.host_key_line())
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo through"\n', HOSTS)
        assert result.returncode == 1
        assert "is not known" in lab.message(view["run_id"], "a")
    finally:
        jump.stop()


def test_a_proxy_command_that_cannot_start_fails_the_job_clearly(lab: Lab):
    lab.ssh_config(lab.alias("box", extra="  ProxyCommand /nonexistent/proxy %h %p\n"))
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo x"\n', HOSTS)
    assert result.returncode == 1, result.stderr
    message = lab.message(view["run_id"], "a")
    assert "ProxyCommand" in message and "/nonexistent/proxy 127.0.0.1" in message, message
    assert "Traceback" not in result.stderr


def test_user_on_an_ssh_host_is_refused_saying_what_to_do(lab: Lab):
    result, view = lab.run('[jobs.a]\nhost = "box"\nuser = "nobody"\nrun = "id"\n', HOSTS)
    assert result.returncode == 1, result.stderr
    message = lab.message(view["run_id"], "a")
    assert "user = 'nobody'" in message and "[hosts." in message, message
    assert "Traceback" not in result.stderr
