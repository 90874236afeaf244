"""A training run killed mid-way resumes from its last checkpoint when the stage is rerun, and
ends where an uninterrupted run with the same seed ends."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.data.records import task_records
from pipeline.data.synthetic import generate

pytestmark = pytest.mark.integration

PARAMS = {
    "train": {
        "method": "full",
        "max_steps": 120,
        "save_steps": 20,
        "batch_size": 8,
        "learning_rate": 1.0e-3,
        "max_length": 256,
    }
}


def workdir(root: Path, tiny_base: Path) -> Path:
    shutil.copytree(tiny_base, root / "models/base")
    records = [r for n in generate(16) for r in task_records(n, ["classify", "title"])]
    (root / "data/prepared").mkdir(parents=True)
    (root / "data/prepared/train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    )
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return root


def start(cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.train.train"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def summary(cwd: Path) -> dict:
    return json.loads((cwd / "metrics/train.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tiny_base, tmp_path_factory) -> dict:
    clean = workdir(tmp_path_factory.mktemp("clean"), tiny_base)
    assert start(clean).wait(timeout=300) == 0
    return summary(clean)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_training_resumes_and_matches_a_clean_run(sig, uninterrupted, tiny_base, tmp_path):
    expected = uninterrupted

    killed = workdir(tmp_path / "killed", tiny_base)
    proc = start(killed)
    first = killed / "models/checkpoints/checkpoint-20/trainer_state.json"
    deadline = time.monotonic() + 300
    while not first.exists():
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not (killed / "metrics/train.json").exists()

    resumed = start(killed)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert "train: resuming from models/checkpoints/checkpoint-" in out
    got = summary(killed)
    assert got["steps"] == expected["steps"] == 120
    assert got["resumed_from_step"] >= 20
    assert got["loss_last"] == pytest.approx(expected["loss_last"], abs=0.02)
    assert not (killed / "models/checkpoints").exists()  # a finished run cleans up


def test_a_checkpoint_of_other_params_is_not_resumed(tiny_base, tmp_path):
    root = workdir(tmp_path / "w", tiny_base)
    stale = root / "models/checkpoints/checkpoint-20"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")
    (root / "models/checkpoints/fingerprint").write_text("another run")
    proc = start(root)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "resuming" not in out
    assert summary(root)["resumed_from_step"] is None
