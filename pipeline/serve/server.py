"""`llmops serve`: an OpenAI-compatible server over transformers that behaves as vLLM's does.

Run: llmops serve --model models/base --adapter models/adapter --port 8000 \\
        --request-log logs/requests.jsonl [--max-model-len 512] [--max-num-seqs 16]

What rehearsals, the feedback sampler and local work talk to instead of vLLM, so it refuses
what vLLM refuses and accepts what it accepts (pipeline/serve/protocol.py: vLLM's request
models and checks, its context-length errors, OpenAI's error shape naming the parameter):
- `/v1/models`, `/v1/chat/completions`, `/v1/completions` (streamed as server-sent events,
  `stream_options.include_usage` adding the usage chunk), `/health`, `/metrics`;
- the `model` field routes as in vLLM: the served model name (or none) gets the base weights,
  the adapter's name the LoRA adapter, anything else 404;
- `n`, `stop`, `max_tokens`/`max_completion_tokens` (default: what the context has left),
  `seed`, `temperature`/`top_p`, `logprobs`/`top_logprobs`, text content parts, prompt lists;
- the engine (pipeline/serve/engine.py) batches up to `--max-num-seqs` sequences; the rest
  wait, as in vLLM. A client that disconnects aborts its generation (finished_reason abort,
  no log line); the request body is capped (`--max-body-bytes`, 413 beyond);
- `/metrics`: vLLM's engine series (pipeline/serve/metrics.py) and the HTTP series from
  prometheus-fastapi-instrumentator, configured as vLLM configures it (status grouped as
  2xx/4xx/5xx, unmatched routes under handler `none`, health and metrics not counted);
- one request-log line per finished request (pipeline/feedback/logs.py).

Faults for rehearsing a bad canary (`--fault NAME=VALUE`, repeatable): error_rate=0.1 (the
engine fails them), http_error_rate=0.1 (the handler crashes first), latency_ms=800,
ttft_factor=3 (pipeline/serve/engine.py: Faults).

A stand-in for local work; the manifests serve with vLLM. `--engine vllm` execs vLLM's own
server with the same model, adapter, host and port where vLLM and a GPU are present.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator

from pipeline.commands import arg, command
from pipeline.feedback.logs import RequestLog, now_iso
from pipeline.io import UserError
from pipeline.serve.engine import Delta, Engine, Faults, InjectedError, Job, QueueFull, Spread
from pipeline.serve.protocol import (
    BadRequest,
    ChatRequest,
    CompletionRequest,
    Context,
    error_body,
    parse,
    sampling_params,
)

# not counted in http_requests_total: the handlers vLLM's instrumentator leaves out
UNCOUNTED = ["/metrics", "/health", "/load", "/ping", "/version", "/server_info"]
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 without being kept:
    the rest is read and dropped (for at most `drain_s` seconds, as nginx's lingering close),
    so the client, still sending, gets to read the answer instead of a reset connection."""

    def __init__(self, app: Any, limit: int, drain_s: float = 10.0):
        self.app, self.limit, self.drain_s = app, limit, drain_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await self.refuse(receive, send)

    async def refuse(self, receive, send):
        deadline = time.monotonic() + self.drain_s
        while time.monotonic() < deadline:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = json.dumps(
            error_body(f"request body over {self.limit} bytes", "BadRequestError", 413)
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


@dataclass
class Server:
    """What the HTTP handlers share: tokenizer, engine, names, limits and the request log."""

    tok: Any
    engine: Engine
    base_name: str
    adapter_name: str | None
    model_version: str
    max_model_len: int
    log: RequestLog
    defaults: dict  # sampling defaults from the model's generation_config.json, as vLLM's

    @cached_property
    def max_chars_per_token(self) -> int:
        """The longest vocabulary entry (vLLM's bound on characters per input token)."""
        return max(len(t) for t in self.tok.get_vocab())

    def route(self, name: str | None) -> tuple[str, bool]:
        """(served name, whether the adapter serves it), as vLLM routes `model`."""
        if name in (None, "", self.base_name):
            return self.base_name, False
        if self.adapter_name and name == self.adapter_name:
            return name, True
        raise LookupError(f"The model `{name}` does not exist.")

    def record(self, job: Job, rid: str, start: str, prompt: str) -> None:
        choice = job.choices[0]
        confidence = self.engine.confidence(choice)
        finished = job.finished_at if job.finished_at is not None else time.perf_counter()
        self.log.write(
            {
                "time": start,
                "request_id": rid,
                "model_version": self.model_version,
                "prompt": prompt,
                "response": choice.text.strip(),
                "latency_ms": round((finished - job.arrival) * 1000, 3),
                "prompt_tokens": len(job.prompt_ids),
                "completion_tokens": len(choice.ids),
                "confidence": None if confidence is None else round(confidence, 6),
                "finish_reason": choice.finish_reason,
            }
        )


def chat_logprobs(server: Server, lps: list[dict]) -> dict:
    def one(token_id: int, logprob: float) -> dict:
        token = server.tok.decode([token_id])
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [
            {
                **one(lp["token_id"], lp["logprob"]),
                "top_logprobs": [one(t, v) for t, v in lp["top"]],
            }
            for lp in lps
        ]
    }


def completion_logprobs(server: Server, lps: list[dict]) -> dict:
    tokens = [server.tok.decode([lp["token_id"]]) for lp in lps]
    return {
        "tokens": tokens,
        "token_logprobs": [lp["logprob"] for lp in lps],
        "top_logprobs": [{server.tok.decode([t]): v for t, v in lp["top"]} for lp in lps],
        "text_offset": [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))],
    }


@dataclass
class Reply:
    """What every chunk or body answering one request carries."""

    chat: bool
    id: str  # chatcmpl-<request id> or cmpl-<request id>
    created: int
    model: str  # the name the client asked for
    request_id: str
    started: str  # for the request log
    logged: list[str]  # each prompt, as the request log keeps it

    @property
    def object(self) -> str:
        return "chat.completion" if self.chat else "text_completion"


def model_list(server: Server) -> dict:
    """/v1/models: the base model and, when loaded, the adapter whose parent it is."""
    data = [
        {
            "id": server.base_name,
            "object": "model",
            "owned_by": "vllm",
            "root": server.base_name,
            "parent": None,
            "max_model_len": server.max_model_len,
        }
    ]
    if server.adapter_name:
        data.append(
            {
                "id": server.adapter_name,
                "object": "model",
                "owned_by": "vllm",
                "root": server.adapter_name,
                "parent": server.base_name,
            }
        )
    return {"object": "list", "data": data}


def render_prompts(
    server: Server, req: Any, chat: bool, context: Context
) -> tuple[list[list[int]], list[str]]:
    """(token ids per prompt, what the request log keeps of each): the chat template
    applied to the messages, or the completion prompts; text too long for the context is
    refused before it is tokenized, as vLLM's renderer does."""
    if chat:
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        users = [m["content"] for m in messages if m["role"] == "user"]
        logged = [users[-1] if users else (messages[-1]["content"] if messages else "")]
        texts: list[str | list[int]] = [
            server.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ]
    else:
        texts = req.prompts()
        logged = [p if isinstance(p, str) else server.tok.decode(p) for p in texts]
    prompts = []
    for text in texts:
        if isinstance(text, str):
            context.check_text(text, server.max_chars_per_token)
            text = server.tok(text, add_special_tokens=False)["input_ids"]
        prompts.append(list(text))
    return prompts, logged


def usage_of(jobs: list[Job]) -> dict:
    prompt = sum(len(j.prompt_ids) for j in jobs)
    completion = sum(len(c.ids) for j in jobs for c in j.choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_body(server: Server, jobs: list[Job], reply: Reply, with_logprobs: bool) -> dict:
    """The whole answer of a finished request, each job written to the request log."""
    choices = []
    for p, job in enumerate(jobs):
        server.record(job, reply.request_id, reply.started, reply.logged[p])
        for c in job.choices:
            entry: dict[str, Any] = {
                "index": p * len(job.choices) + c.index,
                "finish_reason": c.finish_reason,
                "stop_reason": c.stop_reason,
            }
            lps = c.logprobs if with_logprobs else None
            if reply.chat:
                entry["message"] = {"role": "assistant", "content": c.text}
                entry["logprobs"] = chat_logprobs(server, lps) if lps is not None else None
            else:
                entry["text"] = c.text
                entry["logprobs"] = completion_logprobs(server, lps) if lps else None
            choices.append(entry)
    return {
        "id": reply.id,
        "object": reply.object,
        "created": reply.created,
        "model": reply.model,
        "choices": choices,
        "usage": usage_of(jobs),
    }


async def stream(
    server: Server,
    events: asyncio.Queue,
    jobs: list[Job],
    reply: Reply,
    include_usage: bool,
    with_logprobs: bool,
):
    """Server-sent events as vLLM streams them: per choice a first chunk with the role
    (chat), text as it is decoded, a chunk with the finish reason; with include_usage a
    last chunk of usage; then `data: [DONE]`. Prompt p's choice i is index p * n + i. A
    client gone mid-stream aborts the jobs."""
    chat, n = reply.chat, jobs[0].params.n

    def chunk(choices: list[dict], usage: dict | None = None) -> str:
        body = {
            "id": reply.id,
            "object": reply.object + ".chunk" if chat else reply.object,
            "created": reply.created,
            "model": reply.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def piece(p: int, d: Delta, ended: bool) -> dict:
        """A chunk's choice: the delta's text, or (ended) its finish reason."""
        text, lps = ("", []) if ended else (d.text, d.logprobs)
        entry: dict[str, Any] = {"index": p * n + d.index, "finish_reason": None}
        if chat:
            entry["delta"] = {} if ended else {"content": text}
            entry["logprobs"] = chat_logprobs(server, lps) if with_logprobs and lps else None
        else:
            entry["text"] = text
            entry["logprobs"] = completion_logprobs(server, lps) if with_logprobs and lps else None
        if ended:
            entry["finish_reason"], entry["stop_reason"] = d.finish_reason, d.stop_reason
        return entry

    try:
        if chat:
            first = {"role": "assistant", "content": ""}
            yield chunk(
                [
                    {"index": c.index, "delta": first, "logprobs": None, "finish_reason": None}
                    for c in jobs[0].choices
                ]
            )
        pending = len(jobs)
        while pending:
            p, kind, value = await events.get()
            if kind == "delta":
                out = [piece(p, d, ended=False) for d in value if d.text]
                ended = [piece(p, d, ended=True) for d in value if d.finish_reason]
                for group in (out, ended):
                    if group:
                        yield chunk(group)
            elif kind == "error":
                failure = error_body(str(value), "InternalServerError", 500)
                yield f"data: {json.dumps(failure)}\n\n"
                break
            else:
                server.record(jobs[p], reply.request_id, reply.started, reply.logged[p])
                pending -= 1
        if not pending and include_usage:
            yield chunk([], usage_of(jobs))
        yield "data: [DONE]\n\n"
    finally:  # the client left (or the stream ended): stop generating for it
        for job in jobs:
            if job.finished_at is None:
                job.aborted.set()


def error_response(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, status, param), status_code=status)


async def read_request(request: Request, model: type) -> Any:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    return parse(model, body)


async def answer(server: Server, crashes: Spread, request: Request, chat: bool):
    """One /v1/chat/completions or /v1/completions request, streamed or whole."""
    if crashes():
        raise InjectedError("injected fault: http_error_rate")
    try:
        req = await read_request(request, ChatRequest if chat else CompletionRequest)
        name, adapter = server.route(req.model)
        context = Context(server.max_model_len, *req.output_budget())
        prompts, logged = render_prompts(server, req, chat, context)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emitter(p: int):  # events name the prompt they belong to
            return lambda kind, value: loop.call_soon_threadsafe(
                events.put_nowait, (p, kind, value)
            )

        jobs = [
            Job(
                ids,
                sampling_params(req, context.budget(len(ids)), len(server.tok), server.defaults),
                adapter,
                emitter(p),
                stream=bool(req.stream),
            )
            for p, ids in enumerate(prompts)
        ]
    except BadRequest as exc:
        return error_response(400, str(exc), "BadRequestError", exc.param)
    except LookupError as exc:
        return error_response(404, str(exc), "NotFoundError", "model")
    rid = request.headers.get("x-request-id") or uuid.uuid4().hex
    kind_id = ("chatcmpl-" if chat else "cmpl-") + rid
    reply = Reply(chat, kind_id, int(time.time()), name, rid, now_iso(), logged)
    try:
        server.engine.submit(jobs)
    except QueueFull as exc:
        return error_response(503, str(exc), "ServiceUnavailableError")
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            stream(server, events, jobs, reply, include_usage, req.top() is not None),
            media_type="text/event-stream",
            headers={"x-request-id": rid},
        )
    try:
        pending = len(jobs)
        while pending:
            try:
                _, kind, value = await asyncio.wait_for(events.get(), timeout=0.25)
            except TimeoutError:
                if await request.is_disconnected():
                    raise asyncio.CancelledError from None
                continue
            if kind == "error":
                for job in jobs:
                    job.aborted.set()
                return error_response(500, str(value), "InternalServerError")
            pending -= kind == "done"
    except asyncio.CancelledError:
        for job in jobs:
            job.aborted.set()
        raise
    body = completion_body(server, jobs, reply, req.top() is not None)
    return JSONResponse(body, headers={"x-request-id": rid})


def create_app(server: Server, metrics: Any, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
    app = FastAPI(title="llmops serve")
    Instrumentator(excluded_handlers=UNCOUNTED, registry=metrics.registry).instrument(app)
    crashes = Spread(server.engine.faults.http_error_rate)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_response(400, str(exc), "BadRequestError")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):  # counted 5xx before it gets here
        return error_response(500, f"{type(exc).__name__}: {exc}", "InternalServerError")

    @app.get("/health")
    async def health():
        return Response(status_code=200)

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        return model_list(server)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await answer(server, crashes, request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await answer(server, crashes, request, chat=False)

    return BodyLimit(app, max_body_bytes)


def generation_defaults(model_dir: Path) -> dict:
    """The sampling defaults vLLM takes from a model's generation_config.json (its
    `--generation-config auto`): the ones set there, of those this server samples with."""
    path = model_dir / "generation_config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    return {k: float(config[k]) for k in ("temperature", "top_p") if config.get(k) is not None}


def vllm_command(args: argparse.Namespace) -> list[str]:
    """vLLM's own OpenAI server with the same model, adapter, name, host and port."""
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        args.model,
        "--served-model-name",
        args.served_model_name or Path(args.model).name,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--max-num-seqs",
        str(args.max_num_seqs),
    ]
    if args.max_model_len:
        cmd += ["--max-model-len", str(args.max_model_len)]
    if args.adapter:
        cmd += ["--enable-lora", "--lora-modules", f"{args.adapter_name}={args.adapter}"]
    return cmd


@command(
    "serve",
    help="OpenAI-compatible server with vLLM's metrics and request logs (CPU stand-in for vLLM)",
    args=[
        arg("--model", required=True, help="base model directory (e.g. models/base)"),
        arg("--adapter", help="fine-tuned adapter or weights (e.g. models/adapter)"),
        arg("--host", default="127.0.0.1"),
        arg("--port", type=int, default=8000),
        arg("--served-model-name", help="model name clients use (default: dir name)"),
        arg("--adapter-name", default="notices", help="the adapter's model name"),
        arg("--model-version", help="written to request logs (default: $MODEL_VERSION)"),
        arg("--request-log", help="append request logs (JSON Lines) to this file"),
        arg(
            "--fault",
            action="append",
            metavar="NAME=VALUE",
            help="error_rate=0.1, http_error_rate=0.1, latency_ms=800 or"
            " ttft_factor=3 (repeatable)",
        ),
        arg("--engine", choices=["transformers", "vllm"], default="transformers"),
        arg("--max-model-len", type=int, help="context length (default: the model's positions)"),
        arg("--max-num-seqs", type=int, default=16, help="sequences decoded together (vLLM's)"),
        arg("--max-waiting", type=int, default=256, help="requests that may wait; more get 503"),
        arg("--max-body-bytes", type=int, default=4194304, help="larger bodies get 413"),
        arg("--seed", type=int, default=0, help="seed of sampling"),
        arg("--threads", type=int, help="torch CPU threads (default: torch's)"),
    ],
)
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

    from pipeline.modeling import is_adapter, load_model, load_tokenizer
    from pipeline.serve.metrics import engine_metrics

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        raise UserError(f"--model {model_dir}: no such model directory")
    adapter = Path(args.adapter) if args.adapter else None
    if adapter and not adapter.is_dir():
        raise UserError(f"--adapter {adapter}: no such directory")
    has_tokenizer = adapter is not None and (adapter / "tokenizer_config.json").exists()
    tok = load_tokenizer(adapter if adapter is not None and has_tokenizer else model_dir)
    tuned = load_model(model_dir, adapter) if adapter else None
    if tuned is not None and adapter is not None and is_adapter(adapter):
        models = {False: tuned, True: tuned}  # PEFT: the base by disabling the adapter
    else:
        models = {False: load_model(model_dir), **({True: tuned} if tuned is not None else {})}
    positions = getattr(models[False].config, "max_position_embeddings", None) or 2048
    max_model_len = args.max_model_len or positions
    if max_model_len > positions:
        raise UserError(f"--max-model-len {max_model_len} is over the model's {positions}")
    name = args.served_model_name or model_dir.name
    adapter_name = args.adapter_name if adapter else None
    if adapter_name == name:
        raise UserError("--adapter-name must differ from the served model name")
    metrics = engine_metrics(name)
    version = args.model_version or os.environ.get("MODEL_VERSION", "dev")
    engine = Engine(
        models,
        tok,
        metrics,
        faults,
        args.max_num_seqs,
        max_model_len,
        args.seed,
        args.threads,
        args.max_waiting,
    )
    engine.warm_up()
    server = Server(
        tok,
        engine,
        name,
        adapter_name,
        version,
        max_model_len,
        RequestLog(args.request_log),
        generation_defaults(model_dir),
    )
    names = ", ".join(n for n in (name, adapter_name) if n)
    print(
        f"serving {names} (version {version}, max_model_len {max_model_len}, max_num_seqs"
        f" {args.max_num_seqs}) on http://{args.host}:{args.port}"
        + (f", faults {faults}" if faults != Faults() else ""),
        flush=True,
    )
    app = create_app(server, metrics, args.max_body_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
