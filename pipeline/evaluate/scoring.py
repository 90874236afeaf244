"""Metric functions: pure, over lists of predictions and references."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

PRIMARY = {"classify": "accuracy", "extract": "exact_match", "title": "rouge_l"}


def metric_functions() -> dict[str, tuple[str, Callable, Callable | None]]:
    """`task.metric` -> (task, corpus function, per-example function or None). A per-example
    function lets a bootstrap resample scores instead of re-scoring the corpus."""
    return {
        "classify.accuracy": ("classify", exact_match, exact_match_scores),
        "extract.exact_match": ("extract", exact_match, exact_match_scores),
        "title.rouge_l": ("title", rouge_l, rouge_l_scores),
        "title.bleu": ("title", bleu, None),
        "title.chrf": ("title", chrf, None),
    }


def normalize(text: str) -> str:
    """Compare answers ignoring surrounding whitespace and a trailing full stop."""
    return text.strip().rstrip("。.").strip()


def exact_match_scores(predictions: list[str], references: list[str]) -> list[float]:
    """1.0 where the answer matches the reference, else 0.0."""
    return [
        float(normalize(p) == normalize(r)) for p, r in zip(predictions, references, strict=True)
    ]


def exact_match(predictions: list[str], references: list[str]) -> float:
    scores = exact_match_scores(predictions, references)
    return statistics.fmean(scores) if scores else 0.0


class _CharTokenizer:
    """rouge_score's default tokenizer drops non-ASCII text; Chinese is scored per character."""

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


def rouge_l_scores(predictions: list[str], references: list[str]) -> list[float]:
    """ROUGE-L F1 over characters, per example."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CharTokenizer())
    return [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 over characters."""
    scores = rouge_l_scores(predictions, references)
    return statistics.fmean(scores) if scores else 0.0


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu, Chinese tokenisation), 0-100."""
    import sacrebleu

    if not references:
        return 0.0
    return sacrebleu.corpus_bleu(predictions, [references], tokenize="zh").score


def chrf(predictions: list[str], references: list[str]) -> float:
    import sacrebleu

    if not references:
        return 0.0
    return sacrebleu.corpus_chrf(predictions, [references]).score


def task_metrics(task: str, predictions: list[str], references: list[str]) -> dict[str, float]:
    """The metrics reported for one task."""
    out: dict[str, float] = {"n": len(references)}
    if task == "classify":
        out["accuracy"] = exact_match(predictions, references)
    elif task == "extract":
        out["exact_match"] = exact_match(predictions, references)
    elif task == "title":
        out["rouge_l"] = rouge_l(predictions, references)
        out["bleu"] = bleu(predictions, references)
        out["chrf"] = chrf(predictions, references)
    elif task == "instruct":  # added instruction data (llmops data add): free-form answers
        out["exact_match"] = exact_match(predictions, references)
        out["rouge_l"] = rouge_l(predictions, references)
        out["chrf"] = chrf(predictions, references)
    return {k: round(v, 4) for k, v in out.items()}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]
