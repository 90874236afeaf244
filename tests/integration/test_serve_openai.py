"""`llmops serve` against the official `openai` client: it refuses what vLLM refuses, in
vLLM's words and OpenAI's error shape, and accepts what vLLM accepts.

Each expectation cites the vLLM source it comes from (vllm-project/vllm):
  CHAT    vllm/entrypoints/openai/chat_completion/protocol.py @ d5dba2d
  COMPL   vllm/entrypoints/openai/completion/protocol.py @ d5dba2d
  SAMPLE  vllm/sampling_params.py @ 00388f6 (SamplingParams.__post_init__, _verify_args)
  RENDER  vllm/renderers/params.py @ 017638d (TokenizeParams)
  EXC     vllm/exceptions.py (VLLMValidationError.__str__ appends "(parameter=, value=)")
  ENGINE  the engine's _validate_logprobs (max_logprobs, 20 by default)
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.feedback.logs import read_logs

from .conftest import ADAPTER_NAME, MAX_MODEL_LEN, SERVED_NAME

pytestmark = pytest.mark.integration
PROMPT = "这则通知属于哪个类别？\n\n标题：关于期末考试安排的通知"
USER = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key="none", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def tok(served):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(served.base)


def scrape(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/metrics") as resp:
        return {f.name: f for f in text_string_to_metric_families(resp.read().decode())}


def total(families: dict, name: str, **labels) -> float:
    """A counter's or gauge's value summed over the series matching `labels`."""
    return sum(
        s.value
        for s in families[name].samples
        if s.name in (name, f"{name}_total")
        and all(s.labels.get(k) == v for k, v in labels.items())
    )


def log_lines(served) -> int:
    return len(served.log.read_text().splitlines()) if served.log.exists() else 0


# (endpoint, body beyond model/messages/prompt, param, message, where vLLM says so)
REFUSED = [
    (
        "chat",
        {"temperature": [1]},
        "temperature",
        "temperature: Input should be a valid number",
        "CHAT ChatCompletionRequest.temperature: float | None; schema errors are 400",
    ),
    (
        "chat",
        {"temperature": -0.5},
        "temperature",
        "temperature must be non-negative, got -0.5. (parameter=temperature, value=-0.5)",
        "SAMPLE _verify_args: temperature < 0",
    ),
    (
        "chat",
        {"temperature": 2.5},
        "temperature",
        "temperature must be in [0, 2], got 2.5. (parameter=temperature, value=2.5)",
        "SAMPLE _verify_args: temperature > 2",
    ),
    (
        "chat",
        {"top_p": 0},
        "top_p",
        "top_p must be in (0, 1], got 0.0. (parameter=top_p, value=0.0)",
        "SAMPLE _verify_args",
    ),
    (
        "chat",
        {"max_tokens": 0},
        "max_tokens",
        "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)",
        "SAMPLE _verify_args: max_tokens < 1",
    ),
    ("chat", {"n": 0}, None, "n must be at least 1, got 0.", "SAMPLE _verify_num_sequences"),
    (
        "chat",
        {"n": 20000, "temperature": 1},
        None,
        "n must be at most 16384, got 20000. To increase this limit, set the VLLM_MAX_N_SEQUENCES"
        " environment variable.",
        "SAMPLE _verify_num_sequences, envs VLLM_MAX_N_SEQUENCES=16384",
    ),
    (
        "chat",
        {"n": 2, "temperature": 0},
        None,
        "n must be 1 when using greedy sampling, got 2.",
        "SAMPLE _verify_greedy_sampling",
    ),
    (
        "chat",
        {"stop": ["ok", ""]},
        None,
        "stop cannot contain an empty string.",
        "SAMPLE _verify_args: empty stop string",
    ),
    (
        "chat",
        {"top_logprobs": 3},
        "top_logprobs",
        "when using `top_logprobs`, `logprobs` must be set to true. (parameter=top_logprobs)",
        "CHAT check_logprobs",
    ),
    (
        "chat",
        {"logprobs": True, "top_logprobs": -2},
        "top_logprobs",
        "`top_logprobs` must be a positive value or -1. (parameter=top_logprobs, value=-2)",
        "CHAT check_logprobs",
    ),
    (
        "chat",
        {"logprobs": True, "top_logprobs": 21},
        "logprobs",
        "Requested sample logprobs of 21, which is greater than max allowed: 20"
        " (parameter=logprobs, value=21)",
        "ENGINE _validate_logprobs",
    ),
    (
        "chat",
        {"stream_options": {"include_usage": True}},
        "stream_options",
        "Stream options can only be defined when `stream=True`. (parameter=stream_options)",
        "CHAT validate_stream_options",
    ),
    (
        "chat",
        {"seed": 2**64},
        "seed",
        "seed: Input should be less than or equal to",
        "CHAT seed: Field(ge=_LONG_INFO.min, le=_LONG_INFO.max)",
    ),
    (
        "chat",
        {"max_tokens": 10**9},
        "max_tokens",
        "max_tokens=1000000000cannot be greater than"
        f" max_model_len=max_total_tokens={MAX_MODEL_LEN}."
        " Please request fewer output tokens. (parameter=max_tokens, value=1000000000)",
        "RENDER TokenizeParams.__post_init__ (its missing space included)",
    ),
    (
        "chat",
        {"max_completion_tokens": 500, "max_tokens": 5},
        "max_completion_tokens",
        "max_completion_tokens=500cannot be greater than",
        "CHAT build_tok_params: it wins",
    ),
    (
        "completions",
        {"prompt": ""},
        None,
        "Either prompt or prompt_embeds must be provided and non-empty.",
        "COMPL validate_prompt_and_prompt_embeds",
    ),
    (
        "completions",
        {"logprobs": -1},
        "logprobs",
        "`logprobs` must be a positive value. (parameter=logprobs, value=-1)",
        "COMPL check_logprobs",
    ),
    (
        "completions",
        {"logprobs": 21},
        "logprobs",
        "Requested sample logprobs of 21, which is greater than max allowed: 20",
        "ENGINE _validate_logprobs",
    ),
    (
        "completions",
        {"n": None},
        "n",
        "n: Input should be a valid integer",
        "COMPL CompletionRequest.n: int (not optional, unlike chat)",
    ),
]


@pytest.mark.parametrize(
    ("endpoint", "extra", "param", "message", "source"),
    REFUSED,
    ids=[f"{e}-{','.join(x)}" for e, x, *_ in REFUSED],
)
def test_refused_as_vllm_refuses(client, endpoint, extra, param, message, source):
    with pytest.raises(openai.BadRequestError) as caught:
        if endpoint == "chat":
            client.chat.completions.create(model=SERVED_NAME, messages=USER, **extra)
        else:
            body = {"prompt": "标题：", **extra}
            client.completions.create(model=SERVED_NAME, **body)
    err = caught.value
    assert err.status_code == 400, source
    assert err.body["type"] == "BadRequestError" and err.body["code"] == 400, source
    assert err.body["message"].startswith(message), (source, err.body["message"])
    assert err.body["param"] == param, source


def test_context_length_is_vllms(client, tok, served):
    """RENDER: a prompt over the context minus the asked tokens is refused naming both
    numbers (`_token_len_check`); text that could never fit is refused before it is
    tokenized (`_text_len_check`); without max_tokens the answer may fill the context."""
    max_chars = max(len(t) for t in tok.get_vocab())
    words = "关于期末考试安排的通知，请各学院按时完成。"
    long = words * 40
    n_tokens = len(tok(long, add_special_tokens=False)["input_ids"])
    assert n_tokens > MAX_MODEL_LEN - 10 and len(long) <= (MAX_MODEL_LEN - 10) * max_chars
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=SERVED_NAME, prompt=long, max_tokens=10)
    assert caught.value.body["param"] == "input_tokens"
    assert caught.value.body["message"] == (
        f"You passed {n_tokens} input tokens and requested 10 output tokens. However, the"
        f" model's context length is only {MAX_MODEL_LEN} tokens, resulting in a maximum input"
        f" length of {MAX_MODEL_LEN - 10} tokens. Please reduce the length of the input prompt."
        f" (parameter=input_tokens, value={n_tokens})"
    )
    huge = "考" * (MAX_MODEL_LEN * max_chars + 1)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=SERVED_NAME, messages=[{"role": "user", "content": huge}]
        )
    assert caught.value.body["param"] == "input_text"
    assert "characters" in caught.value.body["message"]
    # the default budget is what the context has left (greedy: the same answer each time)
    out = client.completions.create(
        model=SERVED_NAME, prompt="标题：", max_tokens=None, temperature=0
    )
    used = out.usage.prompt_tokens + out.usage.completion_tokens
    assert used <= MAX_MODEL_LEN
    assert out.choices[0].finish_reason == "stop" or used == MAX_MODEL_LEN


def test_unknown_model_is_404_naming_model(client):
    """vllm/entrypoints/openai/engine/serving.py _check_model: NotFoundError, param model."""
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4", messages=USER, max_tokens=3)
    assert caught.value.body == {
        "message": "The model `gpt-4` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


def test_model_field_routes_base_and_adapter(client, served):
    """The served name (or none) gets the base weights, the adapter's name the LoRA, as vLLM's
    --lora-modules routes; /v1/models lists both, the adapter's parent the base."""
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {SERVED_NAME, ADAPTER_NAME}
    assert models[ADAPTER_NAME].model_extra["parent"] == SERVED_NAME

    def answer(model):
        out = client.completions.create(
            model=model, prompt="标题：关于", max_tokens=8, temperature=0
        )
        return out.model, out.choices[0].text

    base_name, base = answer(SERVED_NAME)
    tuned_name, tuned = answer(ADAPTER_NAME)
    assert (base_name, tuned_name) == (SERVED_NAME, ADAPTER_NAME)
    assert base != tuned  # the adapter's weights answered
    body = json.dumps({"prompt": "标题：关于", "max_tokens": 8, "temperature": 0}).encode()
    req = urllib.request.Request(
        f"{served.url}/v1/completions", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(req) as resp:  # no model: the base
        assert json.load(resp)["choices"][0]["text"] == base


def test_sampling_features_clients_use(client):
    # n choices (SAMPLE: n child requests), each its own sample
    out = client.chat.completions.create(
        model=SERVED_NAME, messages=USER, n=3, max_tokens=6, temperature=1.0, seed=11
    )
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert len({c.message.content for c in out.choices}) > 1
    # a seed makes sampling reproducible (SAMPLE: seed); -1 means unseeded
    again = client.chat.completions.create(
        model=SERVED_NAME, messages=USER, n=3, max_tokens=6, temperature=1.0, seed=11
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in out.choices]
    # text content parts are joined (CHAT: ChatCompletionMessageParam)
    parts = [{"type": "text", "text": PROMPT[:10]}, {"type": "text", "text": PROMPT[10:]}]
    joined = client.chat.completions.create(
        model=SERVED_NAME,
        max_tokens=6,
        temperature=0,
        messages=[{"role": "user", "content": parts}],
    )
    plain = client.chat.completions.create(
        model=SERVED_NAME, max_tokens=6, temperature=0, messages=USER
    )
    assert joined.choices[0].message.content == plain.choices[0].message.content
    # max_completion_tokens wins over max_tokens (CHAT build_tok_params)
    capped = client.chat.completions.create(
        model=SERVED_NAME, messages=USER, temperature=0, max_tokens=50, max_completion_tokens=2
    )
    assert capped.usage.completion_tokens <= 2
    # prompt lists: one choice per prompt, of text or of token ids (COMPL prompt union)
    texts = client.completions.create(
        model=SERVED_NAME, prompt=["标题：", "正文："], max_tokens=3, temperature=0
    )
    assert [c.index for c in texts.choices] == [0, 1]
    ids = client.completions.create(
        model=SERVED_NAME, prompt=[[5, 6, 7], [8, 9]], max_tokens=3, temperature=0
    )
    assert [c.index for c in ids.choices] == [0, 1]


def test_stop_strings_cut_the_text(client):
    free = client.completions.create(
        model=SERVED_NAME, prompt="标题：", max_tokens=12, temperature=0
    )
    text = free.choices[0].text
    assert len(text) >= 3, "the greedy answer is too short to stop inside"
    stop = text[2:4]
    cut = client.completions.create(
        model=SERVED_NAME, prompt="标题：", max_tokens=12, temperature=0, stop=[stop, "never-seen"]
    )
    choice = cut.choices[0]
    assert choice.text == text[: text.index(stop)]
    assert choice.finish_reason == "stop" and choice.model_extra["stop_reason"] == stop
    stream = client.completions.create(
        model=SERVED_NAME, prompt="标题：", max_tokens=12, temperature=0, stop=stop, stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices) == choice.text


def test_logprobs_in_openai_shape(client):
    chat = client.chat.completions.create(
        model=SERVED_NAME, messages=USER, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 3 and entry.logprob <= 0
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy: the top
    compl = client.completions.create(
        model=SERVED_NAME, prompt="标题：", max_tokens=4, temperature=0, logprobs=2
    )
    lp = compl.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert all(len(top) <= 2 for top in lp.top_logprobs)


def test_streams_start_with_the_role_and_end_with_usage(client):
    chunks = list(
        client.chat.completions.create(
            model=SERVED_NAME,
            messages=USER,
            max_tokens=5,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"  # CHAT stream: role first
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 5
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].choices[0].finish_reason in ("stop", "length")
    plain = client.chat.completions.create(
        model=SERVED_NAME, messages=USER, max_tokens=5, temperature=0
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_streams_carry_every_prompt_and_choice(client, served):
    """COMPL/CHAT streaming: prompt p's choice i is index p * n + i, each with its own end;
    each prompt is one finished request in the log."""
    lines = log_lines(served)
    prompts = ["标题：", "正文："]
    plain = client.completions.create(
        model=SERVED_NAME, prompt=prompts, max_tokens=5, temperature=0
    )
    chunks = list(
        client.completions.create(
            model=SERVED_NAME, prompt=prompts, max_tokens=5, temperature=0, stream=True
        )
    )
    texts = {0: "", 1: ""}
    ends = []
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason:
                ends.append(choice.index)
    assert sorted(ends) == [0, 1]
    assert texts == {c.index: c.text for c in plain.choices}
    assert log_lines(served) - lines == 4  # two prompts, asked twice
    two = list(
        client.chat.completions.create(
            model=SERVED_NAME, messages=USER, n=2, max_tokens=4, temperature=1.0, stream=True
        )
    )
    assert {ch.index for c in two for ch in c.choices if ch.finish_reason} == {0, 1}


def test_a_client_gone_mid_stream_aborts_its_generation(served, tok):
    """vLLM aborts a request whose client disconnected and counts it finished_reason abort;
    it never reaches the request log, and the batch slot is freed."""
    before, lines = scrape(served.url), log_lines(served)
    host, port = served.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {
        "model": SERVED_NAME,
        "prompt": "标题：",
        "max_tokens": 100,
        "stream": True,
        "temperature": 1.0,
        "stop": ["\u2603" * 3],
    }
    conn.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")  # generation has started
    conn.sock.close()
    conn.close()
    deadline = time.monotonic() + 20
    while True:
        after = scrape(served.url)
        aborted = total(after, "vllm:request_success", finished_reason="abort") - total(
            before, "vllm:request_success", finished_reason="abort"
        )
        done = sum(
            total(after, "vllm:request_success", finished_reason=r)
            - total(before, "vllm:request_success", finished_reason=r)
            for r in ("stop", "length")
        )
        if aborted + done >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert aborted + done == 1
    assert log_lines(served) - lines == done  # only a finished request is logged
    assert total(after, "vllm:num_requests_running") == 0


def test_oversized_body_is_413_before_it_is_read(served):
    body = b'{"prompt": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    req = urllib.request.Request(
        f"{served.url}/v1/completions", body, {"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=30)
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["error"]["code"] == 413


def test_http_metrics_are_the_instrumentators(served):
    """vLLM's api_server instruments FastAPI with prometheus-fastapi-instrumentator: status
    grouped (2xx/4xx/5xx), an unmatched route under handler `none` (so random paths cannot
    grow /metrics), /metrics and /health not counted."""
    for i in range(20):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{served.url}/no/such/path/{i}")
    urllib.request.urlopen(f"{served.url}/health").close()
    families = scrape(served.url)
    http = families["http_requests"]
    handlers = {s.labels["handler"] for s in http.samples}
    assert "none" in handlers and not any(h.startswith("/no/") for h in handlers)
    assert {"/metrics", "/health"}.isdisjoint(handlers)
    assert total(families, "http_requests", handler="none", status="4xx") >= 20
    assert {s.labels["status"] for s in http.samples} <= {"2xx", "4xx", "5xx"}


def test_request_log_has_one_line_per_finished_request(served, client):
    before, lines = scrape(served.url), log_lines(served)
    client.chat.completions.create(
        model=SERVED_NAME, messages=USER, max_tokens=3, n=2, temperature=1.0
    )
    client.completions.create(model=SERVED_NAME, prompt=["标题：", "正文："], max_tokens=3)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=SERVED_NAME, prompt="标题：", max_tokens=0)
    after = scrape(served.url)
    finished = sum(
        total(after, "vllm:request_success", finished_reason=r)
        - total(before, "vllm:request_success", finished_reason=r)
        for r in ("stop", "length")
    )
    assert finished == 3  # a prompt list is one engine request per prompt; n=2 is one
    records, errors = read_logs([served.log])
    assert errors == [] and log_lines(served) - lines == finished
    assert records[-1]["prompt"] == "正文："


def test_concurrent_requests_are_batched(served, client):
    """Up to --max-num-seqs sequences decode together: num_requests_running reaches the
    batch size while more wait (vLLM's scheduler: a request waits only while the batch is
    full), and every request is answered."""
    seen = {"running": 0.0, "waiting": 0.0, "kv": 0.0}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            families = scrape(served.url)
            seen["running"] = max(seen["running"], total(families, "vllm:num_requests_running"))
            seen["waiting"] = max(seen["waiting"], total(families, "vllm:num_requests_waiting"))
            seen["kv"] = max(seen["kv"], total(families, "vllm:kv_cache_usage_perc"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    results: list = []

    def ask(i):
        out = client.completions.create(
            model=SERVED_NAME, prompt=f"标题：{i}", max_tokens=60, temperature=1.0, seed=i
        )
        results.append(out.choices[0].finish_reason)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert len(results) == 10
    assert seen["running"] > 1 and seen["running"] <= 4
    assert seen["waiting"] >= 1
    # the cache the batch holds (rows x cached positions) over max_num_seqs x max_model_len
    assert 0 < seen["kv"] <= 1
    assert total(scrape(served.url), "vllm:kv_cache_usage_perc") == 0  # all done: freed


# series the production overlay reads that `llmops serve` does not export, and who does
EXPORTED_ELSEWHERE = {"llm_data_drift_psi": "pipeline/feedback/drift.py"}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def series_in(promql: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once strings, label
    matchers (Argo's {{args.x}} and Grafana's $vars inside them), ranges, grouping labels,
    numbers and function calls are taken out."""
    import re

    q = re.sub(r'"(?:[^"\\]|\\.)*"', "", promql)
    while re.search(r"\{[^{}]*\}", q):
        q = re.sub(r"\{[^{}]*\}", " ", q)
    q = re.sub(r"\[[^\]]*\]", " ", q)
    q = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", q)
    names = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:]*\s*\()", q)
    return {n for n in names if n.lower() not in PROMQL_WORDS and not n[0].isdigit()}


def test_every_series_the_production_overlay_reads_is_exported(served, client):
    from pipeline.deploy.manifests import render

    from ..conftest import ROOT

    client.chat.completions.create(model=ADAPTER_NAME, messages=USER, max_tokens=2)
    with urllib.request.urlopen(f"{served.url}/metrics") as resp:
        exported = {
            s.name for f in text_string_to_metric_families(resp.read().decode()) for s in f.samples
        }
    read: dict[str, set[str]] = {}
    for obj in render(ROOT / "manifests/overlays/production"):
        queries = []
        if obj["kind"] == "AnalysisTemplate":
            queries = [m["provider"]["prometheus"]["query"] for m in obj["spec"]["metrics"]]
        elif obj["kind"] == "PrometheusRule":
            queries = [r["expr"] for g in obj["spec"]["groups"] for r in g["rules"]]
        elif obj["kind"] == "ConfigMap" and "dashboard.json" in obj.get("data", {}):
            panels = json.loads(obj["data"]["dashboard.json"])["panels"]
            queries = [t["expr"] for p in panels for t in p.get("targets", [])]
        elif obj["kind"] == "HorizontalPodAutoscaler":  # prometheus-adapter renames : to _
            queries = [
                m["pods"]["metric"]["name"].replace("vllm_", "vllm:", 1)
                for m in obj["spec"]["metrics"]
                if m["type"] == "Pods"
            ]
        for q in queries:
            for name in series_in(q):
                read.setdefault(name, set()).add(f"{obj['kind']}/{obj['metadata']['name']}")
    assert len(read) >= 8, read  # the parser found the queries
    elsewhere = set(EXPORTED_ELSEWHERE) & set(read)
    for name in elsewhere:
        assert name in (ROOT / EXPORTED_ELSEWHERE[name]).read_text()
    missing = {
        n: sorted(where) for n, where in read.items() if n not in exported and n not in elsewhere
    }
    assert missing == {}
