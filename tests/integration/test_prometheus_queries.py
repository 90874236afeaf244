"""`result` as Argo's Prometheus provider builds it, from a real Prometheus (Debian's, scraping
itself every second): a scalar, an instant vector, a range query's matrix flattened, an
instant query of a range selector (a matrix too), and a query Prometheus refuses."""

from __future__ import annotations

import shutil
import time

import pytest

from pipeline.deploy.analysis import query_prometheus
from pipeline.processes import Processes, free_port, wait_http

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs: [{job_name: self, static_configs: "
        f"[{{targets: ['127.0.0.1:{port}']}}]}}]\n"
    )
    procs = Processes(root)
    try:
        proc = procs.start(
            "prometheus",
            [
                "prometheus",
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", proc, "prometheus", procs, timeout=60)
        deadline = time.monotonic() + 30
        while not query_prometheus(url, "up") and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # a few samples for the range query
        yield url
    finally:
        procs.stop()


def test_scalar_vector_and_empty(prometheus):
    assert query_prometheus(prometheus, "scalar(vector(0.5))") == 0.5
    assert query_prometheus(prometheus, 'up{job="self"}') == [1.0]
    assert query_prometheus(prometheus, 'up{job="nothing"}') == []


def test_a_range_query_and_a_range_selector_are_flattened(prometheus):
    now = time.time()
    samples = query_prometheus(prometheus, 'up{job="self"}', (now - 3, now, 1.0))
    assert len(samples) >= 3 and set(samples) == {1.0}
    assert set(query_prometheus(prometheus, 'up{job="self"}[3s]')) == {1.0}


def test_a_refused_query_raises_and_the_run_records_an_error(prometheus):
    with pytest.raises(Exception, match=r"parse error|bad_data"):
        query_prometheus(prometheus, "up{")
