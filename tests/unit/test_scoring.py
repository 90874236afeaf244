import pytest

from pipeline.evaluate.scoring import (
    FREE,
    LABEL,
    bleu,
    class_table,
    exact_match,
    group_entry,
    group_of,
    kind_metrics,
    kind_of,
    kinds_of,
    label_set,
    macro_f1,
    percentile,
    rouge_l,
    split_metric,
)


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


def test_each_kind_of_answer_has_its_metrics():
    assert set(kind_metrics(LABEL, ["a"], ["a"])) == {"n", "accuracy", "macro_f1"}
    assert set(kind_metrics("extract", ["a"], ["a"])) == {"n", "exact_match"}
    assert set(kind_metrics("title", ["a"], ["a"])) == {"n", "rouge_l", "bleu", "chrf"}
    assert set(kind_metrics(FREE, ["a"], ["a"])) == {"n", "rouge_l", "exact_match", "chrf"}
    for kind in (LABEL, "extract", "title", FREE):
        assert kind_of(kind_metrics(kind, ["a"], ["a"])) == kind


def test_macro_f1_weighs_a_rare_class_as_much_as_a_common_one():
    refs = ["甲"] * 18 + ["乙"] * 2
    always_common = ["甲"] * 20
    assert exact_match(always_common, refs) == 0.9
    # 甲: precision 0.9, recall 1 -> F1 0.947; 乙: never predicted -> F1 0
    assert macro_f1(always_common, refs) == pytest.approx((2 * 0.9 / 1.9 + 0.0) / 2)
    assert macro_f1(refs, refs) == 1.0


def test_class_table_counts_an_answer_outside_the_labels_against_recall_only():
    table = class_table(["甲", "乙。", "胡说", "乙"], ["甲", "乙", "乙", "乙"])
    assert set(table) == {"甲", "乙"}  # the references' labels; "胡说" is no class
    assert table["乙"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "n": 3})
    assert table["甲"]["f1"] == 1.0 and table["甲"]["n"] == 1


def test_a_small_label_set_is_classification_and_free_text_is_not():
    assert label_set(["教务处", "图书馆", "教务处。", "图书馆"], max_labels=20) == [
        "图书馆",
        "教务处",
    ]
    assert label_set(["a", "b", "a", "b", "c", "c"], max_labels=2) is None  # too many labels
    assert label_set(["a", "a", "b"], max_labels=20) is None  # a label seen once: free text
    assert label_set(["a", "a", "a"], max_labels=20) is None  # one label is no choice
    assert label_set([f"answer {i}" for i in range(50)], max_labels=20) is None


def test_groups_keep_every_added_dataset_apart():
    assert group_of({"task": "classify", "source": "sample"}) == "classify"
    assert group_of({"task": "instruct", "source": "news.v2"}) == "sources.news.v2"
    assert group_of({"task": "instruct"}) == "sources.unknown"
    assert split_metric("sources.news.v2.macro_f1") == ("sources.news.v2", "macro_f1")
    metrics = {
        "classify": {"accuracy": 1.0, "macro_f1": 1.0},
        "sources": {"news.v2": {"rouge_l": 0.5, "exact_match": 0.1, "chrf": 30.0}},
    }
    assert group_entry(metrics, "sources.news.v2")["rouge_l"] == 0.5
    assert kinds_of(metrics) == {"classify": LABEL, "sources.news.v2": FREE}


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0
