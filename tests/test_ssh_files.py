"""wait_file, transfer (SFTP, checksummed, 100 MB) and reboot on SSH hosts, against a
real sshd on loopback (tests/sshd_support.py), from a real `jaz run`."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_support import Lab, make_lab
from support import wait_for

HOSTS = '[hosts.box]\nssh = "box"\n'


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path)


@pytest.fixture
def remote_dir(lab: Lab) -> Iterator[Path]:
    """A folder the SSH user can write (this machine is the host too)."""
    import pwd
    import shutil

    folder = Path("/tmp") / f"jaz-ssh-files-{os.getpid()}-{time.monotonic_ns()}"
    folder.mkdir()
    entry = pwd.getpwnam(lab.sshd.user)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def test_transfer_100_mb_both_ways_checksummed(lab: Lab, remote_dir: Path):
    source = lab.root / "big.bin"
    with source.open("wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    back = lab.root / "back"
    back.mkdir()
    net = (f'[jobs.up]\ntransfer = {{ from = "{source}", to = "box:{remote_dir}/big.bin" }}\n'
           f'[jobs.down]\nneeds = ["up"]\n'
           f'transfer = {{ from = "box:{remote_dir}/big.bin", to = "{back}/" }}\n')
    started = time.monotonic()
    result, view = lab.run(net, HOSTS, timeout=300)
    assert result.returncode == 0, (result.stderr, view)
    took = time.monotonic() - started
    want = _sha(source)
    assert _sha(remote_dir / "big.bin") == want
    assert _sha(back / "big.bin") == want
    logs = lab.jaz("logs", view["run_id"], "up", "--db", lab.root / "r.db").stdout
    assert f"sha256 {want}" in logs and "104857600 bytes" in logs
    assert not list(remote_dir.glob(".big.bin.jaz-part-*")), "a part file was left"
    print(f"100 MB up and down over SFTP in {took:.1f}s")


def test_transfer_refuses_to_overwrite_and_globs(lab: Lab, remote_dir: Path):
    for name in ("a.csv", "b.csv", "c.txt"):
        (remote_dir / name).write_text(name)
        os.chown(remote_dir / name, remote_dir.stat().st_uid, remote_dir.stat().st_gid)
    into = lab.root / "in"
    into.mkdir()
    (into / "a.csv").write_text("old")
    net = f'[jobs.get]\ntransfer = {{ from = "box:{remote_dir}/*.csv", to = "{into}/" }}\n'
    result, view = lab.run(net, HOSTS)
    assert result.returncode == 1
    assert (into / "a.csv").read_text() == "old"
    assert "exists; set overwrite = true" in lab.message(view["run_id"], "get")
    (into / "a.csv").unlink()
    result, view = lab.run(net, HOSTS)
    assert result.returncode == 0, lab.message(view["run_id"], "get")
    assert sorted(p.name for p in into.iterdir()) == ["a.csv", "b.csv"]
    assert (into / "b.csv").read_text() == "b.csv"


def test_wait_file_on_an_ssh_host(lab: Lab, remote_dir: Path):
    target = remote_dir / "ready.flag"
    net = (f'[jobs.w]\nwait_file = {{ host = "box", path = "{remote_dir}/*.flag", '
           'interval = "0.2s", timeout = "20s" }\n'
           '[jobs.after]\nneeds = ["w"]\nrun = "echo got $FILE"\n')
    proc = lab.popen(net, HOSTS)
    try:
        time.sleep(0.5)   # (the file comes later than the job: what it waits for)
        assert proc.poll() is None, proc.communicate()
        target.write_text("x")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (out, err)
        import json

        view = json.loads(out)
        assert view["jobs"]["w"]["outputs"]["FILE"] == str(target)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_reboot_waits_for_sshd_to_come_back(lab: Lab, remote_dir: Path):
    marker = remote_dir / "rebooting"
    hosts = HOSTS + f'reboot_command = "touch {marker}"\n'
    net = '[jobs.r]\nreboot = { host = "box", mode = "force", wait = "30s" }\n'
    restarted = threading.Event()

    def host_goes_down_and_up() -> None:
        wait_for(marker.exists, "the reboot command to run", timeout=30)
        lab.sshd.crash()
        time.sleep(1.0)   # the host is away for a while (what the job must wait out)
        lab.sshd.restart()
        restarted.set()

    t = threading.Thread(target=host_goes_down_and_up, daemon=True)
    t.start()
    result, view = lab.run(net, hosts, timeout=90)
    t.join(timeout=30)
    assert restarted.is_set()
    assert result.returncode == 0, (result.stderr, lab.message(view["run_id"], "r"))
    logs = lab.jaz("logs", view["run_id"], "r", "--db", lab.root / "r.db").stdout
    assert "sshd is back" in logs


def test_reboot_that_never_happens_fails_after_wait(lab: Lab):
    hosts = HOSTS + 'reboot_command = "true"\n'
    net = '[jobs.r]\nreboot = { host = "box", mode = "force", wait = "2s" }\n'
    started = time.monotonic()
    result, view = lab.run(net, hosts, timeout=60)
    assert result.returncode == 1
    assert "did not come back within" in lab.message(view["run_id"], "r")
    assert "never dropped" in lab.message(view["run_id"], "r")
    assert time.monotonic() - started < 30
