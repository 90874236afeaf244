"""The request-log schema: what `llmops serve` writes is what the feedback loop reads."""

from __future__ import annotations

import json

import pytest

from pipeline.feedback.logs import RequestLog, now_iso, read_logs
from pipeline.io import DataError


def record(**kw) -> dict:
    base = {
        "time": now_iso(),
        "request_id": "r1",
        "model_version": "3",
        "prompt": "这条通知属于哪个类别？",
        "response": "教务",
        "latency_ms": 12.5,
        "prompt_tokens": 20,
        "completion_tokens": 2,
    }
    return {**base, **kw}


def test_written_records_read_back_with_extra_fields_kept(tmp_path):
    log = RequestLog(tmp_path / "logs" / "requests.jsonl")
    log.write(record(request_id="a", route="canary"))
    log.write(record(request_id="b"))
    records, errors = read_logs([tmp_path / "logs"])
    assert errors == []
    assert [r["request_id"] for r in records] == ["a", "b"]
    assert records[0]["route"] == "canary"


def test_bad_lines_are_reported_with_their_number_and_skipped(tmp_path):
    path = tmp_path / "requests.jsonl"
    lines = [
        json.dumps(record(request_id="ok1")),
        "{not json",
        json.dumps(record(latency_ms="fast")),
        json.dumps({k: v for k, v in record().items() if k != "prompt"}),
        json.dumps(record(time="yesterday")),
        json.dumps(record(prompt_tokens=True)),
        "",
        json.dumps(record(request_id="ok2")),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, errors = read_logs([path])
    assert [r["request_id"] for r in records] == ["ok1", "ok2"]
    where = [(e.line, e.rule) for e in errors]
    assert [line for line, _ in where] == [2, 3, 4, 5, 6]
    assert "invalid JSON" in where[0][1]
    assert "`latency_ms` must be int or float" in where[1][1]
    assert "missing `prompt`" in where[2][1]
    assert "ISO 8601" in where[3][1]
    assert "`prompt_tokens` must be int" in where[4][1]


def test_writer_refuses_a_record_off_the_schema(tmp_path):
    with pytest.raises(DataError, match="missing `response`"):
        RequestLog(tmp_path / "r.jsonl").write(
            {k: v for k, v in record().items() if k != "response"}
        )


def test_a_missing_log_path_is_named(tmp_path):
    with pytest.raises(DataError, match="no such request log"):
        read_logs([tmp_path / "nope.jsonl"])
