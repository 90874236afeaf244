"""Metric functions and the one registry of what each kind of answer is scored with.

Every evaluated group (a notice task, or an added dataset by `source`) has a kind of answer;
`KINDS` lists its metrics, primary first, and `METRICS` says how each is computed. The
evaluation, the gate, the slices, the summary and the PR report all read these two tables, so
a new metric is one entry here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

Scores = Callable[[list[str], list[str]], float]


@dataclass(frozen=True)
class Metric:
    corpus: Scores
    # one score per example lets a bootstrap resample scores instead of re-scoring the corpus
    per_example: Callable[[list[str], list[str]], list[float]] | None = None


# label: answers from a small label set; free: free-form text
LABEL, FREE = "label", "free"
KINDS: dict[str, tuple[str, ...]] = {
    LABEL: ("accuracy", "macro_f1"),
    "extract": ("exact_match",),
    "title": ("rouge_l", "bleu", "chrf"),
    FREE: ("rouge_l", "exact_match", "chrf"),
}
TASK_KINDS = {"classify": LABEL, "extract": "extract", "title": "title"}
SOURCES = "sources"  # eval.json's section of added datasets, one entry per `source`


def primary(kind: str) -> str:
    return KINDS[kind][0]


def kind_of(entry: dict) -> str:
    """The kind of answer a group's metrics (an eval.json entry) were scored as: the first
    kind that scores every metric the entry has, its primary one included."""
    names = {k for k in entry if k in METRICS}
    for kind, metrics in KINDS.items():
        if metrics[0] in names and names <= set(metrics):
            return kind
    raise ValueError(f"no kind of answer is scored with {sorted(names)}")


def group_of(record: dict) -> str:
    """The evaluation group of an eval record or prediction row: its task for the notices,
    `sources.<source>` for added instruction data (every dataset scored on its own)."""
    if "group" in record:
        return record["group"]
    if record["task"] in TASK_KINDS:
        return record["task"]
    return f"{SOURCES}.{record.get('source') or 'unknown'}"


def split_metric(path: str) -> tuple[str, str]:
    """`classify.accuracy` -> (`classify`, `accuracy`); `sources.a.b.macro_f1` ->
    (`sources.a.b`, `macro_f1`): a source name may contain dots, a metric name never does."""
    group, _, name = path.rpartition(".")
    return group, name


def group_entry(metrics: dict, group: str) -> dict | None:
    """The metrics of `group` in an eval.json-shaped dict (or its `base` / `baseline`)."""
    if group.startswith(f"{SOURCES}."):
        return metrics.get(SOURCES, {}).get(group[len(SOURCES) + 1 :])
    return metrics.get(group)


def entry_of(metrics: dict, group: str) -> dict:
    """group_entry of a group that is there (a KeyError names it otherwise)."""
    entry = group_entry(metrics, group)
    if entry is None:
        raise KeyError(group)
    return entry


def groups(metrics: dict) -> list[str]:
    """Every group an eval.json-shaped dict scores, notice tasks first."""
    return [t for t in TASK_KINDS if isinstance(metrics.get(t), dict)] + [
        f"{SOURCES}.{s}" for s in sorted(metrics.get(SOURCES, {}))
    ]


def kinds_of(metrics: dict) -> dict[str, str]:
    """{group: kind} of every group an eval.json-shaped dict scores."""
    return {g: TASK_KINDS.get(g) or kind_of(group_entry(metrics, g) or {}) for g in groups(metrics)}


def label_set(answers: list[str], max_labels: int) -> list[str] | None:
    """The labels when `answers` (a group's training answers) come from a small set: at most
    `max_labels` distinct answers, each seen at least twice; else None (free-form)."""
    counts: dict[str, int] = {}
    for a in answers:
        counts[normalize(a)] = counts.get(normalize(a), 0) + 1
    if not 2 <= len(counts) <= max_labels or min(counts.values()) < 2:
        return None
    return sorted(counts)


def confusion_pairs(rows: list[dict], group: str) -> list[tuple[str, str]]:
    """(actual, predicted) of each prediction row of one classification group; an empty
    answer is `(empty)`."""
    return [
        (normalize(r["reference"]), normalize(r["prediction"]) or "(empty)")
        for r in rows
        if group_of(r) == group
    ]


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


def class_table(predictions: list[str], references: list[str]) -> dict[str, dict[str, float]]:
    """Per label of the references: precision, recall, F1 and support (`n`). An answer outside
    the label set counts against the true label's recall and no label's precision."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted({normalize(r) for r in references})
    if not labels:
        return {}
    precision, recall, f1, support = precision_recall_fscore_support(
        [normalize(r) for r in references],
        [normalize(p) for p in predictions],
        labels=labels,
        zero_division=0,
    )
    return {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "n": int(n)}
        for label, p, r, f, n in zip(labels, precision, recall, f1, support, strict=True)
    }


def macro_f1(predictions: list[str], references: list[str]) -> float:
    """Unweighted mean F1 over the labels the references hold: a rare class counts as much
    as a common one, which accuracy hides."""
    table = class_table(predictions, references)
    return statistics.fmean(c["f1"] for c in table.values()) if table else 0.0


METRICS: dict[str, Metric] = {
    "accuracy": Metric(exact_match, exact_match_scores),
    "macro_f1": Metric(macro_f1),
    "exact_match": Metric(exact_match, exact_match_scores),
    "rouge_l": Metric(rouge_l, rouge_l_scores),
    "bleu": Metric(bleu),
    "chrf": Metric(chrf),
}


def kind_metrics(kind: str, predictions: list[str], references: list[str]) -> dict[str, float]:
    """The metrics of one group of answers of `kind` (a key of KINDS), with its size `n`."""
    out: dict[str, float] = {"n": len(references)}
    for name in KINDS[kind]:
        out[name] = round(METRICS[name].corpus(predictions, references), 4)
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]
