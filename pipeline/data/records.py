"""How a notice becomes instruction records, and which split it belongs to.

Three tasks per notice: `classify` (notice -> category), `extract` (notice -> deadline or
location, one record per fact the notice states) and `title` (body -> title), as
conversational prompt/completion pairs (the format TRL trains on with loss on the answer
only). The split is a hash of the notice id alone, so it never depends on file order and
adding notices never moves an existing one.

Shared by prepare (which writes data/prepared), dpo (which keeps preference pairs of eval
notices out of training) and evaluate (behaviour tests): they depend on this module, not on
prepare's cleaning code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

CATEGORY_LIST = "教务、科研、学生工作、招生就业、后勤、讲座活动"
QUESTIONS = {
    "deadline": "这则通知的截止日期是哪一天？只回答日期。",
    "location": "这则通知涉及的地点在哪里？只回答地点。",
}


def split_of(notice_id: str, salt: str, eval_fraction: float) -> str:
    """'eval' or 'train', decided by a hash of the id alone (stable as the data grows)."""
    digest = hashlib.sha256(f"{salt}:{notice_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else "train"


def notice_text(n: dict) -> str:
    return f"标题：{n['title']}\n正文：{n['body']}"


def record(n: dict, task: str, prompt: str, answer: str, field: str | None = None) -> dict:
    return {
        "id": f"{n['id']}:{task}" + (f":{field}" if field else ""),
        "notice_id": n["id"],
        "task": task,
        "category": n["category"],
        "source": n.get("source", "unknown"),
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def task_records(n: dict, tasks: Sequence[str]) -> list[dict]:
    """The instruction records one notice yields."""
    out = []
    if "classify" in tasks:
        prompt = f"请判断这则校园通知的类别，只回答类别名称（{CATEGORY_LIST}）。\n{notice_text(n)}"
        out.append(record(n, "classify", prompt, n["category"]))
    if "extract" in tasks:
        for fact, question in QUESTIONS.items():
            if n.get(fact):
                out.append(
                    record(
                        n,
                        "extract",
                        f"阅读通知，回答问题：{question}\n{notice_text(n)}",
                        n[fact],
                        field=fact,
                    )
                )
    if "title" in tasks:
        out.append(record(n, "title", f"为下面这则通知拟一个标题。\n正文：{n['body']}", n["title"]))
    return out
