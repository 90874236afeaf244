"""Exact and near-duplicate removal over notices: sha256 of the text, then MinHash LSH
(`datasketch`) on character shingles, confirmed by the exact Jaccard similarity.

Greedy and order-stable: notices are visited by (publish_date, id), earliest first. A notice
whose text equals a kept one's is an exact duplicate; one whose shingle Jaccard with a kept
notice reaches the threshold joins that notice's cluster; anything else is kept. So the kept
notices are pairwise below the threshold (whichever split they land in, no eval notice
near-duplicates a train notice), and adding notices published later never removes one that
was kept before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field


def notice_text(n: dict) -> str:
    """What two notices are compared on: title and body."""
    return f"{n['title']}\n{n['body']}"


def shingles(text: str, size: int) -> set[int]:
    """The overlapping character `size`-grams of `text` (the whole text when it is shorter),
    each as a 32-bit hash: a rolling polynomial over code points, computed with numpy for
    all positions at once (per-shingle Python was most of the time at 20,000 notices)."""
    import numpy as np

    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    size = max(1, min(size, len(cp)))
    n = len(cp) - size + 1
    h = np.zeros(max(n, 1), dtype=np.uint32)
    for j in range(size if n > 0 else 0):
        h = h * np.uint32(1_000_003) + cp[j : j + n]  # wraps mod 2**32, as intended
    h ^= h >> np.uint32(15)  # mix the high bits down: the permutations are affine
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    return set(h.tolist())


def jaccard(a: set, b: set) -> float:
    common = len(a & b)
    return common / (len(a) + len(b) - common) if a or b else 1.0


@dataclass
class DedupResult:
    kept: list[dict]
    # removed id -> the kept id it duplicates
    exact: dict[str, str] = field(default_factory=dict)
    # kept id -> [(removed id, Jaccard similarity), ...]
    clusters: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def report(self) -> dict:
        """Counts and every cluster with its member ids, for the stage report."""
        return {
            "exact_duplicates": len(self.exact),
            "near_duplicates": sum(len(m) for m in self.clusters.values()),
            "near_duplicate_clusters": len(self.clusters),
            "exact": [{"kept": k, "removed": r} for r, k in sorted(self.exact.items())],
            "clusters": [
                {"kept": k, "removed": [{"id": i, "jaccard": round(s, 4)} for i, s in members]}
                for k, members in sorted(self.clusters.items())
            ],
        }


def lsh_bands(threshold: float, num_perm: int, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows) for the LSH index: the most rows per band (fewest chance candidates)
    that still make a pair at exactly `threshold` a candidate with probability >= recall.
    datasketch's own choice balances misses against false candidates; here a miss would let
    a near-duplicate through (into the other split, say) while a false candidate only costs
    a similarity check."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def dedup(
    notices: list[dict],
    threshold: float,
    shingle_size: int,
    num_perm: int = 64,
    text_of: Callable[[dict], str] = notice_text,
) -> DedupResult:
    """Keep the first of each group of exact or near duplicates (see the module docstring);
    the kept notices come back in their input order."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    bands, rows = lsh_bands(threshold, num_perm)
    lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    # the kept notices' signatures, to estimate the Jaccard of all candidates in one step
    # before the exact check (from 64 hashes, 0.2 is 4 standard deviations at 0.8)
    signatures = np.empty((len(notices), bands * rows), dtype=MinHash(num_perm=1).hashvalues.dtype)
    kept_ids: list[str] = []
    kept_shingles: list[set[int]] = []
    result = DedupResult(kept=[])
    by_hash: dict[str, str] = {}
    order = sorted(
        range(len(notices)), key=lambda i: (notices[i]["publish_date"], notices[i]["id"])
    )
    keep = [False] * len(notices)
    texts = [text_of(notices[i]) for i in order]
    grams_of = [shingles(text, shingle_size) for text in texts]
    signatures_of = MinHash.generator(grams_of, num_perm=bands * rows, hashfunc=int)
    for i, text, grams, m in zip(order, texts, grams_of, signatures_of, strict=False):
        n = notices[i]
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in by_hash:
            result.exact[n["id"]] = by_hash[digest]
            continue
        best, best_sim = -1, -1.0
        candidates = np.fromiter(lsh.query(m), dtype=np.int64)
        if len(candidates):
            estimate = (signatures[candidates] == m.hashvalues).mean(axis=1)
            for k in candidates[estimate >= threshold - 0.2].tolist():
                sim = jaccard(grams, kept_shingles[k])
                if sim >= threshold and (sim, -k) > (best_sim, -best):
                    best, best_sim = k, sim
        if best >= 0:
            result.clusters.setdefault(kept_ids[best], []).append((n["id"], best_sim))
            continue
        by_hash[digest] = n["id"]
        lsh.insert(len(kept_ids), m, check_duplication=False)
        signatures[len(kept_ids)] = m.hashvalues
        kept_ids.append(n["id"])
        kept_shingles.append(grams)
        keep[i] = True
    result.kept = [n for n, k in zip(notices, keep, strict=True) if k]
    return result
