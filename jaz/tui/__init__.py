"""`jaz tui`: the operator's dashboard (SPEC §6), a Textual app that talks to the server
only through `jaz.client` and the event stream. Nothing here is imported by `jaz --help`:
`jaz.cli.tui` imports the app inside the command."""
