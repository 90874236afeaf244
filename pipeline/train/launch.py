"""Where a training stage runs: this process, or `accelerate launch` with a config in the repo.

`params.yaml: train.launcher: accelerate` makes the train and dpo stages start themselves again
under `accelerate launch --config_file <train.accelerate_config>`: configs/accelerate/ holds
single CPU, multi-GPU DDP, FSDP and DeepSpeed ZeRO-3. `dvc repro` runs the same command
either way. Under several processes only the main one (rank 0) writes models, metrics and
MLflow runs; Trainer's own saving gathers FSDP and ZeRO-3 shards first.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.config import TrainParams
from pipeline.io import UserError

LAUNCHED = "LLMOPS_LAUNCHED"  # set in the processes accelerate starts, so they do not relaunch
# extra `accelerate launch` flags from the environment, e.g. a cluster job's node count and
# rank (manifests/training/pytorchjob.yaml sets them from the operator's variables)
EXTRA_ARGS = "LLMOPS_ACCELERATE_ARGS"


def is_main_process() -> bool:
    """True in a single process and in rank 0 of a distributed run."""
    return int(os.environ.get("RANK", "0")) == 0


def launched_as() -> dict:
    """How this process was started, for the stage's metrics."""
    return {
        "launcher": "accelerate" if os.environ.get(LAUNCHED) else "python",
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
    }


def accelerate_command(p: TrainParams, module: str) -> list[str]:
    config = Path(p.accelerate_config)
    if not config.is_file():
        raise UserError(
            f"params.yaml:train.accelerate_config: {config} not found"
            " (configs/accelerate/ has cpu.yaml, ddp.yaml, fsdp.yaml, zero3.yaml)"
        )
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        *shlex.split(os.environ.get(EXTRA_ARGS, "")),
        "-m",
        module,
    ]


def relaunch(p: TrainParams, module: str) -> int | None:
    """Run `module` under `accelerate launch` and return its exit status when params ask for
    it and this process is not already the launched one; None means: go on in this process."""
    if p.launcher != "accelerate" or os.environ.get(LAUNCHED):
        return None
    cmd = accelerate_command(p, module)
    print(f"{module.rsplit('.', 1)[-1]}: {' '.join(cmd[2:])}", flush=True)
    return subprocess.run(cmd, env=os.environ | {LAUNCHED: "1"}, check=False).returncode
