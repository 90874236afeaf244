"""`llmops register`: the evaluated model becomes a version of the MLflow registered model.

The version points at the adapter artifacts of the run that produced models/adapter (the dpo
run, or the train run when DPO was skipped) and is tagged with what the release records read:
the git commit, the DVC hashes of adapter, data, base and predictions (from `dvc.lock`), the
params hash, the adapter's kind and rank, the gate verdict and the headline metrics. Only a
model whose gate passed *for this `dvc.lock`* is registered: the stages up to the gate must be
up to date. Registering the same run again returns the existing version.

Like GTO, the version is also a git tag on the commit it was registered from:
`<model>@v<N>` (annotated), pushed with `--push`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import load_params
from pipeline.evaluate.scoring import group_entry, kinds_of, primary
from pipeline.io import UserError, read_json_object
from pipeline.paths import (
    ADAPTER_DIR,
    BASE_DIR,
    DPO_METRICS,
    EVAL_METRICS,
    GATE_METRICS,
    PARAMS,
    PREDICTIONS,
    PREPARED_DIR,
)
from pipeline.release import gitops
from pipeline.tracking import dvc_hashes, git_commit, tracking_uri

TAGGED_OUTPUTS = (ADAPTER_DIR, PREPARED_DIR, BASE_DIR, PREDICTIONS)


def client():
    """An MLflow client on the tracking server; an unreachable server is a UserError."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def mlflow_call(what: str, fn, *args, **kwargs):
    """Call the MLflow client; its failures become one clear line."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"MLflow ({tracking_uri()}): {what} failed: {first[:300]}; check that the"
            " tracking server is up and MLFLOW_TRACKING_URI / its token are right"
        ) from None


def model_version(c, name: str, version: int):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version(name, str(version))
    except MlflowException as exc:
        raise UserError(f"MLflow: {name} has no version {version} ({tracking_uri()})") from exc


def version_tag(name: str, version: int) -> str:
    """The git tag naming a registered version (GTO's `<artifact>@v<N>`)."""
    return f"{name}@v{version}"


def stale_stages(target: str = "gate") -> list[str]:
    """Stages up to `target` whose `dvc.lock` entry does not describe the workspace."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        return sorted(repo.status(targets=[target], with_deps=True))


def adapter_kind(adapter_dir: Path = ADAPTER_DIR) -> tuple[str, int]:
    """('lora', r) for a PEFT adapter; ('full', 0) for full weights."""
    config = adapter_dir / "adapter_config.json"
    if not config.exists():
        return "full", 0
    return "lora", int(json.loads(config.read_text())["r"])


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    created: bool
    tag: str


def check_gate() -> None:
    gate, problem = read_json_object(GATE_METRICS)
    if gate is None:
        raise UserError(f"{problem}; run `dvc repro` first")
    if not gate.get("passed"):
        failed = [c["name"] for c in gate.get("checks", []) if not c.get("passed")]
        raise UserError(f"the gate failed ({', '.join(failed)}): a failed model is not registered")
    stale = stale_stages()
    if stale:
        raise UserError(
            f"dvc.lock does not describe this workspace ({', '.join(stale)} changed): the gate"
            " verdict is not this model's; run `dvc repro` (or `dvc pull`) first"
        )


def register(name: str, push: bool = False) -> Registered:
    """Register the current evaluation's model (gate passed, `dvc.lock` up to date)."""
    check_gate()
    released, problem = read_json_object(DPO_METRICS)
    run_id = (released or {}).get("mlflow_run_id")
    if not run_id:
        raise UserError(
            f"{DPO_METRICS}: no mlflow_run_id ({problem or 'missing'}); run `dvc repro`"
        )
    hashes = dvc_hashes()
    c = client()
    if not mlflow_call("search", c.search_registered_models, f"name = '{name}'"):
        mlflow_call(
            "create the registered model",
            c.create_registered_model,
            name,
            description="Fine-tuned adapters released by Flywheel",
        )
    existing = mlflow_call(
        "search", c.search_model_versions, f"name = '{name}' and run_id = '{run_id}'"
    )
    if existing:
        number, created = int(existing[0].version), False
    else:
        metrics, _ = read_json_object(EVAL_METRICS)
        kind, rank = adapter_kind()
        tags = {
            "gate": "passed",
            "git_commit": git_commit() or "",
            "params_md5": hashlib.md5(PARAMS.read_bytes()).hexdigest(),
            "adapter_kind": kind,
            "adapter_rank": str(rank),
            **{f"dvc.md5.{p}": hashes.get(str(p), "") for p in TAGGED_OUTPUTS},
            **{
                f"metric.{group}.{primary(kind)}": str(
                    (group_entry(metrics, group) or {})[primary(kind)]
                )
                for group, kind in kinds_of(metrics or {}).items()
            },
        }
        run = mlflow_call("read the run", c.get_run, run_id)
        version = mlflow_call(
            "create the version",
            c.create_model_version,
            name,
            source=f"{run.info.artifact_uri}/adapter",
            run_id=run_id,
            tags=tags,
        )
        number, created = int(version.version), True
    commit = model_version(c, name, number).tags.get("git_commit") or git_commit()
    tag = tag_version(name, number, commit, run_id, push)
    return Registered(name, number, created, tag)


def tag_version(name: str, version: int, commit: str | None, run_id: str, push: bool) -> str:
    """Create (and push) the annotated tag `<name>@v<N>` on the registered commit."""
    tag = version_tag(name, version)
    if not commit:
        return ""
    existing = gitops.resolve(f"refs/tags/{tag}")
    if existing is None:
        message = f"{name} v{version}\n\nMLflow-Run: {run_id}"
        gitops.git("tag", "-a", tag, commit, "-m", message, env=gitops.identity())
    elif existing != commit:
        raise UserError(f"tag {tag} exists on {existing[:12]}, not {commit[:12]}: not moved")
    if push:
        gitops.git("push", "-q", "origin", f"refs/tags/{tag}")
    return tag


def main(args: argparse.Namespace) -> int:
    name = load_params().mlflow.registered_model
    r = register(name, push=args.push)
    verb = "registered" if r.created else "already registered as"
    print(f"register: {verb} {name} v{r.version} (tag {r.tag}; {tracking_uri()})")
    return 0
