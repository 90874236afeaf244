"""The GitOps story, for real: a copy of the trained workspace with a bare `origin`, a DVC
remote and an MLflow server on 127.0.0.1. PR branch -> repro -> report -> merge -> register
-> promote staging -> tag -> promote production -> a second model -> rollback -> status."""

import json
import os
import shutil
import subprocess

import pytest
import yaml

from ..conftest import BIN, run, running_mlflow_server

pytestmark = pytest.mark.e2e


class Story:
    def __init__(self, repo, tracking_uri):
        self.repo, self.env = (
            repo,
            {
                **os.environ,
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "MLFLOW_TRACKING_URI": tracking_uri,
                "DVC_NO_ANALYTICS": "1",
            },
        )

    def sh(self, *cmd, check=True):
        proc = subprocess.run(cmd, cwd=self.repo, env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def git(self, *args):
        return self.sh("git", *args).stdout.strip()

    def model_config(self, env):
        """MODEL_VERSION in the rendered overlay, as Argo CD would apply it (production's pinned
        shared manifests fetched from this clone)."""
        from pipeline.deploy.manifests import render

        objs = render(self.repo / "manifests/overlays" / env)
        (cm,) = [d for d in objs if d["metadata"]["name"].startswith("vllm-model-")]
        return cm["data"]["MODEL_VERSION"]

    def set_params(self, section, key, value):
        path = self.repo / "params.yaml"
        params = yaml.safe_load(path.read_text())
        params[section][key] = value
        path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))


@pytest.fixture
def story(workspace, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(workspace, repo, symlinks=True)
    run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git")], cwd=tmp_path)
    with running_mlflow_server(f"sqlite:///{repo / '.mlflow/mlflow.db'}", tmp_path) as url:
        s = Story(repo, url)
        s.git("config", "user.name", "release-bot")
        s.git("config", "user.email", "release-bot@localhost")
        s.sh("dvc", "remote", "modify", "storage", "url", str(tmp_path / "dvc-remote"))
        s.set_params("release", "servable_check", False)  # vLLM cannot serve the tiny model
        s.git("add", "-A")
        s.git("commit", "-q", "-m", "pipeline results")
        s.git("remote", "add", "origin", str(tmp_path / "origin.git"))
        s.git("push", "-q", "-u", "origin", "main")
        yield s


def test_release_story(story):
    s = story
    # a pull request: a reviewed params change, its report, merged
    s.git("checkout", "-q", "-b", "pr/tolerance")
    s.set_params("gate", "tolerance", 0.03)
    assert "Running stage 'gate'" in s.sh("dvc", "repro").stdout
    s.sh("llmops", "report", "--base", "main", "--out", "reports/pr")
    assert "tolerance" in (s.repo / "reports/pr/report.md").read_text()
    s.git("commit", "-q", "-am", "gate: tolerance 0.03")
    s.git("checkout", "-q", "main")
    s.git("merge", "-q", "--no-ff", "-m", "Merge pr/tolerance", "pr/tolerance")

    # register: once per run, and the version is a git tag on the commit it came from
    assert "registered flywheel-notices v1" in s.sh("llmops", "register").stdout
    assert "already registered as flywheel-notices v1" in s.sh("llmops", "register").stdout
    assert s.git("rev-list", "-n1", "flywheel-notices@v1") == s.git("rev-parse", "HEAD")

    # an adapter that is not in the DVC remote is refused, and nothing is committed
    head = s.git("rev-parse", "HEAD")
    refused = s.sh("llmops", "promote", "staging", check=False)
    assert refused.returncode == 2 and "not in the DVC remote" in refused.stderr
    assert s.git("rev-parse", "HEAD") == head and s.git("status", "--porcelain") == ""
    s.sh("dvc", "push", "-q")

    refused = s.sh("llmops", "promote", "staging", "--push", check=False)
    assert refused.returncode == 2 and "not on origin: push them first" in refused.stderr
    s.git("push", "-q", "origin", "main")
    s.sh("llmops", "promote", "staging", "--push")
    assert s.git("log", "-1", "--format=%s") == "promote: flywheel-notices v1 to staging"
    assert s.model_config("staging") == "1" and s.model_config("production") == "0"
    assert "already in staging" in s.sh("llmops", "promote", "staging").stdout
    assert s.git("rev-parse", "HEAD") == s.git("rev-parse", "origin/main")

    # a person's release tag promotes what staging ran there: its champion, pinned manifests
    s.git("tag", "-a", "v1.0.0", "-m", "release 1.0.0")  # on main, after the staging promotion
    s.sh("llmops", "promote", "production", "--tag", "v1.0.0")
    assert s.model_config("production") == "1"
    kustomization = (s.repo / "manifests/overlays/production/kustomization.yaml").read_text()
    assert f"manifests/base?ref={s.git('rev-list', '-n1', 'v1.0.0')}" in kustomization
    champion_v1 = (s.repo / "champion/predictions.jsonl").read_text()
    assert champion_v1 == (s.repo / "metrics/predictions.jsonl").read_text()

    # a second model (shorter DPO), through the same path
    s.set_params("dpo", "max_steps", 40)
    s.sh("dvc", "repro")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "dpo: 40 steps")
    s.sh("dvc", "push", "-q")
    assert "registered flywheel-notices v2" in s.sh("llmops", "register").stdout
    refused = s.sh("llmops", "promote", "production", "--version", "2", check=False)
    assert refused.returncode == 2 and "takes what staging ran" in refused.stderr
    s.sh("llmops", "promote", "staging")
    s.git("tag", "-a", "v1.1.0", "-m", "release 1.1.0")
    s.sh("llmops", "promote", "production", "--tag", "v1.1.0")
    assert s.model_config("production") == "2"
    assert (s.repo / "champion/predictions.jsonl").read_text() != champion_v1
    # the gate last compared against v1; with v2 the champion, it must run again
    assert "gate" in json.loads(s.sh("dvc", "status", "--json").stdout)

    # rollback: a revert commit, the previous model and champion, the alias follows
    before = int(s.git("rev-list", "--count", "HEAD"))
    out = s.sh("llmops", "rollback", "production").stdout
    assert "reverted v2 in production; now v1" in out
    assert int(s.git("rev-list", "--count", "HEAD")) == before + 1  # history kept
    assert s.git("log", "-1", "--format=%s").startswith('Revert "promote: flywheel-notices v2')
    assert s.model_config("production") == "1" and s.model_config("staging") == "2"
    assert (s.repo / "champion/predictions.jsonl").read_text() == champion_v1
    # the champion is v1's again, the one the gate's current result was computed against
    assert "gate" not in json.loads(s.sh("dvc", "status", "--json").stdout)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=s.env["MLFLOW_TRACKING_URI"])
    assert client.get_model_version_by_alias("flywheel-notices", "production").version == "1"
    assert client.get_model_version_by_alias("flywheel-notices", "staging").version == "2"

    shown = s.sh("llmops", "status", "production").stdout
    v1 = client.get_model_version("flywheel-notices", "1")
    assert "production: flywheel-notices v1" in shown and v1.run_id[:12] in shown

    # staging back to nothing, then nothing left to revert
    assert "now v1" in s.sh("llmops", "rollback", "staging").stdout
    assert "now v0" in s.sh("llmops", "rollback", "staging").stdout
    empty = s.sh("llmops", "rollback", "staging", check=False)
    assert empty.returncode == 2 and "no promotion of staging to revert" in empty.stderr


def test_register_refuses_a_failed_gate(story):
    gate = story.repo / "metrics/gate.json"
    data = json.loads(gate.read_text())
    data["passed"] = False
    data["checks"][0]["passed"] = False
    gate.write_text(json.dumps(data))
    refused = story.sh("llmops", "register", check=False)
    assert refused.returncode == 2 and "a failed model is not registered" in refused.stderr


def test_register_refuses_a_verdict_on_another_adapter(story):
    """The gate records the DVC hash of the adapter it judged; a verdict on any other (here
    forced into dvc.lock with `dvc commit`, so `dvc status` is clean) is not registered."""
    s = story
    gate = s.repo / "metrics/gate.json"
    data = json.loads(gate.read_text())
    locked = yaml.safe_load((s.repo / "dvc.lock").read_text())["stages"]["dpo"]["outs"]
    assert data["adapter"]["md5"] == {o["path"]: o["md5"] for o in locked}["models/adapter"]
    data["adapter"]["md5"] = "0" * 32 + ".dir"
    gate.write_text(json.dumps(data))
    s.sh("dvc", "commit", "-f", "-q", "gate")
    assert "gate" not in json.loads(s.sh("dvc", "status", "--json").stdout)
    refused = s.sh("llmops", "register", check=False)
    assert refused.returncode == 2
    assert "judged adapter 00000000000000000000000000000000.dir" in refused.stderr


def test_two_promotions_racing_for_one_environment_end_serialized(story, tmp_path):
    s = story
    s.sh("dvc", "push", "-q")
    s.sh("llmops", "register")
    adapter = yaml.safe_load((s.repo / "dvc.lock").read_text())["stages"]["dpo"]["outs"]
    s.sh("dvc", "repro", "-f", "-s", "dpo")  # a second run; DPO is seeded, same adapter
    again = yaml.safe_load((s.repo / "dvc.lock").read_text())["stages"]["dpo"]["outs"]
    md5 = {o["path"]: o["md5"] for o in adapter}["models/adapter"]
    assert {o["path"]: o["md5"] for o in again}["models/adapter"] == md5
    s.git("commit", "-q", "-am", "dpo: rerun")
    s.sh("dvc", "push", "-q")
    assert "registered flywheel-notices v2" in s.sh("llmops", "register").stdout
    s.git("push", "-q", "origin", "main")
    clones = []
    for name in ("a", "b"):
        clone = tmp_path / name
        s.git("clone", "-q", str(tmp_path / "origin.git"), str(clone))
        c = Story(clone, s.env["MLFLOW_TRACKING_URI"])
        c.git("config", "user.name", f"bot-{name}")
        c.git("config", "user.email", f"bot-{name}@localhost")
        c.sh("dvc", "pull", "-q")
        clones.append(c)
    racers = [
        subprocess.Popen(
            ["llmops", "promote", "staging", "--version", str(v), "--push"],
            cwd=c.repo,
            env=c.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c, v in zip(clones, (1, 2), strict=True)
    ]
    for proc in racers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    s.git("fetch", "-q", "origin")
    subjects = s.git("log", "--format=%s", "origin/main").splitlines()
    assert "promote: flywheel-notices v1 to staging" in subjects
    assert "promote: flywheel-notices v2 to staging" in subjects
    # one after the other: the newer commit's record is the one that stands
    last = next(x for x in subjects if x.startswith("promote:"))
    s.git("checkout", "-q", "origin/main")
    assert f"v{s.model_config('staging')} to staging" in last


def test_a_pushed_release_the_cluster_cannot_serve_is_refused_and_commits_nothing(story):
    s = story
    s.set_params("release", "servable_check", True)
    s.git("commit", "-qam", "release: check servability")
    s.git("push", "-q", "origin", "main")
    s.sh("dvc", "push", "-q")
    s.sh("llmops", "register")
    head = s.git("rev-parse", "HEAD")
    refused = s.sh("llmops", "promote", "staging", "--push", check=False)
    assert refused.returncode == 2
    assert "the cluster could not serve this release" in refused.stderr
    assert "builtin:tiny" in refused.stderr and "train.method to lora" in refused.stderr
    assert s.git("rev-parse", "HEAD") == head and s.git("status", "--porcelain") == ""
    assert s.git("rev-parse", "origin/main") == head
    local = s.sh("llmops", "promote", "staging")  # a local rehearsal: committed, with a note
    assert local.returncode == 0 and "for local rehearsal only" in local.stdout


def test_promote_refuses_a_staged_or_dirty_tree_and_a_local_one_on_a_detached_head(story):
    """A release names a commit: the working tree must be that commit. Nothing is committed,
    staged or reset by a refusal, and the user's edits are still there."""
    s = story
    s.sh("dvc", "push", "-q")
    s.sh("llmops", "register")
    head = s.git("rev-parse", "HEAD")
    (s.repo / "notes.txt").write_text("a staged note\n")
    s.git("add", "notes.txt")
    refused = s.sh("llmops", "promote", "staging", check=False)
    assert refused.returncode == 2 and "changes are staged" in refused.stderr
    assert s.git("diff", "--cached", "--name-only") == "notes.txt"  # still staged
    s.git("reset", "-q", "notes.txt")
    readme = s.repo / "README.md"
    readme.write_text(readme.read_text() + "\nan edit in progress\n")
    refused = s.sh("llmops", "promote", "staging", check=False)
    assert refused.returncode == 2 and "uncommitted changes (README.md)" in refused.stderr
    assert readme.read_text().endswith("an edit in progress\n")
    s.git("checkout", "-q", "README.md")
    s.git("checkout", "-q", "--detach")
    refused = s.sh("llmops", "promote", "staging", check=False)
    assert refused.returncode == 2 and "HEAD is detached" in refused.stderr
    assert s.git("rev-parse", "HEAD") == head and s.git("rev-parse", "main") == head
    s.git("checkout", "-q", "main")
    assert "to staging" in s.sh("llmops", "promote", "staging").stdout  # untracked notes.txt
