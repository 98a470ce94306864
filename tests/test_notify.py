"""Notifications: `[notify]` parsing, the command with the event in its environment, and
the event as one Zabbix item, sent to the small trapper of test_zabbix.py."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_zabbix import OK, Trapper

from jaz.engine.checks import Collector
from jaz.engine.notify import (
    ALL_EVENTS,
    Event,
    EventKind,
    Notifier,
    NotifyConfig,
    ZabbixTarget,
    load_notify,
    parse_notify,
)
from jaz.errors import JobnetInvalid

AT = datetime(2026, 1, 31, 2, 30, 5, tzinfo=timezone(timedelta(hours=9)))
EVENT = Event(kind=EventKind.JOB_FAILED, jobnet="nightly-etl", run_id=42, job="extract",
              status="failed", message="exit code 3\nsecond line; $(touch pwned) 'quoted'",
              at=AT)
VARS = ("JAZ_EVENT", "JAZ_JOBNET", "JAZ_RUN_ID", "JAZ_JOB", "JAZ_STATUS", "JAZ_MESSAGE",
        "JAZ_TIME")


def dump_env(out: Path) -> str:
    """A command that writes each variable NUL-separated, so newlines survive the trip."""
    return " ; ".join(f'printf "%s\\0" "${v}" >> {out}' for v in VARS)


def read_dump(out: Path) -> dict[str, str]:
    return dict(zip(VARS, out.read_text().split("\0")[:-1], strict=True))


# ---------------------------------------------------------------- the command


def test_command_gets_the_event_in_environment_variables(tmp_path: Path) -> None:
    out = tmp_path / "env"
    Notifier(NotifyConfig(command=dump_env(out))).send(EVENT)
    assert read_dump(out) == {
        "JAZ_EVENT": "job_failed", "JAZ_JOBNET": "nightly-etl", "JAZ_RUN_ID": "42",
        "JAZ_JOB": "extract", "JAZ_STATUS": "failed", "JAZ_MESSAGE": EVENT.message,
        "JAZ_TIME": "2026-01-31T02:30:05+09:00"}
    assert not (tmp_path / "pwned").exists()  # the message was data, never shell


def test_run_events_have_an_empty_job(tmp_path: Path) -> None:
    out = tmp_path / "env"
    event = Event(kind=EventKind.RUN_ERROR, jobnet="n", run_id=1, status="error",
                  message="halted", at=AT)
    Notifier(NotifyConfig(command=dump_env(out))).send(event)
    assert read_dump(out)["JAZ_JOB"] == ""
    assert read_dump(out)["JAZ_EVENT"] == "run_error"


def test_event_is_not_in_argv_and_secrets_are_not_inherited(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    command = (f'tr "\\0" " " < /proc/$$/cmdline > {out}; echo >> {out}; '
               f'echo "[${{JAZ_SECRET_DB:-none}}][${{JAZ_TOKEN:-none}}][$KEEP]" >> {out}')
    environ = {"PATH": os.environ["PATH"], "JAZ_SECRET_DB": "hunter2", "JAZ_TOKEN": "t0k",
               "KEEP": "kept"}
    Notifier(NotifyConfig(command=command), environ=environ).send(EVENT)
    argv, line = out.read_text().splitlines()
    assert argv.startswith("/bin/sh -c ")
    assert "extract" not in argv and "nightly-etl" not in argv
    assert line == "[none][none][kept]"


def test_events_not_configured_are_not_sent(tmp_path: Path) -> None:
    out = tmp_path / "env"
    notifier = Notifier(NotifyConfig(command=f"touch {out}", events=frozenset({"late"})))
    notifier.send(EVENT)
    assert not out.exists()
    notifier.send(Event(kind=EventKind.LATE, jobnet="n", run_id=1, status="scheduled",
                        message="late by 5m", at=AT))
    assert out.exists()


def test_a_failing_command_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jaz.notify")
    Notifier(NotifyConfig(command="echo no pager here >&2; exit 7")).send(EVENT)
    [record] = caplog.records
    assert record.name == "jaz.notify" and record.levelno == logging.WARNING
    assert "exited 7" in record.getMessage() and "no pager here" in record.getMessage()


def test_a_missing_command_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jaz.notify")
    Notifier(NotifyConfig(command="/no/such/pager")).send(EVENT)
    assert "exited 127" in caplog.records[0].getMessage()


@pytest.mark.parametrize("command", [
    "sleep 30",
    "sleep 30 & sleep 31; wait",  # a grandchild that keeps the output open
    "trap '' TERM; sleep 30",
])
def test_a_hanging_command_is_killed_at_the_timeout(tmp_path: Path, command: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jaz.notify")
    started = time.monotonic()
    Notifier(NotifyConfig(command=command, timeout=0.5)).send(EVENT)
    assert time.monotonic() - started < 5
    assert "timed out after 0.5s and was killed" in caplog.records[0].getMessage()


def test_submit_does_not_wait(tmp_path: Path) -> None:
    out = tmp_path / "done"
    notifier = Notifier(NotifyConfig(command=f"touch {out}"))
    thread = notifier.submit(EVENT)
    thread.join(10)
    assert not thread.is_alive() and out.exists()


# ---------------------------------------------------------------- Zabbix


def test_zabbix_gets_one_item_with_the_event_as_one_line_of_json(trapper: Trapper) -> None:
    trapper.reply(OK)
    target = ZabbixTarget(server=trapper.address, host="jaz-server", key="jaz.event")
    Notifier(NotifyConfig(zabbix=target)).send(EVENT)
    req = trapper.next_request()
    assert req.header == b"ZBXD\x01"
    [item] = req.json["data"]
    assert (item["host"], item["key"], item["clock"]) == ("jaz-server", "jaz.event",
                                                          int(AT.timestamp()))
    assert "\n" not in item["value"]
    assert json.loads(item["value"]) == {
        "event": "job_failed", "jobnet": "nightly-etl", "run_id": 42, "job": "extract",
        "status": "failed", "message": EVENT.message, "time": "2026-01-31T02:30:05+09:00"}


def test_command_and_zabbix_both_run_and_a_refusal_is_logged(
        tmp_path: Path, trapper: Trapper, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jaz.notify")
    trapper.reply({"response": "failed", "info": "host [jaz] not found"})
    out = tmp_path / "ran"
    target = ZabbixTarget(server=trapper.address, host="jaz", key="k")
    Notifier(NotifyConfig(command=f"touch {out}", zabbix=target)).send(EVENT)
    assert out.exists()
    assert trapper.next_request().json["data"][0]["host"] == "jaz"
    [record] = caplog.records
    assert "Zabbix did not get job_failed of run 42" in record.getMessage()
    assert "host [jaz] not found" in record.getMessage()


def test_a_silent_zabbix_is_bounded_and_logged(trapper: Trapper,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="jaz.notify")
    trapper.replies.put(None)
    target = ZabbixTarget(server=trapper.address, host="jaz", key="k")
    started = time.monotonic()
    Notifier(NotifyConfig(zabbix=target), zabbix_read_timeout=0.3).send(EVENT)
    assert time.monotonic() - started < 3
    assert "no reply within 0.3s" in caplog.records[0].getMessage()


# ---------------------------------------------------------------- [notify]


def test_a_full_notify_table() -> None:
    config = load_notify('''
[notify]
command = "page-oncall"
zabbix = { server = "[2001:db8::1]:10051", host = "jaz", key = "jaz.event" }
events = ["run_failed", "late"]
timeout = "1m"
''', "jaz.toml")
    assert config == NotifyConfig(
        command="page-oncall",
        zabbix=ZabbixTarget(server="[2001:db8::1]:10051", host="jaz", key="jaz.event"),
        events=frozenset({EventKind.RUN_FAILED, EventKind.LATE}), timeout=60.0)


def test_defaults_are_every_event_and_thirty_seconds() -> None:
    config = load_notify('[notify]\ncommand = "x"\n')
    assert config is not None
    assert config.events == ALL_EVENTS == {"run_failed", "job_failed", "run_error", "late"}
    assert config.timeout == 30.0 and config.zabbix is None


def test_no_notify_table_is_none() -> None:
    assert load_notify('listen = "127.0.0.1:10061"\n') is None


@pytest.mark.parametrize(("table", "field", "message"), [
    ('notify = "page-oncall"', "notify", 'expected a table, got "page-oncall" (a string)'),
    ("[notify]\n", "notify", "[notify] needs a command, a zabbix table or both"),
    ('[notify]\ncomand = "x"\n', "notify.comand",
     'unknown key "comand" in [notify] (did you mean "command"?)'),
    ('[notify]\ncommand = ["x"]\n', "notify.command", 'expected a string, got ["x"] (a list)'),
    ('[notify]\ncommand = " "\n', "notify.command", 'must not be empty, got " "'),
    ('[notify]\ncommand = "x"\ntimeout = "soon"\n', "notify.timeout", 'bad duration "soon"'),
    ('[notify]\ncommand = "x"\ntimeout = 0\n', "notify.timeout", "must be longer than 0s, got 0"),
    ('[notify]\ncommand = "x"\nevents = "late"\n', "notify.events",
     'expected a list of events ("run_failed", "job_failed", "run_error", "late"), '
     'got "late" (a string)'),
    ('[notify]\ncommand = "x"\nevents = []\n', "notify.events", "an empty list sends nothing"),
    ('[notify]\ncommand = "x"\nevents = ["job_fail"]\n', "notify.events[0]",
     'unknown event "job_fail" (did you mean "job_failed"?)'),
    ('[notify]\ncommand = "x"\nevents = ["late", "boom"]\n', "notify.events[1]",
     'unknown event "boom"; events are "run_failed", "job_failed", "run_error", "late"'),
    ('[notify]\ncommand = "x"\nevents = [1]\n', "notify.events[0]",
     'expected event names ("run_failed", "job_failed", "run_error", "late"), got 1 '
     '(an integer)'),
    ('[notify]\nzabbix = "zbx"\n', "notify.zabbix", 'expected a table, got "zbx" (a string)'),
    ('[notify]\nzabbix = { server = "zbx" }\n', "notify.zabbix",
     "notify.zabbix needs host, key"),
    ('[notify]\nzabbix = { server = "zbx:0", host = "h", key = "k" }\n',
     "notify.zabbix.server", "the port must be a number from 1 to 65535"),
    ('[notify]\nzabbix = { server = "zbx", host = 1, key = "k" }\n', "notify.zabbix.host",
     "expected a string, got 1 (an integer)"),
    ('[notify]\nzabbix = { server = "zbx", host = "h", key = "k", value = "v" }\n',
     "notify.zabbix.value", 'unknown key "value" in notify.zabbix; known keys are host, key, '
     'server'),
])
def test_malformed_notify_tables(table: str, field: str, message: str) -> None:
    with pytest.raises(JobnetInvalid) as e:
        load_notify(table, "jaz.toml")
    found = [(p.file, p.field, p.message) for p in e.value.problems]
    assert any((f, fd) == ("jaz.toml", field) and message in m for f, fd, m in found), found


def test_every_problem_is_reported_at_once() -> None:
    c = Collector("jaz.toml")
    assert parse_notify(c, {"command": 1, "events": ["x"], "timeout": "?"}) is None
    assert {p.field for p in c.problems} == {"notify.command", "notify.events[0]",
                                             "notify.timeout"}
