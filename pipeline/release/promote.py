"""`llmops promote ENV` and `llmops rollback ENV`: a release is one git commit on the branch
the environment's Argo CD Application tracks (argocd/applicationset.yaml).

promote staging: the MLflow version registered from this checkout (gate passed, adapter hash
= `dvc.lock`'s, its DVC object in the remote) is archived next to the DVC storage (write-once:
the same path always holds the same bytes) and written as the staging record.

promote production --tag vX.Y.Z: exactly the version the staging record names at the tagged
commit (version and adapter sha256), as long as that staging promotion was not rolled back;
its champion is that version's own predictions (checked against the `dvc.lock` it was
registered with), and the shared manifests are pinned to the tagged commit.

Promoting what is already there commits nothing. Commits are built with git plumbing on the
tip of the branch (pipeline/release/gitops.py): the working tree and what is staged there are
never touched; `--push` pushes, and rebuilds on the new tip when another commit landed first.

rollback: reverts (history kept) the environment's current promotion; `--release SHA256`
reverts exactly the release with that id (an abort notification's), and does nothing when it
is no longer current, so repeated notifications revert once; `--to V` reverts down to V.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.commands import arg, command
from pipeline.config import load_params
from pipeline.io import UserError
from pipeline.paths import ADAPTER_DIR, CHAMPION_PREDICTIONS, PREDICTIONS
from pipeline.release import gitops
from pipeline.release.record import (
    APPLICATIONSET,
    PRODUCTION,
    VLLM_LORA_RANKS,
    check_env,
    kustomization_path,
    parse_record,
    pin_shared,
    record_path,
    release_files,
    release_id,
    repo_url,
    servable_problems,
)
from pipeline.release.registry import (
    client,
    missing,
    mlflow_call,
    mlflow_failure,
    model_version,
    require_registry,
    stale_stages,
    version_tag,
)
from pipeline.tracking import dvc_hashes

STAGING = "staging"
SUBJECT = re.compile(r"^promote: (?P<model>\S+) v(?P<version>\d+) to (?P<env>\S+)$")


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


def adapter_rank(r: int) -> int:
    """vLLM's --max-lora-rank for a LoRA of rank r: the smallest rank vLLM accepts that holds
    it (16, vLLM's default, for full weights, which need none)."""
    if r <= 0:
        return 16
    return next((x for x in VLLM_LORA_RANKS if x >= r), r)


def tracked_branch(applicationset: Path = APPLICATIONSET) -> str:
    """The branch the environments' Argo CD Applications sync from."""
    spec = (yaml.safe_load(applicationset.read_text(encoding="utf-8")) or {}).get("spec", {})
    ref = spec.get("template", {}).get("spec", {}).get("source", {}).get("targetRevision")
    if not ref or ref == "HEAD":
        raise UserError(f"{applicationset}: spec.template.spec.source.targetRevision is not set")
    return ref


def target_branch(push: bool) -> str:
    """Where a release commit goes: with --push, the branch the Applications sync (on
    origin); locally, the checked-out branch."""
    if push:
        return tracked_branch()
    branch = gitops.current_branch()
    if branch is None:
        raise UserError("HEAD is detached: check out a branch, or use --push")
    return branch


def publish_adapter(name: str, version: int, write: bool = True) -> tuple[str, str]:
    """Upload the adapter archive beside the DVC storage (with `write`); (uri, sha256).
    Refuses an adapter whose DVC object is not in the remote, and a different archive where
    one was published: a published release is never overwritten."""
    from dvc.repo import Repo

    md5 = dvc_hashes().get(str(ADAPTER_DIR))
    remote = Repo(".").cloud.get_remote()
    try:
        # a listing raises when the store does not answer; `exists` (s3fs) says False
        remote.fs.ls(remote.path, detail=False)
    except FileNotFoundError:
        pass  # reachable, and empty
    except Exception as exc:  # any filesystem's error: name the remote, say what to do
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise UserError(
            f"DVC remote {remote.name!r} ({remote.fs.unstrip_protocol(remote.path)}) is"
            f" unreachable: {reason}; check its URL, endpoint and credentials, then rerun"
        ) from None
    in_remote = bool(md5) and remote.odb.exists(md5)
    if not in_remote:
        raise UserError(
            f"{ADAPTER_DIR} ({md5 or 'not in dvc.lock'}) is not in the DVC remote"
            f" {remote.name!r}: run `dvc push` first"
        )
    data = adapter_archive(ADAPTER_DIR)
    sha256 = hashlib.sha256(data).hexdigest()
    fs = remote.fs
    target = fs.join(remote.path, "releases", name, f"v{version}", "adapter.tar.gz")
    if fs.exists(target):
        with fs.open(target, "rb") as fh:
            published = hashlib.sha256(fh.read()).hexdigest()
        if published != sha256:
            raise UserError(
                f"{target} already holds a different adapter (sha256 {published[:12]}, this one"
                f" {sha256[:12]}): published releases are never overwritten"
            )
    elif write:
        fs.makedirs(fs.parent(target), exist_ok=True)
        with fs.open(target, "wb") as out:
            out.write(data)
    if fs.protocol in ("local", "file"):  # a path, relative to the repository when inside it
        cwd = Path.cwd().resolve()
        path = Path(target).resolve()
        uri = str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
    else:
        uri = target if "://" in target else f"{fs.protocol}://{target}"
    return uri, sha256


def staging_record(name: str, mv, uri: str, sha256: str) -> dict:
    """The record of MLflow version `mv`: a function of the version alone."""
    tags = mv.tags
    kind = tags.get("adapter_kind", "lora")
    r = int(tags.get("adapter_rank") or 0)
    return {
        "environment": STAGING,
        "model": {
            "name": name,
            "version": int(mv.version),
            "mlflow_run_id": mv.run_id,
            "base": tags.get("model_base") or load_params().model.base,
            "adapter": {
                "name": name.removeprefix("flywheel-"),
                "uri": uri,
                "sha256": sha256,
                "kind": kind,
                "rank": adapter_rank(r if kind == "lora" else 0),
            },
        },
        "source": {
            "commit": tags.get("git_commit"),
            "tag": version_tag(name, int(mv.version)),
            "data_md5": tags.get("dvc.md5.data/prepared"),
            "adapter_md5": tags.get("dvc.md5.models/adapter"),
            "params_md5": tags.get("params_md5"),
        },
        "metrics": {
            key.removeprefix("metric."): float(value)
            for key, value in sorted(tags.items())
            if key.startswith("metric.")
        },
    }


def check_servable(env: str, record: dict, push: bool) -> str:
    """Refuse (with --push, when the record reaches the cluster) a record vLLM cannot serve,
    unless params.yaml:release.servable_check is false; a warning line otherwise."""
    problems = servable_problems(record)
    if not problems:
        return ""
    text = "; ".join(problems)
    if push and load_params().release.servable_check:
        raise UserError(f"{env}: the cluster could not serve this release: {text}")
    return f"note: {env} record is for local rehearsal only ({text})"


@dataclass(frozen=True)
class Promotion:
    sha: str
    version: int


def promotion_commits(env: str, tip: str = "HEAD") -> list[Promotion]:
    """Promotion commits of `env` reachable from `tip` and not reverted, newest first."""
    log = gitops.git("log", "--format=%H%x00%s%x00%b%x1e", tip, "--", str(record_path(env).parent))
    reverted, found = set(), []
    for entry in filter(None, (e.strip() for e in log.split("\x1e"))):
        sha, subject, body = entry.split("\x00")
        m = re.search(r"This reverts commit ([0-9a-f]{40})", body)
        if subject.startswith('Revert "') and m:
            reverted.add(m.group(1))
            continue
        match = SUBJECT.match(subject)
        if match and match["env"] == env and sha not in reverted:
            found.append(Promotion(sha, int(match["version"])))
    return found


def commit_message(name: str, version: int, env: str, record: dict, data: bytes, **extra) -> str:
    body = {
        "Model-Version": version,
        "Environment": env,
        "MLflow-Run": record["model"]["mlflow_run_id"],
        "Adapter-SHA256": record["model"]["adapter"]["sha256"],
        "Release-SHA256": release_id(data),
        **extra,
    }
    lines = "\n".join(f"{k}: {v}" for k, v in body.items())
    return f"promote: {name} v{version} to {env}\n\n{lines}\n"


def require_clean_tree() -> None:
    """Refuse staged or uncommitted changes to tracked files: a release names a commit, and
    the working tree must be that commit (untracked files do not matter)."""
    if gitops.git("diff", "--cached", "--name-only"):
        raise UserError("changes are staged (`git status`): commit or unstage them, then rerun")
    dirty = gitops.git("diff", "--name-only").splitlines()
    if dirty:
        shown = ", ".join(dirty[:5]) + (", ..." if len(dirty) > 5 else "")
        raise UserError(
            f"uncommitted changes ({shown}): commit or stash them first, so the release names"
            " a commit that holds what you see"
        )


@dataclass(frozen=True)
class Release:
    """What a promotion commits: the record, and for production the champion and the commit
    the shared manifests are pinned to."""

    version: int
    record: dict
    champion: bytes | None = None
    pinned: str | None = None
    released_from: str = ""
    upload: bool = False  # publish the adapter archive before committing the record


def staging_release(name: str, version: int | None) -> Release:
    """The version registered from this checkout, published and recorded for staging."""
    adapter_md5 = dvc_hashes().get(str(ADAPTER_DIR))
    c = client()
    if version is None:
        matches = mlflow_call(
            "find the version registered from this checkout",
            c.search_model_versions,
            f"name = '{name}' and tag.`dvc.md5.models/adapter` = '{adapter_md5}'",
        )
        if not matches:
            raise UserError(
                f"no version of {name} was registered from this checkout's {ADAPTER_DIR}"
                f" ({adapter_md5}): run `llmops register` first"
            )
        version = max(int(v.version) for v in matches)
    mv = model_version(c, name, version)
    if mv.tags.get("gate") != "passed":
        raise UserError(f"{name} v{version} did not pass the gate: it is not promoted")
    if mv.tags.get("dvc.md5.models/adapter") != adapter_md5:
        raise UserError(
            f"{name} v{version} was built from commit {mv.tags.get('git_commit')}, not from"
            f" this checkout's {ADAPTER_DIR}: check that commit out and `dvc pull` first"
        )
    if stale_stages("dpo"):
        raise UserError(f"{ADAPTER_DIR} is not the one dvc.lock names: run `dvc checkout` first")
    uri, sha256 = publish_adapter(name, version, write=False)  # uploaded once accepted
    return Release(version, staging_record(name, mv, uri, sha256), upload=True)


def champion_of(mv) -> bytes:
    """The version's own per-example predictions, from the commit it was registered at and
    checked against the hash its `dvc.lock` recorded."""
    commit = mv.tags.get("git_commit")
    want = mv.tags.get(f"dvc.md5.{PREDICTIONS}")
    data = gitops.read_at(commit, PREDICTIONS) if commit else None
    if data is None or hashlib.md5(data).hexdigest() != want:
        raise UserError(
            f"v{mv.version}'s predictions are not at its commit {commit} (md5 {want}):"
            f" fetch that commit (`git fetch origin`) and retry"
        )
    return data


def staging_release_at(ref: str, tip: str) -> dict:
    """The record staging ran at `ref`, refused when it is no release or when its staging
    promotion was rolled back before `tip`."""
    data = gitops.read_at(ref, record_path(STAGING))
    record = parse_record(data)
    version = (record.get("model") or {}).get("version")
    now = parse_record(gitops.read_at(tip, record_path(STAGING))).get("model", {})
    in_staging = f"staging now runs v{now.get('version')} ({now.get('adapter', {}).get('sha256')})"
    if not version:
        raise UserError(f"staging ran no model at {ref[:12]}: nothing to release ({in_staging})")
    introduced = [
        p.sha
        for p in promotion_commits(STAGING, ref)
        if gitops.read_at(p.sha, record_path(STAGING)) == data
    ]
    if not introduced:
        raise UserError(f"no promotion commit set staging's record at {ref[:12]} ({in_staging})")
    live = {p.sha for p in promotion_commits(STAGING, tip)}
    if introduced[0] not in live:
        raise UserError(
            f"v{version} was rolled back in staging after {ref[:12]} (its promotion"
            f" {introduced[0][:12]} is reverted): it is not released; {in_staging}"
        )
    return record


def production_release(name: str, tag: str | None, branch: str, push: bool) -> Release:
    """Exactly what staging ran at the tagged commit, with its own champion."""
    ref = gitops.resolve(tag or "HEAD")
    if ref is None:
        raise UserError(f"--tag {tag}: no such tag or commit here (`git fetch --tags`)")
    if push:
        gitops.fetch_branch("origin", branch)
    tip = gitops.resolve(f"refs/remotes/origin/{branch}" if push else f"refs/heads/{branch}")
    if tip is None or not gitops.is_ancestor(ref, tip):
        raise UserError(f"{tag or ref[:12]} is not on {branch}: tag a commit of {branch}")
    record = {**staging_release_at(ref, tip), "environment": PRODUCTION}
    number = record["model"]["version"]
    mv = model_version(client(), name, number)
    if mv.tags.get("gate") != "passed" or mv.run_id != record["model"]["mlflow_run_id"]:
        raise UserError(f"MLflow's {name} v{number} is not the one staging ran: not released")
    return Release(number, record, champion_of(mv), ref, f"{tag or ref[:12]} ({ref})")


def promote(
    env: str, version: int | None = None, tag: str | None = None, push: bool = False
) -> str:
    check_env(env)
    name = load_params().mlflow.registered_model
    branch = target_branch(push)
    require_clean_tree()
    if push:  # nothing is published that could not be committed on origin
        gitops.require_remote("origin")
    if env == PRODUCTION:
        if version is not None:
            raise UserError("production takes what staging ran: name a release with --tag")
        release = production_release(name, tag, branch, push)
    else:
        release = staging_release(name, version)
    record = {**release.record, "environment": env}
    notes = [check_servable(env, record, push)]
    if release.upload:
        publish_adapter(name, release.version)
    files = release_files(env, record)
    trailer = {"Released-From": release.released_from} if release.released_from else {}
    message = commit_message(
        name, release.version, env, record, files[record_path(env).as_posix()], **trailer
    )

    def build(parent: str) -> str | None:
        content: dict[str, bytes | None] = dict(files)
        if release.champion is not None:
            content[CHAMPION_PREDICTIONS.as_posix()] = release.champion
        if release.pinned:
            kpath = kustomization_path(env)
            current = (gitops.read_at(parent, kpath) or b"").decode()
            content[kpath.as_posix()] = pin_shared(current, repo_url(), release.pinned).encode()
        return gitops.commit_files(parent, content, message)

    landed = gitops.land(branch, build, push)
    notes.append(sync_alias(name, env, release.version))
    notes.append(landed.local_note)
    tail = "".join(f"\n{n}" for n in notes if n)
    if landed.commit is None:
        return f"promote: {name} v{release.version} is already in {env}; nothing to commit{tail}"
    where = f"pushed to origin/{branch}" if landed.pushed else f"on {branch}"
    return f"promote: {name} v{release.version} to {env} ({landed.commit[:12]}, {where}){tail}"


RELEASE_PATHS = ("model-release.yaml", "model.env", "kustomization.yaml")


def revert_commit(env: str, parent: str, promotion: Promotion) -> str:
    """A revert of `promotion` on `parent`, refused unless it is what runs at `parent`."""
    allowed = {(record_path(env).parent / p).as_posix() for p in RELEASE_PATHS}
    allowed.add(CHAMPION_PREDICTIONS.as_posix())
    changed = gitops.changed_paths(promotion.sha)
    if not changed <= allowed:
        raise UserError(
            f"{promotion.sha[:12]} changes more than a release ({sorted(changed - allowed)}):"
            " not reverted"
        )
    files = {}
    for path in changed:
        if gitops.read_at(parent, path) != gitops.read_at(promotion.sha, path):
            raise UserError(
                f"{path} changed after {promotion.sha[:12]}: v{promotion.version} is not what"
                f" runs in {env}; revert by hand"
            )
        files[path] = gitops.read_at(f"{promotion.sha}^", path)
    subject = gitops.git("log", "-1", "--format=%s", promotion.sha)
    message = f'Revert "{subject}"\n\nThis reverts commit {promotion.sha}.\n'
    commit = gitops.commit_files(parent, files, message)
    if commit is None:
        raise UserError(f"reverting {promotion.sha[:12]} changes nothing")
    return commit


def release_history(env: str, tip: str) -> dict[str, int]:
    """{release id: version} of every record `env` ever had up to `tip`."""
    log = gitops.git("log", "--format=%H", tip, "--", str(record_path(env)))
    ids = {}
    for sha in log.split():
        data = gitops.read_at(sha, record_path(env))
        if data:
            ids[release_id(data)] = parse_record(data).get("model", {}).get("version")
    return ids


def rollback(
    env: str, to: str | None = None, push: bool = False, release: str | None = None
) -> str:
    """Revert promotions of `env`: the current one, the one with release id `release` (and
    nothing when it no longer runs), or down to version `to`."""
    check_env(env)
    target = int(to.removeprefix("model-v").removeprefix("v").split("@v")[-1]) if to else None
    outcome: dict = {}

    def build(parent: str) -> str | None:
        outcome.clear()
        data = gitops.read_at(parent, record_path(env))
        now = parse_record(data).get("model", {}).get("version")
        if release and (data is None or release_id(data) != release):
            known = release_history(env, parent)
            if release not in known:
                raise UserError(f"{env} never ran a release with id {release}: nothing reverted")
            outcome["noop"] = (
                f"rollback: release {release[:12]} (v{known[release]}) no longer runs in {env}"
                f" (now v{now}): nothing to revert"
            )
            return None
        head, done = parent, []
        for promotion in promotion_commits(env, parent):
            current = parse_record(gitops.read_at(head, record_path(env))).get("model", {})
            if target is not None and current.get("version") == target:
                break
            head = revert_commit(env, head, promotion)
            done.append(promotion.version)
            if target is None:
                break
        if not done:
            raise UserError(
                f"no promotion of {env} to revert" + (f" down to v{target}" if target else "")
            )
        now = parse_record(gitops.read_at(head, record_path(env))).get("model", {}).get("version")
        if target is not None and now != target:
            raise UserError(f"{env} never ran v{target}: nothing reverted")
        outcome.update(done=done, now=now)
        return head

    name = load_params().mlflow.registered_model
    require_registry()  # the alias moves with the revert: no revert the registry cannot follow
    landed = gitops.land(target_branch(push), build, push)
    if landed.commit is None:
        return outcome["noop"]
    sync_alias(name, env, outcome["now"])
    reverted = ", ".join(f"v{v}" for v in outcome["done"])
    note = f"\n{landed.local_note}" if landed.local_note else ""
    now = f"now v{outcome['now']} ({landed.commit[:12]})"
    return f"rollback: reverted {reverted} in {env}; {now}{note}"


def sync_alias(name: str, env: str, version: int | None) -> str:
    """Point the MLflow alias `env` at `version` (remove it for none); what changed."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        before = str(c.get_model_version_by_alias(name, env).version)
    except MlflowException as exc:
        if not missing(exc):
            raise mlflow_failure(f"read the alias {env}", exc) from None
        before = None
    after = str(version) if version else None
    if before == after:
        return ""
    if after:
        mlflow_call("move the alias", c.set_registered_model_alias, name, env, after)
    else:
        mlflow_call("remove the alias", c.delete_registered_model_alias, name, env)

    def shown(version: str | None) -> str:
        return f"v{version}" if version else "none"

    return f"MLflow alias {env}: {shown(before)} -> {shown(after)} (git wins)"


@command(
    "promote",
    help="release a registered model to an environment: one git commit",
    args=[
        arg("env", help="staging or production"),
        arg("--version", type=int, help="staging: MLflow version (default: this checkout's)"),
        arg("--tag", help="production: the release tag (what staging ran there)"),
        arg("--push", action="store_true", help="push the commit to origin"),
    ],
)
def main_promote(args: argparse.Namespace) -> int:
    print(promote(args.env, args.version, args.tag, args.push))
    return 0


@command(
    "rollback",
    help="git revert the last promotion of an environment",
    args=[
        arg("env", help="staging or production"),
        arg("--to", help="revert promotions down to this version (N or vN)"),
        arg(
            "--release",
            help="revert exactly this release id (RELEASE_SHA256); no-op if not current",
        ),
        arg("--push", action="store_true", help="push the revert"),
    ],
)
def main_rollback(args: argparse.Namespace) -> int:
    print(rollback(args.env, args.to, args.push, args.release))
    return 0
