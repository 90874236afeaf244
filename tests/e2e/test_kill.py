"""SIGKILL in the middle of every stage, then `dvc repro`, as an operator would after a node
died: the pipeline ends where an uninterrupted run ended. Every cached output has the hash
the uninterrupted run recorded, every metric is equal (run ids, timings and the index's
per-run counts aside), `dvc status` is clean, and no lock is left to remove by hand.

Each stage of a copy of the trained workspace is forced to run again (`dvc repro -f -s
<stage>`) and killed, with the whole process group (DVC and the stage's command), a seeded
random time after the stage's command started; a stage quicker than its drawn time is run
again and killed at a seeded fraction of the time it took. The outcomes are printed.
"""

from __future__ import annotations

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

from ..conftest import BIN

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


def stage_command_started(session: int) -> bool:
    """The stage's own command (`python -m pipeline...`) runs in the session."""
    found = subprocess.run(
        ["pgrep", "-s", str(session), "-f", r"python -m pipeline\."], capture_output=True
    )
    return found.returncode == 0


@pytest.fixture(scope="module")
def repo(workspace, tmp_path_factory):
    dest = tmp_path_factory.mktemp("kill") / "repo"
    shutil.copytree(workspace, dest, symlinks=True)
    return dest


def run_and_kill(repo: Path, stage: str, env: dict, delay: float, log) -> tuple[bool, float]:
    """`dvc repro -f -s stage`, its process group SIGKILLed `delay` seconds after the stage's
    command started: (killed, seconds the command ran)."""
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", stage], cwd=repo, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    while proc.poll() is None and not stage_command_started(proc.pid):
        time.sleep(0.02)
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < delay:
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed, time.monotonic() - started


def test_each_stage_killed_at_a_random_point_recovers_with_dvc_repro(repo, capsys):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    uninterrupted = results(repo)
    rng = random.Random(SEED)
    rows = []
    for stage in stages(repo):
        # a stage that ends before its drawn time runs again, killed at a seeded fraction of
        # the time it took
        delay = rng.uniform(0.2, LATEST_KILL_S)
        with open(repo.parent / f"{stage}.log", "w") as log:
            killed, ran = run_and_kill(repo, stage, env, delay, log)
            if not killed:
                delay = rng.uniform(0.1, 0.9) * ran
                killed, _ = run_and_kill(repo, stage, env, delay, log)
        begun = time.monotonic()
        recovered = subprocess.run(
            ["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
        )
        assert recovered.returncode == 0, (stage, recovered.stdout[-3000:], recovered.stderr)
        status = subprocess.run(
            ["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True
        )
        assert json.loads(status.stdout or "{}") == {}, (stage, status.stdout)
        assert results(repo) == uninterrupted, f"{stage}: results differ after the kill"
        rows.append((stage, killed, delay, time.monotonic() - begun))
    with capsys.disabled():
        print(f"\nkill matrix (seed {SEED}): {len(rows)} stages")
        for stage, killed, delay, took in rows:
            what = f"SIGKILL at {delay:4.1f} s" if killed else f"finished before {delay:4.1f} s"
            print(f"  {stage:<9} {what:<24} dvc repro recovered in {took:5.1f} s, same results")
        print(f"  {sum(k for _, k, _, _ in rows)} killed mid-stage, all {len(rows)} recovered")
    assert all(k for _, k, _, _ in rows), "every stage is hit while its command runs"
