"""Exact and near-duplicate removal, and the split properties it protects: no eval notice
near-duplicates a train notice, and adding notices never moves or drops an existing one."""

import datetime as dt
import itertools

import pytest
import yaml

from pipeline.config import ParamsError, PrepareParams, load_params, parse_params
from pipeline.data.dedup import dedup, jaccard, lsh_bands, notice_text, shingles
from pipeline.data.prepare import clean_notices, prepare
from pipeline.data.records import split_of
from pipeline.data.schema import load_notices
from pipeline.data.synthetic import generate

from ..conftest import ROOT

P = PrepareParams()


def repost(n: dict, k: int) -> dict:
    """The same notice published again a week later with small edits: a near-duplicate."""
    later = dt.date.fromisoformat(n["publish_date"]) + dt.timedelta(days=7)
    body = n["body"].replace("。", "。（更新）", 1) if k % 2 else f"【重要】{n['body']}"
    return n | {"id": f"repost-{k:04d}", "publish_date": later.isoformat(), "body": body}


def test_exact_and_near_copies_are_removed_and_the_earliest_kept():
    notices = generate(60)
    copy = notices[3] | {"id": "copy-1", "publish_date": "2026-12-31"}
    near = repost(notices[7], 1)
    result = dedup([copy, *notices, near], P.near_dup_threshold, P.shingle_size, P.minhash_perm)
    assert result.kept == notices  # input order kept
    assert result.exact == {"copy-1": notices[3]["id"]}
    ((kept, members),) = result.clusters.items()
    assert kept == notices[7]["id"] and members[0][0] == "repost-0001"
    assert members[0][1] >= P.near_dup_threshold
    report = result.report()
    assert (
        report["near_duplicates"] == 1 and report["clusters"][0]["removed"][0]["id"] == near["id"]
    )


def test_the_shipped_sample_loses_no_notice_at_the_configured_threshold():
    """Notices made from one template are distinct notices: the params must keep them all
    (their highest pairwise shingle Jaccard is 0.717, under the 0.8 threshold)."""
    p = load_params(ROOT / "params.yaml").prepare
    notices = load_notices(ROOT / "data" / "raw")
    kept, counts, _ = clean_notices(p, notices)
    assert len(kept) == len(notices) == counts["notices_kept"]
    assert counts["exact_duplicates"] == counts["near_duplicates"] == 0


def test_lsh_bands_find_a_pair_at_the_threshold_with_high_probability():
    for threshold, perm in ((0.8, 64), (0.8, 128), (0.9, 64), (0.6, 128)):
        bands, rows = lsh_bands(threshold, perm)
        assert bands * rows <= perm
        assert 1 - (1 - threshold**rows) ** bands >= 0.99


def split_notices(p: PrepareParams, notices: list[dict]) -> dict[str, list[dict]]:
    kept, _, _ = clean_notices(p, notices)
    out: dict[str, list[dict]] = {"train": [], "eval": []}
    for n in kept:
        out[split_of(n["id"], p.split_salt, p.eval_fraction)].append(n)
    return out


def test_no_eval_notice_near_duplicates_a_train_notice():
    base = generate(240)
    notices = base + [repost(n, k) for k, n in enumerate(base[:120])]
    _, counts, _ = clean_notices(P, notices)
    assert counts["near_duplicates"] == 120 and counts["eval_duplicates_of_train"] > 0
    parts = split_notices(P, notices)
    train = [shingles(notice_text(n), P.shingle_size) for n in parts["train"]]
    for n in parts["eval"]:
        grams = shingles(notice_text(n), P.shingle_size)
        worst = max(jaccard(grams, t) for t in train)
        assert worst < P.near_dup_threshold, n["id"]
    # and without dedup the same data would leak: the check above can fail
    raw_eval = [n for n in notices if split_of(n["id"], P.split_salt, P.eval_fraction) == "eval"]
    raw_train = [n for n in notices if n not in raw_eval]
    assert any(
        jaccard(shingles(notice_text(a), 5), shingles(notice_text(b), 5)) >= P.near_dup_threshold
        for a, b in itertools.product(raw_eval, raw_train)
    )


@pytest.mark.parametrize("grow", [100, 300])
def test_adding_notices_never_moves_or_drops_an_existing_record(grow):
    before_notices = generate(200)
    before_notices += [repost(n, k) for k, n in enumerate(before_notices[:20])]
    more = generate(200 + grow)[200:]
    after_notices = before_notices + more + [repost(n, 1000 + k) for k, n in enumerate(more[:30])]
    train_b, eval_b, _ = prepare(P, clean_notices(P, before_notices)[0])
    train_a, eval_a, _ = prepare(P, clean_notices(P, after_notices)[0])
    split_b = {r["id"]: "train" for r in train_b} | {r["id"]: "eval" for r in eval_b}
    split_a = {r["id"]: "train" for r in train_a} | {r["id"]: "eval" for r in eval_a}
    assert set(split_b) <= set(split_a)  # nothing dropped
    assert all(split_a[rid] == split for rid, split in split_b.items())  # nothing moved
    assert len(split_a) > len(split_b)


def test_pii_is_scrubbed_before_the_split_and_counted():
    n = generate(1)[0]
    n = n | {"body": n["body"] + "咨询电话：010-62751234，邮箱 jwc@example.edu.cn。"}
    (kept,), counts, _ = clean_notices(P, [n])
    assert "<PHONE>" in kept["body"] and "<EMAIL>" in kept["body"]
    assert counts["pii_scrubbed"] == {"id_card": 0, "email": 1, "phone": 1, "student_number": 0}
    assert kept["deadline"] in kept["body"] or not kept["deadline"]
    off = PrepareParams(scrub_pii=False)
    assert "010-62751234" in clean_notices(off, [n])[0][0]["body"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("near_dup_threshold", 1.5, "params.yaml:prepare.near_dup_threshold: must be in (0, 1]"),
        ("shingle_size", 0, "params.yaml:prepare.shingle_size: must be at least 1"),
        ("minhash_perm", 8, "params.yaml:prepare.minhash_perm: must be at least 16"),
        ("student_number_pattern", "(20", "params.yaml:prepare.student_number_pattern: bad regex"),
        ("scrub_pii", "yes", "params.yaml:prepare.scrub_pii: expected true or false"),
    ],
)
def test_cleaning_params_are_checked(key, value, message):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["prepare"][key] = value
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value).startswith(message)
