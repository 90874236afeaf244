"""Every path the pipeline reads or writes, relative to the repository root.

dvc.yaml names the same paths; tests/unit/test_contract.py checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")

RAW_DIR = Path("data/raw")
RAW_NOTICES = RAW_DIR / "notices.jsonl"
RAW_HELPDESK = RAW_DIR / "helpdesk.jsonl"  # the sample's classification dataset (source helpdesk)
CRAWLED_NOTICES = RAW_DIR / "crawled.jsonl"  # the crawl stage (llmops crawl) appends here
CRAWL_STATE_DIR = RAW_DIR / ".crawl"  # its state (URL -> hash, ETag) and rejected pages
SITES_DIR = Path("configs/sites")  # crawler site configs (params.crawl.sites)

PREPARED_DIR = Path("data/prepared")
TRAIN_FILE = PREPARED_DIR / "train.jsonl"
EVAL_FILE = PREPARED_DIR / "eval.jsonl"
PRETRAIN_FILE = PREPARED_DIR / "pretrain.jsonl"
BEHAVIOUR_DIR = Path("data/behaviour")  # must-pass notices, raw schema
FEEDBACK_DIR = Path("data/feedback")
PREFS_FILE = FEEDBACK_DIR / "prefs.jsonl"  # preference pairs for the dpo stage

BASE_DIR = Path("models/base")
SFT_DIR = Path("models/sft")  # the train stage's output
ADAPTER_DIR = Path("models/adapter")  # the dpo stage's output: what is evaluated and released
CHECKPOINT_DIR = Path("models/checkpoints")
MERGED_DIR = Path("models/merged")  # llmops export --merge

METRICS_DIR = Path("metrics")
PREPARE_METRICS = METRICS_DIR / "prepare.json"
DEDUP_REPORT = METRICS_DIR / "dedup.json"  # prepare: duplicate clusters with member ids
VALIDATE_METRICS = METRICS_DIR / "validate.json"
BASE_METRICS = METRICS_DIR / "base.json"
TRAIN_METRICS = METRICS_DIR / "train.json"
DPO_METRICS = METRICS_DIR / "dpo.json"
EVAL_METRICS = METRICS_DIR / "eval.json"
GATE_METRICS = METRICS_DIR / "gate.json"
PREDICTIONS = METRICS_DIR / "predictions.jsonl"
BEHAVIOUR_RESULTS = METRICS_DIR / "behaviour.jsonl"

PLOTS_DIR = Path("plots")
LOSS_CURVE = PLOTS_DIR / "train_loss.csv"
DPO_CURVE = PLOTS_DIR / "dpo.csv"
CONFUSION_DIR = PLOTS_DIR / "confusion"  # one CSV of (actual, predicted) per classification group

MLFLOW_DIR = Path(".mlflow")

ACCELERATE_CONFIGS = Path("configs/accelerate")  # params.train.accelerate_config points here

# The production model's per-example evaluation; the gate checks for regressions against it.
CHAMPION_DIR = Path("champion")
CHAMPION_PREDICTIONS = CHAMPION_DIR / "predictions.jsonl"

REPORTS_DIR = Path("reports")
# Great Expectations data docs (HTML), rebuilt by every validate run; not a DVC output, so a
# fresh clone, which lacks them, does not rerun validate
VALIDATE_DOCS = REPORTS_DIR / "validate"

# `llmops feedback sample` writes the drawn tasks here and `push` reads them: a hand-over
# between two commands, not a pipeline input (data/feedback is, and would retrain on change)
FEEDBACK_TASKS = REPORTS_DIR / "feedback" / "tasks.jsonl"
INDEX_DIR = Path("data/index")  # the index stage's Chroma database (persistent DVC out)
INDEX_METRICS = METRICS_DIR / "index.json"
DRIFT_METRICS = METRICS_DIR / "drift.json"  # llmops drift
DRIFT_PROM = METRICS_DIR / "drift.prom"  # the same verdict as Prometheus text exposition
