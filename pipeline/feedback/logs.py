"""Request logs: the one schema `llmops serve` writes and the feedback loop and drift read.

One JSON object per line, the same fields the in-cluster log shipper produces:

    {"time": "2026-11-22T12:00:00.123+00:00", "request_id": "...", "model_version": "3",
     "prompt": "<the user text; for chat, the last user message>", "response": "...",
     "latency_ms": 41.5, "prompt_tokens": 57, "completion_tokens": 12}

Extra fields are kept. Readers never fail on a bad line: it is reported with its number and
skipped, because one truncated line in a day of traffic must not stop sampling or drift.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from pipeline.io import DataError

# field -> accepted JSON types
FIELDS: dict[str, tuple[type, ...]] = {
    "time": (str,),
    "request_id": (str,),
    "model_version": (str,),
    "prompt": (str,),
    "response": (str,),
    "latency_ms": (int, float),
    "prompt_tokens": (int,),
    "completion_tokens": (int,),
}


def check_record(raw: object, path: Path | str, line: int) -> dict:
    """The record if it follows the schema, else DataError naming the file, line and field."""
    if not isinstance(raw, dict):
        raise DataError(path, line, "each line must be a JSON object")
    for key, types in FIELDS.items():
        if key not in raw:
            raise DataError(path, line, f"missing `{key}`")
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise DataError(path, line, f"`{key}` must be {names}, got {type(value).__name__}")
    try:
        datetime.fromisoformat(raw["time"].replace("Z", "+00:00"))
    except ValueError:
        raise DataError(path, line, f"`time` is not ISO 8601: {raw['time']!r}") from None
    return raw


def read_logs(paths: Iterable[Path | str]) -> tuple[list[dict], list[DataError]]:
    """Every valid record of the given files (or directories of *.jsonl), in order, and the
    problems found: (records, errors). Never raises for a bad line."""
    records: list[dict] = []
    errors: list[DataError] = []
    for path in _files(paths):
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    errors.append(DataError(path, lineno, f"invalid JSON: {exc.msg}"))
                    continue
                try:
                    records.append(check_record(raw, path, lineno))
                except DataError as exc:
                    errors.append(exc)
    return records, errors


def _files(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.glob("*.jsonl")))
        elif p.exists():
            out.append(p)
        else:
            raise DataError(p, None, "no such request log (a .jsonl file or a directory)")
    return out


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RequestLog:
    """Appends records to a JSON Lines file, one whole line per write, from many threads."""

    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        check_record(record, self.path or "<request log>", 0)
        if self.path is None:
            return
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
