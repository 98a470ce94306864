"""The hosts file: one `[hosts.NAME]` table per host, read by `jaz run` and `jaz server`
alike (default `$JAZ_HOME/hosts.toml`; `--hosts FILE`, or `hosts_file` in the server's
config). The server's config may hold `[hosts.NAME]` tables too, with the same keys.

```toml
[hosts.web1]
agent = "192.0.2.21:10055"
fingerprint = "SHA256:..."     # pinned by `jaz hosts trust web1`
token_file = "tokens/web1"     # the agent's token (mode 0600); relative to this file
labels = ["web", "eu"]         # for hosts = ["label:web"]

[hosts.legacy1]                # an unmodified JAZ v3 agent (plaintext: docs/migration.md)
jaz_agent = "192.0.2.30:10055"
hostname = "legacy1"           # its Hostname= (default: the host's name)
```

`jaz_listen = "0.0.0.0:10062"` (top level) is where JAZ agents send their results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaz.engine.checks import (
    Collector,
    check_bool,
    check_duration,
    check_str,
    check_table,
    check_unknown,
    got,
    parse_toml,
    quote,
    read_text_file,
)
from jaz.errors import JobnetInvalid, Refused
from jaz.hosts.wire import is_loopback, normal_fingerprint, split_address
from jaz.paths import jaz_home

HOST_KEYS = {"agent", "ssh", "description", "user", "port", "identity_file", "fingerprint",
             "token_file", "labels", "insecure", "offline_after", "reboot_command",
             "password_secret", "passphrase_secret", "jaz_agent", "hostname",
             "check_every", "result_addresses", "connections", "job_folder"}
KINDS = ("agent", "ssh", "jaz_agent")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
OFFLINE_AFTER = 300.0
SSH_CONNECTIONS = 4   # pooled SSH connections per host at most (8 jobs at once on each)


@dataclass(frozen=True, kw_only=True)
class Host:
    name: str
    agent: str | None = None       # "addr:10055"
    ssh: str | None = None         # "user@addr" or an ~/.ssh/config alias
    description: str = ""
    fingerprint: str | None = None
    token_file: Path | None = None
    labels: tuple[str, ...] = ()
    insecure: bool = False
    offline_after: float = OFFLINE_AFTER   # seconds away before its jobs turn `error`
    source: Path | None = None     # the file it is written in (`jaz hosts trust` edits it)
    user: str | None = None        # SSH hosts: these win over the ssh string and ~/.ssh/config
    port: int | None = None
    identity_file: Path | None = None
    reboot_command: str | None = None   # SSH hosts: what `reboot` runs there
    password_secret: str | None = None     # SSH hosts: names in jaz's secrets, never values
    passphrase_secret: str | None = None
    connections: int = SSH_CONNECTIONS   # SSH hosts: pooled connections at most
    job_folder: bool = True        # SSH hosts: jobs kept in ~/.jaz/jobs (outlive the connection)
    jaz_agent: str | None = None   # "addr:10055": an unmodified JAZ v3 agent (jazagent.py)
    hostname: str | None = None    # the JAZ agent's Hostname= (default: name)
    check_every: float = 30.0      # JAZ agent: how often a job in flight is looked for there
    jaz_listen: str | None = None  # JAZ agent: where results are received (top-level key)
    result_addresses: tuple[str, ...] = ()   # JAZ agent: other addresses results come from

    @property
    def address(self) -> tuple[str, int]:
        assert self.agent is not None
        parsed = split_address(self.agent)
        assert parsed is not None
        return parsed

    def token(self) -> str:
        """The agent's token, from `token_file`; Refused when there is none."""
        if self.token_file is None:
            raise Refused(f"host {self.name!r} has no token_file",
                          hint="put the token `jaz agent init` printed in a file (mode 0600) "
                               "and name it as token_file in the hosts file")
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise Refused(f"host {self.name!r}: cannot read its token_file "
                          f"{self.token_file}: {e.strerror}") from None


def default_hosts_file() -> Path:
    return jaz_home() / "hosts.toml"


def load_hosts(path: Path | None, *, required: bool = False, only_hosts: bool = True
               ) -> dict[str, Host]:
    """The hosts in `path` (default: $JAZ_HOME/hosts.toml, which may be missing); with
    `only_hosts=False` other top-level keys are let be (a server config's)."""
    explicit = path is not None
    path = path or default_hosts_file()
    if not (explicit or required or path.exists()):
        return {}
    text = read_text_file(path, missing="no such hosts file",
                          hint="write one with [hosts.NAME] tables (docs/agent.md)")
    file = str(path)
    data = parse_toml(text, file)
    c = Collector(file, text)
    if only_hosts:
        check_unknown(c, data, {"hosts", "jaz_listen"}, job=None, where="the hosts file")
    hosts = parse_hosts(c, data.get("hosts", {}), base=path.parent, source=path.resolve())
    if "jaz_listen" in data:
        from jaz.hosts.jazconfig import with_listen

        hosts = with_listen(c, hosts, data["jaz_listen"])
    if c.problems:
        raise JobnetInvalid(c.problems)
    return hosts


def parse_hosts(c: Collector, raw: Any, *, base: Path, source: Path | None = None
                ) -> dict[str, Host]:
    table = check_table(c, raw, job=None, field="hosts") or {}
    out: dict[str, Host] = {}
    for name, value in table.items():
        where = f"hosts.{name}"
        if not _NAME.fullmatch(name) or name == "local":
            c.add(f"bad host name {quote(name)}" + (
                ": \"local\" is built in (this machine); give the host another name"
                if name == "local" else ": use letters, digits, \"_\", \"-\" and \".\""),
                field=where)
            continue
        host = check_table(c, value, job=None, field=where)
        if host is None:
            continue
        check_unknown(c, host, HOST_KEYS, job=None, where=f"[{where}]", prefix=f"{where}.")
        kinds = [k for k in KINDS if k in host]
        if len(kinds) != 1:
            found = f"found {' and '.join(kinds)}" if kinds else "found neither"
            c.add(f"a host needs exactly one of 'agent = \"addr:10055\"', "
                  f"'ssh = \"user@addr\"' or 'jaz_agent = \"addr:10055\"', {found}",
                  field=where)
            continue
        address = check_str(c, host[kinds[0]], job=None, field=f"{where}.{kinds[0]}")
        if address is None:
            continue
        kw: dict[str, Any] = {"name": name, kinds[0]: address, "source": source,
                              "description": str(host.get("description", ""))}
        if kinds[0] == "jaz_agent":
            from jaz.hosts.jazconfig import parse_jaz_host

            parse_jaz_host(c, host, kw, where)
        if kinds[0] in ("agent", "jaz_agent") and split_address(address) is None:
            c.add(f"bad agent address {quote(address)}: write it as \"HOST:PORT\", like "
                  f"\"web1:10055\" (the agent listens on 10055)", field=f"{where}.{kinds[0]}")
            continue
        if "fingerprint" in host:
            fp = check_str(c, host["fingerprint"], job=None, field=f"{where}.fingerprint")
            if fp is not None and normal_fingerprint(fp) is None:
                c.add(f"bad fingerprint {quote(fp)}: expected \"SHA256:\" and 64 hex digits, "
                      "as `jaz agent fingerprint` prints it", field=f"{where}.fingerprint")
            elif fp is not None:
                kw["fingerprint"] = normal_fingerprint(fp)
        if "token_file" in host:
            tf = check_str(c, host["token_file"], job=None, field=f"{where}.token_file")
            if tf is not None:
                kw["token_file"] = (base / Path(tf).expanduser()).resolve()
        if "labels" in host:
            labels = host["labels"]
            if not isinstance(labels, list) or not all(
                    isinstance(x, str) and _LABEL.fullmatch(x) for x in labels):
                c.add(f"expected a list of labels like [\"web\", \"eu\"], got {got(labels)}",
                      field=f"{where}.labels")
            else:
                kw["labels"] = tuple(labels)
        if "insecure" in host:
            kw["insecure"] = check_bool(c, host["insecure"], job=None, field=f"{where}.insecure")
            if kw["insecure"] and kinds[0] == "agent" and \
                    not is_loopback(split_address(address)[0]):  # type: ignore[index]
                c.add("insecure = true (no TLS) works only with an agent on a loopback "
                      "address", field=f"{where}.insecure")
        if kinds[0] == "ssh":
            _ssh_keys(c, host, kw, where, base)
        if "offline_after" in host:
            seconds = check_duration(c, host["offline_after"], job=None,
                                     field=f"{where}.offline_after")
            if seconds is not None:
                kw["offline_after"] = seconds
        out[name] = Host(**kw)
    return out


def _ssh_keys(c: Collector, host: dict[str, Any], kw: dict[str, Any], where: str,
              base: Path) -> None:
    """`user`, `port`, `identity_file`, `connections`... of an SSH host (docs/ssh.md)."""
    if "user" in host:
        kw["user"] = check_str(c, host["user"], job=None, field=f"{where}.user")
    if "port" in host:
        port = host["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            c.add(f"expected a port number (1-65535), got {got(port)}", field=f"{where}.port")
        else:
            kw["port"] = port
    if "connections" in host:
        n = host["connections"]
        if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 64:
            c.add(f"expected a number of connections (1-64), got {got(n)}",
                  field=f"{where}.connections")
        else:
            kw["connections"] = n
    if "job_folder" in host:
        kw["job_folder"] = check_bool(c, host["job_folder"], job=None,
                                      field=f"{where}.job_folder")
    for key in ("password_secret", "passphrase_secret"):
        if key in host:
            kw[key] = check_str(c, host[key], job=None, field=f"{where}.{key}")
    if "reboot_command" in host:
        kw["reboot_command"] = check_str(c, host["reboot_command"], job=None,
                                         field=f"{where}.reboot_command")
    if "identity_file" in host:
        f = check_str(c, host["identity_file"], job=None, field=f"{where}.identity_file")
        if f is not None:
            kw["identity_file"] = (base / Path(f).expanduser()).resolve()


def select(hosts: dict[str, Host], wanted: list[str]) -> list[Host]:
    """Hosts by name or `label:NAME`, each once, in the order asked."""
    out: dict[str, Host] = {}
    for item in wanted:
        if item.startswith("label:"):
            for h in sorted(hosts.values(), key=lambda h: h.name):
                if item[6:] in h.labels:
                    out.setdefault(h.name, h)
        elif item in hosts:
            out.setdefault(item, hosts[item])
    return list(out.values())
