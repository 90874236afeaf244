"""`llmops serve`: an OpenAI-compatible server over transformers, for CPU work and tests.

Run: llmops serve --model models/base --adapter models/adapter --port 8000 \
        --request-log logs/requests.jsonl

Endpoints as vLLM has them: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (both with
`"stream": true` as server-sent events), `/health`, `/metrics`. `/metrics` exports vLLM's own
series (pipeline/serve/metrics.py), so the canary analysis, the alerts and the dashboard work
unchanged against it. Every answered request is logged in the request-log schema
(pipeline/feedback/logs.py) that sampling and drift read.

One request is generated at a time, on one worker thread; others wait in a queue
(`vllm:num_requests_waiting`), as they would in a saturated vLLM replica. Time to first token
counts from arrival, queueing included, as vLLM's does.

Faults, for rehearsing a bad canary (`--fault NAME=VALUE`, repeatable):
  error_rate=0.1   answer that share of requests, evenly spread, with HTTP 500
                   (finished_reason="error")
  latency_ms=800   add that much latency before the first token
  ttft_factor=3    multiply the time to first token

This is a stand-in for local work; the manifests serve with vLLM. `--engine vllm` starts vLLM's
own server with the same model, adapter, host and port where vLLM and a GPU are present.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline.feedback.logs import RequestLog, now_iso
from pipeline.io import UserError
from pipeline.serve.metrics import EngineMetrics, engine_metrics

DEFAULT_MAX_TOKENS = 64
# not counted in http_requests_total: vLLM's instrumentator leaves these out too
UNCOUNTED = {"/metrics", "/health", "/ping", "/version", "/load", "/server_info"}


@dataclass(frozen=True)
class Faults:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    ttft_factor: float = 1.0

    @classmethod
    def parse(cls, items: list[str] | None) -> Faults:
        """`["error_rate=0.1", "latency_ms=800"]` -> Faults; a bad item is a UserError."""
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
        if not 0 <= faults.error_rate <= 1 or faults.latency_ms < 0 or faults.ttft_factor < 1:
            raise UserError("--fault: error_rate in [0, 1], latency_ms >= 0, ttft_factor >= 1")
        return faults


class InjectedError(RuntimeError):
    """The error an `error_rate` fault answers with."""


@dataclass
class Job:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    emit: Callable[[str, Any], None]  # ("token", [ids]) / ("done", Result) / ("error", exc)
    arrival: float = field(default_factory=time.perf_counter)


@dataclass
class Result:
    token_ids: list[int]
    finish_reason: str
    ttft_s: float
    e2e_s: float
    confidence: float | None  # geometric-mean probability of the generated tokens


class Engine:
    """Generates one job at a time on a worker thread and keeps vLLM's engine metrics."""

    def __init__(
        self,
        model: Any,
        tok: Any,
        metrics: EngineMetrics,
        faults: Faults,
        seed: int = 0,
        threads: int | None = None,
    ):
        self.model, self.tok, self.metrics, self.faults = model, tok, metrics, faults
        import torch

        torch.manual_seed(seed)  # sampling (temperature > 0) is reproducible per server
        if threads:
            torch.set_num_threads(threads)
        self.error_credit = 0.0
        self.jobs: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._loop, name="engine", daemon=True).start()

    def warm_up(self) -> None:
        """One short generation before serving, so the first request is not the slow one (the
        first in a fresh process is several times slower; vLLM warms up at start too)."""
        import torch

        ids = torch.tensor([self.tok("warm up", add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            self.model.generate(input_ids=ids.to(self.model.device), max_new_tokens=4,
                                do_sample=False, pad_token_id=self.tok.pad_token_id)  # fmt: skip

    def submit(self, job: Job) -> None:
        self.jobs.put(job)
        self.metrics.waiting.set(self.jobs.qsize())

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            self.metrics.waiting.set(self.jobs.qsize())
            self.metrics.running.set(1)
            try:
                job.emit("done", self._generate(job))
            except Exception as exc:  # reported to the client as a 500, never kills the loop
                self.metrics.finished("error")
                job.emit("error", exc)
            finally:
                self.metrics.running.set(0)

    def _generate(self, job: Job) -> Result:
        import torch
        from transformers.generation.streamers import BaseStreamer

        # exactly `error_rate` of requests fail, spread evenly (not by chance: a short window
        # of a rehearsal must see them)
        self.error_credit += self.faults.error_rate
        if self.error_credit >= 1 - 1e-9:
            self.error_credit -= 1
            raise InjectedError("injected fault: error_rate")
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        engine, stamps, started = self, [], time.perf_counter()

        class Tokens(BaseStreamer):
            prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:  # generate() first passes the prompt itself
                    self.prompt_seen = True
                    return
                if not stamps and engine.faults.ttft_factor > 1:  # prefill, queue left out
                    time.sleep((time.perf_counter() - started) * (engine.faults.ttft_factor - 1))
                stamps.append(time.perf_counter())
                job.emit("token", value.view(-1).tolist())

            def end(self) -> None:
                pass

        ids = torch.tensor([job.prompt_ids], device=self.model.device)
        sample = job.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=job.max_tokens,
                do_sample=sample,
                temperature=job.temperature if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tok.pad_token_id,
                eos_token_id=self.tok.eos_token_id,
                streamer=Tokens(),
                output_scores=True,
                return_dict_in_generate=True,
            )
        new = out.sequences[0, ids.shape[1] :].tolist()
        logps = [
            torch.log_softmax(scores[0].float(), dim=-1)[token].item()
            for scores, token in zip(out.scores, new, strict=False)
        ]
        stopped = self.tok.eos_token_id in new
        if stopped:
            new = new[: new.index(self.tok.eos_token_id)]
        end = time.perf_counter()
        result = Result(
            token_ids=new,
            finish_reason="stop" if stopped else "length",
            ttft_s=(stamps[0] if stamps else end) - job.arrival,
            e2e_s=end - job.arrival,
            confidence=math.exp(sum(logps) / len(logps)) if logps else None,
        )
        m = self.metrics
        m.ttft.observe(result.ttft_s)
        m.e2e.observe(result.e2e_s)
        for a, b in itertools.pairwise(stamps):
            m.itl.observe(b - a)
        m.prompt_tokens.inc(len(job.prompt_ids))
        m.generation_tokens.inc(len(new))
        m.finished(result.finish_reason)
        return result


class BadRequest(ValueError):
    """A request the client must fix: HTTP 400 with OpenAI's error shape."""


def _int(body: dict, key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"`{key}` must be a positive integer")
    return value


def _messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("`messages` must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise BadRequest(f"`messages[{i}]` must be {{'role': ..., 'content': str}}")
        if m.get("role") not in ("system", "user", "assistant"):
            raise BadRequest(f"`messages[{i}].role` must be system, user or assistant")
        out.append({"role": m["role"], "content": m["content"]})
    return out


@dataclass
class Server:
    """What the HTTP handlers share: the tokenizer, the engine, names and the request log."""

    tok: Any
    engine: Engine
    names: list[str]  # served model name first, then the adapter's name
    model_version: str
    log: RequestLog

    def check_model(self, body: dict) -> str:
        name = body.get("model") or self.names[0]
        if name not in self.names:
            raise LookupError(f"The model `{name}` does not exist.")
        return name

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def record(self, rid: str, start: str, prompt: str, text: str, n_prompt: int, r: Result):
        self.log.write(
            {
                "time": start,
                "request_id": rid,
                "model_version": self.model_version,
                "prompt": prompt,
                "response": text,
                "latency_ms": round(r.e2e_s * 1000, 3),
                "prompt_tokens": n_prompt,
                "completion_tokens": len(r.token_ids),
                "confidence": None if r.confidence is None else round(r.confidence, 6),
                "finish_reason": r.finish_reason,
            }
        )


def create_app(server: Server, metrics: EngineMetrics):
    app = FastAPI(title="llmops serve")

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "code": status}}, status_code=status
        )

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        if request.url.path not in UNCOUNTED:
            metrics.status(request.url.path, request.method, response.status_code,
                           time.perf_counter() - t0)  # fmt: skip
        return response

    @app.get("/health")
    async def health():
        return Response(status_code=200)

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        data = [{"id": n, "object": "model", "owned_by": "flywheel", "root": server.names[0]}
                for n in server.names]  # fmt: skip
        return {"object": "list", "data": data}

    async def complete(request: Request, chat: bool):
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            name = server.check_model(body)
            if chat:
                msgs = _messages(body)
                users = [m["content"] for m in msgs if m["role"] == "user"]
                logged = users[-1] if users else msgs[-1]["content"]
                text = server.tok.apply_chat_template(
                    msgs, tokenize=False, add_generation_prompt=True
                )
            else:
                text = body.get("prompt")
                if not isinstance(text, str) or not text:
                    raise BadRequest("`prompt` must be a non-empty string")
                logged = text
            max_tokens = _int(body, "max_tokens", DEFAULT_MAX_TOKENS)
            temperature = float(body.get("temperature") or 0.0)
        except (BadRequest, ValueError) as exc:
            return error(400, str(exc), "BadRequestError")
        except LookupError as exc:
            return error(404, str(exc), "NotFoundError")
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        start = now_iso()
        prompt_ids = server.tok(text, add_special_tokens=False)["input_ids"]
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        server.engine.submit(Job(prompt_ids, max_tokens, temperature, emit))
        kind_id = ("chatcmpl-" if chat else "cmpl-") + rid
        created = int(time.time())

        def finish(result: Result) -> str:
            answer = server.decode(result.token_ids).strip()
            server.record(rid, start, logged, answer, len(prompt_ids), result)
            return answer

        if body.get("stream"):
            return StreamingResponse(
                _sse(events, server, chat, kind_id, created, name, finish),
                media_type="text/event-stream",
                headers={"x-request-id": rid},
            )
        while True:
            kind, value = await events.get()
            if kind == "error":
                return error(500, str(value), "InternalServerError")
            if kind == "done":
                break
        answer = finish(value)
        usage = {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": len(value.token_ids),
            "total_tokens": len(prompt_ids) + len(value.token_ids),
        }
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": answer}}
            if chat
            else {"index": 0, "text": answer}
        )
        choice["finish_reason"] = value.finish_reason
        obj = "chat.completion" if chat else "text_completion"
        return JSONResponse(
            {
                "id": kind_id,
                "object": obj,
                "created": created,
                "model": name,
                "choices": [choice],
                "usage": usage,
            },
            headers={"x-request-id": rid},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await complete(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, chat=False)

    return app


async def _sse(events, server: Server, chat: bool, rid: str, created: int, name: str, finish):
    """Server-sent events as OpenAI streams them: one chunk per new piece of text, then the
    finish reason, then `data: [DONE]`. Text is decoded from all tokens so far, so a character
    split across tokens is sent whole."""
    obj = "chat.completion.chunk" if chat else "text_completion"
    ids: list[int] = []
    sent = ""

    def chunk(text: str | None, reason: str | None) -> str:
        if chat:
            delta = {} if text is None else {"content": text}
            if not sent and text is not None:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": reason}
        body = {"id": rid, "object": obj, "created": created, "model": name, "choices": [choice]}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    while True:
        kind, value = await events.get()
        if kind == "token":
            ids.extend(t for t in value if t != server.tok.eos_token_id)
            text = server.decode(ids)
            if len(text) > len(sent) and not text.endswith("\ufffd"):
                piece, sent = text[len(sent) :], text
                yield chunk(piece, None)
        elif kind == "error":
            err = {"error": {"message": str(value), "type": "InternalServerError", "code": 500}}
            yield f"data: {json.dumps(err)}\n\n"
            break
        else:
            finish(value)
            yield chunk(None, value.finish_reason)
            break
    yield "data: [DONE]\n\n"


def vllm_command(args: argparse.Namespace) -> list[str]:
    """vLLM's own OpenAI server with the same model, adapter, name, host and port."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model,
           "--served-model-name", args.served_model_name or Path(args.model).name,
           "--host", args.host, "--port", str(args.port)]  # fmt: skip
    if args.adapter:
        cmd += ["--enable-lora", "--lora-modules", f"{args.adapter_name}={args.adapter}"]
    return cmd


def main(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        import importlib.util

        import torch

        if importlib.util.find_spec("vllm") is None or not torch.cuda.is_available():
            raise UserError(
                "--engine vllm needs the `vllm` package and a GPU "
                "(pip install -e '.[vllm]' on a GPU host); use --engine transformers here"
            )
        if args.fault or args.request_log:
            raise UserError("--fault and --request-log are features of --engine transformers")
        cmd = vllm_command(args)
        os.execv(cmd[0], cmd)
    faults = Faults.parse(args.fault)
    import uvicorn

    from pipeline.modeling import load_model, load_tokenizer

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        raise UserError(f"--model {model_dir}: no such model directory")
    if args.adapter and not Path(args.adapter).is_dir():
        raise UserError(f"--adapter {args.adapter}: no such directory")
    tok = load_tokenizer(Path(args.adapter) if args.adapter else model_dir)
    model = load_model(model_dir, Path(args.adapter) if args.adapter else None)
    name = args.served_model_name or model_dir.name
    names = [name] + ([args.adapter_name] if args.adapter and args.adapter_name != name else [])
    metrics = engine_metrics(name)
    version = args.model_version or os.environ.get("MODEL_VERSION", "dev")
    engine = Engine(model, tok, metrics, faults, args.seed, args.threads)
    engine.warm_up()
    server = Server(tok, engine, names, version, RequestLog(args.request_log))
    print(
        f"serving {', '.join(names)} (version {version}) on http://{args.host}:{args.port}"
        + (f", faults {faults}" if faults != Faults() else ""),
        flush=True,
    )
    uvicorn.run(create_app(server, metrics), host=args.host, port=args.port, log_level="warning")
    return 0
