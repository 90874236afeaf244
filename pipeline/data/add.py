"""Bring your own data: an instruction or preference file -> the raw schema the pipeline reads.

Run: llmops data add FILE [--format alpaca|sharegpt|openai|jsonl|prefs] [--name NAME]
                          [--category C] [--replace]

The file may be a JSON array or JSON Lines whatever its extension, with a UTF-8 BOM, CRLF line
ends, or records wrapped in one-item lists. Without --format the format is told from the first
record's fields (`detect`), and every record must then fit it:

    chosen + rejected        -> prefs     (with `prompt`, or two conversations sharing a prefix)
    conversations            -> sharegpt  ([{"from": "human"|"gpt"|"system", "value": ...}])
    messages                 -> openai    ([{"role": "user"|"assistant"|"system", "content": ...}])
    kind, or a notice's keys -> jsonl     (rows already in the raw schema, checked as they are)
    instruction/input/output -> alpaca

Instruction data becomes `kind: instruction` rows in data/raw/<name>.jsonl, which `prepare`
turns into `instruct` records split by the same id hash as the notices; the record's own
`category` (or `task`) field, else --category, else the name, and its `source` (default: the
name) become evaluation slices. Preference pairs go to data/feedback/<name>.jsonl, where the
dpo stage reads every file. Every bad record is reported at once as file:line: rule, and
nothing is written unless all are good; the output is written atomically.
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.commands import arg, command
from pipeline.data.clean import normalize
from pipeline.data.prefs import check_pair
from pipeline.data.schema import (
    INSTRUCTION,
    MAX_CHARS,
    REQUIRED,
    SCRIPT,
    check_row,
    is_instruction,
    prompt_key,
)
from pipeline.io import DataError, UserError, iter_jsonl, loads, write_jsonl

FORMATS = ("alpaca", "sharegpt", "openai", "jsonl", "prefs")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Bad(Exception):
    """One broken rule of one record (the caller adds file and line)."""


@dataclass(frozen=True)
class Limits:
    """What validate will later demand of the rows (params.yaml:validate)."""

    min_body_chars: int = 1
    max_body_chars: int = MAX_CHARS


# --- reading: JSON array or JSON Lines, whatever the extension -------------------------------
def _line_at(data: bytes | str, pos: int) -> int:
    if isinstance(data, bytes):
        return data.count(b"\n", 0, pos) + 1
    return data.count("\n", 0, pos) + 1


# a dataset file is read whole; larger ones are split first (each part added on its own)
MAX_FILE_BYTES = 512 * 1024 * 1024


def decode(path: Path) -> str:
    """The file as text: UTF-8 (a BOM is dropped, CRLF becomes LF); anything else is an error
    naming the line of the first bad byte."""
    size = Path(path).stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            path,
            None,
            f"{size:,} bytes, more than {MAX_FILE_BYTES:,}: split it (`split -l`)"
            " and add the parts one by one",
        )
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(path, 1, "encoding: UTF-16; re-save the file as UTF-8")
    data = data.removeprefix(codecs.BOM_UTF8)
    if (nul := data.find(b"\x00")) >= 0:
        raise DataError(path, _line_at(data, nul), "NUL byte: not a text file (binary data?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            path,
            _line_at(data, exc.start),
            "encoding: not UTF-8 (GBK or GB18030?); convert it: iconv -f GB18030 -t UTF-8",
        ) from None
    if not text.strip():
        raise DataError(path, 1, "empty file: no records")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _array_items(path: Path, text: str) -> list[tuple[int, object]]:
    """(line, item) for each item of the top-level array (the text already parsed once)."""
    decoder = json.JSONDecoder()
    items: list[tuple[int, object]] = []

    def skip_space(pos: int) -> int:
        return len(text) - len(text[pos:].lstrip())

    pos = skip_space(text.index("[") + 1)
    while text[pos] != "]":
        item, end = decoder.raw_decode(text, pos)
        items.append((_line_at(text, pos), item))
        pos = skip_space(end)
        pos = skip_space(pos + 1) if text[pos] == "," else pos
    return items


def read_items(path: Path) -> tuple[list[tuple[int, object]], list[DataError]]:
    """(line, item) for every record, and the lines that are not JSON."""
    text = decode(path)
    if text.lstrip().startswith("["):
        try:
            loads(text, path, 1)
            return _array_items(path, text), []
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # `[...]` per line is JSON Lines of one-item lists
                raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    items, errors = [], []
    for line, raw in enumerate(text.split("\n"), start=1):
        if raw.strip():
            try:
                items.append((line, loads(raw, path, line)))
            except json.JSONDecodeError as exc:
                errors.append(DataError(path, line, f"invalid JSON: {exc.msg}"))
            except DataError as exc:
                errors.append(exc)
    if errors and text.lstrip().startswith("{") and _parses(text):
        rule = "one JSON object over several lines: write a JSON array, or one record per line"
        raise DataError(path, 1, rule)
    return items, errors


def _parses(text: str) -> bool:
    try:
        loads(text, "-")
    except (json.JSONDecodeError, DataError):
        return False
    return True


def unwrap(item: object) -> dict:
    """A record: an object, or an object wrapped in a one-item list."""
    if isinstance(item, list) and len(item) == 1 and isinstance(item[0], dict):
        return item[0]
    if isinstance(item, list) and any(isinstance(x, list) for x in item):
        raise Bad("nested arrays: a record must be an object (or a list holding one object)")
    if isinstance(item, list):
        raise Bad(f"a record must be one object, not a list of {len(item)} items")
    if not isinstance(item, dict):
        raise Bad(f"a record must be a JSON object, not {type(item).__name__}")
    return item


def detect(record: dict) -> str | None:
    """The format a record's fields say it is in (see the module docstring), or None."""
    if "chosen" in record and "rejected" in record:
        return "prefs"
    if "conversations" in record:
        return "sharegpt"
    if "messages" in record:
        return "openai"
    if "kind" in record or set(REQUIRED) <= set(record):
        return "jsonl"
    if {"instruction", "input", "output"} & set(record):
        return "alpaca"
    return None


# --- converting one record --------------------------------------------------------------------
def _text(record: dict, key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Bad(f"`{key}` is required and must be a non-empty string")
        return ""
    if not isinstance(value, str):
        raise Bad(f"`{key}` must be a string, not {type(value).__name__}")
    return value


def _exchange(messages: list[dict], key: str) -> dict:
    """An optional system message, one user turn and its answer -> instruction fields."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    turns = messages[1:] if system else messages
    if [m["role"] for m in turns] != ["user", "assistant"]:
        roles = ", ".join(m["role"] for m in turns) or "none"
        raise Bad(
            f"`{key}` must be one user turn and one assistant answer after an optional "
            f"system message (roles here: {roles}); split multi-turn conversations"
        )
    return {"system": system, "instruction": turns[0]["content"], "output": turns[1]["content"]}


def _messages(record: dict, key: str, role: str, content: str, roles: dict | None) -> list[dict]:
    value = record.get(key)
    if not isinstance(value, list) or not value:
        raise Bad(f"`{key}` must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get(content), str):
            raise Bad(f"`{key}[{i}].{content}` must be a string")
        who = roles.get(m.get(role)) if roles else m.get(role)
        if who not in ("system", "user", "assistant"):
            raise Bad(f"`{key}[{i}].{role}` {m.get(role)!r} is not a known role")
        out.append({"role": who, "content": m[content]})
    return out


def instruction_fields(record: dict, fmt: str) -> dict:
    """instruction/input/output/system of an alpaca, sharegpt or openai record."""
    if fmt == "sharegpt":
        return _exchange(
            _messages(record, "conversations", "from", "value", SHAREGPT_ROLES), "conversations"
        )
    if fmt == "openai":
        return _exchange(_messages(record, "messages", "role", "content", None), "messages")
    instruction, given = _text(record, "instruction", False), _text(record, "input", False)
    output = _text(record, "output")
    if not instruction:  # the input alone is the instruction; with neither there is no task
        if not given:
            raise Bad("`instruction` is missing and `input` is empty: nothing to answer")
        instruction, given = given, ""
    return {"instruction": instruction, "input": given, "output": output}


def to_instruction_row(record: dict, fmt: str, name: str, category: str | None) -> dict:
    """One `kind: instruction` raw row; its id is the record's own, or a hash of its text."""
    fields = instruction_fields(record, fmt)
    row = {"kind": INSTRUCTION, **{k: v for k, v in fields.items() if v or k == "input"}}
    rid = record.get("id")
    if rid is None:
        text = json.dumps(fields, ensure_ascii=False, sort_keys=True)
        rid = f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        raise Bad("`id` must be a non-empty string or an integer")
    own = record.get("category", record.get("task"))
    if own is not None and not isinstance(own, str):
        raise Bad(f"`category`/`task` must be a string, not {type(own).__name__}")
    source = _text(record, "source", False)
    return row | {"id": str(rid), "category": own or category or name, "source": source or name}


def to_pair(record: dict, path: Path, line: int) -> dict:
    """A preference pair; without `prompt`, the prefix the two conversations share is it."""
    if "prompt" not in record:
        chosen = _messages(record, "chosen", "role", "content", None)
        rejected = _messages(record, "rejected", "role", "content", None)
        n = 0
        while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
            n += 1
        if n == 0 or chosen[n - 1]["role"] != "user":
            raise Bad(
                "no `prompt`, and `chosen` and `rejected` do not share a conversation that "
                "ends with a user turn"
            )
        record = record | {"prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]}
    try:
        return check_pair(record, path, line)
    except DataError as exc:
        raise Bad(exc.rule) from None


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def content_rules(row: dict, limits: Limits) -> list[str]:
    """Rules on any row's text: size, NUL characters, script in HTML."""
    texts = _strings(row)
    broken = []
    if (size := sum(map(len, texts))) > 4 * limits.max_body_chars:
        broken.append(
            f"oversize record: {size} characters of text, more than 4 x "
            f"params.yaml:validate.max_body_chars ({limits.max_body_chars})"
        )
    if any("\x00" in t for t in texts):
        broken.append("a field contains a NUL character")
    if any(SCRIPT.search(t) for t in texts):
        broken.append("a field contains HTML script (<script>, on*= or javascript:)")
    return broken


# --- the whole file ---------------------------------------------------------------------------
def _existing(folder: Path, skip: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(id -> file:line, prompt -> file:line) of the rows already in `folder`."""
    ids, prompts = {}, {}
    for path in sorted(folder.glob("*.jsonl")):
        if path.resolve() == skip.resolve():
            continue
        for line, row in iter_jsonl(path, errors=[]):
            if isinstance(row.get("id"), str):
                ids[row["id"]] = f"{path}:{line}"
            if is_instruction(row):
                prompts[_key(row)] = f"{path}:{line} (id {row.get('id')!r})"
    return ids, prompts


def _key(row: dict) -> str:
    return normalize(prompt_key(row))


def convert(
    path: Path,
    fmt: str | None,
    name: str,
    category: str | None,
    limits: Limits,
    existing: tuple[dict[str, str], dict[str, str]] = ({}, {}),
) -> tuple[str, list[dict]]:
    """(the format, the rows in the raw or preference schema); DataError listing every bad
    record when any is bad."""
    items, errors = read_items(path)
    if not items and not errors:
        raise DataError(path, 1, "empty file: no records (an empty array)")
    ids, prompts = dict(existing[0]), dict(existing[1])
    rows = []
    for line, item in items:
        try:
            record = unwrap(item)
            fmt = fmt or detect(record)
            if fmt is None:
                keys = ", ".join(sorted(record)) or "none"
                raise Bad(f"format: cannot tell it from the fields ({keys}); pass --format")
            if fmt == "prefs":
                row = to_pair(record, path, line)
            elif fmt == "jsonl":
                row = dict(record)
            else:
                row = to_instruction_row(record, fmt, name, category)
            rules = content_rules(row, limits)
            if fmt != "prefs":
                rules += [r for r in check_row(row, **asdict(limits)) if r not in rules]
            if rules:
                raise Bad("; ".join(rules))
        except Bad as exc:
            errors.append(DataError(path, line, str(exc)))
            continue
        rid = row.get("id")
        if isinstance(rid, str) and rid in ids:
            errors.append(DataError(path, line, f"duplicate id {rid!r} (first at {ids[rid]})"))
            continue
        if is_instruction(row) and (first := prompts.get(_key(row))):
            errors.append(
                DataError(
                    path,
                    line,
                    f"eval/train leakage: the same prompt as {first} under another id could "
                    "land in both splits; give repeats one id or drop them",
                )
            )
            continue
        if isinstance(rid, str):
            ids[rid] = f"{path}:{line}"
        if is_instruction(row):
            prompts[_key(row)] = f"{path}:{line} (id {rid!r})"
        rows.append(row)
    if errors:
        errors.sort(key=lambda e: e.line or 0)
        listed = "\n".join(map(str, errors[:50]))
        more = f"\n... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise DataError(
            path,
            None,
            f"{len(errors)} bad record(s), nothing written:\n{listed}{more}\n"
            "fix or drop these records and run `llmops data add` again",
        )
    return fmt or "jsonl", rows


def sniff(path: Path) -> str | None:
    """The format of the first record whose fields tell it (None: convert reports why)."""
    for _, item in read_items(path)[0]:
        try:
            if fmt := detect(unwrap(item)):
                return fmt
        except Bad:
            continue
    return None


def target(fmt: str | None, name: str, raw_dir: Path, feedback_dir: Path) -> Path:
    return (feedback_dir if fmt == "prefs" else raw_dir) / f"{name}.jsonl"


@command(
    "data",
    "add",
    help="bring your own data: instruction or preference file -> data/raw or data/feedback",
    args=[
        arg("file", help="JSON array or JSON Lines file"),
        arg(
            "--format",
            choices=FORMATS,
            help="default: told from the first record's fields",
        ),
        arg("--name", help="output file name (default: the input file's stem)"),
        arg("--category", help="slice for records without category/task field"),
        arg("--replace", action="store_true", help="replace an earlier add"),
    ],
)
def main(args: argparse.Namespace) -> int:
    """`llmops data add`: convert, check, and write data/raw/<name>.jsonl (or
    data/feedback/<name>.jsonl for preference pairs) atomically."""
    from pipeline.config import load_params
    from pipeline.paths import FEEDBACK_DIR, RAW_DIR

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "added"
    if not NAME.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '_', '-', '.' (at most 64)")
    p = load_params().validate
    limits = Limits(p.min_body_chars, p.max_body_chars)
    fmt = args.format or sniff(path)
    out = target(fmt, name, RAW_DIR, FEEDBACK_DIR)
    if out.exists() and not args.replace:
        raise UserError(f"{out} exists: pass --replace to replace it, or --name to add beside it")
    fmt, rows = convert(path, fmt, name, args.category, limits, _existing(out.parent, skip=out))
    write_jsonl(out, rows)
    print(
        f"data add: {len(rows)} {fmt} records from {path} -> {out}; "
        "run `dvc repro` to train on them, and commit the file"
    )
    return 0
