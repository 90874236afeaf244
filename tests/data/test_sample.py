"""Expectations on the shipped sample data (data/raw/notices.jsonl)."""

from collections import Counter, defaultdict

from pipeline.config import PrepareParams, ValidateParams
from pipeline.data.prepare import clean_notices, prepare
from pipeline.data.schema import CATEGORIES
from pipeline.data.synthetic import KINDS, generate
from pipeline.data.validate import describe_failure, validate
from pipeline.io import read_jsonl, write_jsonl

from ..conftest import ROOT

SHIPPED = ROOT / "data/raw/notices.jsonl"


def test_shipped_sample_is_what_the_generator_makes():
    assert read_jsonl(SHIPPED) == generate(), "run `llmops data sample` and commit the result"


def test_size_and_categories():
    notices = read_jsonl(SHIPPED)
    assert len(notices) >= 300
    counts = Counter(n["category"] for n in notices)
    assert set(counts) == set(CATEGORIES) and len(CATEGORIES) >= 6
    assert min(counts.values()) >= 40


def test_every_notice_has_its_fields_and_facts():
    for n in read_jsonl(SHIPPED):
        assert {"id", "title", "department", "publish_date", "body", "category"} <= set(n)
        assert n["deadline"] or n["location"]


def test_the_sample_passes_every_expectation(tmp_path):
    """The shipped notices, prepared as the prepare stage does, pass the whole GX suite
    with the shipped params."""
    p = PrepareParams()
    train, evals, _ = prepare(p, clean_notices(p, read_jsonl(SHIPPED))[0])
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "eval.jsonl", evals)
    prepared = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    report = validate([SHIPPED], *prepared, ValidateParams(), p)
    failures = [describe_failure(o) for o in report["expectations"] if not o["success"]]
    assert failures == []
    assert report["passed"] and report["expectations_evaluated"] >= 12


def test_several_kinds_of_notice_per_category():
    kinds = Counter(k.category for k in KINDS)
    assert all(kinds[c] >= 5 for c in CATEGORIES), kinds


def test_department_alone_does_not_give_the_category_away():
    by_department = defaultdict(set)
    for n in read_jsonl(SHIPPED):
        by_department[n["department"]].add(n["category"])
    ambiguous = [d for d, cats in by_department.items() if len(cats) > 1]
    assert len(ambiguous) >= 5, "departments should issue notices of several categories"


def test_shared_words_appear_across_categories():
    notices = read_jsonl(SHIPPED)
    for word in ("报名", "讲座", "申请"):
        cats = {n["category"] for n in notices if word in n["title"] + n["body"]}
        assert len(cats) >= 3, (word, cats)


def test_bodies_are_varied():
    notices = read_jsonl(SHIPPED)
    assert len({n["body"] for n in notices}) == len(notices)
    assert len({n["title"] for n in notices}) >= 100
