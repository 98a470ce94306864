"""A fake JAZ v3 agent (`jobarg_agentd`) on loopback that behaves as the recorded real one
does (../shared/jaz-agent/transcript.jsonl): Zabbix framing with the header and the body
written separately, the same answers and messages to the same requests, real jobs run
by /bin/sh in their own process group, results sent to the server's port with
`JaSendRetry` tries about a second apart (here: `retry_every`) and then dropped, a kill
that reports return_code 9 and signal 1, and a connection from an address not in
`Server=` closed without a byte.

Importable as `jaz_fake` (pytest puts tests/ on the path); the bench uses it too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = struct.Struct("<5sQ")


def jsonc(value: Any) -> str:
    """JSON as json-c writes it (the agent quotes a request back in some messages)."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        return "{ " + ", ".join(f"{json.dumps(k)}: {jsonc(v)}" for k, v in value.items()) + " }"
    return json.dumps(value, ensure_ascii=False)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a job's shell has started its command)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@dataclass
class Job:
    jobid: str
    method: int
    script: str
    env: dict[str, str]
    serverid: str
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False


@dataclass
class FakeJazAgent:
    server_port: int                      # the server's JAZ listener (JaServerPort)
    hostname: str = "jaztest"
    allowed: tuple[str, ...] = ("127.0.0.1",)   # Server=
    host: str = "127.0.0.1"
    port: int = 0
    send_retry: int = 5                   # JaSendRetry
    retry_every: float = 1.0
    source_ip: str = "127.0.0.1"          # where its results come from
    drop_results: bool = False            # every send "fails": results dropped after retries
    jobs: dict[str, Job] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)   # requests as received
    started: list[str] = field(default_factory=list)          # jobids whose script ran
    sent: list[dict[str, Any]] = field(default_factory=list)  # results acknowledged
    dropped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.start()

    # ------------------------------------------------------------ up and down

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening (the agent is down); its running jobs go on, as a real
        agent's do across a restart."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def close(self) -> None:
        self.down()
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.proc is not None and job.proc.poll() is None:
                try:
                    os.killpg(job.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------ requests

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            if peer[0] not in self.allowed:
                conn.close()   # not a byte
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                body = self._read(conn)
            except (OSError, ValueError):
                return
            if body is None:
                return
            answer = self._answer(body)
            data = json.dumps(answer).encode()
            try:
                conn.sendall(HEADER.pack(b"ZBXD\x01", len(data)))   # header, then body
                conn.sendall(data)
            except OSError:
                pass

    @staticmethod
    def _read(conn: socket.socket) -> bytes | None:
        first = conn.recv(13)
        if not first:
            return None
        if not first.startswith(b"ZBXD"):   # an unframed JSON request: read to its end
            parts = [first]
            conn.settimeout(0.3)
            try:
                while chunk := conn.recv(65536):
                    parts.append(chunk)
            except TimeoutError:
                pass
            return b"".join(parts)
        while len(first) < 13:
            more = conn.recv(13 - len(first))
            if not more:
                raise ValueError("cut")
            first += more
        _, size = HEADER.unpack(first)
        if size > 2**24:
            raise ValueError("too big")
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ValueError("cut")
            body += chunk
        return body

    def _res(self, request: dict[str, Any], result: int, message: str | None = None,
             *, version: int = 1, hostname: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"result": result}
        if message is not None:
            data["message"] = message
        return {"kind": "jobrun-res", "version": version,
                "serverid": str(request.get("serverid", ""))[:17],
                "hostname": self.hostname if hostname is None else hostname, "data": data}

    def _answer(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body.decode())
            assert isinstance(request, dict)
        except (ValueError, AssertionError, UnicodeDecodeError):
            text = body.decode(errors="replace")
            return {"kind": "jobrun-res", "version": 1, "serverid": "", "hostname": "",
                    "data": {"result": 2,
                             "message": f"Can't parse json data. telegram: {text}"}}
        self.log.append(request)
        if request.get("version") != 1:
            return self._res(request, 2, f"version:[{request.get('version')}] does not "
                             "match [1]", version=request.get("version") or 0, hostname="")
        if "serverid" not in request:
            return {"kind": "jobrun-res", "version": 0, "serverid": "", "hostname": "",
                    "data": {"result": 2, "message": "Can't get the tag [serverid] from json "
                             f"data [{jsonc(request)}]"}}
        if "hostname" in request and request["hostname"] != self.hostname:
            return self._res(request, 2, f"hostname '{request['hostname']}' does not match "
                             "Hostname", hostname=str(request["hostname"]))
        data = request.get("data") or {}
        jobid = str(data.get("jobid"))
        method = data.get("method")
        if data.get("type") not in ("command", "extjob", "reboot"):
            return self._res(request, 2, f"Invalid job type [{data.get('type')}]")
        with self._lock:
            job = self.jobs.get(jobid)
            if method == 3:
                if job is None or job.proc is None or job.proc.poll() is not None:
                    return self._res(request, 2, f"jobid: {jobid} is not running")
                job.killed = True
                try:
                    os.killpg(job.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return self._res(request, 0)
            if method not in (0, 1, 2):
                return self._res(request, 2, f"Invalid method: {method}, jobid {jobid})")
            if job is not None:
                return self._res(request, 3, f"jobid: {jobid} is alreay running. status: 0")
            if method == 2:   # abort: accepted, no result follows
                return self._res(request, 0)
            job = Job(jobid, method, str(data.get("script", "")), dict(data.get("env") or {}),
                      str(request["serverid"])[:17])
            self.jobs[jobid] = job
            if method == 0:
                env = {**os.environ, **job.env}
                job.proc = subprocess.Popen(["/bin/sh", "-c", job.script], env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
                self.started.append(jobid)
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return self._res(request, 0)

    # ------------------------------------------------------------ results

    def _run(self, job: Job) -> None:
        out = err = b""
        code = sig = 0
        if job.proc is not None:
            out, err = job.proc.communicate()
            rc = job.proc.returncode
            code, sig = (-rc, 1) if rc < 0 else (rc, 0)
        body = json.dumps({
            "kind": "jobresult", "version": 1, "serverid": job.serverid,
            "hostname": self.hostname,
            "data": {"jobid": job.jobid, "hostname": self.hostname, "method": job.method,
                     "result": 0,
                     "std_out": out.decode(errors="replace"),
                     "std_err": err.decode(errors="replace"),
                     "return_code": code, "signal": sig, "run_user": "",
                     "run_user_password": ""}}).encode()
        for attempt in range(self.send_retry):
            if attempt:
                time.sleep(self.retry_every)
            if not self.drop_results and self._send(body):
                self.sent.append(json.loads(body))
                break
        else:
            self.dropped.append(job.jobid)
        with self._lock:
            self.jobs.pop(job.jobid, None)

    def _send(self, body: bytes) -> bool:
        try:
            sock = socket.create_connection(("127.0.0.1", self.server_port), timeout=3,
                                            source_address=(self.source_ip, 0))
        except OSError:
            return False
        with sock:
            try:
                sock.sendall(HEADER.pack(b"ZBXD\x01", len(body)) + body)
                head = b""
                while len(head) < 13:
                    chunk = sock.recv(13 - len(head))
                    if not chunk:
                        return False
                    head += chunk
                _, size = HEADER.unpack(head)
                reply = b""
                while len(reply) < size:
                    chunk = sock.recv(size - len(reply))
                    if not chunk:
                        return False
                    reply += chunk
                return json.loads(reply).get("data", {}).get("result") == 0
            except (OSError, ValueError):
                return False


def main() -> None:
    """`python tests/jaz_fake.py SERVER_PORT` (the bench): a fake agent in a process of
    its own; prints its port, runs until stdin closes."""
    import sys

    agent = FakeJazAgent(server_port=int(sys.argv[1]), retry_every=0.2)
    print(agent.port, flush=True)
    sys.stdin.read()
    agent.close()


if __name__ == "__main__":
    main()
