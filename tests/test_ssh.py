"""SSH hosts against a real OpenSSH sshd on loopback (tests/sshd_support.py): host keys
(unknown, changed: refused before any authentication), `jaz hosts trust`, auth
failures, refused and silent hosts, and jobs run from a real `jaz run`: outputs, exit
codes, env, cwd, live logs, stop and timeout killing the remote group, fan-out,
ProxyJump, and a secret that never shows (dropped connections and restarts:
tests/test_ssh_follow.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshd_support import Lab, Sshd, keygen, make_lab
from support import wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path)


HOSTS = '[hosts.box]\nssh = "box"\n'


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _auth_attempts(sshd: Sshd) -> list[str]:
    """sshd's log lines about authentication (none: no credential was offered)."""
    return [line for line in sshd.log().splitlines()
            if re.search(r"userauth|Accepted|Failed|Invalid user|input_userauth", line)]


# ------------------------------------------------------------------ the policy

def test_no_source_uses_auto_add_or_warning_policy():
    """A host whose key is unknown is refused, never added or merely warned about."""
    for path in (ROOT / "jaz").rglob("*.py"):
        text = path.read_text()
        for bad in ("AutoAddPolicy", "WarningPolicy"):
            assert bad not in text, f"{path} uses paramiko's {bad}"
    text = (ROOT / "jaz" / "hosts" / "ssh.py").read_text()
    assert "paramiko.RejectPolicy" in text


# ------------------------------------------------------------------ jobs from `jaz run`

def test_run_jobs_on_an_ssh_host_outputs_exit_codes_env_cwd(lab: Lab):
    net = """
[params]
GREETING = "hi there"
[jobs.one]
host = "box"
cwd = "/tmp"
run = '''
echo "$GREETING from $(whoami) in $(pwd)"
echo to-stderr >&2
echo "rows=42" >> "$JAZ_OUTPUT"
'''
[jobs.two]
needs = ["one"]
host = "box"
run = 'echo "rows were $rows"; exit 3'
"""
    result, view = lab.run(net, HOSTS)
    assert result.returncode == 1, result.stderr
    one, two = view["jobs"]["one"], view["jobs"]["two"]
    assert one["status"] == "succeeded", one
    assert one["outputs"] == {"rows": "42"}
    assert (two["status"], two["exit_code"]) == ("failed", 3)
    logs = lab.jaz("logs", view["run_id"], "one", "--db", lab.root / "r.db")
    assert f"hi there from {lab.sshd.user} in /tmp" in logs.stdout
    assert "to-stderr" in logs.stdout
    assert "rows were 42" in lab.jaz("logs", view["run_id"], "two", "--db",
                                     lab.root / "r.db").stdout


def test_output_reaches_the_log_file_while_the_job_runs(lab: Lab):
    gate = Path("/tmp") / f"jaz-ssh-gate-{os.getpid()}-{time.monotonic_ns()}"
    net = ('[jobs.live]\nhost = "box"\nrun = \'\'\'\necho first-line\necho err-line >&2\n'
           f'while [ ! -e {gate} ]; do sleep 0.05; done\necho second-line\n\'\'\'\n')
    proc = lab.popen(net, HOSTS)
    try:
        def log_text(suffix: str) -> str:
            return "".join(p.read_text() for p in lab.root.rglob(f"live.*{suffix}"))

        wait_for(lambda: "first-line" in log_text(".out"), "the first line in the log")
        wait_for(lambda: "err-line" in log_text(".err"), "stderr in its log")
        assert "second-line" not in log_text(".out") and proc.poll() is None
        gate.write_text("")
        out, err = proc.communicate(timeout=30)
        assert json.loads(out)["jobs"]["live"]["status"] == "succeeded"
        assert log_text(".out") == "first-line\nsecond-line\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        gate.unlink(missing_ok=True)


def test_a_long_script_and_odd_values_arrive_intact(lab: Lab):
    """Past 64 KiB the wrapper goes through `/bin/sh -s` instead of the login shell's
    builtins; quotes, newlines and `$` in values are the job's, not the wrapper's."""
    odd = "it's \"quoted\" $HOME `x` \\ end"
    filler = "# " + "x" * 100 + "\n"
    net = ("[params]\nODD = '''" + odd + "'''\n"
           '[jobs.big]\nhost = "box"\nrun = \'\'\'\n' + filler * 700
           + 'printf "%s\\n" "$ODD"\nprintf "n=%s\\n" 700\n\'\'\'\n'
           '[jobs.small]\nhost = "box"\nrun = \'printf "%s\\n" "$ODD"\'\n')
    result, view = lab.run(net, HOSTS)
    assert result.returncode == 0, result.stderr
    for job in ("big", "small"):
        logs = lab.jaz("logs", view["run_id"], job, "--db", lab.root / "r.db").stdout
        assert odd in logs, (job, logs[-300:])


def test_user_at_address_port_in_the_hosts_file(lab: Lab):
    lab.ssh_config("")
    hosts = (f'[hosts.box]\nssh = "{lab.sshd.user}@127.0.0.1:{lab.sshd.port}"\n'
             f'identity_file = "{lab.key}"\n')
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo ok-$((6*7))"\n', hosts)
    assert result.returncode == 0, result.stderr
    assert view["jobs"]["a"]["status"] == "succeeded"


def test_strict_key_exchange_and_nodelay_on_the_pooled_connection(lab: Lab):
    import socket as sk

    from jaz.hosts.config import Host
    from jaz.hosts.ssh import Connection

    os.environ["HOME"], home = str(lab.home), os.environ["HOME"]
    try:
        conn = Connection(Host(name="box", ssh="box"))
        transport = conn.transport()
        assert transport.agreed_on_strict_kex   # the Terrapin fix, negotiated with OpenSSH
        assert transport.sock.getsockopt(sk.IPPROTO_TCP, sk.TCP_NODELAY)
        assert any(t.name == "ssh-box-keepalive" and t.is_alive()
                   for t in threading.enumerate())
        code, out, _ = conn.run("echo $0; ps -o args= -p $$", timeout=10)
        assert code == 0 and b"-sh" not in out   # not a login shell
        assert conn.transport() is transport     # pooled: the same connection again
        conn.close()
    finally:
        os.environ["HOME"] = home


def test_jaz_help_and_hosts_config_do_not_import_paramiko():
    code = ("import sys, jaz.cli.app, jaz.hosts.config, jaz.hosts.executor, jaz.hosts.fanout;"
            "assert 'paramiko' not in sys.modules, 'paramiko imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_password_from_jaz_secrets_never_in_files_or_argv(tmp_path: Path):
    from sshd_support import TEST_PASSWORD, test_user

    if test_user() != "jaztest":
        pytest.skip("needs the jaztest user (the tests run as root)")
    sshd = Sshd(tmp_path / "sshd", [], extra="PasswordAuthentication yes\n").start()
    try:
        lab = Lab(tmp_path, sshd, tmp_path / "no-such-key")
        lab.ssh_config(lab.alias("box").replace(f"  IdentityFile {lab.key}\n", ""))
        lab.know()
        lab.env["JAZ_SECRET_BOXPW"] = TEST_PASSWORD
        hosts = HOSTS + 'password_secret = "boxpw"\n'
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo in"\n', hosts)
        assert result.returncode == 0, result.stderr
        assert "Accepted password for jaztest" in sshd.log()
        for f in tmp_path.rglob("*"):
            if f.is_file() and f.name != "sshd.log":
                assert TEST_PASSWORD.encode() not in f.read_bytes(), f
        assert TEST_PASSWORD not in sshd.log()
        # unknown key: the password is not sent
        (lab.home / ".ssh" / "known_hosts").unlink()
        before = sshd.log().count("password for")
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo in"\n', hosts)
        assert result.returncode == 1 and "not known" in result.stderr
        assert sshd.log().count("password for") == before
    finally:
        sshd.stop()


def test_passphrase_of_a_key_from_jaz_secrets(tmp_path: Path):
    key = tmp_path / "id_locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "open sesame", "-f", str(key)],
                   check=True, capture_output=True)
    sshd = Sshd(tmp_path / "sshd", [key]).start()
    try:
        lab = Lab(tmp_path, sshd, key)
        lab.ssh_config(lab.alias("box"))
        lab.know()
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
        assert result.returncode == 1   # locked, and no passphrase
        lab.env["JAZ_SECRET_KEYPASS"] = "open sesame"
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n',
                               HOSTS + 'passphrase_secret = "keypass"\n')
        assert result.returncode == 0, result.stderr
    finally:
        sshd.stop()


def test_keys_of_the_running_ssh_agent_are_used(lab: Lab):
    sock = lab.root / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, "ssh-agent to listen")
        env = dict(lab.env, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", str(lab.key)], env=env, check=True, capture_output=True)
        lab.ssh_config(lab.alias("box").replace(f"  IdentityFile {lab.key}\n", "")
                       .replace("IdentitiesOnly yes", "IdentitiesOnly no"))
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
        assert result.returncode == 1   # no key without the agent
        lab.env["SSH_AUTH_SOCK"] = str(sock)
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
        assert result.returncode == 0, result.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=10)


# ------------------------------------------------------------------ host keys

def test_unknown_host_key_fails_naming_host_and_fingerprint_and_sends_nothing(lab: Lab):
    (lab.home / ".ssh" / "known_hosts").unlink()
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "touch /tmp/never-$$"\n', HOSTS)
    assert result.returncode == 1
    error = result.stderr
    assert "'box'" in error and lab.sshd.fingerprint() in error and "not known" in error
    assert "jaz hosts trust box" in error or "nothing was sent" in error
    assert _auth_attempts(lab.sshd) == [], "a credential was offered to an unknown host"


def test_changed_host_key_is_refused_before_authentication(lab: Lab, tmp_path: Path):
    other = keygen(tmp_path / "other_host_key")
    kind, b64 = (Path(str(other) + ".pub").read_text().split())[:2]
    lab.know(f"[127.0.0.1]:{lab.sshd.port} {kind} {b64}\n")
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert result.returncode == 1
    error = result.stderr
    assert "CHANGED" in error and lab.sshd.fingerprint() in error and "'box'" in error
    assert _auth_attempts(lab.sshd) == [], "a credential was offered to a changed host"
    lab.know()   # the right key again: now the log shows the login (the check can see one)
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert result.returncode == 0 and _auth_attempts(lab.sshd) != []


def test_hashed_known_hosts_entries_are_honoured(lab: Lab):
    kh = lab.home / ".ssh" / "known_hosts"
    subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)
    assert kh.read_text().startswith("|1|")
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert result.returncode == 0, view


def test_hosts_trust_shows_the_fingerprint_asks_and_records(lab: Lab):
    (lab.home / ".ssh" / "known_hosts").unlink()
    hosts = lab.hosts(HOSTS)
    no = lab.jaz("hosts", "trust", "box", "--hosts", hosts, input="n\n")
    assert no.returncode == 1
    assert lab.sshd.fingerprint() in no.stdout
    assert not (lab.jaz_home / "known_hosts").exists()
    wrong = lab.jaz("hosts", "trust", "box", "--hosts", hosts, "--fingerprint",
                    "SHA256:" + "A" * 43)
    assert wrong.returncode != 0 and "nothing was" in (wrong.stdout + wrong.stderr)
    assert not (lab.jaz_home / "known_hosts").exists()
    ok = lab.jaz("hosts", "trust", "box", "--hosts", hosts, "--fingerprint",
                 lab.sshd.fingerprint())
    assert ok.returncode == 0, ok.stderr
    assert f"[127.0.0.1]:{lab.sshd.port}" in (lab.jaz_home / "known_hosts").read_text()
    assert _auth_attempts(lab.sshd) == []   # trusting authenticates nothing
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert result.returncode == 0, view
    again = lab.jaz("hosts", "trust", "box", "--hosts", hosts)
    assert again.returncode == 0 and "known already" in again.stdout


# ------------------------------------------------------------------ failures to connect

def test_wrong_user_and_wrong_key_fail_clearly(lab: Lab, tmp_path: Path):
    lab.ssh_config(lab.alias("box").replace(f"User {lab.sshd.user}", "User nobody-here"))
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert result.returncode == 1
    assert "authentication failed for user 'nobody-here'" in result.stderr
    stranger = keygen(tmp_path / "stranger")
    lab.ssh_config(lab.alias("box").replace(str(lab.key), str(stranger)))
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert result.returncode == 1
    assert "authentication failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_connection_refused_and_a_silent_host_fail_in_bounded_time(lab: Lab):
    from support import free_port

    closed = free_port()
    lab.ssh_config(lab.alias("box").replace(f"Port {lab.sshd.port}", f"Port {closed}"))
    result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
    assert "refused" in result.stderr.lower()
    silent = socket.create_server(("127.0.0.1", 0))   # accepts TCP, never says a word
    try:
        port = silent.getsockname()[1]
        lab.ssh_config(lab.alias("box").replace(f"Port {lab.sshd.port}", f"Port {port}"))
        started = time.monotonic()
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "true"\n', HOSTS)
        took = time.monotonic() - started
        assert view["jobs"]["a"]["status"] == "failed"
        assert "no answer within 3s" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "Exception" not in result.stderr
        assert took < 15, f"a silent host held the job for {took:.1f}s"
    finally:
        silent.close()


# ------------------------------------------------------------------ stop, timeout, drops

def _pid_file_job(marker: Path, extra: str = "") -> str:
    return (f'[jobs.long]\nhost = "box"\n{extra}run = \'\'\'\n'
            f'sleep 300 &\necho $! > {marker}\nwait\n\'\'\'\n')


def test_timeout_kills_the_remote_process_group(lab: Lab, tmp_path: Path):
    marker = Path("/tmp") / f"jaz-ssh-{os.getpid()}-{time.monotonic_ns()}"
    try:
        result, view = lab.run(_pid_file_job(marker, 'timeout = "2s"\n'), HOSTS)
        assert view["jobs"]["long"]["status"] in ("failed", "error", "stopped"), view
        pid = int(marker.read_text())
        wait_for(lambda: not _alive(pid), "the remote sleep to be gone", timeout=5)
    finally:
        marker.unlink(missing_ok=True)


def test_operator_stop_kills_the_remote_group(lab: Lab):
    import signal as sig

    marker = Path("/tmp") / f"jaz-ssh-{os.getpid()}-{time.monotonic_ns()}"
    proc = lab.popen(_pid_file_job(marker), HOSTS)
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), "the job to start")
        pid = int(marker.read_text())
        assert _alive(pid)
        proc.send_signal(sig.SIGINT)
        out, err = proc.communicate(timeout=30)
        view = json.loads(out)
        assert view["jobs"]["long"]["status"] == "stopped", view
        assert view["jobs"]["long"]["exit_code"] == 128 + sig.SIGTERM   # as the shell saw it
        assert not _alive(pid), "the remote job outlived its stop"
    finally:
        if proc.poll() is None:
            proc.kill()
        marker.unlink(missing_ok=True)


def test_stop_command_runs_on_the_host_with_the_jobs_pid(lab: Lab):
    import signal as sig

    marker = Path("/tmp") / f"jaz-ssh-{os.getpid()}-{time.monotonic_ns()}"
    stopped = Path(f"{marker}.stopped")
    extra = (f"stop_command = 'echo \"$JAZ_PID\" > {stopped}; kill -TERM -$JAZ_PID'\n")
    proc = lab.popen(_pid_file_job(marker, extra), HOSTS)
    try:
        wait_for(lambda: marker.exists() and marker.read_text().strip(), "the job to start")
        pid = int(marker.read_text())
        proc.send_signal(sig.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert json.loads(out)["jobs"]["long"]["status"] == "stopped"
        assert stopped.read_text().strip().isdigit()   # it ran there, with $JAZ_PID
        assert not _alive(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        marker.unlink(missing_ok=True)
        stopped.unlink(missing_ok=True)


# ------------------------------------------------------------------ fan-out, ProxyJump

def test_fan_out_to_several_aliases(lab: Lab, tmp_path: Path):
    second = Sshd(tmp_path / "sshd2", [lab.key]).start()
    try:
        lab.ssh_config(lab.alias("box") + lab.alias("box2", second) + lab.alias("box3"))
        lab.know(lab.sshd.host_key_line() + second.host_key_line())
        hosts = ('[hosts.box]\nssh = "box"\nlabels = ["web"]\n'
                 '[hosts.box2]\nssh = "box2"\nlabels = ["web"]\n'
                 '[hosts.box3]\nssh = "box3"\nlabels = ["web"]\n')
        net = ('[jobs.all]\nhosts = ["label:web"]\n'
               'run = \'echo "port=$JAZ_HOST" >> "$JAZ_OUTPUT"; echo on-it\'\n')
        result, view = lab.run(net, hosts)
        assert result.returncode == 0, (result.stderr, view)
        outputs = view["jobs"]["all"]["outputs"]
        for h in ("box", "box2", "box3"):
            assert outputs[f"{h}.status"] == "succeeded", outputs
    finally:
        second.stop()


def test_fan_out_across_an_agent_host_and_an_ssh_host_and_transfer_between_them(
        lab: Lab, tmp_path: Path):
    from agent_support import Agent

    agent = Agent(tmp_path / "agent").start()
    try:
        hosts = (agent.hosts_entry("a1", labels='labels = ["web"]')
                 + '[hosts.box]\nssh = "box"\nlabels = ["web"]\n')
        drop = Path("/tmp") / f"jaz-ssh-x-{os.getpid()}-{time.monotonic_ns()}"
        net = ('[jobs.all]\nhosts = ["label:web"]\n'
               'run = \'echo "who=$JAZ_HOST" >> "$JAZ_OUTPUT"\'\n'
               f'[jobs.put]\nneeds = ["all"]\nrun = "echo payload > {drop}.src"\n'
               f'[jobs.copy]\nneeds = ["put"]\n'
               f'transfer = {{ from = "box:{drop}.src", to = "a1:{drop}.dst" }}\n')
        result, view = lab.run(net, hosts)
        assert result.returncode == 0, (result.stderr, view)
        outputs = view["jobs"]["all"]["outputs"]
        assert outputs["a1.status"] == outputs["box.status"] == "succeeded", outputs
        assert outputs["box.who"] == "box"
        assert Path(f"{drop}.dst").read_text() == "payload\n"
    finally:
        agent.stop()
        for suffix in (".src", ".dst"):
            Path(f"{drop}{suffix}").unlink(missing_ok=True)


def test_proxy_jump_through_a_second_sshd(lab: Lab, tmp_path: Path):
    # the target only listens on loopback too; the jump host forwards to it
    jump = Sshd(tmp_path / "jump", [lab.key]).start()
    try:
        lab.ssh_config(lab.alias("box", extra="  ProxyJump hop\n") + lab.alias("hop", jump))
        lab.know(lab.sshd.host_key_line() + jump.host_key_line())
        result, view = lab.run('[jobs.a]\nhost = "box"\nrun = "echo through"\n', HOSTS)
        assert result.returncode == 0, view
        assert "Accepted publickey" in jump.log()
        # the jump host opened the forwarded connection to the target's port
        assert f"target 127.0.0.1 port {lab.sshd.port}" in jump.log(), jump.log()
    finally:
        jump.stop()


# ------------------------------------------------------------------ secrets

def test_a_secret_never_shows_in_argv_logs_database_or_output(lab: Lab):
    canary = "canary-" + os.urandom(6).hex()
    lab.env["JAZ_SECRET_TOKEN"] = canary
    marker = Path("/tmp") / f"jaz-ssh-{os.getpid()}-{time.monotonic_ns()}"
    net = ('[jobs.a]\nhost = "box"\nenv = { TOKEN = { secret = "token" } }\n'
           f'run = \'\'\'\nps -eo args > {marker}\n'
           'echo "token is $TOKEN"\necho "T=$TOKEN" >> "$JAZ_OUTPUT"\n\'\'\'\n')
    try:
        result, view = lab.run(net, HOSTS)
        assert result.returncode == 0, (result.stderr, view)
        assert "_jaz_s" in marker.read_text()   # the wrapper was there, in ps
        assert canary not in marker.read_text(), "the secret was in some process's argv"
        assert canary not in result.stdout + result.stderr
        for f in lab.root.rglob("*"):
            if f.is_file():
                assert canary.encode() not in f.read_bytes(), f"the secret is in {f}"
        logs = lab.jaz("logs", view["run_id"], "a", "--db", lab.root / "r.db")
        assert "token is ***" in logs.stdout
    finally:
        marker.unlink(missing_ok=True)
