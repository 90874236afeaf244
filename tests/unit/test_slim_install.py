"""Jobs without a GPU install only `make setup-slim` (dvc, mlflow-skinny, matplotlib, the
scorers; no torch, no training stack): the commands they run must work without the rest.
Each runs here with those packages made unimportable."""

import os
import subprocess
import sys

import pytest
import yaml

from ..conftest import BIN, ROOT

# in requirements.lock, not in the Makefile's SLIM_DEPS (nor pulled in by them)
ABSENT = [
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "tokenizers",
    "sentence_transformers",
    "chromadb",
    "great_expectations",
    "sklearn",
    "label_studio_sdk",
    "sqlalchemy",
    "flask",
]

BLOCKER = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ImportError(f"{{name}} is not in the slim install")
sys.meta_path.insert(0, Absent())
"""


def slim_deps() -> list[str]:
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("SLIM"))
    return line.split(":=")[1].split()


@pytest.fixture
def slim_env(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    return {
        **os.environ,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # the workflows' server, never sqlite
    }


def test_the_blocked_packages_are_not_in_the_slim_install():
    assert not {d.replace("-", "_") for d in slim_deps()} & set(ABSENT)
    assert "torch" in ABSENT and "dvc" in slim_deps() and "mlflow-skinny" in slim_deps()


@pytest.mark.parametrize(
    "cmd",
    [
        ["llmops", "ci", "plan"],
        ["llmops", "ci", "gate"],
        ["llmops", "status", "--no-reconcile"],
        ["llmops", "report", "--base", "HEAD", "--out", "{tmp}/report"],
        ["llmops", "promote", "--help"],
    ],
)
def test_hosted_jobs_commands_run_without_the_training_stack(cmd, slim_env, tmp_path):
    cmd = [c.replace("{tmp}", str(tmp_path)) for c in cmd]
    proc = subprocess.run(cmd, cwd=ROOT, env=slim_env, capture_output=True, text=True)
    assert "not in the slim install" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]


def test_the_blocker_blocks(slim_env):
    proc = subprocess.run(
        [sys.executable, "-c", "import torch"], env=slim_env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "not in the slim install" in proc.stderr


def test_release_loop_jobs_install_slim_unless_they_train():
    """GPU jobs (dvc repro) install everything; the release loop's other jobs, the slim set.
    (feedback.yml installs everything: its jobs need the Label Studio SDK and a model.)"""
    for wf in ("train", "release", "rollback", "aliases"):
        jobs = yaml.safe_load((ROOT / f".github/workflows/{wf}.yml").read_text())["jobs"]
        for name, job in jobs.items():
            runs = [s.get("run", "") for s in job.get("steps", [])]
            setup = [r for r in runs if r.startswith("scripts/ci-setup.sh")]
            trains = any("dvc repro" in r for r in runs)
            assert trains == ("gpu" in job["runs-on"]), (wf, name)
            want = "scripts/ci-setup.sh" if trains else "scripts/ci-setup.sh --slim"
            assert setup == [want], (wf, name)
