"""The generation engine behind `llmops serve`: vLLM's scheduling, in miniature, on transformers.

Requests wait in a queue; the engine takes up to `max_num_seqs` sequences at a time (a
request with `n` choices is `n` sequences, as vLLM fans a request out into `n` children) and
decodes them together, one token per step, over one key-value cache. The gauges mean what
vLLM's mean: `vllm:num_requests_running` the sequences in that batch,
`vllm:num_requests_waiting` the sequences queued, `vllm:kv_cache_usage_perc` the tokens the
batch holds over the cache's capacity (`max_num_seqs` x `max_model_len`). A finished, stopped
or aborted sequence leaves the batch at once (its rows are dropped from the cache); waiting
ones start with the next batch. A batch runs one set of weights: the base model's, or the
adapter's. Each sequence has its own temperature, top_p, seed, stop strings and budget; log
probabilities are the model's own (before temperature), as vLLM reports them by default.
At most `max_waiting` requests wait (vLLM's queue is unbounded): beyond that a request is
refused with 503 at once, so a flood cannot grow the server's memory.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.serve.metrics import EngineMetrics
from pipeline.serve.protocol import Params


class InjectedError(RuntimeError):
    """The error an `error_rate` or `http_error_rate` fault answers with."""


class Spread:
    """Says yes to exactly `rate` of calls, spread evenly (a short rehearsal window must see
    them): 0.25 is every fourth call."""

    def __init__(self, rate: float):
        self.rate, self.credit = rate, 0.0

    def __call__(self) -> bool:
        self.credit += self.rate
        if self.credit >= 1 - 1e-9:
            self.credit -= 1
            return True
        return False


@dataclass(frozen=True)
class Faults:
    """Faults for rehearsing a bad canary (`--fault NAME=VALUE`):
    - `error_rate`: the engine fails that share of requests, as vLLM's engine does
      (finished_reason `error`, HTTP 500): both `vllm:request_success_total` and
      `http_requests_total` see it;
    - `http_error_rate`: the HTTP handler crashes on that share before the engine sees the
      request (HTTP 500): only `http_requests_total` sees it, as with a vLLM frontend error;
    - `latency_ms` before the first token; `ttft_factor` times the time to first token."""

    error_rate: float = 0.0
    http_error_rate: float = 0.0
    latency_ms: float = 0.0
    ttft_factor: float = 1.0

    @classmethod
    def parse(cls, items: list[str] | None) -> Faults:
        """`["error_rate=0.1", "latency_ms=800"]` -> Faults; a bad item is a UserError."""
        from dataclasses import fields

        from pipeline.io import UserError

        names = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for item in items or []:
            name, sep, raw = item.partition("=")
            if not sep or name not in names:
                raise UserError(
                    f"--fault {item!r}: expected NAME=VALUE, NAME one of {sorted(names)}"
                )
            try:
                values[name] = float(raw)
            except ValueError:
                raise UserError(f"--fault {item!r}: {raw!r} is not a number") from None
        faults = cls(**values)
        rates_ok = all(0 <= r <= 1 for r in (faults.error_rate, faults.http_error_rate))
        if not rates_ok or faults.latency_ms < 0 or faults.ttft_factor < 1:
            raise UserError(
                "--fault: error_rate and http_error_rate in [0, 1], latency_ms >= 0,"
                " ttft_factor >= 1"
            )
        return faults


@dataclass
class Choice:
    index: int
    ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded, stop strings cut
    sent: int = 0  # characters already emitted
    logprobs: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: str | None = None
    token_times: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Delta:
    """One step of one choice, as it stood then (the engine runs ahead of the stream)."""

    index: int
    text: str
    logprobs: list[dict]
    finish_reason: str | None
    stop_reason: str | None


@dataclass
class Job:
    """One request: its prompt, sampling parameters and which weights serve it. Its `n`
    choices are `n` sequences, scheduled as vLLM schedules a parent request's children: as
    many as fit in the running batch, the rest in a later one."""

    prompt_ids: list[int]
    params: Params
    adapter: bool
    emit: Callable[[str, Any], None]  # ("delta", [Delta]) / ("done", Job) / ("error", exc)
    arrival: float = field(default_factory=time.perf_counter)
    aborted: threading.Event = field(default_factory=threading.Event)
    choices: list[Choice] = field(default_factory=list)
    pending: list[Choice] = field(default_factory=list)  # not yet in a batch
    admitted: bool = False
    stream: bool = True  # emit each step's text (a streamed response), else only the end
    first_token_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        self.choices = [Choice(i) for i in range(self.params.n)]
        self.pending = list(self.choices)

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason or "length"


@dataclass
class Batch:
    """The running sequences and the key-value cache they share. `mask` has a column per
    cached position (0: left padding); `positions` and `tokens` are each row's next position
    and input token."""

    rows: list[tuple[Job, Choice]]
    cache: Any  # transformers' DynamicCache: [rows, heads, positions, dim] per layer
    mask: Any
    positions: Any
    tokens: Any

    def select(self, keep: list[int]) -> None:
        """Keep these rows; drop the cache's leading columns no row needs any more."""
        import torch

        if len(keep) < len(self.rows):
            index = torch.tensor(keep)
            self.rows = [self.rows[r] for r in keep]
            self.cache.batch_select_indices(index)
            self.mask, self.positions = self.mask[index], self.positions[index]
        first = int(self.mask.any(0).nonzero()[0])
        if first:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.mask = self.mask[:, first:]

    @staticmethod
    def merge(a: Batch | None, b: Batch | None) -> Batch | None:
        """One batch of both: the shorter cache left-padded, then the rows stacked."""
        import torch
        import torch.nn.functional as F

        if a is None or b is None:
            return a or b
        width = max(a.mask.shape[1], b.mask.shape[1])
        pad = {id(x): width - x.mask.shape[1] for x in (a, b)}
        for la, lb in zip(a.cache.layers, b.cache.layers, strict=True):
            for name in ("keys", "values"):
                ta, tb = getattr(la, name), getattr(lb, name)
                setattr(
                    la,
                    name,
                    torch.cat([F.pad(ta, (0, 0, pad[id(a)], 0)), F.pad(tb, (0, 0, pad[id(b)], 0))]),
                )
        a.mask = torch.cat([F.pad(a.mask, (pad[id(a)], 0)), F.pad(b.mask, (pad[id(b)], 0))])
        a.positions = torch.cat([a.positions, b.positions])
        a.tokens = torch.cat([a.tokens, b.tokens])
        a.rows = a.rows + b.rows
        return a


class QueueFull(RuntimeError):
    """More requests wait than the engine holds: HTTP 503, the client retries later."""


class Engine:
    def __init__(
        self,
        models: dict[bool, Any],
        tok: Any,
        metrics: EngineMetrics,
        faults: Faults,
        max_num_seqs: int,
        max_model_len: int,
        seed: int = 0,
        threads: int | None = None,
        max_waiting: int = 256,
    ):
        import torch

        self.models, self.tok, self.metrics, self.faults = models, tok, metrics, faults
        self.max_num_seqs, self.max_model_len = max_num_seqs, max_model_len
        self.max_waiting = max_waiting
        if threads:
            torch.set_num_threads(threads)
        self.rng = torch.Generator().manual_seed(seed)  # unseeded requests draw from here
        self.fails = Spread(faults.error_rate)
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.waiting: list[Job] = []  # arrived, with choices not yet in a batch
        self.live: dict[int, Job] = {}  # requests with sequences in the running batch
        self.generators: dict[int, Any] = {}  # each running sequence's sampling generator
        threading.Thread(target=self._loop, name="engine", daemon=True).start()

    # --- scheduling ---------------------------------------------------------------------------

    def submit(self, jobs: list[Job]) -> None:
        """Queue a request's jobs (one per prompt), or refuse them all when the queue is full."""
        with self.lock:
            if len(self.waiting) + len(jobs) > self.max_waiting:
                raise QueueFull(
                    f"{len(self.waiting)} requests are waiting (at most {self.max_waiting});"
                    " retry later"
                )
            self.waiting.extend(jobs)
            self._count_waiting()
            self.ready.notify()

    def _count_waiting(self) -> None:
        self.metrics.waiting.set(sum(len(j.pending) for j in self.waiting))

    def _take(self, room: int, adapter: bool | None, block: bool) -> list[tuple[Job, Choice]]:
        """Up to `room` waiting sequences, first come first served, of requests for one set of
        weights (`adapter`; None: the first waiting request's). Taking stops at the first
        request for the other weights, so neither set starves. Requests whose client left
        are dropped here. `block`: wait until there is one."""
        with self.lock:
            while True:
                for job in [j for j in self.waiting if j.aborted.is_set()]:
                    self.waiting.remove(job)
                    self._settle(job)
                if self.waiting or not block:
                    break
                self._count_waiting()
                self.ready.wait()
            rows: list[tuple[Job, Choice]] = []
            for job in list(self.waiting):
                adapter = job.adapter if adapter is None else adapter
                if len(rows) == room or job.adapter != adapter:
                    break
                space = room - len(rows)
                rows += [(job, c) for c in job.pending[:space]]
                job.pending = job.pending[space:]
                if not job.pending:
                    self.waiting.remove(job)
            self._count_waiting()
            return rows

    def _loop(self) -> None:
        while True:
            rows = self._take(self.max_num_seqs, None, block=True)
            self.live = {id(j): j for j, _ in rows}
            try:
                self._run(rows)
            except Exception as exc:  # reported as a 500 to whoever is left, never kills the loop
                for job in self.live.values():
                    if job.finished_at is None and not job.aborted.is_set():
                        job.finished_at = time.perf_counter()
                        self.metrics.finished("error")
                        job.emit("error", exc)
            finally:
                self.metrics.running.set(0)
                self.metrics.kv_cache.set(0.0)

    def _admit(self, job: Job) -> bool:
        """Exactly `error_rate` of requests fail (Spread): the engine reports them finished
        with reason error, the client gets 500."""
        if job.admitted:
            return job.finished_at is None
        job.admitted = True
        if self.fails():
            with self.lock:
                if job in self.waiting:
                    self.waiting.remove(job)
                    self._count_waiting()
            job.finished_at = time.perf_counter()
            self.metrics.finished("error")
            job.emit("error", InjectedError("injected fault: error_rate"))
            return False
        return True

    # --- decoding -----------------------------------------------------------------------------

    def _run(self, rows: list[tuple[Job, Choice]]) -> None:
        """Continuous batching, as vLLM's scheduler does it: each step decodes one token of
        every running sequence; waiting sequences for the same weights join at the next step
        (prefilled, their cache merged into the batch's) while there is room, and a finished
        one leaves at once. Returns when no sequence is left."""
        import torch

        adapter = rows[0][0].adapter if rows else False
        model = self.models[adapter]
        batch: Batch | None = None
        fresh = rows
        with torch.no_grad(), self._weights(model, adapter):
            while True:
                fresh = [(j, c) for j, c in fresh if self._admit(j)]
                self.live.update({id(j): j for j, _ in fresh})
                deltas: dict[int, list[Delta]] = {}
                if batch is not None:
                    batch = self._decode(model, batch, deltas)
                if fresh:
                    batch = Batch.merge(batch, self._prefill(model, fresh, deltas))
                for job in list(self.live.values()):
                    if deltas.get(id(job)):
                        job.emit("delta", deltas[id(job)])
                    self._settle(job)
                    if job.finished_at is not None:
                        del self.live[id(job)]
                running = len(batch.rows) if batch else 0
                self.metrics.running.set(running)
                self.metrics.kv_cache.set(
                    batch.mask.numel() / (self.max_num_seqs * self.max_model_len) if batch else 0.0
                )
                fresh = self._take(self.max_num_seqs - running, adapter, block=False)
                if batch is None and not fresh:
                    return

    def _forward(self, model: Any, ids, mask, positions, cache):
        out = model(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            position_ids=positions.to(model.device),
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits[:, -1, :].float().cpu(), out.past_key_values

    def _prefill(self, model: Any, rows: list[tuple[Job, Choice]], deltas: dict) -> Batch | None:
        """The new sequences' prompts (left-padded) through the model: their first tokens."""
        import torch

        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        started = time.perf_counter()
        width = max(len(job.prompt_ids) for job, _ in rows)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(j.prompt_ids)) + j.prompt_ids for j, _ in rows])
        mask = torch.tensor(
            [[0] * (width - len(j.prompt_ids)) + [1] * len(j.prompt_ids) for j, _ in rows]
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        for job, choice in rows:
            self.generators[id(choice)] = self._generator(job, choice)
        logits, cache = self._forward(model, ids, mask, positions, None)
        if self.faults.ttft_factor > 1:
            time.sleep((time.perf_counter() - started) * (self.faults.ttft_factor - 1))
        batch = Batch(rows, cache, mask, positions[:, -1:] + 1, ids[:, -1:])
        return self._advance(batch, logits, deltas)

    def _decode(self, model: Any, batch: Batch, deltas: dict) -> Batch | None:
        """One token more for every running sequence."""
        import torch

        mask = torch.cat([batch.mask, torch.ones(len(batch.rows), 1, dtype=batch.mask.dtype)], 1)
        logits, cache = self._forward(model, batch.tokens, mask, batch.positions, batch.cache)
        batch.mask, batch.cache = mask, cache
        batch.positions = batch.positions + 1
        return self._advance(batch, logits, deltas)

    def _advance(self, batch: Batch, logits, deltas: dict) -> Batch | None:
        """Sample each row's next token from `logits`; the rows still going, or None."""
        import torch

        logp = torch.log_softmax(logits, -1)  # every token's: the log's confidence
        greedy = logits.argmax(-1)
        now = time.perf_counter()
        keep, tokens = [], []
        for r, (job, choice) in enumerate(batch.rows):
            if job.aborted.is_set():
                continue
            gen = self.generators[id(choice)]
            token, lp = self._sample(logits[r], logp[r], int(greedy[r]), job.params, gen)
            self._append(job, choice, token, lp, now)
            if job.stream:
                deltas.setdefault(id(job), []).append(self._delta(job, choice))
            if choice.finish_reason is None:
                keep.append(r)
                tokens.append(token)
        for job, choice in batch.rows:
            if choice.finish_reason is not None or job.aborted.is_set():
                self.generators.pop(id(choice), None)
        if not keep:
            return None
        batch.select(keep)
        batch.tokens = torch.tensor(tokens).unsqueeze(-1)
        return batch

    def _weights(self, model: Any, adapter: bool):
        """The adapter's weights, or the base's from the same PEFT model."""
        import contextlib

        if not adapter and hasattr(model, "disable_adapter"):
            return model.disable_adapter()
        return contextlib.nullcontext()

    def _generator(self, job: Job, choice: Choice):
        """A seeded request draws the same tokens every time (each of its `n` choices its
        own stream); an unseeded one draws from the engine's generator."""
        import torch

        seed = job.params.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))
        return torch.Generator().manual_seed((seed + choice.index) % (2**63))

    def _sample(self, logits, logp, greedy: int, p: Params, gen) -> tuple[int, dict]:
        """One row's next token (greedy below vLLM's epsilon temperature, else sampled with
        top_p) and its log probability, with the `p.logprobs` most likely beside it."""
        import torch

        if p.temperature < 1e-5:
            token = greedy
        else:
            probs = torch.softmax(logits / p.temperature, -1)
            if p.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                drop = sorted_p.cumsum(-1) - sorted_p > p.top_p
                sorted_p[drop] = 0
                probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            token = int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
        top = []
        if p.logprobs:
            values, indices = logp.topk(p.logprobs)
            top = [(int(i), float(v)) for v, i in zip(values, indices, strict=True)]
        return token, {"token_id": token, "logprob": max(float(logp[token]), -9999.0), "top": top}

    def _append(self, job: Job, choice: Choice, token: int, lp: dict | None, now: float) -> None:
        """Add a token; finish the choice on EOS, a stop string or its budget."""
        if job.first_token_at is None:
            job.first_token_at = now
        choice.token_times.append(now)
        if token == self.tok.eos_token_id and not job.params.ignore_eos:
            choice.finish_reason = "stop"
            return
        choice.ids.append(token)
        if lp is not None:
            choice.logprobs.append(lp)
        text = self.tok.decode(choice.ids, skip_special_tokens=True)
        hits = [(text.find(s), s) for s in job.params.stop if s in text]
        if hits:
            at, s = min(hits)
            choice.text, choice.finish_reason, choice.stop_reason = text[:at], "stop", s
            return
        choice.text = text
        if len(choice.ids) >= job.params.max_tokens:
            choice.finish_reason = "length"

    def _delta(self, job: Job, choice: Choice) -> Delta:
        """What of the choice can be sent now: new whole characters, minus the tail that could
        still become a stop string (vLLM's output_text_buffer_length), and whether it ended."""
        hold = 0 if choice.finish_reason else max((len(s) for s in job.params.stop), default=1) - 1
        ready = len(choice.text) - hold
        if not choice.finish_reason and choice.text.endswith("\ufffd"):
            ready = min(ready, len(choice.text) - 1)
        piece = choice.text[choice.sent : max(choice.sent, ready)]
        choice.sent += len(piece)
        lps = choice.logprobs[-1:] if choice.logprobs else []
        return Delta(choice.index, piece, lps, choice.finish_reason, choice.stop_reason)

    def _settle(self, job: Job) -> None:
        """Once every choice ended (or the client left): metrics, then the last event."""
        if job.finished_at is not None:
            return
        m = self.metrics
        if job.aborted.is_set():
            job.finished_at = time.perf_counter()
            m.finished("abort")
            return
        if any(c.finish_reason is None for c in job.choices):
            return
        job.finished_at = time.perf_counter()
        m.e2e.observe(job.finished_at - job.arrival)
        m.ttft.observe((job.first_token_at or job.finished_at) - job.arrival)
        for a, b in itertools.pairwise(job.choices[0].token_times):
            m.itl.observe(b - a)
        m.prompt_tokens.inc(len(job.prompt_ids))
        m.generation_tokens.inc(sum(len(c.ids) for c in job.choices))
        m.finished(job.finish_reason)
        job.emit("done", job)

    def confidence(self, choice: Choice) -> float | None:
        """Geometric-mean probability of a choice's tokens (when logprobs were kept)."""
        lps = [lp["logprob"] for lp in choice.logprobs]
        return math.exp(sum(lps) / len(lps)) if lps else None

    def warm_up(self) -> None:
        """One short decode per set of weights before serving, so the first request is not
        the slow one; counted in a throwaway registry, not in /metrics."""
        from pipeline.serve.metrics import engine_metrics

        served, self.metrics = self.metrics, engine_metrics("warm-up")
        try:
            for adapter in self.models:
                ids = self.tok("warm up", add_special_tokens=False)["input_ids"]
                job = Job(ids, Params(1, 0.0, 1.0, 2, (), 0, None), adapter, lambda k, v: None)
                self.live = {id(job): job}
                self._run([(job, job.choices[0])])
        finally:
            self.metrics = served
