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
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.commands import arg, command
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


# The MLflow client retries a failed request 7 times with a backoff factor of 2 (minutes
# against a server that is down); an operator waits at most about ten seconds here. Both
# are MLflow's own settings: set them in the environment to choose others.
BOUNDED_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def client():
    """An MLflow client on the tracking server, with bounded retries (BOUNDED_RETRIES)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    for key, value in BOUNDED_RETRIES.items():
        os.environ.setdefault(key, value)
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


# what urllib3 / requests say when nothing answers: the first names the reason
REASON = re.compile(
    r"Connection refused|Name or service not known|Temporary failure in name resolution"
    r"|timed out|RemoteDisconnected"
)
NO_ANSWER = re.compile(rf"{REASON.pattern}|Failed to establish a new connection|Max retries")


def mlflow_failure(what: str, exc: Exception) -> UserError:
    """One line for a failed MLflow call: the server, what failed, why, what to do."""
    text = " ".join(str(exc).split())
    if NO_ANSWER.search(text):
        reason = REASON.search(text)
        why = reason.group(0) if reason else "no answer"
        return UserError(
            f"MLflow at {tracking_uri()} is unreachable ({why}) while trying to {what}: start"
            " the tracking server, or point MLFLOW_TRACKING_URI at it, then rerun"
        )
    return UserError(
        f"MLflow at {tracking_uri()}: {what} failed: {text[:300]}; check MLFLOW_TRACKING_URI"
        " and MLFLOW_TRACKING_TOKEN"
    )


def mlflow_call(what: str, fn, *args, **kwargs):
    """Call the MLflow client; its failures become one clear line."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except (MlflowException, OSError) as exc:
        raise mlflow_failure(what, exc) from None


def require_registry() -> None:
    """Fail now, before anything is written, when the tracking server does not answer."""
    c = client()
    mlflow_call("reach the model registry", c.search_registered_models, max_results=1)


def missing(exc: Exception) -> bool:
    """The tracking server answered that the thing asked for does not exist (an alias that
    is not set is INVALID_PARAMETER_VALUE "... alias ... not found")."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def model_version(c, name: str, version: int):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version(name, str(version))
    except MlflowException as exc:
        if missing(exc):
            raise UserError(f"MLflow: {name} has no version {version} ({tracking_uri()})") from None
        raise mlflow_failure(f"read {name} v{version}", exc) from None


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
    """The gate passed, for the adapter dvc.lock names, and every stage up to it is current."""
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
    judged = (gate.get("adapter") or {}).get("md5")
    locked = dvc_hashes().get(str(ADAPTER_DIR))
    if not judged or judged != locked:
        raise UserError(
            f"{GATE_METRICS} judged adapter {judged or '(none recorded)'}, dvc.lock names"
            f" {locked}: the verdict is not this model's; run `dvc repro` first"
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
    if push:  # nothing is registered that could not be tagged on origin
        gitops.require_remote("origin")
    c = client()
    if not mlflow_call(
        "look up the registered model", c.search_registered_models, f"name = '{name}'"
    ):
        mlflow_call(
            "create the registered model",
            c.create_registered_model,
            name,
            description="Fine-tuned adapters released by Flywheel",
        )
    existing = mlflow_call(
        "look up this run's version",
        c.search_model_versions,
        f"name = '{name}' and run_id = '{run_id}'",
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
                    (group_entry(metrics or {}, group) or {})[primary(kind)]
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
    if push and not gitops.push_ref("origin", f"refs/tags/{tag}"):
        raise UserError(f"origin has a different tag {tag}: `git fetch --tags` and look")
    return tag


@command(
    "register",
    help="register the model in MLflow (and tag its commit <model>@vN)",
    args=[arg("--push", action="store_true", help="push the version tag")],
)
def main(args: argparse.Namespace) -> int:
    name = load_params().mlflow.registered_model
    r = register(name, push=args.push)
    verb = "registered" if r.created else "already registered as"
    print(f"register: {verb} {name} v{r.version} (tag {r.tag}; {tracking_uri()})")
    return 0
