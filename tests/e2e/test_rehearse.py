"""`llmops rehearse` on the trained workspace: two `llmops serve` processes, Debian's
Prometheus, traffic split by the staging Rollout's steps, its AnalysisTemplates run with Argo's
semantics, time compressed 30x (a 5m pause takes 10 s).

The latency bound is set to 2x stable's p95 (`--arg max-latency-ratio=2`): on two shared CPU
cores the canary, which gets a tenth of the traffic at the first step, answers ~30% slower
per request than the busy stable server (p50 16.1 vs 12.3 ms measured), and its p95 over a
few dozen requests reached 1.79x stable's in healthy rehearsals. A 3x time to first token
still measures 3-4x."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import BIN, run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
]
FAST = ["--env", "staging", "--arg", "max-latency-ratio=2"]


def rehearse(repo: Path, out: Path, *args: str) -> tuple[int, dict, str]:
    proc = run(
        [str(BIN / "llmops"), "rehearse", *FAST, "--out", str(out), *args],
        cwd=repo,
        check=False,
        timeout=600,
    )
    assert proc.returncode in (0, 1, 2, 3), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert_nothing_left(out, report)
    return proc.returncode, report, proc.stdout


def assert_nothing_left(out: Path, report: dict | None = None) -> None:
    """No process of the rehearsal runs on, and its ports are closed."""
    left = subprocess.run(["pgrep", "-af", str(out)], capture_output=True, text=True).stdout
    assert left == "", left
    assert not (out / ".work").exists() and not list(out.glob(".work-*"))
    urls = (
        [report["stable"]["url"], report["canary"]["url"], report["prometheus"]] if report else []
    )
    for url in urls:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0, url


def analyses(report: dict, phase: str) -> list[dict]:
    return [m for a in report["analyses"] for m in a["measurements"] if m["phase"] == phase]


def test_a_healthy_canary_is_promoted_with_traffic_following_the_steps(workspace, tmp_path):
    code, report, stdout = rehearse(workspace, tmp_path / "out")
    assert code == 0 and report["result"] == "Promoted", report["why"]
    weights = [e["weight"] for e in report["timeline"] if e["event"] == "setWeight"]
    assert weights == [10, 25, 50, 100]
    steps = [a for a in report["analyses"] if a["kind"].startswith("step")]
    assert len(steps) == 3 and all(a["phase"] == "Successful" for a in steps)
    sent = report["traffic"]["sent"]
    share = sent["canary"] / (sent["canary"] + sent["stable"])
    assert 0.15 < share < 0.45, sent  # 10% -> 25% -> 50% of the traffic, time-weighted
    assert report["traffic"]["status"]["canary"].get("200", 0) > 10
    assert "Promoted" in stdout.splitlines()[-1]
    assert (tmp_path / "out/canary.requests.jsonl").stat().st_size > 0  # the feedback loop's input


@pytest.fixture
def promoted(workspace, tmp_path):
    """A copy of the workspace whose candidate is staging's current release."""
    repo = tmp_path / "repo"
    shutil.copytree(workspace, repo, symlinks=True)
    run(["dvc", "remote", "modify", "storage", "url", str(tmp_path / "dvc-remote")], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "results"],
        cwd=repo,
    )
    run(["dvc", "push", "-q"], cwd=repo)
    run([str(BIN / "llmops"), "register"], cwd=repo)
    run([str(BIN / "llmops"), "promote", "staging"], cwd=repo)
    return repo


def test_a_canary_answering_5xx_is_aborted_and_its_promotion_reverted(promoted, tmp_path):
    head = run(["git", "log", "-1", "--format=%s"], cwd=promoted).stdout.strip()
    assert head.startswith("promote: flywheel-notices v1 to staging")
    code, report, _ = rehearse(promoted, tmp_path / "out", "--canary-fault", "error_rate=0.1")
    assert code == 1 and report["result"] == "Aborted", report["why"]
    assert "success-rate" in report["why"] or "http-error-rate" in report["why"]
    # aborted within two analysis intervals of the first bad measurement
    assert report["canary_abort_s"] <= 2 * report["first_bad_interval_s"] + 0.5, report
    assert report["traffic"]["status"]["canary"].get("500", 0) >= 1
    # the rollback: staging's promotion reverted in git, the manifests back to no model
    assert report["rollback"]["git"]
    head = run(["git", "log", "-1", "--format=%s"], cwd=promoted).stdout.strip()
    assert head.startswith('Revert "promote: flywheel-notices v1 to staging')
    assert "MODEL_VERSION=0" in (promoted / "manifests/overlays/staging/model.env").read_text()


def test_frontend_5xx_are_seen_by_the_http_error_rate_alone(workspace, tmp_path):
    """A handler that crashes before the engine sees the request never reaches
    vllm:request_success_total, on vLLM as here: the success-rate analysis reads ~1.0 and
    passes, and only http-error-rate (http_requests_total) aborts the rollout."""
    code, report, _ = rehearse(workspace, tmp_path / "out", "--canary-fault", "http_error_rate=0.1")
    assert code == 1 and report["result"] == "Aborted", report["why"]
    assert "http-error-rate" in report["why"] and "success-rate" not in report["why"]
    measured = [m for a in report["analyses"] for m in a["measurements"]]
    success = [m for m in measured if m["metric"] == "success-rate" and m["value"]]
    assert success and all(m["phase"] == "Successful" for m in success), success
    assert any(m["metric"] == "http-error-rate" and m["phase"] == "Failed" for m in measured)
    assert report["traffic"]["status"]["canary"].get("500", 0) >= 1


def test_a_canary_with_three_times_the_ttft_is_aborted(workspace, tmp_path):
    code, report, _ = rehearse(workspace, tmp_path / "out", "--canary-fault", "ttft_factor=3")
    assert code == 1 and report["result"] == "Aborted", report["why"]
    assert "ttft-p95-vs-stable" in report["why"] or "e2e-latency" in report["why"]
    assert report["canary_abort_s"] <= 2 * report["first_bad_interval_s"] + 0.5, report
    assert "nothing to revert" in report["rollback"]["git"]  # not staging's release


def test_a_canary_without_traffic_is_inconclusive_not_failed(workspace, tmp_path):
    code, report, _ = rehearse(workspace, tmp_path / "out", "--rate", "0")
    assert code == 2 and report["result"] == "Inconclusive", report["why"]
    assert analyses(report, "Failed") == [] and analyses(report, "Inconclusive")
    assert report["rollback"] is None


def test_ctrl_c_stops_everything_it_started(workspace, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(BIN / "llmops"), "rehearse", *FAST, "--out", str(out)],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if "setWeight" in line or time.monotonic() > deadline:
            break
    assert subprocess.run(["pgrep", "-f", str(out)], capture_output=True).returncode == 0
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert_nothing_left(out)


def started(cmd: list[str], repo: Path, out: Path) -> subprocess.Popen:
    """A rehearsal in the background, returned once its traffic follows the first step."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(BIN / "llmops"), "rehearse", *FAST, "--out", str(out), *cmd],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if "setWeight" in line or time.monotonic() > deadline:
            return proc
    raise AssertionError("the rehearsal ended before its first step")


def test_its_own_prometheus_dying_ends_error_and_reverts_nothing(promoted, tmp_path):
    """Queries against a dead Prometheus are measurement Errors, as in Argo (five in a row: the
    analysis is Error, which would abort a rollout); but here the dead Prometheus is the
    rehearsal's own, so it ends Error and leaves staging's promotion alone."""
    head = run(["git", "rev-parse", "HEAD"], cwd=promoted).stdout
    out = tmp_path / "out"
    proc = started([], promoted, out)
    killed = subprocess.run(["pkill", "-KILL", "-f", f"prometheus --config.file={out}"])
    assert killed.returncode == 0
    proc.communicate(timeout=300)
    report = json.loads((out / "report.json").read_text())
    assert proc.returncode == 3 and report["result"] == "Error", report["why"]
    assert "the rehearsal's prometheus exited" in report["why"]
    assert report["rollback"] is None
    assert run(["git", "rev-parse", "HEAD"], cwd=promoted).stdout == head
    assert any("query failed" in m.get("message", "") for m in analyses(report, "Error"))
    assert_nothing_left(out, report)


def test_conditions_that_error_end_the_analysis_error_and_abort(workspace, tmp_path):
    """A threshold that is not a number makes every condition an expr error: each measurement
    is an Error (retried after 10 s / 30), five in a row end the analysis Error, and Argo
    aborts the rollout."""
    code, report, _ = rehearse(workspace, tmp_path / "out", "--arg", "min-success-rate=abc")
    assert code == 1 and report["result"] == "Aborted", report["why"]
    assert "Error" in report["why"] and "consecutiveErrors (5)" in report["why"]
    errors = analyses(report, "Error")
    assert len(errors) >= 5 and all("unknown name abc" in m["message"] for m in errors)


def test_sigkill_of_the_rehearsal_leaves_no_server_running(workspace, tmp_path):
    out = tmp_path / "out"
    proc = started([], workspace, out)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while subprocess.run(["pgrep", "-f", str(out)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "servers outlived their rehearsal"
        time.sleep(0.5)


def test_a_canary_that_dies_mid_rollout_is_never_promoted(workspace, tmp_path):
    out = tmp_path / "out"
    proc = started([], workspace, out)
    killed = subprocess.run(["pkill", "-KILL", "-f", "--", f"{out}/canary.requests"])
    assert killed.returncode == 0
    proc.communicate(timeout=300)
    report = json.loads((out / "report.json").read_text())
    assert proc.returncode == 1 and report["result"] == "Aborted", report["why"]
    assert "the canary server exited" in report["why"]
    assert_nothing_left(out, report)
