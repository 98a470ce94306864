"""A jobnet's graph as text: jobs in layers by `needs`, flowing left to right, with
box-drawing connectors from each job to the jobs that need it. Pure: no Textual.

Left to right because terminals are wider than tall, and a long chain then only needs
horizontal scrolling. Each job is one line, `[✔ name]` (the state glyph is drawn by the
widget: `label`), placed on even rows so that connectors have room between them.

grandalf's Sugiyama layout assigns the layers and orders each layer to reduce crossings
(edges longer than one layer get dummy vertices, drawn as straight lines through the
layers they pass). Components are found here with a union-find and laid out one by one,
stacked top to bottom: grandalf's `Graph()` finds them in quadratic time (~0.5 s for
500 jobs), its `graph_core` per component does not. Rows inside a layer come from the
layers next to it (each job near the mean row of its neighbours, order kept, two rows
apart), a few passes down and up.

Between two layers, each job's edges share one vertical track (a fan-out reads as one
trunk with branches); tracks whose rows do not overlap share a column, so a gap is only
as wide as the edges crossing it need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len

PITCH = 2           # rows from one job to the next in a layer
COMPONENT_GAP = 3   # rows between two components
ORDER_ROUNDS = 2    # grandalf ordering rounds (down and up each)...
BIG = 1000          # ...one for components with more vertices (dummies included)
PLACE_PASSES = 4    # row placement passes (alternately down and up)

U, D, L, R = 1, 2, 4, 8
BOX = {U | D: "│", L | R: "─", D | R: "┌", D | L: "┐", U | R: "└", U | L: "┘",
       U | D | R: "├", U | D | L: "┤", D | L | R: "┬", U | L | R: "┴", U | D | L | R: "┼",
       U: "│", D: "│", L: "─", R: "─"}
CHARS = [BOX.get(bits, " ") for bits in range(16)]


def label(name: str, glyph: str = "·") -> str:
    """A job as drawn: `[glyph name]`; the glyph is one cell wide, so the width does
    not change with the state."""
    return f"[{glyph} {name}]"


def label_width(name: str) -> int:
    return cell_len(name) + 4


@dataclass(frozen=True)
class Node:
    """Where a job is drawn: its layer (column), row, first cell and width."""

    name: str
    layer: int
    row: int
    x: int
    width: int


@dataclass
class Layout:
    """The drawn graph: the connector grid (`lines`, job cells left blank) and where each
    job is. `columns[layer]` lists that layer's jobs top to bottom."""

    nodes: dict[str, Node]
    edges: list[tuple[str, str]]
    lines: list[str]
    width: int
    height: int
    columns: list[list[str]] = field(default_factory=list)
    by_row: dict[int, list[str]] = field(default_factory=dict)

    def neighbour(self, name: str, direction: str) -> str | None:
        """The job the selection moves to from `name`: `up`/`down` within its layer,
        `left`/`right` to the nearest job (by row) of the next layer that has jobs."""
        node = self.nodes[name]
        if direction in ("up", "down"):
            column = self.columns[node.layer]
            i = column.index(name) + (1 if direction == "down" else -1)
            return column[i] if 0 <= i < len(column) else None
        step = 1 if direction == "right" else -1
        layer = node.layer + step
        while 0 <= layer < len(self.columns):
            if self.columns[layer]:
                return min(self.columns[layer],
                           key=lambda n: (abs(self.nodes[n].row - node.row), self.nodes[n].row))
            layer += step
        return None


# ---------------------------------------------------------------- layers and order

Key = Any   # a job name (str) or a dummy vertex (the grandalf object)


def _components(names: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return list(groups.values())


class _View:
    w = h = 10


def _layers(names: list[str], edges: list[tuple[str, str]]
            ) -> tuple[list[list[Key]], list[list[Key]]]:
    """One component's layers (lists of keys, ordered) and each edge's chain of keys
    through the layers (job, dummies..., job), via grandalf."""
    if len(names) == 1:
        return [[names[0]]], []
    from grandalf.graphs import Edge, Vertex, graph_core
    from grandalf.layouts import SugiyamaLayout

    vertices = {n: Vertex(n) for n in names}
    grid_edges = [Edge(vertices[a], vertices[b]) for a, b in edges]
    core = graph_core(list(vertices.values()), grid_edges)
    for v in core.sV:
        v.view = _View()
    sugiyama = SugiyamaLayout(core)
    sugiyama.init_all()
    for _ in range(ORDER_ROUNDS if len(sugiyama.grx) < BIG else 1):
        for _step in sugiyama.ordering_step():
            pass

    def key(v: Any) -> Key:
        return v.data if isinstance(v, Vertex) else v

    layers = [[key(v) for v in layer] for layer in sugiyama.layers]
    chains = []
    for e in grid_edges:
        ctrl = sugiyama.ctrls.get(e)
        if ctrl:
            chains.append([key(ctrl[r]) for r in sorted(ctrl)])
        else:
            a, b = e.v
            ends = sorted((a, b), key=lambda v: sugiyama.grx[v].rank)
            chains.append([key(v) for v in ends])
    return layers, chains


def _place(desired: list[float]) -> list[int]:
    """Rows nearest to `desired` (least squares) keeping the order and PITCH apart:
    isotonic regression (pool adjacent violators) on desired[i] - PITCH*i."""
    blocks: list[list[float]] = []   # [mean, weight]
    for i, d in enumerate(desired):
        blocks.append([d - PITCH * i, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[int] = []
    for mean, weight in blocks:
        out.extend([round(mean)] * int(weight))
    return [y + PITCH * i for i, y in enumerate(out)]


def _rows(layers: list[list[Key]], chains: list[list[Key]]) -> dict[Key, int]:
    """Each key's row: layers start evenly spaced, then each moves towards the mean row
    of its neighbours in the layer before (down passes) or after (up passes)."""
    pred: dict[Key, list[Key]] = {}
    succ: dict[Key, list[Key]] = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
    row = {k: PITCH * i for layer in layers for i, k in enumerate(layer)}
    for p in range(PLACE_PASSES):
        down = p % 2 == 0
        order = layers[1:] if down else layers[-2::-1]
        near = pred if down else succ
        for layer in order:
            desired = [sum(row[n] for n in near[k]) / len(near[k]) if near.get(k) else row[k]
                       for k in layer]
            for k, r in zip(layer, _place(desired), strict=True):
                row[k] = r
    top = min(row.values())
    return {k: r - top for k, r in row.items()}


# ---------------------------------------------------------------- drawing


class _Grid:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.cells = [[0] * width for _ in range(height)]

    def hline(self, y: int, x0: int, x1: int) -> None:
        """From x0 to x1, open at both ends (it joins what is beside them)."""
        for x in range(x0, x1 + 1):
            self.cells[y][x] |= L | R

    def vline(self, x: int, y0: int, y1: int) -> None:
        for y in range(y0, y1 + 1):
            self.cells[y][x] |= (U if y > y0 else 0) | (D if y < y1 else 0)

    def join(self, x: int, y: int, bits: int) -> None:
        self.cells[y][x] |= bits

    def text(self) -> list[str]:
        return ["".join(map(CHARS.__getitem__, line)).rstrip() for line in self.cells]


@dataclass
class _Trunk:
    """Edges of one gap drawn on one vertical track: one source's fan-out, or the
    fan-in of one target from sources with no other edge in the gap."""

    sources: list[Key]
    targets: list[int]    # rows
    lo: int = 0
    hi: int = 0
    track: int = -1       # -1: a straight line, no track


def _trunks(segments: list[tuple[Key, Key]], row_of: Mapping[Key, int]) -> list[_Trunk]:
    """Group a gap's edges into trunks and give them tracks: trunks whose rows do not
    overlap share one (first fit by top row)."""
    fan_out: dict[Key, list[Key]] = {}
    for a, b in segments:
        fan_out.setdefault(a, []).append(b)
    trunks: list[_Trunk] = []
    fan_in: dict[Key, _Trunk] = {}
    for a, targets in fan_out.items():
        if len(targets) > 1:
            trunks.append(_Trunk([a], sorted({row_of[b] for b in targets})))
        else:
            b = targets[0]
            if b not in fan_in:
                fan_in[b] = _Trunk([], [row_of[b]])
                trunks.append(fan_in[b])
            fan_in[b].sources.append(a)
    ends: list[int] = []    # the last row used on each track
    for trunk in trunks:
        rows = trunk.targets + [row_of[s] for s in trunk.sources]
        trunk.lo, trunk.hi = min(rows), max(rows)
    for trunk in sorted(trunks, key=lambda t: (t.lo, t.hi)):
        if trunk.lo == trunk.hi and len(trunk.sources) == 1:
            continue
        for t, end in enumerate(ends):
            if end < trunk.lo:
                ends[t], trunk.track = trunk.hi, t
                break
        else:
            trunk.track = len(ends)
            ends.append(trunk.hi)
    return trunks


def layout(jobs: Mapping[str, Mapping[str, Any]]) -> Layout:
    """Lay out `jobs` ({name: {"needs": [...], ...}}); needs naming unknown jobs and a
    job needing itself are ignored (an invalid jobnet still draws)."""
    names = list(jobs)
    known = set(names)
    edges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for name, job in jobs.items():
        for need in job.get("needs") or ():
            pair = (str(need), name)
            if pair[0] in known and pair[0] != name and pair not in seen:
                seen.add(pair)
                edges.append(pair)

    # layers and rows per component, stacked
    layer_of: dict[Key, int] = {}
    row_of: dict[Key, int] = {}
    all_chains: list[list[Key]] = []
    top = 0
    depth = 0
    for component in _components(names, edges):
        inside = set(component)
        layers, chains = _layers(component, [e for e in edges if e[0] in inside])
        rows = _rows(layers, chains)
        for i, layer in enumerate(layers):
            for k in layer:
                layer_of[k] = i
                row_of[k] = rows[k] + top
        top += max(rows.values()) + 1 + COMPONENT_GAP
        depth = max(depth, len(layers))
        all_chains.extend(chains)
    height = max(top - COMPONENT_GAP, 1)

    # column widths, then the gaps between them (tracks for the edges)
    widths = [1] * depth
    for n in names:
        widths[layer_of[n]] = max(widths[layer_of[n]], label_width(n))
    gap_trunks = [_trunks([(a, b) for chain in all_chains
                           for a, b in zip(chain, chain[1:], strict=False)
                           if layer_of[a] == i], row_of) for i in range(depth)]
    xs = []
    x = 0
    for i in range(depth):
        xs.append(x)
        tracks = max((t.track for t in gap_trunks[i]), default=-1) + 1
        x += widths[i] + (tracks + 3 if i < depth - 1 else 0)
    width = max(x, 1)

    grid = _Grid(width, height)
    dummies = {k for k in layer_of if not isinstance(k, str)}
    for k in dummies:   # a long edge passing through a layer
        grid.hline(row_of[k], xs[layer_of[k]], xs[layer_of[k]] + widths[layer_of[k]] - 1)
    for i in range(depth - 1):
        start, end = xs[i] + widths[i], xs[i + 1] - 1
        for trunk in gap_trunks[i]:
            outs = [(row_of[s], start if s in dummies else xs[i] + label_width(s))
                    for s in trunk.sources]
            if trunk.track < 0:   # one straight line
                (y, out), = outs
                grid.hline(y, out, end)
                continue
            tx = start + 1 + trunk.track
            for y, out in outs:
                grid.hline(y, out, tx - 1)
                grid.join(tx, y, L)
            for y in trunk.targets:
                grid.join(tx, y, R)
                grid.hline(y, tx + 1, end)
            grid.vline(tx, trunk.lo, trunk.hi)

    nodes = {n: Node(n, layer_of[n], row_of[n], xs[layer_of[n]], label_width(n))
             for n in names}
    columns: list[list[str]] = [[] for _ in range(depth)]
    by_row: dict[int, list[str]] = {}
    for n in sorted(names, key=lambda n: (nodes[n].row, nodes[n].x)):
        columns[nodes[n].layer].append(n)
        by_row.setdefault(nodes[n].row, []).append(n)
    return Layout(nodes=nodes, edges=edges, lines=grid.text(), width=width, height=height,
                  columns=columns, by_row=by_row)


def render(lay: Layout, states: Mapping[str, str] | None = None,
           glyphs: Mapping[str, str] | None = None) -> list[str]:
    """The whole graph as plain lines (for tests, snapshots of text, `jaz` CLI use):
    the connectors with each job's label laid over them."""
    glyph = glyphs or {}
    states = states or {}
    out = []
    for y, line in enumerate(lay.lines):
        chars = list(line.ljust(lay.width))
        for name in lay.by_row.get(y, ()):
            node = lay.nodes[name]
            text = label(name, glyph.get(states.get(name, ""), "·"))
            chars[node.x:node.x + node.width] = list(text)   # wide chars: approximate
        out.append("".join(chars).rstrip())
    return out
