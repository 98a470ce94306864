"""Helpers shared by the test modules (importable as `support`: pytest puts tests/ on
the path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0,
             every: float = 0.02) -> Any:
    """Poll `check` until it returns something true, with a deadline: the value, or an
    AssertionError naming what never happened. The pause is a polling interval, not a
    wait for state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
