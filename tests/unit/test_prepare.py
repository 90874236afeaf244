from pipeline.config import PrepareParams
from pipeline.data.prepare import prepare, pretrain_texts
from pipeline.data.records import split_of, task_records
from pipeline.data.synthetic import generate


def test_split_is_a_pure_function_of_the_id():
    ids = [f"notice-{i:04d}" for i in range(2000)]
    first = [split_of(i, "salt", 0.2) for i in ids]
    assert first == [split_of(i, "salt", 0.2) for i in reversed(ids)][::-1]
    share = first.count("eval") / len(ids)
    assert 0.17 < share < 0.23
    assert first != [split_of(i, "other-salt", 0.2) for i in ids]


def test_adding_notices_never_moves_an_existing_one():
    p = PrepareParams()
    before = generate(200)
    after = generate(400)  # same seed: the first 200 are the same notices, 200 new ones
    assert after[:200] == before
    split = lambda notices: {r["notice_id"]: r["id"] for r in prepare(p, notices)[1]}  # noqa: E731
    eval_before, eval_after = split(before), split(after)
    assert set(eval_before) <= set(eval_after)
    train_before = {r["notice_id"] for r in prepare(p, before)[0]}
    assert not train_before & set(eval_after)


def test_a_notice_yields_one_record_per_task_and_fact():
    n = generate(1)[0] | {"deadline": "2026年3月1日", "location": "大礼堂"}
    records = task_records(n, ["classify", "extract", "title"])
    assert [r["id"].split(":", 1)[1] for r in records] == [
        "classify",
        "extract:deadline",
        "extract:location",
        "title",
    ]
    assert records[0]["completion"][0]["content"] == n["category"]
    assert records[1]["completion"][0]["content"] == "2026年3月1日"
    assert records[3]["completion"][0]["content"] == n["title"]
    assert n["title"] not in records[3]["prompt"][0]["content"]  # the title task hides the title
    without_deadline = task_records(n | {"deadline": None}, ["extract"])
    assert [r["id"].rsplit(":", 1)[1] for r in without_deadline] == ["location"]


def test_task_selection_follows_params():
    n = generate(1)[0]
    assert {r["task"] for r in task_records(n, ["title"])} == {"title"}


def test_pretraining_text_comes_from_train_notices_only():
    notices = generate(120)
    train, evals, pretrain = prepare(PrepareParams(), notices)
    eval_bodies = {n["body"] for n in notices if n["id"] in {r["notice_id"] for r in evals}}
    corpus = "\n".join(row.get("text") or row["prompt"][0]["content"] for row in pretrain)
    assert eval_bodies and not any(body in corpus for body in eval_bodies)
    assert len(pretrain) == 3 * len({r["notice_id"] for r in train})


def test_pretraining_never_states_a_category_label():
    n = generate(1)[0]
    rows = pretrain_texts(n)
    assert all("类别" not in (r.get("text") or r["prompt"][0]["content"]) for r in rows)


def test_prepare_is_deterministic():
    notices = generate(60)
    assert prepare(PrepareParams(), notices) == prepare(PrepareParams(), notices)
