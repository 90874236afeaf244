"""The whole pipeline, for real: `dvc repro` in a fresh copy of the repository (shared by the
tests here through the session fixture `workspace`)."""

import json

import pytest
import yaml

from ..conftest import run

pytestmark = pytest.mark.e2e


def load(ws, rel):
    return json.loads((ws / rel).read_text())


def test_repro_writes_every_output(workspace):
    for rel in (
        "data/prepared/train.jsonl",
        "data/prepared/eval.jsonl",
        "models/base/config.json",
        "models/base/tokenizer.json",
        "metrics/train.json",
        "metrics/dpo.json",
        "metrics/eval.json",
        "metrics/gate.json",
        "metrics/validate.json",
        "metrics/predictions.jsonl",
        "plots/train_loss.csv",
        "plots/confusion/classify.csv",
        "plots/confusion/sources.helpdesk.csv",
        "dvc.lock",
    ):
        assert (workspace / rel).exists(), rel
    assert any((workspace / "models/adapter").iterdir())
    curve = (workspace / "plots/train_loss.csv").read_text().splitlines()
    assert curve[0] == "step,loss" and len(curve) > 10


def test_eval_metrics_have_the_documented_shape(workspace):
    metrics = load(workspace, "metrics/eval.json")
    for tree in (metrics, metrics["base"]):
        assert set(tree["classify"]) >= {"accuracy", "n"}
        assert set(tree["extract"]) >= {"exact_match", "n"}
        assert set(tree["title"]) >= {"rouge_l", "bleu", "n"}
    assert set(metrics["latency"]) >= {"p50_ms", "p95_ms", "tokens_per_s"}
    assert metrics["latency"]["p50_ms"] <= metrics["latency"]["p95_ms"]
    for task in ("classify", "extract", "title"):
        # fine-tuning makes the reference answers far more likely
        assert 1 <= metrics[task]["perplexity"] < metrics["base"][task]["perplexity"]
        assert set(metrics["slices"][task]) == {"category", "length", "source"}
    assert len(metrics["slices"]["classify"]["category"]) == 6
    # the sample's added classification dataset is scored on its own, as classification
    helpdesk = metrics["sources"]["helpdesk"]
    assert set(helpdesk) == {"n", "accuracy", "macro_f1", "perplexity", "classes"}
    assert set(helpdesk["classes"]) == {"教务处", "学生处", "后勤服务中心", "图书馆", "信息化中心"}
    assert sum(c["n"] for c in helpdesk["classes"].values()) == helpdesk["n"]
    assert "instruct" not in metrics  # datasets are never pooled into one number
    # every group has a baseline row, fitted on the same split
    baseline = metrics["baseline"]
    assert baseline["classify"]["method"] == "tfidf-logistic-regression"
    assert baseline["sources"]["helpdesk"]["method"] == "tfidf-logistic-regression"
    assert baseline["extract"]["method"] == baseline["title"]["method"] == "tfidf-nearest-neighbour"
    for group in ("classify", "extract", "title"):
        assert baseline[group]["n"] == metrics[group]["n"]
    assert {"invariance", "must_pass_classify", "must_pass_extract"} <= set(metrics["behaviour"])


def test_fine_tuned_model_reaches_the_bar_and_beats_the_base(workspace):
    metrics = load(workspace, "metrics/eval.json")
    assert metrics["classify"]["accuracy"] >= 0.85
    for task, metric in (
        ("classify", "accuracy"),
        ("extract", "exact_match"),
        ("title", "rouge_l"),
        ("title", "bleu"),
    ):
        assert metrics[task][metric] > metrics["base"][task][metric], (task, metric)
    gate = load(workspace, "metrics/gate.json")
    assert gate["passed"], [c for c in gate["checks"] if not c["passed"]]


def test_dpo_raises_held_out_preference_accuracy_over_sft(workspace):
    dpo = load(workspace, "metrics/dpo.json")
    assert "skipped" not in dpo and dpo["pairs_held_out"] >= 50
    held = dpo["held_out"]
    # on pairs about eval notices, which DPO never trained on
    assert held["dpo"]["preference_accuracy"] > held["sft"]["preference_accuracy"]
    assert held["dpo"]["reward_margin"] > 0
    assert (workspace / "models/sft").is_dir() and (workspace / "models/adapter").is_dir()


def test_predictions_are_saved_per_example(workspace):
    rows = [
        json.loads(line)
        for line in (workspace / "metrics/predictions.jsonl").read_text().splitlines()
    ]
    evals = (workspace / "data/prepared/eval.jsonl").read_text().splitlines()
    assert len(rows) == len(evals)
    assert {
        "id",
        "task",
        "reference",
        "prediction",
        "base_prediction",
        "baseline_prediction",
        "group",
        "correct",
        "category",
        "length",
        "source",
    } <= set(rows[0])


def test_gate_compares_with_the_champion(workspace):
    checks = {c["name"]: c for c in load(workspace, "metrics/gate.json")["checks"]}
    champion = checks["classify.accuracy vs champion"]
    assert champion["passed"] and champion["n"] > 0
    assert champion["interval"][0] <= champion["delta"] <= champion["interval"][1]


def test_report_on_the_first_run(workspace):
    run(["llmops", "report", "--base", "HEAD", "--out", "reports/pr"], cwd=workspace)
    report = (workspace / "reports/pr/report.md").read_text()
    assert report.startswith("## ✅ Gate passed")
    assert "No predictions at `HEAD` to compare with (first run)" in report
    for group in ("classify", "sources.helpdesk"):
        assert (workspace / f"reports/pr/confusion-{group}.png").exists()
        assert f"### {group}: per class (fine-tuned)" in report
        assert f"### {group}: confusion matrix" in report
    against = report[report.index("## Against the baseline") :].split("\n## ")[0]
    for group in ("classify", "extract", "title", "sources.helpdesk"):
        assert f"| {group} |" in against and f"- **{group}**" in against


def test_summary_shows_base_fine_tuned_and_baseline_per_task_and_source(workspace, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    out = run(["llmops", "summary"], cwd=workspace).stdout
    for group in ("classify", "extract", "title", "sources.helpdesk"):
        line = next(line for line in out.splitlines() if f"│ {group} " in line)
        assert any(w in line for w in ("beats", "ties", "loses")), line
        assert line.count("[") == 1 and line.count("]") == 1  # the interval
    assert "sources.helpdesk F1 per class:" in out


def test_training_is_tracked_in_mlflow(workspace):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / '.mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("flywheel")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"train-full", "dpo"}
    run_ = runs["train-full"]
    assert run_.info.run_id == load(workspace, "metrics/train.json")["mlflow_run_id"]
    assert run_.data.params["train.method"] in ("lora", "full")
    history = client.get_metric_history(run_.info.run_id, "loss")
    assert len(history) > 10 and history[-1].value < history[0].value
    assert "adapter" in {a.path for a in client.list_artifacts(run_.info.run_id)}
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    prepared = next(o["md5"] for o in lock["prepare"]["outs"] if o["path"] == "data/prepared")
    base = next(o["md5"] for o in lock["base"]["outs"] if o["path"] == "models/base")
    assert run_.data.tags["dvc.md5.data/prepared"] == prepared
    assert run_.data.tags["dvc.md5.models/base"] == base
    assert (
        run_.data.tags["git_commit"]
        == run(["git", "rev-parse", "HEAD"], cwd=workspace).stdout.strip()
    )


def test_dpo_is_tracked_as_its_own_run_linked_to_the_sft_run(workspace):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / '.mlflow/mlflow.db'}")
    dpo = load(workspace, "metrics/dpo.json")
    run_ = client.get_run(dpo["mlflow_run_id"])
    assert run_.data.tags["sft_run_id"] == load(workspace, "metrics/train.json")["mlflow_run_id"]
    assert float(run_.data.params["dpo.beta"]) == dpo["beta"]
    held = dpo["held_out"]["dpo"]
    assert run_.data.metrics["held_out.dpo.preference_accuracy"] == held["preference_accuracy"]
    assert "adapter" in {a.path for a in client.list_artifacts(run_.info.run_id)}


def test_nothing_reruns_when_nothing_changed(workspace):
    out = run(["dvc", "repro"], cwd=workspace).stdout
    assert "Running stage" not in out
    assert "up to date" in out


def test_raising_a_gate_threshold_reruns_only_the_gate_and_fails(workspace):
    params_file = workspace / "params.yaml"
    original = params_file.read_text()
    eval_mtime = (workspace / "metrics/eval.json").stat().st_mtime_ns
    params = yaml.safe_load(original)
    params["gate"]["min"]["classify.accuracy"] = 1.01
    params_file.write_text(yaml.safe_dump(params, allow_unicode=True))
    try:
        status = run(["dvc", "status", "--json"], cwd=workspace).stdout
        assert list(json.loads(status)) == ["gate"]
        proc = run(["dvc", "repro"], cwd=workspace, check=False)
        assert proc.returncode != 0
        assert "Running stage 'gate'" in proc.stdout
        assert "Running stage 'evaluate'" not in proc.stdout
        gate = load(workspace, "metrics/gate.json")
        assert not gate["passed"]
        assert [c["name"] for c in gate["checks"] if not c["passed"]] == ["classify.accuracy"]
        assert "FAILED classify.accuracy" in proc.stderr
        assert (workspace / "metrics/eval.json").stat().st_mtime_ns == eval_mtime
    finally:
        params_file.write_text(original)
        run(["dvc", "repro"], cwd=workspace)
    assert load(workspace, "metrics/gate.json")["passed"]


def test_bad_data_fails_with_file_line_and_rule_and_loses_nothing(workspace):
    raw = workspace / "data/raw/notices.jsonl"
    original = raw.read_text(encoding="utf-8")
    lines = original.splitlines()
    train_before = (workspace / "data/prepared/train.jsonl").read_bytes()
    bad = json.loads(lines[0]) | {"id": "notice-9999", "category": "体育"}
    raw.write_text(original + json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    try:
        proc = run(["dvc", "repro"], cwd=workspace, check=False)
        assert proc.returncode != 0
        assert f"data/raw/notices.jsonl:{len(lines) + 1}: `category` '体育' is not one of" in (
            proc.stderr
        )
        assert "Traceback" not in proc.stderr
        assert "Running stage 'base'" not in proc.stdout
    finally:
        raw.write_text(original, encoding="utf-8")
    # DVC deleted the failed stage's outputs before running it; the last good ones are in the
    # cache and dvc.lock still names them.
    run(["dvc", "checkout"], cwd=workspace)
    assert (workspace / "data/prepared/train.jsonl").read_bytes() == train_before
    assert "Running stage" not in run(["dvc", "repro"], cwd=workspace).stdout


REPAIRS = {  # a classification dataset a user might add: repair requests -> trade
    "水电": ["停水了", "水管漏水", "插座没电", "空气开关跳闸", "灯不亮"],
    "网络": ["网口没信号", "WiFi连不上", "网速很慢", "路由器掉线", "网线断了"],
    "家具": ["桌子腿断了", "椅子坏了", "床板裂了", "柜门掉了", "书架歪了"],
}


def repair_requests() -> list[dict]:
    return [
        {
            "instruction": "这条宿舍报修该派给哪个班组？只回答水电、网络或家具。",
            "input": f"{building}号楼{room}室{problem}，麻烦尽快来修",
            "output": trade,
        }
        for building in (1, 2, 3, 4)
        for trade, problems in REPAIRS.items()
        for room, problem in zip((101, 202, 303, 404, 505), problems, strict=True)
    ]


def test_an_added_classification_dataset_is_scored_as_such_against_its_baseline(
    workspace, tmp_path, monkeypatch
):
    """`llmops data add` a labelled dataset, prepare, evaluate (the model was never trained on
    it) and gate with `beat_baseline` on it: its own accuracy, macro-F1, per-class table,
    confusion CSV and baseline row; the gate fails naming it, since a model that never saw
    the data does not beat a classifier fitted on it."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws, symlinks=True)
    mine = tmp_path / "repairs.json"
    mine.write_text(json.dumps(repair_requests(), ensure_ascii=False), encoding="utf-8")
    run(["llmops", "data", "add", str(mine)], cwd=ws)
    run(["python", "-m", "pipeline.data.prepare"], cwd=ws)
    run(["python", "-m", "pipeline.evaluate.evaluate"], cwd=ws)
    metrics = load(ws, "metrics/eval.json")
    repairs = metrics["sources"]["repairs"]
    assert {"accuracy", "macro_f1", "classes"} <= set(repairs) and "rouge_l" not in repairs
    assert set(repairs["classes"]) <= set(REPAIRS) and repairs["n"] > 0
    assert sum(c["n"] for c in repairs["classes"].values()) == repairs["n"]
    assert metrics["baseline"]["sources"]["repairs"]["method"] == "tfidf-logistic-regression"
    confusion = (ws / "plots/confusion/sources.repairs.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == repairs["n"] + 1
    assert "helpdesk" in metrics["sources"]  # each dataset apart, none pooled

    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["gate"]["beat_baseline"] = ["sources.repairs.accuracy"]
    (ws / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    proc = run(["python", "-m", "pipeline.evaluate.gate"], cwd=ws, check=False)
    assert proc.returncode == 1
    assert "FAILED sources.repairs.accuracy beats baseline" in proc.stderr
    (check,) = [c for c in load(ws, "metrics/gate.json")["checks"] if "baseline" in c["name"]]
    assert check["interval"][0] <= 0 and check["baseline"] > repairs["accuracy"]

    monkeypatch.setenv("COLUMNS", "200")
    out = run(["llmops", "summary"], cwd=ws).stdout
    line = next(line for line in out.splitlines() if "│ sources.repairs " in line)
    assert "loses" in line or "ties" in line
    assert "sources.repairs F1 per class:" in out
