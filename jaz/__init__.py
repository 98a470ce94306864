"""jaz: a terminal-first job arranger."""

__version__ = "0.1.0"
