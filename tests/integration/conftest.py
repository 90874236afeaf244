"""One `llmops serve` for the serving tests: the tiny base model and a LoRA adapter on it,
started once per session on 127.0.0.1 and stopped at its end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.processes import Processes, free_port, wait_http

from ..conftest import BIN

SERVED_NAME, ADAPTER_NAME = "tiny", "notices"
MAX_MODEL_LEN, MAX_NUM_SEQS = 128, 4


@dataclass
class Served:
    url: str
    out: Path
    procs: Processes
    base: Path
    adapter: Path

    @property
    def log(self) -> Path:
        return self.out / "requests.jsonl"


@pytest.fixture(scope="session")
def tiny_adapter(tiny_base, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random (not zero) B matrices, so the adapter
    answers differently from the base model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    config = LoraConfig(
        r=4,
        lora_alpha=64,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(out)
    return out


def serve_command(base: Path, port: int, log: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "llmops"),
        "serve",
        "--model",
        str(base),
        "--port",
        str(port),
        "--served-model-name",
        SERVED_NAME,
        "--model-version",
        "7",
        "--request-log",
        str(log),
        "--threads",
        "1",
        *extra,
    ]


def start_serve(procs: Processes, name: str, base: Path, log: Path, *extra: str) -> str:
    port = free_port()
    proc = procs.start(name, serve_command(base, port, log, *extra))
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, name, procs, timeout=120)
    return url


@pytest.fixture(scope="session")
def served(tiny_base, tiny_adapter, tmp_path_factory) -> Served:
    out = tmp_path_factory.mktemp("serve")
    procs = Processes(out)
    try:
        url = start_serve(
            procs,
            "serve",
            tiny_base,
            out / "requests.jsonl",
            "--adapter",
            str(tiny_adapter),
            "--adapter-name",
            ADAPTER_NAME,
            "--max-model-len",
            str(MAX_MODEL_LEN),
            "--max-num-seqs",
            str(MAX_NUM_SEQS),
        )
        yield Served(url, out, procs, tiny_base, tiny_adapter)
    finally:
        procs.stop()
