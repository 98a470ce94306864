"""`jaz agent`: the daemon on each target host, `jaz agent init` and `jaz agent
fingerprint` (docs/agent.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Agent config (TOML); default $JAZ_HOME/agent/agent.toml.",
    dir_okay=False)]


def register(app: typer.Typer) -> None:
    agent_app = typer.Typer(name="agent", no_args_is_help=False,
                            context_settings={"help_option_names": ["-h", "--help"]},
                            invoke_without_command=True, callback=agent)
    agent_app.command("init")(init)
    agent_app.command("fingerprint")(fingerprint)
    app.add_typer(agent_app)


def agent(
    ctx: typer.Context,
    config: ConfigOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Run the agent daemon (until SIGTERM or Ctrl-C): it takes jobs from the servers in
    its allow-list over TLS, runs them, and keeps their results until taken. Its jobs
    keep running when it stops."""
    if ctx.invoked_subcommand is not None:
        return
    from jaz.agent.daemon import main

    raise typer.Exit(main(config, verbose=verbose))


def _default_config() -> Path:
    from jaz.paths import jaz_home

    return jaz_home() / "agent" / "agent.toml"


def init(
    config: ConfigOption = None,
    listen: Annotated[str, typer.Option(help="Address and port to listen on.")]
    = "0.0.0.0:10055",
    servers: Annotated[list[str] | None, typer.Option(
        "--server", help="An address or network (CIDR) of a server that may send jobs; "
                         "repeat for more. Default: 127.0.0.1 only.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing config, key and certificate.")] = False,
) -> None:
    """Write an agent config, a new key and self-signed certificate, and a token: prints
    the certificate's fingerprint (for `jaz hosts trust`) and the token, once."""
    import secrets

    from jaz.agent.config import parse_config, render
    from jaz.agent.tls import make_certificate
    from jaz.errors import UsageError
    from jaz.hosts.wire import token_hash

    path = config or _default_config()
    if path.exists() and not force:
        raise UsageError(f"{path} exists already",
                         hint="give another -c FILE, or --force to replace it (and the "
                              "agent's key, so that servers must trust it again)")
    token = secrets.token_urlsafe(32)
    text = render(listen=listen, servers=servers or ["127.0.0.1"],
                  token_sha256=token_hash(token))
    parsed = parse_config(text, path=path)   # a bad --listen or --server: said, nothing written
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    print_fp = make_certificate(parsed.cert, parsed.key)
    print(f"wrote {path}, {parsed.cert} and {parsed.key}")
    print(f"fingerprint: {print_fp}")
    print(f"token: {token}")
    print("The token is shown only this once: put it in a file on the server (mode 0600),\n"
          "name that file as token_file in the server's hosts file, and pin the fingerprint\n"
          "with `jaz hosts trust NAME` there (docs/agent.md).")


def fingerprint(config: ConfigOption = None) -> None:
    """Print the fingerprint of this agent's certificate (compare it with what
    `jaz hosts trust` shows on the server)."""
    from jaz.agent.config import load_config
    from jaz.agent.tls import certificate_fingerprint
    from jaz.errors import NotFound

    parsed = load_config(config)
    try:
        print(certificate_fingerprint(parsed.cert))
    except FileNotFoundError:
        raise NotFound(f"no certificate at {parsed.cert}",
                       hint="`jaz agent init` makes one") from None
