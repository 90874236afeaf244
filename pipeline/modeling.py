"""Load a base model (with or without a fine-tuned adapter) and generate from chat prompts.

Shared by the stages that run a model; heavy imports happen inside functions so that importing
this module (and `llmops --help`) stays fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A ChatML-style template. It is prefix-consistent (prompt + generation prompt is a prefix of
# prompt + answer), which TRL needs to put the loss on the answer only.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>")


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def is_adapter(path: Path) -> bool:
    """A PEFT adapter directory (LoRA) rather than full model weights."""
    return (Path(path) / "adapter_config.json").exists()


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(base_dir: Path, finetuned_dir: Path | None = None):
    """The base model, or the fine-tuned one: base + LoRA adapter, or full weights."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device() == "cuda" else torch.float32
    if finetuned_dir is not None and not is_adapter(finetuned_dir):
        model = AutoModelForCausalLM.from_pretrained(str(finetuned_dir), dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype)
        if finetuned_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(finetuned_dir))
    return model.to(device()).eval()


@dataclass
class Generations:
    texts: list[str]
    new_tokens: list[int]
    batch_seconds: list[float] = field(default_factory=list)  # wall time of each batch
    batch_sizes: list[int] = field(default_factory=list)


def generate(
    model: Any,
    tok: Any,
    prompts: list[list[dict]],
    batch_size: int,
    max_new_tokens: int,
    progress: Any = None,
) -> Generations:
    """Greedy answers to chat `prompts`, in batches, left-padded (right padding breaks
    batched decoding of a causal LM)."""
    import torch

    tok.padding_side = "left"
    out = Generations([], [])
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        texts = [
            tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in chunk
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        t0 = time.perf_counter()
        with torch.no_grad():
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        out.batch_seconds.append(time.perf_counter() - t0)
        out.batch_sizes.append(len(chunk))
        new = ids[:, enc["input_ids"].shape[1] :]
        for row in new.tolist():
            kept = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
            out.new_tokens.append(len(kept))
            out.texts.append(tok.decode(kept, skip_special_tokens=True).strip())
        if progress is not None:
            progress(len(chunk))
    return out
