"""Draw request logs for human comparison: stratified, PII scrubbed, each prompt answered by
the champion and the challenger.

    llmops feedback sample --logs logs/ --n 50      # -> reports/feedback/tasks.jsonl

Strata are the values of `params.feedback.strata` (record fields; `confidence` is bucketed
into low / ok / unknown by `feedback.low_confidence`). They are drawn from in turn, so a rare
model version or a handful of low-confidence answers is seen as often as the bulk of the
traffic. A prompt asked many times is one task. Each side's answer comes from `log` (the
logged response), an OpenAI-compatible endpoint, or a model directory (offline generation);
which side is shown left is decided by a hash of the task id, so position carries no signal.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.config import FeedbackParams
from pipeline.data.pii import scrub
from pipeline.feedback.logs import read_logs
from pipeline.io import UserError, write_jsonl

UNKNOWN = "unknown"
# a callable answering prompts: (records) -> [(answer, model version)]
Answerer = Callable[[list[dict]], list[tuple[str, str]]]


def stratum(record: dict, p: FeedbackParams) -> tuple[str, ...]:
    """The record's stratum: one value per `p.strata` field; absent fields are `unknown`."""
    key = []
    for name in p.strata:
        value = record.get(name)
        if name == "confidence":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = "low" if value < p.low_confidence else "ok"
            else:
                value = None
        key.append(UNKNOWN if value is None or value == "" else str(value))
    return tuple(key)


def draw(records: list[dict], n: int, p: FeedbackParams) -> list[dict]:
    """Up to `n` records with distinct prompts, taken from the strata in turn (each shuffled
    with `p.seed`): deterministic for the same logs and params."""
    seen: set[str] = set()
    groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for r in records:
        if r["prompt"] not in seen:
            seen.add(r["prompt"])
            groups[stratum(r, p)].append(r)
    rng = random.Random(p.seed)
    queues = []
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        queues.append(members)
    out: list[dict] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop())
    return out


def from_log(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["response"], r["model_version"]) for r in records]


def from_endpoint(url: str, max_new_tokens: int) -> Answerer:
    """Answers from an OpenAI-compatible server (vLLM, `llmops serve`): greedy chat
    completions of its fine-tuned model, the LoRA adapter it serves (the entry of GET
    /v1/models with a parent), else of the one model it serves."""
    base = url.rstrip("/").removesuffix("/v1")

    def call(path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError) as exc:
            raise UserError(f"{base}{path}: {exc} (is the endpoint up?)") from None

    def answer(records: list[dict]) -> list[tuple[str, str]]:
        served = call("/v1/models")["data"]
        model = next((m["id"] for m in served if m.get("parent")), served[0]["id"])
        out = []
        for i, r in enumerate(records, 1):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": r["prompt"]}],
                "max_tokens": max_new_tokens,
                "temperature": 0,
            }
            reply = call("/v1/chat/completions", body)
            out.append(
                (reply["choices"][0]["message"]["content"].strip(), reply.get("model", model))
            )
            print(f"\rfeedback sample: {url} answered {i}/{len(records)}", end="", file=sys.stderr)
        print(file=sys.stderr)
        return out

    return answer


def from_model(model_dir: Path, base_dir: Path, max_new_tokens: int) -> Answerer:
    """Answers generated here by a model directory: full weights, or a LoRA adapter over
    `base_dir` (greedy, batched, as the evaluation does)."""

    loaded: list = []  # (model, tokenizer), loaded on the first call

    def answer(records: list[dict]) -> list[tuple[str, str]]:
        from rich.progress import Progress

        from pipeline.modeling import generate, load_model, load_tokenizer

        if not loaded:
            if not Path(model_dir).is_dir():
                raise UserError(f"{model_dir}: no such model directory (run `dvc repro` first?)")
            loaded.extend([load_model(base_dir, model_dir), load_tokenizer(model_dir)])
        model, tok = loaded
        prompts = [[{"role": "user", "content": r["prompt"]}] for r in records]
        with Progress(transient=True) as bar:
            task = bar.add_task(f"feedback sample: {model_dir}", total=len(prompts))
            gen = generate(
                model, tok, prompts, 16, max_new_tokens, progress=lambda n: bar.advance(task, n)
            )
        return [(text, f"local:{model_dir}") for text in gen.texts]

    return answer


def answerer(source: str, base_dir: Path, max_new_tokens: int) -> Answerer:
    """`log`, an http(s):// endpoint, or a model directory."""
    if source == "log":
        return from_log
    if source.startswith(("http://", "https://")):
        return from_endpoint(source, max_new_tokens)
    return from_model(Path(source), base_dir, max_new_tokens)


def left_is_champion(task_id: str) -> bool:
    return hashlib.sha256(task_id.encode()).digest()[0] % 2 == 0


def scrubbed(text: str, counts: Counter) -> str:
    """`text` with personal data replaced by typed placeholders; `counts` grows per kind."""
    out, found = scrub(text)
    counts.update(found)
    return out


def make_tasks(
    records: list[dict],
    champion: list[tuple[str, str]],
    challenger: list[tuple[str, str]],
    p: FeedbackParams,
    pii: Counter,
) -> tuple[list[dict], int]:
    """Label Studio task data for each record, PII scrubbed; (tasks, pairs dropped because
    both sides gave the same answer)."""
    tasks, same = [], 0
    for r, (a, a_version), (b, b_version) in zip(records, champion, challenger, strict=True):
        a, b = scrubbed(a.strip(), pii), scrubbed(b.strip(), pii)
        if a == b or not a or not b:
            same += 1
            continue
        sides = [("champion", a, a_version), ("challenger", b, b_version)]
        if not left_is_champion(r["request_id"]):
            sides.reverse()
        (left_role, left, left_version), (right_role, right, right_version) = sides
        tasks.append(
            {
                "feedback_id": r["request_id"],  # the stable id that makes `push` idempotent
                "prompt": scrubbed(r["prompt"], pii),
                "left": left,
                "right": right,
                "left_model": f"{left_role}:{left_version}",
                "right_model": f"{right_role}:{right_version}",
                "request_time": r["time"],
                "stratum": "/".join(stratum(r, p)),
                **{k: r[k] for k in ("task", "confidence") if k in r},
            }
        )
    return tasks, same


def sample(
    log_paths: list[Path],
    n: int,
    p: FeedbackParams,
    champion: Answerer,
    challenger: Answerer,
) -> tuple[list[dict], dict]:
    """The tasks for `n` sampled requests and a summary (bad lines, strata, PII found)."""
    records, errors = read_logs(log_paths)
    for err in errors[:20]:
        print(f"warning: {err} (line skipped)", file=sys.stderr)
    if len(errors) > 20:
        print(f"warning: ... and {len(errors) - 20} more bad lines skipped", file=sys.stderr)
    # the whole draw order, answered a chunk at a time until n tasks have two different
    # answers (identical ones compare nothing) or the logs run out
    order = draw(records, len(records), p)
    pii: Counter = Counter()
    tasks: list[dict] = []
    same = drawn = 0
    while len(tasks) < n and drawn < len(order):
        chunk = order[drawn : drawn + n - len(tasks)]
        drawn += len(chunk)
        got, dropped = make_tasks(chunk, champion(chunk), challenger(chunk), p, pii)
        tasks += got
        same += dropped
    summary = {
        "requests": len(records),
        "bad_lines": len(errors),
        "drawn": drawn,
        "tasks": len(tasks),
        "same_answer": same,
        "strata": dict(sorted(Counter(t["stratum"] for t in tasks).items())),
        "pii_scrubbed": dict(sorted(pii.items())),
    }
    return tasks, summary


@command(
    "feedback",
    "sample",
    help="draw request logs for comparison: stratified, PII scrubbed, champion vs challenger",
    args=[
        arg("--logs", nargs="+", required=True, help="request-log files or dirs"),
        arg("--n", type=int, help="tasks to draw (default: feedback.sample_size)"),
        arg("--champion", help="log, an endpoint URL or a model dir (feedback.champion)"),
        arg("--challenger", help="the same for the challenger (feedback.challenger)"),
        arg("--out", help=f"tasks file (default: {paths.FEEDBACK_TASKS})"),
    ],
)
def main(args) -> int:
    from pipeline.config import load_params
    from pipeline.paths import BASE_DIR, FEEDBACK_TASKS

    p = load_params().feedback
    if args.n is not None and args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    n = args.n or p.sample_size
    champion = answerer(args.champion or p.champion, BASE_DIR, p.max_new_tokens)
    challenger = answerer(args.challenger or p.challenger, BASE_DIR, p.max_new_tokens)
    tasks, s = sample([Path(x) for x in args.logs], n, p, champion, challenger)
    out = Path(args.out or FEEDBACK_TASKS)
    write_jsonl(out, tasks)
    pii = ", ".join(f"{v} {k.lower()}" for k, v in s["pii_scrubbed"].items()) or "none"
    print(
        f"feedback sample: {s['tasks']} tasks from {s['requests']} requests"
        f" ({s['bad_lines']} bad lines skipped, {s['same_answer']} with identical answers"
        f" dropped) over {len(s['strata'])} strata; PII scrubbed: {pii} -> {out}"
    )
    return 0
