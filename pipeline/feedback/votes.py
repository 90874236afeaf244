"""Annotations -> preference pairs, and the deterministic merge into data/feedback/prefs.jsonl.

Each annotator's latest submitted (not skipped) annotation of a task is one vote: the
Pairwise choice names the left or the right answer, or "both equal" is a tie. The majority
wins; ties (equal votes, or a majority for "both equal") are dropped. `agreement` is the
fraction of votes that agree with the majority, `annotators` the number of votes, `rating`
(when given) the mean 1-5 rating of the chosen answer by those who chose it.

A free-text correction (when `feedback.corrections` is on) becomes one more pair: the
correction chosen over the answer that annotator preferred (the best the models did still
needed fixing), or over each answer when they preferred neither. Its id is
`<task id>:correction:<annotator>` (plus `:left` / `:right` in the second case).
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from pipeline.io import DataError, iter_jsonl

SOURCE = "label-studio"
TIE = "tie"


class Vote(NamedTuple):
    choice: str | None  # left, right, tie, or None: not judged
    correction: str  # free text, "" when none
    rating: float | None  # of the better answer


class Pulled(NamedTuple):
    pairs: list[dict]
    counts: dict[str, int]  # pair, tie, unannotated, correction
    judged: set[str]  # ids of the tasks that were judged


def vote_of(result: list[dict]) -> Vote:
    """One annotation's result list as a vote."""
    vote, correction, rating = None, "", None
    for r in result:
        value = r.get("value") or {}
        if r.get("type") == "pairwise" and value.get("selected") in ("left", "right"):
            vote = vote or value["selected"]
        elif r.get("type") == "choices" and r.get("from_name") == "equal" and value.get("choices"):
            vote = TIE
        elif r.get("type") == "textarea" and r.get("from_name") == "correction":
            correction = "\n".join(value.get("text") or []).strip()
        elif r.get("type") == "rating" and isinstance(value.get("rating"), (int, float)):
            rating = float(value["rating"])
    return Vote(vote, correction, rating)


def task_votes(task: dict) -> dict[str, Vote]:
    """annotator -> their vote, from their latest submitted annotation."""
    latest: dict[str, tuple[str, Vote]] = {}
    for a in task.get("annotations") or []:
        if a.get("was_cancelled"):
            continue
        who = str(a.get("completed_by") or a.get("created_username") or a.get("id"))
        stamp = str(a.get("updated_at") or a.get("created_at") or "")
        if who not in latest or stamp >= latest[who][0]:
            latest[who] = (stamp, vote_of(a.get("result") or []))
    return {who: v for who, (_, v) in sorted(latest.items())}


def pairs_of_task(task: dict, corrections: bool) -> tuple[list[dict], str]:
    """The pairs one exported task yields and what happened: pair | tie | unannotated
    (no submitted annotation) | no_choice (annotations without a choice)."""
    data = task["data"]
    votes = task_votes(task)
    if not votes:
        return [], "unannotated"
    counted = Counter(v for v, _, _ in votes.values() if v is not None)
    ranked = counted.most_common()
    winner, top = ranked[0] if ranked else (None, 0)
    prompt = [{"role": "user", "content": data["prompt"]}]
    common = {"group": data["prompt"], "source": SOURCE, "prompt": prompt}
    out: list[dict] = []
    tie = winner == TIE or (len(ranked) > 1 and ranked[1][1] == top)
    outcome = "no_choice" if winner is None else "tie" if tie else "pair"
    if outcome == "pair":
        loser = "right" if winner == "left" else "left"
        ratings = [r for v, _, r in votes.values() if v == winner and r is not None]
        rating = {"rating": round(sum(ratings) / len(ratings), 2)} if ratings else {}
        out.append(
            {
                **common,
                "id": data["feedback_id"],
                "chosen": [{"role": "assistant", "content": data[winner]}],
                "rejected": [{"role": "assistant", "content": data[loser]}],
                "chosen_model": data.get(f"{winner}_model"),
                "rejected_model": data.get(f"{loser}_model"),
                "agreement": round(top / sum(counted.values()), 4),
                "annotators": sum(counted.values()),
                **rating,
            }
        )
    if corrections:
        for who, (vote, text, _) in votes.items():
            # over the answer this annotator preferred; over both when neither was better
            sides = [vote] if vote in ("left", "right") else ["left", "right"]
            for side in sides:
                if not text or text == data[side]:
                    continue
                suffix = "" if len(sides) == 1 else f":{side}"
                out.append(
                    {
                        **common,
                        "id": f"{data['feedback_id']}:correction:{who}{suffix}",
                        "chosen": [{"role": "assistant", "content": text}],
                        "rejected": [{"role": "assistant", "content": data[side]}],
                        "rejected_model": data.get(f"{side}_model"),
                        "annotators": 1,
                        "kind": "correction",
                    }
                )
    return out, outcome


def to_pairs(tasks: list[dict], corrections: bool) -> Pulled:
    """The preference pairs of annotated tasks."""
    pairs: list[dict] = []
    counts: Counter = Counter()
    judged: set[str] = set()
    for task in sorted(tasks, key=lambda t: t["data"]["feedback_id"]):
        got, outcome = pairs_of_task(task, corrections)
        counts[outcome] += 1
        counts["correction"] += sum(p.get("kind") == "correction" for p in got)
        if outcome != "unannotated":
            judged.add(task["data"]["feedback_id"])
        pairs.extend(got)
    return Pulled(pairs, dict(counts), judged)


def merge(existing: list[dict], pulled: list[dict], judged: set[str]) -> tuple[list[dict], dict]:
    """`existing` with `pulled` merged in: a pair whose id is already there is replaced in
    place; new ones are appended in id order; an earlier pulled pair of a judged task that
    no longer yields it (now a tie) is removed. Pulling the same annotations again changes
    nothing."""
    by_id = {p["id"]: p for p in pulled}

    def task_of(pair_id: str) -> str:
        return pair_id.split(":correction:")[0]

    out, seen = [], set()
    changed = removed = 0
    for pair in existing:
        pid = pair.get("id")
        if pid in by_id:
            changed += by_id[pid] != pair
            out.append(by_id[pid])
            seen.add(pid)
        elif pair.get("source") == SOURCE and task_of(str(pid)) in judged:
            removed += 1
        else:
            out.append(pair)
    new = [by_id[pid] for pid in sorted(by_id) if pid not in seen]
    out.extend(new)
    return out, {"new": len(new), "updated": changed, "removed": removed, "total": len(out)}


def read_raw_pairs(path) -> list[dict]:
    """The lines of a prefs file as written (so a merge rewrites them unchanged); [] when
    absent. Invalid JSON is an error naming the line: nothing is overwritten."""
    from pathlib import Path

    if not Path(path).exists():
        return []
    errors: list[DataError] = []
    rows = [obj for _, obj in iter_jsonl(Path(path), errors)]
    if errors:
        raise errors[0]
    return rows
