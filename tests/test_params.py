"""What a run's params may be (jaz/engine/params.py): every run's values, and the names
an operator may give a server's run."""

from __future__ import annotations

import pytest

from jaz.engine.params import check_names, check_values
from jaz.errors import UsageError


@pytest.mark.parametrize("params", [{"A": "x\0y"}, {"A": "\ud800"}, {"\ud800": "x"}])
def test_values_no_environment_can_hold_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="cannot hold"):
        check_values(params)


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "DYLD_INSERT_LIBRARIES",
                                  "PATH", "BASH_ENV", "ENV", "IFS", "PYTHONPATH",
                                  "NODE_OPTIONS", "JAZ_RUN_ID"])
def test_undeclared_names_that_change_what_jobs_execute_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="may not be set"):
        check_names({name: "x"}, {})


@pytest.mark.parametrize("name", ["A=B", "1ABC", "A B", "", "É"])
def test_undeclared_names_must_be_plain(name: str) -> None:
    with pytest.raises(UsageError, match="not a variable name"):
        check_names({name: "x"}, {})


def test_declared_and_plain_names_pass() -> None:
    check_names({"PATH": "/opt/bin", "DAY": "2026-12-05", "_x1": ""}, {"PATH": "/usr/bin"})
    check_values({"DAY": "2026-12-05", "NOTE": "multi\nline ü"})
