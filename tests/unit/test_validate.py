import json

import pytest

from pipeline.data.schema import check_notice, load_notices
from pipeline.data.synthetic import generate
from pipeline.io import DataError


def write(path, rows):
    path.write_text(
        "".join(
            r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    return path


def test_a_good_notice_breaks_no_rule():
    assert check_notice(generate(1)[0]) == []


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"title": ""}, "`title` is required"),
        ({"body": None}, "`body` is required"),
        ({"category": "体育"}, "`category` '体育' is not one of"),
        ({"publish_date": "2026/03/01"}, "not an ISO date"),
        ({"deadline": "3月1日"}, "not written as YYYY年M月D日"),
        ({"deadline": "2099年1月1日"}, "`deadline` does not appear in `body`"),
        ({"location": "月球背面"}, "`location` does not appear"),
        ({"deadline": None, "location": None}, "at least one of `deadline`, `location`"),
    ],
)
def test_each_rule_is_named(change, rule):
    assert any(rule in broken for broken in check_notice(generate(1)[0] | change))


def test_load_notices_stops_at_the_first_bad_line(tmp_path):
    notices = generate(4)
    write(tmp_path / "a.jsonl", [notices[0], notices[1], notices[2] | {"body": ""}, notices[3]])
    with pytest.raises(DataError) as err:
        load_notices(tmp_path)
    assert err.value.line == 3 and "`body`" in err.value.rule


# --- the Great Expectations suite (pipeline/data/validate.py) --------------------------------
# One crafted dataset breaks every expectation once, on known lines; the suite runs on it once.

from pipeline.config import PrepareParams, ValidateParams  # noqa: E402
from pipeline.data.records import task_records  # noqa: E402
from pipeline.data.validate import describe_failure, main, validate  # noqa: E402

BAD_NOTICES = {  # line in a.jsonl -> change that breaks one rule
    2: {"category": "体育"},
    3: {"publish_date": "2026/13/01"},
    4: {"deadline": "3月1日"},
    5: {"deadline": "2099年1月1日"},
    6: {"location": "月球背面"},
    7: {"deadline": None, "location": None},
    8: {"body": "Please register for the autumn seminar series at the library before Friday."},
    9: {"body": "短"},
    10: {"id": "notice-0001"},
    11: {"title": ""},
    12: {"department": 123},
    13: {"source": 5},
    15: {"id": " "},
    16: {"category": None},
    17: {"publish_date": ""},
    18: {"body": "   "},
}
# expectation -> (table file or None, line or row key) of one offending row it must report
FAILS = {
    "expect_column_values_to_be_in_set(json_object)": ("a.jsonl", 14),
    "expect_column_values_to_not_be_null(id)": ("a.jsonl", 15),
    "expect_column_values_to_not_be_null(category)": ("a.jsonl", 16),
    "expect_column_values_to_not_be_null(title)": ("a.jsonl", 11),
    "expect_column_values_to_not_be_null(department)": ("a.jsonl", 12),
    "expect_column_values_to_not_be_null(publish_date)": ("a.jsonl", 17),
    "expect_column_values_to_not_be_null(body)": ("a.jsonl", 18),
    "expect_column_values_to_be_null(wrong_types)": ("a.jsonl", 13),
    "expect_column_values_to_be_unique(id)": ("a.jsonl", 10),
    "expect_column_values_to_be_in_set(category)": ("a.jsonl", 2),
    "expect_column_value_lengths_to_be_between(body)": ("a.jsonl", 9),
    "expect_column_values_to_match_strftime_format(publish_date)": ("a.jsonl", 3),
    "expect_column_values_to_match_regex(deadline)": ("a.jsonl", 4),
    "expect_column_values_to_be_in_set(deadline_in_body)": ("a.jsonl", 5),
    "expect_column_values_to_be_in_set(location_in_text)": ("a.jsonl", 6),
    "expect_column_values_to_not_be_null(deadline_or_location)": ("a.jsonl", 7),
    "expect_column_values_to_be_between(chinese_share)": ("a.jsonl", 8),
    "expect_column_values_to_be_between(notices)": (None, "学生工作"),
    "expect_column_values_to_not_be_null(notice_id)": ("train.jsonl", 6),
    "expect_column_values_to_be_in_set(task)": ("train.jsonl", 1),
    "expect_column_values_to_be_in_set(messages_ok)": ("train.jsonl", 2),
    "expect_column_values_to_be_between(token_estimate)": ("train.jsonl", 3),
    "expect_column_values_to_be_null(pii_left)": ("train.jsonl", 5),
    "expect_column_values_to_be_in_set(in_train)": ("eval.jsonl", 1),
    "expect_column_values_to_be_between(train_similarity)": ("eval.jsonl", 2),
    "expect_column_values_to_be_between(eval_records)": (None, "classify"),
}
STRICT = ValidateParams(min_notices_per_category=10, min_eval_records_per_task=6)


def record(n, **change):
    return task_records(n, ["classify"])[0] | change


def bad_dataset(root):
    """a.jsonl breaking every notice rule on its own line, and prepared files breaking every
    record rule; returns (raw files, train file, eval file)."""
    notices = generate(60)
    lines = [n | BAD_NOTICES.get(i, {}) for i, n in enumerate(notices[:40], start=1)]
    lines[13] = "{not json\n"
    twin = notices[47]
    near = twin | {"id": "notice-near", "body": twin["body"].replace("。", "！", 1)}
    raw = write(root / "a.jsonl", [*lines, *notices[40:50], near])
    train_notices = notices[40:50]
    train = [
        record(train_notices[0], task="translate"),
        record(train_notices[1], prompt=[]),
        record(train_notices[2], completion=[{"role": "assistant", "content": "长" * 500}]),
        record(
            train_notices[3],
            completion=[{"role": "assistant", "content": "好"}],
            prompt=[{"role": "user", "content": "嗯"}],
        ),  # too short
        record(train_notices[4], completion=[{"role": "assistant", "content": "13812345678"}]),
        record(train_notices[5], notice_id=None),
        *[record(n) for n in train_notices[6:]],
        record(notices[20]),
    ]
    evals = [record(notices[20]), record(near), *[record(n) for n in notices[21:24]]]
    return [raw], write(root / "train.jsonl", train), write(root / "eval.jsonl", evals)


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    raw, train, evals = bad_dataset(root)
    return validate(raw, train, evals, STRICT, PrepareParams(), docs_dir=root / "docs"), root


def test_the_suite_has_at_least_twelve_expectations(bad_report):
    report, _ = bad_report
    assert report["expectations_evaluated"] >= 12
    kinds = {o["expectation"].split("(")[0] for o in report["expectations"]}
    assert len(kinds) >= 8  # built-in GX expectations of many kinds


@pytest.mark.parametrize("name", sorted(FAILS))
def test_each_expectation_fails_naming_its_offending_rows(bad_report, name):
    report, root = bad_report
    (outcome,) = [
        o
        for o in report["expectations"]
        if o["expectation"] == name and o["table"] != "instructions"
    ]
    assert outcome["success"] is False
    file, where = FAILS[name]
    message = describe_failure(outcome)
    assert message.startswith(name)
    if file:
        assert f"{root / file}:{where}" in message, message
        assert {"file": str(root / file), "line": where} in [
            {k: e[k] for k in ("file", "line")} for e in outcome["examples"]
        ]
    else:
        assert repr(where) in message, message


def test_only_the_broken_rows_are_reported(bad_report):
    report, _ = bad_report
    outcome = {o["expectation"]: o for o in report["expectations"]}
    category = outcome["expect_column_values_to_be_in_set(category)"]
    assert category["unexpected_count"] == 1 and category["examples"][0]["value"] == "体育"
    assert outcome["expect_column_values_to_be_in_set(in_train)"]["unexpected_count"] == 1
    assert report["passed"] is False
    assert report["expectations_failed"] == len(FAILS)


def test_a_missing_column_fails_the_schema_expectation(tmp_path):
    dropped = ("department", "deadline")
    no_department = [{k: v for k, v in n.items() if k not in dropped} for n in generate(6)]
    raw = write(tmp_path / "a.jsonl", no_department)
    notices = generate(6)
    train = write(tmp_path / "train.jsonl", [record(n) for n in notices[:4]])
    evals = write(tmp_path / "eval.jsonl", [record(n) for n in notices[4:]])
    lenient = ValidateParams(min_notices_per_category=0, min_eval_records_per_task=0)
    report = validate([raw], train, evals, lenient, PrepareParams())
    failed = {o["expectation"]: o for o in report["expectations"] if not o["success"]}
    assert "no row has `department`" in describe_failure(
        failed["expect_column_to_exist(department)"]
    )
    # an optional field may be absent from every row
    assert "expect_column_values_to_match_regex(deadline)" not in failed


def test_data_docs_are_written(bad_report):
    _, root = bad_report
    assert (root / "docs/index.html").exists()
    pages = list((root / "docs/validations").rglob("*.html"))
    assert len(pages) == 5  # one per table


def test_the_stage_fails_naming_expectation_file_and_line(tmp_path, monkeypatch, capsys):
    from ..conftest import ROOT

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text(encoding="utf-8"))
    notices = generate(180)
    raw = [n | ({"category": "体育"} if i == 2 else {}) for i, n in enumerate(notices, 1)]
    write((tmp_path / "data/raw").mkdir(parents=True) or tmp_path / "data/raw/notices.jsonl", raw)
    (tmp_path / "data/prepared").mkdir()
    write(tmp_path / "data/prepared/train.jsonl", [record(n) for n in notices[:150]])
    write(tmp_path / "data/prepared/eval.jsonl", [record(n) for n in notices[150:]])
    monkeypatch.chdir(tmp_path)
    assert main() == 1
    err = capsys.readouterr().err
    assert "FAILED expect_column_values_to_be_in_set(category) on notices" in err
    assert "data/raw/notices.jsonl:2 'notice-0002': '体育'" in err
    saved = json.loads((tmp_path / "metrics/validate.json").read_text(encoding="utf-8"))
    assert saved["passed"] is False and saved["expectations_failed"] == 1
    assert (tmp_path / "reports/validate/index.html").exists()


def instruction(i, **change):
    row = {
        "kind": "instruction",
        "id": f"qa-{i}",
        "instruction": f"把第{i}句译成英文",
        "input": f"句子{i}",
        "output": f"Sentence {i}",
        "source": "qa",
    }
    return row | change


INSTRUCTION_FAILS = {  # expectation on the instructions table -> its offending line
    "expect_column_values_to_not_be_null(id)": 1,
    "expect_column_values_to_not_be_null(instruction)": 2,
    "expect_column_values_to_not_be_null(output)": 3,
    "expect_column_values_to_be_null(wrong_types)": 4,
    "expect_column_values_to_be_unique(id)": 6,
    "expect_column_values_to_be_in_set(id_of_a_notice)": 7,
    "expect_column_values_to_be_unique(prompt_key)": 9,
    "expect_column_value_lengths_to_be_between(text)": 10,
    "expect_column_values_to_not_match_regex(text)": 11,
}


def test_instruction_rows_have_their_own_expectations(tmp_path):
    """Rows of `llmops data add` (`"kind": "instruction"`) are checked as instructions, not
    as notices; each rule names its line, and `instruct` is a known task."""
    notices = generate(6)
    rows = [
        instruction(1, id=""),
        instruction(2, instruction=None),
        instruction(3, output="  "),
        instruction(4, system=7),
        instruction(5),
        instruction(6, id="qa-5"),
        instruction(7, id=notices[0]["id"]),
        instruction(8),
        instruction(9, id="qa-9b", instruction="把第8句译成英文", input="句子8"),
        instruction(10, output="长" * 3000),
        instruction(11, output="<script>alert(1)</script>"),
        instruction(12, input="a\x00b"),
    ]
    raw = write(tmp_path / "a.jsonl", [*notices, *rows])
    train = write(tmp_path / "train.jsonl", [record(n) for n in notices[:4]])
    records = [record(n) for n in notices[4:]]
    evals = write(tmp_path / "eval.jsonl", [*records, records[0] | {"task": "instruct"}])
    lenient = ValidateParams(min_notices_per_category=0, min_eval_records_per_task=0)
    report = validate([raw], train, evals, lenient, PrepareParams())
    mine = [o for o in report["expectations"] if o["table"] == "instructions"]
    failed = {o["expectation"]: o for o in mine if not o["success"]}
    assert set(failed) == set(INSTRUCTION_FAILS)
    for name, offset in INSTRUCTION_FAILS.items():
        assert f"{raw}:{len(notices) + offset}" in describe_failure(failed[name]), name
    nul, script = [o for o in mine if o["expectation"].endswith("not_match_regex(text)")]
    assert [e["line"] for e in nul["examples"]] == [len(notices) + 12]
    assert [e["line"] for e in script["examples"]] == [len(notices) + 11]
    others = [o for o in report["expectations"] if o["table"] != "instructions"]
    assert [describe_failure(o) for o in others if not o["success"]] == []
