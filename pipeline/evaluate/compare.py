"""Compare two evaluations of the same examples: paired bootstrap intervals of the delta.

Both sides are rows of metrics/predictions.jsonl (`id`, `task`, `reference`, `prediction`,
slice fields). Rows are paired by `id`; only examples both sides scored are compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.evaluate.scoring import METRICS, group_of, split_metric


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


def paired(
    candidate: list[dict], baseline: list[dict], group: str
) -> tuple[list[dict], list[dict]]:
    """The rows of `group` (a task, or `sources.<source>`) both sides have, in one order."""
    base = {r["id"]: r for r in baseline if group_of(r) == group}
    cand = [r for r in candidate if group_of(r) == group and r["id"] in base]
    return cand, [base[r["id"]] for r in cand]


def as_baseline(rows: list[dict]) -> list[dict]:
    """Prediction rows with the cheap baseline's answers as their predictions."""
    return [
        r | {"prediction": r["baseline_prediction"]} for r in rows if "baseline_prediction" in r
    ]


def versus_baseline(
    metric: str, rows: list[dict], samples: int = 1000, confidence: float = 0.95
) -> Delta | None:
    """Fine-tuned - baseline on `metric`, paired on every example both answered."""
    return bootstrap_delta(metric, rows, as_baseline(rows), samples, confidence)


def verdict(d: Delta) -> str:
    """In words: `beats` (the whole interval above zero), `loses` (below), else `ties`."""
    return "beats" if d.improved else "loses" if d.regressed else "ties"


def bootstrap_delta(
    metric: str,
    candidate: list[dict],
    baseline: list[dict],
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Delta | None:
    """Paired bootstrap of `metric` (e.g. `classify.accuracy`, `sources.news.macro_f1`):
    resample the paired examples with replacement, score both sides on each resample, take
    the percentile interval of the difference. None when no example is paired."""
    import numpy as np

    group, name = split_metric(metric)
    corpus_fn, example_fn = METRICS[name].corpus, METRICS[name].per_example
    cand, base = paired(candidate, baseline, group)
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
    kinds: dict[str, str] | None = None,
) -> list[dict]:
    """The primary metric of each group, per slice value of each dimension (e.g. category).
    An added dataset's kind is read from `kinds` ({group: kind}, eval.json's), else taken as
    free-form."""
    from pipeline.evaluate.scoring import FREE, TASK_KINDS, primary

    out = []
    for group in sorted({group_of(r) for r in candidate}):
        name = primary(TASK_KINDS.get(group) or (kinds or {}).get(group, FREE))
        rows = [r for r in candidate if group_of(r) == group]
        for dim in dimensions:
            for value in sorted({str(r.get(dim)) for r in rows}):
                sub_c = [r for r in rows if str(r.get(dim)) == value]
                d = bootstrap_delta(f"{group}.{name}", sub_c, baseline, samples, confidence, seed)
                if d is not None:
                    out.append({"task": group, "slice": f"{dim}={value}", **d.as_dict()})
    return out


@dataclass(frozen=True)
class Standing:
    """One metric of one group: the untuned base, the fine-tuned model and the baseline, with
    the interval of (fine-tuned - baseline) for the group's primary metric."""

    group: str
    metric: str
    primary: bool
    base: float | None
    finetuned: float
    baseline: float | None
    method: str | None  # how the baseline answered (pipeline/evaluate/baseline.py)
    versus: Delta | None

    @property
    def verdict(self) -> str | None:
        return verdict(self.versus) if self.versus else None


def standings(
    metrics: dict, rows: list[dict], samples: int = 1000, confidence: float = 0.95
) -> list[Standing]:
    """Every scored metric of every group in eval.json, primary metric first per group."""
    from pipeline.evaluate.scoring import KINDS, group_entry, groups, kind_of

    out = []
    for group in groups(metrics):
        entry = group_entry(metrics, group) or {}
        base = group_entry(metrics.get("base", {}), group) or {}
        baseline = group_entry(metrics.get("baseline", {}), group) or {}
        for i, name in enumerate(KINDS[kind_of(entry)]):
            if name not in entry:
                continue
            versus = (
                versus_baseline(f"{group}.{name}", rows, samples, confidence)
                if i == 0 and baseline
                else None
            )
            out.append(
                Standing(
                    group=group,
                    metric=name,
                    primary=i == 0,
                    base=base.get(name),
                    finetuned=entry[name],
                    baseline=baseline.get(name),
                    method=baseline.get("method"),
                    versus=versus,
                )
            )
    return out
