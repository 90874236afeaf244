"""The release record of an environment: what runs there, read from and written to git.

manifests/overlays/<env>/model-release.yaml is the record (model version, MLflow run, adapter
archive URI and sha256, data and params hashes, the commit it was trained from, evaluation
metrics); model.env beside it is what the pods read (the overlay turns both into the
ConfigMap vllm-model). The production record's model is the champion the gate compares
against (champion/predictions.jsonl, written in the same promotion commit).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pipeline.io import UserError, atomic_write_text

OVERLAYS = Path("manifests/overlays")
HEADER = """\
# The {env} release record, written by `llmops promote {env}` together with model.env (what
# the pods read). Git is the source of truth: `git revert` of a promotion commit restores
# the previous record.
"""


def record_path(env: str) -> Path:
    return OVERLAYS / env / "model-release.yaml"


def env_path(env: str) -> Path:
    return OVERLAYS / env / "model.env"


def environments() -> list[str]:
    return sorted(p.parent.name for p in OVERLAYS.glob("*/model-release.yaml"))


def check_env(env: str) -> None:
    if not record_path(env).exists():
        known = ", ".join(environments())
        raise UserError(f"unknown environment {env!r}: no {record_path(env)} (known: {known})")


def read_record(env: str, ref: str | None = None) -> dict:
    """The record of `env` in the working tree, or at git revision `ref`."""
    check_env(env)
    if ref is None:
        text = record_path(env).read_text(encoding="utf-8")
    else:
        proc = subprocess.run(
            ["git", "show", f"{ref}:{record_path(env)}"], capture_output=True, text=True
        )
        if proc.returncode != 0:
            return {}
        text = proc.stdout
    return yaml.safe_load(text) or {}


def model_env(record: dict) -> str:
    """model.env for a record: the values the vLLM pods and their initContainers read."""
    model, adapter = record["model"], record["model"]["adapter"]
    values = {
        "MODEL_VERSION": model["version"],
        "SERVED_MODEL_NAME": model["base"],
        "BASE_MODEL": model["base"],
        "ADAPTER_NAME": adapter["name"],
        "ADAPTER_URI": adapter["uri"],
        "ADAPTER_SHA256": adapter["sha256"],
        "MAX_LORA_RANK": adapter["rank"],
    }
    return "".join(f"{k}={v}\n" for k, v in values.items())


def write_record(env: str, record: dict) -> list[Path]:
    """Write the record and model.env of `env`; return the paths written."""
    check_env(env)
    body = yaml.safe_dump(record, allow_unicode=True, sort_keys=False)
    atomic_write_text(record_path(env), HEADER.format(env=env) + body)
    atomic_write_text(env_path(env), model_env(record))
    return [record_path(env), env_path(env)]
