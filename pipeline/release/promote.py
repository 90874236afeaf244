"""`llmops promote ENV` and `llmops rollback ENV`: a release is one git commit.

promote: checks the MLflow version (gate passed, built from this checkout's models/adapter,
which must be in the DVC remote), uploads the adapter as a reproducible tar.gz next to the
DVC storage, writes the environment's release record and model.env (production: also the
champion the gate compares against), commits `promote: <model> vN to ENV`, points the MLflow
alias ENV at vN, and for production tags `model-vN`. Promoting what is already there changes
nothing. With --push the commit is pushed; if another promotion got there first, this one is
redone on top of it, so both commits stay and they end serialized.

rollback: `git revert` of the newest promotion commit for ENV that is not reverted yet
(history is kept, nothing is reset), then the MLflow alias follows the restored record.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

from pipeline.config import load_params
from pipeline.evaluate.champion import set_champion
from pipeline.evaluate.scoring import PRIMARY
from pipeline.io import UserError, read_json_object
from pipeline.paths import ADAPTER_DIR, CHAMPION_PREDICTIONS, EVAL_METRICS, PARAMS
from pipeline.release.record import check_env, read_record, write_record
from pipeline.release.registry import client, model_version
from pipeline.tracking import dvc_hashes

PRODUCTION = "production"
IDENTITY = ["-c", "user.name=llmops", "-c", "user.email=llmops@localhost"]


def identity() -> list[str]:
    """git options for commits and tags: none where git knows who commits, else `llmops` (a
    fresh demo machine)."""
    return [] if git("config", "user.name", check=False) else IDENTITY


SUBJECT = re.compile(r"^promote: (?P<model>\S+) v(?P<version>\d+) to (?P<env>\S+)$")


def git(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise UserError(
            f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def adapter_archive(adapter_dir: Path) -> bytes:
    """A tar.gz of the adapter that is byte-identical for identical files (sorted names, no
    times or owners), so its sha256 names the adapter."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in adapter_dir.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(str(path.relative_to(adapter_dir)))
            info.size, info.mode = path.stat().st_size, 0o644
            tar.addfile(info, io.BytesIO(path.read_bytes()))
    return gzip.compress(raw.getvalue(), mtime=0)


def adapter_rank(adapter_dir: Path) -> int:
    """vLLM's --max-lora-rank for the adapter: its r, rounded up to a rank vLLM accepts (full
    weights need none; 16 is vLLM's default)."""
    config = adapter_dir / "adapter_config.json"
    r = json.loads(config.read_text())["r"] if config.exists() else 16
    return next(x for x in (1, 8, 16, 32, 64, 128, 256, 320, 512) if x >= r)


def publish_adapter(name: str, version: int) -> tuple[str, str]:
    """Upload the adapter archive beside the DVC storage; (uri, sha256). Refuses an adapter
    whose DVC object is not in the remote."""
    from dvc.repo import Repo

    md5 = dvc_hashes().get(str(ADAPTER_DIR))
    remote = Repo(".").cloud.get_remote()
    if not md5 or not remote.odb.exists(md5):
        raise UserError(
            f"{ADAPTER_DIR} ({md5 or 'not in dvc.lock'}) is not in the DVC remote"
            f" {remote.name!r}: run `dvc push` first"
        )
    data = adapter_archive(ADAPTER_DIR)
    fs = remote.fs
    target = fs.join(remote.path, "releases", name, f"v{version}", "adapter.tar.gz")
    fs.makedirs(fs.parent(target), exist_ok=True)
    with fs.open(target, "wb") as out:
        out.write(data)
    if fs.protocol in ("local", "file"):  # a path, relative to the repository when inside it
        uri = os.path.relpath(target) if Path(target).is_relative_to(Path.cwd()) else target
    else:
        uri = target if "://" in target else f"{fs.protocol}://{target}"
    return uri, hashlib.sha256(data).hexdigest()


def build_record(env: str, name: str, version) -> dict:
    """The release record for MLflow model version `version` of this checkout."""
    hashes = dvc_hashes()
    if version.tags.get("dvc.md5.models/adapter") != hashes.get(str(ADAPTER_DIR)):
        raise UserError(
            f"{name} v{version.version} was built from commit {version.tags.get('git_commit')},"
            f" not from this checkout's {ADAPTER_DIR}: check that commit out and `dvc pull` first"
        )
    uri, sha256 = publish_adapter(name, int(version.version))
    metrics, _ = read_json_object(EVAL_METRICS)
    params_md5 = hashlib.md5(PARAMS.read_bytes()).hexdigest()
    return {
        "environment": env,
        "model": {
            "name": name,
            "version": int(version.version),
            "mlflow_run_id": version.run_id,
            "base": load_params().model.base,
            "adapter": {
                "name": name.removeprefix("flywheel-"),
                "uri": uri,
                "sha256": sha256,
                "rank": adapter_rank(ADAPTER_DIR),
            },
        },
        "source": {
            "commit": version.tags.get("git_commit"),
            "data_md5": version.tags.get("dvc.md5.data/prepared"),
            "adapter_md5": hashes.get(str(ADAPTER_DIR)),
            "params_md5": params_md5,
        },
        "metrics": {
            f"{task}.{metric}": metrics[task][metric]
            for task, metric in PRIMARY.items()
            if metrics and task in metrics
        },
    }


def resolve_version(c, name: str, version: int | None, tag: str | None) -> int:
    """--version N; or --tag, a git tag: the newest version registered from the tagged commit
    or one before it; or the newest version."""
    if version is not None:
        return version
    versions = c.search_model_versions(f"name = '{name}'")
    if tag:
        commit = git("rev-list", "-n", "1", tag)

        def before_tag(v) -> bool:
            source = v.tags.get("git_commit")
            return (
                bool(source)
                and subprocess.run(
                    ["git", "merge-base", "--is-ancestor", source, commit], capture_output=True
                ).returncode
                == 0
            )

        versions = [v for v in versions if before_tag(v)]
        if not versions:
            raise UserError(
                f"no version of {name} was registered at or before {tag} ({commit[:12]})"
            )
    if not versions:
        raise UserError(f"{name} has no registered version: run `llmops register` first")
    return max(int(v.version) for v in versions)


def commit_promotion(env: str, name: str, version: int, record: dict) -> str | None:
    """Write the release files and commit them; None when nothing changed."""
    paths = write_record(env, record)
    if env == PRODUCTION:
        set_champion()
        paths.append(CHAMPION_PREDICTIONS)
    git("add", "--", *map(str, paths))
    if not git("diff", "--cached", "--name-only"):
        return None
    subject = f"promote: {name} v{version} to {env}"
    run = record["model"]["mlflow_run_id"]
    body = f"Model-Version: {version}\nEnvironment: {env}\nMLflow-Run: {run}"
    git(*identity(), "commit", "-q", "-m", subject, "-m", body)
    return git("rev-parse", "HEAD")


def push_serialized(redo, attempts: int = 5) -> None:
    """Push HEAD; when another promotion landed first, rebuild this one on top of it (the local
    branch may hold nothing but this promotion commit) and push again."""
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    for _ in range(attempts):
        if (
            subprocess.run(["git", "push", "-q", "origin", branch], capture_output=True).returncode
            == 0
        ):
            return
        git("fetch", "-q", "origin", branch)
        ahead = git("rev-list", f"origin/{branch}..HEAD").split()
        if len(ahead) > 1:
            raise UserError(f"{branch} has {len(ahead)} unpushed commits: push them, then promote")
        git("reset", "-q", "--hard", f"origin/{branch}")
        redo()
    raise UserError(f"could not push the promotion after {attempts} attempts")


def promote(
    env: str, version: int | None = None, tag: str | None = None, push: bool = False
) -> str:
    check_env(env)
    name = load_params().mlflow.registered_model
    c = client()
    number = resolve_version(c, name, version, tag)
    mv = model_version(c, name, number)
    if mv.tags.get("gate") != "passed":
        raise UserError(f"{name} v{number} did not pass the gate: it is not promoted")
    record = build_record(env, name, mv)

    def apply() -> str | None:
        return commit_promotion(env, name, number, record)

    commit = apply()
    if push and commit:
        push_serialized(apply)
    c.set_registered_model_alias(name, env, str(number))
    if env == PRODUCTION:
        tag_name = f"model-v{number}"
        if not git("tag", "--list", tag_name):
            git(*identity(), "tag", "-a", tag_name, "-m", f"{name} v{number} in production")
            if push:
                git("push", "-q", "origin", tag_name)
    if commit is None:
        return f"promote: {name} v{number} is already in {env}; nothing to commit"
    return f"promote: {name} v{number} to {env} ({git('rev-parse', '--short', 'HEAD')})"


def promotion_commits(env: str) -> list[tuple[str, int]]:
    """(sha, version) of the promotion commits for `env` not reverted yet, newest first."""
    log = git("log", "--format=%H%x00%s%x00%b%x1e", "--", str(Path("manifests/overlays") / env))
    reverted, found = set(), []
    for entry in filter(None, (e.strip() for e in log.split("\x1e"))):
        sha, subject, body = entry.split("\x00")
        m = re.search(r"This reverts commit ([0-9a-f]{40})", body)
        if subject.startswith('Revert "') and m:
            reverted.add(m.group(1))
            continue
        match = SUBJECT.match(subject)
        if match and match["env"] == env and sha not in reverted:
            found.append((sha, int(match["version"])))
    return found


def rollback(env: str, to: str | None = None, push: bool = False) -> str:
    """Revert promotions of `env`, newest first: one, or down to version/tag `to`."""
    check_env(env)
    if git("status", "--porcelain", "--untracked-files=no"):
        raise UserError("the working tree has uncommitted changes: commit or stash them first")
    target = int(to.removeprefix("model-v").removeprefix("v")) if to else None
    done = []
    for sha, version in promotion_commits(env):
        if target is not None and read_record(env).get("model", {}).get("version") == target:
            break
        changed = set(git("show", "--name-only", "--format=", sha).split())
        allowed = {
            f"manifests/overlays/{env}/model-release.yaml",
            f"manifests/overlays/{env}/model.env",
            str(CHAMPION_PREDICTIONS),
        }
        if not changed <= allowed:
            raise UserError(
                f"{sha[:12]} changes more than a release ({sorted(changed - allowed)}):"
                " not reverted"
            )
        git(*identity(), "revert", "--no-edit", sha)
        done.append(version)
        if target is None:
            break
    if not done:
        raise UserError(
            f"no promotion of {env} to revert" + (f" down to v{target}" if target else "")
        )
    now = read_record(env).get("model", {}).get("version")
    if target is not None and now != target:
        raise UserError(
            f"{env} never ran v{target}: reverted {done}, now at v{now}; `git reset` to undo"
        )
    if push:
        git("push", "-q", "origin", git("rev-parse", "--abbrev-ref", "HEAD"))
    name = load_params().mlflow.registered_model
    c = client()
    if now:
        c.set_registered_model_alias(name, env, str(now))
    else:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # no alias to remove
            c.delete_registered_model_alias(name, env)
    reverted = ", ".join(f"v{v}" for v in done)
    head = git("rev-parse", "--short", "HEAD")
    return f"rollback: reverted {reverted} in {env}; now v{now} ({head})"


def main_promote(args: argparse.Namespace) -> int:
    print(promote(args.env, args.version, args.tag, args.push))
    return 0


def main_rollback(args: argparse.Namespace) -> int:
    print(rollback(args.env, args.to, args.push))
    return 0
