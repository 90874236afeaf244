"""TRL trainer setup and run statistics shared by `base` (continued pre-training) and `train`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.config import LoraParams


def precision_kwargs(precision: str = "auto") -> dict:
    """Mixed precision for `params.train.precision`. auto: bf16 on a GPU that supports it, else
    fp16 on a GPU, plain fp32 on CPU (TRL defaults to bf16, which on a CPU is ~12x slower or
    fails)."""
    import torch

    if not torch.cuda.is_available():
        return {"use_cpu": True, "bf16": False, "fp16": False}
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def lora_config(lora: LoraParams):
    """A PEFT LoraConfig from a `lora:` section of params.yaml (train.lora, dpo.lora)."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=lora.modules_to_save or None,
        task_type="CAUSAL_LM",
    )


def optimizer_kwargs(p: Any) -> dict:
    """The TrainingArguments that train.* and dpo.* spell the same way. A section with
    `epochs` trains that many passes over its rows unless `max_steps` is above 0, as
    transformers' num_train_epochs and max_steps do."""
    budget = (
        {"num_train_epochs": p.epochs, "max_steps": p.max_steps or -1}
        if hasattr(p, "epochs")
        else {"max_steps": p.max_steps}
    )
    return {
        **budget,
        "per_device_train_batch_size": p.batch_size,
        "gradient_accumulation_steps": p.grad_accum,
        "learning_rate": p.learning_rate,
        "lr_scheduler_type": p.lr_scheduler,
        "warmup_steps": p.warmup_ratio,  # a float below 1 is a share of the total steps
        "max_length": p.max_length,
        "seed": p.seed,
    }


def trl_config(config_class: type, work_dir: Path, precision: str = "auto", **kwargs: Any):
    """A TRL config (SFTConfig, DPOConfig) with this project's defaults: no intermediate
    checkpoints, loss logged every 10 steps, precision from params. `kwargs` come on top."""
    defaults = {
        "output_dir": str(work_dir),
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        "include_num_input_tokens_seen": "non_padding",  # for tokens/s
        **precision_kwargs(precision),
    }
    return config_class(**(defaults | kwargs))


def sft_config(work_dir: Path, precision: str = "auto", **kwargs: Any):
    from trl import SFTConfig

    return trl_config(SFTConfig, work_dir, precision, **kwargs)


def fit(trainer: Any, resume_from: str | None = None) -> dict:
    """Run `trainer` (from a checkpoint if given); return steps, wall time, throughput of this
    process and the (step, loss) history."""
    import json

    tokens_before = 0
    if resume_from:
        state = json.loads(Path(resume_from, "trainer_state.json").read_text())
        tokens_before = state.get("num_input_tokens_seen", 0) or 0
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - t0
    losses = [
        {"step": e["step"], "loss": round(e["loss"], 4)}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    tokens = (trainer.state.num_input_tokens_seen or 0) - tokens_before
    return {
        "steps": result.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 3),
        "seconds": round(seconds, 1),
        "train_loss": round(result.training_loss, 4),
        "loss_first": losses[0]["loss"] if losses else None,
        "loss_last": losses[-1]["loss"] if losses else None,
        "tokens_per_s": round(tokens / seconds, 1) if tokens > 0 else None,
        "resumed_from_step": int(resume_from.rsplit("-", 1)[1]) if resume_from else None,
        "losses": losses,
    }


def fingerprint(params: dict, records: list[dict], base_dir: Path) -> str:
    """What a checkpoint must match to be resumed: the params, the data, and the base model
    (its config and file sizes; hashing the weights of a real model would take minutes)."""
    import hashlib
    import json

    files = sorted((f.name, f.stat().st_size) for f in Path(base_dir).iterdir() if f.is_file())
    config = Path(base_dir, "config.json")
    blob = json.dumps(
        {
            "params": params,
            "records": records,
            "base_files": files,
            "base_config": config.read_text() if config.exists() else "",
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def last_good_checkpoint(work_dir: Path, run_fingerprint: str, clean: bool = True) -> str | None:
    """The newest complete checkpoint that a run with the same fingerprint left in work_dir,
    or None. With `clean` (the main process), checkpoints of another run, and incomplete ones
    (killed while saving), are removed, so a resumed run can only continue the very same
    training; other ranks only read, and reach the same answer."""
    import shutil

    marker = work_dir / "fingerprint"
    same_run = marker.exists() and marker.read_text() == run_fingerprint
    if not clean:
        complete = [c for c in work_dir.glob("checkpoint-*") if (c / "trainer_state.json").exists()]
        newest = max(complete, key=lambda d: int(d.name.split("-")[1]), default=None)
        return str(newest) if same_run and newest else None
    if work_dir.exists() and not same_run:
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(run_fingerprint)
    found = None
    for ckpt in sorted(
        work_dir.glob("checkpoint-*"), key=lambda d: int(d.name.split("-")[1]), reverse=True
    ):
        if found is None and (ckpt / "trainer_state.json").exists():
            found = str(ckpt)
        elif found is None:
            shutil.rmtree(ckpt)  # incomplete: the process died while writing it
    return found
