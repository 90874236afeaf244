"""`llmops register`: the evaluated model becomes a version of the MLflow registered model.

The version points at the adapter artifacts of the run that produced models/adapter (the dpo
run, or the train run when DPO was skipped) and is tagged with the git commit, the DVC hashes
of the adapter, data and base model, the gate verdict and the headline metrics. A failed gate
registers nothing. Registering the same run again returns the existing version.
"""

from __future__ import annotations

from pipeline.config import load_params
from pipeline.evaluate.scoring import PRIMARY
from pipeline.io import UserError, read_json_object
from pipeline.paths import (
    ADAPTER_DIR,
    BASE_DIR,
    DPO_METRICS,
    EVAL_METRICS,
    GATE_METRICS,
    PREPARED_DIR,
)
from pipeline.tracking import dvc_hashes, git_commit, tracking_uri

TAGGED_OUTPUTS = (ADAPTER_DIR, PREPARED_DIR, BASE_DIR)


def client():
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def model_version(c, name: str, version: int):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version(name, str(version))
    except MlflowException as exc:
        raise UserError(f"MLflow: {name} has no version {version} ({tracking_uri()})") from exc


def register(name: str) -> tuple[int, bool]:
    """(version, created) for the current evaluation's model."""
    gate, problem = read_json_object(GATE_METRICS)
    if gate is None:
        raise UserError(f"{problem}; run `dvc repro` first")
    if not gate.get("passed"):
        failed = [c["name"] for c in gate.get("checks", []) if not c.get("passed")]
        raise UserError(f"the gate failed ({', '.join(failed)}): a failed model is not registered")
    released, problem = read_json_object(DPO_METRICS)
    run_id = (released or {}).get("mlflow_run_id")
    if not run_id:
        raise UserError(
            f"{DPO_METRICS}: no mlflow_run_id ({problem or 'missing'}); run `dvc repro`"
        )
    hashes = dvc_hashes()
    c = client()
    if not c.search_registered_models(f"name = '{name}'"):
        c.create_registered_model(name, description="Fine-tuned adapters released by Flywheel")
    for v in c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return int(v.version), False
    metrics, _ = read_json_object(EVAL_METRICS)
    tags = {
        "gate": "passed",
        "git_commit": git_commit() or "",
        **{f"dvc.md5.{p}": hashes.get(str(p), "") for p in TAGGED_OUTPUTS},
        **{
            f"metric.{task}.{metric}": str(metrics[task][metric])
            for task, metric in PRIMARY.items()
            if metrics and task in metrics
        },
    }
    run = c.get_run(run_id)
    version = c.create_model_version(
        name, source=f"{run.info.artifact_uri}/adapter", run_id=run_id, tags=tags
    )
    return int(version.version), True


def main() -> int:
    name = load_params().mlflow.registered_model
    version, created = register(name)
    verb = "registered" if created else "already registered as"
    print(f"register: {verb} {name} v{version} ({tracking_uri()})")
    return 0
