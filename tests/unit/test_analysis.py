"""Argo Rollouts' analysis semantics, ported from its own tests (v1.8.3) and expr's (v1.15.5).

Each case names the upstream test it comes from: analysis/analysis_test.go,
utils/analysis/factory_test.go, utils/evaluate/evaluate_test.go,
metricproviders/prometheus/prometheus_test.go. Cases upstream tests with inputs a Prometheus
result never has (maps, structs, pointers) are listed as not modelled: they must end
CannotPredict here, never a verdict.
"""

from __future__ import annotations

import math
import threading

import pytest

from pipeline.deploy.analysis import (
    CANNOT_PREDICT,
    ERROR_RETRY_S,
    InvalidSpec,
    Measurement,
    Metric,
    MetricResult,
    go_duration,
    measure,
    metrics_of,
    process_response,
    resolve_args,
    run_analysis,
    seconds,
    terminating,
    validate_metrics,
    worst,
)
from pipeline.deploy.expr import ExprError, Unsupported, compile_condition
from pipeline.io import UserError

GUARDED_OK = "len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.99"
GUARDED_BAD = "len(result) > 0 && !isNaN(result[0]) && result[0] < 0.99"


def outcome(condition: str, result):
    """True/False, or "Error" (Argo's measurement Error), or CANNOT_PREDICT."""
    try:
        return compile_condition(condition)(result)
    except Unsupported:
        return CANNOT_PREDICT
    except ExprError:
        return "Error"


# --- utils/evaluate/evaluate_test.go ---------------------------------------------------------


def phase_of(success: str, failure: str, result) -> str:
    m = Metric("m", "q", "http://p", success=success or None, failure=failure or None)
    return measure(m, lambda a, q: result)[0]


@pytest.mark.parametrize(
    ("upstream", "success", "failure", "phase"),
    [
        ("TestEvaluateResultWithSuccess", "true", "false", "Successful"),
        ("TestEvaluateResultWithFailure", "true", "true", "Failed"),
        ("TestEvaluateResultInconclusive", "false", "false", "Inconclusive"),
        ("TestEvaluateResultNoSuccessConditionAndNotFailing", "", "false", "Successful"),
        ("TestEvaluateResultNoFailureConditionAndNotSuccessful", "false", "", "Failed"),
        ("TestEvaluateResultNoFailureConditionAndNoSuccessCondition", "", "", "Successful"),
        ("TestEvaluateResultWithErrorOnSuccessCondition", "a == true", "true", "Error"),
        ("TestEvaluateResultWithErrorOnFailureCondition", "true", "a == true", "Error"),
    ],
)
def test_evaluate_result(upstream, success, failure, phase):
    assert phase_of(success, failure, True) == phase, upstream


@pytest.mark.parametrize(
    ("upstream", "result", "condition", "expected"),
    [
        ("TestEvaluateConditionWithSuccess", True, "result == true", True),
        ("TestEvaluateConditionWithFailure", True, "result == false", False),
        ("TestErrorWithNonBoolReturn", True, "1", "Error"),  # expected bool, but got int
        ("TestErrorWithInvalidReference", True, "invalidVariable", "Error"),  # unknown name
        ("TestEvaluateInOperator", [2.0, 2.0], "2 in result", True),
        ("TestEvaluateFloat64", 5.0, "result > 1", True),
        ("TestEvaluateInvalidStruct", True, "result.Name() == 'hi'", "Error"),
        ("TestEvaluateAsIntPanic", "1.1", "asInt(result) == 1.1", "Error"),
        ("TestEvaluateAsInt", "1", "asInt(result) == 1", True),
        ("TestEvaluateAsInt", 1, "asInt(result) == 1", True),
        ("TestEvaluateAsInt", 1.123, "asInt(result) == 1", True),
        ("TestEvaluateAsFloatError", "NotANum", "asFloat(result) == 1.1", "Error"),
        ("TestEvaluateAsFloatError", "1.1", 'asFloat(result) == "1.1"', "Error"),
        ("TestEvaluateAsFloat", "1.1", "asFloat(result) == 1.1", True),
        ("TestEvaluateAsFloat", "1.1", "asFloat(result) >= 1.1", True),
        ("TestEvaluateAsFloat", "1.1", "asFloat(result) <= 1.1", True),
        ("TestEvaluateAsFloat", 1.1, "asFloat(result) == 1.1", True),
        ("TestEvaluateAsFloat", 1, "asFloat(result) == 1", True),
        ("TestEvaluateAsFloat", 1, "asFloat(result) >= 1", True),
        ("TestAsInt", "notint", "asInt(result) == 1", "Error"),
        ("TestAsInt", "1.1", "asInt(result) == 1", "Error"),
        ("TestAsFloat", "notfloat", "asFloat(result) == 1", "Error"),
        ("TestIsInf", math.inf, "isInf(result)", True),
        ("TestIsInf", 0.0, "isInf(result)", False),
        ("TestDefaultFunc", None, "default(result, 2) == 2", True),
        ("TestDefaultFunc", 1.0, "default(result, 0) == 1", True),
        ("TestIsNilFunc", None, "isNil(result)", True),
        ("TestIsNilFunc", 1.0, "isNil(result)", False),
        ("TestIsNilFunc", False, "isNil(result)", False),
        # not modelled: a map result (TestEvaluateArray); Prometheus never returns one
        ("TestEvaluateArray", [1.0], "all(result.service_apdex.values, {# > 1})", "Error"),
    ],
)
def test_eval_condition(upstream, result, condition, expected):
    assert outcome(condition, result) == expected, upstream


# --- expr v1.15.5's checker and runtime: what Argo's env turns a Prometheus result into -------


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        (GUARDED_OK, [0.995], True),
        (GUARDED_OK, [], False),  # no data: the guard, not an index error
        (GUARDED_OK, [math.nan], False),
        ("all(result, # < 2.5)", [1.0, 2.0], True),
        ("all(result, {# < 2.5})", [1.0, 3.0], False),
        ("any(result, # > 2) || result[0] == 1", [1.0, 2.0], True),
        ("result > 1 and not (1 + 2 * 3 != 7)", 3.0, True),
        ("-result[-1] <= -2 && 7 % 4 == 3 && 10 / 4 == 2.5", [1.0, 2.0], True),
        # checker.go: type errors even in a branch that never runs
        ("result == 0", [1.0], "Error"),  # mismatched types []float64 and int
        ("false && result == 0", [1.0], "Error"),
        ("result[0] == true", [1.0], "Error"),  # mismatched types float64 and bool
        ("1 in 'abc'", 1.0, "Error"),  # mismatched types int and string
        ("max(result) > 1", [2.0], "Error"),  # invalid argument for max (type []float64)
        ("isNaN(result)", [1.0], "Error"),  # []float64 is not float64
        ("result % 2 == 1", 3.0, "Error"),  # % wants integers
        ("'ab'[0] == 'a'", 1.0, "Error"),  # type string[int] is undefined
        ("nil ?? 1 == 1", 1.0, "Error"),  # ?? and == cannot be mixed (parser.go)
        # runtime: Go's numbers
        ("result[0] / result[1] > 0", [1.0, 0.0], True),  # 1/0 is +Inf, not a crash
        ("isNaN(result[0] / result[1])", [0.0, 0.0], True),
        ("result[0] - result[1] == 1", [1.0, 0.0], True),
        ("7 % 0 == 1", 1.0, "Error"),  # integer divide by zero
        ("asInt(result) < 0", math.inf, True),  # int64(+Inf) on amd64: MinInt64
        ("len('教务') == 6", 1.0, True),  # len counts bytes
        ("result[5] > 0", [1.0], "Error"),  # index out of range
        ("max(1, result) == 2", 2.0, True),
        ("mean(result) == 2 && median(result) == 2 && sum(result) == 4", [1.0, 3.0], True),
        ("round(2.5) == 3 && ceil(1.2) == 2 && floor(-1.5) == -2 && abs(-1) == 1", 1.0, True),
        ("string(result) == '1.5' && upper('a') == 'A'", 1.5, True),
        # the language's forms
        ("result in [1, 2]", 1.0, True),  # array literals
        ("result not in [1, 2]", 3.0, True),
        ("result > 0.5 ? true : false", 0.7, True),
        ("0x10 + 1_000 == 1016 && 2 ** 3 == 8 && -2 ** 2 == -4", 1.0, True),
        ("'abc' contains 'b' && 'abc' startsWith 'a' && 'abc' endsWith 'c'", 1.0, True),
        ("'abc' matches '^a.c$'", 1.0, True),
        ("default(result, 0) < 0.05", 0.01, True),  # Argo's docs' idiom
        ("count(result, # > 1) == 2 && len(filter(result, # > 2)) == 1", [1.0, 2.0, 3.0], True),
        ("first(result) == 1 && last(result) == 3 && result[1:2] == [2]", [1.0, 2.0, 3.0], True),
        # not modelled: cannot predict, never a pass
        ("let x = 1; x > 0", 1.0, CANNOT_PREDICT),
        ("now() > now()", 1.0, CANNOT_PREDICT),
        ("{'a': 1}.a == 1", 1.0, CANNOT_PREDICT),
        ("result | len() > 0", [1.0], CANNOT_PREDICT),
    ],
)
def test_conditions_as_expr_checks_and_runs_them(condition, result, expected):
    assert outcome(condition, result) == expected


@pytest.mark.parametrize(
    "condition",
    ["__import__('os').system('true')", "result.__class__", "open('x')", "result[0] > 1"],
)
def test_anything_outside_the_language_is_never_python(condition):
    assert outcome(condition, []) in ("Error", CANNOT_PREDICT)


# --- analysis/analysis_test.go: assessMetricStatus and run bookkeeping -----------------------


def metric(**kw) -> Metric:
    base = dict(
        name="success-rate",
        query="q",
        address="http://prom",
        interval_s=60.0,
        count=None,
        success=GUARDED_OK,
        failure=GUARDED_BAD,
    )
    return Metric(**{**base, **kw})


def result_of(m: Metric, last: str, **counters) -> MetricResult:
    r = MetricResult(m, [Measurement(m.name, 1, 0.0, last)])
    for key, value in counters.items():
        setattr(r, key, value)
    return r


def phases(r: MetricResult) -> tuple:
    """(not terminating, terminating); None is Argo's Running/Pending."""
    return r.assess(False), r.assess(True)


def test_assess_metric_status_no_measurements():  # TestAssessMetricStatusNoMeasurements
    r = MetricResult(metric())
    assert phases(r) == (None, "Successful")


def test_assess_metric_status_failure_limit():  # TestAssessMetricStatusFailureLimit
    r = result_of(metric(failure_limit=2), "Failed", failed=3, count=3)
    assert phases(r) == ("Failed", "Failed")
    r.metric.failure_limit = 3
    assert phases(r) == (None, "Successful")


def test_assess_metric_status_consecutive_success_limit():
    # TestAssessMetricStatusConsecutiveSuccessLimit
    m = metric(failure_limit=-1, consecutive_success_limit=3)
    r = result_of(m, "Failed", failed=3, successful=4, consecutive_success=3, count=7)
    assert phases(r) == ("Successful", "Successful")  # indefinite, limit reached
    m.consecutive_success_limit = 5
    assert phases(r) == (None, "Successful")
    m.count = 7  # count reached
    assert phases(r) == ("Failed", "Failed")  # 3 < 5, no failureLimit
    m.consecutive_success_limit = 3
    assert phases(r) == ("Successful", "Successful")
    m.count = 9  # count not reached
    assert phases(r) == ("Successful", "Successful")
    m.consecutive_success_limit = 5
    assert phases(r) == (None, "Successful")


@pytest.mark.parametrize(
    ("count", "failed", "successful", "n", "consecutive", "expected"),
    [
        # indefinite
        (None, 3, 4, 7, 3, (None, "Successful")),
        (None, 5, 9, 9, 0, ("Failed", "Failed")),
        (None, 3, 5, 8, 4, ("Successful", "Successful")),
        (None, 5, 5, 10, 4, ("Failed", "Failed")),
        # count 10, reached
        (10, 4, 6, 10, 3, ("Inconclusive", "Inconclusive")),
        (10, 5, 5, 10, 3, ("Failed", "Failed")),
        (10, 4, 6, 10, 4, ("Successful", "Successful")),
        (10, 5, 5, 10, 4, ("Failed", "Failed")),
        # count 10, not reached
        (10, 3, 5, 8, 3, (None, "Successful")),
        (10, 5, 3, 8, 3, ("Failed", "Failed")),
        (10, 3, 5, 8, 4, ("Successful", "Successful")),
        (10, 5, 4, 9, 4, ("Failed", "Failed")),
    ],
)
def test_assess_metric_status_failure_limit_and_consecutive_success_limit(
    count, failed, successful, n, consecutive, expected
):  # TestAssessMetricStatusFailureLimitAndConsecutiveSuccessLimit
    m = metric(failure_limit=4, consecutive_success_limit=4, count=count)
    r = result_of(
        m, "Failed", failed=failed, successful=successful, count=n, consecutive_success=consecutive
    )
    assert phases(r) == expected


def test_assess_metric_status_inconclusive_limit():  # TestAssessMetricStatusInconclusiveLimit
    r = result_of(metric(inconclusive_limit=2), "Inconclusive", inconclusive=3, count=3)
    assert phases(r) == ("Inconclusive", "Inconclusive")
    r.metric.inconclusive_limit = 3
    assert phases(r) == (None, "Successful")


def test_assess_metric_status_consecutive_errors():  # TestAssessMetricStatusConsecutiveErrors
    r = result_of(metric(), "Error", consecutive_error=5, count=5)
    assert phases(r) == ("Error", "Error")
    r.consecutive_error = 4
    assert phases(r) == (None, "Successful")


def test_assess_metric_status_count_reached():  # TestAssessMetricStatusCountReached
    r = result_of(metric(count=10, interval_s=0.0), "Successful", successful=10, count=10)
    assert r.assess(False) == "Successful"
    r.successful, r.inconclusive = 5, 5
    assert r.assess(False) == "Inconclusive"


@pytest.mark.parametrize(
    ("counters", "expected"),
    [  # TestAssessMetricFailureInconclusiveOrError
        ({"failed": 1}, ("Failed", "failed (1) > failureLimit (0)")),
        ({"inconclusive": 1}, ("Inconclusive", "inconclusive (1) > inconclusiveLimit (0)")),
        (
            {"consecutive_error": 5},
            ("Error", "consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        ),
        (
            {"failed": 1, "inconclusive": 1, "consecutive_error": 5},
            ("Error", "consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        ),  # the last rule wins
    ],
)
def test_assess_metric_failure_inconclusive_or_error(counters, expected):
    r = result_of(metric(), "Failed", **counters)
    assert r.failure_inconclusive_or_error() == expected


def test_run_measurements_reset_consecutive_error_counter():
    # TestRunMeasurementsResetConsecutiveErrorCounter: a completed measurement resets it
    r = MetricResult(metric())
    for phase in ("Error", "Error", "Successful"):
        r.record(Measurement(r.metric.name, len(r.measurements) + 1, 0.0, phase))
    assert (r.consecutive_error, r.error, r.count, r.successful) == (0, 2, 1, 1)


def fed(*values):
    """A query function answering with `values` in turn (an exception is raised)."""
    it = iter(values)

    def query(address, promql):
        v = next(it)
        if isinstance(v, Exception):
            raise v
        return v

    return query


def test_errors_do_not_count_toward_count_and_are_retried_after_the_error_interval():
    """TestGenerateMetricTasksError, TestCalculateNextReconcileUponError: an Error is retried
    after DefaultErrorRetryInterval (10 s), not the metric's interval, and only the other
    phases count. Error, Failed, Successful, Failed with count 3: Failed, as in Argo."""
    assert ERROR_RETRY_S == 10.0
    m = metric(count=3, interval_s=0.02, error_retry_s=0.01, failure_limit=1)
    r = run_analysis([m], query=fed(OSError("down"), [0.5], [1.0], [0.5]))
    res = r.metrics[0]
    assert r.phase == "Failed" and (res.count, res.error, res.failed) == (3, 1, 2)
    gaps = [b.at_s - a.at_s for a, b in zip(res.measurements, res.measurements[1:], strict=False)]
    assert gaps[0] < 0.02 <= min(gaps[1:]) + 0.005  # the retry came before the interval


def test_prometheus_down_throughout_ends_error_not_successful():
    """A metric of count 1 whose query always errors: five errors, then Error (the project
    used to count the first error toward `count` and call it Successful)."""
    m = metric(count=1, interval_s=0.0, error_retry_s=0.001)
    r = run_analysis([m], query=fed(*[OSError("connection refused")] * 5))
    assert r.phase == "Error" and r.metrics[0].error == 5
    assert "consecutiveErrors (5) > consecutiveErrorLimit (4)" in r.message


def test_an_empty_vector_with_an_unguarded_index_errors_until_the_limit():
    m = metric(
        count=1, interval_s=0.0, success="result[0] >= 0.95", failure=None, error_retry_s=0.001
    )
    r = run_analysis([m], query=fed(*[[]] * 5))
    assert r.phase == "Error"


def test_first_bad_metric_stops_the_run_and_the_worst_phase_wins():
    # TestReconcileAnalysisRunTerminateSiblingAfterFail
    slow = metric(name="slow", count=None, interval_s=0.05, query="slow")
    bad = metric(name="bad", count=2, interval_s=0.05, query="bad")
    answers = {"slow": [[1.0]] * 100, "bad": [[0.1], [0.1]]}
    r = run_analysis([slow, bad], query=lambda a, q: answers[q].pop(0))
    assert r.phase == "Failed"
    assert {res.metric.name: res.phase for res in r.metrics} == {
        "slow": "Successful",
        "bad": "Failed",
    }


def test_dry_run_metrics_are_measured_but_never_decide():
    # TestAssessRunStatusWithOnlyDryRunMetrics, TestAssessRunStatusWithMixedMetrics
    dry = metric(name="dry", count=1, interval_s=0.0, dry_run=True, query="dry")
    real = metric(name="real", count=1, interval_s=0.0, query="real")
    answers = {"dry": [0.1], "real": [1.0]}
    r = run_analysis([dry, real], query=lambda a, q: answers[q])
    assert r.phase == "Successful"
    assert {res.metric.name: res.phase for res in r.metrics} == {
        "dry": "Failed",
        "real": "Successful",
    }
    r = run_analysis(
        [metric(name="dry", count=1, interval_s=0.0, dry_run=True)], query=lambda a, q: [0.1]
    )
    assert r.phase == "Successful"


def test_stop_ends_an_indefinite_metric_successfully():
    stop = threading.Event()
    seen = []

    def on_measurement(m):
        seen.append(m)
        if len(seen) == 3:
            stop.set()

    r = run_analysis(
        [metric(count=None, interval_s=0.01)], stop, on_measurement, query=lambda a, q: [1.0]
    )
    assert r.phase == "Successful" and len(seen) == 3


def test_a_condition_that_cannot_be_predicted_ends_the_run_cannot_predict():
    m = metric(count=3, interval_s=0.0, success="let x = 1; x > 0", failure=None)
    r = run_analysis([m], query=fed([1.0]))
    assert r.phase == CANNOT_PREDICT and len(r.metrics[0].measurements) == 1


def test_no_python_exception_escapes_a_measurement():
    """The crashes the project had: an exception in the query or the condition is a phase."""
    for condition, value in (
        ("result[0] - result[1] > 0", [1.0, 0.0]),
        ("asInt(result[0]) > 0", [math.inf]),
        ("1 in 'abc'", [1.0]),
        ("max() > 0", [1.0]),
    ):
        m = metric(success=condition, failure=None)
        assert measure(m, fed(value))[0] in ("Successful", "Failed", "Error", CANNOT_PREDICT)
    assert measure(metric(), fed(ZeroDivisionError("x")))[0] == "Error"


# --- utils/analysis/factory_test.go: TestValidateMetrics --------------------------------------

PROM = {"prometheus": {}}


@pytest.mark.parametrize(
    ("metrics", "error"),
    [
        (
            [{"name": "success-rate", "count": 1, "failureLimit": 2, "provider": PROM}],
            "metrics[0]: count (1) must be >= failureLimit + consecutiveSuccessLimit (2 + 0)"
            " if both >= 0",
        ),
        ([{"name": "success-rate", "count": 0, "failureLimit": 2, "provider": PROM}], None),
        (
            [{"name": "success-rate", "count": 1, "inconclusiveLimit": 2, "provider": PROM}],
            "metrics[0]: count must be >= inconclusiveLimit",
        ),
        (
            [
                {
                    "name": "success-rate",
                    "count": 2,
                    "interval": "60s",
                    "failureLimit": 2,
                    "provider": PROM,
                }
            ],
            None,
        ),
        (
            [
                {
                    "name": "success-rate",
                    "count": 2,
                    "interval": "60s-typo",
                    "failureLimit": 2,
                    "provider": PROM,
                }
            ],
            'metrics[0]: invalid interval string: time: unknown unit "s-typo" in duration'
            ' "60s-typo"',
        ),
        (
            [
                {
                    "name": "success-rate",
                    "count": 2,
                    "interval": "60s",
                    "initialDelay": "60s-typo",
                    "failureLimit": 2,
                    "provider": PROM,
                }
            ],
            'metrics[0]: invalid startDelay string: time: unknown unit "s-typo" in duration'
            ' "60s-typo"',
        ),
        ([], "no metrics specified"),
        (
            [{"name": "success-rate", "count": 2, "provider": PROM}],
            "metrics[0]: interval must be specified when count > 1",
        ),
        (
            [
                {"name": "success-rate", "provider": PROM},
                {"name": "success-rate", "provider": PROM},
            ],
            "metrics[1]: duplicate name 'success-rate'",
        ),
        (
            [{"name": "success-rate", "failureLimit": -2, "provider": PROM}],
            "metrics[0]: failureLimit must be >= 0, or -1 to be disabled",
        ),
        (
            [{"name": "success-rate", "inconclusiveLimit": -1, "provider": PROM}],
            "metrics[0]: inconclusiveLimit must be >= 0",
        ),
        (
            [{"name": "success-rate", "consecutiveErrorLimit": -1, "provider": PROM}],
            "metrics[0]: consecutiveErrorLimit must be >= 0",
        ),
        ([{"name": "success-rate", "count": 1}], "metrics[0]: no provider specified"),
        (
            [{"name": "success-rate", "provider": {"prometheus": {}, "job": {}, "web": {}}}],
            "metrics[0]: multiple providers specified",
        ),
        (
            [{"name": "success-rate", "failureLimit": -1, "provider": PROM}],
            "metrics[0]: failureLimit and consecutiveSuccessLimit cannot both be disabled",
        ),
        (
            [{"name": "success-rate", "consecutiveSuccessLimit": -1, "provider": PROM}],
            "metrics[0]: consecutiveSuccessLimit must be >= 0",
        ),
    ],
)
def test_validate_metrics(metrics, error):
    assert validate_metrics(metrics) == error


def test_an_invalid_template_ends_error_before_measuring():  # TestReconcileAnalysisRunInvalid
    bad = {
        "spec": {
            "metrics": [
                {
                    "name": "m",
                    "count": 2,
                    "provider": {"prometheus": {"address": "http://p", "query": "q"}},
                }
            ]
        }
    }
    with pytest.raises(InvalidSpec, match="interval must be specified when count > 1"):
        metrics_of(bad, {})
    # TestInvalidDryRunConfigThrowsError
    dry = {"spec": {**TEMPLATE["spec"], "dryRun": [{"metricName": "nope"}]}}
    with pytest.raises(InvalidSpec, match=r"dryRun\[0\]: Rule didn't match any metric"):
        metrics_of(dry, {"hash": "h", "limit": "1"})


def test_go_durations():
    assert go_duration("1h30m") == 5400 and go_duration("250ms") == 0.25
    assert go_duration("1.5m") == 90 and go_duration("0") == 0
    for bad, message in (("5 minutes", "unknown unit"), ("60", "missing unit"), ("", "invalid")):
        with pytest.raises(ValueError, match=message):
            go_duration(bad)


# --- templates, args and rehearsals' time scale -------------------------------------------------

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
                "consecutiveSuccessLimit": 2,
                "successCondition": "result[0] >= {{args.limit}}",
                "provider": {
                    "prometheus": {
                        "address": "http://in-cluster:9090",
                        "query": 'sum(rate(x{h="{{ args.hash }}"}[5m])) + y[1h:30s]',
                    }
                },
            }
        ],
        "measurementRetention": [{"metricName": "rate", "limit": 5}],  # accepted
    },
}


def test_template_args_defaults_and_time_scale():
    with pytest.raises(UserError, match=r"no value for argument.*hash"):
        resolve_args(TEMPLATE, {})
    with pytest.raises(UserError, match="unknown --arg nope"):
        resolve_args(TEMPLATE, {"hash": "a", "nope": "1"})
    args = resolve_args(TEMPLATE, {"hash": "abc"})
    (m,) = metrics_of(
        TEMPLATE, args, prometheus="http://127.0.0.1:1", time_scale=60, min_window_s=4
    )
    assert m.address == "http://127.0.0.1:1"
    assert m.success == "result[0] >= 0.99" and m.failure is None
    assert (m.interval_s, m.initial_delay_s, m.count, m.failure_limit) == (1.0, 0.5, 3, 1)
    assert m.consecutive_success_limit == 2 and m.error_retry_s == pytest.approx(10 / 60)
    assert m.query == 'sum(rate(x{h="abc"}[5s])) + y[60s:1s]'
    assert seconds("1h30m", "x") == 5400
    with pytest.raises(UserError, match="not a duration"):
        seconds("5 minutes", "metrics[0].interval")


def test_other_providers_cannot_be_predicted():
    spec = {"spec": {"metrics": [{"name": "web", "provider": {"web": {"url": "http://x"}}}]}}
    (m,) = metrics_of(spec, {})
    assert measure(m, fed([1.0]))[0] == CANNOT_PREDICT
    assert run_analysis([m], query=fed([1.0])).phase == CANNOT_PREDICT


# --- metricproviders/prometheus/prometheus_test.go --------------------------------------------


def provider_phase(result, success: str = "", failure: str = "") -> str:
    m = Metric("m", "q", "http://p", success=success or None, failure=failure or None)
    try:
        value = process_response(result)
    except ValueError:
        return "Error"  # Run: MarkMeasurementError
    return measure(m, lambda a, q: value)[0]


@pytest.mark.parametrize(
    ("upstream", "result", "success", "failure", "phase"),
    [
        ("TestProcessScalarResponse", [0, "10"], "result == 10", "result != 10", "Successful"),
        (
            "TestProcessNaNResponse/inconclusive",
            [0, "NaN"],
            "result >= 0.9",
            "result < 0.9",
            "Inconclusive",
        ),
        (
            "TestProcessNaNResponse/success",
            [0, "NaN"],
            "result >= 0.9 || isNaN(result)",
            "",
            "Successful",
        ),
        ("TestProcessNaNResponse/failure", [0, "NaN"], "result >= 0.9", "", "Failed"),
        ("TestProcessInfResponse/success", [0, "+Inf"], "result >= 0.9", "", "Successful"),
        ("TestProcessInfResponse/failure", [0, "+Inf"], "", "isInf(result)", "Failed"),
        (
            "TestProcessVectorResponse",
            [{"value": [0, "10"]}, {"value": [0, "11"]}],
            "10 in result",
            "len(result) != 2",
            "Successful",
        ),
        ("TestProcessInvalidResponse", None, "true", "true", "Error"),
    ],
)
def test_process_response(upstream, result, success, failure, phase):
    assert provider_phase(result, success, failure) == phase, upstream


def test_run_successfully_with_range_query():  # TestRunSuccessfullyWithRangeQuery
    sent = []
    matrix = [{"values": [[1234, "11"], [1234, "12"]]}, {"values": [[1234, "13"], [1234, "14"]]}]

    def query(address, promql, window):
        sent.append(window)
        return process_response(matrix)

    day = 'date("2023-08-14 00:00:00", "2006-01-02 15:04:05", "UTC")'
    rq = {"start": f'{day} - duration("1h")', "end": day, "step": "1m"}
    m = Metric(
        "foo",
        "test",
        "http://p",
        success="all(result, # > 10)",
        failure="all(result, # < 10)",
        range_query=(rq, 1.0),
    )
    assert measure(m, query) == ("Successful", [11.0, 12.0, 13.0, 14.0], "")
    assert sent == [(1691967600.0, 1691971200.0, 60.0)]  # 2023-08-13 23:00 to 00:00 UTC, 1m


@pytest.mark.parametrize(
    ("upstream", "key", "value", "message"),
    [
        (
            "TestRunUnparsableStartTime",
            "start",
            'now() - duration("??")',
            'failed to parse rangeQuery.start as time: time: invalid duration "??"',
        ),
        (
            "TestRunUnparsableEndTime",
            "end",
            'now() - duration("??")',
            'failed to parse rangeQuery.end as time: time: invalid duration "??"',
        ),
        (
            "TestRunUnparsableStep",
            "step",
            "??",
            'failed to parse rangeQuery.step as duration: time: invalid duration "??"',
        ),
    ],
)
def test_run_unparsable_range(upstream, key, value, message):
    rq = {"start": "now()", "end": "now()", "step": "1m", key: value}
    m = Metric("foo", "test", "http://p", success="true", range_query=(rq, 1.0))
    assert measure(m, lambda *a: []) == ("Error", None, message), upstream


def test_run_with_query_error():  # TestRunWithQueryError
    phase, _, message = measure(metric(), fed(RuntimeError("bad big bug :(")))
    assert phase == "Error" and "bad big bug :(" in message


# --- utils/analysis/helpers_test.go --------------------------------------------------------------


def test_is_worst_and_worst():  # TestIsWorst, TestWorst: Successful < Inconclusive < Error < Failed
    def run(*phases):
        out = []
        for i, p in enumerate(phases):
            r = MetricResult(metric(name=str(i)))
            r.phase = p
            out.append(r)
        return out

    assert worst(run("Successful", "Inconclusive")) == "Inconclusive"
    assert worst(run("Inconclusive", "Error")) == "Error"
    assert worst(run("Error", "Failed", "Successful")) == "Failed"
    assert worst(run("Failed", "Error")) == "Failed"


def test_is_terminating():  # TestIsTerminating, TestIsFastFailTerminating
    running = [MetricResult(metric(name="other")), MetricResult(metric(name="success-rate"))]
    stop = threading.Event()
    assert not terminating(running, stop)
    stop.set()
    assert terminating(running, stop)
    stop.clear()
    running[1].phase = "Error"
    assert terminating(running, stop)
    running[1].metric.dry_run = True  # a dry-run metric's failure never ends the run
    assert not terminating(running, stop)


def test_analyze_exit_codes(tmp_path, capsys):
    """0-4 are the run's phases (3 Error, 4 CannotPredict); 5 is bad input."""
    import yaml

    from pipeline.cli import main as cli

    def template(name: str, metric: dict) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "kind": "AnalysisTemplate",
                    "metadata": {"name": name},
                    "spec": {"metrics": [metric]},
                }
            )
        )
        return str(path)

    down = {"prometheus": {"address": "http://127.0.0.1:9", "query": "up"}}
    cases = {
        str(tmp_path / "no-such-file.yaml"): 5,
        template("down", {"name": "m", "successCondition": "result[0] > 0", "provider": down}): 3,
        template("invalid", {"name": "m", "count": 2, "provider": down}): 3,
        template("web", {"name": "m", "provider": {"web": {"url": "http://x"}}}): 4,
    }
    for path, code in cases.items():
        assert cli(["analyze", path, "--time-scale", "1000"]) == code, path
    assert "interval must be specified when count > 1" in capsys.readouterr().out
