"""Supervised fine-tuning: data/prepared/train.jsonl + models/base -> models/sft/.

Run: dvc repro train   (or: llmops train)

TRL's SFTTrainer on conversational prompt/completion records, so the loss covers the answer
only, rendered with the base model's chat template. `train.method: lora` trains a PEFT LoRA
adapter (for real models); `full` (the shipped value, for the built-in tiny base) fine-tunes
every weight. The run is tracked in MLflow (params,
per-step loss, the adapter and tokenizer as artifacts, the git commit) and summarised in
metrics/train.json and plots/train_loss.csv. The dpo stage takes models/sft on from here.
`train.launcher: accelerate` runs it under `accelerate launch` (pipeline/train/launch.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipeline.config import Params, TrainParams, load_params
from pipeline.io import read_jsonl, run_stage, write_json
from pipeline.modeling import is_adapter, load_model, load_tokenizer
from pipeline.paths import (
    BASE_DIR,
    CHECKPOINT_DIR,
    LOSS_CURVE,
    PREPARED_DIR,
    SFT_DIR,
    TRAIN_FILE,
    TRAIN_METRICS,
)
from pipeline.train.launch import is_main_process, launched_as, relaunch
from pipeline.train.trainer import (
    fingerprint,
    fit,
    last_good_checkpoint,
    lora_config,
    optimizer_kwargs,
    sft_config,
)


def train(
    p: TrainParams,
    base_dir: Path,
    records: list[dict],
    out_dir: Path,
    work_dir: Path,
    report_to: str = "none",
) -> dict:
    """Fine-tune the model in `base_dir` on `records`; save the adapter (or full weights) and
    tokenizer to `out_dir`; return the training summary. Checkpoints go to `work_dir` every
    `p.save_steps`; a rerun with the same params, data and base resumes from the last one, and
    a finished run removes them. In a distributed run only rank 0 writes."""
    from datasets import Dataset
    from trl import SFTTrainer

    tok = load_tokenizer(base_dir)
    model = load_model(base_dir)
    dataset = Dataset.from_dict(
        {"prompt": [r["prompt"] for r in records], "completion": [r["completion"] for r in records]}
    )
    main_process = is_main_process()
    resume_from = last_good_checkpoint(
        work_dir, fingerprint(p.model_dump(), records, base_dir), clean=main_process
    )
    if resume_from and main_process:
        print(f"train: resuming from {resume_from}", flush=True)
    args = sft_config(
        work_dir,
        p.precision,
        packing=p.packing,
        gradient_checkpointing=p.gradient_checkpointing,
        completion_only_loss=True,
        report_to=report_to,
        save_strategy="steps" if p.save_steps else "no",
        save_steps=p.save_steps or 500,
        save_total_limit=1,
        **optimizer_kwargs(p),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=dataset,
        peft_config=lora_config(p.lora) if p.method == "lora" else None,
    )
    stats = fit(trainer, resume_from)
    trainer.save_model(str(out_dir))  # rank 0 writes; FSDP / ZeRO-3 shards are gathered first
    if main_process:
        shutil.rmtree(work_dir)
    tuned: Any = trainer.model  # set by the trainer's constructor
    trainable = sum(t.numel() for t in tuned.parameters() if t.requires_grad)
    return {
        "method": p.method,
        **launched_as(),
        "examples": len(records),
        "trainable_parameters": trainable,
        **stats,
    }


def track(params: Params, run) -> dict:
    """Train inside an MLflow run and log what a reviewer needs to reproduce it: params, the
    training data as a dataset input (with its digest), the git commit and DVC hashes of the
    data and base model, per-step loss (transformers' MLflow callback), the adapter and
    tokenizer as artifacts."""
    import mlflow
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    from pipeline.tracking import dvc_hashes, flatten, git_commit

    records = read_jsonl(TRAIN_FILE)
    mlflow.log_params(
        flatten({"train": params.train.model_dump(), "model.base": params.model.base})
    )
    frame = pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "task": [r["task"] for r in records],
            "prompt": [r["prompt"][-1]["content"] for r in records],
            "completion": [r["completion"][0]["content"] for r in records],
        }
    )
    mlflow.log_input(from_pandas(frame, source=str(TRAIN_FILE), name="train"), context="training")
    tags = {
        f"dvc.md5.{path}": md5
        for path, md5 in dvc_hashes().items()
        if path in (str(PREPARED_DIR), str(BASE_DIR))
    }
    if commit := git_commit():
        tags["git_commit"] = commit
    mlflow.set_tags(tags)
    summary = train(params.train, BASE_DIR, records, SFT_DIR, CHECKPOINT_DIR, report_to="mlflow")
    if summary["tokens_per_s"]:
        mlflow.log_metric("tokens_per_s", summary["tokens_per_s"])
    mlflow.log_artifacts(str(SFT_DIR), artifact_path="adapter")
    summary["mlflow_run_id"] = run.info.run_id
    return summary


def main() -> int:
    import mlflow

    from pipeline.io import atomic_write_text
    from pipeline.tracking import tracking_uri, use_experiment

    params = load_params()
    if (status := relaunch(params.train, "pipeline.train.train")) is not None:
        return status
    if not is_main_process():  # a worker of a distributed run: rank 0 tracks and writes
        train(params.train, BASE_DIR, read_jsonl(TRAIN_FILE), SFT_DIR, CHECKPOINT_DIR)
        return 0
    use_experiment(params.mlflow.experiment)
    if SFT_DIR.exists():
        shutil.rmtree(SFT_DIR)
    with mlflow.start_run(run_name=f"train-{params.train.method}") as run:
        summary = track(params, run)
    losses = summary.pop("losses")
    atomic_write_text(
        LOSS_CURVE, "step,loss\n" + "".join(f"{r['step']},{r['loss']}\n" for r in losses)
    )
    write_json(TRAIN_METRICS, summary)
    kind = "LoRA adapter" if is_adapter(SFT_DIR) else "full weights"
    print(
        f"train: {summary['steps']} steps ({params.train.method}) in {summary['seconds']} s,"
        f" loss {summary['loss_first']} -> {summary['loss_last']}; {kind} in {SFT_DIR}; "
        f"MLflow run {summary['mlflow_run_id']} at {tracking_uri()}"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
