import json
import math
import random

import pytest

from pipeline.config import GateParams
from pipeline.evaluate.gate import decide, main

NO_CHECKS = {"min": {}, "max": {}, "beat_base": [], "beat_baseline": [], "no_regression": []}


def gate(**given) -> GateParams:
    """Gate params with only the checks a test names (the shipped ones are params.yaml's)."""
    return GateParams(**{**NO_CHECKS, "tolerance": 0.0, **given})


# params.yaml text with only the checks a test names
NO_OTHER_CHECKS = "  beat_base: []\n  beat_baseline: []\n  no_regression: []\n"

EVAL = {
    "classify": {"accuracy": 0.9},
    "extract": {"exact_match": 0.4},
    "base": {"classify": {"accuracy": 0.1}, "extract": {"exact_match": 0.0}},
    "latency": {"p95_ms": 120.0},
}
PARAMS = gate(
    min={"classify.accuracy": 0.85},
    max={"latency.p95_ms": 500.0},
    beat_base=["classify.accuracy", "extract.exact_match"],
)
VALID = {"passed": True}


def by_name(verdict):
    return {c["name"]: c for c in verdict["checks"]}


def test_passes_when_every_check_passes():
    verdict = decide(PARAMS, EVAL, VALID)
    assert verdict["passed"]
    checks = by_name(verdict)
    assert checks["classify.accuracy"] == {
        "name": "classify.accuracy",
        "op": ">=",
        "value": 0.9,
        "bound": 0.85,
        "passed": True,
    }
    assert checks["extract.exact_match beats base"]["bound"] == 0.0
    assert checks["latency.p95_ms"]["op"] == "<="
    assert checks["data validation passed"]["passed"]


def test_a_threshold_above_the_model_fails_and_names_the_check():
    p = gate(min={"classify.accuracy": 0.95})
    verdict = decide(p, EVAL, VALID)
    assert not verdict["passed"]
    assert not by_name(verdict)["classify.accuracy"]["passed"]


def test_not_beating_the_base_fails():
    metrics = json.loads(json.dumps(EVAL))
    metrics["base"]["extract"]["exact_match"] = 0.4  # a tie is not an improvement
    assert not by_name(decide(PARAMS, metrics, VALID))["extract.exact_match beats base"]["passed"]


def test_missing_metric_fails_closed_and_says_which():
    p = gate(min={"title.rouge_l": 0.3})
    check = by_name(decide(p, EVAL, VALID))["title.rouge_l"]
    assert not check["passed"] and check["value"] is None
    assert "missing metric 'title.rouge_l'" in check["error"]


def test_unreadable_eval_fails_every_check_that_needs_it():
    verdict = decide(PARAMS, None, VALID, {"eval": "invalid JSON: Expecting value"})
    failed = [c for c in verdict["checks"] if not c["passed"]]
    assert len(failed) == 4
    assert all("invalid JSON" in c["error"] for c in failed)


def test_nan_is_not_a_pass():
    metrics = json.loads(json.dumps(EVAL))
    metrics["classify"]["accuracy"] = math.nan
    assert not by_name(decide(PARAMS, metrics, VALID))["classify.accuracy"]["passed"]


def test_failed_or_missing_validation_fails():
    assert not by_name(decide(PARAMS, EVAL, {"passed": False}))["data validation passed"]["passed"]
    assert not decide(PARAMS, EVAL, None)["passed"]
    assert decide(gate(min=PARAMS.min, require_validation=False), EVAL, None)["passed"]


def test_a_gate_with_no_checks_fails():
    assert not decide(gate(require_validation=False), EVAL, None)["passed"]


def test_main_writes_the_verdict_and_exits_1_on_failure(in_tmp):
    (in_tmp / "params.yaml").write_text(
        "gate:\n  min:\n    classify.accuracy: 0.99\n" + NO_OTHER_CHECKS
    )
    (in_tmp / "metrics").mkdir()
    (in_tmp / "metrics/eval.json").write_text(json.dumps(EVAL))
    (in_tmp / "metrics/validate.json").write_text('{"passed": true}')
    assert main() == 1
    verdict = json.loads((in_tmp / "metrics/gate.json").read_text())
    assert verdict["passed"] is False
    assert [c["name"] for c in verdict["checks"] if not c["passed"]] == ["classify.accuracy"]


def test_main_with_no_eval_file_fails_closed(in_tmp):
    (in_tmp / "params.yaml").write_text(
        "gate:\n  min:\n    classify.accuracy: 0.5\n" + NO_OTHER_CHECKS
    )
    assert main() == 1
    check = json.loads((in_tmp / "metrics/gate.json").read_text())["checks"][0]
    assert "metrics/eval.json unreadable: file not found" in check["error"]


def champion_rows(n=200, wrong_every=6):
    return [
        {
            "id": f"c{i}",
            "task": "classify",
            "reference": "教务",
            "prediction": "科研" if i % wrong_every == 0 else "教务",
        }
        for i in range(n)
    ]


REGRESSION = gate(no_regression=["classify.accuracy"], tolerance=0.02, require_validation=False)


@pytest.mark.parametrize("seed", range(5))
def test_noise_level_change_against_the_champion_passes(seed):
    champion = champion_rows()
    candidate = [dict(r) for r in champion]
    for i in random.Random(seed).sample(range(200), 4):  # a few random flips
        candidate[i]["prediction"] = "教务" if candidate[i]["prediction"] == "科研" else "科研"
    check = decide(REGRESSION, EVAL, None, None, candidate, champion)["checks"][0]
    assert check["passed"], check
    assert check["value"] >= -0.02


def test_confirmed_regression_against_the_champion_fails():
    champion = champion_rows()
    candidate = [r | {"prediction": "科研"} if i % 4 == 1 else r for i, r in enumerate(champion)]
    verdict = decide(REGRESSION, EVAL, None, None, candidate, champion)
    check = verdict["checks"][0]
    assert not verdict["passed"]
    assert check["name"] == "classify.accuracy vs champion"
    assert check["interval"][1] < 0 and check["value"] == check["interval"][1]


def test_no_champion_yet_passes_and_says_so():
    check = decide(REGRESSION, EVAL, None, None, champion_rows(), None)["checks"][0]
    assert check["passed"] and "no champion yet" in check["note"]


def test_unreadable_champion_or_unknown_metric_fails():
    verdict = decide(
        REGRESSION,
        EVAL,
        None,
        {"champion": "champion/predictions.jsonl:3: invalid"},
        champion_rows(),
        None,
    )
    assert not verdict["passed"] and "invalid" in verdict["checks"][0]["error"]
    unknown = gate(no_regression=["classify.f1"], require_validation=False)
    check = decide(unknown, EVAL, None, None, champion_rows(), champion_rows())["checks"][0]
    assert not check["passed"] and "'f1' is no metric" in check["error"]


def helpdesk_rows(right: int, baseline_right: int, n: int = 60) -> list[dict]:
    """An added classification dataset: the first `right` answers right, the baseline's
    first `baseline_right`."""
    labels = ["教务处", "图书馆", "后勤服务中心"]
    return [
        {
            "id": f"h{i}",
            "task": "instruct",
            "group": "sources.helpdesk",
            "source": "helpdesk",
            "reference": labels[i % 3],
            "prediction": labels[i % 3] if i < right else labels[(i + 1) % 3],
            "baseline_prediction": labels[i % 3] if i < baseline_right else "",
        }
        for i in range(n)
    ]


BASELINE = gate(
    beat_baseline=["sources.helpdesk.accuracy", "sources.helpdesk.macro_f1"],
    require_validation=False,
    bootstrap_samples=300,
)


def test_beating_the_baseline_clearly_passes_with_its_interval():
    verdict = decide(BASELINE, EVAL, None, None, helpdesk_rows(55, 30))
    checks = by_name(verdict)
    assert verdict["passed"], checks
    accuracy = checks["sources.helpdesk.accuracy beats baseline"]
    assert accuracy["delta"] == pytest.approx(25 / 60, abs=1e-4)
    assert accuracy["baseline"] == 0.5 and accuracy["n"] == 60
    assert 0 < accuracy["interval"][0] == accuracy["value"] < accuracy["interval"][1]
    assert checks["sources.helpdesk.macro_f1 beats baseline"]["passed"]


def test_a_tie_or_a_small_lead_over_the_baseline_is_not_beating_it():
    # fine-tuned 0.708 vs baseline 0.698: ahead, but not by more than the noise
    verdict = decide(BASELINE, EVAL, None, None, helpdesk_rows(43, 42))
    check = by_name(verdict)["sources.helpdesk.accuracy beats baseline"]
    assert not verdict["passed"] and not check["passed"]
    assert check["interval"][0] <= 0 < check["interval"][1]
    worse = by_name(decide(BASELINE, EVAL, None, None, helpdesk_rows(20, 50)))
    assert worse["sources.helpdesk.accuracy beats baseline"]["interval"][1] < 0


def test_beating_the_baseline_fails_closed_without_baseline_answers_or_predictions():
    rows = [
        {k: v for k, v in r.items() if k != "baseline_prediction"} for r in helpdesk_rows(55, 30)
    ]
    check = decide(BASELINE, EVAL, None, None, rows)["checks"][0]
    assert not check["passed"] and "rerun `dvc repro evaluate`" in check["error"]
    check = decide(BASELINE, EVAL, None, {"predictions": "file not found"}, None)["checks"][0]
    assert not check["passed"] and "file not found" in check["error"]
