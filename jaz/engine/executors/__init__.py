"""Executors run one attempt of one job somewhere: local processes, SQL, files.

Agents and SSH hosts will be more implementations of the same `Executor`.
"""
