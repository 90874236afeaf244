"""`llmops bench`: measure the speed figures and write them, flat, to bench/results.json.

Every figure comes from running the real command here; nothing is typed by hand.
- install_s: fresh virtualenv + pinned install (torch first, then requirements.lock), with
  pip's download cache as a machine that installed once has it.
- repro_cold_s: `dvc repro` in a fresh copy of the repository, from nothing to the gate.
- repro_noop_s: `dvc repro` again with nothing changed (nothing reruns).
- train_tokens_per_s: training throughput (non-padding tokens) of that cold run.
- eval_batch_speedup: greedy generation over the eval split with the trained model, one
  prompt at a time vs in batches of params.evaluate.batch_size, measured back to back
  (eval_device: where). eval_batched_prompt_s: the batched run's prompt forward passes alone,
  the part batching cannot shrink further once it is compute-bound.
- baseline_s: fitting and scoring every group's cheap baseline (pipeline/evaluate/baseline.py)
  on that copy's train and eval split; baseline_share_of_repro: baseline_s / repro_cold_s.
- packing_throughput_ratio: training tokens/s with `train.packing` on over off, a few steps
  each on the same data and base, back to back.
- train_tokens_per_s_cuda_<precision>, dpo_tokens_per_s_cuda_<precision> (only where a GPU
  is present): the train and dpo stages' training code with the stage's params, data and
  base model (models/base, data/prepared of this checkout) on the GPU, precision from
  `train.precision` (auto: bf16); train_cuda_vs_cpu: the same training steps on this
  machine's CPU, for a ratio measured on one machine.
- canary_abort_s: `llmops rehearse` of the production Rollout with a canary answering 10% of
  requests 5xx: seconds from the first bad measurement to the abort (canary_abort_intervals:
  the same in analysis intervals; rehearsal_s: the whole rehearsal). BENCH_SKIP=rehearse.
- ci_day_s: tests/e2e/test_day.py, one day of the release loop run by the workflow files
  under `act` (a failing and a training pull request, merge, tag, two abort notifications,
  a hand revert, a fork), with the trained copy above as its workspace; trainings_per_change:
  MLflow runs of the train stage the merged change caused in that day (1: trained on its pull
  request, never again). BENCH_SKIP=day.
- serve_tokens_per_s_c1 / _c16: completion tokens per second through `llmops serve` (the
  trained base + adapter, --max-num-seqs 16), 1 and 16 requests in flight, greedy, 32 tokens
  each (`ignore_eos`, as vLLM's serving benchmark asks); generate_tokens_per_s_c1 / _c16:
  plain `transformers` generate() with the same model, prompts and budget, one prompt at a
  time and the 16 in one batch; serve_vs_generate_c1 / _c16: the server's figure over
  generate()'s (its overhead, as a ratio of one run); serve_rss_peak_mb: the server's peak
  resident memory under pipeline/serve/load.py's abuse (a huge max_tokens, a 40,000-character
  prompt, 64 streams half of which hang up, a 10 MB body). BENCH_SKIP=serve.
- dedup_docs_per_s (and per CPU second): exact + near-duplicate removal (dedup.py, with
  params.prepare's threshold, shingle size and hashes) over 20,000 generated notices.
- index_docs_per_s: the index stage's embedding + Chroma upsert of 1,000 generated notices
  into an empty index (model loaded and warmed up first, as the stage's later batches are;
  index_device: where). index_gflop_per_doc: the encoder's floating-point work per notice,
  counted by torch's FlopCounterMode; matmul_gflops: this machine's best fp32 matrix multiply
  rate; index_docs_per_s_ceiling: notices per second if the encoder ran at that rate.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.commands import command
from pipeline.io import read_json_dict, write_json
from pipeline.paths import TRAIN_METRICS
from pipeline.scratch import copy_repo

RESULTS = Path("bench/results.json")
WORK = Path("bench/work")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    """Seconds `cmd` took; raises with its output if it failed."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"bench: `{' '.join(cmd)}` failed ({proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return round(seconds, 1)


def bench_install(root: Path, work: Path) -> float:
    venv = work / "venv"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    t0 = time.perf_counter()
    timed([sys.executable, "-m", "venv", str(venv)], root)
    timed([*pip, "--upgrade", "pip"], root)
    timed([*pip, "torch==2.13.0"], root)
    timed([*pip, "-c", "requirements.lock", "-e", ".[dev]"], root)
    seconds = round(time.perf_counter() - t0, 1)
    shutil.rmtree(venv)
    return seconds


def bench_repro(root: Path, work: Path) -> dict[str, Any]:
    repo = copy_repo(root, work / "repo", from_nothing=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cold = timed(["dvc", "repro"], repo, env)
    noop = timed(["dvc", "repro"], repo, env)
    train = read_json_dict(repo / TRAIN_METRICS)
    return {
        "repro_cold_s": cold,
        "repro_noop_s": noop,
        "train_tokens_per_s": train.get("tokens_per_s"),
    }


def bench_baseline(repo: Path, repro_cold_s: float) -> dict[str, Any]:
    from pipeline.config import load_params
    from pipeline.evaluate.baseline import baseline_predictions
    from pipeline.evaluate.evaluate import answer_kinds
    from pipeline.io import read_jsonl
    from pipeline.paths import EVAL_FILE, PARAMS, TRAIN_FILE

    t0 = time.perf_counter()
    train, evals = read_jsonl(repo / TRAIN_FILE), read_jsonl(repo / EVAL_FILE)
    kinds = answer_kinds(train, evals, load_params(repo / PARAMS).evaluate.max_labels)
    baseline_predictions(train, evals, kinds)
    seconds = time.perf_counter() - t0
    return {
        "baseline_s": round(seconds, 2),
        "baseline_share_of_repro": round(seconds / repro_cold_s, 4),
    }


def bench_eval(repo: Path) -> dict[str, Any]:
    from pipeline.config import load_params
    from pipeline.io import read_jsonl
    from pipeline.modeling import generate, load_model, load_tokenizer
    from pipeline.paths import ADAPTER_DIR, BASE_DIR, EVAL_FILE, PARAMS

    p = load_params(repo / PARAMS).evaluate
    records = read_jsonl(repo / EVAL_FILE)
    prompts, tasks = [r["prompt"] for r in records], [r["task"] for r in records]
    tok = load_tokenizer(repo / ADAPTER_DIR)
    model = load_model(repo / BASE_DIR, repo / ADAPTER_DIR)
    generate(model, tok, prompts[:8], 8, p.max_new_tokens)  # warm-up
    t0 = time.perf_counter()
    generate(model, tok, prompts, p.batch_size, p.max_new_tokens, groups=tasks)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    generate(model, tok, prompts, 1, p.max_new_tokens)
    single = time.perf_counter() - t0
    return {
        "eval_batched_s": round(batched, 2),
        "eval_batched_prompt_s": round(prompt_seconds(model, tok, prompts, p.batch_size, tasks), 2),
        "eval_one_at_a_time_s": round(single, 2),
        "eval_batch_speedup": round(single / batched, 2),
        "eval_device": str(model.device),
    }


def prompt_seconds(
    model, tok, prompts: list[list[dict]], batch_size: int, groups: list[str]
) -> float:
    """Seconds of the forward passes over the prompts alone, in `generate`'s batches: the
    floor of batched generation, however few tokens it then decodes."""
    import torch

    from pipeline.modeling import prompt_batches

    seconds = 0.0
    for _, enc in prompt_batches(model, tok, prompts, batch_size, groups):
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(**enc, logits_to_keep=1)
        seconds += time.perf_counter() - t0
    return seconds


def bench_packing(repo: Path, steps: int = 12) -> dict[str, Any]:
    rate = {
        packing: train_rate(repo, max_steps=steps, packing=packing)["tokens_per_s"]
        for packing in (False, True)
    }
    return {
        "train_tokens_per_s_packed": rate[True],
        "train_tokens_per_s_unpacked": rate[False],
        "packing_throughput_ratio": round(rate[True] / rate[False], 2),
    }


def train_rate(repo: str | Path, out: Path | None = None, **overrides) -> dict:
    """The train stage's training (its params, data and base model) on whatever device this
    process sees, `overrides` on top of params.train; the model is kept in `out` if given."""
    import tempfile

    from pipeline.config import load_params
    from pipeline.io import read_jsonl
    from pipeline.paths import BASE_DIR, PARAMS, TRAIN_FILE
    from pipeline.train.train import train

    repo = Path(repo)
    p = load_params(repo / PARAMS).train.model_copy(update={"save_steps": 0, **overrides})
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as work:
        return train(
            p,
            repo / BASE_DIR,
            read_jsonl(repo / TRAIN_FILE),
            out or Path(work) / "out",
            Path(work) / "ckpt",
        )


def bench_cuda(repo: Path, same_steps: int = 60) -> dict[str, float | str]:
    import json
    import tempfile

    import torch

    from pipeline.config import load_params
    from pipeline.data.prefs import load_pairs
    from pipeline.paths import BASE_DIR, PARAMS, PREFS_FILE
    from pipeline.train.dpo import dpo, split_pairs
    from pipeline.train.trainer import precision_kwargs

    params = load_params(repo / PARAMS)
    kw = precision_kwargs(params.train.precision)
    precision = "bf16" if kw["bf16"] else "fp16" if kw["fp16"] else "fp32"
    out: dict[str, float | str] = {
        "cuda_device": torch.cuda.get_device_name(),
        "cuda_measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as work:
        sft = Path(work) / "sft"
        gpu = train_rate(repo, out=sft)
        out[f"train_tokens_per_s_cuda_{precision}"] = gpu["tokens_per_s"]
        out["train_cuda_s"] = gpu["seconds"]
        train_pairs, held_out = split_pairs(load_pairs(repo / PREFS_FILE), params.prepare)
        if train_pairs:
            summary = dpo(
                params.dpo,
                params.train,
                repo / BASE_DIR,
                sft,
                train_pairs,
                held_out,
                Path(work) / "dpo",
                Path(work) / "dpo-ckpt",
            )
            out[f"dpo_tokens_per_s_cuda_{precision}"] = summary["tokens_per_s"]
            out["dpo_cuda_s"] = summary["seconds"]
            for model in ("sft", "dpo"):
                out[f"dpo_cuda_held_out_preference_accuracy_{model}"] = summary["held_out"][model][
                    "preference_accuracy"
                ]
    # the same steps on this machine's CPU (a process that sees no GPU), for a ratio
    # measured on one machine
    code = (
        "import json; from pipeline.bench import train_rate; "
        f"print(json.dumps(train_rate({str(repo)!r}, max_steps={same_steps})))"
    )
    cpu = json.loads(
        subprocess.run(
            [sys.executable, "-c", code],
            env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    same = train_rate(repo, max_steps=same_steps)
    out["train_tokens_per_s_same_machine_cpu"] = cpu["tokens_per_s"]
    out["train_cuda_vs_cpu"] = round(same["tokens_per_s"] / cpu["tokens_per_s"], 2)
    return out


def bench_canary(repo: Path) -> dict[str, Any]:
    """First bad measurement -> abort, for a canary answering 10% of requests with 5xx (the
    production overlay, `llmops rehearse` compressed 30x), and the whole rehearsal's time."""
    out = (repo / "reports" / "bench-rehearsal").resolve()  # the rehearsal runs in repo
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "rehearse",
            "--canary-fault",
            "error_rate=0.1",
            "--out",
            str(out),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    report = read_json_dict(out / "report.json") if (out / "report.json").exists() else {}
    if report.get("result") != "Aborted" or report.get("canary_abort_s") is None:
        raise RuntimeError(f"rehearsal did not abort:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {
        "canary_abort_s": report["canary_abort_s"],
        "canary_abort_intervals": round(
            report["canary_abort_s"] / report["first_bad_interval_s"], 2
        ),
        "rehearsal_s": round(time.perf_counter() - t0, 1),
    }


def bench_day(repo: Path) -> dict[str, Any]:
    """The release-loop day test, on the trained copy `repo`; its figures."""
    figures = (WORK / "day.json").resolve()
    env = {
        **os.environ,
        "FLYWHEEL_WORKSPACE": str(repo.resolve()),
        "FLYWHEEL_DAY_FIGURES": str(figures),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_day.py",
            "--basetemp",
            str((WORK / "day").resolve()),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not figures.exists():
        raise RuntimeError(f"the day test failed:\n{proc.stdout[-3000:]}")
    day = read_json_dict(figures)
    return {"ci_day_s": day["ci_day_s"], "trainings_per_change": day["trainings_per_change"]}


def generate_rate(
    base: Path, adapter: Path, prompts: list[str], batch: int, max_tokens: int
) -> float:
    """Completion tokens per second of plain generate(), greedy, `batch` prompts at a time
    (left-padded), each generating `max_tokens` (EOS held off, as the server's ignore_eos)."""
    import torch

    from pipeline.modeling import load_model, load_tokenizer

    tok, model = load_tokenizer(adapter), load_model(base, adapter)
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.no_grad():  # warm-up, as the server warms up
        model.generate(
            **tok(texts[:1], return_tensors="pt", add_special_tokens=False),
            max_new_tokens=2,
            do_sample=False,
            pad_token_id=pad,
        )
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(texts), batch):
        enc = tok(texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_tokens,
                min_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        tokens += out[:, enc["input_ids"].shape[1] :].numel()
    return tokens / (time.perf_counter() - start)


def bench_serve(models: Path, n: int = 16, max_tokens: int = 32) -> dict[str, Any]:
    """`llmops serve` against plain generate() on the same model, then its memory under abuse."""
    from pipeline.data.synthetic import generate
    from pipeline.processes import Processes, free_port, wait_http
    from pipeline.serve.load import PeakRss, abuse, throughput

    base, adapter = models / "base", models / "adapter"
    if not (base / "config.json").exists() or not adapter.is_dir():
        raise RuntimeError(f"{models}: no trained base and adapter; run `dvc repro` first")
    prompts = [f"这则通知属于哪个类别？\n\n标题：{x['title']}" for x in generate(n)]
    figures = {}
    for c in (1, n):
        rate = generate_rate(base, adapter, prompts, c, max_tokens)
        figures[f"generate_tokens_per_s_c{c}"] = round(rate, 1)
    procs, port = Processes(WORK), free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        proc = procs.start(
            "serve",
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "serve",
                "--model",
                str(base),
                "--adapter",
                str(adapter),
                "--port",
                str(port),
                "--max-num-seqs",
                str(n),
            ],
        )
        wait_http(f"{url}/health", proc, "serve", procs, timeout=180)
        throughput(url, "notices", prompts[:1], 1, 2)  # the first request, as generate()'s
        for c in (1, n):
            rate = throughput(url, "notices", prompts, c, max_tokens)
            figures[f"serve_tokens_per_s_c{c}"] = round(rate, 1)
            figures[f"serve_vs_generate_c{c}"] = round(
                rate / figures[f"generate_tokens_per_s_c{c}"], 2
            )
        with PeakRss(proc.pid) as rss:
            seen = abuse(url, "notices")
        if (seen.huge_max_tokens, seen.huge_prompt, seen.huge_body) != (400, 400, 413):
            raise RuntimeError(f"the server answered abuse wrongly: {seen}")
        figures["serve_rss_peak_mb"] = rss.peak_mb
    finally:
        procs.stop()
    return figures


def bench_dedup(n: int = 20_000) -> dict[str, Any]:
    """Notices per second through `dedup`; imports and generating the notices not timed."""
    import datasketch  # noqa: F401  (its import, ~1 s, is not dedup time)

    from pipeline.config import load_params
    from pipeline.data.dedup import dedup
    from pipeline.data.synthetic import generate

    p = load_params().prepare
    notices = generate(n)
    t0, cpu0 = time.perf_counter(), time.process_time()
    kept = dedup(notices, p.near_dup_threshold, p.shingle_size, p.minhash_perm).kept
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "dedup_docs_per_s": round(n / seconds),
        # single-threaded: what an otherwise idle core gives, whatever else the machine runs
        "dedup_docs_per_cpu_s": round(n / cpu),
        "dedup_notices": n,
        "dedup_removed": n - len(kept),
    }


def bench_index(n: int = 1000) -> dict[str, Any]:
    import tempfile

    from torch.utils.flop_counter import FlopCounterMode

    from pipeline.config import IndexParams
    from pipeline.data.index import build_index, embed, load_encoder, notice_documents
    from pipeline.data.synthetic import generate

    p = IndexParams()
    encoder = load_encoder(p.model)
    notices = generate(n)
    embed(encoder, [n["body"] for n in notices[:16]])  # warm-up
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as work:
        summary = build_index(p, notices, [], Path(work), encoder)
    sample = [text for text, _ in notice_documents(notices[:200]).values()]
    with FlopCounterMode(display=False) as flops:
        embed(encoder, sample)
    gflop_per_doc = flops.get_total_flops() / len(sample) / 1e9
    out = {
        "index_docs_per_s": summary["docs_per_s"],
        "index_docs": summary["embedded"],
        "index_device": str(encoder.device),
        "index_gflop_per_doc": round(gflop_per_doc, 2),
    }
    if encoder.device.type == "cpu":
        peak = matmul_gflops()
        out["matmul_gflops"] = round(peak)
        out["index_docs_per_s_ceiling"] = round(peak / gflop_per_doc, 1)
    return out


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's best fp32 matrix multiply rate on the CPU (GFLOP/s), all of torch's
    threads: what compute-bound work can reach here at most."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


@command("bench", help="measure speed figures -> bench/results.json")
def main(args: argparse.Namespace | None = None) -> int:
    root = Path.cwd()
    skip = set(os.environ.get("BENCH_SKIP", "").split(","))
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    results: dict[str, Any] = read_json_dict(RESULTS) if RESULTS.exists() else {}
    if "repro" not in skip:
        print("bench: dvc repro from nothing, then again with nothing changed ...", flush=True)
        results.update(bench_repro(root, WORK))
        print("bench: every baseline, fitted and scored ...", flush=True)
        results.update(bench_baseline(WORK / "repo", results["repro_cold_s"]))
        print("bench: generation over the eval split, batched vs one at a time ...", flush=True)
        results.update(bench_eval(WORK / "repo"))
        print("bench: training throughput with packing off and on ...", flush=True)
        results.update(bench_packing(WORK / "repo"))
    if "repro" not in skip and "rehearse" not in skip:
        print(
            "bench: canary rehearsal with 10% 5xx, first bad measurement -> abort ...", flush=True
        )
        results.update(bench_canary(WORK / "repo"))
    if "repro" not in skip and "day" not in skip:
        print("bench: a day of the release loop, the workflow files run by act ...", flush=True)
        results.update(bench_day(WORK / "repo"))
    if "serve" not in skip:
        print("bench: llmops serve vs generate(), then under abuse ...", flush=True)
        models = WORK / "repo" / "models"
        results.update(bench_serve(models if models.is_dir() else root / "models"))
    if "index" not in skip:
        print("bench: embedding 1,000 notices into a fresh Chroma index ...", flush=True)
        results.update(bench_index())
    if "cuda" not in skip and cuda_available():
        print("bench: training on the GPU, then the same steps on the CPU ...", flush=True)
        results.update(bench_cuda(root))
    if "dedup" not in skip:
        print("bench: exact + near-duplicate removal over 20,000 notices ...", flush=True)
        results.update(bench_dedup())
    if "install" not in skip:
        print("bench: fresh virtualenv + pinned install ...", flush=True)
        results["install_s"] = bench_install(root, WORK)
    results.update(
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    write_json(RESULTS, results)
    shutil.rmtree(WORK)
    figures = ", ".join(
        f"{k}={v}"
        for k, v in sorted(results.items())
        if k.endswith(("_s", "per_s", "speedup", "ratio", "_mb")) or "_per_s_" in k
    )
    print(f"bench: wrote {RESULTS}: {figures}")
    return 0
