"""The cheap baselines: fitted on the group's train records, scored on its eval records."""

from pipeline.evaluate.baseline import (
    LOGISTIC,
    MAJORITY,
    NEAREST,
    baseline_predictions,
    baselines,
)
from pipeline.evaluate.evaluate import answer_kinds

OFFICES = {
    "图书馆": ["借书", "还书", "续借", "座位预约", "研讨室"],
    "后勤服务中心": ["热水", "空调", "门锁", "漏水", "灯管"],
    "信息化中心": ["校园网", "邮箱", "密码", "VPN", "Wi-Fi"],
}


def record(i: int, task: str, question: str, answer: str, source: str = "helpdesk") -> dict:
    return {
        "id": f"{source}-{i}:{task}",
        "task": task,
        "source": source,
        "category": answer,
        "prompt": [{"role": "user", "content": f"这条咨询转给哪个部门？{question}"}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def helpdesk(start: int, per_topic: int) -> list[dict]:
    return [
        record(start + i * 100 + j, "instruct", f"请问{topic}的问题{j}找谁", office)
        for i, (office, topics) in enumerate(OFFICES.items())
        for topic in topics
        for j in range(per_topic)
    ]


def test_a_label_set_gets_logistic_regression_that_reads_the_prompt():
    train, evals = helpdesk(0, 2), helpdesk(10_000, 1)
    kinds = answer_kinds(train, evals, max_labels=20)
    assert kinds == {"sources.helpdesk": "label"}
    (b,) = baselines(train, evals, kinds).values()
    assert b.method == LOGISTIC
    assert b.predictions == [r["completion"][0]["content"] for r in evals]


def test_free_form_answers_get_the_nearest_training_answer():
    train = [
        record(1, "instruct", "把苹果翻译成英文", "apple", "qa"),
        record(2, "instruct", "把香蕉翻译成英文", "banana", "qa"),
        record(3, "instruct", "写一首关于秋天的诗", "秋风起，落叶黄。", "qa"),
    ]
    evals = [
        record(4, "instruct", "把苹果翻译成英文吧", "apple", "qa"),
        record(5, "instruct", "写一首关于秋天的短诗", "天高云淡。", "qa"),
    ]
    kinds = answer_kinds(train, evals, max_labels=20)
    assert kinds == {"sources.qa": "free"}
    (b,) = baselines(train, evals, kinds).values()
    assert (b.method, b.predictions) == (NEAREST, ["apple", "秋风起，落叶黄。"])


def test_every_group_is_fitted_on_its_own_rows_and_answers_stay_aligned():
    train = helpdesk(0, 2) + [
        record(i, "title", f"通知{i}", f"标题{i}", "sample") for i in range(5)
    ]
    evals = [record(50, "title", "通知3", "标题3", "sample"), *helpdesk(10_000, 1)]
    kinds = answer_kinds(train, evals, max_labels=20)
    assert kinds == {"sources.helpdesk": "label", "title": "title"}
    predictions, methods = baseline_predictions(train, evals, kinds)
    assert methods == {"sources.helpdesk": LOGISTIC, "title": NEAREST}
    assert predictions[0] == "标题3"  # the title group never answers with an office
    assert predictions[1:] == [r["completion"][0]["content"] for r in evals[1:]]


def test_one_label_seen_in_training_is_the_majority_answer():
    train = [record(i, "classify", f"通知{i}", "教务") for i in range(4)]
    (b,) = baselines(
        train, [record(9, "classify", "通知9", "科研")], {"classify": "label"}
    ).values()
    assert (b.method, b.predictions) == (MAJORITY, ["教务"])


def test_baselines_are_deterministic():
    train, evals = helpdesk(0, 2), helpdesk(10_000, 1)
    kinds = answer_kinds(train, evals, max_labels=20)
    first = baseline_predictions(train, evals, kinds)
    assert baseline_predictions(train, evals, kinds) == first
