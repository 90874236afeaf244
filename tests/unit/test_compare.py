import pytest

from pipeline.evaluate.compare import bootstrap_delta, slice_deltas


def rows(correct: list[bool], task: str = "classify", category: str = "教务") -> list[dict]:
    return [
        {
            "id": f"{task}-{i}",
            "task": task,
            "category": category,
            "reference": "教务",
            "prediction": "教务" if ok else "科研",
            "correct": ok,
        }
        for i, ok in enumerate(correct)
    ]


def flip(correct: list[bool], indices) -> list[bool]:
    out = list(correct)
    for i in indices:
        out[i] = not out[i]
    return out


BASE = [i % 7 != 0 for i in range(210)]  # 180 of 210 right (0.857)


def test_identical_evaluations_have_a_zero_interval():
    d = bootstrap_delta("classify.accuracy", rows(BASE), rows(BASE))
    assert (d.delta, d.low, d.high, d.n) == (0.0, 0.0, 0.0, 210)


def test_flips_both_ways_are_noise():
    right = [i for i in range(210) if BASE[i]]
    wrong = [i for i in range(210) if not BASE[i]]
    noisy = flip(BASE, right[:3] + wrong[:3])
    d = bootstrap_delta("classify.accuracy", rows(noisy), rows(BASE))
    assert d.delta == 0 and d.low < 0 < d.high
    assert not d.regressed and not d.improved


def test_a_few_flips_one_way_are_small_but_consistent():
    # Paired resampling sees four right -> wrong flips and nothing else as a consistent (if
    # small) loss: the interval can exclude zero. The gate's tolerance is what lets such
    # noise through (see test_gate.py).
    noisy = flip(BASE, [i for i in range(210) if BASE[i]][:4])
    d = bootstrap_delta("classify.accuracy", rows(noisy), rows(BASE))
    assert d.delta == pytest.approx(-4 / 210, abs=1e-4)
    assert -0.02 < d.high <= 0


def test_a_real_regression_has_its_whole_interval_below_zero():
    worse = flip(BASE, [i for i in range(210) if BASE[i]][:30])
    d = bootstrap_delta("classify.accuracy", rows(worse), rows(BASE))
    assert d.delta == pytest.approx(-30 / 210, abs=1e-4)
    assert d.regressed and d.high < 0


def test_only_shared_examples_are_paired():
    d = bootstrap_delta("classify.accuracy", rows(BASE)[:50], rows(BASE))
    assert d.n == 50
    assert bootstrap_delta("classify.accuracy", rows(BASE, task="extract"), rows(BASE)) is None


def test_corpus_metrics_are_resampled_too():
    title = [
        {
            "id": f"t{i}",
            "task": "title",
            "reference": "关于举办秋季运动会的通知",
            "prediction": "关于举办秋季运动会的通知",
        }
        for i in range(20)
    ]
    worse = [r | {"prediction": "停水"} for r in title]
    d = bootstrap_delta("title.bleu", worse, title, samples=200)
    assert d.delta < -50 and d.high < 0


def test_slices_find_the_slice_that_moved():
    a = rows(BASE[:105], category="教务") + [
        r | {"id": f"k{i}"} for i, r in enumerate(rows(BASE[:105], category="科研"))
    ]
    b = [r | {"prediction": "科研", "correct": False} if r["category"] == "科研" else r for r in a]
    deltas = {d["slice"]: d for d in slice_deltas(b, a, ["category"])}
    assert deltas["category=科研"]["high"] < 0
    assert deltas["category=教务"]["delta"] == 0
