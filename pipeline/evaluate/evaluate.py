"""Score the fine-tuned model and the untuned base on the eval split.

Run: dvc repro evaluate   (or: llmops evaluate)

Batched, left-padded greedy generation. Writes metrics/eval.json shaped
`{"<task>": {...}, "base": {"<task>": {...}}, "slices": {...}, "behaviour": {...},
"latency": {...}}`, every prediction (with its slice fields) to metrics/predictions.jsonl so
changes can be diffed example by example, the behavioural cases to metrics/behaviour.jsonl,
and the classify confusion pairs to plots/confusion.csv.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from pipeline.config import EvaluateParams, load_params
from pipeline.data.prepare import task_records
from pipeline.data.schema import load_notices
from pipeline.evaluate.behaviour import invariance_cases
from pipeline.evaluate.scoring import PRIMARY, normalize, percentile, task_metrics
from pipeline.io import atomic_write_text, read_jsonl, run_stage, write_json, write_jsonl
from pipeline.modeling import Generations, answer_nll, generate, load_model, load_tokenizer
from pipeline.paths import (
    ADAPTER_DIR,
    BASE_DIR,
    BEHAVIOUR_DIR,
    BEHAVIOUR_RESULTS,
    CONFUSION,
    EVAL_FILE,
    EVAL_METRICS,
    PREDICTIONS,
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


def score(records: list[dict], predictions: list[str]) -> dict[str, dict]:
    """Per-task metrics for `predictions` aligned with `records`."""
    by_task: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for r, pred in zip(records, predictions, strict=True):
        by_task[r["task"]][0].append(pred)
        by_task[r["task"]][1].append(reference(r))
    return {task: task_metrics(task, p, refs) for task, (p, refs) in sorted(by_task.items())}


def slices(rows: list[dict]) -> dict:
    """{task: {dimension: {value: metrics}}} over prediction rows."""
    out: dict = {}
    for task in sorted({r["task"] for r in rows}):
        for dim in SLICE_DIMENSIONS:
            groups: dict[str, list[dict]] = defaultdict(list)
            for r in rows:
                if r["task"] == task:
                    groups[str(r[dim])].append(r)
            out.setdefault(task, {})[dim] = {
                value: task_metrics(
                    task, [g["prediction"] for g in group], [g["reference"] for g in group]
                )
                for value, group in sorted(groups.items())
            }
    return out


def perplexity(records: list[dict], nll: list[tuple[float, int]]) -> dict[str, float]:
    """Per-task perplexity of the reference answers."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for r, (total, count) in zip(records, nll, strict=True):
        sums[r["task"]][0] += total
        sums[r["task"]][1] += count
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


def evaluate(
    p: EvaluateParams,
    base_dir: Path,
    finetuned_dir: Path,
    records: list[dict],
    must_pass: list[dict],
) -> tuple[dict, list[dict], list[dict]]:
    """(metrics, per-example predictions, behavioural cases) for the fine-tuned model, with
    the untuned base scored on the same examples."""
    tuned = Runner(p, base_dir, finetuned_dir)
    answers = tuned.answer(records, "fine-tuned")
    metrics = score(records, answers.texts)
    for task, ppl in tuned.perplexity(records).items():
        metrics[task]["perplexity"] = ppl
    metrics["latency"] = latency(answers)
    by_id = {r["id"]: a for r, a in zip(records, answers.texts, strict=True)}
    metrics["behaviour"], behaviour_rows = behaviour(tuned, records, by_id, must_pass)
    del tuned
    base = Runner(p, base_dir, None)
    base_answers = base.answer(records, "base")
    metrics["base"] = score(records, base_answers.texts)
    for task, ppl in base.perplexity(records).items():
        metrics["base"][task]["perplexity"] = ppl
    rows = [
        {
            "id": r["id"],
            "task": r["task"],
            "category": r["category"],
            "source": r.get("source", "unknown"),
            "length": length_bucket(r, p.length_buckets),
            "reference": reference(r),
            "prediction": pred,
            "base_prediction": base_pred,
            "correct": normalize(pred) == normalize(reference(r)),
        }
        for r, pred, base_pred in zip(records, answers.texts, base_answers.texts, strict=True)
    ]
    metrics["slices"] = slices(rows)
    return metrics, rows, behaviour_rows


def confusion_csv(rows: list[dict]) -> str:
    lines = ["actual,predicted"] + [
        f"{r['reference']},{normalize(r['prediction']) or '(empty)'}"
        for r in rows
        if r["task"] == "classify"
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    params = load_params()
    records = read_jsonl(EVAL_FILE)
    must_pass = [
        r for n in load_notices(BEHAVIOUR_DIR) for r in task_records(n, ["classify", "extract"])
    ]
    metrics, rows, behaviour_rows = evaluate(
        params.evaluate, BASE_DIR, ADAPTER_DIR, records, must_pass
    )
    write_jsonl(PREDICTIONS, rows)
    write_jsonl(BEHAVIOUR_RESULTS, behaviour_rows)
    atomic_write_text(CONFUSION, confusion_csv(rows))
    write_json(EVAL_METRICS, metrics)
    scores = ", ".join(
        f"{t}.{m} {metrics[t][m]:.3f} (base {metrics['base'][t][m]:.3f})"
        for t, m in PRIMARY.items()
        if t in metrics
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
