"""The index stage with the real model and a real Chroma database: incremental upsert by id
(in-process and under `dvc repro`, where data/index is a persistent output) and search."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline.cli import main as cli
from pipeline.config import IndexParams, PrepareParams
from pipeline.data.index import NOTICES, PROMPTS, build_index, open_client, open_collection
from pipeline.data.prepare import prepare
from pipeline.data.synthetic import generate
from pipeline.io import write_jsonl

from ..conftest import ROOT, run

pytestmark = pytest.mark.integration
P = IndexParams()


class Counting:
    """The real encoder, counting the texts it embeds."""

    def __init__(self, encoder):
        self.encoder, self.texts = encoder, 0

    def encode(self, texts, **kw):
        self.texts += len(texts)
        return self.encoder.encode(texts, **kw)


def train_of(notices: list[dict]) -> list[dict]:
    return prepare(PrepareParams(), notices)[0]


def test_adding_notices_embeds_only_the_new_ones(tmp_path, encoder):
    notices = generate(16)
    first, more = notices[:12], notices[12:]
    spy = Counting(encoder)
    summary = build_index(P, first, train_of(first), tmp_path, spy)
    assert summary[NOTICES] == {"added": 12, "updated": 0, "deleted": 0, "total": 12}
    assert spy.texts == summary["embedded"] == 12 + len(train_of(first))

    spy.texts = 0
    summary = build_index(P, notices, train_of(notices), tmp_path, spy)
    new_prompts = len(train_of(notices)) - len(train_of(first))
    assert summary[NOTICES] == {"added": 4, "updated": 0, "deleted": 0, "total": 16}
    assert summary[PROMPTS]["added"] == new_prompts and summary[PROMPTS]["updated"] == 0
    assert spy.texts == summary["embedded"] == len(more) + new_prompts

    spy.texts = 0
    assert build_index(P, notices, train_of(notices), tmp_path, spy)["embedded"] == 0
    assert spy.texts == 0

    # an edited notice is embedded again; a removed one leaves the index
    edited = [{**notices[0], "title": notices[0]["title"] + "（更正）"}, *notices[1:15]]
    summary = build_index(P, edited, train_of(notices), tmp_path, spy)
    assert summary[NOTICES] == {"added": 0, "updated": 1, "deleted": 1, "total": 15}
    assert spy.texts == 1


def test_another_model_starts_the_collection_again(tmp_path, encoder):
    build_index(P, generate(3), [], tmp_path, encoder)
    client = open_client(tmp_path)
    assert open_collection(client, NOTICES, P.model).count() == 3
    assert open_collection(client, NOTICES, "some/other-model").count() == 0


def test_search_finds_the_notice_and_the_cli_prints_the_top_k(tmp_path, encoder, capsys):
    notices = generate(30)
    build_index(P, notices, [], tmp_path, encoder)
    target = notices[7]
    capsys.readouterr()
    query = target["title"] + target["body"]
    assert cli(["search", query, "-k", "3", "--index", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1. ") and target["id"] in out[0] and target["title"] in out[0]
    assert len(out) == 4 and out[-1].startswith("search: 3 notice(s)")


def test_search_without_an_index_says_how_to_build_it(tmp_path, capsys):
    assert cli(["search", "奖学金", "--index", str(tmp_path / "none")]) == 2
    assert "dvc repro index" in capsys.readouterr().err
    open_client(tmp_path)  # a database without the collection
    assert cli(["search", "奖学金", "--index", str(tmp_path)]) == 2
    assert "no `notices` index" in capsys.readouterr().err
    assert cli(["search", "奖学金", "-k", "0", "--index", str(tmp_path)]) == 2


def test_dvc_repro_keeps_the_index_and_embeds_only_added_notices(tmp_path):
    """data/index is `persist: true`: DVC does not delete it before rerunning the stage, so
    adding notices to data/raw embeds just those (and their training prompts)."""
    from pipeline.scratch import copy_repo

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["index"]
    assert {"data/index": {"persist": True}} in stage["outs"]
    repo = copy_repo(ROOT, tmp_path / "repo", from_nothing=True)
    (repo / "data/raw/helpdesk.jsonl").unlink()  # notices only: every prompt is counted below
    notices = generate(126)  # 21 per category: validate wants 20
    write_jsonl(repo / "data/raw/notices.jsonl", notices[:120])
    run(["dvc", "repro", "index"], cwd=repo)
    first = json.loads((repo / "metrics/index.json").read_text())
    assert first["notices"]["added"] == 120

    write_jsonl(repo / "data/raw/notices.jsonl", notices)
    run(["dvc", "repro", "index"], cwd=repo)
    second = json.loads((repo / "metrics/index.json").read_text())
    new_prompts = len(train_of(notices)) - len(train_of(notices[:120]))
    assert second["notices"] == {"added": 6, "updated": 0, "deleted": 0, "total": 126}
    assert second["prompts"]["added"] == new_prompts
    assert second["embedded"] == 6 + new_prompts
    assert run(["dvc", "status", "index"], cwd=repo).stdout.strip().endswith("up to date.")


def test_the_drift_reference_is_a_stable_sample_of_the_training_prompts():
    from pipeline.data.index import prompt_documents

    notices = generate(60)
    old = train_of(notices[:40])
    few = prompt_documents(old, limit=20)
    assert len(few) == 20 and len(prompt_documents(old)) == len(old)
    assert prompt_documents(list(reversed(old)), limit=20) == few  # order does not matter
    new = [r for r in train_of(notices) if r["id"] not in {o["id"] for o in old}]
    more = prompt_documents(old + new, limit=20)
    # new prompts may take places, but an old member leaves only for a new one
    assert set(more) & {r["id"] for r in old} <= set(few)
    assert set(more) - set(few) <= {r["id"] for r in new}
