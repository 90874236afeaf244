"""`llmops report` in a real git + DVC repository: two commits, one slice better, one worse."""

import json

import pytest
import yaml

from ..conftest import ROOT, run

pytestmark = pytest.mark.integration

RIGHT, WRONG = "教务", "科研"


def predictions(wrong_in: dict[str, int]) -> list[dict]:
    """40 classify examples in each of two categories; `wrong_in[c]` of category c wrong."""
    rows = []
    for category in ("后勤", "讲座活动"):
        for i in range(40):
            ok = i >= wrong_in.get(category, 0)
            rows.append(
                {
                    "id": f"{category}-{i}:classify",
                    "task": "classify",
                    "category": category,
                    "source": "sample",
                    "length": "<110",
                    "reference": RIGHT,
                    "prediction": RIGHT if ok else WRONG,
                    "base_prediction": "",
                    "correct": ok,
                }
            )
    return rows


def write_state(repo, rows, lr):
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "plots").mkdir(exist_ok=True)
    (repo / "metrics/predictions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    accuracy = sum(r["correct"] for r in rows) / len(rows)
    (repo / "metrics/eval.json").write_text(json.dumps({"classify": {"accuracy": accuracy}}))
    (repo / "metrics/gate.json").write_text(
        json.dumps(
            {
                "passed": True,
                "checks": [
                    {
                        "name": "classify.accuracy",
                        "op": ">=",
                        "value": accuracy,
                        "bound": 0.5,
                        "passed": True,
                    }
                ],
            }
        )
    )
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["learning_rate"] = lr
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "plots/train_loss.csv").write_text("step,loss\n10,3.0\n20,2.0\n30,1.5\n")


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    run(["git", "init", "-q", "-b", "main"], cwd=repo)
    run(["dvc", "init", "-q"], cwd=repo)
    (repo / "dvc.yaml").write_text("metrics:\n  - metrics/eval.json\nparams:\n  - params.yaml\n")
    write_state(repo, predictions({"后勤": 10, "讲座活动": 4}), 0.001)
    run(["git", "add", "-A"], cwd=repo)
    run([*git, "commit", "-qm", "champion"], cwd=repo)
    # the change: 后勤 much better (10 wrong -> 0), 讲座活动 much worse (4 wrong -> 20)
    write_state(repo, predictions({"后勤": 0, "讲座活动": 20}), 0.002)
    run(["git", "add", "-A"], cwd=repo)
    run([*git, "commit", "-qm", "change"], cwd=repo)
    return repo


def test_report_names_the_improved_and_the_regressed_slice_with_intervals(repo):
    run(["llmops", "report", "--base", "HEAD~1", "--out", "out"], cwd=repo)
    report = (repo / "out/report.md").read_text()
    assert report.startswith("## ✅ Gate passed")
    lines = report.splitlines()
    worse = next(line for line in lines if "category=讲座活动" in line)
    better = next(line for line in lines if "category=后勤" in line)
    assert "regression" in worse and "**-0.400**" in worse
    assert "improvement" in better and "+0.250" in better
    for line in (worse, better):
        assert line.count("[") == 1 and line.count(", ") >= 1  # the interval
    # regressions are listed before improvements
    assert lines.index(worse) < lines.index(better)


def test_report_lists_the_changed_examples_right_to_wrong_first(repo):
    run(["llmops", "report", "--base", "HEAD~1", "--out", "out"], cwd=repo)
    report = (repo / "out/report.md").read_text()
    assert "## Changed examples: 16 right → wrong, 10 wrong → right" in report
    assert report.index("### Right → wrong") < report.index("### Wrong → right")
    assert "| 讲座活动-4:classify | classify | 教务 | 教务 | 科研 |" in report
    assert "| 后勤-0:classify | classify | 教务 | 科研 | 教务 |" in report


def test_report_shows_metric_and_params_diffs_and_plots(repo):
    run(["llmops", "report", "--base", "HEAD~1", "--out", "out"], cwd=repo)
    report = (repo / "out/report.md").read_text()
    assert "## Metrics vs `HEAD~1`" in report and "classify.accuracy" in report
    assert "train.learning_rate" in report and "0.002" in report
    # the plots travel inside the comment, nothing is linked or uploaded
    assert "![" not in report and "](" not in report
    chart = report[report.index("```mermaid") :]
    assert 'x-axis "step" [10, 20, 30]' in chart
    assert "    line [3.000, 2.000, 1.500]\n    line [3.000, 2.000, 1.500]" in chart
    assert "| 讲座活动 |" not in report  # the confusion matrix is over labels, not categories
    assert "| actual \\ predicted | 教务 | 科研 |" in report
    assert "| 教务 | **60** | 20 |" in report  # 80 examples: 60 right, 20 answered 科研
    for name in ("loss.png", "confusion-classify.png", "slices.png"):  # PNGs stay local
        assert (repo / "out" / name).read_bytes()[:4] == b"\x89PNG"


def test_report_on_a_first_run_and_a_failed_gate(repo):
    gate = {
        "passed": False,
        "checks": [
            {"name": "classify.accuracy", "op": ">=", "value": 0.6, "bound": 0.85, "passed": False}
        ],
    }
    (repo / "metrics/gate.json").write_text(json.dumps(gate))
    # a base ref with no metrics at all: the root commit of an orphan branch
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    empty_tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    empty = run([*git, "commit-tree", "-m", "empty", empty_tree], cwd=repo).stdout.strip()
    run(["llmops", "report", "--base", empty, "--out", "out"], cwd=repo)
    report = (repo / "out/report.md").read_text()
    assert report.startswith("## ❌ Gate failed")
    assert "| classify.accuracy | 0.6 | >= | 0.85 |" in report
    assert f"No predictions at `{empty}` to compare with (first run)" in report
    assert "## Changed examples\n\n_No predictions at the base ref (first run)._" in report


def test_report_refuses_an_unknown_ref(repo):
    proc = run(["llmops", "report", "--base", "no-such-ref"], cwd=repo, check=False)
    assert proc.returncode == 2
    assert "--base no-such-ref: not a commit here" in proc.stderr
