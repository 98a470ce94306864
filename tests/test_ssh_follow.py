"""SSH jobs that outlive their connection and their jaz process (a real OpenSSH sshd on
loopback, tests/sshd_support.py): a connection cut mid-job (a forwarder cut, a network
gone silent) and a `jaz run` killed with -9 mid-job; the job runs on there, is followed
from its files to its real exit code and outputs, and its files are removed there once
read. A stop of a job being followed still kills its group there."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_support import Cutter, Lab, make_lab
from support import wait_for

from jaz.engine.executors.base import Attempt
from jaz.engine.model import Job, RunAction

HOSTS = '[hosts.box]\nssh = "box"\n'


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path)


@pytest.fixture
def cut_lab(lab: Lab) -> Iterator[tuple[Lab, Cutter]]:
    """The lab, its `box` reached through a forwarder that can be cut."""
    cutter = Cutter(lab.sshd.port)
    lab.ssh_config(lab.alias("box").replace(f"Port {lab.sshd.port}", f"Port {cutter.port}")
                   .replace("ConnectTimeout 3", "ConnectTimeout 2")
                   + "  ServerAliveInterval 1\n  ServerAliveCountMax 2\n")
    lab.know(f"[127.0.0.1]:{cutter.port} " + lab.sshd.host_key_line().split(" ", 1)[1])
    yield lab, cutter
    cutter.close()


def _gate(name: str) -> Path:
    return Path("/tmp") / f"jaz-ssh-{name}-{os.getpid()}-{time.monotonic_ns()}"


def _log(lab: Lab, job: str, suffix: str = ".out") -> str:
    return "".join(p.read_text() for p in lab.root.rglob(f"{job}.*{suffix}")
                   if p.parent.name != "sshd")


def _remote_files(lab: Lab, job: str) -> list[str]:
    """This lab's job's files in the job folder on the host (the test user's
    ~/.jaz/jobs): named by the run, the job's execution and a digest of the database."""
    from jaz.hosts.executor import AgentHosts, owner_of

    folder = Path(pwd.getpwnam(lab.sshd.user).pw_dir) / ".jaz" / "jobs"
    stem = next(lab.root.rglob(f"{job}.*.out")).with_suffix("")
    digest = AgentHosts({}, owner_of(str(lab.root / "r.db"))).job_id(
        Attempt(run_id=1, jobnet="", job=Job(name=job, action=RunAction(script="")), attempt=0,
                host="box", env={}, cwd=stem.parent, base_dir=stem.parent,
                stdout_path=stem, stderr_path=stem, output_path=Path(f"{stem}.vars")))
    found = sorted(p.name for p in folder.glob(f"{digest}.*")) if folder.is_dir() else []
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _gated(job: str, *gates: Path, tail: str = "") -> str:
    lines = ["echo before"]
    for i, gate in enumerate(gates):
        lines += [f"while [ ! -e {gate} ]; do sleep 0.05; done", f"echo step-{i}"]
    body = "\n".join(lines) + "\n" + tail
    return f'[jobs.{job}]\nhost = "box"\nrun = \'\'\'\n{body}\'\'\'\n'


def test_a_cut_connection_mid_job_is_followed_to_its_real_end(cut_lab: tuple[Lab, Cutter]):
    """Cut mid-job: jaz reconnects, copies what the job writes after (live), and records
    its real exit code and outputs; its files there are removed once read."""
    lab, cutter = cut_lab
    one, two = _gate("one"), _gate("two")
    net = _gated("cutme", one, two, tail='echo late-err >&2\necho "rows=7" >> "$JAZ_OUTPUT"'
                                          "\nexit 7\n")
    proc = lab.popen(net, HOSTS)
    try:
        wait_for(lambda: "before" in _log(lab, "cutme"), "the job to start")
        assert _remote_files(lab, "cutme"), "the job writes no files on the host"
        cutter.cut()
        wait_for(lambda: cutter.pairs, "jaz to connect again", timeout=30)
        one.write_text("")
        wait_for(lambda: "step-0" in _log(lab, "cutme"),
                 "output written after the cut to be followed", timeout=30)
        assert proc.poll() is None
        two.write_text("")
        out, err = proc.communicate(timeout=60)
        job = json.loads(out)["jobs"]["cutme"]
        assert (job["status"], job["exit_code"], job["attempts"]) == ("failed", 7, 1), err
        assert job["outputs"] == {"rows": "7"}
        assert _log(lab, "cutme") == "before\nstep-0\nstep-1\n"
        assert _log(lab, "cutme", ".err") == "late-err\n"
        assert "lost mid-job" in err and "following it" in err
        assert _remote_files(lab, "cutme") == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for g in (one, two):
            g.unlink(missing_ok=True)


def test_a_network_gone_silent_mid_job_is_noticed_and_the_job_followed(
        cut_lab: tuple[Lab, Cutter]):
    """Keepalives notice the silence and close the connection; the first reconnection
    hangs too (bounded by ConnectTimeout); a later one reads the job's real end."""
    lab, cutter = cut_lab
    gate = _gate("silent")
    proc = lab.popen(_gated("quiet", gate, tail="exit 4\n"), HOSTS)
    try:
        wait_for(lambda: "before" in _log(lab, "quiet"), "the job to start")
        started = time.monotonic()
        cutter.freeze(new=1)
        gate.write_text("")   # it ends there while nothing reaches jaz
        out, err = proc.communicate(timeout=60)
        job = json.loads(out)["jobs"]["quiet"]
        assert (job["status"], job["exit_code"], job["attempts"]) == ("failed", 4, 1), err
        assert _log(lab, "quiet") == "before\nstep-0\n"
        assert time.monotonic() - started < 40
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)


def test_jaz_run_killed_mid_job_then_resumed_adopts_the_job_and_its_result(lab: Lab):
    """kill -9 of `jaz run`: the job runs on there (it is not run twice); `jaz run
    --resume` follows it from its files and records its exit code, outputs and logs."""
    gate = _gate("resume")
    count = _gate("count")
    net = _gated("adoptme", gate, tail=f'echo ran >> {count}\necho "k=v" >> "$JAZ_OUTPUT"\n'
                                       'echo after-restart\n') + \
        '[jobs.next]\nneeds = ["adoptme"]\nrun = "echo next $k"\n'
    proc = lab.popen(net, HOSTS)
    try:
        wait_for(lambda: "before" in _log(lab, "adoptme"), "the job to start")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        gate.write_text("")   # it goes on there, its output into its files only
        wait_for(count.exists, "the job to go on there after jaz died")
        result = lab.jaz("run", "--resume", "1", "--hosts", lab.root / "hosts.toml", "--db",
                         lab.root / "r.db", "--json", timeout=60)
        view = json.loads(result.stdout)
        assert view["status"] == "succeeded", result.stderr
        job = view["jobs"]["adoptme"]
        assert (job["status"], job["exit_code"]) == ("succeeded", 0), job
        assert job["outputs"] == {"k": "v"}
        assert _log(lab, "adoptme") == "before\nstep-0\nafter-restart\n"
        assert count.read_text() == "ran\n"   # once: adopted, not rerun
        assert "next v" in _log(lab, "next")
        assert _remote_files(lab, "adoptme") == []
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)
        count.unlink(missing_ok=True)


def test_a_stop_of_a_job_being_followed_kills_its_group_there(cut_lab: tuple[Lab, Cutter]):
    lab, cutter = cut_lab
    marker = _gate("pid")
    net = ('[jobs.stopme]\nhost = "box"\nrun = \'\'\'\n'
           f'sleep 300 &\necho $! > {marker}\necho started\nwait\n\'\'\'\n')
    proc = lab.popen(net, HOSTS)
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), "the job to start")
        pid = int(marker.read_text())
        cutter.cut()
        wait_for(lambda: cutter.pairs, "jaz to connect again", timeout=30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        job = json.loads(out)["jobs"]["stopme"]
        assert job["status"] == "stopped", (job, err)
        assert job["exit_code"] == 128 + signal.SIGTERM   # as the shell saw it
        assert not _alive(pid), "the remote job outlived its stop"
        assert _remote_files(lab, "stopme") == [], err
    finally:
        if proc.poll() is None:
            proc.kill()
        marker.unlink(missing_ok=True)


def test_the_job_survives_the_sshd_process_of_its_connection_being_killed(lab: Lab):
    """The sshd process serving jaz's connection killed (not the listener): the job's
    session outlives it; jaz reconnects and reads its end."""
    gate = _gate("sshdkill")
    proc = lab.popen(_gated("sshdkill", gate, tail="exit 5\n"), HOSTS)
    try:
        wait_for(lambda: "before" in _log(lab, "sshdkill"), "the job to start")
        assert lab.sshd.proc is not None
        kids = subprocess.run(["pgrep", "-P", str(lab.sshd.proc.pid)], capture_output=True,
                              text=True).stdout.split()
        assert kids, "no sshd process for jaz's connection"
        for pid in kids:
            os.kill(int(pid), signal.SIGKILL)
        gate.write_text("")
        out, err = proc.communicate(timeout=60)
        assert out, err
        job = json.loads(out)["jobs"]["sshdkill"]
        assert (job["status"], job["exit_code"]) == ("failed", 5), (job, err)
        assert _log(lab, "sshdkill") == "before\nstep-0\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)


def test_without_a_job_folder_a_cut_connection_ends_the_job_and_kills_its_group(
        cut_lab: tuple[Lab, Cutter]):
    """`job_folder = false`: the job's output has only its channel, so a cut ends it in
    error, and its group is killed there once the host answers again."""
    lab, cutter = cut_lab
    marker = _gate("nofolder")
    net = ('[jobs.nofolder]\nhost = "box"\nrun = \'\'\'\n'
           f'sleep 300 &\necho $! > {marker}\nwait\n\'\'\'\n')
    proc = lab.popen(net, HOSTS + "job_folder = false\n")
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), "the job to start")
        pid = int(marker.read_text())
        cutter.cut()
        out, err = proc.communicate(timeout=40)
        view = json.loads(out)
        assert view["jobs"]["nofolder"]["status"] == "failed", err
        message = lab.message(view["run_id"], "nofolder")
        assert "connection was lost" in message and "process group was killed" in message
        wait_for(lambda: not _alive(pid), "the remote job to be killed", timeout=5)
        assert _remote_files(lab, "nofolder") == []
    finally:
        if proc.poll() is None:
            proc.kill()
        marker.unlink(missing_ok=True)


def test_an_adopted_jobs_later_output_is_redacted_with_its_secrets(lab: Lab):
    """After kill -9 and --resume, what the job wrote meanwhile is copied through the
    redactor: its secret is read again from jaz's secrets."""
    canary = "canary-" + os.urandom(6).hex()
    lab.env["JAZ_SECRET_TOKEN"] = canary
    gate = _gate("secret")
    net = ('[jobs.hush]\nhost = "box"\nenv = { TOKEN = { secret = "token" } }\n'
           f'run = \'\'\'\necho before\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n'
           'echo "token is $TOKEN"\n\'\'\'\n')
    proc = lab.popen(net, HOSTS)
    try:
        wait_for(lambda: "before" in _log(lab, "hush"), "the job to start")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        gate.write_text("")
        result = lab.jaz("run", "--resume", "1", "--hosts", lab.root / "hosts.toml", "--db",
                         lab.root / "r.db", "--json", timeout=60)
        assert json.loads(result.stdout)["jobs"]["hush"]["status"] == "succeeded", result.stderr
        assert _log(lab, "hush") == "before\ntoken is ***\n"
        for f in lab.root.rglob("*"):
            if f.is_file():
                assert canary.encode() not in f.read_bytes(), f"the secret is in {f}"
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)
