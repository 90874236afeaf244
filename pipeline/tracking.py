"""MLflow setup: the standard MLFLOW_TRACKING_URI wins; otherwise a sqlite file under .mlflow/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline.paths import MLFLOW_DIR


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{MLFLOW_DIR / 'mlflow.db'}"


def use_experiment(name: str) -> str:
    """Point MLflow at the tracking store and experiment `name` (created if missing);
    returns the experiment id. Local artifacts go to .mlflow/artifacts."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        mlflow.set_experiment(name)
        return experiment.experiment_id
    location = None
    if uri.startswith("sqlite:"):
        location = (MLFLOW_DIR / "artifacts").resolve().as_uri()
    experiment_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    return experiment_id


def git_commit() -> str | None:
    """HEAD of the repository we run in, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """{'lora': {'r': 16}} -> {'lora.r': 16}, for mlflow.log_params."""
    out: dict[str, object] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def dvc_hashes(lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """{output path: md5} of every cached output recorded in dvc.lock (empty without one), so a
    run names the exact data and base model it trained on."""
    import yaml

    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for stage in stages.values()
        for out in stage.get("outs", [])
        if "md5" in out
    }


def dvc_md5(path: Path) -> str | None:
    """The hash `dvc commit` records for `path` (a directory's ends in `.dir`), .dvcignore
    applied; None when the path does not exist."""
    from dvc.repo import Repo
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    if not path.exists():
        return None
    with Repo(".") as repo:
        scratch = HashFileDB(MemoryFileSystem(global_store=False), "/odb")
        *_, obj = build(
            scratch, str(path), LocalFileSystem(), "md5", ignore=repo.dvcignore, dry_run=True
        )
    return obj.hash_info.value
