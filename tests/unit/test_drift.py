"""Drift statistics on synthetic embeddings (no model): PSI, KS, verdicts, exposition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest

from pipeline.config import DriftParams, ParamsError, parse_params
from pipeline.feedback.drift import (
    DRIFT,
    INSUFFICIENT,
    OK,
    compare,
    prometheus_registry,
    psi,
    recent_prompts,
)
from pipeline.feedback.logs import RequestLog

from ..conftest import ROOT

P = DriftParams()


def cloud(n: int, seed: int, shift: float = 0.0, dim: int = 32) -> np.ndarray:
    """Points with a few dominant directions, like sentence embeddings; `shift` moves the
    mean along the first direction by that many standard deviations."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.5, dim)
    x = rng.normal(size=(n, dim)) * scales
    x[:, 0] += shift * scales[0]
    return x


def test_psi_is_zero_for_the_same_sample_and_known_when_all_fall_in_one_bin():
    ref = np.arange(1000, dtype=float)
    assert psi(ref, ref, 10) == pytest.approx(0.0, abs=1e-9)
    # everything above the reference's top decile: one bin holds 1.0 instead of 0.1, the other
    # nine hold the floor 1e-4 instead of 0.1
    expected = 0.9 * math.log(10) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert psi(ref, np.full(200, 5000.0), 10) == pytest.approx(expected, rel=1e-6)


def test_a_shifted_sample_is_drift_and_a_fresh_one_from_the_same_source_is_not():
    ref = cloud(1000, seed=0)
    same = compare(ref, cloud(200, seed=1), P)
    shifted = compare(ref, cloud(200, seed=2, shift=1.0), P)
    assert same["verdict"] == OK, same["reason"]
    assert shifted["verdict"] == DRIFT
    assert shifted["psi"] > P.psi_threshold > same["psi"]
    assert shifted["components"][0]["ks_pvalue"] < P.ks_pvalue
    assert [c["component"] for c in shifted["components"]] == list(range(1, P.components + 1))


def test_ks_alone_flags_a_shift_that_the_mean_psi_dilutes():
    ref = cloud(2000, seed=0)
    # a moderate shift on one of five components: mean PSI stays under 0.2, KS does not
    p = P.model_copy(update={"psi_threshold": 10.0})
    result = compare(ref, cloud(400, seed=3, shift=0.5), p)
    assert result["verdict"] == DRIFT and "KS" in result["reason"]
    assert compare(ref, cloud(400, seed=4), p)["verdict"] == OK


def test_too_few_prompts_is_insufficient_data_not_drift():
    result = compare(cloud(500, seed=0), cloud(P.min_samples - 1, seed=1, shift=5.0), P)
    assert result["verdict"] == INSUFFICIENT
    assert "psi" not in result and "min_samples" in result["reason"]


def test_max_aggregate_is_at_least_the_mean():
    ref, cur = cloud(1000, seed=0), cloud(300, seed=5, shift=0.4)
    mean = compare(ref, cur, P.model_copy(update={"aggregate": "mean"}))["psi"]
    top = compare(ref, cur, P.model_copy(update={"aggregate": "max"}))["psi"]
    assert top >= mean > 0


def test_exposition_has_the_alerts_gauge_with_its_namespace_and_none_without_a_verdict():
    ref = cloud(1000, seed=0)
    text = generate_latest(prometheus_registry(compare(ref, cloud(200, 1, 1.0), P), "prod"))
    text = text.decode()
    assert "# TYPE llm_data_drift_psi gauge" in text
    assert "# HELP llm_data_drift_psi " in text
    assert 'llm_data_drift_psi{namespace="prod"}' in text
    assert 'llm_data_drift_detected{namespace="prod"} 1.0' in text
    few = compare(ref, cloud(10, seed=1), P)
    text = generate_latest(prometheus_registry(few, "prod")).decode()
    assert 'llm_data_drift_psi{namespace="prod"}' not in text  # no verdict, no alert
    assert 'llm_data_drift_samples{namespace="prod"} 10.0' in text


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("drift", "bins", 1, "drift.bins: must be at least 2"),
        ("drift", "aggregate", "median", "drift.aggregate: must be one of"),
        ("drift", "ks_pvalue", 1.5, "drift.ks_pvalue: must be between 0 and 1"),
        ("drift", "max_samples", 10, "drift.max_samples: must be at least drift.min_samples"),
        ("drift", "window", 10, "drift.window: unknown key"),
        ("index", "batch_size", 0, "index.batch_size: must be at least 1"),
    ],
)
def test_bad_drift_and_index_params_name_the_key(section, key, value, message):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw[section][key] = value
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        parse_params(raw)


def test_recent_prompts_are_the_newest_by_time_across_files_and_zones(tmp_path):
    def write(path, rows):
        log = RequestLog(path)
        for time, prompt in rows:
            log.write(
                {
                    "time": time,
                    "request_id": prompt,
                    "model_version": "1",
                    "prompt": prompt,
                    "response": "",
                    "latency_ms": 1.0,
                    "prompt_tokens": 1,
                    "completion_tokens": 1,
                }
            )

    write(
        tmp_path / "b.jsonl",
        [("2026-11-22T10:00:00+02:00", "08:00Z"), ("2026-11-22T09:30:00", "09:30Z")],
    )
    write(
        tmp_path / "a.jsonl",
        [("2026-11-22T09:00:00Z", "09:00Z"), ("2026-11-22T07:00:00Z", "07:00Z")],
    )
    with open(tmp_path / "a.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"time": "2026-11-22T23:00:00Z"}\n')
    prompts, problems = recent_prompts([str(tmp_path)], max_samples=3)
    assert prompts == ["08:00Z", "09:00Z", "09:30Z"]
    assert problems == [f"{tmp_path / 'a.jsonl'}:3: missing `request_id`"]
