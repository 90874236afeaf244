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


def test_zizmor_is_clean():
    proc = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", ".github/workflows"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
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


def test_gpu_jobs_never_run_for_forks_and_promotions_are_serialized_per_environment():
    train = load("train")
    repro = train["jobs"]["repro"]
    assert repro["runs-on"] == ["self-hosted", "gpu"]
    assert "head.repo.full_name == github.repository" in repro["if"]
    assert train["jobs"]["release"]["concurrency"] == {
        "group": "promote-staging",
        "cancel-in-progress": False,
    }
    assert load("release")["concurrency"]["group"] == "promote-production"
    rollback_group = load("rollback")["concurrency"]["group"]
    assert rollback_group.startswith("promote-") and "environment" in rollback_group
    steps = " ".join(s.get("run", "") for s in train["jobs"]["release"]["steps"])
    assert "dvc push --run-cache" in steps and "llmops register" in steps
    assert "llmops promote staging --push" in steps


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
    assert runs["sample"][-1] == ".venv/bin/llmops feedback push"
    assert [r.split("--")[0].strip() for r in runs["pull"][-2:]] == [
        ".venv/bin/llmops feedback pull",
        ".venv/bin/llmops feedback propose",
    ]
    assert wf["concurrency"]["group"] == "feedback"
