"""The release record of an environment: what runs there, read from and written to git.

manifests/overlays/<env>/model-release.yaml is the record (model version, MLflow run, adapter
archive URI and sha256, the commit and data it was registered from, its evaluation metrics).
model.env beside it is what the pods read, plus RELEASE_SHA256, the sha256 of the record file:
the overlay turns both into the ConfigMap vllm-model and copies version and release id into
the Rollout's annotations, so an abort notification names exactly the release that failed.
A record is a function of the model version alone, so promoting the same version again
changes no byte, no ConfigMap hash and starts no canary.

Production also pins the shared manifests (base, components) to the commit it was released
from (`<repoURL>//manifests/base?ref=<sha>`): a base or template change reaches staging at
merge and production only with the next release tag, and `git revert` of a release restores
model, champion and manifests together.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from pipeline.io import UserError, atomic_write_text
from pipeline.release.gitops import read_at

OVERLAYS = Path("manifests/overlays")
APPLICATIONSET = Path("argocd/applicationset.yaml")
PRODUCTION = "production"
HEADER = """\
# The {env} release record, written by `llmops promote {env}` together with model.env (what
# the pods read). Git is the source of truth: `git revert` of a promotion commit restores
# the previous record.
"""
# vLLM's --max-lora-rank accepts these (vllm/config/lora.py, MaxLoRARanks)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# what the Rollout's fetch-adapter initContainer (`aws s3 cp`) can download
CLUSTER_URI_SCHEMES = ("s3://",)


def record_path(env: str) -> Path:
    return OVERLAYS / env / "model-release.yaml"


def env_path(env: str) -> Path:
    return OVERLAYS / env / "model.env"


def kustomization_path(env: str) -> Path:
    return OVERLAYS / env / "kustomization.yaml"


def environments() -> list[str]:
    return sorted(p.parent.name for p in OVERLAYS.glob("*/model-release.yaml"))


def check_env(env: str) -> None:
    if not record_path(env).exists():
        known = ", ".join(environments())
        raise UserError(f"unknown environment {env!r}: no {record_path(env)} (known: {known})")


def parse_record(data: bytes | None) -> dict:
    return (yaml.safe_load(data) or {}) if data else {}


def read_record(env: str, ref: str | None = None) -> dict:
    """The record of `env` in the working tree, or at commit `ref` ({} where it is absent)."""
    check_env(env)
    if ref is None:
        return parse_record(record_path(env).read_bytes())
    return parse_record(read_at(ref, record_path(env)))


def record_bytes(env: str, record: dict) -> bytes:
    body = yaml.safe_dump(record, allow_unicode=True, sort_keys=False)
    return (HEADER.format(env=env) + body).encode()


def release_id(data: bytes) -> str:
    """The release id: sha256 of the record file as committed."""
    return hashlib.sha256(data).hexdigest()


def model_env(record: dict, release_sha256: str) -> str:
    """model.env for a record: the values the vLLM pods and their initContainers read."""
    model, adapter = record["model"], record["model"]["adapter"]
    values = {
        "MODEL_VERSION": model["version"],
        "RELEASE_SHA256": release_sha256,
        "SERVED_MODEL_NAME": model["base"],
        "BASE_MODEL": model["base"],
        "ADAPTER_NAME": adapter["name"],
        "ADAPTER_URI": adapter["uri"],
        "ADAPTER_SHA256": adapter["sha256"],
        "MAX_LORA_RANK": adapter["rank"],
    }
    return "".join(f"{k}={v}\n" for k, v in values.items())


def release_files(env: str, record: dict) -> dict[str, bytes]:
    """{path: content} of the record and model.env of `env`."""
    data = record_bytes(env, record)
    return {
        record_path(env).as_posix(): data,
        env_path(env).as_posix(): model_env(record, release_id(data)).encode(),
    }


def write_record(env: str, record: dict) -> list[Path]:
    """Write the record and model.env of `env` into the working tree; the paths written."""
    check_env(env)
    written = []
    for path, content in release_files(env, record).items():
        atomic_write_text(Path(path), content.decode())
        written.append(Path(path))
    return written


def servable_problems(record: dict) -> list[str]:
    """Why vLLM on the cluster could not serve this record (empty: it can), each with what to
    set instead."""
    model = record.get("model", {})
    adapter = model.get("adapter", {})
    problems = []
    base = str(model.get("base", ""))
    if base.startswith("builtin:") or Path(base).is_absolute() or base.startswith("."):
        problems.append(
            f"base {base!r} exists only on this machine: set params.yaml:model.base to a"
            " Hugging Face id (or a mirror's) that the vLLM pods can load"
        )
    uri = str(adapter.get("uri", ""))
    if not uri.startswith(CLUSTER_URI_SCHEMES):
        problems.append(
            f"adapter URI {uri!r} is not in object storage: point the DVC remote at S3"
            " (`dvc remote modify storage url s3://...`), which the pods download from"
        )
    if adapter.get("kind", "lora") != "lora":
        problems.append(
            "the adapter is full weights (train.method: full), which vLLM's --lora-modules"
            " cannot load: set params.yaml:train.method to lora"
        )
    elif int(adapter.get("rank") or 0) > max(VLLM_LORA_RANKS):
        problems.append(
            f"LoRA rank {adapter.get('rank')} is above vLLM's --max-lora-rank limit"
            f" {max(VLLM_LORA_RANKS)}: lower params.yaml:train.lora.r"
        )
    return problems


def repo_url(applicationset: Path = APPLICATIONSET) -> str:
    """The repository URL Argo CD syncs from (the ApplicationSet's repoURL)."""
    spec = (yaml.safe_load(applicationset.read_text(encoding="utf-8")) or {}).get("spec", {})
    url = spec.get("template", {}).get("spec", {}).get("source", {}).get("repoURL")
    if not url:
        raise UserError(f"{applicationset}: no spec.template.spec.source.repoURL")
    return url


# a shared manifests reference in an overlay: `- ../../base` or its pinned remote form
SHARED = re.compile(
    r"^(?P<indent>\s*-\s+)(?:\.\./\.\./(?P<local>[\w./-]+?)|(?P<url>\S+?)//manifests/"
    r"(?P<remote>[\w./-]+?)\?ref=(?P<ref>[0-9a-f]{40}))\s*$",
    re.MULTILINE,
)


def pin_shared(kustomization: str, url: str, commit: str) -> str:
    """The kustomization with every shared manifests reference pinned to `commit` of `url`."""

    def pinned(m: re.Match) -> str:
        path = m["local"] or m["remote"]
        return f"{m['indent']}{url}//manifests/{path}?ref={commit}"

    return SHARED.sub(pinned, kustomization)


def pinned_ref(kustomization: str) -> str | None:
    """The commit the shared manifests are pinned to, or None where they are local."""
    refs = {m["ref"] for m in SHARED.finditer(kustomization) if m["ref"]}
    if len(refs) > 1:
        raise UserError(f"shared manifests pinned to several commits: {sorted(refs)}")
    return refs.pop() if refs else None
