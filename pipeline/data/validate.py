"""Check raw notices and prepared records; any violation fails the run with file, line, rule.

Run: dvc repro validate   (or: llmops validate)

Writes metrics/validate.json (`passed`, counts, every violation). The gate reads it, so a
model trained on data that failed validation can never pass.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.config import TASKS, ValidateParams, load_params
from pipeline.data.schema import CATEGORIES, INSTRUCT_TASK, check_row, is_instruction
from pipeline.io import DataError, iter_jsonl, run_stage, write_json
from pipeline.paths import EVAL_FILE, RAW_DIR, TRAIN_FILE, VALIDATE_METRICS


@dataclass(frozen=True)
class Violation:
    file: str
    line: int | None
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}" if self.line else f"{self.file}: {self.rule}"


def validate_raw(files: list[Path], p: ValidateParams) -> tuple[list[Violation], Counter]:
    """Every rule broken in the raw files, plus the per-category counts."""
    violations: list[Violation] = []
    per_category: Counter = Counter()
    first_seen: dict[str, str] = {}
    for path in files:
        errors: list[DataError] = []
        for lineno, n in iter_jsonl(path, errors):
            for rule in check_row(n, p.min_body_chars, p.max_body_chars):
                violations.append(Violation(str(path), lineno, rule))
            nid = n.get("id")
            if isinstance(nid, str) and nid in first_seen:
                rule = f"duplicate id {nid!r} (first at {first_seen[nid]})"
                violations.append(Violation(str(path), lineno, rule))
            elif isinstance(nid, str):
                first_seen[nid] = f"{path}:{lineno}"
            if not is_instruction(n):  # the notice categories' minimum counts notices only
                per_category[n.get("category")] += 1
        violations += [Violation(e.path, e.line, e.rule) for e in errors]
    for category in CATEGORIES:
        if per_category[category] < p.min_notices_per_category:
            rule = (
                f"category {category!r} has {per_category[category]} notices, fewer than "
                f"{p.min_notices_per_category} (params.yaml:validate.min_notices_per_category)"
            )
            violations.append(Violation(str(RAW_DIR), None, rule))
    return sorted(violations, key=lambda v: (v.file, v.line or 0)), per_category


def _messages_ok(msgs: object) -> bool:
    return (
        isinstance(msgs, list)
        and bool(msgs)
        and all(isinstance(m, dict) and str(m.get("content", "")).strip() for m in msgs)
    )


def validate_prepared(train_file: Path, eval_file: Path, p: ValidateParams) -> list[Violation]:
    """Rules on the instruction records: shape, tasks, no notice in both splits, enough
    eval records per task."""
    violations: list[Violation] = []
    notices: dict[str, set[str]] = {"train": set(), "eval": set()}
    eval_tasks: Counter = Counter()
    for split, path in (("train", train_file), ("eval", eval_file)):
        if not path.exists():
            violations.append(Violation(str(path), None, "missing: run `dvc repro prepare`"))
            continue
        errors: list[DataError] = []
        for lineno, r in iter_jsonl(path, errors):
            if r.get("task") not in (*TASKS, INSTRUCT_TASK):
                violations.append(Violation(str(path), lineno, f"unknown task {r.get('task')!r}"))
            for key in ("prompt", "completion"):
                if not _messages_ok(r.get(key)):
                    rule = f"`{key}` must be a non-empty list of messages"
                    violations.append(Violation(str(path), lineno, rule))
            notices[split].add(r.get("notice_id"))
            if split == "eval":
                eval_tasks[r.get("task")] += 1
        violations += [Violation(e.path, e.line, e.rule) for e in errors]
    for nid in sorted(notices["train"] & notices["eval"]):
        rule = f"notice {nid!r} is in both train and eval (leakage)"
        violations.append(Violation(str(eval_file), None, rule))
    for task in TASKS:
        if 0 < eval_tasks[task] < p.min_eval_records_per_task:
            rule = (
                f"task {task!r} has {eval_tasks[task]} eval records, fewer than "
                f"{p.min_eval_records_per_task} (params.yaml:validate.min_eval_records_per_task)"
            )
            violations.append(Violation(str(eval_file), None, rule))
    return violations


def main() -> int:
    params = load_params()
    raw_files = sorted(RAW_DIR.glob("*.jsonl"))
    violations, per_category = validate_raw(raw_files, params.validate)
    violations += validate_prepared(TRAIN_FILE, EVAL_FILE, params.validate)
    report = {
        "passed": not violations,
        "notices": sum(per_category.values()),
        "violations": [asdict(v) for v in violations],
    }
    write_json(VALIDATE_METRICS, report)
    for v in violations[:50]:
        print(f"{v}", file=sys.stderr)
    if len(violations) > 50:
        print(f"... and {len(violations) - 50} more (all in {VALIDATE_METRICS})", file=sys.stderr)
    if violations:
        print(
            f"validate: FAILED, {len(violations)} violation(s); fix the data and rerun `dvc repro`",
            file=sys.stderr,
        )
        return 1
    print(f"validate: passed, {report['notices']} notices in {len(raw_files)} file(s)")
    return 0


if __name__ == "__main__":
    run_stage(main)
