"""Load a base model (with or without a fine-tuned adapter) and generate from chat prompts.

Shared by the stages that run a model; heavy imports happen inside functions so that importing
this module (and `llmops --help`) stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    model: Any
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


def batches(texts: list[str], batch_size: int, groups: list[str] | None = None) -> list[list[int]]:
    """Indices of `texts` in batches that never mix groups (e.g. tasks, whose answers differ
    in length: a batch decodes until its longest answer ends) and hold prompts of similar
    length (less padding)."""
    keys = groups or [""] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: (keys[i], len(texts[i])))
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and keys[out[-1][0]] == keys[i]:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def prompt_batches(
    model: Any, tok: Any, prompts: list[list[dict]], batch_size: int, groups: list[str] | None
) -> Iterator[tuple[list[int], dict]]:
    """(indices, left-padded encoding on the model's device) of each batch of chat `prompts`
    with the generation prompt added (see `batches`)."""
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    for batch in batches(texts, batch_size, groups):
        enc = tok(
            [texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
        )
        yield batch, {k: v.to(model.device) for k, v in enc.items()}


def generate(
    model: Any,
    tok: Any,
    prompts: list[list[dict]],
    batch_size: int,
    max_new_tokens: int,
    groups: list[str] | None = None,
    progress: Any = None,
) -> Generations:
    """Greedy answers to chat `prompts`, in the order given. Batched (see `batches`) and
    left-padded: right padding breaks batched decoding of a causal LM."""
    import torch

    answers: list[str] = [""] * len(prompts)
    new_tokens = [0] * len(prompts)
    out = Generations([], [])
    for batch, enc in prompt_batches(model, tok, prompts, batch_size, groups):
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
        out.batch_sizes.append(len(batch))
        for i, row in zip(batch, ids[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
            kept = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
            new_tokens[i] = len(kept)
            answers[i] = tok.decode(kept, skip_special_tokens=True).strip()
        if progress is not None:
            progress(len(batch))
    out.texts, out.new_tokens = answers, new_tokens
    return out


def answer_nll(
    model: Any, tok: Any, records: list[dict], batch_size: int
) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each record's reference answer given
    its prompt: the model's perplexity on held-out answers is exp(sum nll / sum tokens)."""
    import torch

    tok.padding_side = "right"  # positions must start at 0 for a plain forward pass
    out: list[tuple[float, int]] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        prompts = [
            tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
            for r in chunk
        ]
        fulls = [
            tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in chunk
        ]
        enc = tok(fulls, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        for i, prompt in enumerate(prompts):
            labels[i, : len(tok(prompt, add_special_tokens=False)["input_ids"])] = -100
        enc = {k: v.to(model.device) for k, v in enc.items()}
        labels = labels.to(model.device)
        with torch.no_grad():
            logits = model(**enc).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), target, ignore_index=-100, reduction="none"
        )
        for row_nll, row_target in zip(nll, target, strict=True):
            mask = row_target != -100
            out.append((float(row_nll[mask].sum()), int(mask.sum())))
    return out
