"""`jaz hosts` (the server's hosts, online state, running jobs) and `jaz hosts trust
NAME` (pin an agent's certificate fingerprint in the hosts file, as ssh's first
connection does; docs/agent.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from jaz.cli.common import JsonOption, ServerOption, TokenOption

HostsFileOption = Annotated[Path | None, typer.Option(
    "--hosts", metavar="FILE", dir_okay=False,
    help="The hosts file (or a server config with [hosts.NAME] tables); default "
         "$JAZ_HOME/hosts.toml.")]


def register(app: typer.Typer) -> None:
    hosts_app = typer.Typer(name="hosts", invoke_without_command=True, callback=hosts,
                            context_settings={"help_option_names": ["-h", "--help"]})
    hosts_app.command("trust")(trust)
    app.add_typer(hosts_app)


def hosts(ctx: typer.Context, json_: JsonOption = False, server: ServerOption = None,
          token: TokenOption = None) -> None:
    """List the server's hosts: online or offline, last seen, agent version, running jobs."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import datetime

    from jaz.cli.output import print_json, print_table, when
    from jaz.cli.remote import connect
    from jaz.hosts import view

    with connect(server, token) as client:
        listed = client.hosts()
    if json_:
        print_json(listed)
        return
    rows = [[str(h["name"]), view.kind_label(h), str(h.get("address") or "-"),
             view.state(h), when(datetime.fromisoformat(h["last_seen"])) if h.get("last_seen")
             else "-", str(h.get("version") or "-"), str(len(h.get("running") or [])),
             view.note(h) or str(h.get("description") or "")] for h in listed]
    print_table(["host", "kind", "address", "state", "last seen", "version", "running",
                 "note"], rows, wrap=["note"])


def trust(
    name: Annotated[str, typer.Argument(help="The host, as [hosts.NAME] names it.")],
    fingerprint: Annotated[str | None, typer.Option(
        "--fingerprint", metavar="SHA256:HEX",
        help="Pin only if the host shows exactly this (for scripts: no question); an SSH "
             "host's as ssh-keygen -l prints it (SHA256:base64).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    hosts_file: HostsFileOption = None,
) -> None:
    """Connect to the agent of host NAME, show its certificate's fingerprint and, once
    confirmed, pin it in the hosts file. Compare it with `jaz agent fingerprint` on the
    agent's machine. A running server takes it within a minute (at once on SIGHUP).
    For an SSH host: show its host key's fingerprint and, once confirmed, add the key
    to $JAZ_HOME/known_hosts."""
    from jaz.cli.output import say
    from jaz.errors import NotFound, Refused, UsageError
    from jaz.hosts.client import probe
    from jaz.hosts.config import default_hosts_file, load_hosts
    from jaz.hosts.wire import normal_fingerprint

    path = hosts_file or default_hosts_file()
    known = load_hosts(path, required=True, only_hosts=False)
    host = known.get(name)
    if host is None:
        raise NotFound(f"no host {name!r} in {path}",
                       hint=f"hosts there: {', '.join(sorted(known)) or 'none'}")
    if host.jaz_agent is not None:
        raise UsageError(f"host {name!r} is a JAZ agent: its protocol is plaintext, with no "
                         "certificate to trust (docs/migration.md)")
    if host.ssh is not None:
        return _trust_ssh(host, fingerprint, yes)
    wanted = None
    if fingerprint is not None:
        wanted = normal_fingerprint(fingerprint)
        if wanted is None:
            raise UsageError(f"bad --fingerprint {fingerprint!r}: expected SHA256: and 64 hex "
                             "digits, as `jaz agent fingerprint` prints it")
    assert host.agent is not None
    seen = probe(host.agent, insecure=host.insecure)
    say(f"host {name} ({host.agent}) shows the certificate fingerprint\n  {seen}")
    if host.fingerprint == seen:
        say("it is pinned already: nothing to do")
        return
    if host.fingerprint is not None:
        say(f"[bold red]WARNING: this is NOT the fingerprint pinned for {name}[/] "
            f"({host.fingerprint}): the agent was re-initialised, or someone is in between")
    if wanted is not None:
        if wanted != seen:
            raise Refused(f"host {name!r} shows {seen}, not the --fingerprint given "
                          f"({wanted}); nothing was pinned")
    elif not yes and not typer.confirm("Trust it?", default=False):
        raise typer.Exit(1)
    _pin(path, name, seen)
    say(f"pinned {seen} for {name} in {path}")


def _trust_ssh(host: Any, wanted: str | None, yes: bool) -> None:
    """An SSH host: its host key's fingerprint, asked about, then added to jaz's own
    known_hosts (docs/ssh.md). Only the key exchange happens: nothing is authenticated."""
    from jaz.cli.output import say
    from jaz.errors import Refused, UsageError
    from jaz.hosts.ssh import fingerprint, known_key, probe_key, record_key, target

    if wanted is not None and not re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}=?", wanted):
        raise UsageError(f"bad --fingerprint {wanted!r}: expected SHA256: and 43 base64 "
                         "characters, as `ssh-keygen -lf KEY.pub` prints it")
    name, key = probe_key(host)
    seen = fingerprint(key)
    say(f"host {host.name} ({target(host).where}) shows the {key.get_name()} host key\n"
        f"  {seen}")
    state = known_key(name, key)
    if state == "known":
        say("it is known already: nothing to do")
        return
    if state == "changed":
        raise Refused(f"host {host.name!r}: a DIFFERENT {key.get_name()} key is on record "
                      f"for {name}: the host was reinstalled, or someone is in between; "
                      "nothing was recorded",
                      hint=f"if the new key is right, remove the old one (ssh-keygen -R "
                           f"'{name}', and from $JAZ_HOME/known_hosts), then trust it again")
    if wanted is not None:
        if wanted.rstrip("=") != seen:
            raise Refused(f"host {host.name!r} shows {seen}, not the --fingerprint given "
                          f"({wanted}); nothing was recorded")
    elif not yes and not typer.confirm("Trust it?", default=False):
        raise typer.Exit(1)
    path = record_key(name, key)
    say(f"recorded the key of {host.name} ({name}) in {path}")


def _pin(path: Path, name: str, fingerprint: str) -> None:
    """Write `fingerprint = "..."` into the table [hosts.NAME], keeping the rest as it is."""
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines(keepends=True)
    header = re.compile(r"\s*\[\s*hosts\s*\.\s*(\"?)" + re.escape(name) + r"\1\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line.rstrip("\n"))), None)
    if start is None:
        from jaz.errors import UsageError

        raise UsageError(f"{path}: host {name!r} is not written as a [hosts.{name}] table, "
                         "so its fingerprint cannot be added there",
                         hint=f'add fingerprint = "{fingerprint}" to it by hand')
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].lstrip().startswith("[")), len(lines))
    entry = f'fingerprint = "{fingerprint}"\n'
    for i in range(start + 1, end):
        if re.match(r"\s*fingerprint\s*=", lines[i]):
            lines[i] = entry
            break
    else:
        lines.insert(start + 1, entry)
    path.write_text("".join(lines), encoding="utf-8")
