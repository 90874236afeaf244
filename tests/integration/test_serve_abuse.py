"""No request can exhaust the host: `llmops serve` under the abuse a public endpoint sees
(loopback only, bounded loops) stays up, answers each with the right status, counts each
request once, and its memory stays under the bound docs/serving.md states."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.processes import Processes
from pipeline.serve.load import PeakRss, abuse

from .conftest import ADAPTER_NAME, start_serve

pytestmark = pytest.mark.integration
RSS_BOUND_MB = 1024  # docs/serving.md states it; `make bench` records serve_rss_peak_mb


def finished(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics") as resp:
        families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    return {
        s.labels["finished_reason"]: s.value
        for s in families["vllm:request_success"].samples
        if s.name.endswith("_total")
    }


def test_abuse_leaves_the_server_up_bounded_and_counting(tiny_base, tiny_adapter, tmp_path):
    procs = Processes(tmp_path)
    log = tmp_path / "requests.jsonl"
    try:
        url = start_serve(
            procs,
            "serve",
            tiny_base,
            log,
            "--adapter",
            str(tiny_adapter),
            "--adapter-name",
            ADAPTER_NAME,
            "--max-num-seqs",
            "16",
        )
        pid = next(proc.pid for name, proc, _ in procs.procs if name == "serve")
        with PeakRss(pid) as rss:
            seen = abuse(url, ADAPTER_NAME, streams=64, body_mb=10)
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
            assert resp.status == 200
        counts = finished(url)
    finally:
        procs.stop()
    assert (seen.huge_max_tokens, seen.huge_prompt, seen.huge_body) == (400, 400, 413)
    assert seen.stream_statuses == {200: 64}
    assert (seen.streams_completed, seen.streams_left) == (32, 32)
    # every stream counted once: finished, or aborted when its client left (one that hung
    # up after its generation ended is a finished request); refused ones never reach the
    # engine, as in vLLM
    done = counts["stop"] + counts["length"]
    assert done + counts["abort"] == 64 and counts["abort"] >= 1 and counts["error"] == 0
    assert len(log.read_text().splitlines()) == done
    assert rss.peak_mb < RSS_BOUND_MB, f"peak RSS {rss.peak_mb} MB"
