"""The raw schema and its per-record rules, shared by `prepare` and `validate`.

data/raw/*.jsonl holds two kinds of rows: notices (the shipped sample, crawled pages) and
instruction rows (`"kind": "instruction"`, written by `llmops data add`), which `prepare`
turns into records of the `instruct` task.
"""

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
# the most text a row may hold before params.yaml:validate.max_body_chars applies (the
# crawler's and `data add`'s own ceiling)
MAX_CHARS = 100_000
DEADLINE = re.compile(r"^\d{4}年\d{1,2}月\d{1,2}日$")


def check_notice(n: dict, min_body_chars: int = 1, max_body_chars: int = MAX_CHARS) -> list[str]:
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
    """Every notice from raw_dir/*.jsonl in a stable order (instruction rows left out)."""
    return load_raw(raw_dir)[0]


def load_raw(raw_dir: Path) -> tuple[list[dict], list[dict]]:
    """(notices, instruction rows) from raw_dir/*.jsonl in a stable order; the first file:line
    that breaks the schema raises DataError (with the count of further problems)."""
    notices: list[dict] = []
    instructions: list[dict] = []
    problems: list[tuple[Path, int, str]] = []
    first_seen: dict[str, str] = {}
    for path in sorted(Path(raw_dir).glob("*.jsonl")):
        for lineno, n in iter_jsonl(path):
            problems += [(path, lineno, rule) for rule in check_row(n)]
            if isinstance(n.get("id"), str) and n["id"] in first_seen:
                rule = f"duplicate id {n['id']!r} (first at {first_seen[n['id']]})"
                problems.append((path, lineno, rule))
            elif isinstance(n.get("id"), str):
                first_seen[n["id"]] = f"{path}:{lineno}"
            if is_instruction(n) and (key := prompt_key(n)) in first_seen:
                rule = f"eval/train leakage: the same prompt as {first_seen[key]} under another id"
                problems.append((path, lineno, rule))
            elif is_instruction(n):
                first_seen[key] = f"{path}:{lineno}"
            (instructions if is_instruction(n) else notices).append(n)
    if problems:
        path, lineno, rule = problems[0]
        more = (
            f" (and {len(problems) - 1} more; run `llmops validate` for all)"
            if len(problems) > 1
            else ""
        )
        raise DataError(path, lineno, rule + more)
    return notices, instructions


# --- instruction rows -------------------------------------------------------------------
INSTRUCTION = "instruction"  # the `kind` of an instruction row
INSTRUCT_TASK = "instruct"  # the task prepare gives their records
INSTRUCTION_REQUIRED = ("id", "instruction", "output")
INSTRUCTION_OPTIONAL = ("input", "system", "category", "source")
# markup that would run in a browser showing the data (a labelling tool, a report)
SCRIPT = re.compile(r"<\s*script\b|\bjavascript\s*:|<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def is_instruction(row: dict) -> bool:
    return row.get("kind") == INSTRUCTION


def prompt_key(r: dict) -> str:
    """What an instruction row asks, whitespace-insensitive: two ids asking the same thing
    could land in both splits."""
    text = "\n".join(str(r.get(k) or "") for k in ("system", "instruction", "input"))
    return "prompt:" + " ".join(text.split())


def check_instruction(r: dict, max_chars: int = MAX_CHARS) -> list[str]:
    """Rules broken by one raw instruction row (empty if it is fine)."""
    broken = []
    for key in INSTRUCTION_REQUIRED:
        if not isinstance(r.get(key), str) or not r[key].strip():
            broken.append(f"`{key}` is required and must be a non-empty string")
    for key in INSTRUCTION_OPTIONAL:
        if r.get(key) is not None and not isinstance(r[key], str):
            broken.append(f"`{key}` must be a string or null")
    if broken:
        return broken
    texts = {key: r.get(key) or "" for key in ("instruction", "input", "output", "system")}
    size = sum(map(len, texts.values()))
    if size > max_chars:
        broken.append(
            f"row has {size} characters of text, more than {max_chars} "
            "(params.yaml:validate.max_body_chars)"
        )
    for key, text in texts.items():
        if "\x00" in text:
            broken.append(f"`{key}` contains a NUL character")
        if SCRIPT.search(text):
            broken.append(f"`{key}` contains HTML script (<script>, on*= or javascript:)")
    return broken


def check_row(row: dict, min_body_chars: int = 1, max_body_chars: int = MAX_CHARS) -> list[str]:
    """Rules broken by one raw row of either kind."""
    if is_instruction(row):
        return check_instruction(row, max_body_chars)
    return check_notice(row, min_body_chars, max_body_chars)
