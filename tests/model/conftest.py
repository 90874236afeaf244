"""A model small enough to build and train in seconds, shared by the model tests."""

import dataclasses

import pytest

from pipeline.config import BaseParams
from pipeline.data.sample import generate
from pipeline.train.base import build_model, build_tokenizer

LABELS = ["教务", "科研", "学生工作", "招生就业", "后勤", "讲座活动"]
TINY = dataclasses.replace(
    BaseParams(),
    vocab_size=600,
    hidden_size=32,
    intermediate_size=64,
    num_layers=1,
    num_heads=2,
    max_position_embeddings=256,
)


@pytest.fixture(scope="session")
def tok():
    texts = [n["title"] + n["body"] for n in generate(80)]
    return build_tokenizer(texts, TINY.vocab_size, LABELS)


@pytest.fixture(scope="session")
def saved(tmp_path_factory, tok):
    out = tmp_path_factory.mktemp("tiny")
    model = build_model(TINY, tok)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
