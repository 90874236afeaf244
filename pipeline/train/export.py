"""`llmops export --merge`: standalone merged weights for serving without LoRA.

Run: llmops export --merge   (models/base + models/adapter -> models/merged, safetensors)

The LoRA adapter stays the default for serving (vLLM `--enable-lora --lora-modules
NAME=models/adapter`): it is small, and one base model serves many adapters. Merge when the
serving stack does not take adapters, or to save the per-token cost of applying one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.io import UserError
from pipeline.modeling import is_adapter, load_tokenizer
from pipeline.paths import ADAPTER_DIR


def merge(base_dir: Path, finetuned_dir: Path, out_dir: Path) -> dict:
    """Write base + adapter merged (or full fine-tuned weights as they are) to `out_dir` as
    safetensors with the tokenizer; returns what was written."""
    from transformers import AutoModelForCausalLM

    if not (finetuned_dir / "config.json").exists() and not is_adapter(finetuned_dir):
        raise UserError(f"{finetuned_dir}: no adapter or model here; run `dvc repro train`")
    if is_adapter(finetuned_dir):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="auto")
        model = PeftModel.from_pretrained(base, str(finetuned_dir)).merge_and_unload()
        kind = "LoRA adapter merged into the base"
    else:
        model = AutoModelForCausalLM.from_pretrained(str(finetuned_dir), dtype="auto")
        kind = "full fine-tuned weights (nothing to merge)"
    model.save_pretrained(str(out_dir), safe_serialization=True)
    load_tokenizer(finetuned_dir).save_pretrained(str(out_dir))
    size = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
    return {"kind": kind, "out": str(out_dir), "bytes": size}


@command(
    "export",
    help="write merged weights for serving without LoRA",
    args=[
        arg("--merge", action="store_true", help="merge the adapter into the base"),
        arg("--base-model", default=str(paths.BASE_DIR), help="the base model directory"),
        arg("--adapter", default=str(paths.ADAPTER_DIR)),
        arg("--out", default=str(paths.MERGED_DIR)),
    ],
)
def main(args: argparse.Namespace) -> int:
    if not args.merge:
        raise UserError(
            f"the adapter in {ADAPTER_DIR} is served as it is (vLLM --enable-lora "
            f"--lora-modules NAME={ADAPTER_DIR}); pass --merge for standalone weights"
        )
    done = merge(Path(args.base_model), Path(args.adapter), Path(args.out))
    print(f"export: {done['kind']} -> {done['out']} ({done['bytes'] / 1e6:.1f} MB safetensors)")
    return 0
