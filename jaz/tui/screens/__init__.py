"""The screens of `jaz tui`, one per module."""
