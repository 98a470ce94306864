"""The Runs screen of `jaz tui` against a real `jaz server`: sorting by any column (by
value), the `/` filter and its language, paging, and the run actions (start through
the modal, stop, hold, release), also as a viewer who may not act. Waits poll the app
with deadlines; results are checked on the server."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from textual.widgets import Checkbox, Input, Select
from tui_support import Server, tui, tui_server, until

from jaz.tui.app import JazApp
from jaz.tui.screens import runs as runs_screen
from jaz.tui.screens.start import StartScreen
from jaz.tui.widgets.confirm import ConfirmScreen
from jaz.tui.widgets.filter import FilterError, FilterInput, parse_filter
from jaz.tui.widgets.runs_table import RunsTable, sort_value

VIEWER_TOKEN = "viewer-token-for-tests"
CONFIG = (f'[users.v]\nrole = "viewer"\n'
          f'token_sha256 = "{hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest()}"\n')
JOBNETS = {
    "hello": '[jobs.greet]\nrun = "echo hello"\n',
    "greet": '[params]\nwho = "world"\n[jobs.say]\nrun = "echo hi"\n',
    "boom": 'on_failure = "stop"\n[jobs.fail]\nrun = "exit 3"\n',
    "slow": '[jobs.nap]\nrun = "sleep 30"\n',
}
FUTURE = (datetime.now().astimezone() + timedelta(days=2)).replace(microsecond=0).isoformat()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with tui_server(tmp_path_factory.mktemp("tui-runs"), JOBNETS, CONFIG) as running:
        # ids past 9, so that sorting "10" before "9" (as text) would show
        for name in ["hello", "greet", "boom"] * 4:
            running.finished(running.start(name))
        yield running


def table(app: JazApp) -> RunsTable:
    return app.screen.query_one(RunsTable)


def column(app: JazApp, key: str) -> list[Any]:
    t = table(app)
    return [int(row) if key == "id" else t.cell_text(row, key) for row in t.ordered_keys()]


def notes(app: JazApp) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def loaded(pilot: Any, app: JazApp, *run_ids: int) -> RunsTable:
    t = table(app)
    await until(pilot, lambda: t.row_count and all(str(r) in t.rows for r in run_ids),
                "the runs to be shown")
    return t


async def start_modal(pilot: Any, app: JazApp) -> StartScreen:
    """`n`, and the modal once its list of jobnets has come (it then picks the selected
    run's jobnet: a choice made before that would be overwritten)."""
    await pilot.press("n")
    modal: StartScreen = await until(
        pilot, lambda: isinstance(app.screen, StartScreen) and app.screen, "the start modal")
    await until(pilot, lambda: not modal.query_one("#jobnet", Select).is_blank(),
                "the jobnets in the modal")
    return modal


async def started(pilot: Any, app: JazApp) -> int:
    """The id of the run the start modal started, as its notification says."""
    await until(pilot, lambda: "started run" in notes(app), "started run N")
    return int(notes(app).split("started run ")[1].split()[0])


async def filter_by(pilot: Any, app: JazApp, text: str) -> None:
    await pilot.press("slash")
    box = app.screen.query_one(FilterInput)
    assert box.has_focus
    box.value = text
    await pilot.press("enter")
    await pilot.pause()


# ------------------------------------------------------------------ pure parts


def test_sort_values_are_values_not_text() -> None:
    def run(rid: int, start: str | None, end: str | None) -> dict[str, Any]:
        return {"run_id": rid, "status": "succeeded", "started_at": start, "ended_at": end}

    t0 = "2026-11-20T10:00:00+00:00"
    nine, ten = run(9, t0, "2026-11-20T10:00:09+00:00"), run(10, t0, "2026-11-20T10:00:10+00:00")
    assert sort_value(nine, "id", 0) < sort_value(ten, "id", 0)
    assert sort_value(nine, "duration", 0) < sort_value(ten, "duration", 0)
    late = run(1, "2026-11-20T09:00:00-05:00", None)    # 14:00 UTC, after t0
    assert sort_value(nine, "start", 0) < sort_value(late, "start", 0)
    assert sort_value(run(2, None, None), "start", 0) < sort_value(nine, "start", 0)


@pytest.mark.parametrize(("text", "run", "shown"), [
    ("", {"jobnet": "x", "status": "failed"}, True),
    ("NIGHT", {"jobnet": "nightly-backup", "status": "failed"}, True),
    ("night backup", {"jobnet": "nightly-backup", "status": "failed"}, True),
    ("night daily", {"jobnet": "nightly-backup", "status": "failed"}, False),
    ("state:failed,running", {"jobnet": "x", "status": "running"}, True),
    ("s:failed", {"jobnet": "x", "status": "succeeded"}, False),
    ("trigger:schedule", {"jobnet": "x", "status": "failed", "trigger": "manual"}, False),
    ("since:2h", {"jobnet": "x", "status": "failed",
                  "created_at": "2026-11-20T11:00:00+00:00"}, True),
    ("since:2h", {"jobnet": "x", "status": "failed",
                  "created_at": "2026-11-20T09:00:00+00:00"}, False),
    ("since:3d", {"jobnet": "x", "status": "failed", "scheduled_at":
                  "2026-11-18T09:00:00+00:00", "created_at": "2026-11-10T00:00:00+00:00"}, True),
    ("since:2026-11-20", {"jobnet": "x", "status": "failed",
                          "created_at": "2026-11-19T23:59:00+00:00"}, False),
    ("until:2026-11-19", {"jobnet": "x", "status": "failed",
                          "created_at": "2026-11-19T23:59:00+00:00"}, True),
    ("until:2026-11-19T12:00", {"jobnet": "x", "status": "failed",
                                "created_at": "2026-11-19T23:59:00+00:00"}, False),
])
def test_filter_language(text: str, run: dict[str, Any], shown: bool) -> None:
    now = datetime.fromisoformat("2026-11-20T12:00:00+00:00")
    assert parse_filter(text, now).matches(run) is shown


@pytest.mark.parametrize(("text", "says"), [
    ("since:banana", "bad time"), ("state:sleeping", "unknown state 'sleeping'"),
    ("colour:red", "unknown filter 'colour'"), ("state:", "needs a value"),
])
def test_bad_filters_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(FilterError, match=says):
        parse_filter(text, datetime.now().astimezone())


# ------------------------------------------------------------------ the screen


def test_sort_by_clicking_headers_and_keys_keeps_the_cursor(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            t = await loaded(pilot, app, 12)
            ids = column(app, "id")
            assert ids == sorted(ids, reverse=True) and len(ids) >= 12
            t.select(10)
            await pilot.press("s")     # id -> jobnet, A to Z
            names = column(app, "jobnet")
            assert names == sorted(names) and names[0] == "boom"
            assert t.cursor_run() is not None and t.cursor_run()["run_id"] == 10
            await pilot.press("S")
            assert column(app, "jobnet") == sorted(names, reverse=True)
            await pilot.click(RunsTable, offset=(2, 0))   # the ID header
            assert column(app, "id") == sorted(ids, reverse=True)
            await pilot.click(RunsTable, offset=(2, 0))   # again: reversed
            assert column(app, "id") == sorted(ids)
            assert t.cursor_run()["run_id"] == 10   # type: ignore[index]
            assert t.header_label("id") == "ID ▲"

    asyncio.run(scenario())


def test_filter_by_words_state_and_time_and_a_bad_filter(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            t = await loaded(pilot, app, 12)
            total = t.row_count
            await filter_by(pilot, app, "GRE")
            assert set(column(app, "jobnet")) == {"greet"}
            assert app.screen.sub_title == f"GRE · {t.row_count} of {total} runs"
            assert app.screen.query_one(FilterInput).display is False
            assert t.has_focus

            await filter_by(pilot, app, "s:failed")
            assert {str(s) for s in column(app, "state")} == {"✘ failed"}
            await filter_by(pilot, app, "state:failed since:1h")
            assert t.row_count == 4
            await filter_by(pilot, app, "since:2099-01-01")
            assert t.row_count == 0

            await filter_by(pilot, app, "since:banana")   # kept: the old filter
            assert "bad time in 'since:banana'" in notes(app)
            assert t.filter.text == "since:2099-01-01"
            assert app.screen.query_one(FilterInput).has_focus   # fix it in place
            await pilot.press("escape")                         # clears and closes
            assert t.row_count == total and not t.filter

            await filter_by(pilot, app, "state:failed")
            shown = t.row_count
            rid = server.start("hello")          # live, but not failed: hidden
            await until(pilot, lambda: str(rid) in t.runs, "the live run")
            await until(pilot, lambda: t.runs[str(rid)]["status"] == "succeeded",
                        "the live run to end")
            assert t.row_count == shown and str(rid) not in t.rows
            assert app.screen.sub_title == f"state:failed · {shown} of {total + 1} runs"
            await pilot.press("escape")
            assert str(rid) in t.rows

    asyncio.run(scenario())


def test_pages_are_loaded_up_to_max_runs(server: Server,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs_screen, "PAGE", 3)
    monkeypatch.setattr(runs_screen, "MAX_RUNS", 8)
    newest = sorted(int(r["run_id"]) for r in server.api.get(
        "/api/v1/runs", params={"limit": 8}).json())

    async def scenario() -> None:
        async with tui(server, (80, 24)) as (app, pilot):
            await loaded(pilot, app, *newest)
            await until(pilot, lambda: not any(w.is_running for w in app.workers
                                               if w.group == "load"), "the last page")
            assert sorted(column(app, "id")) == newest

    asyncio.run(scenario())


def test_start_with_a_param_through_the_modal(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (80, 24)) as (app, pilot):
            t = await loaded(pilot, app, 12)
            t.select(11)    # a greet run: the modal offers greet
            modal = await start_modal(pilot, app)
            assert modal.query_one("#jobnet", Select).value == "greet"
            who = await until(pilot, lambda: modal.query(".param Input"),
                              "the params prefilled")
            assert who.first(Input).value == "world"
            before = len(server.api.get("/api/v1/runs", params={"limit": 1000}).json())
            modal.query_one("#at", Input).value = "half past nine"
            modal.action_start()
            await pilot.pause()
            assert "bad time" in str(modal.query_one("#error").render())
            assert len(server.api.get("/api/v1/runs",
                                      params={"limit": 1000}).json()) == before

            modal.query_one("#at", Input).value = ""
            who.first(Input).value = "mars"
            await pilot.click("#start")
            rid = await started(pilot, app)
            assert server.run(rid)["params"] == {"who": "mars"}
            assert t.cursor_run()["run_id"] == rid   # type: ignore[index]

    asyncio.run(scenario())


def test_start_held_then_release(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            await loaded(pilot, app, 12)
            modal = await start_modal(pilot, app)
            modal.query_one("#jobnet", Select).value = "hello"
            modal.query_one("#hold", Checkbox).value = True
            modal.action_start()      # at once: hello's params are not in the fields yet
            assert "still loading" in str(modal.query_one("#error").render())
            await until(pilot, lambda: modal._shown == "hello", "hello's params")
            modal.action_start()
            rid = await started(pilot, app)
            assert server.run(rid)["status"] == "held"
            assert table(app).cursor_run()["run_id"] == rid  # type: ignore[index]
            await pilot.press("u")
            assert server.finished(rid)["status"] == "succeeded"

    asyncio.run(scenario())


def test_stop_a_running_run_after_confirming(server: Server) -> None:
    rid = server.start("slow")

    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            t = await loaded(pilot, app, rid)
            t.select(rid)
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen),
                        "the confirmation")
            await pilot.press("y")
            assert server.finished(rid)["status"] == "stopped"
            await until(pilot, lambda: t.cell_text(str(rid), "state") == "■ stopped",
                        "the row to say stopped")

    asyncio.run(scenario())


def test_hold_and_release_a_scheduled_run(server: Server) -> None:
    rid = server.start("hello", at=FUTURE)

    async def scenario() -> None:
        async with tui(server, (120, 30)) as (app, pilot):
            t = await loaded(pilot, app, rid)
            t.select(rid)
            await pilot.press("h")
            await until(pilot, lambda: server.run(rid)["status"] == "held", "held")
            await until(pilot, lambda: t.runs[str(rid)]["status"] == "held", "row held")
            await pilot.press("u")
            await until(pilot, lambda: server.run(rid)["status"] == "scheduled",
                        "scheduled again")

    asyncio.run(scenario())


def test_a_viewer_is_told_not_allowed(server: Server) -> None:
    rid = server.start("hello", at=FUTURE)

    async def scenario() -> None:
        async with tui(server, (120, 30), token=VIEWER_TOKEN) as (app, pilot):
            t = await loaded(pilot, app, rid)
            t.select(rid)
            await pilot.press("h")
            await until(pilot, lambda: "not allowed" in notes(app), "not allowed")
            assert server.run(rid)["status"] == "scheduled"
            assert app.is_running

    asyncio.run(scenario())


def test_works_at_80x24(server: Server) -> None:
    async def scenario() -> None:
        async with tui(server, (80, 24)) as (app, pilot):
            await loaded(pilot, app, 12)
            shot = app.export_screenshot()
            for label in ("ID", "Jobnet", "State", "Trigger", "Start", "Duration"):
                assert label in shot
            await pilot.press("slash")
            await pilot.press("escape")
            await pilot.press("question_mark")
            await pilot.press("escape")
            await pilot.press("s", "S", "r")
            assert app.is_running

    asyncio.run(scenario())


def test_many_rows_filter_at_once_and_move_in_place_after_live_changes() -> None:
    from textual.app import App, ComposeResult

    def run(i: int, status: str = "succeeded") -> dict[str, Any]:
        return {"run_id": i, "jobnet": f"net{i % 7}", "status": status,
                "created_at": "2026-11-20T10:00:00+00:00"}

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield RunsTable()

    async def scenario() -> None:
        app = One()
        async with app.run_test() as pilot:
            t = app.query_one(RunsTable)
            t.load([run(i) for i in range(1, 1201)])
            t.set_filter(parse_filter("net3", datetime.now().astimezone()))
            assert t.row_count == t.shown == len(range(3, 1201, 7))
            t.set_filter(parse_filter("", datetime.now().astimezone()))
            assert t.row_count == 1200
            assert [int(k) for k in t.ordered_keys()] == list(range(1200, 0, -1))

            t.sort_by("state")     # scheduled < running < succeeded < failed...
            t.select(600)
            t.upsert(run(600, "running"))     # moved at once, the cursor with it
            assert t.row_key_at(0) == "600" and t.cursor_key == "600"
            t.select(300)
            t.upsert(run(1201, "running"))    # a new run above: the cursor stays on 300
            assert t.ordered_keys()[:2] == ["600", "1201"] and t.cursor_key == "300"
            await pilot.pause()

    asyncio.run(scenario())


def test_keys_scroll_and_rows_added_above_keep_the_view() -> None:
    from textual.app import App, ComposeResult

    def run(i: int) -> dict[str, Any]:
        return {"run_id": i, "jobnet": "net", "status": "succeeded",
                "created_at": "2026-11-20T10:00:00+00:00"}

    class One(App[None]):
        selected: ClassVar[list[str]] = []

        def compose(self) -> ComposeResult:
            yield RunsTable()

        def on_fast_table_row_selected(self, message: RunsTable.RowSelected) -> None:
            self.selected.append(message.key)

    async def scenario() -> None:
        app = One()
        selected = app.selected
        async with app.run_test(size=(80, 12)) as pilot:
            t = app.query_one(RunsTable)
            t.load([run(i) for i in range(1, 501)])
            t.focus()
            await pilot.pause()
            page = t.page_height
            await pilot.press("down", "pagedown")
            assert t.cursor_row == 1 + page and t.cursor_key == str(500 - 1 - page)
            top = int(t.scroll_y)
            assert top <= t.cursor_row < top + page
            t.upsert(run(501))                     # at the top, above the screen
            assert int(t.scroll_y) == top + 1 and t.cursor_key == str(500 - 1 - page)
            await pilot.press("G")
            assert t.cursor_key == "1" and t.cursor_row == 500
            await pilot.press("g")
            assert t.cursor_key == "501" and int(t.scroll_y) == 0
            await pilot.click(RunsTable, offset=(2, 3))   # the third row: the cursor
            assert t.cursor_key == "499" and not selected
            await pilot.click(RunsTable, offset=(2, 3))   # again: opened
            await pilot.press("enter")
            await pilot.pause()
            assert selected == ["499", "499"]

    asyncio.run(scenario())


def test_live_changes_keep_the_order_a_full_sort_would_give() -> None:
    """Inserts, moves and filter changes by bisection end where sorting all would."""
    import random

    from textual.app import App, ComposeResult

    rnd = random.Random(5)
    states = ["scheduled", "running", "succeeded", "failed", "held"]

    def run(i: int) -> dict[str, Any]:
        return {"run_id": i, "jobnet": rnd.choice(["a", "b", "c"]),
                "status": rnd.choice(states), "trigger": rnd.choice(["manual", "schedule"]),
                "created_at": "2026-11-20T10:00:00+00:00",
                "started_at": f"2026-11-20T10:{rnd.randrange(60):02d}:00+00:00"}

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield RunsTable()

    async def scenario() -> None:
        app = One()
        async with app.run_test(size=(80, 12)):
            t = app.query_one(RunsTable)
            t.load([run(i) for i in range(1, 300)])
            now = datetime.now().astimezone()
            for step in range(400):
                if step % 50 == 0:
                    t.sort_by(rnd.choice(["id", "jobnet", "state", "start", "trigger"]),
                              rnd.choice([True, False]))
                if step % 70 == 0:
                    t.set_filter(parse_filter(rnd.choice(["", "a", "s:failed,running"]), now))
                t.upsert(run(rnd.randrange(1, 330)))
                if step % 25 == 0:
                    expect = sorted((r for r in t.runs.values() if t.filter.matches(r)),
                                    key=lambda r: sort_value(r, t.sort_column, 0),
                                    reverse=t.sort_reverse)
                    assert t.ordered_keys() == [str(r["run_id"]) for r in expect]
                    assert t.cursor_key is None or t.cursor_key in t.rows

    asyncio.run(scenario())
