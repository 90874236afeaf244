"""Both fine-tuning paths train, save and reload (the default for real models is LoRA)."""

import pytest

from pipeline.config import LoraParams, TrainParams
from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.modeling import generate as generate_text
from pipeline.modeling import is_adapter, load_model, load_tokenizer
from pipeline.train.train import train

RECORDS = [r for n in generate(24) for r in task_records(n, ["classify", "title"])]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_training_lowers_the_loss_and_the_result_reloads(method, tiny_base, tmp_path):
    p = TrainParams(
        method=method,
        max_steps=30,
        batch_size=8,
        learning_rate=3.0e-3,
        max_length=256,
        lora=LoraParams(r=4, alpha=8, modules_to_save=["lm_head"]),
    )
    out = tmp_path / "out"
    summary = train(p, tiny_base, RECORDS, out, tmp_path / "work")
    assert summary["steps"] == 30
    assert summary["loss_last"] < summary["loss_first"]
    assert is_adapter(out) == (method == "lora")
    if method == "lora":
        # the adapter is small next to the model it adapts
        total = sum(t.numel() for t in load_model(tiny_base).parameters())
        assert summary["trainable_parameters"] < total
    tok, model = load_tokenizer(out), load_model(tiny_base, out)
    prompts = [r["prompt"] for r in RECORDS[:4]]
    first = generate_text(model, tok, prompts, batch_size=4, max_new_tokens=4).texts
    again = generate_text(load_model(tiny_base, out), tok, prompts, batch_size=4, max_new_tokens=4)
    assert first == again.texts


def test_lora_only_trains_the_adapter_and_named_modules(tiny_base, tmp_path):
    p = TrainParams(method="lora", max_steps=2, batch_size=4, lora=LoraParams(r=4, alpha=8))
    summary = train(p, tiny_base, RECORDS[:8], tmp_path / "out", tmp_path / "work")
    base_params = sum(t.numel() for t in load_model(tiny_base).parameters())
    assert 0 < summary["trainable_parameters"] < base_params / 4
