"""Release pieces that need no server: the adapter archive, the rank vLLM gets, model.env."""

import hashlib
import io
import json
import os
import tarfile

from pipeline.release.promote import adapter_archive, adapter_rank
from pipeline.release.record import model_env


def test_the_archive_is_byte_identical_for_identical_files(tmp_path):
    for name in ("a", "b"):
        d = tmp_path / name
        (d / "sub").mkdir(parents=True)
        (d / "adapter_config.json").write_text('{"r": 16}')
        (d / "sub/weights.bin").write_bytes(b"\x00\x01" * 100)
    os.utime(tmp_path / "b/adapter_config.json", (1, 1))  # other times and order of creation
    a, b = adapter_archive(tmp_path / "a"), adapter_archive(tmp_path / "b")
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        assert tar.getnames() == ["adapter_config.json", "sub/weights.bin"]
    (tmp_path / "b/sub/weights.bin").write_bytes(b"\x00\x02" * 100)
    assert adapter_archive(tmp_path / "b") != a


def test_rank_is_rounded_up_to_one_vllm_accepts(tmp_path):
    for r, expected in ((4, 8), (8, 8), (16, 16), (24, 32), (300, 320)):
        (tmp_path / "adapter_config.json").write_text(json.dumps({"r": r}))
        assert adapter_rank(tmp_path) == expected
    (tmp_path / "adapter_config.json").unlink()  # full weights: vLLM's default
    assert adapter_rank(tmp_path) == 16


def test_model_env_carries_what_the_pods_read():
    record = {
        "model": {
            "version": 3,
            "base": "Qwen/Qwen2.5-0.5B-Instruct",
            "adapter": {
                "name": "notices",
                "uri": "s3://b/r/v3/adapter.tar.gz",
                "sha256": "ab",
                "rank": 16,
            },
        }
    }
    env = dict(line.split("=", 1) for line in model_env(record).splitlines())
    assert env == {
        "MODEL_VERSION": "3",
        "SERVED_MODEL_NAME": "Qwen/Qwen2.5-0.5B-Instruct",
        "BASE_MODEL": "Qwen/Qwen2.5-0.5B-Instruct",
        "ADAPTER_NAME": "notices",
        "ADAPTER_URI": "s3://b/r/v3/adapter.tar.gz",
        "ADAPTER_SHA256": "ab",
        "MAX_LORA_RANK": "16",
    }


def test_commits_fall_back_to_an_llmops_identity_only_where_git_has_none(tmp_path, monkeypatch):
    import subprocess

    from pipeline.release.promote import IDENTITY, git, identity

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q"], check=True)
    assert identity() == IDENTITY
    git(*identity(), "commit", "-q", "--allow-empty", "-m", "first")
    assert git("log", "-1", "--format=%an <%ae>") == "llmops <llmops@localhost>"
    git("config", "user.name", "Ada")
    assert identity() == []
