"""The train stage against a real MLflow tracking server (sqlite backend, 127.0.0.1), chosen
with the standard MLFLOW_TRACKING_URI, and everything read back through the server."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.data.records import task_records
from pipeline.data.synthetic import generate

from ..conftest import BIN, running_mlflow_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root) as url:
        yield url


def test_train_logs_params_metrics_inputs_and_adapter_to_the_server(
    mlflow_server, tiny_base, tmp_path
):
    shutil.copytree(tiny_base, tmp_path / "models/base")
    records = [r for n in generate(16) for r in task_records(n, ["classify", "title"])]
    (tmp_path / "data/prepared").mkdir(parents=True)
    (tmp_path / "data/prepared/train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    )
    params = {
        "train": {
            "method": "lora",
            "max_steps": 12,
            "batch_size": 8,
            "learning_rate": 3.0e-3,
            "max_length": 256,
            "lora": {"r": 4, "alpha": 8},
        },
        "mlflow": {"experiment": "server-test"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.train.train"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"at {mlflow_server}" in proc.stdout
    assert not (tmp_path / ".mlflow").exists()  # nothing went to the embedded default

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    run_id = json.loads((tmp_path / "metrics/train.json").read_text())["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.data.params["train.method"] == "lora"
    assert run.data.params["train.lora.r"] == "4"
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [10]  # logged every 10 steps
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "train" and dataset.dataset.digest
    assert dataset.tags[0].value == "training"
    adapter = {a.path for a in client.list_artifacts(run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/tokenizer.json"} <= adapter
    local = Path(client.download_artifacts(run_id, "adapter/adapter_config.json", str(tmp_path)))
    assert json.loads(local.read_text())["r"] == 4
