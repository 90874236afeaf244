"""The raw notice schema and its per-record rules, shared by `prepare` and `validate`."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from pipeline.io import DataError, iter_jsonl

CATEGORIES = ("教务", "科研", "学生工作", "招生就业", "后勤", "讲座活动")
REQUIRED = {
    "id": str,
    "category": str,
    "title": str,
    "department": str,
    "publish_date": str,
    "body": str,
}
OPTIONAL = {"deadline": str, "location": str, "source": str}
DEADLINE = re.compile(r"^\d{4}年\d{1,2}月\d{1,2}日$")


def check_notice(n: dict, min_body_chars: int = 1, max_body_chars: int = 100_000) -> list[str]:
    """Rules broken by one raw notice (empty if it is fine)."""
    broken = []
    for key, tp in REQUIRED.items():
        if not isinstance(n.get(key), tp) or not n[key].strip():
            broken.append(f"`{key}` is required and must be a non-empty string")
    for key, tp in OPTIONAL.items():
        if n.get(key) is not None and not isinstance(n[key], tp):
            broken.append(f"`{key}` must be a string or null")
    if broken:
        return broken
    if n["category"] not in CATEGORIES:
        broken.append(f"`category` {n['category']!r} is not one of {', '.join(CATEGORIES)}")
    if not min_body_chars <= len(n["body"]) <= max_body_chars:
        broken.append(
            f"`body` has {len(n['body'])} characters, outside "
            f"[{min_body_chars}, {max_body_chars}] (params.yaml:validate.*_body_chars)"
        )
    try:
        dt.date.fromisoformat(n["publish_date"])
    except ValueError:
        broken.append(f"`publish_date` {n['publish_date']!r} is not an ISO date (YYYY-MM-DD)")
    if n.get("deadline"):
        if not DEADLINE.match(n["deadline"]):
            broken.append(f"`deadline` {n['deadline']!r} is not written as YYYY年M月D日")
        elif n["deadline"] not in n["body"]:
            broken.append("`deadline` does not appear in `body` (extraction needs it there)")
    if n.get("location") and n["location"] not in n["title"] + n["body"]:
        broken.append("`location` does not appear in `title` or `body`")
    if not n.get("deadline") and not n.get("location"):
        broken.append("a notice needs at least one of `deadline`, `location`")
    return broken


def load_notices(raw_dir: Path) -> list[dict]:
    """Every notice from raw_dir/*.jsonl in a stable order; the first file:line that breaks
    the schema raises DataError (with the count of further problems)."""
    notices, problems = [], []
    for path in sorted(Path(raw_dir).glob("*.jsonl")):
        for lineno, n in iter_jsonl(path):
            problems += [(path, lineno, rule) for rule in check_notice(n)]
            notices.append(n)
    if problems:
        path, lineno, rule = problems[0]
        more = (
            f" (and {len(problems) - 1} more; run `llmops validate` for all)"
            if len(problems) > 1
            else ""
        )
        raise DataError(path, lineno, rule + more)
    return notices
