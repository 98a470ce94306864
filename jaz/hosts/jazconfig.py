"""The hosts file's keys of JAZ agent hosts (`jaz_agent`, `hostname`, `check_every`) and
the top-level `jaz_listen` (docs/migration.md); config.py calls these."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jaz.engine.checks import Collector, check_duration, check_str, quote
from jaz.hosts.wire import split_address

DEFAULT_LISTEN = "0.0.0.0:10062"
_AGENT_ONLY = ("fingerprint", "token_file", "insecure", "user", "port", "identity_file")


def parse_jaz_host(c: Collector, host: dict[str, Any], kw: dict[str, Any], where: str) -> None:
    """The keys of a `jaz_agent` host beyond the address (config.parse_hosts)."""
    for key in _AGENT_ONLY:
        if key in host:
            c.add(f"{key!r} does not apply to a JAZ agent (it has no TLS, token or SSH "
                  "login: its only protection is the address allow-list; docs/migration.md)",
                  field=f"{where}.{key}")
    if "hostname" in host:
        name = check_str(c, host["hostname"], job=None, field=f"{where}.hostname")
        if name is not None:
            if not name.strip() or len(name) > 128:
                c.add(f"bad hostname {quote(name)}: give the agent's Hostname= as its "
                      "jobarg_agentd.conf says", field=f"{where}.hostname")
            else:
                kw["hostname"] = name
    if "result_addresses" in host:
        raw = host["result_addresses"]
        if not isinstance(raw, list) or not raw or not all(
                isinstance(x, str) and x.strip() and " " not in x for x in raw):
            c.add("expected a list of addresses or host names the agent's results may come "
                  "from, like [\"192.0.2.31\"]", field=f"{where}.result_addresses")
        else:
            kw["result_addresses"] = tuple(raw)
    if "check_every" in host:
        seconds = check_duration(c, host["check_every"], job=None,
                                 field=f"{where}.check_every")
        if seconds is not None:
            if seconds < 0.1:
                c.add("check_every must be at least 0.1s", field=f"{where}.check_every")
            else:
                kw["check_every"] = seconds


def with_listen(c: Collector, hosts: dict[str, Any], raw: Any, field: str = "jaz_listen"
                ) -> dict[str, Any]:
    """`jaz_listen = "ADDR:PORT"` given to every JAZ agent host."""
    listen = check_str(c, raw, job=None, field=field)
    if listen is None:
        return hosts
    if split_address(listen) is None:
        c.add(f"bad {field} address {quote(listen)}: write it as \"HOST:PORT\", like "
              f"\"{DEFAULT_LISTEN}\"; JAZ agents send their results there (their "
              "JaServerPort)", field=field)
        return hosts
    return {n: replace(h, jaz_listen=listen) if h.jaz_agent else h for n, h in hosts.items()}


def listen_of(hosts: dict[str, Any]) -> str:
    for h in hosts.values():
        if h.jaz_agent and h.jaz_listen:
            return str(h.jaz_listen)
    return DEFAULT_LISTEN
