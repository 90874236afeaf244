"""DPO on the tiny model: both forms of SFT model, the output form, and the explicit skip."""

import json
import shutil

import pytest

from pipeline.config import TASKS, DpoParams, LoraParams, TrainParams
from pipeline.data.prefs import sample_pairs
from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.modeling import is_adapter, load_model, load_tokenizer
from pipeline.train.dpo import dpo, main, pair_logps
from pipeline.train.train import train

from ..conftest import ROOT

PAIRS = sample_pairs(generate(24), list(TASKS))
DPO = DpoParams(
    max_steps=12,
    batch_size=4,
    learning_rate=5.0e-3,
    max_length=256,
    lora=LoraParams(r=4, alpha=8),
)


def margins_grow(summary: dict) -> None:
    held = summary["held_out"]
    assert summary["steps"] == 12 and summary["pairs_train"] == len(PAIRS)
    # scored on the very pairs it trained on: the tuned model must prefer chosen answers more
    assert held["dpo"]["reward_margin"] > 0
    assert held["dpo"]["reward_accuracy"] > 0.5


def test_dpo_on_full_sft_weights_merges_its_lora_back(tiny_base, tmp_path):
    out = tmp_path / "out"
    summary = dpo(DPO, TrainParams(), tiny_base, tiny_base, PAIRS, PAIRS, out, tmp_path / "work")
    margins_grow(summary)
    assert not is_adapter(out)  # the same form as the SFT model: full weights
    tok = load_tokenizer(out)
    before = pair_logps(load_model(tiny_base), tok, PAIRS[:6])
    after = pair_logps(load_model(out), tok, PAIRS[:6])
    assert before != after
    assert not (tmp_path / "work").exists()


def test_dpo_continues_a_lora_adapter_and_saves_one_adapter(tiny_base, tmp_path):
    sft = tmp_path / "sft"
    records = [r for n in generate(12) for r in task_records(n, list(TASKS))]
    lora = TrainParams(
        method="lora", max_steps=4, batch_size=4, save_steps=0, lora=LoraParams(r=4, alpha=8)
    )
    train(lora, tiny_base, records, sft, tmp_path / "ckpt")
    out = tmp_path / "out"
    summary = dpo(DPO, TrainParams(), tiny_base, sft, PAIRS, PAIRS, out, tmp_path / "work")
    margins_grow(summary)
    assert is_adapter(out) and not (out / "ref").exists()  # TRL's frozen reference copy stays out
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    tok = load_tokenizer(out)
    sft_scores = pair_logps(load_model(tiny_base, sft), tok, PAIRS[:6])
    assert pair_logps(load_model(tiny_base, out), tok, PAIRS[:6]) != sft_scores


@pytest.mark.parametrize(
    "enabled, prefs, reason",
    [
        (True, None, "no preference pairs"),
        (False, PAIRS, "dpo.enabled is false"),
    ],
)
def test_stage_passes_the_sft_model_through_and_says_why(in_tmp, tiny_base, enabled, prefs, reason):
    params = (ROOT / "params.yaml").read_text()
    (in_tmp / "params.yaml").write_text(
        params.replace("  enabled: true", f"  enabled: {str(enabled).lower()}")
    )
    shutil.copytree(tiny_base, in_tmp / "models/sft")
    if prefs:
        (in_tmp / "data/feedback").mkdir(parents=True)
        (in_tmp / "data/feedback/prefs.jsonl").write_text(
            "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prefs)
        )
    assert main() == 0
    metrics = json.loads((in_tmp / "metrics/dpo.json").read_text())
    assert metrics["skipped"] == reason
    for f in (in_tmp / "models/sft").iterdir():
        assert (in_tmp / "models/adapter" / f.name).read_bytes() == f.read_bytes()
