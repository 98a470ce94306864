"""`jaz agent`: the daemon on each target host (SPEC §5, docs/agent.md)."""
