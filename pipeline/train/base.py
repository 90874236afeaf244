"""Build or fetch the base model: -> models/base/ (weights + tokenizer, save_pretrained).

Run: dvc repro base   (or: llmops base)

With `model.base: builtin:tiny` (the default, since model hubs may be unreachable) it builds
a byte-level BPE tokenizer on the training corpus, wraps it as a PreTrainedTokenizerFast with
a chat template, makes a small Llama-style causal LM from a config and continues its
pre-training on the *train* notices (full parameters), so that LoRA later starts from a model
that already reads the domain. Any other value is a Hugging Face id or local path that is
loaded and saved as it is.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import BUILTIN_BASE, BaseParams, load_params
from pipeline.io import read_jsonl, run_stage, write_json
from pipeline.modeling import CHAT_TEMPLATE, SPECIAL_TOKENS
from pipeline.paths import BASE_DIR, BASE_METRICS, PRETRAIN_FILE, TRAIN_FILE
from pipeline.train.trainer import fit, sft_config


def build_tokenizer(texts: list[str], vocab_size: int, whole_tokens: list[str]):
    """Byte-level BPE trained on `texts`; each of `whole_tokens` (the class labels) is kept as
    a single token so a class is one decision, not a spelling."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
    )
    tok.add_tokens(sorted(set(whole_tokens)))
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(p: BaseParams, tok):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(p.seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_heads,
        max_position_embeddings=p.max_position_embeddings,
        # untied: LoRA on a tiny model with frozen *tied* embeddings cannot sharpen its logits
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        do_sample=False,
    )
    return model


def corpus_texts(pretrain: list[dict], tok) -> list[str]:
    """Plain texts, with chat rows rendered through the chat template."""
    return [
        row["text"]
        if "text" in row
        else tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        for row in pretrain
    ]


def pretrain(p: BaseParams, model, tok, texts: list[str], work_dir: Path) -> dict:
    """Continued pre-training, full parameters; returns loss history and throughput."""
    from datasets import Dataset
    from trl import SFTTrainer

    args = sft_config(
        work_dir,
        max_steps=p.steps,
        per_device_train_batch_size=p.batch_size,
        learning_rate=p.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        max_length=p.max_length,
        gradient_checkpointing=False,  # a model this small has no memory to save
        seed=p.seed,
    )
    data = Dataset.from_dict({"text": texts})
    stats = fit(SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=data))
    del stats["losses"], stats["resumed_from_step"]
    return stats


def build_builtin(
    p: BaseParams, pretrain_rows: list[dict], train_rows: list[dict], out_dir: Path, work_dir: Path
) -> dict:
    """The built-in tiny model, pre-trained on the corpus and saved to `out_dir`."""
    from pipeline.modeling import load_tokenizer

    raw = [r["text"] for r in pretrain_rows if "text" in r] + [
        m["content"]
        for r in pretrain_rows + train_rows
        for m in r.get("prompt", []) + r.get("completion", [])
    ]
    labels = [r["completion"][0]["content"] for r in train_rows if r["task"] == "classify"]
    tok = build_tokenizer(raw, p.vocab_size, labels)
    model = build_model(p, tok)
    stats = pretrain(p, model, tok, corpus_texts(pretrain_rows, tok), work_dir)
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    load_tokenizer(out_dir)  # fail here, not three stages later, if it does not reload
    n_params = sum(t.numel() for t in model.parameters())
    return {
        "source": BUILTIN_BASE,
        "parameters": n_params,
        "vocab_size": len(tok),
        "pretrain": stats,
    }


def fetch_pretrained(name: str, out_dir: Path) -> dict:
    """A real model by Hugging Face id or local path, saved as-is to `out_dir`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    model = AutoModelForCausalLM.from_pretrained(name, dtype="auto")
    if tok.chat_template is None:
        raise SystemExit(
            f"base: {name} has no chat template; pick an instruct/chat model "
            "(params.yaml:model.base)"
        )
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    return {"source": name, "parameters": sum(t.numel() for t in model.parameters())}


def main() -> int:
    import tempfile

    params = load_params()
    with tempfile.TemporaryDirectory(prefix="flywheel-base-") as work:
        if params.model.base == BUILTIN_BASE:
            report = build_builtin(
                params.base, read_jsonl(PRETRAIN_FILE), read_jsonl(TRAIN_FILE), BASE_DIR, Path(work)
            )
        else:
            report = fetch_pretrained(params.model.base, BASE_DIR)
    write_json(BASE_METRICS, report)
    pre = report.get("pretrain", {})
    print(
        f"base: {report['source']}, {report['parameters']:,} parameters"
        + (
            f", pre-trained {pre['steps']} steps in {pre['seconds']} s, "
            f"loss {pre['loss_first']} -> {pre['loss_last']}"
            if pre
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
