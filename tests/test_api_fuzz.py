"""Fuzz the API with schemathesis from its own OpenAPI document: whatever the input,
no 5xx (a bad request is always a clear 4xx). schemathesis generates the cases; they
are run with hypothesis directly (its pytest plugin does not work with this pytest)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from jaz.server.api import create_app
from jaz.server.auth import Tokens
from jaz.server.config import parse_config
from jaz.server.core import Core

ADMIN = "fuzz-admin-token"
SKIP = {"/api/v1/stream"}    # an endless event stream
EXAMPLES = int(os.environ.get("JAZ_FUZZ_EXAMPLES", "60"))   # per operation (~8 s in all)


@pytest.fixture
def schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    nets = tmp_path / "jobnets"
    nets.mkdir()
    (nets / "hello.toml").write_text('[jobs.greet]\nrun = "true"\n')
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "days.toml").write_text('weekdays = ["mon"]\n')
    config = parse_config(f'jobnets = "{nets}"\ncalendars = "{tmp_path / "calendars"}"\n'
                          f'database = "{tmp_path / "jaz.db"}"\n')
    core = Core(config)
    app = create_app(core, Tokens(config, ADMIN))
    yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    core.closing.set()
    core.close()


@pytest.mark.timeout(300)   # ~8 s on a quiet machine, every operation of the API in turn
def test_the_api_never_answers_5xx(schema: Any) -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in SKIP]
    assert len(operations) >= 12          # the document really lists the API
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  derandomize=bool(os.environ.get("CI")),   # CI: the same cases every run
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                response.text)

        check()
