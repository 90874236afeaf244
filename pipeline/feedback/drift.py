"""Data drift: are recent production prompts still like the prompts the model was trained on?

Run: llmops drift --logs logs/requests.jsonl   (exit 1 on drift, 0 otherwise, 2 on bad input)

The reference is the index stage's `prompts` collection (data/index/, one embedding per
training prompt). The most recent `drift.max_samples` prompts of the request logs are embedded
with the same model; both are projected onto the reference's first `drift.components`
principal components, and on each component we compute
- PSI (population stability index) over `drift.bins` bins cut at the reference's quantiles;
- the two-sample Kolmogorov-Smirnov test (scipy), p-values Bonferroni-corrected over components.
Verdict: `drift` when the aggregate PSI (mean or max over components) exceeds
`drift.psi_threshold`, or when a component's corrected KS p-value is below `drift.ks_pvalue`
with a statistic above `drift.ks_statistic` (an effect, not only a large sample);
`insufficient_data` under `drift.min_samples` prompts; else `ok`.

Outputs: metrics/drift.json, and metrics/drift.prom, the same figures in Prometheus text
exposition: the gauge `llm_data_drift_psi{namespace=...}` the LLMDataDrift alert
(manifests/base/monitoring/prometheusrule.yaml) and the dashboard read. It reaches Prometheus
either as a file for node-exporter's textfile collector (`--prom` into its directory) or by
`--pushgateway URL` (grouping key job + namespace); either way the scrape needs
`honorLabels: true` so the `namespace` written here is kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.config import DriftParams, load_params
from pipeline.data.index import PROMPTS, embed, indexed_collection, load_encoder
from pipeline.feedback.logs import read_logs
from pipeline.io import UserError, write_json
from pipeline.paths import INDEX_DIR

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

DRIFT, OK, INSUFFICIENT = "drift", "ok", "insufficient_data"
EXIT = {DRIFT: 1, OK: 0, INSUFFICIENT: 0}
JOB = "llm-data-drift"  # Pushgateway job name


def psi(reference: np.ndarray, current: np.ndarray, bins: int, floor: float = 1e-4) -> float:
    """Population stability index of `current` against `reference` (1-D), with bins cut at
    the reference's quantiles, so each holds ~1/bins of it; empty bins count as `floor`."""
    import numpy as np

    edges = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=bins)
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=bins)
    e = np.maximum(expected / len(reference), floor)
    a = np.maximum(actual / len(current), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def principal_components(reference: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, the first k principal axes as rows) of the reference embeddings."""
    import numpy as np

    mean = reference.mean(axis=0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    return mean, vt[: min(k, vt.shape[0])]


def compare(reference: np.ndarray, current: np.ndarray, p: DriftParams) -> dict:
    """Per-component PSI and KS of `current` vs `reference` embeddings, the aggregate and the
    verdict against `p`. Pure: no files, no model."""
    from scipy.stats import ks_2samp

    n = len(current)
    result: dict = {
        "n": n,
        "n_reference": len(reference),
        "thresholds": {
            "aggregate": p.aggregate,
            "psi": p.psi_threshold,
            "ks_pvalue": p.ks_pvalue,
            "ks_statistic": p.ks_statistic,
            "min_samples": p.min_samples,
            "bins": p.bins,
        },
    }
    if n < p.min_samples:
        return {
            **result,
            "verdict": INSUFFICIENT,
            "reason": f"{n} prompts, fewer than {p.min_samples} (params.yaml:drift.min_samples)",
        }
    mean, axes = principal_components(reference, p.components)
    ref_proj, cur_proj = (reference - mean) @ axes.T, (current - mean) @ axes.T
    components, reasons = [], []
    for j in range(axes.shape[0]):
        ks = ks_2samp(ref_proj[:, j], cur_proj[:, j])
        p_corrected = min(1.0, float(ks.pvalue) * axes.shape[0])
        components.append(
            {
                "component": j + 1,
                "psi": round(psi(ref_proj[:, j], cur_proj[:, j], p.bins), 6),
                "ks_statistic": round(float(ks.statistic), 6),
                "ks_pvalue": p_corrected,
            }
        )
        if p_corrected < p.ks_pvalue and ks.statistic > p.ks_statistic:
            reasons.append(
                f"component {j + 1}: KS statistic {ks.statistic:.3f} > {p.ks_statistic}, "
                f"p {p_corrected:.2g} < {p.ks_pvalue}"
            )
    values = [c["psi"] for c in components]
    aggregate = max(values) if p.aggregate == "max" else sum(values) / len(values)
    if aggregate > p.psi_threshold:
        reasons.insert(0, f"{p.aggregate} PSI {aggregate:.3f} > {p.psi_threshold}")
    return {
        **result,
        "components": components,
        "psi": round(aggregate, 6),
        "ks_statistic_max": max(c["ks_statistic"] for c in components),
        "verdict": DRIFT if reasons else OK,
        "reason": "; ".join(reasons) or "within thresholds",
    }


def reference_embeddings(index_dir: Path) -> tuple[np.ndarray, str]:
    """(the training-prompt embeddings, the model that made them) from the index."""
    import numpy as np

    collection = indexed_collection(index_dir, PROMPTS)
    got = collection.get(include=["embeddings"])
    if len(got["ids"]) == 0:
        raise UserError(f"{index_dir}: the `{PROMPTS}` collection is empty; run `dvc repro index`")
    return np.asarray(got["embeddings"], dtype=np.float32), collection.metadata["model"]


def recent_prompts(log_paths: list[str], max_samples: int) -> tuple[list[str], list[str]]:
    """(the newest `max_samples` prompts by `time`, the problems found); a bad line is
    reported and skipped. A time without a zone is taken as UTC."""
    from datetime import datetime, timezone

    def when(record: dict) -> datetime:
        t = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    records, errors = read_logs(log_paths)
    records.sort(key=when)
    return [r["prompt"] for r in records[-max_samples:]], [str(e) for e in errors]


def detect(
    log_paths: list[str],
    p: DriftParams,
    index_dir: Path = INDEX_DIR,
    encoder: SentenceTransformer | None = None,
) -> dict:
    """Everything `llmops drift` decides, as the dict written to metrics/drift.json."""
    reference, model = reference_embeddings(index_dir)
    prompts, problems = recent_prompts(log_paths, p.max_samples)
    current = embed(encoder or load_encoder(model), prompts) if prompts else reference[:0]
    result = compare(reference, current, p)
    return {
        **result,
        "model": model,
        "logs": sorted(map(str, log_paths)),
        "skipped_lines": len(problems),
        "problems": problems[:20],
    }


def prometheus_registry(result: dict, namespace: str):
    """The verdict as gauges: llm_data_drift_psi (absent without a verdict, so no alert
    fires on too little data), the max KS statistic, samples, drift 0/1, and when."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float | None) -> None:
        g = Gauge(name, doc, ["namespace"], registry=registry)
        if value is not None:
            g.labels(namespace=namespace).set(value)

    psi_doc = "PSI of recent prompts vs training prompts, over principal components"
    gauge("llm_data_drift_psi", psi_doc, result.get("psi"))
    ks_doc = "largest two-sample KS statistic over principal components"
    gauge("llm_data_drift_ks_statistic", ks_doc, result.get("ks_statistic_max"))
    gauge("llm_data_drift_samples", "recent prompts compared", result["n"])
    gauge("llm_data_drift_detected", "1 when llmops drift found drift", result["verdict"] == DRIFT)
    gauge("llm_data_drift_last_run_timestamp_seconds", "when llmops drift ran", time.time())
    return registry


@command(
    "drift",
    help="compare recent request-log prompts with the training prompts; exit 1 on drift",
    args=[
        arg("--logs", nargs="+", required=True, help="request logs (.jsonl/dirs)"),
        arg("--index", default=str(paths.INDEX_DIR), help="the Chroma index"),
        arg("--out", default=str(paths.DRIFT_METRICS), help="verdict (JSON)"),
        arg("--prom", default=str(paths.DRIFT_PROM), help="Prometheus text file"),
        arg("--namespace", help="`namespace` label (default: $POD_NAMESPACE)"),
        arg("--pushgateway", help="also push the gauges to this Pushgateway URL"),
    ],
)
def main(args: argparse.Namespace) -> int:
    from prometheus_client import push_to_gateway, write_to_textfile

    p = load_params().drift
    result = detect(args.logs, p, Path(args.index))
    for problem in result["problems"]:
        print(f"skipped: {problem}", file=sys.stderr)
    if result["skipped_lines"] > len(result["problems"]):
        print(f"... {result['skipped_lines']} bad lines in all", file=sys.stderr)
    write_json(Path(args.out), result)
    namespace = args.namespace or os.environ.get("POD_NAMESPACE") or "default"
    registry = prometheus_registry(result, namespace)
    Path(args.prom).parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(args.prom, registry)
    if args.pushgateway:
        try:
            push_to_gateway(
                args.pushgateway, job=JOB, registry=registry, grouping_key={"namespace": namespace}
            )
        except OSError as exc:
            raise UserError(
                f"Pushgateway at {args.pushgateway}: push failed ({exc}); the verdict is in"
                f" {args.out} and {args.prom}: rerun once the Pushgateway is reachable"
            ) from None
    figures = (
        f"PSI {result['psi']:.3f} ({p.aggregate} of {len(result['components'])} components), "
        f"max KS {result['ks_statistic_max']:.3f}; "
        if "psi" in result
        else ""
    )
    print(
        f"drift: {result['verdict'].upper()}: {result['reason']}; {figures}"
        f"{result['n']} prompts vs {result['n_reference']} training prompts, "
        f"{result['skipped_lines']} bad line(s) skipped -> {args.out}, {args.prom}"
    )
    if result["verdict"] == DRIFT:
        print("drift: sample these prompts for labelling and retrain", file=sys.stderr)
    return EXIT[result["verdict"]]
