"""Compare two evaluations of the same examples: paired bootstrap intervals of the delta.

Both sides are rows of metrics/predictions.jsonl (`id`, `task`, `reference`, `prediction`,
slice fields). Rows are paired by `id`; only examples both sides scored are compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.evaluate.scoring import metric_functions


@dataclass(frozen=True)
class Delta:
    """candidate - baseline on `n` paired examples, with a bootstrap interval."""

    metric: str
    n: int
    baseline: float
    candidate: float
    delta: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @property
    def regressed(self) -> bool:
        """The whole interval lies below zero."""
        return self.high < 0

    @property
    def improved(self) -> bool:
        return self.low > 0


def paired(candidate: list[dict], baseline: list[dict], task: str) -> tuple[list[dict], list[dict]]:
    """The rows of `task` that both sides have, in the same order."""
    base = {r["id"]: r for r in baseline if r["task"] == task}
    cand = [r for r in candidate if r["task"] == task and r["id"] in base]
    return cand, [base[r["id"]] for r in cand]


def bootstrap_delta(
    metric: str,
    candidate: list[dict],
    baseline: list[dict],
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Delta | None:
    """Paired bootstrap of `metric` (e.g. `classify.accuracy`): resample the paired examples
    with replacement, score both sides on each resample, take the percentile interval of the
    difference. None when no example is paired."""
    import numpy as np

    task, corpus_fn, example_fn = metric_functions()[metric]
    cand, base = paired(candidate, baseline, task)
    n = len(cand)
    if n == 0:
        return None
    refs = [r["reference"] for r in cand]
    cand_pred = [r["prediction"] for r in cand]
    base_pred = [r["prediction"] for r in base]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(samples, n))
    if example_fn is not None:
        c = np.asarray(example_fn(cand_pred, refs))
        b = np.asarray(example_fn(base_pred, refs))
        point = float(c.mean() - b.mean())
        cand_score, base_score = float(c.mean()), float(b.mean())
        deltas = (c[idx] - b[idx]).mean(axis=1)
    else:
        cand_score, base_score = corpus_fn(cand_pred, refs), corpus_fn(base_pred, refs)
        point = cand_score - base_score
        deltas = np.array(
            [
                corpus_fn([cand_pred[i] for i in row], [refs[i] for i in row])
                - corpus_fn([base_pred[i] for i in row], [refs[i] for i in row])
                for row in idx
            ]
        )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return Delta(metric, n, base_score, cand_score, point, float(low), float(high))


def slice_deltas(
    candidate: list[dict],
    baseline: list[dict],
    dimensions: list[str],
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[dict]:
    """The primary metric of each task, per slice value of each dimension (e.g. category)."""
    from pipeline.evaluate.scoring import PRIMARY

    out = []
    for task, name in PRIMARY.items():
        for dim in dimensions:
            values = sorted({str(r.get(dim)) for r in candidate if r["task"] == task})
            for value in values:
                sub_c = [r for r in candidate if r["task"] == task and str(r.get(dim)) == value]
                d = bootstrap_delta(f"{task}.{name}", sub_c, baseline, samples, confidence, seed)
                if d is not None:
                    out.append({"task": task, "slice": f"{dim}={value}", **d.as_dict()})
    return out
