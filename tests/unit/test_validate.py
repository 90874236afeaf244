import json

import pytest

from pipeline.config import ValidateParams
from pipeline.data.prepare import task_records
from pipeline.data.sample import generate
from pipeline.data.schema import check_notice, load_notices
from pipeline.data.validate import validate_prepared, validate_raw
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


def test_raw_violations_carry_file_and_line(tmp_path):
    notices = generate(3)
    bad = notices[1] | {"category": "体育"}
    path = write(tmp_path / "a.jsonl", [notices[0], bad, "{not json\n", notices[0]])
    violations, _ = validate_raw([path], ValidateParams(min_notices_per_category=0))
    found = {(v.line, v.rule.split(" ")[0]) for v in violations}
    assert (2, "`category`") in found
    assert (3, "invalid") in found
    assert any(v.line == 4 and "duplicate id" in v.rule for v in violations)
    assert str(violations[0]).startswith(f"{path}:")


def test_too_few_notices_per_category_is_a_violation(tmp_path):
    path = write(tmp_path / "a.jsonl", generate(12))
    violations, _ = validate_raw([path], ValidateParams(min_notices_per_category=5))
    assert sum("fewer than 5" in v.rule for v in violations) == 6


def test_leakage_between_splits_is_caught(tmp_path):
    n = generate(1)[0]
    records = task_records(n, ["classify"])
    train = write(tmp_path / "train.jsonl", records)
    evals = write(tmp_path / "eval.jsonl", records)
    violations = validate_prepared(train, evals, ValidateParams(min_eval_records_per_task=0))
    assert any("in both train and eval" in v.rule for v in violations)


def test_load_notices_stops_at_the_first_bad_line(tmp_path):
    notices = generate(4)
    write(tmp_path / "a.jsonl", [notices[0], notices[1], notices[2] | {"body": ""}, notices[3]])
    with pytest.raises(DataError) as err:
        load_notices(tmp_path)
    assert err.value.line == 3 and "`body`" in err.value.rule
