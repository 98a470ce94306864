"""The expression language of `if`, `repeat.until` and `set` templates."""

from __future__ import annotations

import builtins
import pickle
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from jaz.engine.expr import (
    ExprError,
    Expression,
    Scope,
    Value,
    format_value,
    parse,
    parse_template,
)

NOW = datetime(2026, 1, 31, 10, 0)  # a Saturday
SCOPE = Scope(
    variables={"N": "41", "TEN": "10", "NINE": "9", "PI": "3.5", "NAME": "load",
               "DAY": "2026-01-31", "EMPTY": "", "FLAG": "false", "YES": "yes", "LIST": "a,b,c",
               "CODE": "1 + 1"},
    jobs={"extract": {"exit_code": 0, "status": "succeeded", "stdout": "rows=42\n",
                      "ROWS": "42", "missing": None}},
    now=NOW,
)


def ev(source: str, scope: Scope = SCOPE) -> Value:
    return parse(source).evaluate(scope)


def check(source: str, expected: Value) -> None:
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected), f"{source}: {result!r} is not {type(expected)}"


@pytest.mark.parametrize(("source", "expected"), [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),
    ("2 * 3 % 4", 2),
    ("7 / 2", 3.5),
    ("6 / 3", 2.0),
    ("-2 * 3", -6),
    ("- -2", 2),
    ("-(1 + 2)", -3),
    ("7 % 3", 1),
    ("-7 % 3", 2),
    ("1.5 + 1", 2.5),
    ("10 - 2 * 3 + 1", 5),
    ("100 / 10 / 5", 2.0),
])
def test_arithmetic_and_precedence(source: str, expected: Value) -> None:
    check(source, expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("N + 1", 42),
    ("1 + N", 42),
    ("N * 2", 82),
    ("TEN - NINE", 1),
    ("TEN + NINE", 19),
    ("PI * 2", 7.0),
    ("'3' + '4'", 7),
    ("' 5 ' * 2", 10),
    ("'-2' * 2", -4),
    ("N / 2", 20.5),
    ("-N", -41),
    ("N % 10", 1),
    ("extract.ROWS + 1", 43),
])
def test_numeric_strings_are_numbers(source: str, expected: Value) -> None:
    check(source, expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("'a' + 'b'", "ab"),
    ('"a" + \'b\'', "ab"),
    ("NAME + 1", "load1"),
    ("1 + 'x'", "1x"),
    ("'load-' + today()", "load-2026-01-31"),
    ("'v' + 1.5", "v1.5"),
    ("'v' + 6 / 3", "v2"),
    ("'x' + true", "xtrue"),
    ("'x' + null", "x"),
    ("NAME + '-' + N", "load-41"),
    ("'1' + '2x'", "12x"),
    (r"""'it\'s' + "\t" + "\"" """, "it's\t\""),
    (r"'a\\b\nc'", "a\\b\nc"),
    (r"'\d'", "\\d"),
    ("CODE", "1 + 1"),
])
def test_strings_and_concatenation(source: str, expected: Value) -> None:
    check(source, expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("TEN > NINE", True),
    ("'10' > '9'", True),
    ("'abc' < 'abd'", True),
    ("'b' > 'abc'", True),
    ("'10' > 'abc'", False),
    ("N == 41", True),
    ("N == '41.0'", True),
    ("41 == N", True),
    ("N != 41", False),
    ("1 != 2", True),
    ("1 <= 1", True),
    ("2 >= 3", False),
    ("1.5 < 2", True),
    ("null == null", True),
    ("null == 0", False),
    ("null != ''", True),
    ("'x' == 1", False),
    ("true == 'true'", True),
    ("FLAG == false", True),
    ("true == 1", False),
    ("[1, 2] == ['1', 2]", True),
    ("[1, 2] == [1]", False),
    ("today() == DAY", True),
    ("today() == '2026-01-31'", True),
    ("today() > '2026-01-30'", True),
    ("today() < date('2026-02-01')", True),
    ("add_days(today(), 1) > today()", True),
    ("today() == 'not a date'", False),
    ("now() > '2026-01-31T09:59'", True),
    ("now() == '2026-01-31 10:00'", True),
    ("now() == today()", False),
])
def test_comparisons(source: str, expected: bool) -> None:
    check(source, expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("5 in [1, 5]", True),
    ("'5' in [5]", True),
    ("5 in ['5.0']", True),
    ("N in [40, 41]", True),
    ("N not in [40, 41]", False),
    ("'d' not in ['a', 'b']", True),
    ("3 in []", False),
    ("'c' in 'abc'", True),
    ("'b' in LIST", True),
    ("'z' in LIST", False),
    ("4 in '1234'", True),
    ("null in 'abc'", False),
    ("null in [null]", True),
    ("today() in [DAY]", True),
    ("weekday(today()) in ['sat', 'sun']", True),
    ("[1] in [[1], [2]]", True),
])
def test_membership(source: str, expected: bool) -> None:
    check(source, expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("NAME matches '^lo'", True),
    ("NAME matches 'x'", False),
    ("N matches '^[0-9]+$'", True),
    ("41 matches '1$'", True),
    (r"extract.stdout matches 'rows=\d+'", True),
    ("today() matches '^2026-01'", True),
    ("not NAME matches 'LOAD'", True),
    ("NAME matches '(?i)LOAD'", True),
])
def test_matches(source: str, expected: bool) -> None:
    check(source, expected)


def test_matches_caps_the_subject() -> None:
    scope = Scope({"BIG": "a" * 200_000 + "END"}, {}, NOW)
    assert ev("BIG matches 'END'", scope) is False
    assert ev("BIG matches '^a+$'", scope) is True


@pytest.mark.parametrize(("source", "expected"), [
    ("true and false", False),
    ("true and true", True),
    ("false or true", True),
    ("true or true and false", True),
    ("false or true and false", False),
    ("false and unknown_var", False),
    ("true or unknown_var", True),
    ("false and 1 / 0", False),
    ("true or nofunc()", True),
    ("not false", True),
    ("not not N", True),
    ("not 1 == 2", True),
    ("not (1 == 2) and false", False),
    ("1 and 'x'", True),
    ("0 or ''", False),
    ("FLAG or EMPTY", False),
    ("YES and N", True),
    ("1 < 2 and 2 < 3", True),
])
def test_logic_short_circuits_and_returns_bools(source: str, expected: bool) -> None:
    check(source, expected)


def test_short_circuit_still_reports_reached_errors() -> None:
    with pytest.raises(ExprError, match="unknown variable 'unknown_var'"):
        ev("true and unknown_var")


@pytest.mark.parametrize(("source", "expected"), [
    ("'0'", False), ("'no'", False), ("'NO'", False), ("'False'", False), ("''", False),
    ("' '", False), ("'yes'", True), ("'off'", True), ("0", False), ("0.0", False),
    ("2", True), ("-1", True), ("null", False), ("today()", True), ("[]", False),
    ("[0]", True), ("EMPTY", False), ("FLAG", False), ("N", True), ("true", True),
])
def test_truth(source: str, expected: bool) -> None:
    assert parse(source).truth(SCOPE) is expected


@pytest.mark.parametrize(("source", "expected"), [
    ("extract.exit_code", 0),
    ("extract.exit_code == 0", True),
    ("extract.status == 'succeeded'", True),
    ("extract.ROWS > 40", True),
    ("extract.missing", None),
])
def test_job_attributes(source: str, expected: Value) -> None:
    check(source, expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("today()", date(2026, 1, 31)),
    ("now()", NOW),
    ("date('2026-02-01')", date(2026, 2, 1)),
    ("date(now())", date(2026, 1, 31)),
    ("date(DAY)", date(2026, 1, 31)),
    ("add_days(date('2026-01-31'), 1)", date(2026, 2, 1)),
    ("add_days('2026-02-28', 1)", date(2026, 3, 1)),
    ("add_days('2028-02-28', 1)", date(2028, 2, 29)),
    ("add_days('2026-12-31', 1)", date(2027, 1, 1)),
    ("add_days('2026-03-01', -1)", date(2026, 2, 28)),
    ("add_days(today(), -31)", date(2025, 12, 31)),
    ("add_days(today(), '2')", date(2026, 2, 2)),
    ("add_days(today(), 2.0)", date(2026, 2, 2)),
    ("add_days(now(), 1)", datetime(2026, 2, 1, 10, 0)),
    ("weekday(today())", "sat"),
    ("weekday(now())", "sat"),
    ("weekday('2026-02-02')", "mon"),
    ("weekday(add_days(today(), 1))", "sun"),
    ("int('3.7')", 3),
    ("int(7 / 2)", 3),
    ("int(-2.5)", -2),
    ("int(true)", 1),
    ("str(6 / 3)", "2"),
    ("str(today())", "2026-01-31"),
    ("str(false)", "false"),
    ("len('abc')", 3),
    ("len([1, 2])", 2),
    ("len(EMPTY)", 0),
    ("lower('AbC')", "abc"),
    ("upper(NAME)", "LOAD"),
])
def test_builtin_functions(source: str, expected: Value) -> None:
    check(source, expected)


def test_weekday_names_cover_a_week() -> None:
    names = [ev(f"weekday(add_days('2026-02-02', {i}))") for i in range(7)]
    assert names == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def test_time_comes_from_the_scope_not_the_clock() -> None:
    scope = Scope({}, {}, datetime(1999, 12, 31, 23, 59))
    assert ev("today()", scope) == date(1999, 12, 31)
    assert ev("add_days(now(), 1)", scope) == datetime(2000, 1, 1, 23, 59)


def test_injected_functions() -> None:
    calls: list[tuple[Any, ...]] = []

    def operating_day(calendar: str, day: Value) -> Value:
        calls.append((calendar, day))
        return calendar == "jp"

    scope = Scope(SCOPE.variables, SCOPE.jobs, NOW, functions={
        "operating_day": operating_day,
        "status": lambda path: "succeeded" if path == "net/job" else None,
        "today": lambda: date(2000, 1, 1),
        "join": lambda *parts: "/".join(str(p) for p in parts),
    })
    assert ev("operating_day('jp', today())", scope) is True
    assert calls == [("jp", date(2000, 1, 1))]
    assert ev("status('net/job') == 'succeeded'", scope) is True
    assert ev("join()", scope) == ""
    assert ev("join(1, 2, 3)", scope) == "1/2/3"
    with pytest.raises(ExprError) as e:
        ev("status()", scope)
    assert (e.value.message, e.value.column) == ("status() takes 1 argument, got 0", 1)
    with pytest.raises(ExprError) as e:
        ev("1 + operating_day('jp')", scope)
    assert "operating_day() takes 2 arguments, got 1" in e.value.message
    assert e.value.column == 5


class _Weekdays:
    """A calendar stand-in for the expression layer: open Monday to Friday."""

    def is_operating(self, day: date) -> bool:
        return day.weekday() < 5


def _calendars(name: str) -> _Weekdays:
    from jaz.errors import NotFound

    if name != "weekdays":
        raise NotFound(f"calendar {name!r} not found")
    return _Weekdays()


@pytest.mark.parametrize("source,expected", [
    ("operating_day('weekdays', '2026-11-20')", True),          # a Friday
    ("operating_day('weekdays', date('2026-11-21'))", False),   # a Saturday
    ("operating_day('weekdays', add_days(today(), 1))", False),  # NOW is a Friday
    ("operating_day('weekdays')", True),                        # today by default
    ("not operating_day('weekdays', '2026-11-22T10:00:00')", True),
])
def test_operating_day_asks_the_scopes_calendars(source: str, expected: bool) -> None:
    scope = Scope({}, {}, datetime(2026, 11, 20, 23, 0), calendars=_calendars)
    assert ev(source, scope) is expected


@pytest.mark.parametrize("source,message,column", [
    ("operating_day('nope', today())", "operating_day(): calendar 'nope' not found", 1),
    ("1 + operating_day(5)", "operating_day() needs a calendar name first, found number", 5),
    ("operating_day('weekdays', 'soon')", "operating_day() needs an ISO date", 1),
    ("operating_day('a', 'b', 'c')", "operating_day() takes 1 to 2 arguments, got 3", 1),
])
def test_operating_day_errors(source: str, message: str, column: int) -> None:
    scope = Scope({}, {}, datetime(2026, 11, 20, 23, 0), calendars=_calendars)
    with pytest.raises(ExprError) as e:
        ev(source, scope)
    assert message in e.value.message
    assert e.value.column == column


def test_injected_function_errors_get_the_call_column() -> None:
    def fail(name: str) -> Value:
        raise ExprError(f"no calendar {name!r}")

    scope = Scope({}, {}, NOW, functions={"operating_day": fail})
    with pytest.raises(ExprError) as e:
        ev("true and operating_day('xx')", scope)
    assert (e.value.message, e.value.column) == ("no calendar 'xx'", 10)


@pytest.mark.parametrize(("source", "expected"), [
    ("load-${today()}", "load-2026-01-31"),
    ("${N + 1}", "42"),
    ("${ N }", "41"),
    ("cost $5", "cost $5"),
    ("$N and ${N}", "$N and 41"),
    ("$", "$"),
    ("${N}$", "41$"),
    ("{N}", "{N}"),
    ("${'}'}x", "}x"),
    ("a${'${'}b", "a${b"),
    ("${6 / 3}-${1.5}", "2-1.5"),
    ("${true}/${null}/", "true//"),
    ("${now()}", "2026-01-31T10:00:00"),
    ("${[1, 'a']}", "1,a"),
    ("${extract.ROWS}", "42"),
    ("${NAME}${N}", "load41"),
    ("", ""),
    ("plain text", "plain text"),
])
def test_templates(source: str, expected: str) -> None:
    assert parse_template(source).render(SCOPE) == expected


@pytest.mark.parametrize(("source", "message", "column"), [
    ("load-${today()", "unclosed '${'", 6),
    ("${", "unclosed '${'", 1),
    ("x ${}", "empty expression", 5),
    ("a${1 +}", "expected an expression, found end of expression", 7),
    ("ab${@}", "unexpected character '@'", 5),
    ("${'x}", "unterminated string", 3),
    ("${1}${2 3}", "found '3'", 9),
])
def test_template_errors(source: str, message: str, column: int) -> None:
    with pytest.raises(ExprError) as e:
        parse_template(source)
    assert message in e.value.message
    assert e.value.column == column


def test_template_evaluation_errors_count_columns_in_the_whole_template() -> None:
    template = parse_template("ab ${nope}")
    with pytest.raises(ExprError) as e:
        template.render(SCOPE)
    assert (e.value.message, e.value.column) == ("unknown variable 'nope'", 6)


@pytest.mark.parametrize(("source", "expected"), [
    ("extract.ROWS + other.x", {"extract", "other"}),
    ("N + 1", set()),
    ("f(a.b, [c.d, -e.f])", {"a", "c", "e"}),
    ("not (x.y in [1]) and x.z", {"x"}),
])
def test_job_references(source: str, expected: set[str]) -> None:
    assert parse(source).job_references() == expected


def test_template_job_references() -> None:
    assert parse_template("${a.x}-${b.y + N}-c.d").job_references() == {"a", "b"}
    assert parse_template("no refs").job_references() == set()


@pytest.mark.parametrize(("value", "expected"), [
    (None, ""), (True, "true"), (False, "false"), (3, "3"), (3.0, "3"), (-0.0, "0"),
    (2.5, "2.5"), (1e20, "100000000000000000000"), (date(2026, 1, 31), "2026-01-31"),
    (datetime(2026, 1, 31, 10, 0), "2026-01-31T10:00:00"), ("x", "x"), ([1, "a", 2.0], "1,a,2"),
    ([], ""),
])
def test_format_value(value: Value, expected: str) -> None:
    assert format_value(value) == expected


@pytest.mark.parametrize(("source", "message", "column"), [
    ("", "empty expression", 1),
    ("   ", "empty expression", 4),
    ("1 +", "expected an expression, found end of expression", 4),
    ("(1 + 2", "expected ')', found end of expression", 7),
    ("1 2", "expected an operator or end of expression, found '2'", 3),
    ("a b", "found 'b'", 3),
    ("'abc", "unterminated string", 1),
    ("N + 'x", "unterminated string", 5),
    ("'abc\\", "unterminated string", 1),
    ("1 @ 2", "unexpected character '@'", 3),
    ("a = 1", "unexpected character '=' (use '==' to compare)", 3),
    ("a && b", "unexpected character '&' (use 'and')", 3),
    ("1 < 2 < 3", "comparisons cannot be chained", 7),
    ("1 == 2 != 3", "comparisons cannot be chained", 8),
    ("a in [1] in [2]", "comparisons cannot be chained", 10),
    ("f(1, 2", "expected ',' or ')', found end of expression", 7),
    ("f(1 2)", "expected ',' or ')', found '2'", 5),
    ("f(,)", "expected an expression, found ','", 3),
    ("[1, 2", "expected ',' or ']', found end of expression", 6),
    ("a.", "expected an output name after '.', found end of expression", 3),
    ("a.in", "expected an output name after '.', found 'in'", 3),
    ("a.b.c", "'.' can only follow a job name", 4),
    ("(a).b", "'.' can only follow a job name", 4),
    ("'x'.upper", "'.' can only follow a job name", 4),
    ("today().year", "'.' can only follow a job name", 8),
    ("1.x", "'.' can only follow a job name", 2),
    ("not", "expected an expression, found end of expression", 4),
    ("and", "expected an expression, found 'and'", 1),
    ("1 +* 2", "expected an expression, found '*'", 4),
    (")", "expected an expression, found ')'", 1),
    ("a not b", "expected an operator or end of expression, found 'not'", 3),
    ("1 == not 2", "expected an expression, found 'not'", 6),
    ("{", "unexpected character '{'", 1),
    ("1 == == 2", "expected an expression, found '=='", 6),
    ("$X", "unexpected character '$'", 1),
    ("+1", "expected an expression, found '+'", 1),
    ("f(1)(2)", "expected an operator or end of expression, found '('", 5),
    ("x[0]", "found '['", 2),
    ("café", "unexpected character 'é'", 4),
    ("'b' 'a string that is quite long'", "found string 'a string that is...", 5),
    ("1" * 301, "number is too long", 1),
])
def test_syntax_errors(source: str, message: str, column: int) -> None:
    with pytest.raises(ExprError) as e:
        parse(source)
    assert message in e.value.message
    assert e.value.column == column
    assert str(e.value).endswith(f"(column {column})")


@pytest.mark.parametrize("source", [
    "(" * 200 + "1" + ")" * 200,
    "[" * 200 + "]" * 200,
    "f(" * 200 + ")" * 200,
    "-" * 500 + "1",
    "not " * 500 + "true",
    "+".join(["1"] * 500),
    " and ".join(["true"] * 500),
])
def test_nesting_is_limited(source: str) -> None:
    with pytest.raises(ExprError, match="nested too deeply"):
        parse(source)


def test_reasonable_nesting_is_fine() -> None:
    assert ev("(" * 50 + "1" + ")" * 50) == 1
    assert ev("+".join(["1"] * 50)) == 50
    assert ev("-" * 50 + "1") == 1


@pytest.mark.parametrize(("source", "message", "column"), [
    ("nope + 1", "unknown variable 'nope'", 1),
    ("1 + nope", "unknown variable 'nope'", 5),
    ("ghost.x", "unknown job 'ghost'", 1),
    ("extract.nope", "job 'extract' has no output 'nope'", 9),
    ("NAME - 1", "cannot apply '-' to string 'load' and number", 6),
    ("1 + [1]", "cannot apply '+' to number and list", 3),
    ("today() + 1", "cannot apply '+' to date and number", 9),
    ("true * 2", "cannot apply '*' to bool and number", 6),
    ("1 / 0", "division by zero", 3),
    ("5 % (2 - 2)", "division by zero", 3),
    ("N / '0.0'", "division by zero", 3),
    ("-NAME", "cannot negate string 'load'", 1),
    ("today() > 5", "cannot compare date with number", 9),
    ("5 <= today()", "cannot compare number with date", 3),
    ("today() < 'soon'", "cannot compare date with string 'soon'", 9),
    ("now() < today()", "cannot compare datetime with date", 7),
    ("now() < '2026-01-31T09:00+00:00'", "cannot compare datetime with string", 7),
    ("null < 1", "cannot compare null with number", 6),
    ("NAME > 1", "cannot compare string 'load' with number", 6),
    ("[1] < [2]", "cannot compare list with list", 5),
    ("1 in 2", "'in' needs a list or a string", 3),
    ("[1] in 'abc'", "cannot look for list in string 'abc'", 5),
    ("NAME matches '('", "invalid regex '('", 14),
    ("NAME matches 1", "'matches' needs a regex string, found number", 14),
    ("nofunc(1)", "unknown function 'nofunc'", 1),
    ("today(1)", "today() takes 0 arguments, got 1", 1),
    ("add_days(today())", "add_days() takes 2 arguments, got 1", 1),
    ("1 + weekday()", "weekday() takes 1 argument, got 0", 5),
    ("date('2026-13-01')", "date() needs an ISO date like 2026-01-31, found string", 1),
    ("date(5)", "date() needs an ISO date", 1),
    ("weekday('someday')", "weekday() needs an ISO date", 1),
    ("add_days('x', 1)", "add_days() needs an ISO date", 1),
    ("add_days(today(), 1.5)", "add_days() needs a whole number of days, found number", 1),
    ("add_days(today(), 'x')", "whole number of days", 1),
    ("add_days(today(), 99999999999)", "add_days() result is out of range", 1),
    ("int('x')", "int() needs a number, found string 'x'", 1),
    ("len(5)", "len() needs a string or a list, found number", 1),
    ("operating_day('jp', today())", "operating_day() is not available in this mode", 1),
    ("x and status('net/job')", "unknown variable 'x'", 1),
    ("true and status('net/job')", "status() is not available in this mode", 10),
    ("operating_day()", "operating_day() takes 1 to 2 arguments, got 0", 1),
    ("   nope", "unknown variable 'nope'", 4),
    ("9" * 300 + " * " + "9" * 300 + " * 1.0", "number is too large", 605),
])
def test_evaluation_errors(source: str, message: str, column: int) -> None:
    with pytest.raises(ExprError) as e:
        ev(source)
    assert message in e.value.message
    assert e.value.column == column


def test_aware_and_naive_datetimes_compare_as_unequal() -> None:
    scope = Scope({}, {}, datetime(2026, 1, 31, 10, tzinfo=timezone(timedelta(hours=9))))
    assert ev("now() == '2026-01-31T10:00'", scope) is False
    assert ev("now() == '2026-01-31T01:00Z'", scope) is True


@pytest.mark.parametrize(("source", "message"), [
    ('__import__("os")', "unknown function '__import__'"),
    ("__import__('os').system('true')", "'.' can only follow a job name"),
    ("eval('1')", "unknown function 'eval'"),
    ("exec('1')", "unknown function 'exec'"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("getattr(today(), 'year')", "unknown function 'getattr'"),
    ("__builtins__", "unknown variable '__builtins__'"),
    ("__class__", "unknown variable '__class__'"),
    ("extract.__class__", "job 'extract' has no output '__class__'"),
    ("extract.__dict__", "job 'extract' has no output '__dict__'"),
    ("__globals__.x", "unknown job '__globals__'"),
    ("NAME.__class__", "unknown job 'NAME'"),
    ("'abc'.__class__", "'.' can only follow a job name"),
    ("().__class__", "expected an expression, found ')'"),
    ("[].__class__", "'.' can only follow a job name"),
    ("(1).real", "'.' can only follow a job name"),
    ("lower.__call__", "unknown job 'lower'"),
    ("today.__globals__", "unknown job 'today'"),
    ("lambda: 1", "unexpected character ':'"),
    ("1 if true else 2", "expected an operator or end of expression, found 'if'"),
    ("[x for x in N]", "expected ',' or ']', found 'for'"),
    ("N[0]", "found '['"),
])
def test_python_is_unreachable(source: str, message: str) -> None:
    with pytest.raises(ExprError) as e:
        ev(source)
    assert message in e.value.message


def test_python_eval_and_compile_are_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/compile/exec must not be called")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, refuse)
    assert ev("N + 1 > 40 and weekday(today()) in ['sat', 'sun']") is True
    assert parse_template("x${CODE}").render(SCOPE) == "x1 + 1"


def test_expr_error_text_and_pickling() -> None:
    assert str(ExprError("bad", 3)) == "bad (column 3)"
    assert str(ExprError("bad")) == "bad"
    copy = pickle.loads(pickle.dumps(ExprError("bad", 3)))
    assert (copy.message, copy.column) == ("bad", 3)


def test_parsed_objects_are_immutable_and_keep_their_source() -> None:
    expression = parse("N + 1")
    template = parse_template("v${N}")
    assert isinstance(expression, Expression)
    assert (expression.source, template.source) == ("N + 1", "v${N}")
    with pytest.raises(AttributeError):
        expression.source = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        template.source = "x"  # type: ignore[misc]
    assert expression == parse("N + 1")
    assert expression.evaluate(SCOPE) == expression.evaluate(SCOPE) == 42


def test_evaluation_does_not_mutate_the_scope() -> None:
    variables = {"N": "1"}
    jobs: dict[str, dict[str, Value]] = {"a": {"x": "1"}}
    scope = Scope(variables, jobs, NOW)
    assert ev("N + a.x", scope) == 2
    assert variables == {"N": "1"} and jobs == {"a": {"x": "1"}}
