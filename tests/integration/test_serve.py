"""`llmops serve` speaks OpenAI's API and vLLM's metrics; `llmops analyze` reads them from a
real Prometheus with Argo's exit codes."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipeline.deploy.rehearse import Side, prometheus_config
from pipeline.feedback.logs import read_logs
from pipeline.processes import Processes, wait_http
from pipeline.serve.metrics import E2E_BUCKETS, TTFT_BUCKETS

from ..conftest import BIN, run
from .conftest import start_serve

pytestmark = pytest.mark.integration
PROMPT = "这则通知属于哪个类别？\n\n标题：关于期末考试安排的通知"


def post(url: str, body: dict) -> tuple[int, dict | str]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw


def chat(url: str, **kw) -> tuple[int, dict | str]:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 6,
        "temperature": 0,
    }
    return post(f"{url}/v1/chat/completions", {**body, **kw})


def scrape(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/metrics") as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def server(served):
    return served.url, served.out, served.procs


def test_openai_endpoints_stream_and_errors(server):
    url, _, _ = server
    with urllib.request.urlopen(f"{url}/v1/models") as resp:
        assert [m["id"] for m in json.load(resp)["data"]] == ["tiny", "notices"]
    status, body = chat(url)
    assert status == 200 and body["object"] == "chat.completion"
    answer = body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] <= 6 and body["choices"][0]["finish_reason"]
    # streamed: the same greedy answer, piece by piece, then [DONE]
    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        json.dumps(
            {
                "model": "tiny",
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 6,
                "temperature": 0,
                "stream": True,
            }
        ).encode(),
        {"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [
            line[6:] for line in resp.read().decode().splitlines() if line.startswith("data: ")
        ]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip() == answer
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    status, body = post(f"{url}/v1/completions", {"prompt": "标题：", "max_tokens": 3})
    assert status == 200 and body["object"] == "text_completion"
    assert chat(url, messages=[{"role": "robot", "content": "x"}])[0] == 400
    assert chat(url, max_tokens=0)[0] == 400
    status, body = chat(url, model="gpt-4")
    assert status == 404 and body["error"]["param"] == "model"


def test_metrics_carry_vllm_names_types_labels_and_buckets(server):
    url, _, _ = server
    before = scrape(url)
    status, body = chat(url)
    assert status == 200
    after = scrape(url)
    e2e = after["vllm:e2e_request_latency_seconds"]
    assert e2e.type == "histogram"
    bounds = sorted({float(s.labels["le"]) for s in e2e.samples if s.name.endswith("_bucket")})
    assert bounds == [*E2E_BUCKETS, float("inf")]
    ttft = after["vllm:time_to_first_token_seconds"]
    assert {float(s.labels["le"]) for s in ttft.samples if "le" in s.labels} >= set(TTFT_BUCKETS)
    for sample in e2e.samples + after["vllm:num_requests_waiting"].samples:
        assert sample.labels["model_name"] == "tiny" and sample.labels["engine"] == "0"
    reasons = {s.labels["finished_reason"] for s in after["vllm:request_success"].samples}
    assert reasons == {"stop", "length", "abort", "error", "repetition"}  # exported from 0

    def total(families, name, **labels):
        return sum(
            s.value
            for s in families[name].samples
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert (
        total(after, "vllm:prompt_tokens") - total(before, "vllm:prompt_tokens")
        == body["usage"]["prompt_tokens"]
    )
    assert (
        total(after, "vllm:generation_tokens") - total(before, "vllm:generation_tokens")
        == body["usage"]["completion_tokens"]
    )
    reason = body["choices"][0]["finish_reason"]
    assert total(after, "vllm:request_success", finished_reason=reason) == 1 + total(
        before, "vllm:request_success", finished_reason=reason
    )
    http = after["http_requests"]
    handlers = {s.labels["handler"] for s in http.samples}
    assert "/v1/chat/completions" in handlers and "/metrics" not in handlers
    assert total(after, "http_requests", handler="/v1/chat/completions", status="2xx") >= 1


def test_request_logs_follow_the_schema(server):
    url, out, _ = server
    _, body = chat(url)
    records, errors = read_logs([out / "requests.jsonl"])
    assert errors == []
    last = records[-1]
    assert last["request_id"] in body["id"] and last["model_version"] == "7"
    assert last["prompt"] == PROMPT  # the user text, not the chat template
    assert last["response"] == body["choices"][0]["message"]["content"]
    assert last["completion_tokens"] == body["usage"]["completion_tokens"]
    assert last["latency_ms"] > 0 and 0 < last["confidence"] <= 1


def test_faults_fail_exactly_their_share_and_add_latency(tiny_base, tmp_path):
    """error_rate: the engine fails them (vLLM's finished_reason error, 500); http_error_rate:
    the handler crashes before the engine sees them (a 500 only http_requests_total counts,
    as with a vLLM frontend error); latency_ms delays the first token."""
    procs = Processes(tmp_path)
    faults = ["error_rate=0.5", "http_error_rate=0.25", "latency_ms=300"]
    try:
        url = start_serve(
            procs,
            "faulty",
            tiny_base,
            tmp_path / "r.jsonl",
            *[arg for f in faults for arg in ("--fault", f)],
        )
        statuses = [chat(url)[0] for _ in range(8)]
        metrics = scrape(url)
    finally:
        procs.stop()
    assert sorted(statuses) == [200] * 3 + [500] * 5

    def count(name: str, label: str, value: str) -> float:
        return sum(
            s.value
            for s in metrics[name].samples
            if s.name.endswith("_total") and s.labels[label] == value
        )

    assert count("vllm:request_success", "finished_reason", "error") == 3  # of the 6 it saw
    assert count("http_requests", "status", "5xx") == 5  # the crashes too
    ttft = [
        s
        for s in metrics["vllm:time_to_first_token_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["le"] == "0.25"
    ]
    assert ttft[0].value == 0  # every answered request waited the added 300 ms first
    records, _ = read_logs([tmp_path / "r.jsonl"])
    assert len(records) == 3 and min(r["latency_ms"] for r in records) >= 300


ANALYSIS = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: NAME}
spec:
  args: [{name: hash}, {name: limit, value: "1"}]
  metrics:
    - name: requests
      successCondition: SUCCESS
      failureCondition: FAILURE
      consecutiveErrorLimit: 0
      provider:
        prometheus:
          address: http://in-cluster.invalid:9090
          query: QUERY
"""
QUERY = 'sum(vllm:request_success_total{rollouts_pod_template_hash="{{args.hash}}"})'


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus")
def test_analyze_exit_codes_against_a_real_prometheus(server, tmp_path):
    url, _, procs = server
    for _ in range(2):
        assert chat(url)[0] == 200
    side = Side("canary", Path("."), None, "7", "h1", port=int(url.rsplit(":", 1)[1]))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config([side], scrape_s=0.5)))
    prom_port = Side("p", Path("."), None, "", "").port
    prom = procs.start(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )
    prom_url = f"http://127.0.0.1:{prom_port}"
    wait_http(f"{prom_url}/-/ready", prom, "prometheus", procs, timeout=60)
    guard = "len(result) > 0 && !isNaN(result[0])"
    templates = {
        "passes": (
            f"{guard} && result[0] >= {{{{args.limit}}}}",
            f"{guard} && result[0] < 1",
            QUERY,
        ),
        "fails": (f"{guard} && result[0] > 1000", f"{guard} && result[0] <= 1000", QUERY),
        "no-data": (
            f"{guard} && result[0] >= 1",
            f"{guard} && result[0] < 1",
            QUERY.replace("{{args.hash}}", "other"),
        ),
        "broken": ("result[0] >= 1", "result[0] < 1", "sum(rate(x[5m])"),
    }
    rendered = tmp_path / "templates.yaml"
    rendered.write_text(
        "---".join(
            ANALYSIS.replace("NAME", name)
            .replace("SUCCESS", json.dumps(s))
            .replace("FAILURE", json.dumps(f))
            .replace("QUERY", json.dumps(q))
            for name, (s, f, q) in templates.items()
        )
    )

    def analyze(name: str, *args: str):
        cmd = [
            str(BIN / "llmops"),
            "analyze",
            str(rendered),
            "--name",
            name,
            "--prometheus",
            prom_url,
            *args,
        ]
        return run(cmd, cwd=tmp_path, check=False)

    deadline = time.monotonic() + 60  # Prometheus's first scrape of the server
    while True:
        proc = analyze("passes", "--arg", "hash=h1")
        if proc.returncode != 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "requests" in proc.stdout and "Successful" in proc.stdout
    codes = {}
    for name in ("fails", "no-data", "broken"):
        codes[name] = analyze(name, "--arg", "hash=h1").returncode
    assert codes == {"fails": 1, "no-data": 2, "broken": 3}
    missing = analyze("fails")
    assert missing.returncode == 5 and "no value for argument(s) hash" in missing.stderr


def test_feedback_sample_reads_its_logs_and_asks_it_for_the_challenger_answer(server):
    url, out, _ = server
    for i in range(3):
        body = {"messages": [{"role": "user", "content": f"{PROMPT}（{i}）"}], "max_tokens": 6}
        assert post(f"{url}/v1/chat/completions", body)[0] == 200
    from pipeline.config import FeedbackParams
    from pipeline.feedback.sample import from_endpoint, from_log, sample

    def champion(records):  # the logged answer, marked different so no pair is dropped
        return [(f"旧：{a}", v) for a, v in from_log(records)]

    tasks, summary = sample(
        [out / "requests.jsonl"], 3, FeedbackParams(), champion, from_endpoint(url, 6)
    )
    assert summary["bad_lines"] == 0 and len(tasks) == 3
    for t in tasks:
        challenger = t["left"] if t["left_model"].startswith("challenger") else t["right"]
        assert not challenger.startswith("旧：")
        assert {t["left_model"], t["right_model"]} == {"champion:7", "challenger:notices"}
