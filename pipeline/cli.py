"""`llmops`: every action a person or a workflow takes, as one command line.

Commands are registered once below and imported only when run, so `llmops --help` is instant.
Stage commands run the same `main()` that dvc.yaml runs; prefer `dvc repro` for stages, since
it skips what has not changed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline import paths

# (command words, "module:function", help, arguments). A function with a parameter gets the
# parsed args; arguments are (flags, add_argument keywords). Modules load only when run.
Argument = tuple[tuple[str, ...], dict]
COMMANDS: list[tuple[tuple[str, ...], str, str, list[Argument]]] = [
    (("params",), "pipeline.config_cli:show", "print the resolved params.yaml", []),
    (
        ("deps",),
        "pipeline.deps:main",
        "set each stage's code deps in dvc.yaml to what its module imports",
        [(("--check",), {"action": "store_true", "help": "only report; exit 1 if any differ"})],
    ),
    (("prepare",), "pipeline.data.prepare:main", "stage: raw notices -> instruction records", []),
    (("validate",), "pipeline.data.validate:main", "stage: check raw and prepared data", []),
    (("base",), "pipeline.train.base:main", "stage: build or fetch the base model", []),
    (("train",), "pipeline.train.train:main", "stage: fine-tune (LoRA or full) with TRL", []),
    (("dpo",), "pipeline.train.dpo:main", "stage: preference tuning (DPO) on the SFT model", []),
    (("evaluate",), "pipeline.evaluate.evaluate:main", "stage: score fine-tuned vs base", []),
    (("gate",), "pipeline.evaluate.gate:main", "stage: pass/fail against params.gate", []),
    (("summary",), "pipeline.evaluate.summary:main", "print the run's summary table", []),
    (
        ("report",),
        "pipeline.evaluate.report:main",
        "write the pull-request report (Markdown + PNG plots) comparing with a git ref",
        [
            (("--base",), {"default": "main", "help": "git ref to compare with (default: main)"}),
            (
                ("--out",),
                {
                    "default": str(paths.REPORTS_DIR / "pr"),
                    "help": "directory for report.md and plots",
                },
            ),
        ],
    ),
    (
        ("champion", "set"),
        "pipeline.evaluate.champion:main",
        "make an evaluation the baseline the gate compares against",
        [
            (
                ("--source",),
                {
                    "default": str(paths.PREDICTIONS),
                    "help": "per-example predictions (default: the current evaluation)",
                },
            )
        ],
    ),
    (
        ("export",),
        "pipeline.train.export:main",
        "write merged weights for serving without LoRA",
        [
            (("--merge",), {"action": "store_true", "help": "merge the adapter into the base"}),
            (("--base",), {"default": str(paths.BASE_DIR)}),
            (("--adapter",), {"default": str(paths.ADAPTER_DIR)}),
            (("--out",), {"default": str(paths.MERGED_DIR)}),
        ],
    ),
    (
        ("register",),
        "pipeline.release.registry:main",
        "register the model in MLflow (and tag its commit <model>@vN)",
        [(("--push",), {"action": "store_true", "help": "push the version tag"})],
    ),
    (
        ("promote",),
        "pipeline.release.promote:main_promote",
        "release a registered model to an environment: one git commit",
        [
            (("env",), {"help": "staging or production"}),
            (
                ("--version",),
                {"type": int, "help": "staging: MLflow version (default: this checkout's)"},
            ),
            (("--tag",), {"help": "production: the release tag (what staging ran there)"}),
            (("--push",), {"action": "store_true", "help": "push the commit to origin"}),
        ],
    ),
    (
        ("rollback",),
        "pipeline.release.promote:main_rollback",
        "git revert the last promotion of an environment",
        [
            (("env",), {"help": "staging or production"}),
            (("--to",), {"help": "revert promotions down to this version (N or vN)"}),
            (
                ("--release",),
                {"help": "revert exactly this release id (RELEASE_SHA256); no-op if not current"},
            ),
            (("--push",), {"action": "store_true", "help": "push the revert"}),
        ],
    ),
    (
        ("status",),
        "pipeline.release.status:main",
        "what is deployed where, with lineage, from git",
        [
            (("env",), {"nargs": "?", "help": "one environment (default: all)"}),
            (
                ("--no-reconcile",),
                {
                    "dest": "reconcile",
                    "action": "store_false",
                    "help": "leave MLflow aliases as they are (default: git wins, aliases follow)",
                },
            ),
        ],
    ),
    (
        ("ci",),
        "pipeline.release.ci:main",
        "train.yml's steps between jobs (see pipeline/release/ci.py)",
        [
            (
                ("action",),
                {
                    "choices": [
                        "plan",
                        "pack",
                        "publish",
                        "adopt",
                        "push",
                        "commit-results",
                        "gate",
                    ]
                },
            ),
            (
                ("--outcome",),
                {
                    "choices": ["success", "failure", "cancelled", "skipped", "none"],
                    "default": "none",
                    "help": "pack: dvc repro's outcome (success: dvc.lock and outputs too)",
                },
            ),
            (("--branch",), {"help": "publish: the pull request's branch"}),
            (("--head",), {"help": "publish: the commit the results were trained from"}),
            (("--bundle",), {"help": "publish: the bundle's sha256 (pack's output)"}),
            (("--remote",), {"help": "push: DVC remote (default: core.remote)"}),
            (
                ("--local",),
                {"action": "store_true", "help": "commit-results: commit here, push nothing"},
            ),
        ],
    ),
    (
        ("manifests", "check"),
        "pipeline.deploy.manifests:main",
        "render every kustomization; validate schemas, policy and PromQL",
        [],
    ),
    (
        ("serve",),
        "pipeline.serve.server:main",
        "OpenAI-compatible server with vLLM's metrics and request logs (CPU stand-in for vLLM)",
        [
            (("--model",), {"required": True, "help": "base model directory (e.g. models/base)"}),
            (("--adapter",), {"help": "fine-tuned adapter or weights (e.g. models/adapter)"}),
            (("--host",), {"default": "127.0.0.1"}),
            (("--port",), {"type": int, "default": 8000}),
            (("--served-model-name",), {"help": "model name clients use (default: dir name)"}),
            (("--adapter-name",), {"default": "notices", "help": "the adapter's model name"}),
            (("--model-version",), {"help": "written to request logs (default: $MODEL_VERSION)"}),
            (("--request-log",), {"help": "append request logs (JSON Lines) to this file"}),
            (
                ("--fault",),
                {
                    "action": "append",
                    "metavar": "NAME=VALUE",
                    "help": "error_rate=0.1, http_error_rate=0.1, latency_ms=800 or"
                    " ttft_factor=3 (repeatable)",
                },
            ),
            (("--engine",), {"choices": ["transformers", "vllm"], "default": "transformers"}),
            (
                ("--max-model-len",),
                {"type": int, "help": "context length (default: the model's positions)"},
            ),
            (
                ("--max-num-seqs",),
                {"type": int, "default": 16, "help": "sequences decoded together (vLLM's)"},
            ),
            (
                ("--max-waiting",),
                {"type": int, "default": 256, "help": "requests that may wait; more get 503"},
            ),
            (
                ("--max-body-bytes",),
                {"type": int, "default": 4 * 1024 * 1024, "help": "larger bodies get 413"},
            ),
            (("--seed",), {"type": int, "default": 0, "help": "seed of sampling"}),
            (("--threads",), {"type": int, "help": "torch CPU threads (default: torch's)"}),
        ],
    ),
    (
        ("analyze",),
        "pipeline.deploy.analysis:main",
        "run an AnalysisTemplate against Prometheus with Argo Rollouts' semantics",
        [
            (("template",), {"help": "a kustomization directory or a rendered YAML file"}),
            (("--name",), {"help": "which AnalysisTemplate, when there are several"}),
            (("--prometheus",), {"help": "Prometheus URL (default: the template's address)"}),
            (("--arg",), {"action": "append", "metavar": "NAME=VALUE", "help": "template arg"}),
            (
                ("--time-scale",),
                {
                    "type": float,
                    "default": 1.0,
                    "help": "divide intervals, delays and PromQL windows by this (rehearsals)",
                },
            ),
        ],
    ),
    (
        ("rehearse",),
        "pipeline.deploy.rehearse:main",
        "rehearse the Rollout's canary here: two servers, Prometheus, traffic, analysis",
        [
            (("--env",), {"default": "production", "help": "overlay whose Rollout to follow"}),
            (
                ("--canary-fault",),
                {
                    "action": "append",
                    "metavar": "NAME=VALUE",
                    "help": "error_rate=0.1, http_error_rate=0.1, latency_ms=800 or"
                    " ttft_factor=3 (repeatable)",
                },
            ),
            (
                ("--time-scale",),
                {
                    "type": float,
                    "default": 30.0,
                    "help": "divide pauses, intervals and windows (default 30)",
                },
            ),
            (("--rate",), {"type": float, "default": 24.0, "help": "requests per second"}),
            (
                ("--arg",),
                {
                    "action": "append",
                    "metavar": "NAME=VALUE",
                    "help": "set an analysis argument, e.g. max-latency-ratio=1.5 (repeatable)",
                },
            ),
            (
                ("--min-window",),
                {
                    "type": float,
                    "default": 10.0,
                    "help": "shortest PromQL range window once scaled, seconds",
                },
            ),
            (("--scrape-interval",), {"type": float, "default": 1.0, "help": "seconds"}),
            (("--base",), {"default": str(paths.BASE_DIR)}),
            (("--canary",), {"default": str(paths.ADAPTER_DIR), "help": "the candidate"}),
            (("--stable",), {"help": "stable model dir (default: the environment's release)"}),
            (("--out",), {"default": str(paths.REPORTS_DIR / "rehearsal")}),
        ],
    ),
    (("bench",), "pipeline.bench:main", "measure speed figures -> bench/results.json", []),
    (("data", "sample"), "pipeline.data.sample:main", "regenerate the shipped sample notices", []),
    (
        ("data", "add"),
        "pipeline.data.add:main",
        "bring your own data: instruction or preference file -> data/raw or data/feedback",
        [
            (("file",), {"help": "JSON array or JSON Lines file"}),
            (
                ("--format",),
                {
                    "choices": ["alpaca", "sharegpt", "openai", "jsonl", "prefs"],
                    "help": "default: told from the first record's fields",
                },
            ),
            (("--name",), {"help": "output file name (default: the input file's stem)"}),
            (("--category",), {"help": "slice for records without category/task field"}),
            (("--replace",), {"action": "store_true", "help": "replace an earlier add"}),
        ],
    ),
    (
        ("ingest",),
        "pipeline.data.ingest:main",
        "stage: crawl params.ingest.sites into data/raw",
        [],
    ),
    (
        ("crawl",),
        "pipeline.data.crawl:main",
        "crawl notice sites into JSONL (incremental, polite; see configs/sites/example.yaml)",
        [
            (("--sites",), {"help": "sites YAML (default: params.yaml:ingest.sites)"}),
            (("--out",), {"help": f"output directory (default: {paths.RAW_DIR})"}),
        ],
    ),
    (
        ("feedback", "sample"),
        "pipeline.feedback.sample:main",
        "draw request logs for comparison: stratified, PII scrubbed, champion vs challenger",
        [
            (("--logs",), {"nargs": "+", "required": True, "help": "request-log files or dirs"}),
            (("--n",), {"type": int, "help": "tasks to draw (default: feedback.sample_size)"}),
            (("--champion",), {"help": "log, an endpoint URL or a model dir (feedback.champion)"}),
            (("--challenger",), {"help": "the same for the challenger (feedback.challenger)"}),
            (("--out",), {"help": f"tasks file (default: {paths.FEEDBACK_TASKS})"}),
        ],
    ),
    (
        ("feedback", "push"),
        "pipeline.feedback.studio:main_push",
        "import sampled tasks into the Label Studio project (no duplicates)",
        [
            (("--tasks",), {"help": f"tasks file (default: {paths.FEEDBACK_TASKS})"}),
            (("--project",), {"help": "project title (default: feedback.project)"}),
        ],
    ),
    (
        ("feedback", "pull"),
        "pipeline.feedback.studio:main_pull",
        "merge completed annotations into the preference pairs the dpo stage trains on",
        [
            (("--out",), {"help": f"prefs file (default: {paths.PREFS_FILE})"}),
            (("--project",), {"help": "project title (default: feedback.project)"}),
        ],
    ),
    (
        ("feedback", "propose"),
        "pipeline.feedback.propose:main",
        "commit changed preference pairs to a branch and open a pull request (gh)",
        [
            (("--prefs",), {"help": f"prefs file (default: {paths.PREFS_FILE})"}),
            (("--base",), {"default": "main", "help": "the pull request's base branch"}),
        ],
    ),
    (("index",), "pipeline.data.index:main", "stage: embed notices and prompts into Chroma", []),
    (
        ("search",),
        "pipeline.data.index:main_search",
        "print the notices nearest to a query in the index",
        [
            (("query",), {"help": "text to search for"}),
            (("-k",), {"type": int, "default": 5, "help": "how many notices (default: 5)"}),
            (("--index",), {"default": str(paths.INDEX_DIR), "help": "the Chroma index"}),
        ],
    ),
    (
        ("drift",),
        "pipeline.feedback.drift:main",
        "compare recent request-log prompts with the training prompts; exit 1 on drift",
        [
            (("--logs",), {"nargs": "+", "required": True, "help": "request logs (.jsonl/dirs)"}),
            (("--index",), {"default": str(paths.INDEX_DIR), "help": "the Chroma index"}),
            (("--out",), {"default": str(paths.DRIFT_METRICS), "help": "verdict (JSON)"}),
            (("--prom",), {"default": str(paths.DRIFT_PROM), "help": "Prometheus text file"}),
            (("--namespace",), {"help": "`namespace` label (default: $POD_NAMESPACE)"}),
            (("--pushgateway",), {"help": "also push the gauges to this Pushgateway URL"}),
        ],
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__.splitlines()[0])
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    }
    for words, target, help_text, arguments in COMMANDS:
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = sub.add_subparsers(
                    dest=f"command_{depth}", metavar="COMMAND", required=True
                )
        cmd = groups[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        for flags, kwargs in arguments:
            cmd.add_argument(*flags, **kwargs)
        cmd.set_defaults(target=target)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    from pipeline.io import UserError

    try:
        return func(args) if func.__code__.co_argcount else func()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
