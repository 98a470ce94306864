"""The Zabbix sender against a small real trapper on 127.0.0.1, and the `zabbix` action.

The trapper is a thread with a listening socket: it reads one request, checks and keeps
its exact bytes, and answers as told (success, failed items, refusal, garbage, an
oversized announcement, or nothing at all). Nothing sleeps: tests wait on queues and
sockets with deadlines.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from jaz.engine import zabbix
from jaz.engine.loader import load_text
from jaz.errors import ActionError, JobnetInvalid

OK = {"response": "success",
      "info": "processed: 1; failed: 0; total: 1; seconds spent: 0.000055"}


def frame(body: bytes, *, flags: int = 1, old: bool = False) -> bytes:
    """A reply: 4+4 length (Zabbix ≥ 4), or the 8-byte form of older servers."""
    size = struct.pack("<Q", len(body)) if old else struct.pack("<II", len(body), 0)
    return b"ZBXD" + bytes([flags]) + size + body


@dataclass
class Request:
    header: bytes
    length: int
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Trapper:
    """Answers each connection with the next reply in `replies` (bytes, or None: never)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.replies: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.requests: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.errors: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def reply(self, obj: dict | bytes, **kw: object) -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.replies.put(frame(body, **kw))  # type: ignore[arg-type]

    def next_request(self, timeout: float = 5) -> Request:
        return self.requests.get(timeout=timeout)

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.done.is_set():
                conn.close()
                return
            with conn:
                conn.settimeout(5)
                try:
                    head = self._exactly(conn, 13)
                    (length,) = struct.unpack("<Q", head[5:])
                    self.requests.put(Request(head[:5], length, self._exactly(conn, length)))
                except (OSError, ValueError) as e:
                    self.errors.append(repr(e))
                    continue
                reply = self.replies.get(timeout=5)
                if reply is None:
                    self.done.wait(10)  # hold the connection, never answer
                    continue
                conn.sendall(reply)

    @staticmethod
    def _exactly(conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ValueError(f"closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def close(self) -> None:
        self.done.set()
        # closing a socket does not wake a thread blocked in accept(); a connection does
        with socket.create_connection(("127.0.0.1", self.port), timeout=5):
            pass
        self.thread.join(5)
        self.sock.close()


def item(value: str = "42", clock: int | None = None) -> zabbix.Item:
    return zabbix.Item(host="web1", key="jaz.done", value=value, clock=clock)


# ---------------------------------------------------------------- protocol


def test_request_bytes_are_header_length_and_sender_json(trapper: Trapper) -> None:
    trapper.reply(OK)
    reply = zabbix.send(trapper.address, [item("héllo", clock=1767225600)])
    assert (reply.processed, reply.failed, reply.total) == (1, 0, 1)
    req = trapper.next_request()
    assert req.header == b"ZBXD\x01"
    assert req.length == len(req.body)
    assert req.json == {"request": "sender data", "data": [
        {"host": "web1", "key": "jaz.done", "value": "héllo", "clock": 1767225600}]}


def test_encode_is_byte_exact() -> None:
    body = b'{"request":"sender data","data":[{"host":"h","key":"k","value":"v"}]}'
    assert zabbix.encode([zabbix.Item(host="h", key="k", value="v")]) == \
        b"ZBXD\x01" + len(body).to_bytes(4, "little") + b"\0\0\0\0" + body


def test_without_clock_the_item_has_no_clock(trapper: Trapper) -> None:
    trapper.reply(OK)
    zabbix.send(trapper.address, [item()])
    assert "clock" not in trapper.next_request().json["data"][0]


@pytest.mark.parametrize("kw", [{}, {"old": True}], ids=["4+4", "8-byte"])
def test_both_reply_framings_are_read(trapper: Trapper, kw: dict) -> None:
    trapper.reply(OK, **kw)
    assert zabbix.send(trapper.address, [item()]).processed == 1


def test_compressed_and_large_replies_are_read(trapper: Trapper) -> None:
    body = json.dumps(OK).encode()
    packed = zlib.compress(body)
    trapper.replies.put(b"ZBXD\x03" + struct.pack("<II", len(packed), len(body)) + packed)
    assert zabbix.send(trapper.address, [item()]).processed == 1
    trapper.replies.put(b"ZBXD\x05" + struct.pack("<QQ", len(body), 0) + body)
    assert zabbix.send(trapper.address, [item()]).processed == 1


@pytest.mark.parametrize(("reply", "message"), [
    ({"response": "success", "info": "processed: 0; failed: 1; total: 1; seconds spent: 0.0"},
     "did not accept the value (processed: 0; failed: 1"),
    ({"response": "failed", "info": "host [web1] not found"}, "refused the data (failed): "
                                                              "host [web1] not found"),
    ({"response": "success", "info": "all good"}, "cannot read the reply's info"),
    ({"info": "processed: 1; failed: 0"}, "refused the data (no response)"),
    (b"not json at all", "the reply is not JSON: 'not json at all'"),
    (b"[1, 2]", "not a JSON object"),
])
def test_refusals_and_failed_items_raise_action_error(trapper: Trapper, reply: dict | bytes,
                                                      message: str) -> None:
    trapper.reply(reply)
    with pytest.raises(ActionError, match="Zabbix server 127.0.0.1:") as e:
        zabbix.send(trapper.address, [item()])
    assert message in str(e.value)


def test_failed_items_hint_says_what_to_check(trapper: Trapper) -> None:
    trapper.reply({"response": "success", "info": "processed: 0; failed: 1; total: 1"})
    with pytest.raises(ActionError) as e:
        zabbix.send(trapper.address, [item()])
    assert "web1:jaz.done" in str(e.value)
    assert e.value.hint is not None and "trapper item" in e.value.hint


@pytest.mark.parametrize(("raw", "message"), [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "not Zabbix protocol"),
    (b"ZBXD\x01" + struct.pack("<II", 10 * 1024 * 1024, 0), "announces 10485760 bytes"),
    (b"ZBXD\x05" + struct.pack("<QQ", 1 << 40, 0), "refusing to read it"),
    (b"ZBXD\x03" + struct.pack("<II", 10, 1 << 30), "announces 1073741824 bytes"),
    (b"ZBXD\x03" + struct.pack("<II", 5, 100) + b"xxxxx", "compressed reply is corrupt"),
    (b"ZBXD\x09" + struct.pack("<II", 2, 0) + b"{}", "unknown protocol flags 0x09"),
    (b"ZBXD\x01" + struct.pack("<II", 100, 0) + b'{"resp', "closed after 6 bytes"),
    (b"ZB", "closed after 2 bytes"),
    (b"", "closed without a reply"),
])
def test_garbage_and_oversized_replies_raise_at_once(trapper: Trapper, raw: bytes,
                                                     message: str) -> None:
    trapper.replies.put(raw)
    started = time.monotonic()
    with pytest.raises(ActionError, match="Zabbix server") as e:
        zabbix.send(trapper.address, [item()], read_timeout=5)
    assert message in str(e.value)
    assert time.monotonic() - started < 4  # refused on sight, not by the timeout


def test_a_server_that_never_answers_is_bounded_by_the_read_timeout(trapper: Trapper) -> None:
    trapper.replies.put(None)
    started = time.monotonic()
    with pytest.raises(ActionError, match=r"no reply within 0.3s"):
        zabbix.send(trapper.address, [item()], read_timeout=0.3)
    assert 0.25 < time.monotonic() - started < 3


def test_nothing_listening_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed on leaving: nothing listens there any more
    with pytest.raises(ActionError, match=rf"127.0.0.1:{port}: cannot connect") as e:
        zabbix.send(f"127.0.0.1:{port}", [item()], connect_timeout=2)
    assert e.value.hint is not None and "listens" in e.value.hint


def test_unresolvable_host_is_a_clear_error() -> None:
    with pytest.raises(ActionError, match="cannot resolve 'no-such-host.invalid'"):
        zabbix.send("no-such-host.invalid", [item()], connect_timeout=2)


def test_ipv6_loopback_in_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        server.settimeout(5)
        port = server.getsockname()[1]
        got: list[bytes] = []

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while len(data) < 13 or len(data) < 13 + struct.unpack("<Q", data[5:13])[0]:
                    data += conn.recv(4096)
                got.append(data)
                conn.sendall(frame(json.dumps(OK).encode()))

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        reply = zabbix.send(f"[::1]:{port}", [item()])
        t.join(5)
    assert reply.processed == 1
    assert json.loads(got[0][13:])["data"][0]["key"] == "jaz.done"


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(("server", "expected"), [
    ("zbx", ("zbx", 10051)),
    ("zbx.example.com:10052", ("zbx.example.com", 10052)),
    ("127.0.0.1", ("127.0.0.1", 10051)),
    ("[::1]", ("::1", 10051)),
    ("[2001:db8::1]:20051", ("2001:db8::1", 20051)),
    ("2001:db8::1", ("2001:db8::1", 10051)),
    (" zbx:1 ", ("zbx", 1)),
])
def test_server_addresses(server: str, expected: tuple[str, int]) -> None:
    assert zabbix.parse_server(server) == expected


@pytest.mark.parametrize(("server", "message"), [
    ("zbx:", "the port must be a number"),
    ("zbx:0", "the port must be a number from 1 to 65535"),
    ("zbx:65536", "from 1 to 65535"),
    ("zbx:http", "the port must be a number"),
    ("[::1", "missing ']'"),
    ("[::1]x", "unexpected \"x\" after ']'"),
    ("[::1]:", "the port must be a number"),
    ("", 'expected "host" or "host:port"'),
    ("bad host", 'expected "host" or "host:port"'),
    ("tcp://zbx", "bad Zabbix server address"),
])
def test_bad_server_addresses(server: str, message: str) -> None:
    with pytest.raises(ActionError, match="bad Zabbix server address") as e:
        zabbix.parse_server(server)
    assert message in str(e.value)


# ---------------------------------------------------------------- the zabbix action


def _problems(text: str) -> list[tuple[str | None, str]]:
    try:
        load_text(text)
    except JobnetInvalid as e:
        return [(p.field, p.message) for p in e.problems]
    return []


@pytest.mark.parametrize(("table", "field", "message"), [
    ('"zbx"', "zabbix", 'expected a table, got "zbx" (a string)'),
    ('{ server = "zbx" }', "zabbix", "zabbix needs host, key, value"),
    ('{ server = 1, host = "h", key = "k", value = "v" }', "zabbix.server",
     "expected a string, got 1 (an integer)"),
    ('{ server = "zbx:99999", host = "h", key = "k", value = "v" }', "zabbix.server",
     "the port must be a number from 1 to 65535"),
    ('{ server = "[::1", host = "h", key = "k", value = "v" }', "zabbix.server", "missing ']'"),
    ('{ server = "zbx", host = "", key = "k", value = "v" }', "zabbix.host", "must not be empty"),
    ('{ server = "zbx", host = "h", key = ["k"], value = "v" }', "zabbix.key",
     'expected a string, got ["k"] (a list)'),
    ('{ server = "zbx", host = "h", key = "k", value = { a = 1 } }', "zabbix.value",
     "expected a string or number, got { a = 1 } (a table)"),
    ('{ server = "zbx", host = "h", key = "k", value = "${1 +}" }', "zabbix.value",
     'bad expression in "${1 +}"'),
    ('{ server = "zbx", host = "h", key = "k", value = "${a.ROWS}" }', "zabbix.value",
     "zabbix values see variables, not jobs: write ${NAME}"),
    ('{ server = "zbx", host = "h", key = "k", valeu = "v", value = "v" }', "zabbix.valeu",
     'unknown key "valeu" in zabbix (did you mean "value"?)'),
])
def test_malformed_zabbix_tables(table: str, field: str, message: str) -> None:
    found = _problems(f'[jobs.a]\nrun = "true"\n[jobs.b]\nneeds = ["a"]\nzabbix = {table}\n')
    assert any(f == field and message in m for f, m in found), found


def test_zabbix_values_may_be_numbers_and_booleans() -> None:
    jobnet = load_text('[jobs.a]\nzabbix = { server = "z", host = "h", key = "k", value = 1.5 }\n'
                       '[jobs.b]\nzabbix = { server = "z", host = "h", key = "k", value = true }\n')
    assert jobnet.jobs["a"].action.value == "1.5"  # type: ignore[union-attr]
    assert jobnet.jobs["b"].action.value == "true"  # type: ignore[union-attr]


def jaz_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(tmp_path / "home")
    return subprocess.run([sys.executable, "-m", "jaz", "run", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)


NET = '''
[params]
DAY = "2026-01-31"

[jobs.count]
run = 'echo "ROWS=7" >> "$JAZ_OUTPUT"'

[jobs.tell]
needs = ["count"]
[jobs.tell.zabbix]
server = "{server}"
host = "web1"
key = "etl.rows[{{#DAY}}]"
value = "${{ROWS * 2}} on ${{DAY}}"
'''


def test_jaz_run_sends_the_value_with_variables(tmp_path: Path, trapper: Trapper) -> None:
    (tmp_path / "net.toml").write_text(NET.format(server=trapper.address))
    trapper.reply(OK)
    result = jaz_run(tmp_path, "net.toml", "--json", "-p", "DAY=2026-02-01")
    assert result.returncode == 0, result.stderr
    req = trapper.next_request(timeout=1)
    assert req.header == b"ZBXD\x01"
    assert req.json["data"] == [{"host": "web1", "key": "etl.rows[{#DAY}]",
                                 "value": "14 on 2026-02-01"}]
    tell = json.loads(result.stdout)["jobs"]["tell"]
    assert (tell["status"], tell["exit_code"]) == ("succeeded", 0)
    assert tell["outputs"] == {"ZABBIX_INFO": OK["info"]}


def test_jaz_run_fails_the_job_when_the_trapper_refuses(tmp_path: Path,
                                                        trapper: Trapper) -> None:
    (tmp_path / "net.toml").write_text(NET.format(server=trapper.address))
    trapper.reply({"response": "success", "info": "processed: 0; failed: 1; total: 1"})
    result = jaz_run(tmp_path, "net.toml", "--json")
    assert result.returncode == 1
    assert trapper.next_request(timeout=1).json["data"][0]["value"] == "14 on 2026-01-31"
    out = json.loads(result.stdout)
    assert out["status"] == "error"
    assert (out["jobs"]["tell"]["status"], out["jobs"]["tell"]["exit_code"]) == ("failed", 1)


def test_jaz_run_with_nothing_listening_fails_the_job(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    (tmp_path / "net.toml").write_text(
        f'[jobs.tell]\nzabbix = {{ server = "127.0.0.1:{port}", host = "h", key = "k", '
        f'value = "v" }}\n')
    result = jaz_run(tmp_path, "net.toml", "--json")
    assert result.returncode == 1
    tell = json.loads(result.stdout)["jobs"]["tell"]
    assert tell["status"] == "failed"
    log = next((tmp_path / "home" / "logs").rglob("tell.*.err")).read_text()
    assert f"127.0.0.1:{port}: cannot connect" in log
