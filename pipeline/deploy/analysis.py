"""`llmops analyze`: run an Argo Rollouts AnalysisTemplate against a Prometheus server.

Run: llmops analyze manifests/overlays/production --name vllm-canary-step \
        --prometheus http://127.0.0.1:9090 --arg canary-hash=abc --arg stable-hash=def \
        --arg namespace=serving

TEMPLATE is a directory that `kubectl kustomize` renders, or a YAML file (such as its output).
The semantics are Argo Rollouts v1.8.3's own, ported from its code (`analysis/analysis.go`:
generateMetricTasks, runMeasurements, assessRunStatus, assessMetricStatus;
`utils/analysis/factory.go`: ValidateMetrics; `utils/evaluate`: EvaluateResult):
- the spec is validated first (limits, count vs interval, duplicate names, ...): an invalid
  one ends the run Error before any measurement;
- a metric measures after `initialDelay`, then every `interval` until its effective count
  (no count and no interval: 1; an interval without a count: until the run is stopped);
  only Successful, Failed and Inconclusive measurements count; an Error is retried after
  10 s (DefaultErrorRetryInterval, divided by --time-scale) and counts toward
  consecutiveErrorLimit (default 4) only;
- a metric is Failed once failures > failureLimit (-1: never), Inconclusive once
  inconclusive > inconclusiveLimit, Error once consecutive errors > consecutiveErrorLimit;
  Successful once consecutiveSuccessLimit successes in a row are reached, or at its count
  (then Inconclusive, or Failed without a failureLimit, when a consecutiveSuccessLimit was
  set and not reached);
- a non-dry-run metric ending Failed, Error or Inconclusive terminates the run; the run's
  phase is the worst of its non-dry-run metrics (Successful < Inconclusive < Error <
  Failed); `dryRun` metrics are measured and reported but never decide.
What cannot be modelled here (another provider, a condition outside the language
pipeline/deploy/expr.py implements) ends the metric and the run `CannotPredict`: never a
pass, and distinct from every Argo phase.

Exit codes: 0 Successful, 1 Failed, 2 Inconclusive, 3 Error, 4 CannotPredict, 5 bad input.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from pipeline.commands import arg, command
from pipeline.deploy.expr import ExprError, Unsupported, compile_condition, go_duration
from pipeline.io import UserError

CANNOT_PREDICT = "CannotPredict"
PHASES = ("Successful", "Inconclusive", "Error", "Failed")  # Argo's order, worst last
EXIT_CODES = {"Successful": 0, "Failed": 1, "Inconclusive": 2, "Error": 3, CANNOT_PREDICT: 4}
BAD_INPUT = 5
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4  # defaults.DefaultConsecutiveErrorLimit
ERROR_RETRY_S = 10.0  # analysis.DefaultErrorRetryInterval
ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
RANGE = re.compile(r"\[(\d+(?:ms|s|m|h))(?::(\d+(?:ms|s|m|h))?)?\]")


def seconds(text: str | None, where: str) -> float:
    """A Go duration ("1m", "30s", "1h30m", "500ms") in seconds."""
    if text in (None, ""):
        return 0.0
    try:
        return go_duration(str(text))
    except ValueError as exc:
        raise UserError(
            f"{where}: {text!r} is not a duration like 30s, 1m or 1h30m ({exc})"
        ) from None


def promql_duration(s: float) -> str:
    return f"{max(1, round(s))}s"


@dataclass
class Metric:
    name: str
    query: str
    address: str
    interval_s: float = 0.0
    initial_delay_s: float = 0.0
    count: int | None = 1  # the effective count; None: until the run is stopped
    failure_limit: int = 0  # -1: failures never fail the metric
    inconclusive_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT
    consecutive_success_limit: int = 0  # 0: not applicable
    success: str | None = None
    failure: str | None = None
    dry_run: bool = False
    error_retry_s: float = ERROR_RETRY_S
    unsupported: str = ""  # why this metric cannot be predicted here ("" when it can)
    range_query: tuple[dict, float] | None = None  # (rangeQuery, time scale)


@dataclass
class Measurement:
    metric: str
    index: int
    at_s: float  # since the run started
    phase: str
    value: Any = None
    message: str = ""
    interval_s: float = 0.0  # the metric's, so a reader can count intervals


@dataclass
class MetricResult:
    """A metric's measurements and Argo's MetricResult counters."""

    metric: Metric
    measurements: list[Measurement] = field(default_factory=list)
    phase: str | None = None  # None while running
    message: str = ""
    count: int = 0  # Successful + Failed + Inconclusive: errors do not count
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    consecutive_success: int = 0

    def record(self, m: Measurement) -> None:
        """runMeasurements' bookkeeping for a completed measurement."""
        self.measurements.append(m)
        if m.phase == "Error":
            self.error += 1
            self.consecutive_error += 1
            self.consecutive_success = 0
            return
        if m.phase == CANNOT_PREDICT:
            return
        self.count += 1
        self.consecutive_error = 0
        if m.phase == "Successful":
            self.successful += 1
            self.consecutive_success += 1
            return
        self.consecutive_success = 0
        if m.phase == "Failed":
            self.failed += 1
        else:
            self.inconclusive += 1

    def failure_inconclusive_or_error(self) -> tuple[str | None, str]:
        """assessMetricFailureInconclusiveOrError: the last matching rule wins."""
        met, phase, message = self.metric, None, ""
        if met.failure_limit >= 0 and self.failed > met.failure_limit:
            phase = "Failed"
            message = f"failed ({self.failed}) > failureLimit ({met.failure_limit})"
        if self.inconclusive > met.inconclusive_limit:
            phase = "Inconclusive"
            message = (
                f"inconclusive ({self.inconclusive}) > inconclusiveLimit ({met.inconclusive_limit})"
            )
        if self.consecutive_error > met.consecutive_error_limit:
            phase = "Error"
            message = (
                f"consecutiveErrors ({self.consecutive_error}) > consecutiveErrorLimit"
                f" ({met.consecutive_error_limit})"
            )
        return phase, message

    def assess(self, terminating: bool) -> str | None:
        """assessMetricStatus: the metric's phase now, or None while it runs on."""
        met = self.metric
        if not self.measurements:
            return "Successful" if terminating else None
        if self.measurements[-1].phase == CANNOT_PREDICT:
            self.message = self.measurements[-1].message
            return CANNOT_PREDICT
        phase, message = self.failure_inconclusive_or_error()
        if phase:
            self.message = message
            return phase
        success_limit = met.consecutive_success_limit
        if success_limit > 0 and self.consecutive_success >= success_limit:
            self.message = f"consecutiveSuccessLimit ({success_limit}) reached"
            return "Successful"
        if met.count is not None and self.count >= met.count:
            if success_limit > 0:
                if met.failure_limit >= 0:
                    self.message = (
                        f"consecutiveSuccessLimit ({success_limit}) not reached and"
                        f" failureLimit ({met.failure_limit}) not violated"
                    )
                    return "Inconclusive"
                self.message = f"consecutiveSuccessLimit ({success_limit}) not reached"
                return "Failed"
            self.message = f"count ({met.count}) reached"
            return "Successful"
        return "Successful" if terminating else None

    def due_after(self) -> float:
        """Seconds after the last measurement that the next one is due (generateMetricTasks:
        an error is retried after DefaultErrorRetryInterval, else the metric's interval)."""
        last = self.measurements[-1]
        if last.phase == "Error" or not self.metric.interval_s:
            return self.metric.error_retry_s
        return self.metric.interval_s


@dataclass
class RunResult:
    phase: str
    metrics: list[MetricResult]
    seconds: float
    invalid: str = ""  # the spec's validation error, when the run ended before measuring

    @property
    def message(self) -> str:
        if self.invalid:
            return self.invalid
        worst = [
            r
            for r in self.metrics
            if r.phase == self.phase and r.phase != "Successful" and not r.metric.dry_run
        ]
        return "; ".join(f"{r.metric.name}: {r.message}" for r in worst)


def validate_metrics(raw_metrics: list[dict]) -> str | None:
    """ValidateMetrics (utils/analysis/factory.go), on the template's metrics with args
    resolved: the first problem, as Argo words it, or None."""
    if not raw_metrics:
        return "no metrics specified"
    names: set[str] = set()
    for i, raw in enumerate(raw_metrics):
        name = raw.get("name")
        if name in names:
            return f"metrics[{i}]: duplicate name '{name}'"
        names.add(str(name))
        problem = validate_metric(raw)
        if problem:
            return f"metrics[{i}]: {problem}"
    return None


def _int(raw: dict, key: str) -> int:
    value = raw.get(key)
    return 0 if value in (None, "") else int(value)


def validate_metric(raw: dict) -> str | None:
    count, failure = _int(raw, "count"), _int(raw, "failureLimit")
    success, inconclusive = _int(raw, "consecutiveSuccessLimit"), _int(raw, "inconclusiveLimit")
    if success < 0:
        return "consecutiveSuccessLimit must be >= 0"
    if failure < -1:
        return "failureLimit must be >= 0, or -1 to be disabled"
    if success == 0 and failure == -1:
        return "failureLimit and consecutiveSuccessLimit cannot both be disabled"
    if inconclusive < 0:
        return "inconclusiveLimit must be >= 0"
    if raw.get("consecutiveErrorLimit") is not None and _int(raw, "consecutiveErrorLimit") < 0:
        return "consecutiveErrorLimit must be >= 0"
    if count > 0:
        if failure >= 0 and count < failure + success:
            return (
                f"count ({count}) must be >= failureLimit + consecutiveSuccessLimit"
                f" ({failure} + {success}) if both >= 0"
            )
        if failure < 0 and count < success:
            return "count must be >= consecutiveSuccessLimit"
        if count < inconclusive:
            return "count must be >= inconclusiveLimit"
    if count > 1 and not raw.get("interval"):
        return "interval must be specified when count > 1"
    for key, label in (("interval", "interval"), ("initialDelay", "startDelay")):
        if raw.get(key):
            try:
                go_duration(str(raw[key]))
            except ValueError as exc:
                return f"invalid {label} string: {exc}"
    providers = [k for k, v in (raw.get("provider") or {}).items() if v is not None]
    if not providers:
        return "no provider specified"
    if len(providers) > 1:
        return "multiple providers specified"
    return None


# --- reading templates -------------------------------------------------------------------


def load_objects(source: Path) -> list[dict]:
    from pipeline.deploy.manifests import render

    if source.is_dir():
        return render(source)
    try:
        return [d for d in yaml.safe_load_all(source.read_text(encoding="utf-8")) if d]
    except FileNotFoundError:
        raise UserError(f"{source}: no such file or kustomization directory") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not YAML: {exc}") from None


def find_template(objs: list[dict], name: str | None, where: str) -> dict:
    kinds = ("AnalysisTemplate", "ClusterAnalysisTemplate")
    found = [o for o in objs if o.get("kind") in kinds]
    names = [o["metadata"]["name"] for o in found]
    if name is not None:
        found = [o for o in found if o["metadata"]["name"] == name]
    if len(found) != 1:
        which = f"no AnalysisTemplate named {name!r}" if name else "more than one AnalysisTemplate"
        raise UserError(f"{where}: {which} (found: {', '.join(names) or 'none'}); use --name")
    return found[0]


def resolve_args(template: dict, given: dict[str, str]) -> dict[str, str]:
    """Template defaults, overridden by `given`; a missing value names the argument."""
    declared = {a["name"]: a.get("value") for a in template["spec"].get("args", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise UserError(f"unknown --arg {', '.join(unknown)} (declared: {', '.join(declared)})")
    values = {**declared, **given}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise UserError(f"no value for argument(s) {', '.join(missing)}: pass --arg NAME=VALUE")
    return {k: str(v) for k, v in values.items()}


def substitute(text: str, args: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        if m[1] not in args:
            raise UserError(f"{{{{args.{m[1]}}}}} is not a declared argument")
        return args[m[1]]

    return ARG.sub(one, text)


class InvalidSpec(Exception):
    """The template fails Argo's ValidateMetrics: the run ends Error before measuring."""


def resolved(raw: dict, args: dict[str, str]) -> dict:
    """The metric with `{{args.x}}` filled in everywhere, as Argo resolves before validating."""
    text = yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
    return yaml.safe_load(substitute(text, args))


def dry_run_names(spec: dict, names: list[str]) -> set[str]:
    """GetDryRunMetrics: metric names matched by any `dryRun[].metricName` regex."""
    found: set[str] = set()
    for i, rule in enumerate(spec.get("dryRun") or []):
        pattern = str(rule.get("metricName", ""))
        matched = {n for n in names if re.match(pattern, n)}
        if not matched:
            raise InvalidSpec(f"dryRun[{i}]: Rule didn't match any metric name(s)")
        found |= matched
    return found


def metrics_of(
    template: dict,
    args: dict[str, str],
    prometheus: str | None = None,
    time_scale: float = 1.0,
    min_window_s: float = 4.0,
) -> list[Metric]:
    """The template's metrics with args filled in, validated as Argo validates them
    (InvalidSpec otherwise). `prometheus` replaces every provider address; `time_scale` > 1
    compresses intervals, delays, the error retry and PromQL range windows (a rehearsal)."""
    spec = template.get("spec") or {}
    raws = [resolved(raw, args) for raw in spec.get("metrics") or []]
    problem = validate_metrics(raws)
    if problem:
        raise InvalidSpec(problem)
    dry = dry_run_names(spec, [r["name"] for r in raws])
    out = []
    for i, raw in enumerate(raws):
        where = f"metrics[{i}] ({raw.get('name')})"
        provider = raw.get("provider") or {}
        unsupported, query, address, range_query = "", "", prometheus or "", None
        if "prometheus" not in provider:
            unsupported = f"the {next(iter(provider))} provider cannot run here"
        else:
            prom = provider["prometheus"] or {}
            query, address = str(prom.get("query", "")), prometheus or str(prom.get("address"))
            if prom.get("rangeQuery"):
                range_query = (prom["rangeQuery"], time_scale)
        if time_scale != 1:
            query = RANGE.sub(lambda m: _scaled_range(m, time_scale, min_window_s), query)
        count = _int(raw, "count")
        interval = seconds(raw.get("interval"), f"{where}.interval")
        out.append(
            Metric(
                name=raw["name"],
                query=query,
                address=address,
                interval_s=interval / time_scale,
                initial_delay_s=seconds(raw.get("initialDelay"), f"{where}.initialDelay")
                / time_scale,
                # EffectiveCount: unset or 0 is 1 without an interval, else indefinite
                count=count or (None if interval else 1),
                failure_limit=_int(raw, "failureLimit"),
                inconclusive_limit=_int(raw, "inconclusiveLimit"),
                consecutive_error_limit=DEFAULT_CONSECUTIVE_ERROR_LIMIT
                if raw.get("consecutiveErrorLimit") is None
                else _int(raw, "consecutiveErrorLimit"),
                consecutive_success_limit=_int(raw, "consecutiveSuccessLimit"),
                success=str(raw["successCondition"]) if raw.get("successCondition") else None,
                failure=str(raw["failureCondition"]) if raw.get("failureCondition") else None,
                dry_run=raw["name"] in dry,
                error_retry_s=ERROR_RETRY_S / time_scale,
                unsupported=unsupported,
                range_query=range_query,
            )
        )
    return out


def _scaled_range(m: re.Match, scale: float, floor: float) -> str:
    window = promql_duration(max(floor, seconds(m[1], "range") / scale))
    if m.group(0).count(":"):
        step = f":{promql_duration(seconds(m[2], 'step') / scale)}" if m[2] else ":"
        return f"[{window}{step}]"
    return f"[{window}]"


# --- measuring ---------------------------------------------------------------------------


def process_response(result: Any) -> Any:
    """processResponse: the `result` Argo's Prometheus provider hands the conditions, from
    the API's `data.result`: a float for a scalar, a list of floats for a vector, every
    sample of every series for a matrix (range queries)."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return float(result[1])  # scalar: [time, "value"]
    if isinstance(result, list) and all(isinstance(d, dict) and "value" in d for d in result):
        return [float(d["value"][1]) for d in result]
    if isinstance(result, list) and all(isinstance(d, dict) and "values" in d for d in result):
        return [float(v) for d in result for _, v in d["values"]]
    raise ValueError("Prometheus metric type not supported")


def query_prometheus(
    address: str, promql: str, window: tuple[float, float, float] | None = None
) -> Any:
    """One query, as Argo's provider makes it: an instant query at now, or with `window`
    (start, end as Unix seconds, step in seconds) a range query. One attempt, bounded by the
    provider's default timeout (30 s): a failure is the measurement's Error, retried by the
    run 10 s later (no retries inside the client)."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    prom = PrometheusConnect(
        url=address.rstrip("/"), disable_ssl=True, retry=Retry(total=0), timeout=30
    )
    if window is None:
        return process_response(prom.custom_query(query=promql, params={"timeout": "30s"}))
    start, end, step = window
    data = prom.custom_query_range(
        query=promql, start_time=_dt(start), end_time=_dt(end), step=f"{step:g}"
    )  # seconds, as a float
    return process_response(data)


def _dt(unix_s: float):
    import datetime as dt

    return dt.datetime.fromtimestamp(unix_s, tz=dt.UTC)


class Window(NamedTuple):
    start: float  # unix seconds
    end: float
    step: float  # seconds


class Measured(NamedTuple):
    phase: str  # Successful, Failed, Inconclusive, Error or CannotPredict
    value: Any
    message: str


def range_window(range_query: dict, time_scale: float = 1.0) -> Window:
    """executeQuery's range: start and end through EvalTime (durations divided by
    `time_scale` in rehearsals), step as a Go duration. Errors are the measurement's."""
    from pipeline.deploy.expr import eval_time

    window = []
    for key in ("start", "end"):
        try:
            window.append(eval_time(str(range_query.get(key, "")), time_scale))
        except ExprError as exc:
            raise ValueError(f"failed to parse rangeQuery.{key} as time: {exc}") from None
    try:
        step = go_duration(str(range_query.get("step", ""))) / time_scale
    except ValueError as exc:
        raise ValueError(f"failed to parse rangeQuery.step as duration: {exc}") from None
    return Window(window[0], window[1], step)


def measure(metric: Metric, query: Callable[[str, str], Any]) -> Measured:
    """One measurement's phase, value and message: Argo's EvaluateResult. No exception
    escapes: a failing query or condition is an Error, as in Argo; a condition outside the
    modelled language is CannotPredict."""
    if metric.unsupported:
        return Measured(CANNOT_PREDICT, None, metric.unsupported)
    window = None
    if metric.range_query is not None:
        try:
            window = range_window(*metric.range_query)
        except Unsupported as exc:
            return Measured(CANNOT_PREDICT, None, f"cannot predict: {exc}")
        except ValueError as exc:  # executeQuery's own wording
            return Measured("Error", None, str(exc))
    try:
        value = query(metric.address, metric.query, *([window] if window else []))
    except Exception as exc:  # any provider failure is a measurement Error, as in Argo
        return Measured("Error", None, f"query failed: {exc}")
    try:
        ok = compile_condition(metric.success)(value) if metric.success else False
        bad = compile_condition(metric.failure)(value) if metric.failure else False
    except Unsupported as exc:
        return Measured(CANNOT_PREDICT, value, f"cannot predict: {exc}")
    except ExprError as exc:
        return Measured("Error", value, str(exc))
    except Exception as exc:  # a defect of this model: never a verdict (the fuzz test hunts it)
        return Measured(
            CANNOT_PREDICT, value, f"cannot predict: internal error {type(exc).__name__}: {exc}"
        )
    if not metric.success and not metric.failure:
        return Measured("Successful", value, "")
    if metric.success and not metric.failure:
        bad = not ok
    elif metric.failure and not metric.success:
        ok = not bad
    if bad:
        return Measured("Failed", value, "")
    return Measured("Successful" if ok else "Inconclusive", value, "")


def worst(results: list[MetricResult]) -> str:
    """assessRunStatus over completed metrics: the worst non-dry-run phase; CannotPredict
    outranks every verdict (the run's outcome is unknown)."""
    phases = [r.phase or "Successful" for r in results if not r.metric.dry_run]
    if CANNOT_PREDICT in phases:
        return CANNOT_PREDICT
    return max(phases, key=PHASES.index) if phases else "Successful"


def terminating(results: list[MetricResult], stop: threading.Event) -> bool:
    """IsTerminating: stopped, or a non-dry-run metric ended Failed, Error or Inconclusive."""
    ended = ("Failed", "Error", "Inconclusive", CANNOT_PREDICT)
    return stop.is_set() or any(r.phase in ended for r in results if not r.metric.dry_run)


def run_analysis(
    metrics: list[Metric],
    stop: threading.Event | None = None,
    on_measurement: Callable[[Measurement], None] | None = None,
    query: Callable[[str, str], Any] = query_prometheus,
) -> RunResult:
    """Measure every metric on its own schedule until the run ends (see module docstring).
    Setting `stop` terminates it as Argo does when a rollout moves on: no new measurement is
    taken, and metrics that run indefinitely end Successful."""
    stop = stop or threading.Event()
    start = time.monotonic()
    results = [MetricResult(m) for m in metrics]
    due = {id(r): start + r.metric.initial_delay_s for r in results}
    while True:
        ending = terminating(results, stop)
        for r in results:
            if r.phase is None:
                r.phase = r.assess(ending)
        running = [r for r in results if r.phase is None]
        if not running:
            break
        now = time.monotonic()
        ready = [r for r in running if due[id(r)] <= now]
        if not ready:
            stop.wait(min(due[id(r)] for r in running) - now)
            continue
        for r in ready:
            phase, value, message = measure(r.metric, query)
            at = round(now - start, 2)
            m = Measurement(
                r.metric.name,
                len(r.measurements) + 1,
                at,
                phase,
                value,
                message,
                r.metric.interval_s,
            )
            r.record(m)
            due[id(r)] = time.monotonic() + r.due_after()
            if on_measurement:
                on_measurement(m)
            r.phase = r.assess(False)
    return RunResult(worst(results), results, round(time.monotonic() - start, 2))


def show(m: Measurement) -> str:
    value = m.value
    if isinstance(value, list):
        value = "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    elif isinstance(value, float):
        value = f"{value:.4g}"
    tail = f"  {m.message}" if m.message else ""
    return f"  +{m.at_s:7.1f}s  {m.metric:<28} #{m.index:<2} {value!s:<14} {m.phase}{tail}"


def parse_args_list(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--arg {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def analyze(args: argparse.Namespace) -> int:
    source = Path(args.template)
    template = find_template(load_objects(source), args.name, str(source))
    values = resolve_args(template, parse_args_list(args.arg))
    name = template["metadata"]["name"]
    try:
        metrics = metrics_of(template, values, args.prometheus, args.time_scale)
    except InvalidSpec as exc:
        print(f"analysis {name}: Error (analysis spec invalid: {exc})")
        return EXIT_CODES["Error"]
    print(f"analysis {name}: {len(metrics)} metrics against {metrics[0].address}", flush=True)
    result = run_analysis(metrics, on_measurement=lambda m: print(show(m), flush=True))
    detail = f" ({result.message})" if result.message else ""
    print(f"analysis {name}: {result.phase} after {result.seconds:.1f}s{detail}")
    return EXIT_CODES[result.phase]


@command(
    "analyze",
    help="run an AnalysisTemplate against Prometheus with Argo Rollouts' semantics",
    args=[
        arg("template", help="a kustomization directory or a rendered YAML file"),
        arg("--name", help="which AnalysisTemplate, when there are several"),
        arg("--prometheus", help="Prometheus URL (default: the template's address)"),
        arg("--arg", action="append", metavar="NAME=VALUE", help="template arg"),
        arg(
            "--time-scale",
            type=float,
            default=1.0,
            help="divide intervals, delays and PromQL windows by this (rehearsals)",
        ),
    ],
)
def main(args: argparse.Namespace) -> int:
    """Bad input (no such template or argument, not YAML) exits 5, apart from the phases."""
    import sys

    try:
        return analyze(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
