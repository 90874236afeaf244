"""SIGKILL in the middle of every stage, then `dvc repro`, as an operator would after a node
died: the pipeline ends where an uninterrupted run ended. Every cached output has the hash
the uninterrupted run recorded, every metric is equal (run ids, timings and the index's
per-run counts aside), `dvc status` is clean, and no lock is left to remove by hand.

Each stage of a copy of the trained workspace is forced to run again (`dvc repro -f -s
<stage>`) and killed, with the whole process group (DVC and the stage's command), a seeded
random time after the stage's command started, while that command still runs; a stage
quicker than its drawn time is run again and killed at a seeded fraction of the time its
command took. The outcomes are printed. A kill in the moment DVC rewrites `dvc.lock` is the
second case: the lock is restored from git.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import tool_env

pytestmark = pytest.mark.e2e

SEED = 20261128
LATEST_KILL_S = 25.0  # kill times are drawn from (0.2 s, this] after the command started
# per-run figures, not results: they differ between any two runs
VOLATILE = {
    "seconds",
    "tokens_per_s",
    "docs_per_s",
    "mlflow_run_id",
    "resumed_from_step",
    "embedded",
    "added",
    "updated",
    "deleted",
    "latency",  # eval.json: this machine's speed during the run
}


def compared_by_hash(path: str) -> bool:
    """Outputs whose bytes must match: not the Chroma database (not byte-stable; its totals
    are compared) nor JSON metrics (they hold timings; compared below without them)."""
    return path != "data/index" and not (path.startswith("metrics/") and path.endswith(".json"))


def results(repo: Path) -> dict:
    """What an uninterrupted run is judged by: outputs' hashes, and the metrics."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    hashes = {
        o["path"]: o.get("md5")
        for stage in lock.values()
        for o in stage.get("outs", [])
        if compared_by_hash(o["path"])
    }
    metrics = {
        p.name: strip(json.loads(p.read_text())) for p in sorted((repo / "metrics").glob("*.json"))
    }
    return {"hashes": hashes, "metrics": metrics}


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k not in VOLATILE}
    return node


def stages(repo: Path) -> list[str]:
    spec = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return [name for name, stage in spec.items() if not stage.get("frozen")]


def stage_command_running(session: int) -> bool:
    """The stage's own command (`python -m pipeline...`) runs in the session."""
    found = subprocess.run(
        ["pgrep", "-s", str(session), "-f", r"python -m pipeline\."], capture_output=True
    )
    return found.returncode == 0


@pytest.fixture(scope="module")
def repo(workspace, tmp_path_factory):
    """A copy of the trained workspace with its `dvc.lock` and metrics committed, as on main."""
    dest = tmp_path_factory.mktemp("kill") / "repo"
    shutil.copytree(workspace, dest, symlinks=True)
    git = ["git", "-c", "user.name=flywheel", "-c", "user.email=flywheel@localhost"]
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "trained"], cwd=dest, check=True)
    return dest


@dataclasses.dataclass(frozen=True)
class Attempt:
    killed: bool
    command_s: float  # how long the stage's command had run when killed, or took in all


def run_and_kill(repo: Path, stage: str, env: dict, delay: float, log) -> Attempt:
    """`dvc repro -f -s stage`, its process group SIGKILLed `delay` seconds after the stage's
    command started, provided the command still runs then: a kill never lands while DVC
    hashes the outputs or writes `dvc.lock` (see the test below for that case)."""
    proc = subprocess.Popen(
        ["dvc", "repro", "-f", "-s", stage],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    while proc.poll() is None and not stage_command_running(proc.pid):
        time.sleep(0.02)
    started = time.monotonic()
    while proc.poll() is None and stage_command_running(proc.pid):
        if time.monotonic() - started >= delay:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Attempt(killed=True, command_s=time.monotonic() - started)
        time.sleep(0.02)
    ran = time.monotonic() - started
    proc.wait()
    return Attempt(killed=False, command_s=ran)


def recover(repo: Path, env: dict, stage: str) -> float:
    """`dvc repro` until the pipeline is whole again: seconds it took."""
    begun = time.monotonic()
    recovered = subprocess.run(
        ["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert recovered.returncode == 0, (stage, recovered.stdout[-3000:], recovered.stderr)
    status = subprocess.run(
        ["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert json.loads(status.stdout or "{}") == {}, (stage, status.stdout)
    return time.monotonic() - begun


def test_each_stage_killed_at_a_random_point_recovers_with_dvc_repro(repo, capsys):
    env = tool_env()
    uninterrupted = results(repo)
    rng = random.Random(SEED)
    rows = []
    for stage in stages(repo):
        delay = rng.uniform(0.2, LATEST_KILL_S)
        with open(repo.parent / f"{stage}.log", "w") as log:
            attempt = run_and_kill(repo, stage, env, delay, log)
            # a stage quicker than its drawn time runs again, killed at a seeded fraction of
            # the time its command took (a busy machine can make it quicker still: three tries)
            for _ in range(3):
                if attempt.killed:
                    break
                delay = rng.uniform(0.1, 0.8) * attempt.command_s
                attempt = run_and_kill(repo, stage, env, delay, log)
        took = recover(repo, env, stage)
        assert results(repo) == uninterrupted, f"{stage}: results differ after the kill"
        rows.append((stage, attempt.killed, attempt.command_s, took))
    with capsys.disabled():
        print(f"\nkill matrix (seed {SEED}): {len(rows)} stages")
        for stage, killed, at, took in rows:
            what = f"SIGKILL at {at:4.1f} s" if killed else f"finished in {at:4.1f} s"
            print(f"  {stage:<9} {what:<24} dvc repro recovered in {took:5.1f} s, same results")
        print(f"  {sum(k for _, k, _, _ in rows)} killed mid-stage, all {len(rows)} recovered")
    assert all(k for _, k, _, _ in rows), "every stage is hit while its command runs"


def test_a_dvc_lock_cut_short_by_a_kill_is_restored_from_git(repo):
    """DVC rewrites `dvc.lock` in place (dvc/utils/serialize/_common.py `_dump_data` opens it
    "w+"), so a kill in the milliseconds while it writes leaves the file cut short. `dvc
    repro` then refuses with a clear error rather than guess, and the operator's step is the
    one the docs give: restore the committed lock, run again, same results."""
    env = tool_env()
    uninterrupted = results(repo)
    lock = repo / "dvc.lock"
    text = lock.read_text()
    # Python's text files flush every io.DEFAULT_BUFFER_SIZE bytes: a kill between two
    # flushes leaves the first of them
    lock.write_bytes(text.encode()[: io.DEFAULT_BUFFER_SIZE])
    refused = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "dvc.lock" in refused.stderr, refused.stderr
    subprocess.run(["git", "restore", "dvc.lock"], cwd=repo, check=True)
    recover(repo, env, "dvc.lock")
    assert results(repo) == uninterrupted
