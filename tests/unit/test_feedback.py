"""Sampling request logs and turning Label Studio votes into preference pairs (pure parts;
the server round trip is tests/integration/test_label_studio.py)."""

import json
from collections import Counter

import pytest

from pipeline.config import FeedbackParams, ParamsError, load_params, parse_params
from pipeline.data.prefs import check_pair
from pipeline.feedback.sample import draw, from_log, sample, stratum
from pipeline.feedback.votes import merge, pairs_of_task, to_pairs

from ..conftest import ROOT

P = FeedbackParams()


def log_record(i, version="3", **extra):
    return {
        "time": f"2026-11-22T02:{i % 60:02d}:00+00:00",
        "request_id": f"req-{i:04d}",
        "model_version": version,
        "prompt": f"问题{i}",
        "response": f"回答{i}",
        "latency_ms": 40.0,
        "prompt_tokens": 10,
        "completion_tokens": 3,
        **extra,
    }


def test_params_carry_a_feedback_section():
    assert load_params(ROOT / "params.yaml").feedback.strata == list(P.strata)


@pytest.mark.parametrize(
    "section, error",
    [
        ({"sampel_size": 5}, "params.yaml:feedback.sampel_size: unknown key"),
        ({"sample_size": 0}, "params.yaml:feedback.sample_size: must be at least 1"),
        ({"low_confidence": 1.5}, "params.yaml:feedback.low_confidence: must be between"),
        ({"strata": "task"}, "params.yaml:feedback.strata: expected a list"),
    ],
)
def test_bad_feedback_params_name_the_key(section, error):
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["feedback"] = section
    with pytest.raises(ParamsError, match=error.replace(".", r"\.")):
        parse_params(raw)


def test_strata_bucket_confidence_and_name_absent_fields_unknown():
    assert stratum(log_record(1, task="classify", confidence=0.2), P) == ("3", "classify", "low")
    assert stratum(log_record(1, confidence=0.9), P) == ("3", "unknown", "ok")
    assert stratum(log_record(1), P) == ("3", "unknown", "unknown")


def test_draw_takes_strata_in_turn_so_rare_ones_are_seen_and_is_deterministic():
    bulk = [log_record(i, "3", task="classify", confidence=0.9) for i in range(200)]
    rare = [log_record(1000 + i, "4", task="title", confidence=0.1) for i in range(3)]
    records = bulk + rare + [dict(bulk[0], request_id="dup")]  # the same prompt again
    got = draw(records, 10, P)
    assert len(got) == 10 and len({r["prompt"] for r in got}) == 10
    assert sum(r["model_version"] == "4" for r in got) == 3  # proportional would give 0
    assert draw(records, 10, P) == got
    other = draw(records, 10, FeedbackParams(seed=1))
    assert {r["request_id"] for r in other} != {r["request_id"] for r in got}


def test_sample_skips_bad_lines_with_their_number_scrubs_pii_and_pairs_both_sides(tmp_path, capsys):
    path = tmp_path / "requests.jsonl"
    good = [log_record(i, task="extract", confidence=0.3) for i in range(6)]
    good[0]["prompt"] = "我的手机13812345678，学号2021012345，截止日期是？"
    lines = [json.dumps(r, ensure_ascii=False) for r in good]
    lines.insert(2, '{"time": "2026-11-22", "request_id": 7')  # truncated
    lines.insert(4, json.dumps({**good[1], "latency_ms": "slow", "request_id": "x"}))
    path.write_text("\n".join(lines) + "\n")

    def challenger(records):
        return [
            ("另一个回答" if r["request_id"] != "req-0005" else r["response"], "local:x")
            for r in records
        ]

    tasks, s = sample([path], 10, P, from_log, challenger)
    err = capsys.readouterr().err
    assert f"{path}:3: invalid JSON" in err and f"{path}:5: `latency_ms`" in err
    assert s["bad_lines"] == 2 and s["requests"] == 6
    assert s["same_answer"] == 1 and len(tasks) == 5  # identical answers compare nothing
    first = next(t for t in tasks if t["feedback_id"] == "req-0000")
    assert first["prompt"] == "我的手机<PHONE>，学号<STUDENT_NUMBER>，截止日期是？"
    assert s["pii_scrubbed"] == {"phone": 1, "student_number": 1}
    for t in tasks:
        models = {t["left_model"], t["right_model"]}
        assert models == {"champion:3", "challenger:local:x"}
        champion_side = "left" if t["left_model"].startswith("champion") else "right"
        assert t[champion_side] == "回答" + t["feedback_id"].removeprefix("req-000")
    # which side the champion is shown on varies, so position carries no signal
    assert len({t["left_model"] for t in tasks}) == 2


def test_identical_answers_are_topped_up_from_the_rest_of_the_draw(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(log_record(i)) + "\n" for i in range(8)))
    echo = {"req-0001", "req-0004", "req-0006"}  # the challenger repeats the logged answer

    def challenger(records):
        return [(r["response"] if r["request_id"] in echo else "别的", "x") for r in records]

    tasks, s = sample([path], 4, P, from_log, challenger)
    assert len(tasks) == 4 and not echo & {t["feedback_id"] for t in tasks}
    assert s["drawn"] == 4 + s["same_answer"]
    tasks, s = sample([path], 8, P, from_log, challenger)  # more than the logs can give
    assert len(tasks) == 5 and s["same_answer"] == 3 and s["drawn"] == 8


def label_result(vote=None, correction=None, rating=None):
    """An annotation's result as the labeling UI submits it for the project's config."""
    result = []
    if vote in ("left", "right"):
        result.append(
            {
                "from_name": "preference",
                "to_name": "left",
                "type": "pairwise",
                "value": {"selected": vote},
            }
        )
    elif vote == "tie":
        result.append(
            {
                "from_name": "equal",
                "to_name": "prompt",
                "type": "choices",
                "value": {"choices": ["Both equal"]},
            }
        )
    if rating:
        result.append(
            {
                "from_name": "rating",
                "to_name": "prompt",
                "type": "rating",
                "value": {"rating": rating},
            }
        )
    if correction:
        result.append(
            {
                "from_name": "correction",
                "to_name": "prompt",
                "type": "textarea",
                "value": {"text": [correction]},
            }
        )
    return result


def task(fid, *votes, corrections=(), ratings=None):
    """An exported Label Studio task with one annotation per vote (left/right/tie/skip)."""
    anns = []
    for who, vote in enumerate(votes, 1):
        result = label_result(vote, dict(corrections).get(who), (ratings or {}).get(who))
        anns.append(
            {
                "completed_by": who,
                "was_cancelled": vote == "skip",
                "result": result,
                "updated_at": f"2026-11-2{who}",
            }
        )
    data = {
        "feedback_id": fid,
        "prompt": "通知属于哪一类？",
        "left": "教务",
        "right": "科研",
        "left_model": "champion:3",
        "right_model": "challenger:4",
    }
    return {"id": 1, "data": data, "annotations": anns}


def test_majority_wins_with_its_agreement_and_ties_are_dropped():
    three = task("a", "right", "right", "left", ratings={1: 4, 2: 5, 3: 1})
    (pair,), outcome = pairs_of_task(three, corrections=False)
    assert outcome == "pair"
    assert pair["chosen"][0]["content"] == "科研" and pair["rejected"][0]["content"] == "教务"
    assert pair["agreement"] == 0.6667 and pair["annotators"] == 3
    assert pair["chosen_model"] == "challenger:4"
    assert pair["rating"] == 4.5  # of the chosen answer, by those who chose it
    check_pair(pair, "x", 1)
    assert pairs_of_task(task("b", "left", "right"), False) == ([], "tie")
    assert pairs_of_task(task("c", "tie", "tie", "left"), False) == ([], "tie")
    assert pairs_of_task(task("d", "skip"), False) == ([], "unannotated")
    (one,), _ = pairs_of_task(task("e", "left", "skip"), False)  # a skip is no vote
    assert one["agreement"] == 1.0 and one["annotators"] == 1


def test_a_correction_becomes_a_pair_over_the_answer_it_corrects():
    pairs, _ = pairs_of_task(task("a", "left", corrections=[(1, "讲座活动")]), corrections=True)
    assert [p["id"] for p in pairs] == ["a", "a:correction:1"]
    assert pairs[1]["chosen"][0]["content"] == "讲座活动"
    assert pairs[1]["rejected"][0]["content"] == "教务"
    assert pairs_of_task(task("a", "left", corrections=[(1, "x")]), False)[0][1:] == []
    only, outcome = pairs_of_task(task("n", None, corrections=[(1, "讲座活动")]), True)
    assert outcome == "no_choice" and len(only) == 2  # a correction needs no choice
    tie, outcome = pairs_of_task(task("t", "tie", corrections=[(1, "讲座活动")]), True)
    assert outcome == "tie" and [p["id"] for p in tie] == [
        "t:correction:1:left",
        "t:correction:1:right",
    ]


def test_merge_is_stable_dedups_by_id_and_a_second_pull_changes_nothing():
    existing = [{"id": "s1", "source": "sample"}, {"id": "s2", "source": "sample"}]
    tasks = [task("b", "left"), task("a", "right", "right"), task("c", "left", "right"), task("d")]
    pulled, counts, judged = to_pairs(tasks, corrections=True)
    assert counts == Counter(pair=2, tie=1, unannotated=1, correction=0)
    once, change = merge(existing, pulled, judged)
    assert [p["id"] for p in once] == ["s1", "s2", "a", "b"]
    assert change == {"new": 2, "updated": 0, "removed": 0, "total": 4}
    twice, change = merge(once, *to_pairs(tasks, True)[::2])
    assert twice == once and change["new"] == change["updated"] == change["removed"] == 0
    # a later vote turns `b` into a tie: its pair goes, in place order otherwise kept
    tasks[0] = task("b", "left", "right")
    again, change = merge(once, *to_pairs(tasks, True)[::2])
    assert [p["id"] for p in again] == ["s1", "s2", "a"] and change["removed"] == 1
