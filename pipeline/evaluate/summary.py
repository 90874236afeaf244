"""`llmops summary`: one table of what the last `dvc repro` produced."""

from __future__ import annotations

from pipeline.evaluate.scoring import PRIMARY
from pipeline.io import read_json_object
from pipeline.paths import DPO_METRICS, EVAL_METRICS, GATE_METRICS, PLOTS_DIR, TRAIN_METRICS
from pipeline.tracking import tracking_uri


def rows(metrics: dict) -> list[tuple[str, str, float, float]]:
    """(task, metric, base, fine-tuned) for every task metric both models have."""
    base = metrics.get("base", {})
    return [
        (task, name, float(base[task][name]), float(value))
        for task in sorted(base)
        for name, value in sorted(metrics.get(task, {}).items())
        if name != "n" and name in base[task]
    ]


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    metrics, gate, train, dpo = (
        read_json_object(p)[0] or {}
        for p in (EVAL_METRICS, GATE_METRICS, TRAIN_METRICS, DPO_METRICS)
    )
    if not metrics:
        console.print(f"no {EVAL_METRICS} yet: run `dvc repro` first")
        return 1
    table = Table(title="Flywheel: fine-tuned vs untuned base (eval split)")
    for col, just in (
        ("task", "left"),
        ("metric", "left"),
        ("base", "right"),
        ("fine-tuned", "right"),
        ("delta", "right"),
    ):
        table.add_column(col, justify=just)
    for task, name, base, tuned in rows(metrics):
        style = "bold" if PRIMARY.get(task) == name else None
        table.add_row(
            task, name, f"{base:.3f}", f"{tuned:.3f}", f"{tuned - base:+.3f}", style=style
        )
    console.print(table)
    lat = metrics.get("latency", {})
    console.print(
        f"latency p50 {lat.get('p50_ms')} ms, p95 {lat.get('p95_ms')} ms, "
        f"{lat.get('tokens_per_s')} generated tokens/s (batched, this machine)"
    )
    behaviour = metrics.get("behaviour", {})
    if behaviour:
        console.print(
            "behaviour: "
            + ", ".join(f"{k} {v:.3f}" for k, v in behaviour.items() if not k.startswith("n_"))
        )
    if train:
        console.print(
            f"training: {train.get('method')}, {train.get('steps')} steps in "
            f"{train.get('seconds')} s, loss {train.get('loss_first')} -> "
            f"{train.get('loss_last')}"
        )
    if dpo.get("skipped"):
        console.print(f"DPO: skipped ({dpo['skipped']})")
    elif dpo:
        held = dpo.get("held_out", {})
        console.print(
            f"DPO: {dpo.get('steps')} steps on {dpo.get('pairs_train')} pairs; held-out"
            f" preference accuracy {held.get('sft', {}).get('preference_accuracy')} (SFT) ->"
            f" {held.get('dpo', {}).get('preference_accuracy')}, reward margin"
            f" {held.get('dpo', {}).get('reward_margin')} ({dpo.get('pairs_held_out')} pairs)"
        )
    if gate:
        verdict = "[green]PASSED[/]" if gate.get("passed") else "[red]FAILED[/]"
        failed = [c["name"] for c in gate.get("checks", []) if not c.get("passed")]
        console.print(
            f"gate: {verdict}"
            + (f" ({', '.join(failed)})" if failed else f" ({len(gate.get('checks', []))} checks)")
        )
    console.print(
        f"MLflow: {tracking_uri()}  (browse: mlflow ui --backend-store-uri {tracking_uri()})"
    )
    console.print(f"plots: {PLOTS_DIR}/ (dvc plots show), metrics: metrics/ (dvc metrics show)")
    return 0
