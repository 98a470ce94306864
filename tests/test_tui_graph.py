"""The jobnet graph's layout (jaz.tui.graph) on awkward shapes: every job drawn once,
every edge a connected path of box-drawing cells from the job to the job that needs
it, each job in a later layer than its needs, no two jobs overlapping."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from jaz.tui.graph import BOX, D, L, Layout, R, U, layout, render


def bits_at(lay: Layout, x: int, y: int) -> int:
    line = lay.lines[y]
    if x >= len(line):
        return 0
    ch = line[x]
    if ch == "│":
        return U | D
    if ch == "─":
        return L | R
    return next((b for b, c in BOX.items() if c == ch and bin(b).count("1") > 1), 0)


def networks(lay: Layout) -> dict[tuple[int, int], int]:
    """Each line cell's network: cells joined by their box-drawing ends, flood-filled."""
    label: dict[tuple[int, int], int] = {}
    moves = ((R, L, 1, 0), (L, R, -1, 0), (D, U, 0, 1), (U, D, 0, -1))
    for y0, line in enumerate(lay.lines):
        for x0 in range(len(line)):
            if (x0, y0) in label or not bits_at(lay, x0, y0):
                continue
            label[(x0, y0)] = n = len(label)
            todo = [(x0, y0)]
            while todo:
                x, y = todo.pop()
                here = bits_at(lay, x, y)
                for out, into, dx, dy in moves:
                    nx, ny = x + dx, y + dy
                    if here & out and 0 <= ny < lay.height and (nx, ny) not in label \
                            and bits_at(lay, nx, ny) & into:
                        label[(nx, ny)] = n
                        todo.append((nx, ny))
    return label


def connected(lay: Layout, net: dict[tuple[int, int], int], a: str, b: str) -> bool:
    """A line leaves right after `a`'s label, one enters right before `b`'s, and they
    are one network of joined cells."""
    na, nb = lay.nodes[a], lay.nodes[b]
    start, goal = (na.x + na.width, na.row), (nb.x - 1, nb.row)
    return bool(bits_at(lay, *start) & L and bits_at(lay, *goal) & R
                and net.get(start) == net.get(goal) is not None)


def check(jobs: dict[str, dict[str, Any]]) -> Layout:
    lay = layout(jobs)
    assert set(lay.nodes) == set(jobs)
    text = "\n".join(render(lay))
    for name in jobs:   # drawn exactly once
        assert text.count(f" {name}]") == 1, name
    cells: set[tuple[int, int]] = set()
    for node in lay.nodes.values():
        mine = {(node.x + i, node.row) for i in range(node.width)}
        assert not cells & mine, f"{node.name} overlaps another job"
        cells |= mine
        line = lay.lines[node.row] if node.row < len(lay.lines) else ""
        assert not line[node.x:node.x + node.width].strip(), f"a line crosses {node.name}"
    net = networks(lay)
    for need, job in lay.edges:
        assert lay.nodes[job].layer > lay.nodes[need].layer, (need, job)
        assert connected(lay, net, need, job), f"no connector from {need} to {job}\n{text}"
    expected = {(n, j) for j, spec in jobs.items() for n in spec.get("needs", ())}
    assert set(lay.edges) == expected
    return lay


def test_a_diamond_and_a_second_component() -> None:
    lay = check({"a": {}, "b": {"needs": ["a"]}, "c": {"needs": ["a"]},
                 "d": {"needs": ["b", "c"]}, "x": {}, "y": {"needs": ["x"]}})
    assert lay.nodes["d"].layer == 2 and lay.nodes["y"].layer == 1
    # components are stacked: x's below the whole diamond
    assert lay.nodes["x"].row > max(lay.nodes[n].row for n in "abcd")


def test_wide_fan_out_and_fan_in() -> None:
    jobs: dict[str, dict[str, Any]] = {"root": {}}
    jobs.update({f"leaf{i:02}": {"needs": ["root"]} for i in range(50)})
    jobs["end"] = {"needs": [f"leaf{i:02}" for i in range(50)]}
    lay = check(jobs)
    assert len(lay.columns[1]) == 50
    assert lay.height >= 99   # one row per job, a row between


def test_a_long_chain_is_one_row() -> None:
    jobs = {f"step{i}": {"needs": [f"step{i - 1}"]} if i else {} for i in range(100)}
    lay = check(jobs)
    assert lay.height == 1 and len(lay.columns) == 100


def test_a_job_with_many_needs_and_long_edges() -> None:
    jobs: dict[str, dict[str, Any]] = {f"s{i}": {} for i in range(12)}
    jobs["mid"] = {"needs": ["s0"]}
    jobs["deep"] = {"needs": ["mid"]}
    jobs["all"] = {"needs": [*(f"s{i}" for i in range(12)), "deep"]}
    lay = check(jobs)
    assert lay.nodes["all"].layer == 3


def test_many_components_and_single_jobs() -> None:
    jobs: dict[str, dict[str, Any]] = {}
    for c in range(8):
        jobs[f"c{c}a"] = {}
        jobs[f"c{c}b"] = {"needs": [f"c{c}a"]}
    jobs.update({f"alone{i}": {} for i in range(5)})
    check(jobs)


def test_unknown_needs_and_self_needs_are_ignored() -> None:
    lay = layout({"a": {"needs": ["a", "ghost"]}, "b": {"needs": ["a"]}})
    assert lay.edges == [("a", "b")]
    assert layout({}).nodes == {}


def test_states_show_as_glyphs_bypassed_branch() -> None:
    jobs = {"a": {}, "b": {"needs": ["a"]}, "c": {"needs": ["a"]}, "d": {"needs": ["c"]}}
    states = {"a": "succeeded", "b": "failed", "c": "bypassed", "d": "bypassed"}
    text = "\n".join(render(check(jobs), states, {"succeeded": "✔", "failed": "✘",
                                                  "bypassed": "⤼"}))
    assert "[✔ a]" in text and "[✘ b]" in text and "[⤼ c]" in text and "[⤼ d]" in text


def test_navigation_moves_between_layers_and_within() -> None:
    lay = layout({"a": {}, "b": {"needs": ["a"]}, "c": {"needs": ["a"]},
                  "d": {"needs": ["b", "c"]}})
    first = lay.neighbour("a", "right")
    assert first in ("b", "c")
    other = lay.neighbour(first, "down") or lay.neighbour(first, "up")
    assert {first, other} == {"b", "c"}
    assert lay.neighbour(first, "right") == "d"
    assert lay.neighbour("a", "left") is None


@pytest.mark.parametrize("seed", [1, 2])
def test_a_500_job_dag_lays_out_fast(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"j{i}" for i in range(500)]
    jobs = {n: {"needs": sorted({names[rng.randint(max(0, i - 30), i - 1)]
                                 for _ in range(rng.randint(0, 3))}) if i else []}
            for i, n in enumerate(names)}
    began = time.perf_counter()
    lay = layout(jobs)
    print(f"500 jobs laid out in {time.perf_counter() - began:.2f}s, {lay.width}x{lay.height}")
    check(jobs)


def test_the_layout_is_deterministic() -> None:
    jobs = {"a": {}, "b": {"needs": ["a"]}, "c": {"needs": ["a"]}, "d": {"needs": ["b", "c"]},
            "e": {"needs": ["a", "d"]}}
    assert render(layout(jobs)) == render(layout(jobs))


def test_the_widget_moves_the_selection_and_keeps_it_in_view() -> None:
    import asyncio

    from textual.app import App, ComposeResult

    from jaz.tui.widgets.graph import JobGraph

    jobs: dict[str, dict[str, Any]] = {"root": {}}
    jobs.update({f"leaf{i:02}": {"needs": ["root"]} for i in range(50)})
    picked: list[str] = []

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield JobGraph(jobs, {"root": "succeeded", "leaf00": "running"})

        def on_job_graph_selected(self, message: JobGraph.Selected) -> None:
            picked.append(message.job)

    async def scenario() -> None:
        app = One()
        async with app.run_test(size=(60, 12)) as pilot:
            graph = app.query_one(JobGraph)
            graph.focus()
            await pilot.pause()
            assert graph.selected == "root" and picked == ["root"]
            await pilot.press("l")           # vim keys are on by default
            first = graph.selected
            assert first is not None and first.startswith("leaf")   # nearest by row
            for _ in range(49):
                await pilot.press("down")
            await pilot.pause()
            assert graph.selected == graph.graph_layout.columns[1][-1]
            assert graph.scroll_y > 0        # the selection was scrolled into view
            await pilot.press("left")
            assert graph.selected == "root"
            graph.set_state("root", "failed")
            assert graph.state_of("root") == "failed"
            graph.select("leaf07")
            await pilot.pause()
            assert picked[-1] == "leaf07"
            assert all(a != b for a, b in zip(picked, picked[1:], strict=False))

    asyncio.run(scenario())


def test_a_move_repaints_two_lines_and_a_scroll_centres() -> None:
    """Moving the selection repaints only the old and the new selection's lines (kept
    lines for the rest); a move out of view scrolls the selection to the middle."""
    import asyncio

    from textual.app import App, ComposeResult
    from textual.geometry import Region

    from jaz.tui.widgets.graph import JobGraph

    jobs: dict[str, dict[str, Any]] = {"root": {}}
    jobs.update({f"leaf{i:02}": {"needs": ["root"]} for i in range(40)})

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield JobGraph(jobs)

    async def scenario() -> None:
        app = One()
        async with app.run_test(size=(60, 20)) as pilot:
            graph = app.query_one(JobGraph)
            graph.focus()
            await pilot.press("l")
            await pilot.pause()
            refreshed: list[tuple[Region, ...]] = []
            original = graph.refresh

            def spy(*regions: Region, **kwargs: Any) -> Any:
                refreshed.append(regions)
                return original(*regions, **kwargs)

            graph.refresh = spy  # type: ignore[method-assign]
            before, scrolled = graph.selected, graph.scroll_y
            assert before is not None
            await pilot.press("down")
            after = graph.selected
            assert after is not None and after != before and graph.scroll_y == scrolled
            rows = {graph.graph_layout.nodes[j].row for j in (before, after)}
            assert refreshed and all(len(r) == 1 for r in refreshed)   # no full repaint
            assert {r[0].y + int(scrolled) for r in refreshed} == rows   # view rows
            assert all(r[0].height == 1 for r in refreshed)

            for _ in range(12):                   # past the bottom of the view
                await pilot.press("down")
            await pilot.pause()
            node = graph.graph_layout.nodes[graph.selected or ""]
            view = graph.scrollable_content_region.height
            assert graph.scroll_y > scrolled
            assert abs(node.row - (graph.scroll_y + view // 2)) <= 1   # in the middle

    asyncio.run(scenario())
