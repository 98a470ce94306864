"""Folder watching with inotify (jaz/server/watch.py) and the server's watch loop: a
change is read at once, nothing is read while nothing changes, and a folder that is
missing, or goes away, is looked for until it can be watched."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jaz.server import daemon
from jaz.server.config import parse_config
from jaz.server.watch import FolderWatch
from tests.support import wait_for


@pytest.fixture
def watch() -> Iterator[FolderWatch]:
    opened = FolderWatch.open()
    assert opened is not None, "inotify is there on Linux"
    yield opened
    opened.close()


def test_a_written_jobnet_file_is_a_change(watch: FolderWatch, tmp_path: Path) -> None:
    assert watch.follow([tmp_path])
    assert not watch.follow([tmp_path])                  # already watched
    (tmp_path / "etl.toml").write_text('[jobs.a]\nrun = "true"\n')
    assert watch.wait(10)
    assert not watch.wait(0.2)                           # read once: nothing more


@pytest.mark.parametrize("change", ["append", "rename in", "remove", "touch"])
def test_every_kind_of_change_to_a_jobnet_file_is_seen(watch: FolderWatch, tmp_path: Path,
                                                       change: str) -> None:
    target = tmp_path / "etl.toml"
    target.write_text('[jobs.a]\nrun = "true"\n')
    staged = tmp_path.parent / f"{tmp_path.name}-staged.toml"
    staged.write_text('[jobs.b]\nrun = "true"\n')
    watch.follow([tmp_path])
    if change == "append":
        with target.open("a") as f:
            f.write("# more\n")
    elif change == "rename in":             # how many editors and deploy tools save
        os.replace(staged, target)
    elif change == "remove":
        target.unlink()
    else:
        os.utime(target, ns=(5, 5))
    assert watch.wait(10)


def test_other_files_are_no_change(watch: FolderWatch, tmp_path: Path) -> None:
    watch.follow([tmp_path])
    (tmp_path / ".etl.toml.swp").write_text("editor state")
    (tmp_path / "notes.txt").write_text("notes")
    assert not watch.wait(0.3)


def test_a_folder_that_goes_away_is_followed_again_when_it_is_back(
        watch: FolderWatch, tmp_path: Path) -> None:
    folder = tmp_path / "jobnets"
    assert not watch.follow([folder])                    # missing: asked again later
    folder.mkdir()
    assert watch.follow([folder])
    shutil.rmtree(folder)
    assert watch.wait(10)
    assert not watch.follow([folder])
    folder.mkdir()
    assert watch.follow([folder])
    (folder / "a.toml").write_text("")
    assert watch.wait(10)


def test_a_folder_no_longer_wanted_is_no_longer_watched(watch: FolderWatch,
                                                       tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    watch.follow([one, two])
    watch.follow([two])
    (one / "a.toml").write_text("")
    assert not watch.wait(0.3)
    (two / "a.toml").write_text("")
    assert watch.wait(10)


def test_wake_ends_a_wait_from_another_thread(watch: FolderWatch, tmp_path: Path) -> None:
    watch.follow([tmp_path])
    threading.Timer(0.1, watch.wake).start()
    t0 = time.monotonic()
    assert not watch.wait(30)
    assert time.monotonic() - t0 < 10


# ---------------------------------------------------------------- the server's loop


def _daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> daemon.Daemon:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    config = parse_config(f'jobnets = "{tmp_path / "jobnets"}"\n'
                          f'calendars = "{tmp_path / "calendars"}"\n'
                          f'database = "{tmp_path / "jaz.db"}"\n')
    return daemon.Daemon(config, home=tmp_path / "home")


def _watching(d: daemon.Daemon) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=d._watch_loop, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        d.stop()
        thread.join(10)
        d.core.close()
    assert not thread.is_alive(), "stop() wakes the watch loop"


def test_the_server_reads_a_new_jobnet_at_once_without_looking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no look would come for an hour: only inotify can tell the loop
    monkeypatch.setattr(daemon, "FULL_LOOK", 3600.0)
    monkeypatch.setattr(daemon, "RELOAD_EVERY", 3600.0)
    (tmp_path / "jobnets").mkdir()
    (tmp_path / "calendars").mkdir()
    d = _daemon(tmp_path, monkeypatch)
    for _ in _watching(d):
        wait_for(lambda: d._folders is not None and d._folders._folders,
                 "the folders to be watched")
        (tmp_path / "jobnets" / "etl.toml").write_text('[jobs.a]\nrun = "true"\n')
        wait_for(lambda: [e.name for e in d.core.registry.all()] == ["etl"],
                 "the new jobnet to be loaded")
        (tmp_path / "jobnets" / "etl.toml").write_text('[jobs.b]\nrun = "true"\n')
        wait_for(lambda: set(d.core.registry.get("etl").jobnet.jobs) == {"b"},  # type: ignore
                 "the changed jobnet to be loaded")


def test_a_folder_made_after_the_start_is_watched_and_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "FULL_LOOK", 3600.0)
    monkeypatch.setattr(daemon, "CHECK_EVERY", 0.05)
    d = _daemon(tmp_path, monkeypatch)     # no folders: no calendars folder ever
    for _ in _watching(d):
        (tmp_path / "jobnets").mkdir()
        (tmp_path / "jobnets" / "a.toml").write_text('[jobs.a]\nrun = "true"\n')
        wait_for(lambda: [e.name for e in d.core.registry.all()] == ["a"],
                 "the folder's jobnet")
        (tmp_path / "jobnets" / "b.toml").write_text('[jobs.b]\nrun = "true"\n')
        wait_for(lambda: [e.name for e in d.core.registry.all()] == ["a", "b"],
                 "the jobnet written after the watch began")


def test_a_folder_behind_a_swapped_symlink_is_watched_where_it_now_leads(
        watch: FolderWatch, tmp_path: Path) -> None:
    # deploys often swap a `current` symlink to a new release
    one, two, current = tmp_path / "one", tmp_path / "two", tmp_path / "current"
    one.mkdir()
    two.mkdir()
    current.symlink_to(one)
    assert watch.follow([current])
    swapped = tmp_path / "swapped"
    swapped.symlink_to(two)
    os.replace(swapped, current)
    assert watch.follow([current])          # a new watch: the caller looks once
    (two / "a.toml").write_text("")
    assert watch.wait(10)


def test_close_makes_a_late_wake_harmless(tmp_path: Path) -> None:
    watch = FolderWatch.open()
    assert watch is not None
    watch.close()
    spare = os.open(tmp_path / "spare", os.O_WRONLY | os.O_CREAT)   # may reuse a number
    try:
        watch.wake()
        assert os.fstat(spare).st_size == 0
    finally:
        os.close(spare)
