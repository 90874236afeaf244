"""`llmops data add`: the bad-input matrix (each case rejected naming file, line and rule), the
messy-but-unambiguous inputs it accepts, and what the pipeline makes of added data."""

import argparse
import codecs
import json
import shutil
from pathlib import Path

import pytest

from pipeline.config import PrepareParams, ValidateParams
from pipeline.data.add import Limits, convert, main
from pipeline.data.prefs import load_feedback
from pipeline.data.prepare import clean_notices, instruction_records, prepare
from pipeline.data.schema import load_raw
from pipeline.data.validate import describe_failure, validate
from pipeline.evaluate.evaluate import answer_kinds, slices
from pipeline.evaluate.scoring import group_of
from pipeline.io import DataError, UserError, write_jsonl
from tests.conftest import ROOT

LIMITS = Limits(min_body_chars=20, max_body_chars=2000)
NOTICE = json.loads((ROOT / "data/raw/notices.jsonl").read_text(encoding="utf-8").split("\n")[0])


def j(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def alpaca(i: int, **change) -> dict:
    return {"instruction": f"把第{i}句翻译成英文。", "input": "你好", "output": "Hello"} | change


def lines(*rows: object) -> bytes:
    return "".join((r if isinstance(r, str) else j(r)) + "\n" for r in rows).encode()


# (case, file bytes, --format, line, rule): every one must be rejected as `file:line: rule`
BAD = [
    ("invalid JSON, JSON Lines", lines(alpaca(1), '{"instruction": "x",'), None, 2, "invalid JSON"),
    (
        "invalid JSON inside an array",
        f"[\n{j(alpaca(1))},\n\n{{oops}}\n]".encode(),
        None,
        4,
        "invalid JSON",
    ),
    (
        "one object over several lines",
        json.dumps({"data": [alpaca(1)]}, indent=2).encode(),
        None,
        1,
        "one JSON object over several lines",
    ),
    ("missing output", lines(alpaca(1), alpaca(2, output=None)), None, 2, "`output` is required"),
    (
        "missing instruction and input",
        lines({"instruction": "", "output": "x"}),
        None,
        1,
        "`instruction` is missing and `input` is empty",
    ),
    ("wrongly typed output", lines(alpaca(1, output=42)), None, 1, "`output` must be a string"),
    ("wrongly typed input", lines(alpaca(1, input=["a"])), None, 1, "`input` must be a string"),
    ("wrongly typed id", lines(alpaca(1, id=["a"])), None, 1, "`id` must be a non-empty string"),
    (
        "wrongly typed category",
        lines(alpaca(1, category=3)),
        None,
        1,
        "`category`/`task` must be a string",
    ),
    ("empty file", b"", None, 1, "empty file"),
    ("whitespace only, CRLF", b"\r\n  \r\n", None, 1, "empty file"),
    ("empty array", b"[ ]\n", None, 1, "empty file"),
    (
        "UTF-16 with BOM",
        codecs.BOM_UTF16_LE + j(alpaca(1)).encode("utf-16-le"),
        None,
        1,
        "encoding: UTF-16",
    ),
    ("GBK", lines(alpaca(1)) + j(alpaca(2)).encode("gbk"), None, 2, "encoding: not UTF-8"),
    ("NUL byte", lines(alpaca(1), alpaca(2)) + b"\x00\x00", None, 3, "NUL byte"),
    ("NUL character escaped", lines(alpaca(1, output="a\u0000b")), None, 1, "NUL character"),
    ("nested arrays", f"[[[{j(alpaca(1))}]]]".encode(), None, 1, "nested arrays"),
    (
        "nesting bomb, JSON Lines",
        lines(alpaca(1), '{"a": ' * 100_000 + "1" + "}" * 100_000),
        None,
        2,
        "JSON nested 100000 levels deep, more than 32",
    ),
    (
        "nesting bomb in an array",
        ("[" + "[" * 5000 + "]" * 5000 + "]").encode(),
        None,
        1,
        "JSON nested 5001 levels deep",
    ),
    (
        "nesting inside a field",
        lines(j(alpaca(1))[:-1] + ', "meta": ' + "[" * 32 + "]" * 32 + "}"),
        None,
        1,
        "JSON nested 33 levels deep",
    ),
    (
        "list of two records",
        f"[\n[{j(alpaca(1))}, {j(alpaca(2))}]\n]".encode(),
        None,
        2,
        "not a list of 2 items",
    ),
    ("a record that is a string", lines(alpaca(1), '"hello"'), None, 2, "must be a JSON object"),
    (
        "duplicate ids",
        lines(alpaca(1, id="a"), alpaca(2, id="b"), alpaca(3, id="a")),
        None,
        3,
        "duplicate id 'a' (first at",
    ),
    (
        "duplicate records without ids",
        lines(alpaca(1), alpaca(2), alpaca(1)),
        None,
        3,
        "duplicate id",
    ),
    (
        "eval/train leakage: one prompt, two ids",
        lines(alpaca(1, id="a"), alpaca(1, id="b", output="Hi")),
        None,
        2,
        "eval/train leakage",
    ),
    ("oversize row", lines(alpaca(1, output="长" * 2500)), None, 1, "more than 2000"),
    (
        "oversize preference pair",
        lines({"prompt": "p", "chosen": "a" * 9000, "rejected": "b"}),
        None,
        1,
        "oversize record",
    ),
    (
        "script injection in HTML",
        lines(alpaca(1, output="<script>alert(1)</script>")),
        None,
        1,
        "HTML script",
    ),
    (
        "event-handler injection",
        lines(alpaca(1, input='<img src=x onerror="alert(1)">')),
        None,
        1,
        "HTML script",
    ),
    (
        "unknown category",
        lines(NOTICE | {"category": "体育"}),
        None,
        1,
        "`category` '体育' is not one of",
    ),
    (
        "unparseable date",
        lines(NOTICE | {"publish_date": "2025/13/45"}),
        None,
        1,
        "`publish_date` '2025/13/45' is not an ISO date",
    ),
    (
        "unknown format",
        lines({"question": "q", "answer": "a"}),
        None,
        1,
        "format: cannot tell it from the fields (answer, question)",
    ),
    (
        "sharegpt multi-turn",
        lines(
            {
                "conversations": [
                    {"from": "human", "value": "a"},
                    {"from": "gpt", "value": "b"},
                    {"from": "human", "value": "c"},
                    {"from": "gpt", "value": "d"},
                ]
            }
        ),
        None,
        1,
        "one user turn and one assistant answer",
    ),
    (
        "sharegpt unknown role",
        lines({"conversations": [{"from": "robot", "value": "a"}, {"from": "gpt", "value": "b"}]}),
        None,
        1,
        "`conversations[0].from` 'robot' is not a known role",
    ),
    (
        "openai content not a string",
        lines(
            {
                "messages": [
                    {"role": "user", "content": ["a"]},
                    {"role": "assistant", "content": "b"},
                ]
            }
        ),
        None,
        1,
        "`messages[0].content` must be a string",
    ),
    (
        "prefs without a shared prompt",
        lines(
            {
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            }
        ),
        None,
        1,
        "no `prompt`",
    ),
    (
        "prefs with the same answer twice",
        lines({"prompt": "p", "chosen": "a", "rejected": "a"}),
        None,
        1,
        "`chosen` and `rejected` are the same answer",
    ),
    (
        "a record not in the forced format",
        lines(alpaca(1)),
        "sharegpt",
        1,
        "`conversations` must be a non-empty list",
    ),
]


@pytest.mark.parametrize("case, data, fmt, line, rule", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_rejected_naming_file_line_and_rule(tmp_path, case, data, fmt, line, rule):
    path = tmp_path / "mine.json"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        convert(path, fmt, "mine", None, LIMITS)
    assert f"{path}:{line}: " in str(err.value) and rule in str(err.value), str(err.value)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from pipeline.data import add

    path = tmp_path / "big.jsonl"
    path.write_bytes(lines(*(alpaca(i) for i in range(40))))
    monkeypatch.setattr(add, "MAX_FILE_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read despite its size"))
    with pytest.raises(DataError, match=r"big.jsonl: [\d,]+ bytes, more than [\d,]+: split it"):
        convert(path, None, "mine", None, LIMITS)


def test_every_bad_record_is_reported_at_once(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_bytes(lines(alpaca(1), "{", alpaca(3, output=1), alpaca(4), alpaca(5, input=2)))
    with pytest.raises(DataError) as err:
        convert(path, None, "mine", None, LIMITS)
    message = str(err.value)
    assert message.startswith(f"{path}: 3 bad record(s), nothing written")
    for line in (2, 3, 5):
        assert f"{path}:{line}: " in message


def test_ids_and_prompts_already_in_data_raw_are_rejected(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_bytes(lines(alpaca(1, id="notice-0001"), alpaca(2, id="new")))
    existing = ({"notice-0001": "data/raw/notices.jsonl:1"}, {})
    with pytest.raises(DataError, match=r"mine.jsonl:1: duplicate id 'notice-0001' \(first at"):
        convert(path, None, "mine", None, LIMITS, existing)


SYSTEM = {"from": "system", "value": "你是助手"}
# (case, file bytes, format detected, what the first row holds)
GOOD = [
    (
        "UTF-8 BOM and CRLF",
        codecs.BOM_UTF8 + lines(alpaca(1)).replace(b"\n", b"\r\n"),
        "alpaca",
        {"instruction": "把第1句翻译成英文。", "input": "你好", "output": "Hello"},
    ),
    (
        "JSON array in a .jsonl-named file",
        f"[{j(alpaca(1))},\n{j(alpaca(2))}]".encode(),
        "alpaca",
        {"output": "Hello"},
    ),
    (
        "an array of one-item lists",
        f"[[{j(alpaca(1))}],\n[{j(alpaca(2))}]]".encode(),
        "alpaca",
        {"output": "Hello"},
    ),
    (
        "JSON Lines of one-item lists",
        lines([alpaca(1)], [alpaca(2)]),
        "alpaca",
        {"output": "Hello"},
    ),
    (
        "empty and null input",
        lines(alpaca(1, input=""), alpaca(2, input=None)),
        "alpaca",
        {"input": ""},
    ),
    (
        "missing instruction: the input is it",
        lines({"input": "你好", "output": "Hello"}),
        "alpaca",
        {"instruction": "你好", "input": ""},
    ),
    (
        "integer ids, own task field",
        lines(alpaca(1, id=7, task="翻译")),
        "alpaca",
        {"id": "7", "category": "翻译"},
    ),
    (
        "sharegpt with a system turn",
        lines(
            {
                "conversations": [
                    SYSTEM,
                    {"from": "human", "value": "问"},
                    {"from": "gpt", "value": "答"},
                ]
            }
        ),
        "sharegpt",
        {"system": "你是助手", "instruction": "问", "output": "答"},
    ),
    (
        "openai messages",
        lines(
            {
                "messages": [
                    {"role": "user", "content": "问"},
                    {"role": "assistant", "content": "答"},
                ],
                "category": "问答",
            }
        ),
        "openai",
        {"instruction": "问", "category": "问答", "source": "mine"},
    ),
    (
        "prefs with a prompt",
        lines({"prompt": "p", "chosen": "a", "rejected": "b"}),
        "prefs",
        {"prompt": [{"role": "user", "content": "p"}]},
    ),
    (
        "prefs sharing a conversation",
        lines(
            {
                "chosen": [{"role": "user", "content": "p"}, {"role": "assistant", "content": "a"}],
                "rejected": [
                    {"role": "user", "content": "p"},
                    {"role": "assistant", "content": "b"},
                ],
            }
        ),
        "prefs",
        {
            "prompt": [{"role": "user", "content": "p"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        },
    ),
    ("raw notices as they are", lines(NOTICE), "jsonl", {"id": NOTICE["id"]}),
]


@pytest.mark.parametrize("case, data, fmt, first", GOOD, ids=[c[0] for c in GOOD])
def test_messy_but_unambiguous_input_is_converted(tmp_path, case, data, fmt, first):
    path = tmp_path / "mine.jsonl"
    path.write_bytes(data)
    got_fmt, rows = convert(path, None, "mine", None, LIMITS)
    assert got_fmt == fmt
    assert rows[0] | first == rows[0]
    if fmt not in ("prefs", "jsonl"):
        assert all(r["kind"] == "instruction" and r["id"] for r in rows)


def add(file, **kw) -> int:
    args = {"format": None, "name": None, "category": None, "replace": False} | kw
    return main(argparse.Namespace(file=str(file), **args))


@pytest.fixture
def repo(in_tmp):
    shutil.copy(ROOT / "params.yaml", in_tmp / "params.yaml")
    shutil.copytree(ROOT / "data/raw", in_tmp / "data/raw")
    shutil.copytree(ROOT / "data/feedback", in_tmp / "data/feedback")
    return in_tmp


def test_add_writes_rows_the_pipeline_splits_validates_and_slices(repo):
    mine = repo / "qa.json"
    rows = [alpaca(i, category="翻译" if i % 2 else "改写") for i in range(40)]
    mine.write_text(j(rows), encoding="utf-8")
    assert add(mine, category="ignored") == 0
    written = (repo / "data/raw/qa.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(written) == 40 and json.loads(written[0])["source"] == "qa"
    notices, instructions = load_raw(repo / "data/raw")
    instructions = [r for r in instructions if r["source"] == "qa"]  # not the sample's own
    assert len(instructions) == 40 and notices == load_raw(ROOT / "data/raw")[0]
    train, evals = instruction_records(PrepareParams(), instructions)
    p = PrepareParams()
    notice_train, notice_evals, _ = prepare(p, clean_notices(p, notices)[0])
    write_jsonl(repo / "train.jsonl", notice_train + train)
    write_jsonl(repo / "eval.jsonl", notice_evals + evals)
    raw = sorted((repo / "data/raw").glob("*.jsonl"))
    report = validate(raw, repo / "train.jsonl", repo / "eval.jsonl", ValidateParams(), p)
    assert [describe_failure(o) for o in report["expectations"] if not o["success"]] == []
    assert len(train) + len(evals) == 40 and evals and train  # split by the id hash
    assert {r["task"] for r in train + evals} == {"instruct"}
    kinds = answer_kinds(train, evals, max_labels=20)
    assert kinds == {"sources.qa": "free"}  # translations and rewrites: free-form answers
    fake = [
        {
            "task": r["task"],
            "group": group_of(r),
            "category": r["category"],
            "source": r["source"],
            "length": "<100",
            "prediction": "Hello",
            "reference": r["completion"][0]["content"],
        }
        for r in train + evals
    ]
    by_slice = slices(fake, kinds)["sources.qa"]
    assert set(by_slice["category"]) == {"翻译", "改写"} and set(by_slice["source"]) == {"qa"}
    assert by_slice["category"]["翻译"]["exact_match"] == 1.0
    # adding again needs --replace; a bad file then changes nothing
    with pytest.raises(UserError, match="exists: pass --replace"):
        add(mine)
    mine.write_text(j([*rows, alpaca(99, output=None)]), encoding="utf-8")
    before = (repo / "data/raw/qa.jsonl").read_bytes()
    with pytest.raises(DataError, match=r"qa.json:1: `output` is required"):
        add(mine, replace=True)
    assert (repo / "data/raw/qa.jsonl").read_bytes() == before


def test_added_preference_pairs_go_to_data_feedback_where_dpo_reads_every_file(repo):
    before = load_feedback(repo / "data/feedback")
    mine = repo / "votes.jsonl"
    mine.write_bytes(lines({"prompt": "p", "chosen": "a", "rejected": "b", "id": "v1"}))
    assert add(mine) == 0
    pairs = load_feedback(repo / "data/feedback")
    assert len(pairs) == len(before) + 1 and pairs[-1]["id"] == "v1"
    (repo / "data/feedback/more.jsonl").write_bytes(
        lines({"prompt": "q", "chosen": "a", "rejected": "b", "id": "v1"})
    )
    with pytest.raises(DataError, match=r"votes.jsonl: duplicate id 'v1' \(also in .*more.jsonl"):
        load_feedback(repo / "data/feedback")


def test_prepare_rejects_bad_instruction_rows_with_file_line_and_rule(tmp_path):
    good = {"kind": "instruction", "id": "a", "instruction": "问", "input": "", "output": "答"}
    (tmp_path / "x.jsonl").write_bytes(lines(good, good | {"id": "b"}))
    with pytest.raises(DataError, match=r"x.jsonl:2: eval/train leakage"):
        load_raw(tmp_path)
    (tmp_path / "x.jsonl").write_bytes(lines(good, good | {"output": 3}))
    with pytest.raises(DataError, match=r"x.jsonl:2: `output` is required"):
        load_raw(tmp_path)


# --- the last good outputs survive a failed `dvc repro` ---------------------------------------
INSTRUCT = {"kind": "instruction", "id": "x-1", "instruction": "问", "input": "", "output": "答"}
RAW_BAD = [
    ("invalid JSON", lines(INSTRUCT, "{oops"), 2, "invalid JSON"),
    (
        "GBK",
        lines(INSTRUCT) + j(INSTRUCT | {"id": "x-2", "output": "答案"}).encode("gbk"),
        2,
        "encoding: not UTF-8",
    ),
    ("missing field", lines(INSTRUCT | {"output": None}), 1, "`output` is required"),
    ("wrong type", lines(INSTRUCT | {"input": 5}), 1, "`input` must be a string or null"),
    ("duplicate of a shipped id", lines(INSTRUCT | {"id": NOTICE["id"]}), 1, "duplicate id"),
    ("eval/train leakage", lines(INSTRUCT, INSTRUCT | {"id": "x-2"}), 2, "eval/train leakage"),
    ("oversize row", lines(INSTRUCT | {"output": "长" * 100_001}), 1, "more than 100000"),
    ("NUL character", lines(INSTRUCT | {"output": "a\u0000b"}), 1, "NUL character"),
    (
        "nesting bomb",
        lines(INSTRUCT, '{"a": ' * 50_000 + "1" + "}" * 50_000),
        2,
        "JSON nested 50000 levels deep, more than 32",
    ),
    ("script injection", lines(INSTRUCT | {"input": "<script>x()</script>"}), 1, "HTML script"),
    (
        "unknown category",
        lines(NOTICE | {"id": "n-1", "category": "体育"}),
        1,
        "`category` '体育' is not one of",
    ),
    (
        "unparseable date",
        lines(NOTICE | {"id": "n-1", "publish_date": "下周一"}),
        1,
        "`publish_date` '下周一' is not an ISO date",
    ),
]


def _outputs(repo) -> dict[str, bytes]:
    files = [*sorted((repo / "data/prepared").glob("*")), *sorted((repo / "metrics").glob("*"))]
    return {str(f.relative_to(repo)): f.read_bytes() for f in files}


@pytest.fixture(scope="module")
def prepared_repo(tmp_path_factory):
    """A scratch copy in which `dvc repro prepare validate` ran, its outputs committed."""
    from pipeline.scratch import copy_repo
    from tests.conftest import run

    repo = copy_repo(ROOT, tmp_path_factory.mktemp("dataadd") / "repo", from_nothing=True)
    run(["dvc", "repro", "prepare", "validate"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "good"], cwd=repo)
    good = _outputs(repo)
    assert {"data/prepared/train.jsonl", "metrics/prepare.json", "metrics/validate.json"} <= set(
        good
    )
    return repo, good


@pytest.mark.integration
@pytest.mark.parametrize("case, data, line, rule", RAW_BAD, ids=[c[0] for c in RAW_BAD])
def test_a_bad_raw_file_fails_dvc_repro_and_the_last_good_outputs_stay(
    prepared_repo, case, data, line, rule
):
    """Dropped into data/raw, each bad file fails `dvc repro prepare` with file:line: rule;
    once it is removed, `dvc checkout` brings back byte-identical outputs (DVC deletes a
    stage's outputs before running it; dvc.lock still names the good ones) and nothing reruns."""
    from tests.conftest import run

    repo, good = prepared_repo
    bad = repo / "data/raw/zz-added.jsonl"
    bad.write_bytes(data)
    try:
        proc = run(["dvc", "repro", "prepare"], cwd=repo, check=False)
    finally:
        bad.unlink()
    assert proc.returncode != 0
    assert f"data/raw/zz-added.jsonl:{line}: " in proc.stderr and rule in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    run(["dvc", "checkout", "prepare"], cwd=repo)
    run(["git", "checkout", "--", "metrics"], cwd=repo)
    assert _outputs(repo) == good
    assert "Running stage" not in run(["dvc", "repro", "prepare", "validate"], cwd=repo).stdout


@pytest.mark.integration
def test_added_data_goes_through_dvc_repro_into_its_own_task_and_slices(tmp_path):
    """`llmops data add` then `dvc repro prepare validate`: the rows become `instruct` records
    in both splits, validation passes, and the notices' records are unchanged."""
    from pipeline.scratch import copy_repo
    from tests.conftest import BIN, run

    repo = copy_repo(ROOT, tmp_path / "repo", from_nothing=True)
    run(["dvc", "repro", "prepare"], cwd=repo)
    before = (repo / "data/prepared/train.jsonl").read_text().splitlines()
    mine = tmp_path / "faq.json"
    mine.write_text(j([alpaca(i, task="翻译") for i in range(30)]), encoding="utf-8")
    added = run([str(BIN / "llmops"), "data", "add", str(mine)], cwd=repo)
    assert "data add: 30 alpaca records" in added.stdout
    assert (repo / "data/raw/faq.jsonl").exists()
    proc = run(["dvc", "repro", "prepare", "validate"], cwd=repo)
    # the sample ships 200 (helpdesk, pipeline/data/synthetic.py)
    assert "230 instruction rows included" in proc.stdout and "validate: passed" in proc.stdout
    records = [
        json.loads(line)
        for name in ("train", "eval")
        for line in (repo / f"data/prepared/{name}.jsonl").read_text().splitlines()
    ]
    instruct = [r for r in records if r["task"] == "instruct" and r["source"] == "faq"]
    assert len(instruct) == 30 and {r["category"] for r in instruct} == {"翻译"}
    train = (repo / "data/prepared/train.jsonl").read_text().splitlines()
    assert set(before) < set(train)  # every record of before is kept as it was
