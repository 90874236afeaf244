"""The feedback loop against a real Label Studio server: sample request logs, push the tasks,
annotate them through the API as annotators do, pull the preferences, and run the dpo stage
on them. Pushing again creates no duplicates; pulling again changes nothing."""

import json
import shutil

import pytest
import yaml

from pipeline.cli import main as llmops
from pipeline.data.prefs import load_pairs

from ..conftest import ROOT
from ..unit.test_feedback import label_result

pytestmark = pytest.mark.integration

PROJECT = "Flywheel test: which answer is better?"


def request_logs(path, n=8):
    """A day of requests as `llmops serve` logs them, with one truncated line and PII."""
    lines = []
    for i in range(n):
        record = {
            "time": f"2026-11-22T02:{i:02d}:00.000+00:00",
            "request_id": f"req-{i:03d}",
            "model_version": "3" if i % 2 else "4",
            "prompt": f"这则通知属于哪一类？只回答类别。\n标题：关于第{i}次讲座的通知\n"
            f"联系电话13812345{i:03d}",
            "response": ["教务", "科研", "讲座活动", "后勤"][i % 4],
            "latency_ms": 35.5 + i,
            "prompt_tokens": 40,
            "completion_tokens": 2,
            "confidence": 0.2 if i < 3 else 0.9,
            "task": "classify",
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    lines.insert(3, '{"time": "2026-11-22T02:30:00", "request_id": "req-broken", "prom')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def annotate(ls, user, task_id, vote=None, correction=None, skip=False, rating=None):
    """Submit one annotation the way the labeling UI does."""
    result = label_result(vote, correction, rating)
    ls.annotations.create(id=task_id, result=result, completed_by=user, was_cancelled=skip)


def test_sample_push_annotate_pull_and_train(label_studio, tiny_base, in_tmp, monkeypatch, capsys):
    from label_studio_sdk import LabelStudio

    url, token = label_studio
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["feedback"]["project"] = PROJECT
    params["dpo"].update(max_steps=4, batch_size=4, max_length=256, lora={"r": 4, "alpha": 8})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    shipped = (ROOT / "data/feedback/prefs.jsonl").read_text().splitlines(keepends=True)
    (in_tmp / "data/feedback").mkdir(parents=True)
    (in_tmp / "data/feedback/prefs.jsonl").write_text("".join(shipped[:40]))
    request_logs(in_tmp / "requests.jsonl")

    # 1. sample: champion = the logged answer, challenger = a model generating offline
    argv = [
        "feedback",
        "sample",
        "--logs",
        "requests.jsonl",
        "--n",
        "6",
        "--challenger",
        str(tiny_base),
    ]
    assert llmops(argv) == 0
    out = capsys.readouterr()
    assert "requests.jsonl:4: invalid JSON" in out.err and "1 bad lines skipped" in out.out
    sampled = [json.loads(x) for x in (in_tmp / "reports/feedback/tasks.jsonl").open()]
    assert len(sampled) == 6 and all("<PHONE>" in t["prompt"] for t in sampled)
    assert not any("13812345" in json.dumps(t, ensure_ascii=False) for t in sampled)
    # the low-confidence stratum (3 of 8 requests) is not crowded out
    assert sum(t["stratum"].endswith("/low") for t in sampled) == 3

    # 2. push, twice: the second imports nothing
    assert llmops(["feedback", "push"]) == 0
    assert "6 tasks imported" in capsys.readouterr().out
    assert llmops(["feedback", "push"]) == 0
    assert "0 tasks imported, 6 already there" in capsys.readouterr().out
    ls = LabelStudio(base_url=url, api_key=token)
    (project,) = [p for p in ls.projects.list(title=PROJECT) if p.title == PROJECT]
    tasks = sorted(ls.tasks.list(project=project.id, fields="all"), key=lambda t: t.id)
    assert sorted(t.data["feedback_id"] for t in tasks) == sorted(t["feedback_id"] for t in sampled)

    # 3. three annotators judge the tasks through the API
    users = [
        ls.users.create(username=f"annotator{i}", email=f"a{i}@flywheel.test").id for i in range(3)
    ]
    t0, t1, t2, t3, t4, _unjudged = tasks
    for user, vote, rating in zip(users, ["right", "right", "left"], [4, 5, 2], strict=True):
        annotate(ls, user, t0.id, vote, rating=rating)  # majority right, agreement 0.6667
    for user, vote in zip(users, ["left", "right", "tie"], strict=True):
        annotate(ls, user, t1.id, vote)  # no majority: dropped
    annotate(ls, users[0], t2.id, "left", correction="讲座活动")  # a pair and a correction
    annotate(ls, users[0], t3.id, "tie")  # both equal: dropped
    annotate(ls, users[1], t4.id, "left")
    annotate(ls, users[2], t4.id, skip=True)  # a skipped task is no vote

    # 4. pull into the prefs file: shipped pairs kept, ties dropped, agreement recorded
    assert llmops(["feedback", "pull"]) == 0
    summary = capsys.readouterr().out
    assert "3 pairs, 1 corrections, 2 ties dropped, 1 tasks awaiting annotation" in summary
    prefs = in_tmp / "data/feedback/prefs.jsonl"
    pairs = load_pairs(prefs)
    assert prefs.read_text().startswith("".join(shipped[:40]))  # existing lines untouched
    pulled = {p["id"]: p for p in pairs if p.get("source") == "label-studio"}
    assert len(pairs) == 40 + 4 and len(pulled) == 4
    first = pulled[t0.data["feedback_id"]]
    assert first["chosen"][0]["content"] == t0.data["right"]
    assert first["agreement"] == 0.6667 and first["annotators"] == 3 and first["rating"] == 4.5
    assert t1.data["feedback_id"] not in pulled and t3.data["feedback_id"] not in pulled
    correction = pulled[f"{t2.data['feedback_id']}:correction:{users[0]}"]
    assert correction["chosen"][0]["content"] == "讲座活动"
    assert correction["rejected"][0]["content"] == t2.data["left"]

    # 5. pulling and pushing again change nothing
    before = prefs.read_bytes()
    assert llmops(["feedback", "pull"]) == 0
    assert "0 new, 0 updated, 0 removed" in capsys.readouterr().out
    assert prefs.read_bytes() == before
    assert llmops(["feedback", "push"]) == 0
    assert len(list(ls.tasks.list(project=project.id))) == 6

    # 6. the dpo stage trains on the result
    from pipeline.train.dpo import main as dpo_stage

    shutil.copytree(tiny_base, in_tmp / "models/base")
    shutil.copytree(tiny_base, in_tmp / "models/sft")
    assert dpo_stage() == 0
    metrics = json.loads((in_tmp / "metrics/dpo.json").read_text())
    assert "skipped" not in metrics and metrics["steps"] == 4
    assert metrics["pairs_train"] + metrics["pairs_held_out"] == 44


def test_a_wrong_key_or_a_missing_one_is_one_line_and_the_key_is_never_printed(
    label_studio, in_tmp, monkeypatch, capsys
):
    url, _ = label_studio
    shutil.copy(ROOT / "params.yaml", in_tmp / "params.yaml")
    (in_tmp / "tasks.jsonl").write_text(
        json.dumps({"feedback_id": "r1", "prompt": "p", "left": "a", "right": "b"}) + "\n"
    )
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-the-key-0123")
    assert llmops(["feedback", "push", "--tasks", "tasks.jsonl"]) == 2
    err = capsys.readouterr().err
    assert f"Label Studio at {url} answered 401: check LABEL_STUDIO_API_KEY" in err
    assert "not-the-key-0123" not in err
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    assert llmops(["feedback", "pull"]) == 2
    assert "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY" in capsys.readouterr().err
