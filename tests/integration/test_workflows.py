"""The GitHub workflows: clean under actionlint and zizmor, and the rules the release loop
relies on (least privilege, pinned actions, serialized promotions, no fork on GPU runners)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

BIN = Path(sys.executable).parent
WORKFLOWS = {p.stem: p for p in sorted((ROOT / ".github/workflows").glob("*.yml"))}


def load(name):
    # PyYAML reads the key `on` as True
    return {
        ("on" if k is True else k): v
        for k, v in yaml.safe_load(WORKFLOWS[name].read_text()).items()
    }


def test_actionlint_is_clean():
    proc = subprocess.run(
        [str(BIN / "actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("persona", ["pedantic", "auditor"])
def test_zizmor_is_clean(persona):
    """Pedantic, and the auditor persona (pedantic and more); each remaining finding is
    justified in place with a `# zizmor: ignore[...]` comment saying why."""
    cmd = [str(BIN / "zizmor"), "--offline", "--no-progress", f"--persona={persona}"]
    proc = subprocess.run([*cmd, ".github/workflows"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", WORKFLOWS)
def test_least_privilege_and_pinned_actions(name):
    wf = load(name)
    assert wf["permissions"] == {"contents": "read"}, "read-only unless a job asks for more"
    text = WORKFLOWS[name].read_text()
    for ref in re.findall(r"uses:\s*(\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), (
            f"{ref} is not pinned to a commit"
        )
    for job in wf["jobs"].values():
        for step in job.get("steps", []):
            assert "secrets." not in step.get("run", ""), "secrets reach scripts through env only"


def test_release_workflows_exist_and_are_triggered_as_the_loop_needs():
    assert {"ci", "train", "release", "rollback"} <= set(WORKFLOWS)
    train, release, rollback = load("train"), load("release"), load("rollback")
    assert set(train["on"]) == {"pull_request", "push"}
    assert "params.yaml" in train["on"]["pull_request"]["paths"]
    assert release["on"]["push"]["tags"] == ["v*.*.*"]
    assert rollback["on"]["repository_dispatch"]["types"] == ["rollout-aborted"]
    assert "workflow_dispatch" in rollback["on"]


# Secrets a job that runs pull-request code may hold (docs/release-loop.md: credentials):
# read the trusted DVC remote and write the candidates one, log MLflow runs. Nothing that
# writes git, the registry or the trusted remote.
PR_CODE_SECRETS = {"DVC_PR_AWS_ACCESS_KEY_ID", "DVC_PR_AWS_SECRET_ACCESS_KEY", "MLFLOW_PR_TOKEN"}


def checkouts(job: dict) -> list[dict]:
    return [s.get("with", {}) for s in job.get("steps", []) if "checkout" in s.get("uses", "")]


def runs_pr_code(job: dict) -> bool:
    return any("pull_request.head.sha" in str(c.get("ref", "")) for c in checkouts(job))


def secrets_of(job: dict) -> set[str]:
    return set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job)))


def test_pull_request_code_never_holds_a_write_token_or_a_release_secret():
    train = load("train")
    pr_jobs = {n: j for n, j in train["jobs"].items() if "pull_request" in j.get("if", "")}
    assert {"train-pr", "report-pr", "publish-pr"} <= set(pr_jobs)
    for name, job in pr_jobs.items():
        if runs_pr_code(job):
            assert secrets_of(job) <= PR_CODE_SECRETS, (name, secrets_of(job))
            assert job.get("permissions", {}) in ({}, {"contents": "read"}), name
            assert all(c.get("persist-credentials") is False for c in checkouts(job)), name
        else:  # the job holding a token checks out this repository's own code
            assert [c["ref"] for c in checkouts(job)] == [
                "${{ github.event.repository.default_branch }}"
            ], name
    assert runs_pr_code(train["jobs"]["train-pr"]) and runs_pr_code(train["jobs"]["report-pr"])
    assert not runs_pr_code(train["jobs"]["publish-pr"])
    publish = yaml.safe_dump(train["jobs"]["publish-pr"])
    assert "--publish" not in publish, "plots never go to a third-party asset host"


def test_gpu_runners_by_trust_and_never_for_forks():
    train = load("train")
    gpu = {n: j["runs-on"] for n, j in train["jobs"].items() if "gpu" in j["runs-on"]}
    assert gpu == {
        "train-pr": "flywheel-gpu-pr",  # ephemeral pool: PR code only
        "train-main": "flywheel-gpu-trusted",  # main's code only
    }
    assert "needs.plan.outputs.trusted == 'true'" in train["jobs"]["train-pr"]["if"]
    assert "github.event_name == 'push'" in train["jobs"]["train-main"]["if"]
    plan = yaml.safe_dump(train["jobs"]["plan"]["steps"])
    assert "head.repo.full_name" in plan and "github.repository" in plan
    for name in ("release", "rollback", "aliases"):
        for job in load(name)["jobs"].values():
            assert job["runs-on"] == "ubuntu-latest", "nothing there needs a GPU"


def test_every_job_puts_its_tools_on_path_before_using_them():
    """`dvc repro` runs dvc.yaml's `python -m pipeline...` through the shell: the venv must be
    on PATH for every step, which scripts/ci-setup.sh does (GITHUB_PATH)."""
    for name in WORKFLOWS:
        for job_name, job in load(name)["jobs"].items():
            runs = [s.get("run", "") for s in job.get("steps", [])]
            uses_tools = [i for i, r in enumerate(runs) if re.search(r"\b(llmops|dvc) ", r)]
            if not uses_tools or name == "ci":  # ci.yml goes through make, which sets PATH
                continue
            setup = [i for i, r in enumerate(runs) if r.startswith("scripts/ci-setup.sh")]
            assert setup and setup[0] < uses_tools[0], (name, job_name)
            assert not any(".venv/bin" in r for r in runs), (name, job_name)


def test_promotions_serialize_per_environment_and_rollbacks_wait_for_none():
    train, release, rollback = load("train"), load("release"), load("rollback")
    assert train["jobs"]["release"]["concurrency"] == {
        "group": "promote-staging",
        "cancel-in-progress": False,
    }
    assert release["concurrency"]["group"] == "promote-production"
    group = rollback["concurrency"]["group"]
    assert group.startswith("rollback-") and "environment" in group
    assert rollback["concurrency"]["cancel-in-progress"] is False
    revert = yaml.safe_dump(rollback["jobs"]["rollback"]["steps"])
    assert "client_payload.release_sha256" in revert and "--release" in revert
    steps = " ".join(s.get("run", "") for s in train["jobs"]["release"]["steps"])
    assert "llmops ci adopt" in steps and "dvc repro" not in steps  # main never retrains
    assert "llmops register --push" in steps and "llmops promote staging --push" in steps


def test_feedback_runs_on_its_schedules_and_every_step_is_a_cli_command():
    wf = load("feedback")
    crons = {s["cron"] for s in wf["on"]["schedule"]}
    assert crons == {"0 2 * * *", "0 3 * * 1"}
    sample, pull = wf["jobs"]["sample"], wf["jobs"]["pull"]
    assert "0 2 * * *" in sample["if"] and "0 3 * * 1" in pull["if"]
    assert "permissions" not in sample  # read-only: only the pull job writes (a branch, a PR)
    assert pull["permissions"] == {"contents": "write", "pull-requests": "write"}
    runs = {job: [s["run"] for s in wf["jobs"][job]["steps"] if "run" in s] for job in wf["jobs"]}
    for job, steps in runs.items():
        assert all(len(r.strip().splitlines()) <= 3 for r in steps), job
    assert any("llmops feedback sample" in r for r in runs["sample"])
    assert runs["sample"][-1] == "llmops feedback push"
    assert [r.split("--")[0].strip() for r in runs["pull"][-2:]] == [
        "llmops feedback pull",
        "llmops feedback propose",
    ]
    assert wf["concurrency"]["group"] == "feedback"


HOSTED = "ubuntu-latest"  # a fresh virtual machine per job, discarded after it


def jobs_of_every_workflow():
    for name in WORKFLOWS:
        for job_name, job in load(name)["jobs"].items():
            yield f"{name}/{job_name}", job


def test_pull_request_code_leaves_nothing_a_main_job_reads():
    """Runner hygiene, checked where it can be: jobs that run a pull request's code run on
    fresh machines (hosted, or the ephemeral PR scale set), which no job of main's code ever
    uses; they save no cache; they write only the candidates remote, which main reads with
    `verify = true` (every object re-hashed); the PR pool's pods keep nothing (emptyDir
    workspace, no node path, no Kubernetes token)."""
    from pipeline.deploy.manifests import render, runner_errors, runner_template

    pr_runners, main_runners = set(), set()
    for where, job in jobs_of_every_workflow():
        runs_on = job["runs-on"]
        text = yaml.safe_dump(job)
        if runs_pr_code(job):
            pr_runners.add(runs_on)
            assert "actions/cache" not in text and "cache:" not in text, where
            pushes = re.findall(r"dvc push[^\n]*", text)
            assert all("--remote candidates" in p for p in pushes), (where, pushes)
            assert "llmops ci push" not in text and "--push" not in text.replace("dvc push", "")
        else:
            main_runners.add(runs_on)
    assert pr_runners == {HOSTED, "flywheel-gpu-pr"}
    assert main_runners & pr_runners == {HOSTED}, "no job of main's code on the PR pool"
    config = (ROOT / ".dvc/config").read_text()
    candidates = config[config.index('remote "candidates"') :]
    assert re.search(r"^\s*verify = true", candidates, re.M)

    templates = {}
    for obj in render(ROOT / "manifests/runners"):
        template = runner_template(obj)
        if template is not None:
            name = obj["spec"]["template"]["spec"]["source"]["helm"]["valuesObject"]
            templates[name["runnerScaleSetName"]] = template
            assert runner_errors(template) == []
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            assert "emptyDir" in volumes["work"], "the workspace dies with the pod"
    # the ApplicationSet makes one scale set per pool, each named as train.yml's runs-on
    assert set(templates) == {"flywheel-gpu-{{.pool}}"}
    pools = render(ROOT / "manifests/runners")
    (appset,) = [o for o in pools if o["kind"] == "ApplicationSet"]
    names = {
        f"flywheel-gpu-{e['pool']}" for e in appset["spec"]["generators"][0]["list"]["elements"]
    }
    assert names == {"flywheel-gpu-pr", "flywheel-gpu-trusted"}
    actionlint = yaml.safe_load((ROOT / ".github/actionlint.yaml").read_text())
    assert set(actionlint["self-hosted-runner"]["labels"]) == names
