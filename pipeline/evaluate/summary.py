"""`llmops summary`: one table of what the last `dvc repro` produced."""

from __future__ import annotations

from typing import Literal

from pipeline.commands import command
from pipeline.config import load_params
from pipeline.evaluate.compare import Standing, standings
from pipeline.evaluate.scoring import group_entry, groups
from pipeline.io import read_json_object, read_jsonl
from pipeline.paths import (
    DPO_METRICS,
    EVAL_METRICS,
    GATE_METRICS,
    PLOTS_DIR,
    PREDICTIONS,
    TRAIN_METRICS,
)
from pipeline.tracking import tracking_uri


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def versus(s: Standing) -> tuple[str, str]:
    """(delta and interval, verdict) of the fine-tuned model against the baseline."""
    if s.versus is None:
        return "", ""
    d = s.versus
    shown = {"beats": "[green]beats[/]", "ties": "[yellow]ties[/]", "loses": "[red]loses[/]"}
    return f"{d.delta:+.3f} [{d.low:+.3f}, {d.high:+.3f}]", shown[s.verdict or ""]


@command("summary", help="print the run's summary table")
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
    g = load_params().gate
    rows = read_jsonl(PREDICTIONS) if PREDICTIONS.exists() else []
    table = Table(
        title="Flywheel: untuned base, fine-tuned and a cheap baseline (eval split)",
        caption=f"vs baseline: fine-tuned - baseline, paired bootstrap {g.confidence:.0%} interval",
    )
    columns: tuple[tuple[str, Literal["left", "right"]], ...] = (
        ("task / source", "left"),
        ("metric", "left"),
        ("base", "right"),
        ("fine-tuned", "right"),
        ("baseline", "right"),
        ("vs baseline", "right"),
        ("", "left"),
    )
    for col, just in columns:
        table.add_column(col, justify=just)
    found = standings(metrics, rows, g.bootstrap_samples, g.confidence)
    for s in found:
        table.add_row(
            s.group if s.primary else "",
            s.metric,
            number(s.base),
            number(s.finetuned),
            number(s.baseline),
            *versus(s),
            style="bold" if s.primary else None,
        )
    console.print(table)
    methods = sorted({s.method for s in found if s.method})
    if methods:
        console.print(f"baselines: {', '.join(methods)} (pipeline/evaluate/baseline.py)")
    for group in groups(metrics):
        per_class = (group_entry(metrics, group) or {}).get("classes")
        if per_class:
            console.print(
                f"{group} F1 per class: "
                + ", ".join(f"{label} {c['f1']:.2f} (n {c['n']})" for label, c in per_class.items())
            )
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
            f"training: {train.get('method')}, {train.get('steps')} steps "
            f"({train.get('epochs')} epochs of {train.get('examples')} records) in "
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
