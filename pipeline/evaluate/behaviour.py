"""Behavioural tests in the Made-With-ML sense, as pure functions over prompts.

- invariance: spacing and punctuation-width changes must not change a notice's class;
- minimum functionality: clear-cut notices (data/behaviour/must_pass.jsonl) must be answered
  right.
"""

from __future__ import annotations

import copy

PERTURBATIONS = {
    # a space after Chinese punctuation, as pasted text often has
    "spacing": lambda t: t.replace("，", "， ").replace("。", "。 "),
    # half-width punctuation, as typed on a Western keyboard
    "half_width": lambda t: t.replace("，", ",").replace("。", ".").replace("：", ":"),
}


def perturb(record: dict, name: str) -> dict:
    """A copy of `record` whose user message is perturbed by PERTURBATIONS[name]."""
    out = copy.deepcopy(record)
    for message in out["prompt"]:
        if message["role"] == "user":
            message["content"] = PERTURBATIONS[name](message["content"])
    out["id"] = f"{record['id']}~{name}"
    return out


def invariance_cases(records: list[dict]) -> list[tuple[dict, dict]]:
    """(original, perturbed) pairs for every classify record and every perturbation."""
    return [
        (r, perturb(r, name)) for r in records if r["task"] == "classify" for name in PERTURBATIONS
    ]
