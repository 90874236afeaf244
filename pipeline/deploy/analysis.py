"""`llmops analyze`: run an Argo Rollouts AnalysisTemplate against a Prometheus server.

Run: llmops analyze manifests/overlays/production --name vllm-canary-step \
        --prometheus http://127.0.0.1:9090 --arg canary-hash=abc --arg stable-hash=def \
        --arg namespace=serving

TEMPLATE is a directory that `kubectl kustomize` renders, or a YAML file (such as its output).
The semantics are Argo Rollouts' own (v1.8, `analysis/analysis.go`, `utils/evaluate`):
- each metric takes a measurement after `initialDelay`, then every `interval`, `count` times
  (no count and no interval: once; no count with an interval: until the run is stopped);
- a measurement is Failed when failureCondition holds (or, with only a successCondition, when
  it does not), Successful when successCondition holds, Inconclusive when neither does, and
  Error when the query or a condition fails;
- a metric is Failed once failures > failureLimit (default 0), Inconclusive once inconclusive
  measurements > inconclusiveLimit (default 0), Error once consecutive errors >
  consecutiveErrorLimit (default 4), else Successful when its count is reached;
- the first metric that ends Failed, Error or Inconclusive stops the whole run; the run's phase
  is the worst of its metrics (Successful < Inconclusive < Error < Failed).
A Prometheus vector is `result` as a list of floats, a scalar as a float.

Exit codes: 0 Successful, 1 Failed, 2 Inconclusive, 3 Error.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.deploy.expr import ExprError, compile_condition
from pipeline.io import UserError

PHASES = ("Successful", "Inconclusive", "Error", "Failed")  # worst last
EXIT_CODES = {"Successful": 0, "Failed": 1, "Inconclusive": 2, "Error": 3}
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
RANGE = re.compile(r"\[(\d+(?:ms|s|m|h))(?::(\d+(?:ms|s|m|h))?)?\]")


def seconds(text: str | None, where: str) -> float:
    """A Go duration ("1m", "30s", "1h30m", "500ms") in seconds."""
    if text in (None, ""):
        return 0.0
    parts = DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise UserError(f"{where}: {text!r} is not a duration like 30s, 1m or 1h30m")
    return sum(float(n) * UNIT_S[u] for n, u in parts)


def promql_duration(s: float) -> str:
    return f"{max(1, round(s))}s"


@dataclass
class Metric:
    name: str
    query: str
    address: str
    interval_s: float = 0.0
    initial_delay_s: float = 0.0
    count: int | None = 1  # None: until the run is stopped
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT
    success: str | None = None
    failure: str | None = None


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
    metric: Metric
    measurements: list[Measurement] = field(default_factory=list)
    phase: str | None = None  # None while running
    message: str = ""

    def tally(self, phase: str) -> int:
        return sum(m.phase == phase for m in self.measurements)

    def consecutive_errors(self) -> int:
        n = 0
        for m in reversed(self.measurements):
            if m.phase != "Error":
                break
            n += 1
        return n

    def assess(self, terminating: bool) -> str | None:
        """Argo's assessMetricStatus: the metric's phase now, or None while it runs on."""
        met = self.metric
        if not self.measurements:
            return "Successful" if terminating else None
        if self.tally("Failed") > met.failure_limit >= 0:
            self.message = f"failed ({self.tally('Failed')}) > failureLimit ({met.failure_limit})"
            return "Failed"
        if self.tally("Inconclusive") > met.inconclusive_limit >= 0:
            n = self.tally("Inconclusive")
            self.message = f"inconclusive ({n}) > inconclusiveLimit ({met.inconclusive_limit})"
            return "Inconclusive"
        if self.consecutive_errors() > met.consecutive_error_limit:
            n, limit = self.consecutive_errors(), met.consecutive_error_limit
            self.message = f"consecutiveErrors ({n}) > consecutiveErrorLimit ({limit})"
            return "Error"
        if met.count is not None and len(self.measurements) >= met.count:
            self.message = f"count ({met.count}) reached"
            return "Successful"
        return "Successful" if terminating else None


@dataclass
class RunResult:
    phase: str
    metrics: list[MetricResult]
    seconds: float

    @property
    def message(self) -> str:
        worst = [r for r in self.metrics if r.phase == self.phase and r.phase != "Successful"]
        return "; ".join(f"{r.metric.name}: {r.message}" for r in worst)


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


def metrics_of(
    template: dict,
    args: dict[str, str],
    prometheus: str | None = None,
    time_scale: float = 1.0,
    min_window_s: float = 4.0,
) -> list[Metric]:
    """The template's metrics with args filled in. `prometheus` replaces every provider address;
    `time_scale` > 1 compresses intervals, delays and PromQL range windows (a rehearsal)."""
    out = []
    for i, raw in enumerate(template["spec"]["metrics"]):
        where = f"metrics[{i}] ({raw.get('name')})"
        provider = raw.get("provider", {})
        if "prometheus" not in provider:
            raise UserError(f"{where}: only the prometheus provider can run here")
        query = substitute(provider["prometheus"]["query"], args)
        if time_scale != 1:
            query = RANGE.sub(lambda m: _scaled_range(m, time_scale, min_window_s), query)
        count = raw.get("count")
        count = int(substitute(str(count), args)) if count is not None else None
        interval = seconds(substitute(str(raw.get("interval", "")), args), f"{where}.interval")
        if not count:  # unset or 0: once without an interval, else until stopped
            count = None if interval else 1

        def limit(key: str, default: int, raw: dict = raw) -> int:
            value = raw.get(key)
            return default if value is None else int(substitute(str(value), args))

        out.append(
            Metric(
                name=raw["name"],
                query=query,
                address=prometheus or substitute(provider["prometheus"]["address"], args),
                interval_s=interval / time_scale,
                initial_delay_s=seconds(raw.get("initialDelay"), f"{where}.initialDelay")
                / time_scale,
                count=count,
                failure_limit=limit("failureLimit", 0),
                inconclusive_limit=limit("inconclusiveLimit", 0),
                consecutive_error_limit=limit(
                    "consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT
                ),
                success=substitute(raw["successCondition"], args)
                if raw.get("successCondition")
                else None,
                failure=substitute(raw["failureCondition"], args)
                if raw.get("failureCondition")
                else None,
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


def query_prometheus(address: str, promql: str, timeout_s: float = 10.0) -> Any:
    """A list of floats for an instant vector, a float for a scalar (as Argo hands `result`)."""
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=address.rstrip("/"), disable_ssl=True)
    data = prom.custom_query(query=promql, params={"timeout": f"{round(timeout_s)}s"})
    if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
        return float(data[1])  # scalar: [time, "value"]
    if isinstance(data, list) and all(isinstance(d, dict) and "value" in d for d in data):
        return [float(d["value"][1]) for d in data]
    raise ValueError("range vectors need rangeQuery, which templates here do not use")


def measure(metric: Metric, query: Callable[[str, str], Any]) -> tuple[str, Any, str]:
    """(phase, value, message) of one measurement: Argo's EvaluateResult."""
    try:
        value = query(metric.address, metric.query)
    except Exception as exc:  # any provider failure is a measurement Error, as in Argo
        return "Error", None, f"query failed: {exc}"
    try:
        ok = compile_condition(metric.success)(value) if metric.success else False
        bad = compile_condition(metric.failure)(value) if metric.failure else False
    except ExprError as exc:
        return "Error", value, f"condition: {exc}"
    if not metric.success and not metric.failure:
        return "Successful", value, ""
    if metric.success and not metric.failure:
        bad = not ok
    elif metric.failure and not metric.success:
        ok = not bad
    if bad:
        return "Failed", value, ""
    return ("Successful" if ok else "Inconclusive"), value, ""


def worst(phases: list[str]) -> str:
    return max(phases, key=PHASES.index) if phases else "Successful"


def run_analysis(
    metrics: list[Metric],
    stop: threading.Event | None = None,
    on_measurement: Callable[[Measurement], None] | None = None,
    query: Callable[[str, str], Any] = query_prometheus,
) -> RunResult:
    """Measure every metric on its own schedule until the run ends (see module docstring).
    Setting `stop` terminates it as Argo does when a rollout moves on: metrics that run
    indefinitely end Successful."""
    stop = stop or threading.Event()
    start = time.monotonic()
    results = [MetricResult(m) for m in metrics]
    due = {id(r): start + r.metric.initial_delay_s for r in results}
    while True:
        terminating = stop.is_set() or any(
            r.phase in ("Failed", "Error", "Inconclusive") for r in results
        )
        for r in results:
            if r.phase is None:
                r.phase = r.assess(terminating)
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
            m = Measurement(r.metric.name, len(r.measurements) + 1, at, phase, value, message,
                            r.metric.interval_s)  # fmt: skip
            r.measurements.append(m)
            due[id(r)] = time.monotonic() + r.metric.interval_s
            if on_measurement:
                on_measurement(m)
            r.phase = r.assess(False)
    return RunResult(worst([r.phase or "Successful" for r in results]), results,
                     round(time.monotonic() - start, 2))  # fmt: skip


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


def main(args: argparse.Namespace) -> int:
    source = Path(args.template)
    template = find_template(load_objects(source), args.name, str(source))
    values = resolve_args(template, parse_args_list(args.arg))
    metrics = metrics_of(template, values, args.prometheus, args.time_scale)
    name = template["metadata"]["name"]
    print(f"analysis {name}: {len(metrics)} metrics against {metrics[0].address}", flush=True)
    result = run_analysis(metrics, on_measurement=lambda m: print(show(m), flush=True))
    detail = f" ({result.message})" if result.message else ""
    print(f"analysis {name}: {result.phase} after {result.seconds:.1f}s{detail}")
    return EXIT_CODES[result.phase]
