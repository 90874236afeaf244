"""Exact and near-duplicate removal over notices: sha256 of the text, then MinHash LSH
(`datasketch`) on character shingles, confirmed by the exact Jaccard similarity.

Greedy and order-stable: notices are visited by (publish_date, id), earliest first. A notice
whose text equals a kept one's is an exact duplicate; one whose shingle Jaccard with a kept
notice reaches the threshold joins that notice's cluster; anything else is kept. So the kept
notices are pairwise below the threshold (whichever split they land in, no eval notice
near-duplicates a train notice), and adding notices published later never removes one that
was kept before.

Speed (`make bench`: dedup_docs_per_s over 20,000 notices): shingles and MinHash signatures
are computed for all notices at once with numpy; datasketch's MinHashLSH finds candidates,
whose signatures estimate their similarity before the exact check.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field


def notice_text(n: dict) -> str:
    """What two notices are compared on: title and body."""
    return f"{n['title']}\n{n['body']}"


def shingles(text: str, size: int) -> set[int]:
    """The overlapping character `size`-grams of `text` (the whole text when it is shorter),
    each as a 32-bit hash."""
    return shingle_sets([text], size)[0]


def shingle_sets(texts: list[str], size: int) -> list[set[int]]:
    """`shingles` of many texts at once: a rolling polynomial hash over the code points of
    all texts joined, in a few numpy operations, then cut per text (windows across two texts
    are never used). Per-shingle or even per-text numpy work was most of the time at 20,000
    notices."""
    import numpy as np

    full = [t for t in texts if len(t) >= size]
    cp = np.frombuffer("".join(full).encode("utf-32-le", errors="surrogatepass"), np.uint32)
    windows = max(len(cp) - size + 1, 0)
    h: np.ndarray = np.zeros(windows, dtype=np.uint32)
    for j in range(size if windows else 0):
        h = h * np.uint32(1_000_003) + cp[j : j + windows]  # wraps mod 2**32, as intended
    h ^= h >> np.uint32(15)  # mix the high bits down: the permutations are affine
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    out, start = [], 0
    for text in texts:
        if len(text) >= size:
            out.append(set(h[start : start + len(text) - size + 1].tolist()))
            start += len(text)
        else:  # shorter than one shingle: the whole text is its only shingle
            out.append({zlib.crc32(text.encode("utf-8", errors="surrogatepass"))})
    return out


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


def minhash_signatures(sets: list[set[int]], num_perm: int, seed: int = 1):
    """MinHash signatures of non-empty sets of 32-bit hashes, one row per set: the minimum
    of `a * h + b mod 2**32` over each set for `num_perm` random (a odd, b), the affine
    family datasketch's default scheme uses. Computed for every set at once, one numpy pass
    per hash function (a MinHash object per notice cost more than the rest of dedup)."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**32, num_perm, dtype=np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, num_perm, dtype=np.uint32)
    sizes = [len(x) for x in sets]
    flat = np.fromiter(itertools.chain.from_iterable(sets), dtype=np.uint32, count=sum(sizes))
    starts = np.cumsum([0, *sizes[:-1]])
    out = np.empty((len(sets), num_perm), dtype=np.uint32)
    for k in range(num_perm if sets else 0):
        out[:, k] = np.minimum.reduceat(flat * a[k] + b[k], starts)  # wraps mod 2**32
    return out


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
    from datasketch import LeanMinHash, MinHashLSH

    bands, rows = lsh_bands(threshold, num_perm)
    lsh = MinHashLSH(num_perm=bands * rows, params=(bands, rows))
    order = sorted(
        range(len(notices)), key=lambda i: (notices[i]["publish_date"], notices[i]["id"])
    )
    texts = [text_of(notices[i]) for i in order]
    grams_of = shingle_sets(texts, shingle_size)
    signatures = minhash_signatures(grams_of, bands * rows)
    # rows of the kept notices, to estimate the Jaccard of all candidates in one step before
    # the exact check (from 60 hashes, 0.15 is about 3 standard deviations at 0.8)
    kept_rows = np.empty(len(notices), dtype=np.int64)
    kept_ids: list[str] = []
    result = DedupResult(kept=[])
    by_hash: dict[str, str] = {}
    keep = [False] * len(notices)
    for row, (i, text, grams) in enumerate(zip(order, texts, grams_of, strict=True)):
        n = notices[i]
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in by_hash:
            result.exact[n["id"]] = by_hash[digest]
            continue
        m = LeanMinHash(seed=1, hashvalues=signatures[row], scheme="affine32")
        best, best_sim = -1, -1.0
        candidates = np.fromiter(lsh.query(m), dtype=np.int64)
        if len(candidates):
            agree = (signatures[kept_rows[candidates]] == signatures[row]).sum(axis=1)
            for k in candidates[agree >= (threshold - 0.15) * len(m)].tolist():
                sim = jaccard(grams, grams_of[kept_rows[k]])
                if sim >= threshold and (sim, -k) > (best_sim, -best):
                    best, best_sim = k, sim
        if best >= 0:
            result.clusters.setdefault(kept_ids[best], []).append((n["id"], best_sim))
            continue
        by_hash[digest] = n["id"]
        lsh.insert(len(kept_ids), m, check_duplication=False)
        kept_rows[len(kept_ids)] = row
        kept_ids.append(n["id"])
        keep[i] = True
    result.kept = [n for n, k in zip(notices, keep, strict=True) if k]
    return result
