"""Derive instruction records from raw notices: data/raw/*.jsonl -> data/prepared/.

Run: dvc repro prepare   (or: llmops prepare)

Three tasks per notice: `classify` (notice -> category), `extract` (notice -> deadline or
location, one record per fact the notice states) and `title` (body -> title). Records are
conversational prompt/completion pairs, the format TRL trains on with loss on the answer only.
A notice goes to train or eval by a hash of its id, so the split never depends on file order
and adding notices never moves an existing one. `pretrain.jsonl` holds text from *train*
notices only, for the built-in base model's continued pre-training.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from pipeline.config import PrepareParams, load_params
from pipeline.data.schema import load_notices
from pipeline.io import run_stage, write_json, write_jsonl
from pipeline.paths import EVAL_FILE, PREPARE_METRICS, PRETRAIN_FILE, RAW_DIR, TRAIN_FILE

CATEGORY_LIST = "教务、科研、学生工作、招生就业、后勤、讲座活动"
QUESTIONS = {
    "deadline": "这则通知的截止日期是哪一天？只回答日期。",
    "location": "这则通知涉及的地点在哪里？只回答地点。",
}


def split_of(notice_id: str, salt: str, eval_fraction: float) -> str:
    """'eval' or 'train', decided by a hash of the id alone (stable as the data grows)."""
    digest = hashlib.sha256(f"{salt}:{notice_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else "train"


def _notice_text(n: dict) -> str:
    return f"标题：{n['title']}\n正文：{n['body']}"


def _record(n: dict, task: str, prompt: str, answer: str, field: str | None = None) -> dict:
    return {
        "id": f"{n['id']}:{task}" + (f":{field}" if field else ""),
        "notice_id": n["id"],
        "task": task,
        "category": n["category"],
        "source": n.get("source", "unknown"),
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def task_records(n: dict, tasks: list[str]) -> list[dict]:
    """The instruction records one notice yields."""
    out = []
    if "classify" in tasks:
        prompt = f"请判断这则校园通知的类别，只回答类别名称（{CATEGORY_LIST}）。\n{_notice_text(n)}"
        out.append(_record(n, "classify", prompt, n["category"]))
    if "extract" in tasks:
        for fact, question in QUESTIONS.items():
            if n.get(fact):
                out.append(
                    _record(
                        n,
                        "extract",
                        f"阅读通知，回答问题：{question}\n{_notice_text(n)}",
                        n[fact],
                        field=fact,
                    )
                )
    if "title" in tasks:
        out.append(
            _record(n, "title", f"为下面这则通知拟一个标题。\n正文：{n['body']}", n["title"])
        )
    return out


def pretrain_texts(n: dict) -> list[dict]:
    """Text for continued pre-training: the notice itself, and two questions that are not
    evaluation tasks (who issued it, when) so the base model learns the chat format."""
    header = f"发布部门：{n['department']}\n发布日期：{n['publish_date']}\n{_notice_text(n)}"
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


def prepare(p: PrepareParams, notices: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(train records, eval records, pretrain texts) for `notices`."""
    train, evals, pretrain = [], [], []
    for n in notices:
        records = task_records(n, p.tasks)
        if split_of(n["id"], p.split_salt, p.eval_fraction) == "eval":
            evals.extend(records)
        else:
            train.extend(records)
            pretrain.extend(pretrain_texts(n))
    return train, evals, pretrain


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
    notices = load_notices(RAW_DIR)
    train, evals, pretrain = prepare(params.prepare, notices)
    write_jsonl(TRAIN_FILE, train)
    write_jsonl(EVAL_FILE, evals)
    write_jsonl(PRETRAIN_FILE, pretrain)
    summary = summarize(train, evals)
    write_json(PREPARE_METRICS, summary)
    print(
        f"prepare: {len(notices)} notices -> {len(train)} train / {len(evals)} eval records "
        f"({summary['train']['notices']}/{summary['eval']['notices']} notices), "
        f"{len(pretrain)} pre-training texts"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
