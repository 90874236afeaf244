"""Extending the project costs what CONTRIBUTING.md says: a new stage touches 3 files (its
module, dvc.yaml, params.yaml), a new command 1, a new evaluation metric 1. Each is added
for real to a scratch copy, used there, and the files it touched are counted with git.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.scratch import copy_repo

from ..conftest import ROOT, run

STAGE_MODULE = '''\
"""Counts the sample notices longer than params.words.min_chars: a throw-away stage.

Run: dvc repro words
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from pipeline.config import Section, stage_params
from pipeline.io import run_stage, write_json
from pipeline.paths import RAW_NOTICES

WORDS_METRICS = Path("metrics/words.json")


class WordsParams(Section):
    min_chars: int = Field(50, ge=1, description="shortest notice counted")


def main() -> int:
    params = stage_params("words", WordsParams)
    bodies = [json.loads(line)["body"] for line in RAW_NOTICES.read_text().splitlines()]
    long = sum(len(b) >= params.min_chars for b in bodies)
    write_json(WORDS_METRICS, {"notices": len(bodies), "long": long})
    print(f"words: {long} of {len(bodies)} notices have {params.min_chars}+ characters")
    return 0


if __name__ == "__main__":
    run_stage(main)
'''

STAGE_YAML = """
  words:
    desc: count the long notices
    cmd: python -m pipeline.data.words
    deps:
      - data/raw/notices.jsonl
    params:
      - words
    metrics:
      - metrics/words.json:
          cache: false
"""

COMMAND_MODULE = '''\
"""`llmops data longest`: the longest sample notices' titles."""

from __future__ import annotations

import argparse
import json

from pipeline.commands import arg, command
from pipeline.paths import RAW_NOTICES


@command("data", "longest", help="print the titles of the longest notices",
         args=[arg("--top", type=int, default=3, help="how many (default: 3)")])
def main(args: argparse.Namespace) -> int:
    notices = [json.loads(line) for line in RAW_NOTICES.read_text().splitlines()]
    for notice in sorted(notices, key=lambda n: -len(n["body"]))[: args.top]:
        print(notice["title"])
    return 0
'''

METRIC_CODE = """

def same_length_scores(predictions: list[str], references: list[str]) -> list[float]:
    return [float(len(p) == len(r)) for p, r in zip(predictions, references, strict=True)]


def same_length(predictions: list[str], references: list[str]) -> float:
    return statistics.fmean(same_length_scores(predictions, references)) if references else 0.0


METRICS["same_length"] = Metric(same_length, same_length_scores)
KINDS["title"] = (*KINDS["title"], "same_length")
"""


@pytest.fixture
def scratch(tmp_path) -> Path:
    return copy_repo(ROOT, tmp_path / "repo")


def llmops(*words: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "pipeline.cli", *words], cwd).stdout


def touched(repo: Path) -> list[str]:
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    return sorted(line[3:] for line in status.splitlines())


def test_a_new_stage_is_its_module_dvc_yaml_and_params_yaml(scratch):
    (scratch / "pipeline/data/words.py").write_text(STAGE_MODULE)
    with open(scratch / "dvc.yaml", "a") as f:
        f.write(STAGE_YAML)
    with open(scratch / "params.yaml", "a") as f:
        f.write("\nwords:\n  min_chars: 50  # a notice this long counts\n")
    llmops("deps", cwd=scratch)  # its code deps, from its imports
    assert touched(scratch) == ["dvc.yaml", "params.yaml", "pipeline/data/words.py"]

    run(["dvc", "repro", "words"], scratch)
    assert (scratch / "metrics/words.json").exists()
    assert "words: " in llmops("words", cwd=scratch)  # a command, as every stage is
    assert "stage: count the long notices" in llmops("--help", cwd=scratch)
    assert "words:\n  min_chars: 50\n" in llmops("params", cwd=scratch)
    # the house's contract tests hold with the stage in place
    tests = ["tests/unit/test_contract.py", "tests/unit/test_cli.py", "tests/unit/test_config.py"]
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], scratch)
    written = ["dvc.lock", "metrics/words.json"]  # by dvc repro, committed with the stage
    assert touched(scratch) == sorted(
        ["dvc.yaml", "params.yaml", "pipeline/data/words.py", *written]
    )


def test_a_new_command_is_one_file(scratch):
    (scratch / "pipeline/data/longest.py").write_text(COMMAND_MODULE)
    assert touched(scratch) == ["pipeline/data/longest.py"]
    titles = llmops("data", "longest", "--top", "2", cwd=scratch).splitlines()
    assert len(titles) == 2
    assert "longest" in llmops("data", "--help", cwd=scratch)


def test_a_new_metric_is_one_file(scratch):
    with open(scratch / "pipeline/evaluate/scoring.py", "a") as f:
        f.write(METRIC_CODE)
    assert touched(scratch) == ["pipeline/evaluate/scoring.py"]
    check = textwrap.dedent(
        """
        from pipeline.config import load_params
        from pipeline.evaluate import gate, scoring
        title = scoring.kind_metrics("title", ["ab", "abc"], ["xy", "x"])
        assert title["same_length"] == 0.5, title
        assert gate.unknown_metric("title.same_length") is None
        p = load_params().gate
        p = p.model_copy(update={"min": {"title.same_length": 0.6}, "beat_base": [],
                                 "beat_baseline": [], "no_regression": [],
                                 "require_validation": False})
        verdict = gate.decide(p, {"title": title}, None)
        (check,) = [c for c in verdict["checks"] if "same_length" in c["name"]]
        assert check["passed"] is False and check["value"] == 0.5, check
        print("gated")
        """
    )
    assert run([sys.executable, "-c", check], scratch).stdout.strip() == "gated"
