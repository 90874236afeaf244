"""`llmops status [ENV]`: what runs where, with its lineage, read from git.

model version -> MLflow run -> training commit -> data hash, and the promotion commit that
put it there. The MLflow alias of each environment is shown beside it when the tracking
server answers; git wins where they disagree.
"""

from __future__ import annotations

import argparse

from pipeline.config import load_params
from pipeline.release.promote import git
from pipeline.release.record import environments, read_record, record_path


def status_rows(envs: list[str]) -> list[dict]:
    rows = []
    for env in envs:
        record = read_record(env)
        model, source = record.get("model", {}), record.get("source", {})
        rows.append(
            {
                "env": env,
                "version": model.get("version"),
                "run": model.get("mlflow_run_id"),
                "commit": source.get("commit"),
                "data_md5": source.get("data_md5"),
                "promoted_by": git("log", "-1", "--format=%h %s", "--", str(record_path(env))),
                "metrics": record.get("metrics", {}),
            }
        )
    return rows


def aliases(name: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    from pipeline.release.registry import client

    try:
        model = client().get_registered_model(name)
    except (MlflowException, OSError):  # nothing registered yet, or no server
        return {}
    return {k: str(v) for k, v in (model.aliases or {}).items()}


def short(value: str | None) -> str:
    return (value or "-")[:12]


def main(args: argparse.Namespace) -> int:
    envs = [args.env] if args.env else environments()
    name = load_params().mlflow.registered_model
    alias = aliases(name)
    for row in status_rows(envs):
        mlflow_says = alias.get(row["env"])
        drift = (
            f" (MLflow alias says v{mlflow_says}; git wins)"
            if mlflow_says and mlflow_says != str(row["version"])
            else ""
        )
        print(
            f"{row['env']}: {name} v{row['version']}{drift}\n"
            f"  MLflow run {short(row['run'])} <- commit {short(row['commit'])}"
            f" <- data {short(row['data_md5'])}\n"
            f"  promoted by {row['promoted_by'] or '-'}\n"
            f"  metrics: {', '.join(f'{k} {v}' for k, v in row['metrics'].items()) or '-'}"
        )
    return 0
