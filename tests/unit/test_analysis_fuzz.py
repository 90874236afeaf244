"""No Python exception escapes an evaluation: random conditions built from the language's
pieces (and raw junk) against random Prometheus answers (vectors with NaN and ±Inf, scalars,
empty results, errors) always give an Argo phase or CannotPredict."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.deploy.analysis import CANNOT_PREDICT, Metric, measure, run_analysis

PHASES = {"Successful", "Failed", "Inconclusive", "Error", CANNOT_PREDICT}

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
results = st.one_of(
    st.lists(floats, max_size=4),
    floats,
    st.just([]),
    st.builds(OSError, st.just("connection refused")),
)
atoms = st.sampled_from(
    [
        "result",
        "result[0]",
        "result[-1]",
        "result[1]",
        "len(result)",
        "0",
        "1",
        "0.5",
        "-1",
        "1e309",
        "0x10",
        "'a'",
        "true",
        "false",
        "nil",
        "[1, 2]",
        "#",
        "asInt(result)",
        "asFloat('x')",
        "isNaN(result[0])",
        "isInf(result)",
        "default(result, 0)",
        "isNil(result)",
        "max(result)",
        "min(1, result[0])",
        "mean(result)",
        "sum(result)",
        "abs(result[0])",
        "round(result[0])",
        "int(result)",
        "string(result)",
        "all(result, # > 0)",
        "filter(result, {# < 1})",
        "count(result, # > 1)",
        "first(result)",
        "result[0:1]",
    ]
)
operators = st.sampled_from(
    [
        "+",
        "-",
        "*",
        "/",
        "%",
        "**",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "in",
        "not in",
        "??",
        "..",
        "contains",
        "matches",
    ]
)


@st.composite
def conditions(draw, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        text = draw(atoms)
    else:
        left, right = draw(conditions(depth=depth - 1)), draw(conditions(depth=depth - 1))
        text = f"{left} {draw(operators)} {right}"
    wrap = draw(st.sampled_from(["{}", "({})", "!({})", "-{}", "{} ? true : false", "{}"]))
    return wrap.format(text)


numbers = st.sampled_from(
    [
        "result[0]",
        "result[1]",
        "result[-1]",
        "float(len(result))",
        "0.0",
        "1.0",
        "0.5",
        "-1.0",
        "1e308",
        "mean(result)",
        "median(result)",
        "abs(result[0])",
        "round(result[0])",
        "ceil(result[-1])",
        "float(asInt(result[0]))",
        "default(result, 0)[0]",
    ]
)


@st.composite
def numeric(draw, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(numbers)
    op = draw(st.sampled_from(["+", "-", "*", "/", "**"]))
    return f"({draw(numeric(depth=depth - 1))} {op} {draw(numeric(depth=depth - 1))})"


@st.composite
def typed(draw, depth: int = 2) -> str:
    """Well-typed conditions, so the runtime (not the checker) is what gets exercised."""
    kind = draw(st.integers(0, 5 if depth else 2))
    if kind == 0:
        cmp = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"{draw(numeric())} {cmp} {draw(numeric())}"
    if kind == 1:
        return f"{draw(st.sampled_from(['isNaN', 'isInf']))}({draw(numeric())})"
    if kind == 2:
        fn = draw(st.sampled_from(["all", "any", "none", "one"]))
        return f"{fn}(result, # {draw(st.sampled_from(['<', '>']))} {draw(numbers)})"
    if kind == 3:
        op = draw(st.sampled_from(["&&", "||"]))
        return f"({draw(typed(depth=depth - 1))}) {op} ({draw(typed(depth=depth - 1))})"
    if kind == 4:
        return f"!({draw(typed(depth=depth - 1))})"
    return f"len(result) > {draw(st.integers(0, 3))} ? {draw(typed(depth=depth - 1))} : false"


junk = st.text(alphabet="result[]()#.,'\"!&|<>=+-*/%^?:0123456789 abcxyz", max_size=40)


def answer(value):
    def query(address, promql):
        if isinstance(value, Exception):
            raise value
        return value

    return query


# derandomized: CI sees the same 1,500 cases on every run; cases a random run once found
# are pinned with @example
@settings(
    max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@example(success="last", failure="", result=[])  # a builtin named, not called
@given(
    success=st.one_of(typed(), conditions(), junk),
    failure=st.one_of(typed(), conditions(), junk, st.none()),
    result=results,
)
def test_no_exception_escapes_a_measurement(success, failure, result):
    m = Metric("m", "q", "http://p", success=success or None, failure=failure)
    phase, _, message = measure(m, answer(result))
    assert phase in PHASES
    assert "internal error" not in message, (success, failure, result, message)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(success=st.one_of(typed(), conditions()), answers=st.lists(results, min_size=1, max_size=6))
def test_no_exception_escapes_a_run(success, answers):
    supply = iter(answers * 10)
    m = Metric("m", "q", "http://p", count=3, interval_s=0.0, error_retry_s=0.0, success=success)
    r = run_analysis([m], query=lambda a, q: answer(next(supply, math.nan))(a, q))
    assert r.phase in PHASES
    assert not any("internal error" in x.message for x in r.metrics[0].measurements)
