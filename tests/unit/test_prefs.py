"""Preference pairs: the loader's normal form and errors, the sample pairs, the held-out split."""

import json
from collections import Counter

import pytest

from pipeline.config import TASKS, PrepareParams
from pipeline.data.prefs import check_pair, load_pairs, sample_pairs
from pipeline.data.records import split_of
from pipeline.data.synthetic import generate
from pipeline.io import DataError
from pipeline.train.dpo import preference_accuracy, reward_margins, split_pairs

GOOD = {"prompt": "通知类别？", "chosen": "教务", "rejected": "后勤"}


def write(tmp_path, rows):
    path = tmp_path / "prefs.jsonl"
    path.write_text(
        "".join(
            (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    return path


def test_strings_become_messages_and_id_and_group_are_filled_in(tmp_path):
    pair = check_pair(dict(GOOD, agreement=0.67), tmp_path / "p.jsonl", 1)
    assert pair["prompt"] == [{"role": "user", "content": "通知类别？"}]
    assert pair["chosen"] == [{"role": "assistant", "content": "教务"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "后勤"}]
    assert pair["group"] == "通知类别？" and len(pair["id"]) == 16
    assert pair["agreement"] == 0.67  # extra fields are kept
    assert check_pair(dict(GOOD), tmp_path, 1)["id"] == pair["id"]  # the id is the content's


@pytest.mark.parametrize(
    "change, rule",
    [
        ({"chosen": None}, "missing `chosen`"),
        ({"rejected": "教务"}, "`chosen` and `rejected` are the same answer"),
        ({"prompt": [{"role": "assistant", "content": "x"}]}, "must end with a user message"),
        ({"prompt": [{"role": "robot", "content": "x"}]}, "`prompt[0]` must be"),
        ({"chosen": [{"role": "user", "content": "教务"}]}, "`chosen` must hold assistant"),
        ({"rejected": "  "}, "`rejected[0].content` is empty"),
        ({"prompt": 3}, "`prompt` must be a non-empty string or list"),
    ],
)
def test_a_bad_pair_names_the_file_line_and_field(tmp_path, change, rule):
    raw = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(DataError) as exc:
        check_pair(raw, tmp_path / "prefs.jsonl", 7)
    assert "prefs.jsonl:7: " in str(exc.value) and rule in str(exc.value)


def test_load_reports_every_bad_line_at_once(tmp_path):
    path = write(tmp_path, [GOOD, "{not json", dict(GOOD, chosen="后勤"), GOOD])
    with pytest.raises(DataError) as exc:
        load_pairs(path)
    message = str(exc.value)
    assert "3 bad preference pair(s)" in message
    assert "prefs.jsonl:2: invalid JSON" in message
    assert "prefs.jsonl:3: `chosen` and `rejected` are the same answer" in message
    assert "prefs.jsonl:4: duplicate id" in message and "first on line 1" in message


def test_no_file_means_no_pairs(tmp_path):
    assert load_pairs(tmp_path / "missing.jsonl") == []


def test_sample_pairs_are_right_against_wrong_and_load_cleanly(tmp_path):
    notices = generate(120)
    pairs = sample_pairs(notices, list(TASKS))
    assert len(pairs) >= 110
    assert {p["task"] for p in pairs} == set(TASKS)
    by_id = {n["id"]: n for n in notices}
    for p in pairs:
        assert p["chosen"] != p["rejected"]
        if p["task"] == "classify":
            assert p["chosen"][0]["content"] == by_id[p["group"]]["category"]
    assert len(load_pairs(write(tmp_path, pairs))) == len(pairs)


def test_sample_classify_pairs_reject_each_category_about_as_often_as_they_choose_it():
    # a label rejected far more often than chosen would be pushed down also where it is right
    pairs = [p for p in sample_pairs(generate(360), list(TASKS)) if p["task"] == "classify"]
    chosen = Counter(p["chosen"][0]["content"] for p in pairs)
    rejected = Counter(p["rejected"][0]["content"] for p in pairs)
    for label in chosen:
        assert abs(chosen[label] - rejected[label]) <= 0.5 * chosen[label], (
            label,
            chosen,
            rejected,
        )


def test_held_out_pairs_are_those_of_eval_notices():
    p = PrepareParams()
    pairs = sample_pairs(generate(200), list(TASKS))
    train, held_out = split_pairs(pairs, p)
    assert len(train) + len(held_out) == len(pairs) and held_out
    assert all(split_of(x["group"], p.split_salt, p.eval_fraction) == "eval" for x in held_out)
    assert not {x["group"] for x in train} & {x["group"] for x in held_out}


def test_preference_accuracy_and_reward_margin():
    sft = [(-1.0, -2.0), (-3.0, -1.0)]
    tuned = [(-0.5, -3.0), (-2.0, -1.5)]
    assert preference_accuracy(sft) == 0.5 and preference_accuracy(tuned) == 0.5
    assert preference_accuracy([]) is None
    # margins: 0.1 * ((0.5) - (-1.0)) = 0.15 and 0.1 * ((1.0) - (-0.5)) = 0.15
    assert reward_margins(tuned, sft, beta=0.1) == {"reward_margin": 0.15, "reward_accuracy": 1.0}
    assert reward_margins(sft, sft, beta=0.1) == {"reward_margin": 0.0, "reward_accuracy": 0.0}
