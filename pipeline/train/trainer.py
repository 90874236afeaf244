"""TRL trainer setup and run statistics shared by `base` (continued pre-training) and `train`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def precision_kwargs() -> dict:
    """bf16 on a GPU that supports it; plain fp32 on CPU (TRL defaults to bf16, which on a CPU
    is ~12x slower or fails)."""
    import torch

    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported(), "fp16": not torch.cuda.is_bf16_supported()}
    return {"use_cpu": True, "bf16": False, "fp16": False}


def sft_config(work_dir: Path, **kwargs: Any):
    """An SFTConfig with this project's defaults: no intermediate checkpoints, loss logged every
    10 steps, precision chosen for the machine. `kwargs` (from params.yaml) come on top."""
    from trl import SFTConfig

    defaults = {
        "output_dir": str(work_dir),
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        "include_num_input_tokens_seen": "non_padding",  # for tokens/s
        **precision_kwargs(),
    }
    return SFTConfig(**(defaults | kwargs))


def fit(trainer: Any) -> dict:
    """Run `trainer`; return steps, wall time, throughput and the (step, loss) history."""
    t0 = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - t0
    losses = [
        {"step": e["step"], "loss": round(e["loss"], 4)}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    tokens = trainer.state.num_input_tokens_seen or 0
    return {
        "steps": result.global_step,
        "seconds": round(seconds, 1),
        "train_loss": round(result.training_loss, 4),
        "loss_first": losses[0]["loss"] if losses else None,
        "loss_last": losses[-1]["loss"] if losses else None,
        "tokens_per_s": round(tokens / seconds, 1) if tokens else None,
        "losses": losses,
    }
