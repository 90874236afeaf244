"""Preference tuning: models/sft + data/feedback/*.jsonl -> models/adapter/.

Run: dvc repro dpo   (or: llmops dpo)

TRL's DPOTrainer trains LoRA on top of the SFT model, with the SFT model as the frozen
reference. An SFT LoRA adapter is trained further (TRL keeps a frozen copy as the reference)
and stays one adapter over models/base, as vLLM serves it; SFT full weights get a new LoRA that
is merged back, so models/adapter has the same form as models/sft.

Pairs are split like the notices (`prepare.split_salt`, `prepare.eval_fraction`, by `group`):
the held-out pairs are never trained on, and metrics/dpo.json compares the SFT and DPO models
on them: preference accuracy (the model gives the chosen answer a higher log-likelihood) and
DPO's implicit reward margin, beta * (policy - reference log-ratio of chosen minus rejected).
With no pairs, or `dpo.enabled: false`, models/sft passes through unchanged and
metrics/dpo.json says `skipped` and why.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import DpoParams, Params, PrepareParams, TrainParams, load_params
from pipeline.data.prefs import load_feedback
from pipeline.data.records import split_of
from pipeline.io import read_json_object, run_stage, write_json
from pipeline.modeling import answer_nll, is_adapter, load_model, load_tokenizer
from pipeline.paths import (
    ADAPTER_DIR,
    BASE_DIR,
    CHECKPOINT_DIR,
    DPO_CURVE,
    DPO_METRICS,
    FEEDBACK_DIR,
    SFT_DIR,
    TRAIN_METRICS,
)
from pipeline.train.launch import is_main_process, launched_as, relaunch
from pipeline.train.trainer import fit, lora_config, optimizer_kwargs, trl_config


def split_pairs(pairs: list[dict], p: PrepareParams) -> tuple[list[dict], list[dict]]:
    """(train, held-out): the notices' own split, applied to each pair's group."""
    train: list[dict] = []
    held_out: list[dict] = []
    for pair in pairs:
        side = split_of(pair["group"], p.split_salt, p.eval_fraction)
        (held_out if side == "eval" else train).append(pair)
    return train, held_out


def pair_logps(model: Any, tok: Any, pairs: list[dict], batch_size: int = 16) -> list[tuple]:
    """(log p(chosen | prompt), log p(rejected | prompt)) of each pair, summed over tokens."""
    records = [
        {"prompt": pr["prompt"], "completion": pr[side]}
        for pr in pairs
        for side in ("chosen", "rejected")
    ]
    nll = [n for n, _ in answer_nll(model, tok, records, batch_size)]
    return [(-nll[i], -nll[i + 1]) for i in range(0, len(nll), 2)]


def preference_accuracy(logps: list[tuple]) -> float | None:
    """Share of pairs whose chosen answer the model finds more likely than the rejected."""
    return round(sum(c > r for c, r in logps) / len(logps), 4) if logps else None


def reward_margins(policy: list[tuple], reference: list[tuple], beta: float) -> dict:
    """DPO's implicit reward margin on each pair, summarised: its mean, and the share > 0."""
    margins = [
        beta * ((pc - rc) - (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, reference, strict=True)
    ]
    if not margins:
        return {"reward_margin": None, "reward_accuracy": None}
    return {
        "reward_margin": round(sum(margins) / len(margins), 4),
        "reward_accuracy": round(sum(m > 0 for m in margins) / len(margins), 4),
    }


def policy_model(base_dir: Path, sft_dir: Path) -> Any:
    """The SFT adapter made trainable again, or the SFT full weights (which get a new LoRA)."""
    if not is_adapter(sft_dir):
        return load_model(sft_dir)
    from peft import PeftModel

    return PeftModel.from_pretrained(load_model(base_dir), str(sft_dir), is_trainable=True)


def save_policy(trainer: Any, tok: Any, sft_is_adapter: bool, out_dir: Path) -> None:
    """Write the tuned model in the form models/sft had: one LoRA adapter, or merged weights."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if sft_is_adapter:
        model.save_pretrained(str(out_dir), selected_adapters=["default"])  # not TRL's `ref` copy
    else:
        model.merge_and_unload().save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))


def dpo(
    p: DpoParams,
    train_p: TrainParams,
    base_dir: Path,
    sft_dir: Path,
    pairs: list[dict],
    held_out: list[dict],
    out_dir: Path,
    work_dir: Path,
    report_to: str = "none",
) -> dict:
    """Train on `pairs`; save to `out_dir`; return the summary with held-out scores of the SFT
    model (before) and the DPO model (after)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tok = load_tokenizer(sft_dir)
    sft_is_adapter = is_adapter(sft_dir)
    model = policy_model(base_dir, sft_dir)
    model.eval()
    before = pair_logps(model, tok, held_out)
    dataset = Dataset.from_dict(
        {k: [pr[k] for pr in pairs] for k in ("prompt", "chosen", "rejected")}
    )
    args = trl_config(
        DPOConfig,
        work_dir,
        train_p.precision,
        beta=p.beta,
        # with sft_weight > 0, the chosen answer's NLL is added (as in RPO): the preference
        # term alone pulls the likelihood of right answers down too
        loss_type=[p.loss_type] + (["sft"] if p.sft_weight else []),
        loss_weights=[1.0] + ([p.sft_weight] if p.sft_weight else []),
        gradient_checkpointing=train_p.gradient_checkpointing,
        # the frozen reference scores each pair once, before training, not at every step
        precompute_ref_log_probs=True,
        report_to=report_to,
        **optimizer_kwargs(p),
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=dataset,
        peft_config=None if sft_is_adapter else lora_config(p.lora),
    )
    stats = fit(trainer)
    tuned: Any = trainer.model  # set by the trainer's constructor
    tuned.eval()
    after = pair_logps(tuned, tok, held_out)
    if is_main_process():
        save_policy(trainer, tok, sft_is_adapter, out_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
    return {
        **launched_as(),
        "pairs_train": len(pairs),
        "pairs_held_out": len(held_out),
        "beta": p.beta,
        "loss_type": p.loss_type,
        "held_out": {
            "sft": {"preference_accuracy": preference_accuracy(before)},
            "dpo": {
                "preference_accuracy": preference_accuracy(after),
                **reward_margins(after, before, p.beta),
            },
        },
        **stats,
    }


def skip(reason: str, sft_dir: Path, out_dir: Path) -> dict:
    """Pass the SFT model through unchanged, saying why."""
    shutil.copytree(sft_dir, out_dir)
    print(f"dpo: skipped: {reason}; {sft_dir} passed through to {out_dir}", flush=True)
    return {"skipped": reason}


def track(params: Params, pairs: list[dict], held_out: list[dict], sft_run: str | None) -> dict:
    """Run DPO inside an MLflow run linked to the SFT run; log params, held-out scores and
    the model."""
    import mlflow

    from pipeline.tracking import flatten, git_commit

    with mlflow.start_run(run_name="dpo") as run:
        mlflow.log_params(flatten({"dpo": params.dpo.model_dump()}))
        tags = {"stage": "dpo", "sft_run_id": sft_run or ""}
        if commit := git_commit():
            tags["git_commit"] = commit
        mlflow.set_tags(tags)
        summary = dpo(
            params.dpo,
            params.train,
            BASE_DIR,
            SFT_DIR,
            pairs,
            held_out,
            ADAPTER_DIR,
            CHECKPOINT_DIR / "dpo",
            report_to="mlflow",
        )
        mlflow.log_metrics(
            {
                f"held_out.{model}.{name}": value
                for model, scores in summary["held_out"].items()
                for name, value in scores.items()
                if value is not None and math.isfinite(value)
            }
        )
        mlflow.log_artifacts(str(ADAPTER_DIR), artifact_path="adapter")
        summary["mlflow_run_id"] = run.info.run_id
    return summary


def main() -> int:
    from pipeline.io import atomic_write_text
    from pipeline.tracking import use_experiment

    params = load_params()
    if params.dpo.enabled and (status := relaunch(params.train, "pipeline.train.dpo")) is not None:
        return status
    pairs = load_feedback(FEEDBACK_DIR)
    train_pairs, held_out = split_pairs(pairs, params.prepare)
    if not is_main_process():  # a worker of a distributed run: rank 0 tracks and writes
        dpo(
            params.dpo,
            params.train,
            BASE_DIR,
            SFT_DIR,
            train_pairs,
            held_out,
            ADAPTER_DIR,
            CHECKPOINT_DIR / "dpo",
        )
        return 0
    if ADAPTER_DIR.exists():
        shutil.rmtree(ADAPTER_DIR)
    sft_metrics, _ = read_json_object(TRAIN_METRICS)
    sft_run = (sft_metrics or {}).get("mlflow_run_id")
    reason = (
        "dpo.enabled is false"
        if not params.dpo.enabled
        else "no preference pairs"
        if not pairs
        else "no preference pairs in the training split"
        if not train_pairs
        else None
    )
    losses: list[dict] = []
    if reason:
        summary = skip(reason, SFT_DIR, ADAPTER_DIR) | {"pairs": len(pairs)}
        summary["mlflow_run_id"] = sft_run  # the released model is the SFT run's
    else:
        use_experiment(params.mlflow.experiment)
        summary = track(params, train_pairs, held_out, sft_run)
        losses = summary.pop("losses")
        held = summary["held_out"]
        print(
            f"dpo: {summary['steps']} steps on {len(train_pairs)} pairs in {summary['seconds']} s;"
            f" held-out preference accuracy {held['sft']['preference_accuracy']} (SFT) ->"
            f" {held['dpo']['preference_accuracy']} (DPO), reward margin"
            f" {held['dpo']['reward_margin']} on {len(held_out)} pairs; model in {ADAPTER_DIR}"
        )
    atomic_write_text(
        DPO_CURVE, "step,loss\n" + "".join(f"{r['step']},{r['loss']}\n" for r in losses)
    )
    write_json(DPO_METRICS, summary)
    return 0


if __name__ == "__main__":
    run_stage(main)
