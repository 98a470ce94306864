"""The small expression language of `if`, `repeat.until` and `${...}` in `set` values.

Expressions come from jobnet files, which are data and not code, so this is a real tokenizer,
recursive-descent parser and tree evaluator over a closed set of operations: no text ever
reaches Python's eval/compile, and names resolve only through the `Scope` mappings, so no
Python object, attribute or builtin is reachable from an expression. Parsing happens once at
load time (to report errors with a column); evaluation takes time and job results as arguments
so that runs are reproducible and testable.
"""

from __future__ import annotations

import datetime
import inspect
import math
import operator
import re
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

Value: TypeAlias = (
    str | int | float | bool | datetime.date | datetime.datetime | list["Value"] | None
)

_MAX_DEPTH = 100  # bounds parser and evaluator recursion well below Python's own limit
_MAX_SUBJECT = 100_000
_MAX_DIGITS = 300  # longer digit strings are text: int() of huge strings is slow or refused
_MAX_INT_BITS = 4096
_KEYWORDS = frozenset({"and", "or", "not", "in", "matches", "true", "false", "null"})
_CONSTANTS: dict[str, Value] = {"true": True, "false": False, "null": None}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_OPS2 = ("==", "!=", "<=", ">=")
_OPS1 = frozenset("+-*/%<>()[],.")
_HINTS = {"=": " (use '==' to compare)", "&": " (use 'and')", "|": " (use 'or')",
          "!": " (use 'not' or '!=')"}
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_NOT_PREC, _CMP_PREC = 3, 4
_PREC = {"or": 1, "and": 2, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
         **dict.fromkeys(("==", "!=", "<", "<=", ">", ">=", "in", "not in", "matches"), 4)}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "%": operator.mod}
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_FALSY = frozenset({"", "0", "false", "no"})
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ExprError(Exception):
    """A parse or evaluation error; `column` (1-based) lets the loader point into the file."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message, column)  # both in args, so the error survives pickling
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return self.message if self.column is None else f"{self.message} (column {self.column})"


@dataclass(frozen=True)
class Scope:
    """Everything an expression may see; time is passed in so results never depend on the clock."""

    variables: Mapping[str, str]
    jobs: Mapping[str, Mapping[str, Value]]
    now: datetime.datetime
    functions: Mapping[str, Callable[..., Value]] = field(default_factory=dict)
    # finds a calendar by name for operating_day(); None where calendars are unknown
    calendars: Callable[[str], OperatingDays] | None = None


class OperatingDays(Protocol):
    def is_operating(self, day: datetime.date) -> bool: ...


# --- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num", "str", "name", "kw", "op" or "end"
    text: str
    value: Value
    col: int

    def describe(self) -> str:
        if self.kind == "end":
            return "end of expression"
        text = self.text if len(self.text) <= 20 else self.text[:17] + "..."
        return f"string {text}" if self.kind == "str" else f"'{text}'"


def _tokenize(src: str, start: int, template: bool) -> tuple[list[_Token], int]:
    """Tokenize from `start`; return the tokens and the index where they stopped.

    Inside a template the expression ends at the first `}` outside a string literal, which is
    why the tokenizer, not a regex over the template, finds where `${...}` closes.
    """
    tokens: list[_Token] = []
    i, n = start, len(src)
    while i < n:
        c, col = src[i], i + 1
        if c in " \t\r\n":
            i += 1
            continue
        if template and c == "}":
            tokens.append(_Token("end", "}", None, col))
            return tokens, i
        j = i + 1
        if "0" <= c <= "9":
            j = _skip_digits(src, i)
            is_float = j + 1 < n and src[j] == "." and "0" <= src[j + 1] <= "9"
            j = _skip_digits(src, j + 1) if is_float else j
            if j - i > _MAX_DIGITS:
                raise ExprError("number is too long", col)
            tokens.append(_Token("num", src[i:j], float(src[i:j]) if is_float else int(src[i:j]),
                                 col))
        elif c in "'\"":
            value, j = _read_string(src, i)
            tokens.append(_Token("str", src[i:j], value, col))
        elif c == "_" or (c.isascii() and c.isalpha()):
            while j < n and (src[j] == "_" or (src[j].isascii() and src[j].isalnum())):
                j += 1
            kind = "kw" if src[i:j] in _KEYWORDS else "name"
            tokens.append(_Token(kind, src[i:j], None, col))
        elif src.startswith(_OPS2, i):
            j = i + 2
            tokens.append(_Token("op", src[i:j], None, col))
        elif c in _OPS1:
            tokens.append(_Token("op", c, None, col))
        else:
            raise ExprError(f"unexpected character {c!r}{_HINTS.get(c, '')}", col)
        i = j
    if template:
        raise ExprError("unclosed '${'", start - 1)
    tokens.append(_Token("end", "", None, n + 1))
    return tokens, n


def _skip_digits(src: str, i: int) -> int:
    while i < len(src) and "0" <= src[i] <= "9":
        i += 1
    return i


def _read_string(src: str, start: int) -> tuple[str, int]:
    """Unknown escapes stay as written so that regexes like "\\d+" need no doubling."""
    quote, out, i = src[start], list[str](), start + 1
    while i < len(src):
        c = src[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(src):
            out.append(_ESCAPES.get(src[i + 1], c + src[i + 1]))
            i += 2
            continue
        out.append(c)
        i += 1
    raise ExprError("unterminated string", start + 1)


# --- syntax tree -------------------------------------------------------------------------
# Every node keeps the column of the token that produced it (so evaluation errors can point at
# it) and its height (so a long operator chain cannot overflow the evaluator's recursion).


@dataclass(frozen=True, slots=True)
class _Lit:
    value: Value
    col: int
    height: int = 1


@dataclass(frozen=True, slots=True)
class _Var:
    name: str
    col: int
    height: int = 1


@dataclass(frozen=True, slots=True)
class _Attr:
    job: str
    attr: str
    col: int
    attr_col: int
    height: int = 1


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str  # "-" or "not"
    operand: _Node
    col: int
    height: int


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node
    col: int
    height: int


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Node, ...]
    col: int
    height: int


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[_Node, ...]
    col: int
    height: int


_Node: TypeAlias = _Lit | _Var | _Attr | _Unary | _Binary | _Call | _List


def _height(col: int, *children: _Node) -> int:
    height = 1 + max((child.height for child in children), default=0)
    if height > _MAX_DEPTH:
        raise ExprError(f"expression is nested too deeply (limit {_MAX_DEPTH})", col)
    return height


class _Parser:
    """Precedence climbing: one function for all binary levels keeps the recursion shallow."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._pos = 0
        self._depth = 0
        self.jobs: set[str] = set()

    def parse(self) -> _Node:
        if self._peek().kind == "end":
            raise ExprError("empty expression", self._peek().col)
        node = self._expr()
        tok = self._peek()
        if tok.kind != "end":
            raise ExprError(f"expected an operator or end of expression, found {tok.describe()}",
                            tok.col)
        return node

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._pos + ahead, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        tok = self._peek()
        if tok.kind != "end":
            self._pos += 1
        return tok

    def _at(self, kind: str, text: str) -> bool:
        tok = self._peek()
        return tok.kind == kind and tok.text == text

    def _expect(self, text: str, what: str) -> None:
        if not self._at("op", text):
            tok = self._peek()
            raise ExprError(f"expected {what}, found {tok.describe()}", tok.col)
        self._next()

    def _expr(self) -> _Node:
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise ExprError(f"expression is nested too deeply (limit {_MAX_DEPTH})",
                            self._peek().col)
        try:
            return self._binary(1)
        finally:
            self._depth -= 1

    def _binary_op(self) -> str | None:
        tok = self._peek()
        if tok.kind == "kw" and tok.text == "not":
            nxt = self._peek(1)
            return "not in" if nxt.kind == "kw" and nxt.text == "in" else None
        return tok.text if tok.kind in ("op", "kw") and tok.text in _PREC else None

    def _binary(self, min_prec: int) -> _Node:
        left: _Node
        if min_prec <= _NOT_PREC and self._at("kw", "not"):
            cols = []
            while self._at("kw", "not"):  # a loop, not recursion: `not not ... x` stays flat
                cols.append(self._next().col)
            left = self._binary(_CMP_PREC)
            for col in reversed(cols):
                left = _Unary("not", left, col, _height(col, left))
        else:
            left = self._unary()
        chained = False
        while (op := self._binary_op()) is not None and _PREC[op] >= min_prec:
            tok = self._next()
            if op == "not in":
                self._next()
            if _PREC[op] == _CMP_PREC and chained:
                raise ExprError("comparisons cannot be chained; join them with 'and'", tok.col)
            right = self._binary(_PREC[op] + 1)
            left = _Binary(op, left, right, tok.col, _height(tok.col, left, right))
            chained = _PREC[op] == _CMP_PREC
        return left

    def _unary(self) -> _Node:
        cols = []
        while self._at("op", "-"):
            cols.append(self._next().col)
        node = self._primary()
        if self._at("op", "."):
            raise ExprError("'.' can only follow a job name, as in job.NAME", self._peek().col)
        for col in reversed(cols):
            node = _Unary("-", node, col, _height(col, node))
        return node

    def _primary(self) -> _Node:
        tok = self._next()
        if tok.kind in ("num", "str"):
            return _Lit(tok.value, tok.col)
        if tok.kind == "kw" and tok.text in _CONSTANTS:
            return _Lit(_CONSTANTS[tok.text], tok.col)
        if tok.kind == "name":
            if self._at("op", "("):
                self._next()
                args = self._sequence(")")
                return _Call(tok.text, args, tok.col, _height(tok.col, *args))
            if self._at("op", "."):
                self._next()
                attr = self._next()
                if attr.kind != "name":
                    raise ExprError(f"expected an output name after '.', found {attr.describe()}",
                                    attr.col)
                self.jobs.add(tok.text)
                return _Attr(tok.text, attr.text, tok.col, attr.col)
            return _Var(tok.text, tok.col)
        if tok.kind == "op" and tok.text == "(":
            node = self._expr()
            self._expect(")", "')'")
            return node
        if tok.kind == "op" and tok.text == "[":
            items = self._sequence("]")
            return _List(items, tok.col, _height(tok.col, *items))
        raise ExprError(f"expected an expression, found {tok.describe()}", tok.col)

    def _sequence(self, close: str) -> tuple[_Node, ...]:
        items: list[_Node] = []
        while not self._at("op", close):
            items.append(self._expr())
            if not self._at("op", ","):
                break
            self._next()
        self._expect(close, f"',' or '{close}'")
        return tuple(items)


# --- values ------------------------------------------------------------------------------


def format_value(value: Value) -> str:
    """The text form used by templates and string concatenation: what a shell script expects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return ",".join(format_value(item) for item in value)
    return str(value)


def _truth(value: Value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY
    if isinstance(value, bool | int | float | list):
        return bool(value)
    return value is not None


def _describe(value: Value) -> str:
    """Type errors name the types (and show short strings, since variables are strings)."""
    if isinstance(value, str):
        return f"string {value if len(value) <= 20 else value[:17] + '...'!r}"
    names = ((bool, "bool"), (int | float, "number"), (datetime.datetime, "datetime"),
             (datetime.date, "date"), (list, "list"))
    return next((name for kind, name in names if isinstance(value, kind)), "null")


def _to_number(value: Value) -> int | float | None:
    """Variables are strings, so a string that looks like a number is one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and len(value) <= _MAX_DIGITS:
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return float(text) if "." in text else int(text)
    return None


def _to_time(value: Value, kind: type[datetime.date]) -> datetime.date | None:
    """A date or datetime of exactly `kind`, parsing ISO strings; dates and datetimes never mix."""
    if isinstance(value, str):
        with suppress(ValueError):
            return kind.fromisoformat(value.strip())
        return None
    if isinstance(value, datetime.date) and isinstance(value, datetime.datetime) == (
            kind is datetime.datetime):
        return value
    return None


def _to_bool(value: Value) -> bool | None:
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return value if isinstance(value, bool) else None


def _unify(left: Value, right: Value) -> tuple[Any, Any] | None:
    """Bring two values to one comparable type, or None when they have none."""
    a, b = _to_number(left), _to_number(right)
    if a is not None and b is not None:
        return a, b
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    if isinstance(left, bool) or isinstance(right, bool):
        x, y = _to_bool(left), _to_bool(right)
        return None if x is None or y is None else (x, y)
    for kind in (datetime.datetime, datetime.date):
        if isinstance(left, kind) or isinstance(right, kind):
            p, q = _to_time(left, kind), _to_time(right, kind)
            return None if p is None or q is None else (p, q)
    return None


def _equal(left: Value, right: Value) -> bool:
    """`==` never fails: values of unrelated types are simply unequal, which `in` relies on."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list) or isinstance(right, list):
        return (isinstance(left, list) and isinstance(right, list) and len(left) == len(right)
                and all(_equal(x, y) for x, y in zip(left, right, strict=True)))
    pair = _unify(left, right)
    return pair is not None and bool(pair[0] == pair[1])


# --- evaluation --------------------------------------------------------------------------


def _eval(node: _Node, scope: Scope) -> Value:
    match node:
        case _Lit():
            return node.value
        case _Var():
            if node.name not in scope.variables:
                raise ExprError(f"unknown variable '{node.name}'", node.col)
            return scope.variables[node.name]
        case _Attr():
            job = scope.jobs.get(node.job)
            if job is None:
                raise ExprError(f"unknown job '{node.job}'", node.col)
            if node.attr not in job:
                raise ExprError(f"job '{node.job}' has no output '{node.attr}'", node.attr_col)
            return job[node.attr]
        case _Unary(op="not"):
            return not _truth(_eval(node.operand, scope))
        case _Unary():
            operand = _eval(node.operand, scope)
            number = _to_number(operand)
            if number is None:
                raise ExprError(f"cannot negate {_describe(operand)}", node.col)
            return -number
        case _Binary(op="and"):
            return _truth(_eval(node.left, scope)) and _truth(_eval(node.right, scope))
        case _Binary(op="or"):
            return _truth(_eval(node.left, scope)) or _truth(_eval(node.right, scope))
        case _Binary():
            left, right = _eval(node.left, scope), _eval(node.right, scope)
            if node.op in _ARITH:
                return _arith(node.op, left, right, node.col)
            return _compare(node, left, right)
        case _Call():
            return _call(node, scope)
        case _List():
            return [_eval(item, scope) for item in node.items]


def _arith(op: str, left: Value, right: Value, col: int) -> Value:
    a, b = _to_number(left), _to_number(right)
    if a is None or b is None:
        if op == "+" and (isinstance(left, str) or isinstance(right, str)):
            return format_value(left) + format_value(right)
        raise ExprError(f"cannot apply '{op}' to {_describe(left)} and {_describe(right)}", col)
    if op in "/%" and b == 0:
        raise ExprError("division by zero", col)
    try:
        result: int | float = _ARITH[op](a, b)
    except OverflowError:
        raise ExprError("number is too large", col) from None
    if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
        raise ExprError("number is too large", col)
    return result


def _compare(node: _Binary, left: Value, right: Value) -> bool:
    op = node.op
    if op in ("==", "!="):
        return _equal(left, right) == (op == "==")
    if op in ("in", "not in"):
        if isinstance(right, list):
            found = any(_equal(left, item) for item in right)
        elif isinstance(right, str) and not isinstance(left, list):
            found = left is not None and format_value(left) in right
        else:
            raise ExprError(f"cannot look for {_describe(left)} in {_describe(right)}: "
                            "'in' needs a list or a string on the right", node.col)
        return found == (op == "in")
    if op == "matches":
        if not isinstance(right, str):
            raise ExprError(f"'matches' needs a regex string, found {_describe(right)}",
                            node.right.col)
        try:
            regex = re.compile(right)
        except re.error as exc:
            raise ExprError(f"invalid regex {right!r}: {exc}", node.right.col) from None
        return regex.search(format_value(left)[:_MAX_SUBJECT]) is not None
    pair = _unify(left, right)
    if pair is not None:
        with suppress(TypeError):  # e.g. a datetime with a time zone against one without
            return bool(_ORDER[op](*pair))
    raise ExprError(f"cannot compare {_describe(left)} with {_describe(right)}", node.col)


def _call(node: _Call, scope: Scope) -> Value:
    func = scope.functions.get(node.name)
    builtin = _BUILTINS.get(node.name)
    if func is None and builtin is None:
        raise ExprError(f"unknown function '{node.name}'", node.col)
    args = [_eval(arg, scope) for arg in node.args]
    try:
        if func is not None:
            _check_arity(node.name, _arity(func), len(args))
            return func(*args)
        arity, impl = _BUILTINS[node.name]
        _check_arity(node.name, arity, len(args))
        return impl(scope, args)
    except ExprError as exc:
        if exc.column is None:  # functions do not know where they were called from
            raise ExprError(exc.message, node.col) from None
        raise


def _arity(func: Callable[..., Value]) -> tuple[int, int | None] | None:
    """Injected functions are checked from their signature, so a wrong count is an ExprError."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return required, None
    return required, len(positional)


def _check_arity(name: str, arity: tuple[int, int | None] | None, got: int) -> None:
    if arity is None or (arity[0] <= got and (arity[1] is None or got <= arity[1])):
        return
    low, high = arity
    if high is None:
        expected = f"at least {low} argument{'s' * (low != 1)}"
    elif low == high:
        expected = f"{low} argument{'s' * (low != 1)}"
    else:
        expected = f"{low} to {high} arguments"
    raise ExprError(f"{name}() takes {expected}, got {got}")


def _date_arg(name: str, value: Value, to_date: bool = False) -> datetime.date:
    """Date arguments may be dates, datetimes or ISO strings, as variables are strings."""
    parsed = value if isinstance(value, datetime.date) else (
        _to_time(value, datetime.date) or _to_time(value, datetime.datetime))
    if parsed is None:
        raise ExprError(f"{name}() needs an ISO date like 2026-01-31, found {_describe(value)}")
    return parsed.date() if to_date and isinstance(parsed, datetime.datetime) else parsed


def _add_days(scope: Scope, args: list[Value]) -> Value:
    start, days = _date_arg("add_days", args[0]), _to_number(args[1])
    if days is None or (isinstance(days, float) and not days.is_integer()):
        raise ExprError(f"add_days() needs a whole number of days, found {_describe(args[1])}")
    try:
        return start + datetime.timedelta(days=int(days))
    except OverflowError:
        raise ExprError("add_days() result is out of range") from None


def _int(scope: Scope, args: list[Value]) -> Value:
    number = _to_number(args[0])
    if isinstance(args[0], bool):
        return int(args[0])
    if number is None or not math.isfinite(number):
        raise ExprError(f"int() needs a number, found {_describe(args[0])}")
    return int(number)


def _len(scope: Scope, args: list[Value]) -> Value:
    if not isinstance(args[0], str | list):
        raise ExprError(f"len() needs a string or a list, found {_describe(args[0])}")
    return len(args[0])


def _operating_day(scope: Scope, args: list[Value]) -> Value:
    """operating_day("calendar", d): whether d (default: today) is an operating day."""
    from jaz.errors import JazError

    if scope.calendars is None:
        raise ExprError("operating_day() is not available in this mode")
    if not isinstance(args[0], str):
        raise ExprError(f"operating_day() needs a calendar name first, found "
                        f"{_describe(args[0])}")
    day = _date_arg("operating_day", args[1], to_date=True) if len(args) > 1 else \
        scope.now.date()
    try:
        calendar = scope.calendars(args[0])
    except JazError as e:
        raise ExprError(f"operating_day(): {e.message}") from None
    return calendar.is_operating(day)


def _unavailable(name: str) -> Callable[[Scope, list[Value]], Value]:
    """Placeholders, so that loading knows the name while only the engine can answer it."""

    def fail(scope: Scope, args: list[Value]) -> Value:
        raise ExprError(f"{name}() is not available in this mode")

    return fail


_BUILTINS: dict[str, tuple[tuple[int, int | None], Callable[[Scope, list[Value]], Value]]] = {
    "today": ((0, 0), lambda scope, args: scope.now.date()),
    "now": ((0, 0), lambda scope, args: scope.now),
    "date": ((1, 1), lambda scope, args: _date_arg("date", args[0], to_date=True)),
    "add_days": ((2, 2), _add_days),
    "weekday": ((1, 1), lambda scope, args: _WEEKDAYS[_date_arg("weekday", args[0]).weekday()]),
    "int": ((1, 1), _int),
    "str": ((1, 1), lambda scope, args: format_value(args[0])),
    "len": ((1, 1), _len),
    "lower": ((1, 1), lambda scope, args: format_value(args[0]).lower()),
    "upper": ((1, 1), lambda scope, args: format_value(args[0]).upper()),
    "operating_day": ((1, 2), _operating_day),
    "status": ((0, None), _unavailable("status")),
}


# --- public entry points -----------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A parsed expression: parse once when loading, evaluate on every run."""

    source: str
    _root: _Node = field(repr=False)
    _jobs: frozenset[str] = field(repr=False)

    def evaluate(self, scope: Scope) -> Value:
        return _eval(self._root, scope)

    def truth(self, scope: Scope) -> bool:
        """Condition semantics for `if`/`until`, where "false", "no" and "0" read as false."""
        return _truth(self.evaluate(scope))

    def job_references(self) -> set[str]:
        """The job names used as `NAME.attr`, so the loader can reject unknown jobs early."""
        return set(self._jobs)


@dataclass(frozen=True)
class Template:
    """A `set` value: literal text with `${expression}` parts (write `${'${'}` for a literal)."""

    source: str
    _parts: tuple[str | Expression, ...] = field(repr=False)

    def render(self, scope: Scope) -> str:
        return "".join(part if isinstance(part, str) else format_value(part.evaluate(scope))
                       for part in self._parts)

    def job_references(self) -> set[str]:
        refs: set[str] = set()
        for part in self._parts:
            if isinstance(part, Expression):
                refs |= part.job_references()
        return refs


def _build(source: str, tokens: list[_Token]) -> Expression:
    parser = _Parser(tokens)
    root = parser.parse()
    return Expression(source, root, frozenset(parser.jobs))


def parse(source: str) -> Expression:
    return _build(source, _tokenize(source, 0, template=False)[0])


def parse_template(source: str) -> Template:
    """Columns in errors, even at evaluation, count from the start of the whole template."""
    parts: list[str | Expression] = []
    pos = 0
    while (start := source.find("${", pos)) >= 0:
        if start > pos:
            parts.append(source[pos:start])
        tokens, end = _tokenize(source, start + 2, template=True)
        parts.append(_build(source[start + 2:end], tokens))
        pos = end + 1
    if pos < len(source):
        parts.append(source[pos:])
    return Template(source, tuple(parts))
