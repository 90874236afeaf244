"""Argo Rollouts' analysis semantics and the condition language, without a server."""

from __future__ import annotations

import math
import threading

import pytest

from pipeline.deploy.analysis import (
    Metric,
    measure,
    metrics_of,
    resolve_args,
    run_analysis,
    seconds,
)
from pipeline.deploy.expr import ExprError, compile_condition
from pipeline.io import UserError

GUARDED_OK = "len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.99"
GUARDED_BAD = "len(result) > 0 && !isNaN(result[0]) && result[0] < 0.99"


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        (GUARDED_OK, [0.995], True),
        (GUARDED_OK, [], False),  # no data: the guard, not an index error
        (GUARDED_OK, [math.nan], False),
        ("all(result, # < 2.5)", [1.0, 2.0], True),
        ("all(result, {# < 2.5})", [1.0, 3.0], False),
        ("any(result, # > 2) || result[0] == 1", [1, 2], True),
        ("result > 1 and not (1 + 2 * 3 != 7)", 3, True),  # precedence, words for operators
        ("-result[-1] <= -2 && 7 % 4 == 3 && 10 / 4 == 2.5", [1, 2], True),
        ("isInf(result[0]) || result[0] / 0 > 1", [1.0], True),
        ("asFloat('0.5') + asInt(\"2\") == 2.5 && len('教务') == 2", None, True),
        ("result in [1, 2]", None, None),  # array literals are not in the subset: an error
    ],
)
def test_conditions(condition, result, expected):
    if expected is None:
        with pytest.raises(ExprError):
            compile_condition(condition)(result)
    else:
        assert compile_condition(condition)(result) is expected


@pytest.mark.parametrize(
    "condition",
    ["__import__('os').system('true')", "result.__class__", "open('x')", "result[0] > 1"],
)
def test_anything_outside_the_language_is_an_error_not_python(condition):
    with pytest.raises(ExprError):
        compile_condition(condition)([])


def metric(**kw) -> Metric:
    base = dict(name="m", query="q", address="http://prom", interval_s=0.0, count=3,
                success=GUARDED_OK, failure=GUARDED_BAD)  # fmt: skip
    return Metric(**{**base, **kw})


def fed(*values):
    """A query function answering with `values` in turn (an exception is raised)."""
    it = iter(values)

    def query(address, promql):
        v = next(it)
        if isinstance(v, Exception):
            raise v
        return v

    return query


def test_measurement_phases_follow_evaluate_result():
    m = metric()
    assert measure(m, fed([1.0]))[0] == "Successful"
    assert measure(m, fed([0.5]))[0] == "Failed"
    assert measure(m, fed([]))[0] == "Inconclusive"  # neither condition holds
    assert measure(m, fed(OSError("down")))[0] == "Error"
    # only a success condition: not meeting it is a failure
    assert measure(metric(failure=None), fed([0.5]))[0] == "Failed"
    # only a failure condition: not meeting it is a success
    assert measure(metric(success=None), fed([]))[0] == "Successful"
    assert measure(metric(success=None, failure=None), fed([0.0]))[0] == "Successful"
    assert measure(metric(success="result[0] > 1"), fed([]))[0] == "Error"


def test_failure_limit_counts_failures_beyond_the_limit():
    r = run_analysis([metric(failure_limit=1)], query=fed([0.5], [1.0], [0.5]))
    assert r.phase == "Failed" and len(r.metrics[0].measurements) == 3
    r = run_analysis([metric(failure_limit=1, count=2)], query=fed([0.5], [1.0]))
    assert r.phase == "Successful"  # one failure is within the limit


def test_inconclusive_needs_more_than_the_limit_and_count_reached_passes():
    r = run_analysis([metric(inconclusive_limit=2)], query=fed([], [], []))
    assert r.phase == "Inconclusive"
    # Argo's rule: count reached with inconclusive <= limit is Successful, so a limit as high
    # as the count can never pause a rollout
    r = run_analysis([metric(inconclusive_limit=3)], query=fed([], [], []))
    assert r.phase == "Successful"


def test_consecutive_errors_beyond_the_limit_are_an_error():
    errors = [OSError("down")] * 3
    r = run_analysis([metric(consecutive_error_limit=2, count=5)], query=fed(*errors))
    assert r.phase == "Error" and "consecutiveErrors (3)" in r.message
    r = run_analysis([metric(consecutive_error_limit=2)], query=fed(OSError(), OSError(), [1.0]))
    assert r.phase == "Successful"  # two errors then a success: within the limit


def test_first_bad_metric_stops_the_run_and_the_worst_phase_wins():
    slow = metric(name="slow", count=None, interval_s=0.05)  # runs until stopped
    bad = metric(name="bad", count=2, interval_s=0.05)
    answers = {"slow": [[1.0]] * 100, "bad": [[0.1], [0.1]]}

    def query(address, promql):
        return answers[promql].pop(0)

    slow.query, bad.query = "slow", "bad"
    r = run_analysis([slow, bad], query=query)
    assert r.phase == "Failed"
    phases = {res.metric.name: res.phase for res in r.metrics}
    assert phases == {"slow": "Successful", "bad": "Failed"}


def test_stop_ends_an_indefinite_metric_successfully():
    stop = threading.Event()
    seen = []

    def on_measurement(m):
        seen.append(m)
        if len(seen) == 3:
            stop.set()

    r = run_analysis([metric(count=None, interval_s=0.01)], stop, on_measurement,
                     query=lambda a, q: [1.0])  # fmt: skip
    assert r.phase == "Successful" and len(seen) == 3


TEMPLATE = {
    "kind": "AnalysisTemplate",
    "metadata": {"name": "t"},
    "spec": {
        "args": [{"name": "hash"}, {"name": "limit", "value": "0.99"}],
        "metrics": [
            {
                "name": "rate",
                "interval": "1m",
                "initialDelay": "30s",
                "count": 3,
                "failureLimit": 1,
                "successCondition": "result[0] >= {{args.limit}}",
                "provider": {
                    "prometheus": {
                        "address": "http://in-cluster:9090",
                        "query": 'sum(rate(x{h="{{ args.hash }}"}[5m])) + y[1h:30s]',
                    }
                },
            }
        ],
    },
}


def test_template_args_defaults_and_time_scale():
    with pytest.raises(UserError, match=r"no value for argument.*hash"):
        resolve_args(TEMPLATE, {})
    with pytest.raises(UserError, match="unknown --arg nope"):
        resolve_args(TEMPLATE, {"hash": "a", "nope": "1"})
    args = resolve_args(TEMPLATE, {"hash": "abc"})
    (m,) = metrics_of(TEMPLATE, args, prometheus="http://127.0.0.1:1", time_scale=60,
                      min_window_s=4)  # fmt: skip
    assert m.address == "http://127.0.0.1:1"
    assert m.success == "result[0] >= 0.99" and m.failure is None
    assert (m.interval_s, m.initial_delay_s, m.count, m.failure_limit) == (1.0, 0.5, 3, 1)
    assert m.query == 'sum(rate(x{h="abc"}[5s])) + y[60s:1s]'
    assert seconds("1h30m", "x") == 5400 and seconds("250ms", "x") == 0.25
    with pytest.raises(UserError, match="not a duration"):
        seconds("5 minutes", "metrics[0].interval")
