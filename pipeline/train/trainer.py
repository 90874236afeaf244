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


def last_good_checkpoint(work_dir: Path, run_fingerprint: str) -> str | None:
    """The newest complete checkpoint that a run with the same fingerprint left in work_dir,
    or None. Checkpoints of another run, and incomplete ones (killed while saving), are
    removed, so a resumed run can only continue the very same training."""
    import shutil

    marker = work_dir / "fingerprint"
    if work_dir.exists() and (not marker.exists() or marker.read_text() != run_fingerprint):
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
