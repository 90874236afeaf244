"""Merged weights answer exactly like base + adapter, with no adapter left."""

import pytest

from pipeline.config import LoraParams, TrainParams
from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.io import UserError
from pipeline.modeling import generate as generate_text
from pipeline.modeling import is_adapter, load_model, load_tokenizer
from pipeline.train.export import merge
from pipeline.train.train import train

RECORDS = [r for n in generate(12) for r in task_records(n, ["classify"])]


def test_merged_lora_generates_like_base_plus_adapter(tiny_base, tmp_path):
    p = TrainParams(
        method="lora",
        max_steps=10,
        batch_size=4,
        learning_rate=3.0e-3,
        lora=LoraParams(r=4, alpha=8),
    )
    adapter = tmp_path / "adapter"
    train(p, tiny_base, RECORDS, adapter, tmp_path / "work")
    done = merge(tiny_base, adapter, tmp_path / "merged")
    assert "merged" in done["kind"] and done["bytes"] > 0
    assert not is_adapter(tmp_path / "merged")
    assert list((tmp_path / "merged").glob("*.safetensors"))
    tok = load_tokenizer(tmp_path / "merged")
    prompts = [r["prompt"] for r in RECORDS[:6]]
    with_adapter = generate_text(load_model(tiny_base, adapter), tok, prompts, 6, 6).texts
    merged = generate_text(load_model(tmp_path / "merged"), tok, prompts, 6, 6).texts
    assert merged == with_adapter


def test_merge_refuses_a_directory_without_a_model(tiny_base, tmp_path):
    with pytest.raises(UserError, match="no adapter or model here"):
        merge(tiny_base, tmp_path, tmp_path / "merged")
