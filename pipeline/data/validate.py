"""Validate raw notices and prepared records with a Great Expectations suite.

Run: dvc repro validate   (or: llmops validate)

The data is loaded into pandas tables, one row per JSON line with its `file` and `line`, plus
computed columns where GX has no built-in expectation for the rule (does the deadline appear
in the body, the share of Chinese characters, PII left after scrubbing, similarity of an eval
notice to the nearest train notice found by prepare's MinHash LSH index). Every rule is then
a built-in GX expectation on a column, so a failure names the expectation and GX returns the
offending rows by file, line and id.

Tables: `notices` (data/raw/*.jsonl), `categories` (notices per category), `records`
(data/prepared/{train,eval}.jsonl), `tasks` (eval records per task) and `instructions` (the
raw rows of `"kind": "instruction"` that `llmops data add` writes).

Token lengths: the base model's tokenizer is built by the `base` stage, after this one, so
record lengths are a tokenizer-free estimate (`token_estimate`): one token per CJK character
or other symbol, one per run of Latin letters or digits. Chinese BPE tokenizers (Qwen's about
1.4 characters a token) give fewer, so the bound errs on the safe side.

Writes metrics/validate.json (`passed`, counts, every expectation with its verdict and, when
it failed, a few example rows; the gate reads `passed`) and HTML data docs in
reports/validate/ (open index.html). Any failed expectation exits 1, naming it and its rows.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.config import TASKS, PrepareParams, ValidateParams, load_params
from pipeline.data.clean import normalize
from pipeline.data.dedup import jaccard, lsh_bands, minhash_signatures, notice_text, shingle_sets
from pipeline.data.pii import scrub
from pipeline.data.schema import (
    CATEGORIES,
    DEADLINE,
    INSTRUCT_TASK,
    INSTRUCTION_OPTIONAL,
    OPTIONAL,
    REQUIRED,
    SCRIPT,
    is_instruction,
    prompt_key,
)
from pipeline.io import DataError, iter_jsonl, run_stage, write_json
from pipeline.paths import EVAL_FILE, RAW_DIR, TRAIN_FILE, VALIDATE_DOCS, VALIDATE_METRICS

EXAMPLES = 5  # offending rows kept per failed expectation
# the columns that locate a row of each table in failure messages
ROW_KEYS = {
    "notices": ["file", "line", "id"],
    "categories": ["category"],
    "records": ["file", "line", "notice_id"],
    "tasks": ["task"],
    "instructions": ["file", "line", "id"],
}
# instruction rows (`"kind": "instruction"` in data/raw, from `llmops data add`): prepare makes
# one `instruct` record of each; the same names as in the raw schema of `llmops data add`
INSTRUCTION_COLUMNS = [
    *("file", "line", "id", "instruction", "output", "wrong_types", "text", "prompt_key"),
    "id_of_a_notice",
]
_SCRIPT = "(?i)" + SCRIPT.pattern  # the rule book's, as GX takes a regex
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_TOKEN = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


def token_estimate(text: str) -> int:
    """Tokens without a tokenizer: each run of Latin letters/digits is one, every other
    non-space character (CJK, punctuation) is one."""
    return len(_TOKEN.findall(text))


def chinese_share(text: str) -> float:
    """CJK characters over CJK characters plus Latin letters (digits and punctuation are
    language-neutral): 1.0 for Chinese text, near 0 for English."""
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def _text(value: Any) -> str | None:
    """A non-blank string, else None (so blank and wrong-typed fields count as missing)."""
    return value if isinstance(value, str) and value.strip() else None


def instruction_row(path: Path, lineno: int, r: dict) -> dict:
    """The row of an instruction line: its fields and the computed columns the suite checks."""
    fields = ("system", "instruction", "input", "output")
    text = {k: r[k] if isinstance(r.get(k), str) else "" for k in fields}
    wrong = [k for k in INSTRUCTION_OPTIONAL if r.get(k) is not None and not isinstance(r[k], str)]
    return {
        "file": str(path),
        "line": lineno,
        "id": _text(r.get("id")),
        "instruction": _text(r.get("instruction")),
        "output": _text(r.get("output")),
        "wrong_types": ", ".join(wrong) or None,
        "text": "\n".join(text.values()),
        "prompt_key": prompt_key(r),
    }


def notice_rows(files: list[Path]) -> tuple[list[dict], list[dict], list[dict]]:
    """(one row per notice line of the raw files, the raw notices that parsed, one row per
    instruction line). A line that is not a JSON object is a notice row with `json_object`
    False, so the suite reports it like any rule."""
    rows, notices, instructions = [], [], []
    for path in files:
        errors: list[DataError] = []
        for lineno, n in iter_jsonl(path, errors):
            if is_instruction(n):
                instructions.append(instruction_row(path, lineno, n))
                continue
            notices.append(n)
            # an absent optional field is null; an absent required one fails the schema
            row: dict[str, Any] = {key: _text(n[key]) for key in n if key in REQUIRED}
            row |= {key: _text(n.get(key)) for key in OPTIONAL}
            body, deadline, location = row.get("body"), row.get("deadline"), row.get("location")
            wrong = [k for k in OPTIONAL if n.get(k) is not None and not isinstance(n[k], str)]
            row |= {
                "file": str(path),
                "line": lineno,
                "json_object": True,
                "wrong_types": ", ".join(wrong) or None,
                "deadline_in_body": (deadline in (body or "")) if deadline else None,
                "location_in_text": (
                    (location in (row.get("title") or "") + (body or "")) if location else None
                ),
                "deadline_or_location": deadline or location,
                "chinese_share": chinese_share(body) if body else None,
            }
            rows.append(row)
        rows += [{"file": e.path, "line": e.line, "json_object": False} for e in errors]
    notice_ids = {r.get("id") for r in rows} - {None}
    for r in instructions:
        r["id_of_a_notice"] = r["id"] in notice_ids
    return rows, notices, instructions


def _messages_text(msgs: object) -> str | None:
    """The text of a non-empty list of messages with non-blank content, else None."""
    if not isinstance(msgs, list) or not msgs:
        return None
    if not all(isinstance(m, dict) and str(m.get("content", "")).strip() for m in msgs):
        return None
    return "\n".join(str(m["content"]) for m in msgs)


def record_rows(
    train_file: Path, eval_file: Path, notices: list[dict], prep: PrepareParams
) -> list[dict]:
    """One row per prepared record, with the computed columns the suite checks: well-formed
    messages, token estimate, PII left, and for eval records the leakage columns (notice id
    also in train; Jaccard similarity to the closest train notice, as prepare's dedup
    measures it)."""
    rows: list[dict] = []
    for split, path in (("train", train_file), ("eval", eval_file)):
        if not path.exists():
            raise DataError(path, None, "missing: run `dvc repro prepare` first")
        errors: list[DataError] = []
        for lineno, r in iter_jsonl(path, errors):
            prompt, completion = (
                _messages_text(r.get("prompt")),
                _messages_text(r.get("completion")),
            )
            text = f"{prompt or ''}\n{completion or ''}"
            found = scrub(text, prep.student_number_pattern or None)[1] if prep.scrub_pii else {}
            rows.append(
                {
                    "file": str(path),
                    "line": lineno,
                    "split": split,
                    "notice_id": _text(r.get("notice_id")),
                    "task": r.get("task"),
                    "messages_ok": prompt is not None and completion is not None,
                    "token_estimate": token_estimate(text),
                    "pii_left": ", ".join(sorted(found)) or None,
                }
            )
        if errors:  # prepare writes these files; a bad line means they were edited by hand
            raise errors[0]
    _add_leakage(rows, notices, prep)
    return rows


def _add_leakage(rows: list[dict], notices: list[dict], prep: PrepareParams) -> None:
    """Set `in_train` and `train_similarity` on the eval rows (None on train rows)."""
    train_ids = {r["notice_id"] for r in rows if r["split"] == "train"}
    eval_ids = sorted({r["notice_id"] for r in rows if r["split"] == "eval"} - {None})
    texts = {
        n["id"]: _cleaned_text(n, prep)
        for n in notices
        if isinstance(n.get("id"), str) and _text(n.get("title")) and _text(n.get("body"))
    }
    train_texts = [texts[i] for i in sorted(train_ids - set(eval_ids) - {None}) if i in texts]
    known = [i for i in eval_ids if i in texts]
    found = train_similarity([texts[i] for i in known], train_texts, prep)
    similarity = dict(zip(known, found, strict=True))
    for r in rows:
        evaluated = r["split"] == "eval"
        r["in_train"] = (r["notice_id"] in train_ids) if evaluated else None
        r["train_similarity"] = similarity.get(r["notice_id"]) if evaluated else None


def _cleaned_text(n: dict, prep: PrepareParams) -> str:
    """A notice's title and body as prepare's dedup compared them: normalised, scrubbed."""
    parts = {}
    for key in ("title", "body"):
        parts[key] = normalize(n[key])
        if prep.scrub_pii:
            parts[key] = scrub(parts[key], prep.student_number_pattern or None)[0]
    return notice_text(parts)


def train_similarity(eval_texts: list[str], train_texts: list[str], prep: PrepareParams):
    """For each eval text, the highest Jaccard similarity of character shingles to a train
    text among the candidates of prepare's MinHash LSH index (99% recall at
    prepare.near_dup_threshold); 0.0 when there is none. Comparing every pair instead grows
    with eval x train notices: minutes at 20,000 notices."""
    from datasketch import LeanMinHash, MinHashLSH

    bands, rows = lsh_bands(prep.near_dup_threshold, prep.minhash_perm)
    train_sets = shingle_sets(train_texts, prep.shingle_size)
    eval_sets = shingle_sets(eval_texts, prep.shingle_size)
    signatures = minhash_signatures(train_sets + eval_sets, bands * rows)

    def minhash(row: int) -> LeanMinHash:
        return LeanMinHash(seed=1, hashvalues=signatures[row], scheme="affine32")

    index = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    for k in range(len(train_sets)):
        index.insert(k, minhash(k), check_duplication=False)
    return [
        max(
            (jaccard(grams, train_sets[k]) for k in index.query(minhash(len(train_sets) + j))),
            default=0.0,
        )
        for j, grams in enumerate(eval_sets)
    ]


def build_tables(
    raw_files: list[Path], train_file: Path, eval_file: Path, prep: PrepareParams
) -> dict[str, Any]:
    """The four pandas tables the suite runs on (see the module docstring)."""
    import pandas as pd

    rows, notices, instructions = notice_rows(raw_files)
    per_category = Counter(r.get("category") for r in rows)
    records = record_rows(train_file, eval_file, notices, prep)
    per_task = Counter(r["task"] for r in records if r["split"] == "eval" and r["task"] in TASKS)
    return {
        "notices": pd.DataFrame.from_records(rows),
        "categories": pd.DataFrame(
            {"category": list(CATEGORIES), "notices": [per_category[c] for c in CATEGORIES]}
        ),
        "records": pd.DataFrame.from_records(records),
        "tasks": pd.DataFrame(
            {"task": list(per_task), "eval_records": list(per_task.values())},
            columns=["task", "eval_records"],
        ),
        "instructions": pd.DataFrame.from_records(instructions, columns=INSTRUCTION_COLUMNS),
    }


def suite(p: ValidateParams, prep: PrepareParams) -> dict[str, list]:
    """The expectations per table, each with a description saying what it protects."""
    import great_expectations.expectations as gxe

    return {
        "notices": notice_expectations(p),
        "categories": [
            gxe.ExpectColumnValuesToBeBetween(
                column="notices",
                min_value=p.min_notices_per_category,
                **_d(
                    "minimum notices per category (params.yaml:validate.min_notices_per_category)"
                ),
            )
        ],
        "records": record_expectations(p, prep),
        "instructions": instruction_expectations(p),
        "tasks": [
            gxe.ExpectColumnValuesToBeBetween(
                column="eval_records",
                min_value=p.min_eval_records_per_task,
                **_d(
                    "minimum eval records per task (params.yaml:validate.min_eval_records_per_task)"
                ),
            )
        ],
    }


def _d(text: str) -> dict:
    return {"description": text}


def notice_expectations(p: ValidateParams) -> list:
    """The raw notices: schema, uniqueness, categories, lengths, dates, language."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    parsed = Column("json_object") == True  # noqa: E712 (builds a GX condition)
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, **_d("data/raw holds notices")),
        gxe.ExpectColumnValuesToBeInSet(
            column="json_object", value_set=[True], **_d("every line is a JSON object")
        ),
        *[
            gxe.ExpectColumnToExist(column=key, **_d(f"schema: notices have `{key}`"))
            for key in REQUIRED
        ],
        *[
            gxe.ExpectColumnValuesToNotBeNull(
                column=key,
                row_condition=parsed,  # a line that is not JSON is reported once, above
                **_d(f"`{key}` is a non-empty string on every notice"),
            )
            for key in REQUIRED
        ],
        gxe.ExpectColumnValuesToBeNull(
            column="wrong_types", **_d("optional fields are strings or null")
        ),
        gxe.ExpectColumnValuesToBeUnique(column="id", **_d("no duplicate notice ids")),
        gxe.ExpectColumnValuesToBeInSet(
            column="category", value_set=list(CATEGORIES), **_d("category is one of the six")
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="body",
            min_value=p.min_body_chars,
            max_value=p.max_body_chars,
            **_d("body length in characters (params.yaml:validate.*_body_chars)"),
        ),
        gxe.ExpectColumnValuesToMatchStrftimeFormat(
            column="publish_date", strftime_format="%Y-%m-%d", **_d("publish_date parses")
        ),
        gxe.ExpectColumnValuesToMatchRegex(
            column="deadline", regex=DEADLINE.pattern, **_d("deadline written as YYYY年M月D日")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="deadline_in_body", value_set=[True], **_d("the deadline appears in the body")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="location_in_text",
            value_set=[True],
            **_d("the location appears in the title or body"),
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="deadline_or_location",
            row_condition=parsed,
            **_d("a notice states a deadline or a location"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="chinese_share",
            min_value=p.min_chinese_share,
            **_d("language: the body is Chinese (params.yaml:validate.min_chinese_share)"),
        ),
    ]


def record_expectations(p: ValidateParams, prep: PrepareParams) -> list:
    """The prepared records: tasks, messages, lengths, leakage, PII."""
    import great_expectations.expectations as gxe

    records = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, **_d("prepare wrote records")),
        gxe.ExpectColumnValuesToNotBeNull(
            column="notice_id", **_d("every record names the notice it comes from")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="task",
            value_set=[*TASKS, INSTRUCT_TASK],
            **_d("task is classify, extract, title or instruct"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="messages_ok",
            value_set=[True],
            **_d("prompt and completion are non-empty lists of messages"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="token_estimate",
            min_value=p.min_record_tokens,
            max_value=p.max_record_tokens,
            **_d("record length in estimated tokens (params.yaml:validate.*_record_tokens)"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="in_train", value_set=[False], **_d("leakage: no eval notice is in train")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="train_similarity",
            max_value=prep.near_dup_threshold,
            strict_max=True,
            **_d("leakage: no eval notice near-duplicates a train notice (Jaccard)"),
        ),
    ]
    if prep.scrub_pii:
        records.append(
            gxe.ExpectColumnValuesToBeNull(
                column="pii_left", **_d("no PII left after prepare's scrubbing")
            )
        )
    return records


def instruction_expectations(p: ValidateParams) -> list:
    """Added instruction datasets: fields, ids, prompt leakage, size, hostile text."""
    import great_expectations.expectations as gxe

    return [
        *[
            gxe.ExpectColumnValuesToNotBeNull(
                column=key, **_d(f"instruction rows: `{key}` is a non-empty string")
            )
            for key in ("id", "instruction", "output")
        ],
        gxe.ExpectColumnValuesToBeNull(
            column="wrong_types", **_d("instruction rows: optional fields are strings or null")
        ),
        gxe.ExpectColumnValuesToBeUnique(column="id", **_d("instruction rows: no duplicate ids")),
        gxe.ExpectColumnValuesToBeInSet(
            column="id_of_a_notice",
            value_set=[False],
            **_d("instruction rows: no id that a notice has"),
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="prompt_key",
            **_d("leakage: one prompt under two ids could land in both splits"),
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text",
            max_value=p.max_body_chars,
            **_d("instruction rows: text length (params.yaml:validate.max_body_chars)"),
        ),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="text", regex=r"\x00", **_d("instruction rows: no NUL character")
        ),
        gxe.ExpectColumnValuesToNotMatchRegex(
            column="text",
            regex=_SCRIPT,
            **_d("instruction rows: no HTML script (<script>, on*= or javascript:)"),
        ),
    ]


def _plain(value: Any) -> Any:
    """numpy scalars and NaN as JSON values."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _errors(info: dict | None) -> list[str]:
    """The exception messages in a GX result's exception_info: one dict, or one per metric
    (a column that does not exist fails that way)."""
    if not info:
        return []
    if "raised_exception" in info:
        return [str(info["exception_message"])] if info["raised_exception"] else []
    found = {v.get("exception_message") for v in info.values() if isinstance(v, dict)}
    return sorted(str(m) for m in found if m)


def _outcome(table: str, r: Any) -> dict:
    """One expectation's verdict, with up to EXAMPLES offending rows."""
    config = r.expectation_config
    column = config.kwargs.get("column")
    result = r.result or {}
    out = {
        "expectation": f"{config.type}({column})" if column else config.type,
        "description": config.description,
        "table": table,
        "success": bool(r.success),
    }
    if r.success:
        return out
    errors = _errors(r.exception_info)
    if config.type == "expect_column_to_exist":
        out["error"] = f"no row has `{column}`"
    elif errors:
        out["error"] = "; ".join(errors)
    elif not result.get("unexpected_index_list") and "observed_value" in result:
        out["observed_value"] = _plain(result["observed_value"])
    for key in ("unexpected_count", "element_count"):
        if key in result:
            out[key] = int(result[key])
    examples = []
    for row in (result.get("unexpected_index_list") or [])[:EXAMPLES]:
        example = {k: _plain(v) for k, v in row.items() if k in ROW_KEYS[table]}
        example["value"] = _plain(row.get(column)) if column else None
        examples.append(example)
    if examples:
        out["examples"] = examples
    return out


def run_suite(
    tables: dict[str, Any], expectations: dict[str, list], docs_dir: Path | None
) -> list[dict]:
    """Validate each table against its expectations in an ephemeral GX context; with
    `docs_dir`, build the HTML data docs there (replacing what was there)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network calls from a stage
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("flywheel")
    outcomes = []
    for table, frame in tables.items():
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        fresh = [copy.copy(e) for e in expectations[table]]  # an expectation joins one suite
        s = context.suites.add(gx.ExpectationSuite(name=table, expectations=fresh))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=table, data=batch, suite=s)
        )
        keys = [k for k in ROW_KEYS[table] if k in frame.columns]
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": keys},
        )
        order = [e.description for e in expectations[table]]  # GX reorders its results
        found = [_outcome(table, r) for r in result.results]
        outcomes += sorted(found, key=lambda o: order.index(o["description"]))
        bad = sum(not o["success"] for o in found)
        print(f"validate: {table}: {len(frame)} rows, {len(found)} expectations, {bad} failed")
    if docs_dir is not None:
        shutil.rmtree(docs_dir, ignore_errors=True)
        site: Any = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(Path(docs_dir).resolve()),
            },
        }
        context.add_data_docs_site(site_name="validate", site_config=site)
        context.build_data_docs(site_names=["validate"])
    return outcomes


def validate(
    raw_files: list[Path],
    train_file: Path,
    eval_file: Path,
    p: ValidateParams,
    prep: PrepareParams,
    docs_dir: Path | None = None,
) -> dict:
    """The report written to metrics/validate.json: `passed`, counts and every expectation."""
    tables = build_tables(raw_files, train_file, eval_file, prep)
    outcomes = run_suite(tables, suite(p, prep), docs_dir)
    failed = [o for o in outcomes if not o["success"]]
    return {
        "passed": not failed,
        "notices": len(tables["notices"]),
        "records": len(tables["records"]),
        "expectations_evaluated": len(outcomes),
        "expectations_failed": len(failed),
        "expectations": outcomes,
    }


def describe_failure(o: dict) -> str:
    """`expectation on table: what went wrong; e.g. file:line (id) value` for one failure."""
    head = f"{o['expectation']} on {o['table']} ({o['description']})"
    if "error" in o:
        return f"{head}: {o['error']}"
    if "examples" not in o:
        return f"{head}: observed {o.get('observed_value')!r}"
    rows = []
    for e in o["examples"]:
        where = f"{e['file']}:{e['line']}" if "file" in e else ""
        ident = e.get("id") or e.get("notice_id") or e.get("category") or e.get("task")
        rows.append(" ".join(x for x in (where, ident and repr(ident)) if x) + f": {e['value']!r}")
    count = f"{o.get('unexpected_count', len(rows))} of {o.get('element_count', '?')} rows"
    return f"{head}: {count}; e.g. " + "; ".join(rows)


def main() -> int:
    params = load_params()
    raw_files = sorted(RAW_DIR.glob("*.jsonl"))
    print(f"validate: {len(raw_files)} raw file(s), {TRAIN_FILE}, {EVAL_FILE}", flush=True)
    report = validate(
        raw_files, TRAIN_FILE, EVAL_FILE, params.validate, params.prepare, VALIDATE_DOCS
    )
    write_json(VALIDATE_METRICS, report)
    failed = [o for o in report["expectations"] if not o["success"]]
    for o in failed:
        print(f"FAILED {describe_failure(o)}", file=sys.stderr)
    if failed:
        print(
            f"validate: FAILED {len(failed)} of {report['expectations_evaluated']} expectations "
            f"(details in {VALIDATE_METRICS}, {VALIDATE_DOCS}/index.html); fix the data and "
            "rerun `dvc repro`",
            file=sys.stderr,
        )
        return 1
    print(
        f"validate: passed {report['expectations_evaluated']} expectations on "
        f"{report['notices']} notices and {report['records']} records "
        f"(data docs: {VALIDATE_DOCS}/index.html)"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
