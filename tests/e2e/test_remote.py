"""The DVC S3 remote against an S3-compatible server on 127.0.0.1 (moto): after `dvc push
--run-cache`, a fresh clone runs `dvc repro --pull` and recomputes nothing."""

import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from ..conftest import BIN, free_port

pytestmark = pytest.mark.e2e

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "flywheel-test",
    "AWS_SECRET_ACCESS_KEY": "flywheel-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "moto.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "moto.log").read_text()) from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def test_a_fresh_clone_reproduces_from_the_s3_remote_without_recomputing(
    workspace, tmp_path, s3_server
):
    import boto3

    env = {
        **os.environ,
        **S3_ENV,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }

    def sh(*cmd, cwd):
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        **{k.lower(): v for k, v in S3_ENV.items() if k != "AWS_DEFAULT_REGION"},
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="flywheel-dvc")
    repo, origin, clone = tmp_path / "repo", tmp_path / "origin.git", tmp_path / "clone"
    shutil.copytree(workspace, repo, symlinks=True)
    sh("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    sh("dvc", "remote", "add", "-d", "s3", "s3://flywheel-dvc/store", cwd=repo)
    sh("dvc", "remote", "modify", "s3", "endpointurl", s3_server, cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh(
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@localhost",
        "commit",
        "-q",
        "-m",
        "results",
        cwd=repo,
    )
    sh("git", "push", "-q", str(origin), "main", cwd=repo)
    sh("dvc", "push", "--run-cache", cwd=repo)
    stored = s3.list_objects_v2(Bucket="flywheel-dvc", Prefix="store/")
    assert any("/runs/" in o["Key"] for o in stored["Contents"])  # the run cache went too

    sh("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    out = sh("dvc", "repro", "--pull", cwd=clone)
    assert "Running stage" not in out
    for path in (
        "models/base/config.json",
        "models/adapter/config.json",
        "data/prepared/train.jsonl",
    ):
        assert (clone / path).exists(), path
    assert "up to date" in sh("dvc", "status", cwd=clone).lower()
