from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.evaluate.behaviour import PERTURBATIONS, invariance_cases, perturb


def test_perturbations_change_the_text_but_not_the_task():
    record = task_records(generate(1)[0], ["classify"])[0]
    for name in PERTURBATIONS:
        changed = perturb(record, name)
        assert changed["prompt"][0]["content"] != record["prompt"][0]["content"]
        assert changed["completion"] == record["completion"]
        assert changed["id"] == f"{record['id']}~{name}"
    assert (
        record["prompt"][0]["content"]
        == task_records(generate(1)[0], ["classify"])[0]["prompt"][0]["content"]
    )  # the original is untouched


def test_invariance_cases_cover_classify_records_only():
    records = [r for n in generate(3) for r in task_records(n, ["classify", "title"])]
    cases = invariance_cases(records)
    assert len(cases) == 3 * len(PERTURBATIONS)
    assert all(original["task"] == "classify" for original, _ in cases)
