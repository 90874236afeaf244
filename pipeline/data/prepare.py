"""Derive instruction records from raw notices: data/raw/*.jsonl -> data/prepared/.

Run: dvc repro prepare   (or: llmops prepare)

Three tasks per notice: `classify` (notice -> category), `extract` (notice -> deadline or
location, one record per fact the notice states) and `title` (body -> title). Records are
conversational prompt/completion pairs, the format TRL trains on with loss on the answer only.
A notice goes to train or eval by a hash of its id, so the split never depends on file order
and adding notices never moves an existing one. `pretrain.jsonl` holds text from *train*
notices only, for the built-in base model's continued pre-training.

Before the split every notice is cleaned (`clean_notices`): Unicode-normalised
(pipeline/data/clean.py), scrubbed of phone numbers, e-mail addresses, ID card and student
numbers (pipeline/data/pii.py), and de-duplicated, exactly and by MinHash LSH
(pipeline/data/dedup.py). Dedup keeps the earliest notice of each cluster, so no eval notice
near-duplicates a train notice and adding later notices never drops or moves an existing
one. metrics/prepare.json counts what was scrubbed and removed; metrics/dedup.json lists each
cluster's member ids.

Instruction rows (`llmops data add`) become one `instruct` record each, after the notices'
records: normalised and scrubbed like notices, split by the same hash of their id, with their
dataset's category and source kept for the evaluation slices.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from pipeline.config import PrepareParams, load_params
from pipeline.data.clean import normalize
from pipeline.data.dedup import dedup
from pipeline.data.pii import PLACEHOLDERS, scrub
from pipeline.data.records import notice_text, split_of, task_records
from pipeline.data.schema import INSTRUCT_TASK, load_raw
from pipeline.io import run_stage, write_json, write_jsonl
from pipeline.paths import (
    DEDUP_REPORT,
    EVAL_FILE,
    PREPARE_METRICS,
    PRETRAIN_FILE,
    RAW_DIR,
    TRAIN_FILE,
)


def pretrain_texts(n: dict) -> list[dict]:
    """Text for continued pre-training: the notice itself, and two questions that are not
    evaluation tasks (who issued it, when) so the base model learns the chat format."""
    header = f"发布部门：{n['department']}\n发布日期：{n['publish_date']}\n{notice_text(n)}"
    ask = [
        ("这则通知是哪个部门发布的？", n["department"]),
        ("这则通知的发布日期是哪天？", n["publish_date"]),
    ]
    return [{"text": header}] + [
        {
            "prompt": [{"role": "user", "content": f"{header}\n问：{q}"}],
            "completion": [{"role": "assistant", "content": a}],
        }
        for q, a in ask
    ]


def clean_notices(p: PrepareParams, notices: list[dict]) -> tuple[list[dict], dict, dict]:
    """(the notices normalised, scrubbed and de-duplicated; counts for metrics/prepare.json;
    the duplicate clusters for metrics/dedup.json). The facts the extract task asks for
    (deadline, location) are cleaned exactly like the body, so they still appear in it."""
    pii: Counter = Counter()
    cleaned = []
    for n in notices:
        n = dict(n)
        for key in ("title", "department", "body", "deadline", "location"):
            if n.get(key):
                n[key] = normalize(n[key])
        if p.scrub_pii:
            for key in ("title", "body", "location"):
                if n.get(key):
                    n[key], found = scrub(n[key], p.student_number_pattern or None)
                    pii += found
        cleaned.append(n)
    result = dedup(cleaned, p.near_dup_threshold, p.shingle_size, p.minhash_perm)
    split = {n["id"]: split_of(n["id"], p.split_salt, p.eval_fraction) for n in cleaned}
    pairs = [(r, k) for r, k in result.exact.items()]
    pairs += [(r, k) for k, members in result.clusters.items() for r, _ in members]
    counts = {
        "notices_in": len(notices),
        "notices_kept": len(result.kept),
        "pii_scrubbed": {kind: pii[kind] for kind in PLACEHOLDERS},
        "exact_duplicates": len(result.exact),
        "near_duplicates": len(pairs) - len(result.exact),
        "near_duplicate_clusters": len(result.clusters),
        # an eval notice dropped because it (nearly) repeats a train notice: a leak avoided
        "eval_duplicates_of_train": sum(split[r] == "eval" != split[k] for r, k in pairs),
    }
    return result.kept, counts, result.report()


class Prepared(NamedTuple):
    train: list[dict]
    evals: list[dict]
    pretrain: list[dict]  # texts for the base model's continued pre-training


def prepare(p: PrepareParams, notices: list[dict]) -> Prepared:
    """The train and eval records and the pretrain texts of `notices`."""
    train, evals, pretrain = [], [], []
    for n in notices:
        records = task_records(n, p.tasks)
        if split_of(n["id"], p.split_salt, p.eval_fraction) == "eval":
            evals.extend(records)
        else:
            train.extend(records)
            pretrain.extend(pretrain_texts(n))
    return Prepared(train, evals, pretrain)


def instruction_records(p: PrepareParams, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(train, eval) `instruct` records for raw instruction rows, cleaned like notices."""
    train: list[dict] = []
    evals: list[dict] = []
    for r in rows:
        text = {}
        for key in ("system", "instruction", "input", "output"):
            text[key] = normalize(r.get(key) or "")
            if p.scrub_pii and text[key]:
                text[key] = scrub(text[key], p.student_number_pattern or None)[0]
        user = text["instruction"] + (f"\n{text['input']}" if text["input"] else "")
        system = [{"role": "system", "content": text["system"]}] if text["system"] else []
        record = {
            "id": f"{r['id']}:{INSTRUCT_TASK}",
            "notice_id": r["id"],
            "task": INSTRUCT_TASK,
            "category": r.get("category") or "general",
            "source": r.get("source") or "unknown",
            "prompt": [*system, {"role": "user", "content": user}],
            "completion": [{"role": "assistant", "content": text["output"]}],
        }
        split = split_of(r["id"], p.split_salt, p.eval_fraction)
        (evals if split == "eval" else train).append(record)
    return train, evals


def summarize(train: list[dict], evals: list[dict]) -> dict:
    def counts(rows: list[dict], key: str) -> dict:
        return dict(sorted(Counter(r[key] for r in rows).items()))

    return {
        "train": {
            "records": len(train),
            "notices": len({r["notice_id"] for r in train}),
            "by_task": counts(train, "task"),
            "by_category": counts(train, "category"),
        },
        "eval": {
            "records": len(evals),
            "notices": len({r["notice_id"] for r in evals}),
            "by_task": counts(evals, "task"),
            "by_category": counts(evals, "category"),
        },
    }


def main() -> int:
    params = load_params()
    raw, instructions = load_raw(RAW_DIR)
    notices, cleaning, clusters = clean_notices(params.prepare, raw)
    train, evals, pretrain = prepare(params.prepare, notices)
    extra_train, extra_eval = instruction_records(params.prepare, instructions)
    train, evals = train + extra_train, evals + extra_eval
    write_jsonl(TRAIN_FILE, train)
    write_jsonl(EVAL_FILE, evals)
    write_jsonl(PRETRAIN_FILE, pretrain)
    summary = summarize(train, evals) | {"cleaning": cleaning}
    write_json(PREPARE_METRICS, summary)
    write_json(DEDUP_REPORT, clusters)
    scrubbed = ", ".join(f"{v} {k}" for k, v in cleaning["pii_scrubbed"].items() if v) or "no"
    print(
        f"prepare: {len(raw)} notices, {scrubbed} PII matches scrubbed, "
        f"{cleaning['exact_duplicates']} exact and {cleaning['near_duplicates']} near "
        f"duplicates removed ({cleaning['near_duplicate_clusters']} clusters, "
        f"{cleaning['eval_duplicates_of_train']} of them eval copies of train notices)"
    )
    print(
        f"prepare: {len(notices)} notices -> {len(train)} train / {len(evals)} eval records "
        f"({summary['train']['notices']}/{summary['eval']['notices']} notices), "
        f"{len(pretrain)} pre-training texts"
        + (f"; {len(instructions)} instruction rows included" if instructions else "")
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
