"""`Value`: the engine's light stand-in for `@dataclass(frozen=True, kw_only=True)`.

Every `jaz run` imports the model, the records and the driver's small commands. As
dataclasses they cost start-up: Python 3.11 compiles each class's `__init__`,
`__repr__`, `__eq__`, `__hash__`, `__setattr__` and `__delattr__` from source at
import (~0.6 ms a class on the development VM, ~17 ms for the classes `jaz run`
needs), and `import dataclasses` brings `inspect` (~6 ms). A `Value` subclass gets
the same behaviour from methods shared by all of them, so defining one costs next to
nothing:

- keyword-only construction, defaults, `field(default_factory=...)`, and TypeError
  for a missing or unknown field; `kw_only=False` in the class line allows positions;
- frozen (`frozen=False` in the class line makes it mutable and, like a mutable
  dataclass, unhashable); equality and hash by class and fields; a dataclass repr;
- `_fields`, the field names in order (as a namedtuple has them);
- `dataclasses.fields`, `replace`, `asdict` and `is_dataclass` work on values: the
  field table they read is built on first use, by code that imported dataclasses.

Type checkers see dataclasses (PEP 681 `dataclass_transform`). Modules that `jaz run`
does not import keep plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, dataclass_transform

T = TypeVar("T")


class FrozenInstanceError(AttributeError):
    """Setting or deleting an attribute of a frozen value (dataclasses has its own)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is made afresh for each value (`dataclasses.field`)."""
    return _Factory(default_factory)  # type: ignore[return-value]


class _DataclassFields:
    """`__dataclass_fields__`, what the functions of `dataclasses` look for, made on
    first use from a real dataclass with the same fields (and then kept)."""

    def __get__(self, obj: object, cls: type[Value]) -> dict[str, Any]:
        import dataclasses

        types: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            types.update(klass.__dict__.get("__annotations__", {}))
        specs = []
        for name, default in cls._defaults.items():
            if default is _MISSING:
                spec = dataclasses.field()
            elif isinstance(default, _Factory):
                spec = dataclasses.field(default_factory=default.make)
            else:
                spec = dataclasses.field(default=default)
            specs.append((name, types[name], spec))
        mirror = dataclasses.make_dataclass(cls.__name__, specs, kw_only=not cls._positional)
        fields = {f.name: f for f in dataclasses.fields(mirror)}
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


def _where(cls: type) -> str:
    return f"{cls.__name__}.__init__()"  # as a dataclass's __init__ names itself


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
class Value:
    """Base of the engine's value objects; see the module docstring."""

    _fields: ClassVar[tuple[str, ...]] = ()
    # every field in order: its default, a _Factory, or _MISSING when it has none
    _defaults: ClassVar[dict[str, Any]] = {}
    _special: ClassVar[tuple[str, ...]] = ()  # the fields without a plain default
    _positional: ClassVar[bool] = False
    __dataclass_fields__: ClassVar[Any] = _DataclassFields()

    def __init_subclass__(cls, *, frozen: bool = True, kw_only: bool = True,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defaults = dict(cls._defaults)  # inherited fields first, as dataclasses has them
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            default = cls.__dict__.get(name, _MISSING)
            if isinstance(default, _Factory):
                delattr(cls, name)
            defaults[name] = default
        cls._defaults = defaults
        cls._fields = tuple(defaults)
        cls._special = tuple(name for name, default in defaults.items()
                             if default is _MISSING or isinstance(default, _Factory))
        cls._positional = not kw_only
        type.__setattr__(cls, "__match_args__", () if kw_only else cls._fields)
        if not frozen:
            type.__setattr__(cls, "__setattr__", object.__setattr__)
            type.__setattr__(cls, "__delattr__", object.__delattr__)
            type.__setattr__(cls, "__hash__", None)

    def __init__(self, *args: Any, **values: Any) -> None:
        cls = type(self)
        if args:
            if not cls._positional or len(args) > len(cls._fields):
                most = 1 + len(cls._fields) * cls._positional
                raise TypeError(f"{_where(cls)} takes {most} positional "
                                f"argument{'s' * (most > 1)} but {1 + len(args)} were given")
            for name, value in zip(cls._fields, args, strict=False):
                if name in values:
                    raise TypeError(f"{_where(cls)} got multiple values for argument {name!r}")
                values[name] = value
        state = {**cls._defaults, **values}
        if len(state) != len(cls._defaults):
            unknown = next(name for name in values if name not in cls._defaults)
            raise TypeError(f"{_where(cls)} got an unexpected keyword argument {unknown!r}")
        for name in cls._special:
            value = state[name]
            if value is _MISSING:
                kind = "positional" if cls._positional else "keyword-only"
                raise TypeError(f"{_where(cls)} missing 1 required {kind} argument: {name!r}")
            if type(value) is _Factory:
                state[name] = value.make()
        self.__dict__.update(state)

    def _values(self) -> tuple[Any, ...]:
        return tuple([self.__dict__[name] for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
