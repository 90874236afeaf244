"""Load for an OpenAI-compatible server (`llmops serve`, or vLLM): throughput at a given
concurrency, the abuse a public endpoint sees, and the server's peak memory meanwhile.
`make bench` records the figures (pipeline/bench.py); tests/integration/test_serve_abuse.py
holds the server to them. Loopback only: every loop is bounded."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def post(url: str, path: str, body: bytes, timeout: float = 120) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionError, http.client.HTTPException) as exc:
        return 0, str(exc).encode()
    finally:
        conn.close()


def throughput(
    url: str, model: str, prompts: list[str], concurrency: int, max_tokens: int
) -> float:
    """Completion tokens per second over `prompts`, `concurrency` requests in flight, greedy,
    each generating `max_tokens` (vLLM's `ignore_eos`, as its own serving benchmark does)."""

    def one(prompt: str) -> int:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        status, raw = post(url, "/v1/chat/completions", json.dumps(body).encode())
        if status != 200:
            raise RuntimeError(f"{url}: {status} {raw[:200]!r}")
        return json.loads(raw)["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        tokens = sum(pool.map(one, prompts))
    return tokens / (time.perf_counter() - start)


class PeakRss(threading.Thread):
    """The largest resident set of process `pid` seen, sampled every `every_s` seconds."""

    def __init__(self, pid: int, every_s: float = 0.05):
        import psutil

        super().__init__(daemon=True)
        self.proc, self.every_s, self.peak = psutil.Process(pid), every_s, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:  # the process ended: its peak so far stands
                return
            self.done.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


@dataclass
class Abuse:
    """What the server answered to each kind of abuse."""

    huge_max_tokens: int = 0
    huge_prompt: int = 0
    huge_body: int = 0
    streams_completed: int = 0  # clients that read to `data: [DONE]`
    streams_left: int = 0  # clients that hung up after the first chunk
    stream_statuses: dict[int, int] = field(default_factory=dict)


def abuse(
    url: str, model: str, streams: int = 64, body_mb: int = 10, stream_tokens: int = 64
) -> Abuse:
    """A huge max_tokens, a 40,000-character prompt, `streams` concurrent streams of which
    half hang up after their first chunk, and a `body_mb` MB body."""
    out = Abuse()
    chat = "/v1/chat/completions"
    user = [{"role": "user", "content": "关于期末考试安排的通知"}]
    out.huge_max_tokens, _ = post(
        url, chat, json.dumps({"model": model, "messages": user, "max_tokens": 10**9}).encode()
    )
    prompt = "关于期末考试安排的通知。" * 3400
    out.huge_prompt, _ = post(
        url,
        chat,
        json.dumps(
            {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
        ).encode(),
    )
    lock = threading.Lock()

    def stream(i: int) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        body = {
            "model": model,
            "messages": user,
            "max_tokens": stream_tokens,
            "stream": True,
            "temperature": 1.0,
            "seed": i,
        }
        try:
            conn.request("POST", chat, json.dumps(body), {"content-type": "application/json"})
            resp = conn.getresponse()
            with lock:
                out.stream_statuses[resp.status] = out.stream_statuses.get(resp.status, 0) + 1
            if resp.status != 200:
                resp.read()
                return
            if i % 2:  # hang up after the first chunk
                resp.readline()
                conn.sock.close()
                with lock:
                    out.streams_left += 1
                return
            if b"data: [DONE]" in resp.read():
                with lock:
                    out.streams_completed += 1
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=streams) as pool:
        list(pool.map(stream, range(streams)))
    big = b'{"model": "' + b"x" * (body_mb * 2**20) + b'"}'
    out.huge_body, _ = post(url, chat, big)
    return out
