"""A cheap baseline for every evaluated group, fitted and scored on exactly the same split.

A fine-tuned model is worth its training run only if it beats what a one-second model does on
the same examples. Per group (a notice task, or an added dataset by `source`):

- answers from a small label set seen in training (`scoring.label_set`): TF-IDF over
  character 1-3 grams of the prompt + logistic regression;
- free-form answers: the answer of the most similar training prompt (TF-IDF cosine, nearest
  neighbour).

Both are deterministic (no random state is drawn) and take seconds on 2 cores.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pipeline.evaluate.scoring import LABEL, group_of, normalize

LOGISTIC = "tfidf-logistic-regression"
NEAREST = "tfidf-nearest-neighbour"
MAJORITY = "majority"


@dataclass(frozen=True)
class Baseline:
    """One group's baseline answers, aligned with that group's eval records."""

    group: str
    method: str
    predictions: list[str]


def prompt_text(record: dict) -> str:
    return "\n".join(m["content"] for m in record["prompt"])


def answer(record: dict) -> str:
    return record["completion"][0]["content"]


def _vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    # characters, not words: Chinese has no spaces, and 1-3 grams catch its short words
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)


def classify(train: list[dict], evals: list[dict]) -> tuple[str, list[str]]:
    """Logistic regression on TF-IDF of the prompts; one label seen: always that label."""
    labels = [normalize(answer(r)) for r in train]
    if len(set(labels)) < 2:
        return MAJORITY, [labels[0] if labels else ""] * len(evals)
    from sklearn.linear_model import LogisticRegression

    vec = _vectorizer()
    x = vec.fit_transform([prompt_text(r) for r in train])
    model = LogisticRegression(max_iter=2000, C=10.0)
    model.fit(x, labels)
    return LOGISTIC, [str(p) for p in model.predict(vec.transform([prompt_text(r) for r in evals]))]


def nearest(train: list[dict], evals: list[dict]) -> tuple[str, list[str]]:
    """The answer of the training prompt most similar to each eval prompt (ties: the first)."""
    if not train:
        return NEAREST, [""] * len(evals)
    vec = _vectorizer()
    x = vec.fit_transform([prompt_text(r) for r in train])
    similarity = vec.transform([prompt_text(r) for r in evals]) @ x.T  # rows are L2-normalised
    best = similarity.toarray().argmax(axis=1) if evals else []
    return NEAREST, [answer(train[i]) for i in best]


def baselines(train: list[dict], evals: list[dict], kinds: dict[str, str]) -> dict[str, Baseline]:
    """{group: Baseline} for every group of `evals`; `kinds` gives each group's answer kind."""
    by_group: dict[str, tuple[list[dict], list[dict]]] = defaultdict(lambda: ([], []))
    for r in train:
        by_group[group_of(r)][0].append(r)
    for r in evals:
        by_group[group_of(r)][1].append(r)
    out = {}
    for group, (fit_on, score_on) in sorted(by_group.items()):
        if not score_on:
            continue
        fit = classify if kinds[group] == LABEL else nearest
        method, predictions = fit(fit_on, score_on)
        out[group] = Baseline(group, method, predictions)
    return out


def baseline_predictions(
    train: list[dict], evals: list[dict], kinds: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """(the baseline's answer to each of `evals`, in order; {group: method})."""
    found = baselines(train, evals, kinds)
    position = {g: iter(b.predictions) for g, b in found.items()}
    return [next(position[group_of(r)]) for r in evals], {g: b.method for g, b in found.items()}
