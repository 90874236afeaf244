"""`llmops drift` with the real model against a real Chroma index of training prompts.

Acceptance: prompts from another domain are flagged; of 20 draws from the training
distribution (prompts of other notices from the same generator), at most one is."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from pipeline.cli import main as cli
from pipeline.config import DriftParams, IndexParams, PrepareParams
from pipeline.data.index import build_index, embed, last_user_text
from pipeline.data.prepare import prepare
from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.feedback.drift import DRIFT, INSUFFICIENT, OK, compare, reference_embeddings
from pipeline.feedback.logs import RequestLog

from ..conftest import ROOT, free_port

pytestmark = pytest.mark.integration
P = DriftParams()
TASKS = ["classify", "extract", "title"]


def other_domain(n: int, seed: int = 0) -> list[str]:
    """English support tickets, recipes and code questions: what the notice model never saw."""
    rng = random.Random(seed)
    items = ["order", "laptop", "subscription", "router", "headphones", "invoice", "account"]
    dishes = ["lasagna", "banana bread", "chicken curry", "pancakes", "miso soup", "risotto"]
    langs = ["Python", "Rust", "JavaScript", "Go", "SQL", "Bash"]
    tasks = [
        "parse a CSV file",
        "reverse a linked list",
        "retry an HTTP request",
        "read environment variables",
        "open a file safely",
    ]
    templates = [
        lambda: (
            f"Hi, my {rng.choice(items)} #{rng.randint(1000, 9999)} arrived broken "
            f"{rng.randint(2, 9)} days ago and support has not answered. Can I get a refund?"
        ),
        lambda: (
            f"I was charged twice for my {rng.choice(items)} this month. Please cancel "
            f"the second payment of ${rng.randint(5, 200)} and confirm by email."
        ),
        lambda: (
            f"How long should I bake {rng.choice(dishes)} at {rng.choice([160, 180, 200])} "
            f"degrees, and can I replace butter with olive oil?"
        ),
        lambda: (
            f"Give me a {rng.randint(20, 60)}-minute recipe for {rng.choice(dishes)} "
            f"for {rng.randint(2, 8)} people without nuts."
        ),
        lambda: (
            f"In {rng.choice(langs)}, what is the idiomatic way to {rng.choice(tasks)}? "
            f"My version throws an error on line {rng.randint(3, 80)}."
        ),
    ]
    return [rng.choice(templates)() for _ in range(n)]


def prompts_of(notices: list[dict]) -> list[str]:
    return [last_user_text(r["prompt"]) for n in notices for r in task_records(n, TASKS)]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, encoder):
    """An index whose reference is the training prompts of 120 sample notices."""
    out = tmp_path_factory.mktemp("index")
    notices = generate(120)
    build_index(IndexParams(), notices, prepare(PrepareParams(), notices)[0], out, encoder)
    return out


@pytest.fixture(scope="module")
def same_pool(encoder) -> tuple[list[str], np.ndarray]:
    """Prompts of 150 other notices from the same generator (another seed), embedded."""
    prompts = prompts_of(generate(150, seed=11))
    return prompts, embed(encoder, prompts)


@pytest.fixture(scope="module")
def other_pool(encoder) -> tuple[list[str], np.ndarray]:
    prompts = other_domain(P.min_samples)
    return prompts, embed(encoder, prompts)


def test_same_distribution_draws_are_at_most_once_in_20_flagged(index_dir, same_pool):
    reference, _ = reference_embeddings(index_dir)
    _, pool = same_pool
    rng = np.random.default_rng(0)
    results = [
        compare(reference, pool[rng.choice(len(pool), P.min_samples, replace=False)], P)
        for _ in range(20)
    ]
    alarms = [r["reason"] for r in results if r["verdict"] == DRIFT]
    assert len(alarms) <= 1, alarms
    assert all(r["verdict"] in (OK, DRIFT) for r in results)


def test_another_domain_is_flagged_alone_and_mixed_in(index_dir, same_pool, other_pool):
    reference, _ = reference_embeddings(index_dir)
    alone = compare(reference, other_pool[1], P)
    assert alone["verdict"] == DRIFT and alone["psi"] > 5 * P.psi_threshold, alone["reason"]
    half = P.min_samples // 2
    mixed = compare(reference, np.vstack([same_pool[1][:half], other_pool[1][:half]]), P)
    assert mixed["verdict"] == DRIFT, mixed["reason"]


def write_log(path, prompts: list[str], bad_lines: int = 0) -> None:
    log = RequestLog(path)
    for i, prompt in enumerate(prompts):
        log.write(
            {
                "time": f"2026-11-22T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "request_id": f"r{i}",
                "model_version": "3",
                "prompt": prompt,
                "response": "教务",
                "latency_ms": 20.0,
                "prompt_tokens": 50,
                "completion_tokens": 2,
            }
        )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{truncated\n" * bad_lines)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory with params.yaml, where `llmops drift` writes metrics/."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def drift(index_dir, *args: str) -> int:
    return cli(["drift", "--index", str(index_dir), "--namespace", "prod", *args])


def read(path) -> dict:
    return json.loads(path.read_text())


def test_cli_same_distribution_passes_and_reports_the_bad_lines(
    workdir, index_dir, same_pool, capsys
):
    write_log(workdir / "logs/requests.jsonl", same_pool[0][: P.min_samples], bad_lines=2)
    assert drift(index_dir, "--logs", "logs") == 0
    result = read(workdir / "metrics/drift.json")
    assert result["verdict"] == OK and result["n"] == P.min_samples
    assert result["skipped_lines"] == 2
    assert f"requests.jsonl:{P.min_samples + 1}: invalid JSON" in result["problems"][0]
    assert len(result["components"]) == P.components
    assert result["thresholds"]["psi"] == P.psi_threshold
    assert (workdir / "metrics/drift.json").read_text() == json.dumps(
        result, ensure_ascii=False, indent=2, sort_keys=True
    ) + "\n"
    assert "skipped: " in capsys.readouterr().err


def test_cli_flags_drift_with_exit_1_and_an_exposition_promtool_accepts(
    workdir, index_dir, other_pool
):
    write_log(workdir / "requests.jsonl", other_pool[0])
    assert drift(index_dir, "--logs", "requests.jsonl") == 1
    result = read(workdir / "metrics/drift.json")
    assert result["verdict"] == DRIFT
    text = (workdir / "metrics/drift.prom").read_text()
    line = next(x for x in text.splitlines() if x.startswith("llm_data_drift_psi{"))
    assert line.startswith('llm_data_drift_psi{namespace="prod"} ')
    value = float(line.split()[-1])
    assert value == pytest.approx(result["psi"]) and value > 0.2  # the alert's bound
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (`make tools`)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_cli_too_few_prompts_is_insufficient_data_and_exit_0(workdir, index_dir, other_pool):
    write_log(workdir / "requests.jsonl", other_pool[0][:10])
    assert drift(index_dir, "--logs", "requests.jsonl") == 0
    assert read(workdir / "metrics/drift.json")["verdict"] == INSUFFICIENT
    assert "llm_data_drift_psi{" not in (workdir / "metrics/drift.prom").read_text()


def test_cli_only_the_most_recent_prompts_count(workdir, index_dir, same_pool, other_pool):
    """Old off-domain traffic followed by max_samples in-domain prompts: no drift now."""
    (workdir / "params.yaml").write_text(
        (workdir / "params.yaml").read_text().replace("max_samples: 1000", "max_samples: 200")
    )
    write_log(workdir / "requests.jsonl", other_pool[0] + same_pool[0][:200])
    assert drift(index_dir, "--logs", "requests.jsonl") == 0
    assert read(workdir / "metrics/drift.json")["n"] == 200


def test_cli_bad_input_exits_2(workdir, index_dir, capsys):
    assert drift(index_dir, "--logs", "missing.jsonl") == 2
    assert "missing.jsonl: no such request log" in capsys.readouterr().err
    write_log(workdir / "requests.jsonl", ["x"])
    assert drift(workdir / "no-index", "--logs", "requests.jsonl") == 2
    assert "dvc repro index" in capsys.readouterr().err


@pytest.fixture
def pushgateway(tmp_path):
    """A real Pushgateway on 127.0.0.1 (Debian's prometheus-pushgateway, `make tools`)."""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway not installed (`make tools`)")
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [binary, f"--web.listen-address={url.removeprefix('http://')}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pushgateway did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_cli_pushes_the_gauges_to_a_pushgateway(workdir, index_dir, other_pool, pushgateway):
    write_log(workdir / "requests.jsonl", other_pool[0])
    assert drift(index_dir, "--logs", "requests.jsonl", "--pushgateway", pushgateway) == 1
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5) as resp:
        scraped = resp.read().decode()
    line = next(x for x in scraped.splitlines() if x.startswith("llm_data_drift_psi{"))
    assert 'job="llm-data-drift"' in line and 'namespace="prod"' in line
    assert float(line.split()[-1]) == pytest.approx(read(workdir / "metrics/drift.json")["psi"])


def test_cli_unreachable_pushgateway_exits_2_and_keeps_the_files(workdir, index_dir, other_pool):
    write_log(workdir / "requests.jsonl", other_pool[0])
    gateway = f"http://127.0.0.1:{free_port()}"
    assert drift(index_dir, "--logs", "requests.jsonl", "--pushgateway", gateway) == 2
    assert read(workdir / "metrics/drift.json")["verdict"] == DRIFT
    assert (workdir / "metrics/drift.prom").exists()
