"""`jaz kinds`: the job kinds this jaz knows, built in and from other packages.

The plugin kinds are the `jaz.kinds` entry points of the Python that runs jaz
(docs/plugins.md); a plugin that does not load is listed with its error.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from jaz.cli.common import JsonOption

BUILT_IN = {
    "run": "a shell script on a host",
    "sql": "SQL on a database (SQLite or PostgreSQL)",
    "jobnet": "another jobnet, inline, as a child run",
    "start": "start another jobnet as a run of its own; do not wait",
    "sleep": "wait for a while",
    "wait_until": "wait until a time of the run's day",
    "wait_file": "wait for a file to appear",
    "transfer": "copy files between hosts",
    "set": "set variables from expressions",
    "release": "release a held job",
    "zabbix": "send a value to a Zabbix trapper",
    "reboot": "reboot an agent or SSH host and wait for it",
}


def register(app: typer.Typer) -> None:
    app.command("kinds")(kinds)


def kinds(json_: JsonOption = False) -> None:
    """The job kinds: each action key, where it comes from, and where it runs.

    Plugin kinds come from installed packages (the `jaz.kinds` entry points); a
    plugin that cannot load is listed as broken, with its error."""
    from jaz import __version__
    from jaz.engine import kinds as registry
    from jaz.engine.loader import LOCAL_KINDS
    from jaz.engine.model import ACTION_KEYS

    found = registry.installed()
    rows: list[dict[str, Any]] = []
    for name in ACTION_KEYS:
        rows.append({"name": name, "source": "built-in", "package": "jaz",
                     "version": __version__, "entry_point": None, "status": "ok",
                     "local": name in LOCAL_KINDS, "description": BUILT_IN.get(name, ""),
                     "fields": None, "error": None})
    for name, item in found.kinds.items():
        rows.append({"name": name, "source": "plugin", "package": item.package,
                     "version": item.version, "entry_point": item.entry_point,
                     "status": "ok", "local": True, "description": item.kind.description,
                     "fields": {key: _field(spec) for key, spec in item.kind.fields.items()},
                     "error": None})
    for b in found.broken:
        rows.append({"name": b.name, "source": "plugin", "package": b.package,
                     "version": b.version, "entry_point": b.entry_point, "status": "broken",
                     "local": None, "description": "", "fields": None, "error": b.error})
    if json_:
        from jaz.cli.output import print_json

        print_json(rows)
    else:
        from jaz.cli.output import print_table

        print_table(["kind", "from", "runs in", "status", "what it does"],
                    [[r["name"], "built-in" if r["source"] == "built-in"
                      else f"{r['package']} {r['version']}",
                      "-" if r["local"] is None else
                      "jaz run, server" if r["local"] else "server",
                      r["status"], r["error"] if r["error"] else r["description"]]
                     for r in rows], wrap=["what it does"])
    for b in found.broken:
        sys.stderr.write(f"jaz: plugin {b.package} {b.version} is broken: entry point "
                         f"{b.entry_point}: {b.error}\n")


def _field(spec: Any) -> dict[str, Any]:
    return {"type": spec.type, "items": spec.items, "required": spec.required,
            "default": spec.default, "choices": list(spec.choices) or None,
            "template": spec.template, "help": spec.help}
