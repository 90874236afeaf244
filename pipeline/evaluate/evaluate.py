"""Score the fine-tuned model and the untuned base on the eval split.

Run: dvc repro evaluate   (or: llmops evaluate)

Batched greedy generation; writes metrics/eval.json shaped
`{"<task>": {...}, "base": {"<task>": {...}}, "latency": {...}}`, every prediction to
metrics/predictions.jsonl (so changes can be diffed example by example) and the classify
confusion pairs to plots/confusion.csv.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipeline.config import EvaluateParams, load_params
from pipeline.evaluate.scoring import normalize, percentile, task_metrics
from pipeline.io import atomic_write_text, read_jsonl, run_stage, write_json, write_jsonl
from pipeline.modeling import Generations, generate, load_model, load_tokenizer
from pipeline.paths import (
    ADAPTER_DIR,
    BASE_DIR,
    CONFUSION,
    EVAL_FILE,
    EVAL_METRICS,
    PREDICTIONS,
)


def score(records: list[dict], predictions: list[str]) -> dict[str, dict]:
    """Per-task metrics for `predictions` aligned with `records`."""
    by_task: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for r, pred in zip(records, predictions, strict=True):
        by_task[r["task"]][0].append(pred)
        by_task[r["task"]][1].append(r["completion"][0]["content"])
    return {
        task: task_metrics(task, preds, refs) for task, (preds, refs) in sorted(by_task.items())
    }


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


def run_model(
    p: EvaluateParams, base_dir: Path, finetuned_dir: Path | None, records: list[dict], label: str
) -> Generations:
    from rich.progress import Progress

    tok = load_tokenizer(finetuned_dir or base_dir)
    model = load_model(base_dir, finetuned_dir)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"evaluate {label}", total=len(records))
        return generate(
            model,
            tok,
            [r["prompt"] for r in records],
            p.batch_size,
            p.max_new_tokens,
            progress=lambda n: bar.advance(task, n),
        )


def evaluate(
    p: EvaluateParams, base_dir: Path, finetuned_dir: Path, records: list[dict]
) -> tuple[dict, list[dict]]:
    """(metrics, per-example predictions) for the fine-tuned model and the untuned base."""
    tuned = run_model(p, base_dir, finetuned_dir, records, "fine-tuned")
    base = run_model(p, base_dir, None, records, "base")
    metrics = score(records, tuned.texts)
    metrics["base"] = score(records, base.texts)
    metrics["latency"] = latency(tuned)
    rows = []
    for r, pred, base_pred in zip(records, tuned.texts, base.texts, strict=True):
        ref = r["completion"][0]["content"]
        rows.append(
            {
                "id": r["id"],
                "task": r["task"],
                "category": r["category"],
                "reference": ref,
                "prediction": pred,
                "base_prediction": base_pred,
                "correct": normalize(pred) == normalize(ref),
            }
        )
    return metrics, rows


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
    metrics, rows = evaluate(params.evaluate, BASE_DIR, ADAPTER_DIR, records)
    write_jsonl(PREDICTIONS, rows)
    atomic_write_text(CONFUSION, confusion_csv(rows))
    write_json(EVAL_METRICS, metrics)
    tasks = [t for t in metrics if t not in ("base", "latency")]
    scores = ", ".join(
        f"{t} {k} {metrics[t][k]:.3f} (base {metrics['base'][t][k]:.3f})"
        for t in tasks
        for k in metrics[t]
        if k not in ("n", "chrf", "bleu")
    )
    print(
        f"evaluate: {len(records)} examples; {scores}; "
        f"p95 {metrics['latency']['p95_ms']} ms, {metrics['latency']['tokens_per_s']} tokens/s"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
