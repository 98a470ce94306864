"""The server's TOML configuration (SPEC §4): defaults, paths relative to the file, and
every malformed value reported with its field."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from jaz.errors import JobnetInvalid, NotFound
from jaz.server.config import ServerConfig, load_config, parse_config

DIGEST = hashlib.sha256(b"s3cret").hexdigest()


def test_no_file_means_defaults() -> None:
    config = load_config(None)
    assert config == ServerConfig()
    assert config.listen == "127.0.0.1:10061"
    assert (config.allow_root, config.keep_days, config.max_memory) == (False, None, None)


def test_a_full_config(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "jaz.toml"
    path.parent.mkdir()
    path.write_text(f"""
listen = "[::1]:10070"
database = "../state/jaz.db"
jobnets = "jobnets"
calendars = "/srv/calendars"
allow_root = true
keep_days = 30
log_level = "DEBUG"
max_memory = "512MiB"

[hosts.db1]
agent = "db1.example:10055"
[hosts.web]
ssh = "ops@web1"
description = "front end"

[queues]
io = 2
process = 8

[users.alice]
role = "operator"
token_sha256 = "{DIGEST.upper()}"

[notify]
command = "logger -t jaz"
""")
    config = load_config(path)
    assert (config.listen_host, config.listen_port, config.listen) == \
        ("::1", 10070, "[::1]:10070")
    assert config.database == str((tmp_path / "state" / "jaz.db").resolve())
    assert config.jobnets == (tmp_path / "etc" / "jobnets").resolve()
    assert config.calendars == Path("/srv/calendars")
    assert (config.allow_root, config.keep_days, config.log_level) == (True, 30, "debug")
    assert config.max_memory == 512 * 2**20
    assert config.hosts["db1"].agent == "db1.example:10055"
    assert config.hosts["web"].ssh == "ops@web1"
    assert config.queues == {"io": 2, "process": 8}
    assert config.users["alice"].role == "operator"
    assert config.users["alice"].token_sha256 == DIGEST
    assert config.notify is not None and config.notify.command == "logger -t jaz"


@pytest.mark.parametrize("text,field,message", [
    ('listen = "localhost"', "listen", 'bad listen address "localhost"'),
    ('listen = "1.2.3.4:99999"', "listen", "bad listen address"),
    ('listen = "1.2.3.4:-1"', "listen", "bad listen address"),
    ('listen = 10061', "listen", "expected a string"),
    ('lisen = "127.0.0.1:1"', "lisen", 'did you mean "listen"?'),
    ('database = "postgresql://jaz:pw@db/jaz"', "database",
     "put the password in ~/.pgpass or PGPASSWORD"),
    ('allow_root = "yes"', "allow_root", "expected true or false"),
    ('keep_days = 0', "keep_days", "expected a whole number >= 1"),
    ('keep_days = "30d"', "keep_days", "expected a whole number"),
    ('log_level = "loud"', "log_level", "expected one of"),
    ('max_memory = "lots"', "max_memory", 'bad size "lots"'),
    ('max_memory = "512 parsecs"', "max_memory", "bad size"),
    ('max_memory = -1', "max_memory", "bad size"),
    ('[hosts.local]\nssh = "x@y"', "hosts.local", '"local" is built in'),
    ('[hosts.db]\nagent = "db"', "hosts.db.agent", 'bad agent address "db"'),
    ('[hosts.db]\nagent = "db:1"\nssh = "x@db"', "hosts.db", "exactly one of"),
    ('[hosts.db]\ndescription = "?"', "hosts.db", "exactly one of"),
    ('[hosts.db]\nagent = "db:1"\nport = 1\nflavour = 2', "hosts.db.flavour", "unknown key"),
    ('hosts = 3', "hosts", "expected a table"),
    ('[queues]\nio = 0', "queues.io", "expected a whole number >= 1"),
    ('[queues]\nio = "2"', "queues.io", "expected a whole number"),
    ('[users.bob]\nrole = "god"\ntoken_sha256 = "' + DIGEST + '"', "users.bob.role",
     'expected one of "viewer", "operator", "admin", got "god"'),
    ('[users.bob]\nrole = "admin"\ntoken_sha256 = "abc"', "users.bob.token_sha256",
     "hex SHA-256"),
    ('[users.bob]\nrole = "admin"\ntoken = "plain"', "users.bob.token",
     'unknown key "token"'),
    ('[users.bob]\nrole = "admin"', "users.bob.token_sha256", "sha256sum"),
    ('[notify]\nevents = ["run_failed"]', "notify", "needs a command"),
])
def test_malformed_configs_name_the_field(tmp_path: Path, text: str, field: str,
                                          message: str) -> None:
    path = tmp_path / "jaz.toml"
    path.write_text(text + "\n")
    with pytest.raises(JobnetInvalid) as e:
        load_config(path)
    found = [(p.field, p.message) for p in e.value.problems]
    assert any(f == field and message in m for f, m in found), found
    assert all(p.file == str(path) for p in e.value.problems)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(JobnetInvalid) as e:
        parse_config('listen = "x"\nkeep_days = -3\n[queues]\nio = 0\n')
    assert sorted(p.field or "" for p in e.value.problems) == ["keep_days", "listen",
                                                               "queues.io"]


def test_toml_errors_have_a_line() -> None:
    with pytest.raises(JobnetInvalid) as e:
        parse_config('listen = "127.0.0.1:1"\nkeep_days = = 3\n')
    assert e.value.problems[0].line == 2


def test_a_missing_config_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as e:
        load_config(tmp_path / "nope.toml")
    assert "no such config file" in e.value.message
