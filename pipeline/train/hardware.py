"""Trainer settings that depend on the machine rather than on params.yaml."""

from __future__ import annotations


def precision_kwargs() -> dict:
    """bf16 on a GPU that supports it; plain fp32 on CPU (TRL defaults to bf16, which on a CPU
    is ~12x slower or fails)."""
    import torch

    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported(), "fp16": not torch.cuda.is_bf16_supported()}
    return {"use_cpu": True, "bf16": False, "fp16": False}


def log_losses(log_history: list[dict]) -> list[dict]:
    """(step, loss) rows from a Trainer's log history, for the loss-curve plot."""
    return [{"step": e["step"], "loss": round(e["loss"], 4)} for e in log_history if "loss" in e]
