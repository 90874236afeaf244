"""vLLM's metric names, types, labels and buckets, so one PromQL works here and on vLLM.

Names and bucket bounds are those of vLLM 0.33 (`vllm/v1/metrics/loggers.py`); every engine
series carries `model_name` (the served model name) and `engine`. Counters are declared
without `_total`, which prometheus_client appends on export, as vLLM's do. The HTTP series
come from prometheus-fastapi-instrumentator itself, on this registry, as vLLM configures it
(pipeline/serve/server.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")


@dataclass
class EngineMetrics:
    registry: CollectorRegistry
    e2e: Histogram
    ttft: Histogram
    itl: Histogram
    success: Counter
    prompt_tokens: Counter
    generation_tokens: Counter
    running: Gauge
    waiting: Gauge
    kv_cache: Gauge

    labels: dict[str, str]

    def finished(self, reason: str) -> None:
        self.success.labels(**self.labels, finished_reason=reason).inc()


def engine_metrics(model_name: str, engine: str = "0") -> EngineMetrics:
    """A fresh registry with every series the canary analysis, alerts and dashboard read."""
    disable_created_metrics()  # as vLLM does: no `_created` series
    reg = CollectorRegistry()
    labels = ["model_name", "engine"]

    def hist(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=reg)

    def count(name: str, doc: str) -> Counter:
        return Counter(name, doc, labels, registry=reg)

    def gauge(name: str, doc: str) -> Gauge:
        return Gauge(name, doc, labels, registry=reg)

    m = EngineMetrics(
        registry=reg,
        e2e=hist(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            E2E_BUCKETS,
        ),
        ttft=hist(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            TTFT_BUCKETS,
        ),
        itl=hist(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            ITL_BUCKETS,
        ),
        success=Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*labels, "finished_reason"],
            registry=reg,
        ),
        prompt_tokens=count("vllm:prompt_tokens", "Number of prefill tokens processed."),
        generation_tokens=count("vllm:generation_tokens", "Number of generation tokens processed."),
        running=gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches."
        ),
        waiting=gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
        kv_cache=gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
        labels={"model_name": model_name, "engine": engine},
    )
    engine_series = (
        "e2e",
        "ttft",
        "itl",
        "prompt_tokens",
        "generation_tokens",
        "running",
        "waiting",
        "kv_cache",
    )
    for name in engine_series:
        setattr(m, name, getattr(m, name).labels(**m.labels))
    # every finished_reason is exported from the start (at 0), so rate() sees the first error
    for reason in FINISHED_REASONS:
        m.success.labels(**m.labels, finished_reason=reason)
    return m
