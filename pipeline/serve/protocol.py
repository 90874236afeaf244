"""The OpenAI requests `llmops serve` accepts, as vLLM defines and checks them.

Each check follows vLLM's source (commits named in tests/integration/test_serve_openai.py):
- the request models: vllm/entrypoints/openai/chat_completion/protocol.py and
  completion/protocol.py (field types, `check_logprobs`, `validate_stream_options`,
  `validate_prompt_and_prompt_embeds`);
- SamplingParams: vllm/sampling_params.py (`_verify_args`, `_verify_greedy_sampling`,
  `_verify_num_sequences`), and the engine's `_validate_logprobs` (at most 20);
- the context: vllm/renderers/params.py (`TokenizeParams`: output tokens over the context,
  the pre-tokenization character bound, `_token_len_check`).
A request vLLM refuses is refused here with HTTP 400 and OpenAI's error shape,
`{"error": {"message", "type", "param", "code"}}`, the message as vLLM words it (its
VLLMValidationError appends `(parameter=..., value=...)`) and `param` where vLLM names one. One
it accepts is accepted. Fields vLLM accepts that this CPU stand-in does not implement (tools,
response formats, penalties, ...) are accepted and ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

INT64 = 2**63 - 1
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
MAX_N = 16384  # vLLM's default VLLM_MAX_N_SEQUENCES


class BadRequest(ValueError):
    """HTTP 400 in OpenAI's shape; `str()` as vLLM's VLLMValidationError words it."""

    def __init__(self, message: str, param: str | None = None, value: Any = None):
        super().__init__(message)
        self.param, self.value = param, value

    def __str__(self) -> str:
        extras = [
            f"{k}={v}"
            for k, v in (("parameter", self.param), ("value", self.value))
            if v is not None
        ]
        base = super().__str__()
        return f"{base} ({', '.join(extras)})" if extras else base


def error_body(message: str, kind: str, code: int, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class OpenAIModel(BaseModel):
    """vLLM's OpenAIBaseModel: unknown fields are accepted (and ignored)."""

    model_config = ConfigDict(extra="allow")


class TextPart(OpenAIModel):
    type: Literal["text"]
    text: str


class Message(OpenAIModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(OpenAIModel):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class Sampling(OpenAIModel):
    """What both endpoints share."""

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=INT64)] | None = None
    ignore_eos: bool = False  # vLLM's sampling extra: generate past EOS (benchmarks use it)

    @model_validator(mode="before")
    @classmethod
    def _stream_options_need_stream(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stream_options") and not data.get("stream"):
            raise BadRequest(
                "Stream options can only be defined when `stream=True`.", "stream_options"
            )
        return data


class ChatRequest(Sampling):
    messages: list[Message]
    n: int | None = 1
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = 0

    @model_validator(mode="before")
    @classmethod
    def _check_logprobs(cls, data: Any) -> Any:
        top = data.get("top_logprobs") if isinstance(data, dict) else None
        if isinstance(top, int) and not isinstance(top, bool):
            if top < 0 and top != -1:
                raise BadRequest(
                    "`top_logprobs` must be a positive value or -1.", "top_logprobs", top
                )
            if (top == -1 or top > 0) and not data.get("logprobs"):
                raise BadRequest(
                    "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs"
                )
        return data

    def output_budget(self) -> tuple[int | None, str]:
        """(requested output tokens, the parameter that asked): max_completion_tokens wins
        over the deprecated max_tokens."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"

    def top(self) -> int | None:
        """How many log probabilities per token (None: none)."""
        return self.top_logprobs if self.logprobs else None


class CompletionRequest(Sampling):
    prompt: list[int] | list[list[int]] | str | list[str] | None = None
    n: int = 1
    max_tokens: int | None = 16  # vLLM's default for /v1/completions
    logprobs: int | None = None
    echo: bool | None = False

    @model_validator(mode="before")
    @classmethod
    def _check_request(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        logprobs = data.get("logprobs")
        if isinstance(logprobs, int) and not isinstance(logprobs, bool) and logprobs < 0:
            raise BadRequest("`logprobs` must be a positive value.", "logprobs", logprobs)
        if data.get("prompt") in (None, "") and not data.get("prompt_embeds"):
            raise BadRequest("Either prompt or prompt_embeds must be provided and non-empty.")
        return data

    def output_budget(self) -> tuple[int | None, str]:
        return self.max_tokens, "max_tokens"

    def top(self) -> int | None:
        return self.logprobs

    def prompts(self) -> list[str | list[int]]:
        """One prompt per entry: text or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [p]  # type: ignore[list-item]
        return list(p or [])  # type: ignore[arg-type]


def parse(model: type[OpenAIModel], body: Any) -> Any:
    """The request, or BadRequest: vLLM's own wording where one of its validators refused
    it, else pydantic's, naming the field (a schema error is a 400 in vLLM too)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raised = (first.get("ctx") or {}).get("error")
        if isinstance(raised, BadRequest):
            raise raised from None
        loc = ".".join(str(x) for x in first["loc"] if not str(x).startswith(("function-", "str")))
        message = first["msg"].removeprefix("Value error, ")
        raise BadRequest(f"{loc}: {message}" if loc else message, loc or None) from None


@dataclass(frozen=True)
class Params:
    """SamplingParams as vLLM builds and checks them from a request."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None
    logprobs: int | None
    ignore_eos: bool = False


def sampling_params(
    req: ChatRequest | CompletionRequest, max_tokens: int, vocab: int, defaults: dict | None = None
) -> Params:
    """vLLM's defaults (temperature 1.0, top_p 1.0, n 1), overridden as vLLM does by the
    model's generation_config.json (`defaults`), `_verify_args`' checks in its order, then
    the engine's bound on log probabilities (-1 asks for the whole vocabulary)."""
    defaults = defaults or {}
    n = 1 if req.n is None else req.n
    temperature = defaults.get("temperature", 1.0) if req.temperature is None else req.temperature
    top_p = defaults.get("top_p", 1.0) if req.top_p is None else req.top_p
    stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
    if n < 1:
        raise BadRequest(f"n must be at least 1, got {n}.")
    if n > MAX_N:
        raise BadRequest(
            f"n must be at most {MAX_N}, got {n}. To increase this limit, set the"
            " VLLM_MAX_N_SEQUENCES environment variable."
        )
    if not math.isfinite(temperature):
        raise BadRequest(
            f"temperature must be a finite number, got {temperature}.", "temperature", temperature
        )
    if temperature < 0.0:
        raise BadRequest(
            f"temperature must be non-negative, got {temperature}.", "temperature", temperature
        )
    if temperature > 2.0:
        raise BadRequest(
            f"temperature must be in [0, 2], got {temperature}.", "temperature", temperature
        )
    if not 0.0 < top_p <= 1.0:
        raise BadRequest(f"top_p must be in (0, 1], got {top_p}.", "top_p", top_p)
    if max_tokens < 1:
        raise BadRequest(
            f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens
        )
    top = req.top()
    if top is not None and top != -1 and top < 0:
        raise BadRequest(f"logprobs must be non-negative or -1, got {top}.", "logprobs", top)
    if any(not s for s in stop):
        raise BadRequest("stop cannot contain an empty string.")
    if temperature < 1e-5 and n > 1:  # greedy: every choice would be the same
        raise BadRequest(f"n must be 1 when using greedy sampling, got {n}.")
    if top:
        wanted = vocab if top == -1 else top
        if wanted > MAX_LOGPROBS:
            raise BadRequest(
                f"Requested sample logprobs of {wanted}, which is greater than max allowed:"
                f" {MAX_LOGPROBS}",
                "logprobs",
                wanted,
            )
    seed = None if req.seed == -1 else req.seed
    return Params(n, temperature, top_p, max_tokens, stop, seed, top, bool(req.ignore_eos))


@dataclass(frozen=True)
class Context:
    """vLLM's TokenizeParams for one request: the context (`max_model_len`) and the output
    tokens asked for (0 when not asked)."""

    max_model_len: int
    requested: int | None
    param: str  # max_tokens or max_completion_tokens

    def __post_init__(self) -> None:
        asked = self.requested or 0
        if asked > self.max_model_len:  # vLLM's words, its missing space and all
            raise BadRequest(
                f"{self.param}={asked}cannot be greater than max_model_len=max_total_tokens="
                f"{self.max_model_len}. Please request fewer output tokens.",
                self.param,
                asked,
            )

    @property
    def max_input_tokens(self) -> int:
        return self.max_model_len - (self.requested or 0)

    def check_text(self, text: str, max_chars_per_token: int) -> None:
        """Before tokenizing: text longer than the input could ever be is refused unread."""
        max_chars = self.max_input_tokens * max_chars_per_token
        if len(text) > max_chars:
            raise BadRequest(
                f"You passed {len(text)} input characters and requested"
                f" {self.requested or 0} output tokens. However, the model's context length is"
                f" only {self.max_model_len} tokens, resulting in a maximum input length of"
                f" {self.max_input_tokens} tokens (at most {max_chars} characters). Please"
                " reduce the length of the input prompt.",
                "input_text",
                len(text),
            )

    def budget(self, prompt_len: int) -> int:
        """The completion's token budget: the request's, else what the context has left."""
        if prompt_len > self.max_input_tokens:
            raise BadRequest(
                f"You passed {prompt_len} input tokens and requested {self.requested or 0}"
                f" output tokens. However, the model's context length is only"
                f" {self.max_model_len} tokens, resulting in a maximum input length of"
                f" {self.max_input_tokens} tokens. Please reduce the length of the input"
                " prompt.",
                "input_tokens",
                prompt_len,
            )
        if self.requested is None:
            return self.max_model_len - prompt_len
        return self.requested
