"""Score the fine-tuned model, the untuned base and a cheap baseline on the eval split.

Run: dvc repro evaluate   (or: llmops evaluate)

Batched, left-padded greedy generation. Every group is scored on its own: each notice task,
and each added dataset by `source` (never pooled). A group whose training answers come from a
small label set (at most params.evaluate.max_labels) is scored as classification (accuracy,
macro-F1, a per-class table, a confusion plot). Writes metrics/eval.json shaped
`{"<task>": {...}, "sources": {"<source>": {...}}, "base": {same}, "baseline": {same},
"slices": {...}, "behaviour": {...}, "latency": {...}}`, every prediction (the base's and the
baseline's beside it, with its slice fields) to metrics/predictions.jsonl so changes can be
diffed example by example, the behavioural cases to metrics/behaviour.jsonl, and one
confusion CSV per classification group to plots/confusion/.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.config import EvaluateParams, load_params
from pipeline.data.records import task_records
from pipeline.data.schema import load_notices
from pipeline.evaluate.baseline import baseline_predictions
from pipeline.evaluate.behaviour import invariance_cases
from pipeline.evaluate.scoring import (
    FREE,
    LABEL,
    SOURCES,
    TASK_KINDS,
    class_table,
    confusion_pairs,
    entry_of,
    group_of,
    groups,
    kind_metrics,
    kind_of,
    label_set,
    normalize,
    percentile,
    primary,
)
from pipeline.io import atomic_write_text, read_jsonl, run_stage, write_json, write_jsonl
from pipeline.modeling import Generations, answer_nll, generate, load_model, load_tokenizer
from pipeline.paths import (
    ADAPTER_DIR,
    BASE_DIR,
    BEHAVIOUR_DIR,
    BEHAVIOUR_RESULTS,
    CONFUSION_DIR,
    EVAL_FILE,
    EVAL_METRICS,
    PREDICTIONS,
    TRAIN_FILE,
)

SLICE_DIMENSIONS = ("category", "length", "source")


def length_bucket(record: dict, edges: list[int]) -> str:
    """Slice label for the length of the user prompt in characters, e.g. '<100', '100-139'."""
    n = sum(len(m["content"]) for m in record["prompt"])
    lower = 0
    for edge in edges:
        if n < edge:
            return f"<{edge}" if lower == 0 else f"{lower}-{edge - 1}"
        lower = edge
    return f">={lower}"


def reference(record: dict) -> str:
    return record["completion"][0]["content"]


def answer_kinds(train: list[dict], evals: list[dict], max_labels: int) -> dict[str, str]:
    """{group: kind} for every group in `evals`: a notice task's kind is fixed; an added
    dataset is classification when its training answers are a small label set."""
    answers: dict[str, list[str]] = defaultdict(list)
    for r in train:
        answers[group_of(r)].append(reference(r))
    return {
        group: TASK_KINDS.get(group) or (LABEL if label_set(answers[group], max_labels) else FREE)
        for group in sorted({group_of(r) for r in evals})
    }


def nest(flat: dict[str, dict]) -> dict:
    """{group: metrics} -> eval.json's shape: notice tasks at the top, added datasets under
    `sources`."""
    out: dict = {}
    for group, value in flat.items():
        if group.startswith(f"{SOURCES}."):
            out.setdefault(SOURCES, {})[group[len(SOURCES) + 1 :]] = value
        else:
            out[group] = value
    return out


def score(records: list[dict], predictions: list[str], kinds: dict[str, str]) -> dict:
    """Per-group metrics for `predictions` aligned with `records`, in eval.json's shape."""
    by_group: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for r, pred in zip(records, predictions, strict=True):
        by_group[group_of(r)][0].append(pred)
        by_group[group_of(r)][1].append(reference(r))
    return nest({g: kind_metrics(kinds[g], p, refs) for g, (p, refs) in sorted(by_group.items())})


def classes(rows: list[dict], kinds: dict[str, str]) -> dict[str, dict]:
    """{group: per-class table} of the fine-tuned model for every classification group."""
    return {
        g: {
            label: {k: round(v, 4) if isinstance(v, float) else v for k, v in c.items()}
            for label, c in class_table(
                [r["prediction"] for r in rows if r["group"] == g],
                [r["reference"] for r in rows if r["group"] == g],
            ).items()
        }
        for g, kind in kinds.items()
        if kind == LABEL
    }


def slices(rows: list[dict], kinds: dict[str, str]) -> dict:
    """{group: {dimension: {value: metrics}}} over prediction rows."""
    out: dict = {}
    for group in sorted({r["group"] for r in rows}):
        for dim in SLICE_DIMENSIONS:
            buckets: dict[str, list[dict]] = defaultdict(list)
            for r in rows:
                if r["group"] == group:
                    buckets[str(r[dim])].append(r)
            out.setdefault(group, {})[dim] = {
                value: kind_metrics(
                    kinds[group],
                    [b["prediction"] for b in bucket],
                    [b["reference"] for b in bucket],
                )
                for value, bucket in sorted(buckets.items())
            }
    return out


def perplexity(records: list[dict], nll: list[tuple[float, int]]) -> dict[str, float]:
    """Per-group perplexity of the reference answers."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r, (total, count) in zip(records, nll, strict=True):
        sums[group_of(r)][0] += total
        sums[group_of(r)][1] += count
    return {t: round(math.exp(s / max(c, 1)), 3) for t, (s, c) in sums.items()}


def latency(gen: Generations) -> dict[str, float]:
    """Per-request latency (a request finishes with its batch) and generated tokens/s."""
    per_request_ms = [
        s * 1000 for s, n in zip(gen.batch_seconds, gen.batch_sizes, strict=True) for _ in range(n)
    ]
    total = sum(gen.batch_seconds)
    return {
        "p50_ms": round(percentile(per_request_ms, 50), 1),
        "p95_ms": round(percentile(per_request_ms, 95), 1),
        "tokens_per_s": round(sum(gen.new_tokens) / total, 1) if total else 0.0,
        "requests": len(gen.texts),
    }


class Runner:
    """One loaded model answering prompts, with a progress bar."""

    def __init__(self, p: EvaluateParams, base_dir: Path, finetuned_dir: Path | None):
        self.p = p
        self.tok = load_tokenizer(finetuned_dir or base_dir)
        self.model = load_model(base_dir, finetuned_dir)

    def answer(self, records: list[dict], label: str) -> Generations:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"evaluate: {label}", total=len(records))
            return generate(
                self.model,
                self.tok,
                [r["prompt"] for r in records],
                self.p.batch_size,
                self.p.max_new_tokens,
                groups=[r["task"] for r in records],
                progress=lambda n: bar.advance(task, n),
            )

    def perplexity(self, records: list[dict]) -> dict[str, float]:
        return perplexity(records, answer_nll(self.model, self.tok, records, self.p.batch_size))


def behaviour(
    runner: Runner, records: list[dict], answers: dict[str, str], must_pass: list[dict]
) -> tuple[dict[str, Any], list[dict]]:
    """Invariance of classify answers under perturbations, and the must-pass cases, scored
    per task (`must_pass_classify`, `must_pass_extract`)."""
    cases = invariance_cases(records)
    perturbed = runner.answer([c for _, c in cases], "invariance") if cases else None
    rows = [
        {
            "id": c["id"],
            "kind": "invariance",
            "task": r["task"],
            "expected": normalize(answers[r["id"]]),
            "answer": normalize(a),
        }
        for (r, c), a in zip(cases, perturbed.texts if perturbed else [], strict=True)
    ]
    must = runner.answer(must_pass, "must-pass") if must_pass else None
    rows += [
        {
            "id": r["id"],
            "kind": "must_pass",
            "task": r["task"],
            "expected": reference(r),
            "answer": normalize(a),
        }
        for r, a in zip(must_pass, must.texts if must else [], strict=True)
    ]
    groups: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        row["passed"] = row["answer"] == normalize(row["expected"])
        name = "invariance" if row["kind"] == "invariance" else f"must_pass_{row['task']}"
        groups[name].append(row["passed"])
    metrics: dict[str, Any] = {}
    for name, hits in sorted(groups.items()):
        metrics[name] = round(sum(hits) / len(hits), 4)
        metrics[f"n_{name}"] = len(hits)
    return metrics, rows


class Evaluation(NamedTuple):
    metrics: dict
    predictions: list[dict]  # one row per eval example
    behaviour: list[dict]  # the must-pass and invariance cases


def evaluate(
    p: EvaluateParams,
    base_dir: Path,
    finetuned_dir: Path,
    records: list[dict],
    must_pass: list[dict],
    train: list[dict],
) -> Evaluation:
    """The metrics, per-example predictions and behavioural cases of the fine-tuned model, with
    the untuned base and the baseline (fitted on `train`) scored on the same examples."""
    kinds = answer_kinds(train, records, p.max_labels)
    tuned = Runner(p, base_dir, finetuned_dir)
    answers = tuned.answer(records, "fine-tuned")
    metrics = score(records, answers.texts, kinds)
    for group, ppl in tuned.perplexity(records).items():
        entry_of(metrics, group)["perplexity"] = ppl
    metrics["latency"] = latency(answers)
    by_id = {r["id"]: a for r, a in zip(records, answers.texts, strict=True)}
    metrics["behaviour"], behaviour_rows = behaviour(tuned, records, by_id, must_pass)
    del tuned
    base = Runner(p, base_dir, None)
    base_answers = base.answer(records, "base")
    metrics["base"] = score(records, base_answers.texts, kinds)
    for group, ppl in base.perplexity(records).items():
        entry_of(metrics["base"], group)["perplexity"] = ppl
    baseline_answers, methods = baseline_predictions(train, records, kinds)
    metrics["baseline"] = score(records, baseline_answers, kinds)
    for group in groups(metrics["baseline"]):
        entry_of(metrics["baseline"], group)["method"] = methods[group]
    rows = [
        {
            "id": r["id"],
            "task": r["task"],
            "group": group_of(r),
            "category": r["category"],
            "source": r.get("source", "unknown"),
            "length": length_bucket(r, p.length_buckets),
            "reference": reference(r),
            "prediction": pred,
            "base_prediction": base_pred,
            "baseline_prediction": baseline_pred,
            "correct": normalize(pred) == normalize(reference(r)),
        }
        for r, pred, base_pred, baseline_pred in zip(
            records, answers.texts, base_answers.texts, baseline_answers, strict=True
        )
    ]
    for group, table in classes(rows, kinds).items():
        entry_of(metrics, group)["classes"] = table
    metrics["slices"] = slices(rows, kinds)
    return Evaluation(metrics, rows, behaviour_rows)


def confusion_csvs(rows: list[dict], groups: list[str]) -> dict[str, str]:
    """{file name: CSV of (actual, predicted)} for each classification group."""
    out = {}
    for group in groups:
        lines = ["actual,predicted"] + [f"{a},{p}" for a, p in confusion_pairs(rows, group)]
        out[f"{group}.csv"] = "\n".join(lines) + "\n"
    return out


def write_confusion(rows: list[dict], metrics: dict) -> None:
    """plots/confusion/<group>.csv for every classification group, and nothing else there."""
    wanted = confusion_csvs(rows, [g for g in groups(metrics) if "classes" in entry_of(metrics, g)])
    CONFUSION_DIR.mkdir(parents=True, exist_ok=True)
    for stale in CONFUSION_DIR.glob("*.csv"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        atomic_write_text(CONFUSION_DIR / name, text)


def main() -> int:
    params = load_params()
    records = read_jsonl(EVAL_FILE)
    must_pass = [
        r for n in load_notices(BEHAVIOUR_DIR) for r in task_records(n, ["classify", "extract"])
    ]
    metrics, rows, behaviour_rows = evaluate(
        params.evaluate, BASE_DIR, ADAPTER_DIR, records, must_pass, read_jsonl(TRAIN_FILE)
    )
    write_jsonl(PREDICTIONS, rows)
    write_jsonl(BEHAVIOUR_RESULTS, behaviour_rows)
    write_confusion(rows, metrics)
    write_json(EVAL_METRICS, metrics)
    scores = ", ".join(
        f"{g}.{m} {entry_of(metrics, g)[m]:.3f} (base "
        f"{entry_of(metrics['base'], g)[m]:.3f}, baseline "
        f"{entry_of(metrics['baseline'], g)[m]:.3f})"
        for g in groups(metrics)
        for m in [primary(kind_of(entry_of(metrics, g)))]
    )
    b = metrics["behaviour"]
    checks = ", ".join(f"{k} {v:.3f}" for k, v in b.items() if not k.startswith("n_"))
    print(
        f"evaluate: {len(records)} examples; {scores}; {checks}; "
        f"p95 {metrics['latency']['p95_ms']} ms, {metrics['latency']['tokens_per_s']} tokens/s"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
