import pytest

from pipeline.evaluate.scoring import bleu, exact_match, percentile, rouge_l, task_metrics


def test_exact_match_ignores_surrounding_space_and_a_final_full_stop():
    assert exact_match([" 教务。", "科研"], ["教务", "后勤"]) == 0.5


def test_rouge_l_scores_chinese_by_character():
    assert rouge_l(["关于选课的通知"], ["关于选课的通知"]) == pytest.approx(1.0)
    assert rouge_l(["天地玄黄"], ["关于选课的通知"]) == 0.0
    partial = rouge_l(["关于考试的通知"], ["关于选课的通知"])
    assert 0.5 < partial < 1.0


def test_bleu_rewards_the_right_title():
    refs = ["关于举办秋季运动会的通知", "校园卡系统升级的通知"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["关于举办运动会的通知", "校园卡升级通知"], refs) > bleu(["停水", "讲座"], refs)


def test_task_metrics_shapes():
    assert set(task_metrics("classify", ["a"], ["a"])) == {"n", "accuracy"}
    assert set(task_metrics("extract", ["a"], ["a"])) == {"n", "exact_match"}
    assert set(task_metrics("title", ["a"], ["a"])) == {"n", "rouge_l", "bleu", "chrf"}


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0
