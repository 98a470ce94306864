"""JAZ's command line, kept: `jobarg_exec`, `jobarg_get`, `jobarg_release` and
`jobarg_joblogput` with JAZ's flags and exit codes, on the jaz server's HTTP API
(docs/migration.md)."""
