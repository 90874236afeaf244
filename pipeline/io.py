"""Small file helpers shared by every stage: JSON that diffs cleanly, JSON Lines, atomic writes."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


class UserError(ValueError):
    """A problem the user can fix (bad data, bad params): reported in one line, no traceback."""


def run_stage(main: Callable[[], int]) -> None:
    """Entry point of `python -m pipeline.<stage>`: exit with main()'s code; a UserError
    prints `error: <file:line: rule>` and exits 2."""
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "nothing was recorded; under `dvc repro` the last good outputs are still in the "
            "DVC cache (`dvc checkout` restores them)",
            file=sys.stderr,
        )
        code = 2
    raise SystemExit(code)


class DataError(UserError):
    """Bad input, located: `path:line: rule`. Raised instead of silently skipping."""

    def __init__(self, path: Path | str, line: int | None, rule: str):
        self.path, self.line, self.rule = str(path), line, rule
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {rule}")


# Records are objects of fields, a conversation at most a few levels deep. Deeper input is
# refused before parsing: Python's parser and every recursive walk over it would overflow.
MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads(text: str, path: Path | str, line: int | None = None) -> object:
    """json.loads, refusing input nested deeper than MAX_JSON_DEPTH with a DataError that
    names the file, the line and the limit; invalid JSON raises json.JSONDecodeError."""
    if (depth := json_depth(text)) > MAX_JSON_DEPTH:
        raise DataError(
            path,
            line,
            f"JSON nested {depth} levels deep, more than {MAX_JSON_DEPTH}: "
            "a record is an object of fields; flatten it",
        )
    return json.loads(text)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dumps(obj: object) -> str:
    """Sorted keys, two-space indent, trailing newline: the form every metrics file takes."""
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, dumps(obj))


def read_json(path: Path) -> object:
    try:
        return loads(Path(path).read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None


def read_json_dict(path: Path) -> dict:
    """The JSON object in `path`; a DataError when it is missing, invalid or not an object."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, None, "not a JSON object")
    return data


def read_json_object(path: Path) -> tuple[dict | None, str | None]:
    """(the JSON object in `path`, None) or (None, why it could not be read): for files whose
    absence is a state to report, not a crash (metrics read by the gate, summary, report)."""
    try:
        return read_json_dict(path), None
    except DataError as exc:
        return None, exc.rule


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))
    return len(lines)


def iter_jsonl(path: Path, errors: list[DataError] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object). A blank line is skipped; a bad one raises DataError, or,
    when `errors` is given, is appended there and skipped so every problem can be reported."""
    with open(path, "rb") as fh:  # bytes, so a line that is not UTF-8 is named, not a crash
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                if not line.strip():
                    continue
                obj = loads(line, path, lineno)
                if not isinstance(obj, dict):
                    raise DataError(path, lineno, "each line must be a JSON object")
            except (UnicodeDecodeError, json.JSONDecodeError, DataError) as exc:
                if isinstance(exc, DataError):
                    err = exc
                elif isinstance(exc, UnicodeDecodeError):
                    err = DataError(path, lineno, "encoding: not UTF-8 (GBK?); convert the file")
                else:
                    err = DataError(path, lineno, f"invalid JSON: {exc.msg}")
                if errors is None:
                    raise err from None
                errors.append(err)
                continue
            yield lineno, obj


def read_jsonl(path: Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def dvc_stages(dvc_yaml: Path = Path("dvc.yaml")) -> dict[str, dict]:
    """dvc.yaml's stages by name; none when the file is missing or unreadable (dvc itself
    says what is wrong with it)."""
    import yaml

    try:
        spec = yaml.load(
            dvc_yaml.read_text(encoding="utf-8"),
            Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
        )
    except (OSError, yaml.YAMLError):
        return {}
    stages = spec.get("stages") if isinstance(spec, dict) else None
    return stages if isinstance(stages, dict) else {}
