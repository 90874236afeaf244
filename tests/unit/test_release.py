"""Release pieces that need no server: the adapter archive and rank, records and model.env,
what vLLM on a cluster can serve, production's pin of the shared manifests, the plumbing
commits (never touching a person's work), reverts by release id, and the CI bundle's rules."""

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.io import UserError
from pipeline.release import gitops
from pipeline.release.ci import commit_results, read_bundle, removed_results, tracked_outputs
from pipeline.release.promote import adapter_archive, adapter_rank, staging_record
from pipeline.release.record import (
    model_env,
    pin_shared,
    pinned_ref,
    record_bytes,
    release_files,
    release_id,
    servable_problems,
)

from ..conftest import ROOT


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


def test_rank_is_rounded_up_to_one_vllm_accepts():
    # vLLM's MaxLoRARanks (vllm/config/lora.py): 1, 8, 16, 32, 64, 128, 256, 320, 512
    for r, expected in ((1, 1), (4, 8), (8, 8), (16, 16), (24, 32), (300, 320), (512, 512)):
        assert adapter_rank(r) == expected
    assert adapter_rank(0) == 16  # full weights: vLLM's default
    assert adapter_rank(600) == 600  # kept as is: servable_problems refuses it


RECORD = {
    "environment": "staging",
    "model": {
        "name": "flywheel-notices",
        "version": 3,
        "mlflow_run_id": "abc",
        "base": "Qwen/Qwen2.5-0.5B-Instruct",
        "adapter": {
            "name": "notices",
            "uri": "s3://b/r/v3/adapter.tar.gz",
            "sha256": "ab",
            "kind": "lora",
            "rank": 16,
        },
    },
}


def test_model_env_carries_what_the_pods_read_and_the_release_id():
    files = release_files("staging", RECORD)
    data = files["manifests/overlays/staging/model-release.yaml"]
    env = dict(line.split("=", 1) for line in model_env(RECORD, release_id(data)).splitlines())
    assert env == {
        "MODEL_VERSION": "3",
        "RELEASE_SHA256": hashlib.sha256(data).hexdigest(),
        "SERVED_MODEL_NAME": "Qwen/Qwen2.5-0.5B-Instruct",
        "BASE_MODEL": "Qwen/Qwen2.5-0.5B-Instruct",
        "ADAPTER_NAME": "notices",
        "ADAPTER_URI": "s3://b/r/v3/adapter.tar.gz",
        "ADAPTER_SHA256": "ab",
        "MAX_LORA_RANK": "16",
    }
    assert files["manifests/overlays/staging/model.env"].decode().startswith("MODEL_VERSION=3\n")


Version = SimpleNamespace(
    version="3",
    run_id="abc",
    tags={
        "git_commit": "c" * 40,
        "model_base": "Qwen/Qwen2.5-0.5B-Instruct",
        "adapter_kind": "lora",
        "adapter_rank": "12",
        "dvc.md5.models/adapter": "m1",
        "dvc.md5.data/prepared": "d1",
        "params_md5": "p1",
        "metric.classify.accuracy": "0.95",
        "gate": "passed",
    },
)


def test_a_record_is_a_function_of_the_version_alone():
    """Promoting the same version again writes the same bytes: no commit, no new ConfigMap
    hash, no canary (params or metrics of the checkout play no part)."""
    one = staging_record("flywheel-notices", Version, "s3://b/v3.tar.gz", "ab")
    two = staging_record("flywheel-notices", Version, "s3://b/v3.tar.gz", "ab")
    assert record_bytes("staging", one) == record_bytes("staging", two)
    assert one["model"]["adapter"]["rank"] == 16 and one["source"]["tag"] == "flywheel-notices@v3"
    assert one["metrics"] == {"classify.accuracy": 0.95}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"base": "builtin:tiny"}, "exists only on this machine"),
        ({"base": "/models/qwen"}, "exists only on this machine"),
        ({"adapter": {"uri": ".dvc-remote/releases/x.tar.gz"}}, "not in object storage"),
        ({"adapter": {"kind": "full"}}, "full weights"),
        ({"adapter": {"rank": 1024}}, "above vLLM's --max-lora-rank limit 512"),
    ],
)
def test_a_record_the_cluster_cannot_serve_is_named_with_what_to_set(change, problem):
    assert servable_problems(RECORD) == []
    model = {**RECORD["model"], **{k: v for k, v in change.items() if k != "adapter"}}
    model["adapter"] = {**RECORD["model"]["adapter"], **change.get("adapter", {})}
    (found,) = servable_problems({**RECORD, "model": model})
    assert problem in found
    assert "params.yaml" in found or "dvc remote modify" in found  # what to set instead


KUSTOMIZATION = """\
resources:
  - ../../base
  - hpa.yaml
components:
  - ../../components/canary-thresholds
  - ../../components/release
"""


def test_production_pins_every_shared_manifest_to_the_released_commit():
    url, first, second = "https://github.com/example/flywheel.git", "a" * 40, "b" * 40
    pinned = pin_shared(KUSTOMIZATION, url, first)
    assert pinned.splitlines() == [
        "resources:",
        f"  - {url}//manifests/base?ref={first}",
        "  - hpa.yaml",
        "components:",
        f"  - {url}//manifests/components/canary-thresholds?ref={first}",
        f"  - {url}//manifests/components/release?ref={first}",
    ]
    assert pinned_ref(pinned) == first and pinned_ref(KUSTOMIZATION) is None
    repinned = pin_shared(pinned, url, second)
    assert pinned_ref(repinned) == second and repinned.count(second) == 3
    with pytest.raises(UserError, match="several commits"):
        pinned_ref(pinned.replace(f"base?ref={first}", f"base?ref={second}"))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q", "-b", "main"], check=True)
    Path("a.txt").write_text("a\n")
    subprocess.run(["git", "add", "a.txt"], check=True)
    gitops.git("commit", "-q", "-m", "first", env=gitops.identity())
    return tmp_path


def test_commits_fall_back_to_an_llmops_identity_only_where_git_has_none(repo):
    assert gitops.identity() == gitops.BOT
    assert gitops.git("log", "-1", "--format=%an <%ae>") == "llmops <llmops@localhost>"
    gitops.git("config", "user.name", "Ada")
    assert gitops.identity() == {}


def test_release_commits_never_touch_a_persons_work(repo):
    """Staged and unstaged edits stay exactly as they were, and none of them is committed."""
    Path("a.txt").write_text("edited, not staged\n")
    Path("b.txt").write_text("staged\n")
    gitops.git("add", "b.txt")
    before = gitops.git("status", "--porcelain")
    head = gitops.resolve("HEAD")
    commit = gitops.commit_files(head, {"release.yaml": b"v: 1\n"}, "promote: m v1 to staging")
    assert gitops.changed_paths(commit) == {"release.yaml"}
    assert gitops.commit_files(commit, {"release.yaml": b"v: 1\n"}, "again") is None
    landed = gitops.land("main", lambda parent: commit if parent == head else None, push=False)
    assert landed.commit == commit and gitops.resolve("HEAD") == commit
    assert Path("release.yaml").read_text() == "v: 1\n"  # the working tree followed
    assert gitops.git("status", "--porcelain") == before  # and kept the edits


def test_a_push_that_lost_a_race_is_rebuilt_on_the_new_tip_without_a_reset(repo, tmp_path):
    origin, other = tmp_path / "origin.git", tmp_path / "other"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    gitops.git("remote", "add", "origin", str(origin))
    gitops.git("push", "-q", "origin", "main")
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True)
    (other / "c.txt").write_text("another promotion\n")
    env = {**gitops.BOT}
    for cmd in (["add", "c.txt"], ["commit", "-q", "-m", "theirs"], ["push", "-q"]):
        subprocess.run(["git", *cmd], cwd=other, check=True, env={**os.environ, **env})
    Path("a.txt").write_text("my uncommitted edit\n")
    parents = []

    def build(parent: str) -> str | None:
        parents.append(parent)
        return gitops.commit_files(parent, {"release.yaml": b"v: 2\n"}, "promote: m v2 to x")

    landed = gitops.land("main", build, push=True)
    assert landed.pushed and len(parents) == 1  # fetched first: built on their commit
    log = subprocess.run(
        ["git", "log", "--format=%s", "main"], cwd=origin, capture_output=True, text=True
    ).stdout.split("\n")
    assert log[:3] == ["promote: m v2 to x", "theirs", "first"]
    assert Path("a.txt").read_text() == "my uncommitted edit\n"
    assert Path("c.txt").read_text() == "another promotion\n"  # fast-forwarded


def test_a_rollback_names_its_release_and_reverts_it_once(repo, monkeypatch):
    """`--release ID` reverts exactly that release; again, or for a release that no longer
    runs, nothing; an id the environment never ran is an error."""
    from pipeline.release import promote

    monkeypatch.setattr(promote, "sync_alias", lambda *a: "")
    monkeypatch.setattr(
        promote,
        "load_params",
        lambda: SimpleNamespace(mlflow=SimpleNamespace(registered_model="flywheel-notices")),
    )
    env = "production"
    overlay = Path("manifests/overlays") / env
    overlay.mkdir(parents=True)
    v0 = {**RECORD, "environment": env, "model": {**RECORD["model"], "version": 0}}
    for path, data in release_files(env, v0).items():
        Path(path).write_bytes(data)
    gitops.git("add", "-A")
    gitops.git("commit", "-q", "-m", "initial records", env=gitops.identity())
    ids = {}
    for version in (1, 2):
        record = {**v0, "model": {**v0["model"], "version": version}}
        files = release_files(env, record)
        ids[version] = release_id(files[f"manifests/overlays/{env}/model-release.yaml"])
        head = gitops.resolve("HEAD")
        commit = gitops.commit_files(head, files, f"promote: flywheel-notices v{version} to {env}")
        gitops.land("main", lambda parent, c=commit: c, push=False)
    out = promote.rollback(env, release=ids[1])
    assert "no longer runs" in out and "now v2" in out  # v2 superseded it: nothing reverted
    assert "reverted v2" in promote.rollback(env, release=ids[2])
    assert "no longer runs" in promote.rollback(env, release=ids[2])  # the repeated notification
    subjects = gitops.git("log", "--format=%s").splitlines()
    assert subjects[0] == 'Revert "promote: flywheel-notices v2 to production"'
    assert sum(s.startswith("Revert") for s in subjects) == 1
    with pytest.raises(UserError, match="never ran a release"):
        promote.rollback(env, release="0" * 64)


def test_the_results_bundle_holds_only_regular_files_at_result_paths(monkeypatch):
    monkeypatch.chdir(ROOT)
    allowed = {"dvc.lock", "reports/pr/report.md", *tracked_outputs()}
    assert {"metrics/eval.json", "metrics/predictions.jsonl", "plots/train_loss.csv"} <= allowed
    assert not any(p.startswith(("models/", "data/")) for p in allowed)

    def bundle(*members: tuple[str, bytes, bytes]) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, kind, data in members:
                info = tarfile.TarInfo(name)
                info.type, info.size = kind, len(data)
                if kind == tarfile.SYMTYPE:
                    info.linkname, info.size = "/etc/passwd", 0
                tar.addfile(info, io.BytesIO(data))
        return raw.getvalue()

    ok = bundle(
        ("dvc.lock", tarfile.REGTYPE, b"schema: '2.0'\n"),
        ("plots/confusion/sources.helpdesk.csv", tarfile.REGTYPE, b"actual,predicted\n"),
    )
    assert read_bundle(ok, allowed) == {
        "dvc.lock": b"schema: '2.0'\n",
        "plots/confusion/sources.helpdesk.csv": b"actual,predicted\n",  # in a tracked directory
    }
    for evil in (
        ("pipeline/cli.py", tarfile.REGTYPE, b"import os"),
        ("../dvc.lock", tarfile.REGTYPE, b""),
        ("plots/confusion/../../pipeline/cli.py", tarfile.REGTYPE, b""),
        ("/plots/confusion/x.csv", tarfile.REGTYPE, b""),
        ("plots/confusion-evil/x.csv", tarfile.REGTYPE, b""),
        ("metrics/eval.json", tarfile.SYMTYPE, b""),
    ):
        with pytest.raises(UserError, match="not an allowed result"):
            read_bundle(bundle(("dvc.lock", tarfile.REGTYPE, b""), evil), allowed)
    with pytest.raises(UserError, match=r"not a tar\.gz"):
        read_bundle(b"not a tarball", allowed)


def test_results_of_a_directory_output_are_committed_file_by_file_stale_ones_removed(
    tmp_path, monkeypatch
):
    """plots/confusion/ holds one CSV per classification group: a dataset that is gone takes
    its plot with it, so dvc.lock's hash of the directory matches what git holds."""
    monkeypatch.chdir(tmp_path)
    gitops.git("init", "-q", "-b", "main")
    Path("dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: x\n    metrics:\n      - metrics/eval.json:\n"
        "          cache: false\n    plots:\n      - plots/confusion:\n          cache: false\n"
    )
    Path("metrics").mkdir()
    Path("plots/confusion").mkdir(parents=True)
    for name, text in (
        ("dvc.lock", "one"),
        ("metrics/eval.json", "{}"),
        ("plots/confusion/classify.csv", "a"),
        ("plots/confusion/sources.old.csv", "b"),
    ):
        Path(name).write_text(text)
    gitops.git("add", "-A")
    gitops.git("commit", "-qm", "first", env=gitops.identity())
    Path("plots/confusion/sources.old.csv").unlink()
    Path("plots/confusion/sources.new.csv").write_text("c")
    Path("dvc.lock").write_text("two")
    head = gitops.resolve("HEAD")
    assert removed_results(head, {"plots/confusion/classify.csv"}) == {
        "plots/confusion/sources.old.csv": None
    }
    assert commit_results(local=True) == 0
    tree = gitops.git("ls-tree", "-r", "--name-only", "HEAD").splitlines()
    assert tree == [
        "dvc.lock",
        "dvc.yaml",
        "metrics/eval.json",
        "plots/confusion/classify.csv",
        "plots/confusion/sources.new.csv",
    ]
    assert gitops.git("status", "--porcelain") == ""
