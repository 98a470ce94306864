"""`jaz.value.Value` behaves as `@dataclass(frozen=True, kw_only=True)` does, for
everything the engine relies on (it replaces dataclasses on the `jaz run` path)."""

from __future__ import annotations

import dataclasses

import pytest

from jaz.value import FrozenInstanceError, Value, field


class Point(Value):
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


class Point3(Point):
    z: int = 5


class Pair(Value, kw_only=False):
    a: int
    b: str = "b"


class Box(Value, frozen=False):
    n: int = 1


def test_keyword_construction_defaults_and_factories() -> None:
    p = Point(x=1)
    assert (p.x, p.y, p.tags) == (1, 0, [])
    assert Point(x=1).tags is not Point(x=1).tags        # a fresh default each time
    assert Point3(x=1)._fields == ("x", "y", "tags", "z")


@pytest.mark.parametrize("make,message", [
    (lambda: Point(), "missing 1 required keyword-only argument: 'x'"),
    (lambda: Point(x=1, w=2), "unexpected keyword argument 'w'"),
    (lambda: Point(1), "takes 1 positional argument but 2 were given"),
    (lambda: Pair(1, "x", 3), "takes 3 positional arguments but 4 were given"),
    (lambda: Pair(1, a=2), "got multiple values for argument 'a'"),
])
def test_construction_errors_read_like_dataclasses(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError) as e:
        make()
    assert message in str(e.value)


def test_frozen_equality_hash_and_repr() -> None:
    p = Point(x=1, y=2)
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y
    assert p == Point(x=1, y=2) and p != Point(x=1, y=3)
    assert p != Point3(x=1, y=2)                         # another class is never equal
    assert hash(Pair(1)) == hash(Pair(1, "b"))
    assert repr(Point(x=1)) == "Point(x=1, y=0, tags=[])"
    assert Pair(1, "c") == Pair(a=1, b="c")


def test_mutable_values_are_unhashable() -> None:
    box = Box()
    box.n = 2
    assert box.n == 2
    with pytest.raises(TypeError):
        hash(box)


def test_the_dataclasses_functions_work_on_values() -> None:
    p = Point3(x=1, tags=["a"])
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags", "z"]
    assert dataclasses.replace(p, y=9) == Point3(x=1, y=9, tags=["a"])
    assert dataclasses.asdict(p) == {"x": 1, "y": 0, "tags": ["a"], "z": 5}
    assert dataclasses.is_dataclass(p)
