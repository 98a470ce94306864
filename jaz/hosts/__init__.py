"""Hosts other than this one: the hosts file, and the executors that run jobs on agent
hosts (docs/agent.md). Below the faces (`jaz server`, `jaz run`'s CLI), above the engine."""
