"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_zabbix import Trapper


@pytest.fixture
def trapper() -> Iterator[Trapper]:
    """A real Zabbix trapper on 127.0.0.1 that checks the protocol bytes it receives."""
    t = Trapper()
    yield t
    t.close()
    assert t.errors == []
