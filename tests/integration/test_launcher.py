"""`train.launcher: accelerate` runs the train stage under `accelerate launch` with a config
kept in the repository, and the stage writes the same outputs."""

import json
import re
import shutil

import pytest
import yaml

from pipeline.config import TASKS, TrainParams
from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.io import UserError
from pipeline.train.launch import EXTRA_ARGS, accelerate_command

from ..conftest import ROOT, run


def test_train_stage_runs_under_accelerate_launch(tmp_path, tiny_base):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(
        method="full",
        max_steps=4,
        batch_size=4,
        save_steps=0,
        max_length=256,
        launcher="accelerate",
        accelerate_config="configs/accelerate/cpu.yaml",
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(tiny_base, tmp_path / "models/base")
    (tmp_path / "data/prepared").mkdir(parents=True)
    records = [r for n in generate(8) for r in task_records(n, list(TASKS))]
    (tmp_path / "data/prepared/train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    )
    proc = run(["python", "-m", "pipeline.train.train"], cwd=tmp_path)
    assert "accelerate.commands.launch --config_file configs/accelerate/cpu.yaml" in proc.stdout
    metrics = json.loads((tmp_path / "metrics/train.json").read_text())
    assert metrics["launcher"] == "accelerate" and metrics["processes"] == 1
    assert metrics["steps"] == 4
    assert (tmp_path / "models/sft/config.json").exists()


def test_a_missing_config_is_named_with_the_param(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = TrainParams(launcher="accelerate", accelerate_config="configs/accelerate/nope.yaml")
    with pytest.raises(
        UserError, match=re.escape("train.accelerate_config: configs/accelerate/nope.yaml")
    ):
        accelerate_command(p, "pipeline.train.train")


@pytest.mark.parametrize("name", ["cpu", "ddp", "fsdp", "zero3"])
def test_cluster_flags_come_from_the_environment(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv(EXTRA_ARGS, "--num_machines 2 --machine_rank 1")
    p = TrainParams(launcher="accelerate", accelerate_config=f"configs/accelerate/{name}.yaml")
    cmd = accelerate_command(p, "pipeline.train.dpo")
    assert cmd[-2:] == ["-m", "pipeline.train.dpo"]
    assert cmd[cmd.index("--config_file") + 1 :][:5] == [
        f"configs/accelerate/{name}.yaml",
        "--num_machines",
        "2",
        "--machine_rank",
        "1",
    ]
    config = yaml.safe_load((ROOT / f"configs/accelerate/{name}.yaml").read_text())
    assert config["distributed_type"] in {"NO", "MULTI_GPU", "FSDP", "DEEPSPEED"}
