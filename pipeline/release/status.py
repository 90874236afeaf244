"""`llmops status [ENV]`: what runs where, with its lineage, read from git.

version -> its tag (`<model>@vN`) -> the commit it was registered from -> data hash, the
promotion commit that put it there, its release id (what an abort notification names) and,
for production, the commit its shared manifests are pinned to. Git is the source of truth:
where the MLflow alias of an environment disagrees, status moves the alias to what git says
and says so. When the tracking server does not answer, git's view is still shown, and the
command ends with that error (exit 2): the aliases.yml job fails visibly instead of leaving
the aliases behind.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.commands import arg, command
from pipeline.config import load_params
from pipeline.io import UserError
from pipeline.release.gitops import git
from pipeline.release.promote import sync_alias
from pipeline.release.record import (
    environments,
    kustomization_path,
    pinned_ref,
    read_record,
    record_path,
    release_id,
)


@dataclass(frozen=True)
class EnvStatus:
    env: str
    version: int | None
    tag: str | None
    run: str | None
    commit: str | None
    data_md5: str | None
    release: str
    promoted_by: str
    manifests_ref: str | None
    metrics: dict


def env_status(env: str) -> EnvStatus:
    record = read_record(env)
    model, source = record.get("model", {}), record.get("source", {})
    return EnvStatus(
        env=env,
        version=model.get("version"),
        tag=source.get("tag"),
        run=model.get("mlflow_run_id"),
        commit=source.get("commit"),
        data_md5=source.get("data_md5"),
        release=release_id(record_path(env).read_bytes()),
        promoted_by=git("log", "-1", "--format=%h %s", "--", str(record_path(env))),
        manifests_ref=pinned_ref(kustomization_path(env).read_text(encoding="utf-8")),
        metrics=record.get("metrics", {}),
    )


def short(value: str | None) -> str:
    return (value or "-")[:12]


@command(
    "status",
    help="what is deployed where, with lineage, from git",
    args=[
        arg("env", nargs="?", help="one environment (default: all)"),
        arg(
            "--no-reconcile",
            dest="reconcile",
            action="store_false",
            help="leave MLflow aliases as they are (default: git wins, aliases follow)",
        ),
    ],
)
def main(args: argparse.Namespace) -> int:
    envs = [args.env] if args.env else environments()
    name = load_params().mlflow.registered_model
    problem: UserError | None = None
    for env in envs:
        row = env_status(env)
        pinned = f"\n  manifests pinned to {short(row.manifests_ref)}" if row.manifests_ref else ""
        metrics = ", ".join(f"{k} {v}" for k, v in row.metrics.items()) or "-"
        print(
            f"{row.env}: {name} v{row.version}"
            f"  (tag {row.tag or '-'}, release {short(row.release)})\n"
            f"  MLflow run {short(row.run)} <- commit {short(row.commit)}"
            f" <- data {short(row.data_md5)}\n"
            f"  promoted by {row.promoted_by or '-'}{pinned}\n"
            f"  metrics: {metrics}"
        )
        if args.reconcile and problem is None:
            try:
                note = sync_alias(name, row.env, row.version)
            except UserError as exc:  # git's view is shown; the aliases wait for MLflow
                problem, note = exc, "MLflow alias not checked (see the error below)"
            if note:
                print(f"  {note}")
    if problem is not None:
        raise problem
    return 0
