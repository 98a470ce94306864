"""`jaz import crontab`: real crontabs through the real command line; the jobnets written
load with the engine's loader, run with `jaz run`, and fire when cron would (croniter,
with Vixie cron's day-of-month/day-of-week rule, is the reference)."""

from __future__ import annotations

import json
import random
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from import_support import FIXTURES, files_in, fires, jaz

from jaz.engine.loader import load_file

CRONTABS = FIXTURES / "crontabs"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_a_real_crontab_becomes_jobnets_that_validate(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "nets"
    result = jaz("import", "crontab", CRONTABS / "ops.crontab", "--out", out, home=home,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert files_in(out) == [
        "calendars/cron-weekdays-mon.toml", "cron-mail.sh", "ops-backup-db.toml",
        "ops-echo.toml", "ops-find.toml", "ops-mail.toml", "ops-poll.toml",
        "ops-weekend-cleanup.toml"]
    src = str(CRONTABS / "ops.crontab")
    notes = result.stderr.splitlines()
    # what could not be carried over, or only so, line by line
    assert any(n.startswith(f"{src}:8: MAILTO=ops@example.com,dba@example.com: ") for n in notes)
    assert any(n.startswith(f"{src}:14: a day field starting with '*'") for n in notes)
    assert any(n.startswith(f"{src}:16: @reboot is not carried over") for n in notes)
    assert any(n.startswith(f"{src}:18: TZ is carried into the jobs' environment only")
               for n in notes)
    assert len(notes) == 4, notes
    validated = jaz("validate", *sorted(out.glob("*.toml")), out / "calendars" /
                    "cron-weekdays-mon.toml", home=home, cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr

    backup = load_file(out / "ops-backup-db.toml")
    assert backup.description == "nightly database backup"
    (job,) = backup.jobs.values()
    assert job.action.script == "/usr/local/bin/backup-db.sh --full >> /var/log/backup.log 2>&1"
    assert job.shell == str(out.resolve() / "cron-mail.sh")   # cron's mail, MAILTO set
    assert job.env["SHELL"] == "/bin/bash"                     # what that runs it with
    assert job.env["MAILTO"] == "ops@example.com,dba@example.com"
    assert job.env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert job.env["GREETING"] == "  hello, cron  "      # quotes keep the blanks, as cron does
    (schedule,) = backup.schedules
    assert (schedule.cron.text, schedule.timezone, schedule.overlap, schedule.catchup) == \
        ("30 2 * * *", None, "allow", "none")
    mail = load_file(out / "ops-mail.toml")
    assert mail.schedules[0].timezone == "Asia/Tokyo"       # CRON_TZ
    assert mail.jobs["mail"].env["TZ"] == "Asia/Tokyo"
    weekend = tomllib.loads((out / "ops-weekend-cleanup.toml").read_text())
    assert weekend["jobs"]["weekend_cleanup"]["env"]["MAILTO"] == ""
    assert weekend["jobs"]["weekend_cleanup"]["shell"] == "/bin/bash"   # MAILTO="": no mail
    assert f"MAILTO: jobs mail their output through {out.resolve() / 'cron-mail.sh'}" in \
        result.stdout


def test_percent_feeds_standard_input_and_shell_and_home_apply(tmp_path: Path,
                                                               home: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    crontab = (f"HOME={work}\nSHELL=/bin/bash\n"
               "0 1 * * * cat > stdin.txt; echo \"$BASH_VERSION\" > shell.txt; "
               "echo 100\\% > literal.txt%first line%second \\% line%%last\n")
    out = tmp_path / "nets"
    result = jaz("import", "crontab", "-", "--out", out, home=home, cwd=tmp_path,
                 stdin=crontab)
    assert result.returncode == 0, result.stderr
    (net,) = out.glob("*.toml")
    assert net.name == "crontab-cat.toml"                 # stdin is named "crontab"
    ran = jaz("run", net, home=home, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (work / "stdin.txt").read_text() == "first line\nsecond % line\n\nlast"
    assert (work / "literal.txt").read_text() == "100%\n"
    assert (work / "shell.txt").read_text().strip()       # bash ran it: BASH_VERSION is set


def test_bad_lines_fail_the_whole_import_and_write_nothing(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "nets"
    result = jaz("import", "crontab", CRONTABS / "bad.crontab", "--out", out, home=home,
                 cwd=tmp_path)
    assert result.returncode == 2
    src = str(CRONTABS / "bad.crontab")
    lines = result.stderr.splitlines()
    assert lines[0] == (f"jaz: error: {src}:3: value 61 is out of range in the minute field "
                        "(0-59), in: 61 * * * * /bin/echo minute 61")
    assert lines[1] == (f"{src}:4: bad month field \"/bin/echo\": cron takes numbers, *, "
                        "ranges a-b, steps */n and lists a,b and names, in: "
                        "* * * /bin/echo too few fields")
    assert lines[2].startswith(f"{src}:5: unknown macro \"@fortnightly\"")
    assert lines[3].startswith(f"{src}:6: bad day of month field \"L\"")
    assert lines[4] == ("  hint: nothing was written; fix these lines (crontab -e would refuse "
                        "them too)")
    assert len(lines) == 5, lines
    assert not out.exists()
    assert "Traceback" not in result.stderr


def test_existing_files_are_refused_unless_forced(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "nets"
    out.mkdir()
    (out / "crontab-true.toml").write_text("keep me")
    args = ("import", "crontab", "-", "--out", out)
    refused = jaz(*args, home=home, cwd=tmp_path, stdin="0 2 * * * /bin/true\n")
    assert refused.returncode == 2 and "exist already" in refused.stderr
    assert (out / "crontab-true.toml").read_text() == "keep me"
    forced = jaz(*args, "--force", home=home, cwd=tmp_path, stdin="0 2 * * * /bin/true\n")
    assert forced.returncode == 0, forced.stderr
    assert load_file(out / "crontab-true.toml").jobs["true"].action.script == "/bin/true"


def test_one_jobnet_per_crontab(tmp_path: Path, home: Path) -> None:
    same = "# backups\n0 3 * * * /bin/echo a\n0 3 * * * /bin/echo b\n@reboot /bin/x\n"
    out = tmp_path / "nets"
    result = jaz("import", "crontab", "-", "--one", "--prefix", "nightly", "--out", out,
                 home=home, cwd=tmp_path, stdin=same)
    assert result.returncode == 0, result.stderr
    net = load_file(out / "nightly.toml")
    assert sorted(net.jobs) == ["echo", "echo_2"]
    assert all(not j.needs for j in net.jobs.values())    # cron starts them side by side
    assert net.schedules[0].cron.text == "0 3 * * *"
    zoned = "0 3 * * * /bin/echo a\nCRON_TZ=Asia/Tokyo\n0 4 * * * /bin/echo b\n"
    refused = jaz("import", "crontab", "-", "--one", "--out", tmp_path / "other", home=home,
                  cwd=tmp_path, stdin=zoned)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "jaz: error: <stdin>:3: --one joins entries that fire at different times by testing "
        "the time each run was scheduled for, which jaz gives in the server's zone; this "
        "entry runs under CRON_TZ=Asia/Tokyo"), refused.stderr
    assert "drop --one (one jobnet per entry)" in refused.stderr
    assert not (tmp_path / "other").exists()


MIXED = ["0 3 * * *", "*/20 9-10 * * mon-fri", "0 0 */2 * 1", "0 12 1,15 * fri",
         "30 6 * jan,jul *", "0 3 * * *", "15 */6 1-7 * *", "@weekly"]


def test_one_jobnet_for_entries_on_different_schedules(tmp_path: Path, home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--one over entries that fire at different times: the jobnet fires at the union of
    their times, and at each fire exactly the entries whose cron line matches run."""
    from jaz.engine import expr
    from jaz.importers.crontab import MACROS

    monkeypatch.setenv("TZ", "UTC")   # the zone the schedules and $JAZ_SCHEDULED_TIME share
    out = tmp_path / "nets"
    crontab = "".join(f"{line} /bin/echo {n}\n" for n, line in enumerate(MIXED))
    result = jaz("import", "crontab", "-", "--one", "--no-mail", "--out", out, home=home,
                 cwd=tmp_path, stdin=crontab, extra_env={"TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    assert "<stdin>:1: --one: the entries fire at different times" in result.stderr
    path = out / "crontab.toml"
    net = load_file(path)
    assert len(net.schedules) == len(set(MIXED))          # one for each distinct time
    after, n = datetime(2027, 1, 1, tzinfo=UTC), 300
    own = {line: set(_reference(MACROS.get(line, line), after, n)) for line in MIXED}
    union = sorted(set().union(*own.values()))[:n]
    got = fires(path, after, n)
    assert got == union, path.read_text()
    jobs = [name for name in net.jobs if name != "cron_time"]
    assert len(jobs) == len(MIXED)
    for at in got:
        scope = expr.Scope(variables={}, now=at,
                           jobs={"cron_time": {"AT": at.isoformat(timespec="seconds")}})
        for k, (name, line) in enumerate(zip(jobs, MIXED, strict=True)):
            job = net.jobs[name]
            assert list(job.needs) == ["cron_time"]
            runs = expr.parse(job.if_ or "true").evaluate(scope) is True
            assert runs == (at in own[line]), (k, line, at, job.if_)


def test_one_jobnet_over_different_schedules_runs_the_entries_due(tmp_path: Path,
                                                                    home: Path) -> None:
    """A real run of such a jobnet: the entry due every minute runs, the one due once a
    year is passed over (unless this is that minute), the time job publishes the time."""
    out = tmp_path / "nets"
    work = tmp_path / "work"
    work.mkdir()
    crontab = (f"HOME={work}\n* * * * * echo every > every.txt\n"
               "0 3 1 1 * echo yearly > yearly.txt\n")
    assert jaz("import", "crontab", "-", "--one", "--no-mail", "--out", out, home=home,
               cwd=tmp_path, stdin=crontab).returncode == 0
    started = datetime.now().astimezone()
    ran = jaz("run", out / "crontab.toml", "--json", home=home, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    view = json.loads(ran.stdout)
    jobs = view["jobs"]
    assert jobs["cron_time"]["status"] == "succeeded"
    assert jobs["cron_time"]["outputs"]["AT"].startswith(started.strftime("%Y-%m-%dT"))
    assert jobs["echo"]["status"] == "succeeded"
    assert (work / "every.txt").read_text() == "every\n"
    due = started.month == 1 and started.day == 1 and started.hour == 3 and started.minute == 0
    assert jobs["echo_2"]["status"] == ("succeeded" if due else "bypassed")
    assert (work / "yearly.txt").exists() == due


def test_system_crontab_carries_the_user(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "nets"
    result = jaz("import", "crontab", CRONTABS / "system.crontab", "--system", "--out", out,
                 home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    nets = {p.name: load_file(p) for p in out.glob("*.toml")}
    assert sorted(nets) == ["system-anacron.toml", "system-cron.hourly.toml"]
    hourly = nets["system-cron.hourly.toml"]
    (job,) = hourly.jobs.values()
    assert job.user == "root" and job.cwd == "/root"
    assert job.action.script == "cd / && run-parts --report /etc/cron.hourly"
    assert hourly.schedules[0].cron.text == "17 * * * *"


def test_missing_file_is_not_found(tmp_path: Path, home: Path) -> None:
    result = jaz("import", "crontab", tmp_path / "nope", "--out", tmp_path / "o", home=home,
                 cwd=tmp_path)
    assert result.returncode == 4 and "no such crontab file" in result.stderr


# ------------------------------------------------------------------ fire times


def _reference(expr: str, after: datetime, n: int) -> list[datetime]:
    """Vixie cron's fire times: croniter, with the day fields ANDed when either starts
    with '*' (cron's DOM_STAR/DOW_STAR) and ORed otherwise."""
    from croniter import croniter

    fields = expr.split()
    day_or = not (fields[2].startswith("*") or fields[4].startswith("*"))
    it = croniter(expr, after, day_or=day_or)
    return [it.get_next(datetime) for _ in range(n)]


def _imported(tmp_path: Path, lines: list[str]) -> list[Path]:
    from jaz.importers import write_plan
    from jaz.importers.crontab import Options, plan_crontab

    out = tmp_path / "nets"
    plan = plan_crontab("CRON_TZ=UTC\n" + "".join(f"{x} /bin/true\n" for x in lines),
                        "t.crontab", Options(out=out, prefix="t", home=str(tmp_path)))
    written = write_plan(plan, out)
    return [p for p in written if p.parent == out and p.suffix == ".toml"]


CASES = ["*/60 */30 * * *", "0 0 */2 * 1", "0 0 1,15 * fri", "0 0 13 * */2", "*/7 * * * *",
         "0 12 * * 7",
         "30 4 1-7 * mon", "0 0 * * *", "5 */3 * jan-mar,oct *", "0 6 */10 */2 sun-tue",
         "15 14 1 * *", "0 22 * * 1-5", "23 0-23/2 * * *", "0 0 29 2 *", "0 0 31 * *",
         "@weekly", "@monthly", "@yearly", "@hourly"]


def test_fire_times_match_cron(tmp_path: Path) -> None:
    written = _imported(tmp_path, CASES)
    assert len(written) == len(CASES)
    after = datetime(2027, 1, 1, tzinfo=UTC)
    from jaz.importers.crontab import MACROS

    for path, expr in zip(sorted(written, key=lambda p: _line(p)), CASES, strict=True):
        got = fires(path, after, 40)
        want = _reference(MACROS.get(expr, expr), after, 40)
        assert got == want, f"{expr}: {path.read_text()}"


def _line(path: Path) -> int:
    first = path.read_text().splitlines()[0]
    return int(first.rpartition(":")[2])


def _random_field(rng: random.Random, low: int, high: int, names: list[str] | None) -> str:
    def atom() -> int:
        return rng.randint(low, high)

    def one() -> str:
        kind = rng.random()
        if kind < 0.25:
            return "*" if rng.random() < 0.5 else f"*/{rng.randint(1, high - low + 1)}"
        if kind < 0.5:
            a, b = sorted((atom(), atom()))
            if a == b:   # croniter reads "6-6" its own way; cron and jaz read 6
                return str(a)
            step = f"/{rng.randint(1, 5)}" if rng.random() < 0.4 else ""
            return f"{a}-{b}{step}"
        value = atom()
        if names and rng.random() < 0.3:
            return names[value - low]
        return str(value)

    first = one()
    if first.startswith("*"):
        return first
    rest = [one() for _ in range(rng.randint(0, 2))]
    return ",".join([first, *(r for r in rest if not r.startswith("*"))])


def test_fire_times_match_cron_on_random_entries(tmp_path: Path) -> None:
    rng = random.Random(21)
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
              "dec"]
    days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    exprs = []
    while len(exprs) < 150:
        fields = [_random_field(rng, 0, 59, None), _random_field(rng, 0, 23, None),
                  _random_field(rng, 1, 28, None), _random_field(rng, 1, 12, months),
                  _random_field(rng, 0, 6, days)]
        exprs.append(" ".join(fields))
    written = _imported(tmp_path, exprs)
    after = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    for path in written:
        expr = exprs[_line(path) - 2]
        assert fires(path, after, 25) == _reference(expr, after, 25), \
            f"{expr}: {path.read_text()}"


def test_jaz_next_on_an_imported_file(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "nets"
    crontab = "CRON_TZ=Europe/Berlin\n0 9 */2 * mon echo hi\n"
    assert jaz("import", "crontab", "-", "--out", out, home=home, cwd=tmp_path,
               stdin=crontab).returncode == 0
    result = jaz("next", out / "crontab-echo.toml", "-n", "6", "--after",
                 "2027-03-01T00:00+01:00", "--json", home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # odd days of the month that are Mondays (cron's AND, the day field starts with '*')
    assert json.loads(result.stdout) == [
        "2027-03-01T09:00:00+01:00", "2027-03-15T09:00:00+01:00",
        "2027-03-29T09:00:00+02:00", "2027-04-05T09:00:00+02:00",
        "2027-04-19T09:00:00+02:00", "2027-05-03T09:00:00+02:00"]


def test_imported_into_a_servers_folder_they_load_and_run(tmp_path: Path) -> None:
    from support import running_server, wait_for

    work = tmp_path / "work"
    work.mkdir()
    crontab = (f"HOME={work}\nCRON_TZ=Europe/Berlin\n"
               "0 9 */2 * mon echo ran > ran.txt\n")
    with running_server(tmp_path, {}) as (url, token, env, home):
        out = tmp_path / "jobnets"       # the server's folder, watched
        imported = jaz("import", "crontab", "-", "--out", out, home=home, cwd=tmp_path,
                       stdin=crontab)
        assert imported.returncode == 0, imported.stderr
        client = {"JAZ_SERVER": url, "JAZ_TOKEN": token}

        def listed() -> list[dict[str, object]]:
            result = jaz("jobnets", "--json", home=home, cwd=tmp_path, extra_env=client)
            return [n for n in json.loads(result.stdout) if n["name"] == "crontab-echo"]

        (net,) = wait_for(listed, "the server to load the imported jobnet")
        assert net["valid"] and not net["problems"], net
        after = "2027-03-01T00:00:00+01:00"
        served = jaz("next", "crontab-echo", "-n", "5", "--after", after, "--json", home=home,
                     cwd=tmp_path, extra_env=client)
        assert served.returncode == 0, served.stderr
        local = [t.isoformat() for t in fires(out / "crontab-echo.toml",
                                              datetime.fromisoformat(after), 5)]
        assert json.loads(served.stdout) == local       # the calendar resolves there too
        ran = jaz("start", "crontab-echo", "--wait", home=home, cwd=tmp_path,
                  extra_env=client)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (work / "ran.txt").read_text() == "ran\n"


def _fake_sendmail(tmp_path: Path) -> Path:
    """A sendmail that keeps each mail (its arguments, then the message) in mail.N."""
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\nn=$(ls {tmp_path}/mails | wc -l)\n'
                    f'{{ echo "$@"; cat; }} > {tmp_path}/mails/mail.$n\n')
    fake.chmod(0o755)
    (tmp_path / "mails").mkdir()
    return fake


def _mails(tmp_path: Path) -> list[str]:
    return [p.read_text() for p in sorted((tmp_path / "mails").iterdir())]


def test_mailto_mails_a_jobs_output_as_cron_does(tmp_path: Path, home: Path) -> None:
    import getpass
    import socket

    out = tmp_path / "nets"
    crontab = ("0 1 * * * echo to the owner\n"                       # no MAILTO: the owner
               "MAILTO=a@example.com,b@example.com\n"
               "0 2 * * * echo out; echo err >&2; exit 3\n"           # output: mailed
               "0 3 * * * true\n"                                     # no output: no mail
               'MAILTO=""\n'
               "0 4 * * * echo nobody hears\n")                       # MAILTO="": no mail
    imported = jaz("import", "crontab", "-", "--out", out, home=home, cwd=tmp_path,
                   stdin=crontab)
    assert imported.returncode == 0, imported.stderr
    notes = imported.stderr.splitlines()
    assert notes[0].startswith("<stdin>:1: no MAILTO: cron mails a job's output to the "
                               "crontab's owner"), notes
    assert notes[1].startswith("<stdin>:2: MAILTO=a@example.com,b@example.com: the jobs "
                               "below mail their output as cron does"), notes
    assert len(notes) == 2, notes
    assert (out / "cron-mail.sh").stat().st_mode & 0o111
    env = {"SENDMAIL": str(_fake_sendmail(tmp_path))}
    runs = {}
    for name in ("crontab-echo", "crontab-echo-2", "crontab-true", "crontab-echo-3"):
        runs[name] = jaz("run", out / f"{name}.toml", home=home, cwd=tmp_path,
                         extra_env=env)
    assert runs["crontab-echo"].returncode == 0, runs["crontab-echo"].stderr
    assert runs["crontab-echo-2"].returncode != 0       # the command's exit status, kept
    assert runs["crontab-true"].returncode == 0 and runs["crontab-echo-3"].returncode == 0
    owner, host = getpass.getuser(), socket.gethostname()
    first, second = _mails(tmp_path)                    # one for each job with output
    assert first == (f"-t -i\nTo: {owner}\nSubject: Cron <{owner}@{host}> echo to the owner\n"
                     "Auto-Submitted: auto-generated\n"
                     "Content-Type: text/plain; charset=UTF-8\n\nto the owner\n")
    assert second.startswith("-t -i\nTo: a@example.com,b@example.com\n"
                             f"Subject: Cron <{owner}@{host}> echo out; echo err >&2; exit 3\n")
    assert second.endswith("\n\nout\nerr\n")           # stdout and stderr, as written
    logs = jaz("logs", "1", "echo", "--local", home=home, cwd=tmp_path)
    assert "to the owner" in logs.stdout                # the output stays in jaz's log too


def test_no_mail_keeps_the_output_in_jazs_logs_only(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "nets"
    imported = jaz("import", "crontab", "-", "--no-mail", "--out", out, home=home,
                   cwd=tmp_path, stdin="MAILTO=a@example.com\n0 2 * * * echo out\n")
    assert imported.returncode == 0, imported.stderr
    assert files_in(out) == ["crontab-echo.toml"]
    assert "<stdin>:2: --no-mail: cron would mail the jobs' output" in imported.stderr
    assert load_file(out / "crontab-echo.toml").jobs["echo"].shell == "/bin/sh"
    assert "MAILTO" not in imported.stdout


def test_bytes_that_are_not_text_and_odd_settings(tmp_path: Path, home: Path) -> None:
    bad = tmp_path / "latin1.crontab"
    bad.write_bytes(b"0 1 * * * echo ok\n0 2 * * * echo caf\xe9\n")
    result = jaz("import", "crontab", bad, "--out", tmp_path / "o", home=home, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"jaz: error: {bad}:2: the line is not UTF-8 text")
    odd = "my.var=1\n0 1 * * * echo ok\n"
    result = jaz("import", "crontab", "-", "--out", tmp_path / "o", home=home, cwd=tmp_path,
                 stdin=odd)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith('<stdin>:1: the setting "my.var" is not carried over')
    assert "my.var" not in (tmp_path / "o" / "crontab-echo.toml").read_text()
