"""Preference pairs: the schema of data/feedback/prefs.jsonl, its loader, and the sample pairs.

One JSON object per line:

    {"id": "...", "group": "...", "prompt": "..." | [messages],
     "chosen": "..." | [assistant message], "rejected": "..." | [assistant message]}

`prompt` is the user text or a conversation that ends with a user turn; `chosen` and `rejected`
are the preferred and the dispreferred answer. `id` (default: a hash of the pair) and `group`
(default: the prompt) are optional: pairs of one group land on the same side of the held-out
split, which uses the same hash as `prepare`, so pairs about an eval notice are never trained on.
Other fields (agreement, annotator, source, ...) are kept.

`llmops data sample` writes the sample pairs: for a notice, its correct answer against a
plausible wrong one (another category, a date a few days off, another notice's place or
title).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from pipeline.data.records import task_records
from pipeline.data.schema import CATEGORIES
from pipeline.io import DataError, iter_jsonl

ROLES = ("system", "user", "assistant")


def _messages(value: object, role: str | None, path: Path, line: int, key: str) -> list[dict]:
    """`value` as a list of chat messages; a plain string becomes one message of `role`."""
    if isinstance(value, str):
        if role is None:
            raise DataError(path, line, f"`{key}` must be a list of messages")
        value = [{"role": role, "content": value}]
    if not isinstance(value, list) or not value:
        raise DataError(path, line, f"`{key}` must be a non-empty string or list of messages")
    for i, m in enumerate(value):
        if not (
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
        ):
            raise DataError(
                path, line, f"`{key}[{i}]` must be {{'role': one of {ROLES}, 'content': str}}"
            )
        if not m["content"].strip():
            raise DataError(path, line, f"`{key}[{i}].content` is empty")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def check_pair(raw: dict, path: Path, line: int) -> dict:
    """One pair in the normal form, or DataError naming the file, line and field."""
    for key in ("prompt", "chosen", "rejected"):
        if key not in raw:
            raise DataError(path, line, f"missing `{key}`")
    prompt = _messages(raw["prompt"], "user", path, line, "prompt")
    if prompt[-1]["role"] != "user":
        raise DataError(path, line, "`prompt` must end with a user message")
    chosen = _messages(raw["chosen"], "assistant", path, line, "chosen")
    rejected = _messages(raw["rejected"], "assistant", path, line, "rejected")
    for key, answer in (("chosen", chosen), ("rejected", rejected)):
        if any(m["role"] != "assistant" for m in answer):
            raise DataError(path, line, f"`{key}` must hold assistant messages only")
    if chosen == rejected:
        raise DataError(path, line, "`chosen` and `rejected` are the same answer")
    body = json.dumps([prompt, chosen, rejected], ensure_ascii=False, sort_keys=True)
    pair = dict(raw)
    pair.update(
        id=str(raw.get("id") or hashlib.sha256(body.encode()).hexdigest()[:16]),
        group=str(raw.get("group") or prompt[-1]["content"]),
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
    )
    return pair


def load_pairs(path: Path) -> list[dict]:
    """Every pair in `path` ([] when the file does not exist); all bad lines reported at once."""
    if not Path(path).exists():
        return []
    errors: list[DataError] = []
    pairs: list[dict] = []
    seen: dict[str, int] = {}
    for line, raw in iter_jsonl(path, errors):
        try:
            pair = check_pair(raw, path, line)
            if pair["id"] in seen:
                raise DataError(
                    path, line, f"duplicate id {pair['id']!r} (first on line {seen[pair['id']]})"
                )
        except DataError as exc:
            errors.append(exc)
            continue
        seen[pair["id"]] = line
        pairs.append(pair)
    if errors:
        more = f"\n... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise DataError(
            path,
            None,
            f"{len(errors)} bad preference pair(s):\n" + "\n".join(map(str, errors[:5])) + more,
        )
    return pairs


def load_feedback(feedback_dir: Path) -> list[dict]:
    """The pairs of every data/feedback/*.jsonl (prefs.jsonl and each `llmops data add`ed
    set), in file name order; an id in two files is an error, as it is within one."""
    pairs: list[dict] = []
    where: dict[str, Path] = {}
    for path in sorted(Path(feedback_dir).glob("*.jsonl")):
        for pair in load_pairs(path):
            if pair["id"] in where:
                raise DataError(
                    path, None, f"duplicate id {pair['id']!r} (also in {where[pair['id']]})"
                )
            where[pair["id"]] = path
            pairs.append(pair)
    return pairs


def _shift_date(text: str, days: int) -> str | None:
    """`text` with its Chinese date moved by `days` (None if it holds no date)."""
    import datetime as dt

    m = re.search(r"(\d{4})年(\d{1,2})月(\d{1,2})日", text)
    if not m:
        return None
    day = dt.date(*map(int, m.groups())) + dt.timedelta(days=days)
    return text[: m.start()] + f"{day.year}年{day.month}月{day.day}日" + text[m.end() :]


def wrong_answer(record: dict, notices: list[dict], rng: random.Random) -> str | None:
    """A plausible but wrong answer to an instruction record, or None if there is none."""
    answer = record["completion"][0]["content"]
    if record["task"] == "classify":
        # every category is rejected as often as it is chosen: a label rejected more often
        # would be pushed down everywhere, also where it is right
        return rng.choice([c for c in CATEGORIES if c != answer])
    if record["task"] == "extract" and record["id"].endswith(":deadline"):
        return _shift_date(answer, rng.choice([-7, -3, -1, 1, 2, 5]))
    field = "location" if record["task"] == "extract" else "title"
    others = [
        n[field]
        for n in notices
        if n[field] and n[field] != answer and n["category"] == record["category"]
    ]
    return rng.choice(others) if others else None


def sample_pairs(notices: list[dict], tasks: list[str], seed: int = 7) -> list[dict]:
    """One pair per notice, about one of its records drawn at random: the correct answer over
    a wrong one."""
    rng = random.Random(seed)
    pairs = []
    for notice in notices:
        record = rng.choice(task_records(notice, tasks))
        rejected = wrong_answer(record, notices, rng)
        if rejected is None:
            continue
        pairs.append(
            {
                "id": record["id"],
                "group": notice["id"],
                "task": record["task"],
                "source": "sample",
                "prompt": record["prompt"],
                "chosen": record["completion"],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    return pairs
