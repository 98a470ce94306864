"""`jaz import pgagent` against a real PostgreSQL with pgAgent's own schema (Debian's
`pgagent` package: `CREATE EXTENSION pgagent`), jobs made through pgAgent's tables.

The written jobnets load with the engine's loader, run with `jaz run` against the same
server, and fire when pgAgent's own `pgagent.pga_next_schedule` says they would."""

from __future__ import annotations

import glob
import json
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pg_support
import pytest
from import_support import files_in, fires, jaz
from support import free_port

from jaz.engine.loader import load_file

pytestmark = pytest.mark.postgres


def _require_pgagent() -> None:
    bin_dir = pg_support.require()
    version = bin_dir.parts[-2]
    if not glob.glob(f"/usr/share/postgresql/{version}/extension/pgagent.control"):
        reason = (f"pgAgent's schema is not installed for PostgreSQL {version}: "
                  "`apt-get install pgagent`, or run `make test`, which does")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def pg() -> Any:
    """A fresh database with pgAgent's schema, its TimeZone Europe/Berlin; yields
    (url, connection)."""
    import psycopg

    _require_pgagent()
    url = pg_support.fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgagent")
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET timezone = 'Europe/Berlin'")
    conn = psycopg.connect(url, autocommit=True)
    try:
        yield url, conn
    finally:
        conn.close()


def add_job(conn: Any, name: str, *, enabled: bool = True, hostagent: str = "",
            desc: str = "") -> int:
    return int(conn.execute(
        "INSERT INTO pgagent.pga_job (jobjclid, jobname, jobdesc, jobhostagent, jobenabled) "
        "VALUES ((SELECT jclid FROM pgagent.pga_jobclass WHERE jclname = 'Data Import'), "
        "%s, %s, %s, %s) RETURNING jobid", (name, desc, hostagent, enabled)).fetchone()[0])


def add_step(conn: Any, job: int, name: str, kind: str, code: str, *, dbname: str = "",
             connstr: str = "", onerror: str = "f", enabled: bool = True) -> None:
    conn.execute("INSERT INTO pgagent.pga_jobstep (jstjobid, jstname, jstkind, jstcode, "
                 "jstdbname, jstconnstr, jstonerror, jstenabled) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (job, name, kind, code, dbname, connstr, onerror, enabled))


def flags(n: int, on: set[int]) -> list[bool]:
    return [i in on for i in range(n)]


def add_schedule(conn: Any, job: int, name: str, *, start: datetime,
                 end: datetime | None = None, minutes: set[int] = frozenset(),
                 hours: set[int] = frozenset(), weekdays: set[int] = frozenset(),
                 monthdays: set[int] = frozenset(), months: set[int] = frozenset(),
                 exceptions: tuple[tuple[date | None, time | None], ...] = (),
                 enabled: bool = True) -> int:
    """Weekdays 0 = Sunday, monthdays 1..31 and 32 = last day, months 1..12."""
    sid = int(conn.execute(
        "INSERT INTO pgagent.pga_schedule (jscjobid, jscname, jscenabled, jscstart, jscend, "
        "jscminutes, jschours, jscweekdays, jscmonthdays, jscmonths) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING jscid",
        (job, name, enabled, start, end, flags(60, minutes), flags(24, hours),
         flags(7, weekdays), flags(32, {d - 1 for d in monthdays}),
         flags(12, {m - 1 for m in months}))).fetchone()[0])
    for day, at in exceptions:
        conn.execute("INSERT INTO pgagent.pga_exception (jexscid, jexdate, jextime) "
                     "VALUES (%s, %s, %s)", (sid, day, at))
    return sid


def pgagent_fires(conn: Any, sid: int, n: int) -> list[datetime]:
    """pgAgent's own next run times: pga_next_schedule from the start, then from a minute
    after each fire (the function fires from max(start, now() + 1 minute))."""
    out: list[datetime] = []
    after = None
    for _ in range(n):
        row = conn.execute(
            "SELECT pgagent.pga_next_schedule(jscid, coalesce(%s, jscstart), jscend, "
            "jscminutes, jschours, jscweekdays, jscmonthdays, jscmonths) "
            "FROM pgagent.pga_schedule WHERE jscid = %s", (after, sid)).fetchone()
        if row[0] is None:
            break
        out.append(row[0])
        after = row[0] + timedelta(minutes=1)
    return out


def import_(url: str, tmp_path: Path, *args: str) -> Any:
    return jaz("import", "pgagent", url, "--out", tmp_path / "nets", *args,
               home=tmp_path / "home", cwd=tmp_path)


# ------------------------------------------------------------------ steps


def test_a_job_runs_its_steps_in_pgagents_order(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    db = conn.info.dbname
    log = tmp_path / "log.txt"
    job = add_job(conn, "Nightly ETL", desc="load the night's orders")
    # created out of order: pgAgent runs them by name (ORDER BY jstname, jstid)
    add_step(conn, job, "g last", "s", "INSERT INTO t VALUES (2)", dbname=db)
    add_step(conn, job, "b batch", "b", f"echo batch >> {log}")
    add_step(conn, job, "a create", "s", "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);",
             dbname=db)
    add_step(conn, job, "c disabled", "b", f"echo disabled >> {log}", enabled=False)
    add_step(conn, job, "d ignored", "b", f"echo d >> {log}; exit 3", onerror="i")
    add_step(conn, job, "e sql fails", "s", "SELECT 1/0", dbname=db, onerror="s")
    add_step(conn, job, "f python", "b",
             f"#!/usr/bin/env python3\nopen({str(log)!r}, 'a').write('python\\n')\n")
    result = import_(url, tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "nets" / "Nightly-ETL.toml"
    net = load_file(path)
    assert list(net.jobs) == ["a_create", "b_batch", "c_disabled", "d_ignored", "e_sql_fails",
                              "f_python", "g_last"]
    assert (net.mode, net.on_failure.value) == ("sequence", "stop")
    assert net.description == "load the night's orders"
    create = net.jobs["a_create"]
    assert create.kind == "sql"
    assert create.database == f"postgresql://postgres@127.0.0.1:{conn.info.port}/{db}"
    assert not net.jobs["c_disabled"].enabled
    assert not net.schedules
    assert "step" in result.stderr and "psql" in result.stderr   # e's on-error note

    ran = jaz("run", path, "--json", home=tmp_path / "home", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = json.loads(ran.stdout)
    assert {k: v["status"] for k, v in run["jobs"].items()} == {
        "a_create": "succeeded", "b_batch": "succeeded", "c_disabled": "skipped",
        "d_ignored": "succeeded", "e_sql_fails": "succeeded", "f_python": "succeeded",
        "g_last": "succeeded"}
    assert log.read_text() == "batch\nd\npython\n"
    assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")] == [1, 2]


def test_a_failing_step_ends_the_run_as_pgagent_ends_the_job(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    log = tmp_path / "log.txt"
    job = add_job(conn, "fails")
    add_step(conn, job, "1", "b", f"echo one >> {log}")
    add_step(conn, job, "2", "s", "SELECT no_such_column FROM pg_class", dbname=conn.info.dbname)
    add_step(conn, job, "3", "b", f"echo three >> {log}")
    assert import_(url, tmp_path).returncode == 0
    ran = jaz("run", tmp_path / "nets" / "fails.toml", "--json", home=tmp_path / "home",
              cwd=tmp_path)
    assert ran.returncode == 1
    assert json.loads(ran.stdout)["status"] == "failed"
    assert log.read_text() == "one\n"


def test_a_connection_string_password_is_never_written(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    job = add_job(conn, "remote", hostagent="db-host-1")
    add_step(conn, job, "q", "s", "SELECT 1",
             connstr=f"host=127.0.0.1 port={conn.info.port} dbname={conn.info.dbname} "
                     "user=postgres password=s3cret-pw sslmode=disable")
    result = import_(url, tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "nets" / "remote.toml").read_text()
    assert "s3cret-pw" not in text and "s3cret-pw" not in result.stdout + result.stderr
    assert "~/.pgpass" in result.stderr and "db-host-1" in result.stderr
    net = load_file(tmp_path / "nets" / "remote.toml")
    assert net.jobs["q"].database == (f"postgresql://postgres@127.0.0.1:{conn.info.port}/"
                                      f"{conn.info.dbname}?sslmode=disable")
    ran = jaz("run", tmp_path / "nets" / "remote.toml", home=tmp_path / "home", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr


# ------------------------------------------------------------------ schedules

START = datetime(2031, 1, 6, 0, 0)


SCHEDULES: dict[str, dict[str, Any]] = {
    "weekdays at 02:00 and 02:30": {"minutes": {0, 30}, "hours": {2},
                                    "weekdays": {1, 2, 3, 4, 5}},
    "1st and 15th AND a monday": {"minutes": {0}, "hours": {6}, "monthdays": {1, 15},
                                  "weekdays": {1}},
    "last day of feb and june": {"minutes": {45}, "hours": {23}, "monthdays": {32},
                                 "months": {2, 6}},
    "1st, and last day ignored": {"minutes": {0}, "hours": {12}, "monthdays": {1, 32}},
    "every minute of 03:00-03:59": {"hours": {3}},
    "exceptions, start and end inside a day": {
        "minutes": {0, 15}, "hours": {9, 10},
        "start": datetime(2031, 3, 3, 9, 10), "end": datetime(2031, 3, 10, 9, 0),
        "exceptions": ((date(2031, 3, 4), time(9, 15)), (date(2031, 3, 5), None),
                       (None, time(10, 0)))},
    "weekends in march, thursdays": {"minutes": {5}, "hours": {4, 16},
                                     "weekdays": {0, 4, 6}, "months": {3}},
    # starts inside an hour: pgAgent carries the start's minute into the next ticked hour
    # or day (09:10 start, hour 11 ticked: 11:30 first, not 11:00)
    "start 09:10, then the next ticked hour": {"minutes": {0, 30}, "hours": {11},
                                               "start": datetime(2031, 1, 6, 9, 10)},
    "start 09:10, a later monthday": {"minutes": {0, 30}, "hours": {6}, "monthdays": {15},
                                      "start": datetime(2031, 1, 6, 9, 10)},
    "start 02:10 on a weekday not ticked": {"minutes": {0, 30}, "hours": {2},
                                            "weekdays": {2},
                                            "start": datetime(2031, 1, 6, 2, 10)},
    "start 23:47, minutes past it only": {"minutes": {5, 50}, "hours": {0, 23},
                                          "start": datetime(2031, 1, 6, 23, 47)},
    "start 13:37 with seconds, any hour": {"minutes": {15, 45},
                                           "start": datetime(2031, 1, 6, 13, 37, 42)},
    "start 10:20, next month": {"minutes": {0, 10, 40}, "hours": {8, 12}, "months": {2},
                                "start": datetime(2031, 1, 6, 10, 20)},
}


@pytest.mark.parametrize("case", list(SCHEDULES))
def test_schedules_fire_when_pgagent_would(pg: Any, tmp_path: Path, case: str) -> None:
    from zoneinfo import ZoneInfo

    url, conn = pg
    spec = dict(SCHEDULES[case])
    zone = ZoneInfo("Europe/Berlin")
    start = spec.pop("start", START).replace(tzinfo=zone)
    end = spec.pop("end", None)
    job = add_job(conn, "scheduled")
    add_step(conn, job, "s", "b", "true")
    sid = add_schedule(conn, job, case, start=start,
                       end=end.replace(tzinfo=zone) if end else None, **spec)
    want = pgagent_fires(conn, sid, 40)
    assert want
    result = import_(url, tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "nets" / "scheduled.toml"
    got = fires(path, start - timedelta(seconds=1), 40)
    assert got == want, path.read_text()
    assert all(str(f.utcoffset()) in ("1:00:00", "2:00:00") for f in got)   # Berlin


def test_disabled_job_and_schedule_are_written_without_schedule(pg: Any,
                                                                tmp_path: Path) -> None:
    url, conn = pg
    off = add_job(conn, "off", enabled=False)
    add_step(conn, off, "s", "b", "true")
    add_schedule(conn, off, "daily", start=START, minutes={0}, hours={1})
    on = add_job(conn, "on")
    add_step(conn, on, "s", "b", "true")
    add_schedule(conn, on, "paused", start=START, minutes={0}, hours={1}, enabled=False)
    add_schedule(conn, on, "ended", start=datetime(2020, 1, 1).astimezone(),
                 end=datetime(2020, 2, 1).astimezone(), minutes={0}, hours={1})
    empty = add_job(conn, "no steps")
    add_schedule(conn, empty, "daily", start=START, minutes={0}, hours={1})
    result = import_(url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_in(tmp_path / "nets") == ["off.toml", "on.toml"]
    assert not load_file(tmp_path / "nets" / "off.toml").schedules
    assert not load_file(tmp_path / "nets" / "on.toml").schedules
    notes = result.stderr
    assert f"pgagent job {off} \"off\" schedule" in notes and "job is disabled" in notes
    assert "schedule is disabled" in notes and "ended on 2020-02-01" in notes
    assert f"pgagent job {empty} \"no steps\": not carried over: it has no steps" in notes


def test_only_some_jobs(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    for name in ("a", "b"):
        add_step(conn, add_job(conn, name), "s", "b", "true")
    result = import_(url, tmp_path, "--job", "b")
    assert result.returncode == 0, result.stderr
    assert files_in(tmp_path / "nets") == ["b.toml"]
    unknown = import_(url, tmp_path, "--job", "zzz", "--force")
    assert unknown.returncode == 4 and "'a'" in unknown.stderr


# ------------------------------------------------------------------ bad input


def test_unreachable_server(tmp_path: Path) -> None:
    result = import_(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("jaz: error: cannot reach postgresql://postgres@127.0.0.1")
    assert not (tmp_path / "nets").exists()


def test_database_without_pgagent_schema(tmp_path: Path) -> None:
    _require_pgagent()
    url = pg_support.fresh_database()
    result = import_(url, tmp_path)
    assert result.returncode == 4, result.stderr
    assert "no pgAgent schema in database" in result.stderr
    assert "pgagent.pga_job" in result.stderr and "CREATE EXTENSION pgagent" in result.stderr
    assert not (tmp_path / "nets").exists()


def test_bad_urls(tmp_path: Path) -> None:
    _require_pgagent()
    not_url = import_("host=localhost dbname=x", tmp_path)
    assert not_url.returncode == 2 and "expected a postgresql:// URL" in not_url.stderr
    no_db = import_(pg_support.server().url("no_such_db"), tmp_path)
    assert no_db.returncode == 4 and "no_such_db" in no_db.stderr
    secret = import_(f"postgresql://postgres:pw-123@127.0.0.1:{free_port()}/x", tmp_path)
    assert secret.returncode == 3 and "pw-123" not in secret.stderr
    assert "Traceback" not in not_url.stderr + no_db.stderr + secret.stderr


def test_refused_logins_and_reads(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    conn.execute("CREATE ROLE weak LOGIN")
    weak = import_(url.replace("postgres@", "weak@"), tmp_path)
    assert weak.returncode == 5, weak.stderr
    assert "permission denied for schema pgagent" in weak.stderr
    nobody = import_(url.replace("postgres@", "nobody@"), tmp_path)
    assert nobody.returncode == 5, nobody.stderr
    assert 'role "nobody" does not exist' in nobody.stderr
    assert not (tmp_path / "nets").exists()


def test_the_zone_is_the_databases_whatever_pgtz_says(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    job = add_job(conn, "zoned")
    add_step(conn, job, "s", "b", "true")
    add_schedule(conn, job, "daily", start=START.astimezone(), minutes={0}, hours={1})
    result = jaz("import", "pgagent", url, "--out", tmp_path / "nets", home=tmp_path / "home",
                 cwd=tmp_path, extra_env={"PGTZ": "America/New_York"})
    assert result.returncode == 0, result.stderr
    schedules = load_file(tmp_path / "nets" / "zoned.toml").schedules
    assert schedules and {s.timezone for s in schedules} == {"Europe/Berlin"}


def test_step_shells_and_line_ends(pg: Any, tmp_path: Path) -> None:
    url, conn = pg
    log = tmp_path / "log.txt"
    job = add_job(conn, "shells")
    add_step(conn, job, "a", "b", f"#!/bin/bash\r\necho \"$BASH_VERSION\" > {log}\r\n")
    result = import_(url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CRLF" in result.stderr
    net = load_file(tmp_path / "nets" / "shells.toml")
    assert net.jobs["a"].shell == "/bin/bash"
    assert "\r" not in net.jobs["a"].action.script
    ran = jaz("run", tmp_path / "nets" / "shells.toml", home=tmp_path / "home", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert log.read_text().strip()


def test_any_minute_level_start_fires_when_pgagent_would(pg: Any, tmp_path: Path) -> None:
    """Random schedules with random starts (any minute of a day in 2031-2032), each
    checked against pga_next_schedule on the same database: the first 12 fires."""
    import random
    from zoneinfo import ZoneInfo

    import psycopg

    url, conn = pg
    zone = ZoneInfo("Europe/Berlin")
    rng = random.Random(21)
    cases: dict[int, tuple[int, datetime]] = {}
    for n in range(30):
        def some(count: int, low: int, high: int, chance: float) -> set[int]:
            return set(rng.sample(range(low, high + 1), count)) if rng.random() < chance \
                else set()
        start = datetime(2031, 1, 1, tzinfo=zone) + timedelta(
            minutes=rng.randrange(0, 600 * 24 * 60))
        job = add_job(conn, f"random{n}")
        add_step(conn, job, "s", "b", "true")
        try:
            sid = add_schedule(conn, job, "r", start=start,
                               minutes=some(rng.randint(1, 4), 0, 59, 0.95),
                               hours=some(rng.randint(1, 5), 0, 23, 0.8),
                               weekdays=some(rng.randint(1, 4), 0, 6, 0.4),
                               monthdays=some(rng.randint(1, 6), 1, 31, 0.3),
                               months=some(rng.randint(1, 6), 1, 12, 0.3))
        except psycopg.errors.DatetimeFieldOverflow:
            continue   # pgAgent's own trigger fails on it (a 31st in a 30-day month)
        cases[n] = (sid, start)
    assert len(cases) >= 20
    result = import_(url, tmp_path)
    assert result.returncode == 0, result.stderr
    for n, (sid, start) in cases.items():
        want = pgagent_fires(conn, sid, 12)
        path = tmp_path / "nets" / f"random{n}.toml"
        got = fires(path, start - timedelta(seconds=1), 12) if want else []
        assert got == want, (start, path.read_text())
